//! Backward passes: the f64 reference gradients against central finite differences of the
//! forward references (dense, and sparse with a fixed key selection), then the GPU kernel
//! against the reference.

mod common;

use knn_attention::attention::{AttentionConfig, Keep};
use knn_attention::kernels::gather_attention::GatherConfig;
use knn_attention::reference::dense_attention::dense_attention;
use knn_attention::reference::gather_attention::gather_attention;
use knn_attention::reference::sparse_attention_backward::{
    AttentionGrads, dense_attention_backward, sparse_attention_backward,
};
use knn_attention::{AttentionShape, Mask};

/// A scalar loss of (q, k, v).
type Loss<'a> = &'a dyn Fn(&[f32], &[f32], &[f32]) -> f64;

/// Central differences of `loss` in every input element, step `h`: O(h²) truncation plus
/// f32 output rounding / h, so ~1e-4 relative at h = 1e-2 for O(1) data.
fn finite_differences(
    (q, k, v): (&[f32], &[f32], &[f32]),
    h: f32,
    loss: Loss<'_>,
) -> AttentionGrads {
    let mut grads = Vec::new();
    for which in 0..3 {
        let base = [q, k, v][which];
        let g: Vec<f32> = (0..base.len())
            .map(|e| {
                let mut x = [q.to_vec(), k.to_vec(), v.to_vec()];
                x[which][e] = base[e] + h;
                let up = loss(&x[0], &x[1], &x[2]);
                x[which][e] = base[e] - h;
                let down = loss(&x[0], &x[1], &x[2]);
                ((up - down) / (2.0 * f64::from(h))) as f32
            })
            .collect();
        grads.push(g);
    }
    AttentionGrads {
        dv: grads.pop().unwrap(),
        dk: grads.pop().unwrap(),
        dq: grads.pop().unwrap(),
    }
}

fn assert_grads(what: &str, got: &AttentionGrads, want: &AttentionGrads, tol: f32) {
    for (name, g, w) in [
        ("dq", &got.dq, &want.dq),
        ("dk", &got.dk, &want.dk),
        ("dv", &got.dv, &want.dv),
    ] {
        let scale = w.iter().fold(1f32, |m, x| m.max(x.abs()));
        for (i, (a, b)) in g.iter().zip(w).enumerate() {
            assert!(
                (a - b).abs() <= tol * scale,
                "{what} {name}[{i}]: {a} vs {b}"
            );
        }
    }
}

fn loss_of(out: &[f32], d_out: &[f32]) -> f64 {
    out.iter()
        .zip(d_out)
        .map(|(&o, &g)| f64::from(o) * f64::from(g))
        .sum()
}

#[test]
fn dense_reference_gradients_match_finite_differences() {
    let shape = AttentionShape {
        batch: 1,
        heads_q: 2,
        heads_kv: 1,
        n_q: 5,
        n_kv: 7,
        head_dim: 4,
    };
    let q = common::normal_data(shape.q_len(), 1);
    let k = common::normal_data(shape.kv_len(), 2);
    let v = common::normal_data(shape.kv_len(), 3);
    let d_out = common::normal_data(shape.q_len(), 4);
    for mask in [Mask::None, Mask::Causal { offset: 2 }] {
        let loss = |q: &[f32], k: &[f32], v: &[f32]| {
            loss_of(
                &dense_attention(&shape, q, k, v, 0.5, mask).unwrap().out,
                &d_out,
            )
        };
        let fd = finite_differences((&q, &k, &v), 1e-2, &loss);
        let g = dense_attention_backward(&shape, 0.5, mask, (&q, &k, &v), &d_out).unwrap();
        assert_grads(&format!("{mask:?}"), &g, &fd, 2e-3);
    }
}

/// With the selection fixed (the keys the forward kept, sinks and window included), the sparse
/// gradients are the derivatives of gather attention.
#[test]
fn sparse_reference_gradients_match_finite_differences() {
    let shape = AttentionShape {
        batch: 2,
        heads_q: 2,
        heads_kv: 2,
        n_q: 4,
        n_kv: 9,
        head_dim: 3,
    };
    let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 5 });
    let cfg = GatherConfig {
        keep: Keep {
            sinks: 1,
            window: 2,
        },
        ..GatherConfig::new(attn, 3)
    };
    let q = common::normal_data(shape.q_len(), 5);
    let k = common::normal_data(shape.kv_len(), 6);
    let v = common::normal_data(shape.kv_len(), 7);
    let d_out = common::normal_data(shape.q_len(), 8);
    let indices: Vec<u32> = (0..shape.rows() * 3)
        .map(|e| ((e * 5 + 2) % 9) as u32)
        .collect();
    let fwd = gather_attention(&cfg, (&q, &k, &v), &indices, None, None).unwrap();
    let loss = |q: &[f32], k: &[f32], v: &[f32]| {
        loss_of(
            &gather_attention(&cfg, (q, k, v), &indices, None, None)
                .unwrap()
                .out,
            &d_out,
        )
    };
    let fd = finite_differences((&q, &k, &v), 1e-2, &loss);
    let g = sparse_attention_backward(
        &shape,
        attn.scale,
        (&q, &k, &v),
        &fwd.kept,
        fwd.slots,
        &d_out,
    )
    .unwrap();
    assert_grads("sparse", &g, &fd, 2e-3);
}
