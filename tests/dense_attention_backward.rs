//! The flash-style dense backward on the GPU against the f64 reference gradients (themselves
//! checked against finite differences in `tests/sparse_attention_backward.rs`), fed by the GPU
//! dense forward as an application would chain them.

use crate::common;

use knn_attention::attention::{AttentionConfig, AttentionOutputs, GradOutputs, Qkv, QkvTensors};
use knn_attention::buffer::ElemType;
use knn_attention::kernels::dense_attention::DenseAttention;
use knn_attention::kernels::dense_attention_backward::{
    DenseAttentionBackward, DenseBackwardInputs,
};
use knn_attention::reference::sparse_attention_backward::{
    AttentionGrads, dense_attention_backward,
};
use knn_attention::{AttentionShape, Error, GpuBuffer, GpuContext, Mask};

/// Gradients sum up to n_q (dK, dV) or n_kv (dQ) f32 terms of both signs: 1e-4 of each
/// tensor's largest element leaves a wide margin at these sizes.
const TOL: f32 = 1e-4;

/// GPU forward then GPU backward in one encoder, as an embedding application records them.
fn gpu_grads(
    ctx: &GpuContext,
    attn: AttentionConfig,
    (q, k, v): (&[f32], &[f32], &[f32]),
    d_out: &[f32],
) -> AttentionGrads {
    let kernels = (
        DenseAttention::new(ctx, attn).unwrap(),
        DenseAttentionBackward::new(ctx, attn).unwrap(),
    );
    gpu_grads_with(ctx, &kernels, (q, k, v), d_out)
}

fn gpu_grads_with(
    ctx: &GpuContext,
    (forward, backward): &(DenseAttention, DenseAttentionBackward),
    (q, k, v): (&[f32], &[f32], &[f32]),
    d_out: &[f32],
) -> AttentionGrads {
    let attn = *backward.config();
    let tensors = QkvTensors::upload(ctx, attn.storage, (q, k, v)).unwrap();
    let fwd = AttentionOutputs::new(ctx, &attn.shape).unwrap();
    let d_out = GpuBuffer::from_slice(ctx, d_out, "d_out").unwrap();
    let grads = GradOutputs::new(ctx, &attn).unwrap();
    let mut enc = ctx.encoder("test");
    forward.encode(&mut enc, tensors.view(), &fwd).unwrap();
    let inputs = DenseBackwardInputs {
        qkv: tensors.view(),
        forward: &fwd,
        d_out: &d_out,
    };
    backward.encode(&mut enc, inputs, &grads).unwrap();
    ctx.submit_and_wait(enc).unwrap();
    grads.read(ctx).unwrap()
}

/// Random inputs for `attn` (rounded to f16 when that is the storage, so the reference sees
/// what the GPU sees), GPU vs reference, and the same bits on a second run.
fn check(ctx: &GpuContext, attn: AttentionConfig, seed: u64) {
    let s = &attn.shape;
    let round = |x: Vec<f32>| match attn.storage {
        ElemType::F32 => x,
        ElemType::F16 => common::round_f16(&x),
    };
    let q = round(common::normal_data(s.q_len(), seed));
    let k = round(common::normal_data(s.kv_len(), seed + 1));
    let v = round(common::normal_data(s.kv_len(), seed + 2));
    let d_out = common::normal_data(s.q_len(), seed + 3);
    let got = gpu_grads(ctx, attn, (&q, &k, &v), &d_out);
    let want = dense_attention_backward(s, attn.scale, attn.mask, (&q, &k, &v), &d_out).unwrap();
    common::assert_grads(&format!("{attn:?}"), &got, &want, TOL);
    let again = gpu_grads(ctx, attn, (&q, &k, &v), &d_out);
    assert_eq!(got, again, "{attn:?}: not deterministic");
}

/// Query and key counts straddle the 16-row tiles of both passes and the 64-row tiles they
/// walk; causal with and without a prefill offset, and no mask.
#[test]
fn matches_reference_around_tile_sizes() {
    let ctx = gpu_or_skip!();
    let masks = |n_q: usize, n_kv: usize| {
        [
            Mask::None,
            Mask::Causal { offset: 0 },
            Mask::Causal {
                offset: n_kv.saturating_sub(n_q),
            },
        ]
    };
    let mut seed = 0;
    for (n_q, n_kv) in [
        (1, 1),
        (1, 130),
        (15, 15),
        (16, 16),
        (17, 17),
        (63, 65),
        (64, 64),
        (65, 63),
        (130, 200),
    ] {
        for mask in masks(n_q, n_kv) {
            let shape = AttentionShape::new(2, n_q, n_kv, 16);
            check(&ctx, AttentionConfig::new(shape).with_mask(mask), seed);
            seed += 10;
        }
    }
}

#[test]
fn matches_reference_across_head_dims() {
    let ctx = gpu_or_skip!();
    for d in [1, 8, 32, 64, 80, 96, 128, 256] {
        let shape = AttentionShape::new(1, 40, 70, d);
        let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 30 });
        check(&ctx, attn, 1000 + d as u64);
    }
}

/// dK and dV of a kv head sum over every query head of its group.
#[test]
fn matches_reference_with_grouped_queries() {
    let ctx = gpu_or_skip!();
    for (heads_q, heads_kv) in [(2, 1), (3, 1), (4, 2), (8, 1), (6, 3)] {
        let shape = AttentionShape {
            batch: 2,
            heads_q,
            heads_kv,
            n_q: 33,
            n_kv: 50,
            head_dim: 24,
        };
        for mask in [Mask::None, Mask::Causal { offset: 17 }] {
            let attn = AttentionConfig::new(shape).with_mask(mask);
            check(&ctx, attn, 2000 + (heads_q * 10 + heads_kv) as u64);
        }
    }
}

#[test]
fn matches_reference_with_f16_storage() {
    let ctx = gpu_or_skip!();
    if !ctx.capabilities().f16 {
        let shape = AttentionShape::new(1, 4, 4, 8);
        let attn = AttentionConfig::new(shape).with_storage(ElemType::F16);
        assert!(matches!(
            DenseAttentionBackward::new(&ctx, attn),
            Err(Error::Unsupported { .. })
        ));
        return;
    }
    for (d, mask) in [
        (64, Mask::Causal { offset: 0 }),
        (80, Mask::None),
        (128, Mask::Causal { offset: 9 }),
    ] {
        let shape = AttentionShape::new(2, 50, 59, d);
        let attn = AttentionConfig::new(shape)
            .with_mask(mask)
            .with_storage(ElemType::F16);
        check(&ctx, attn, 3000 + d as u64);
    }
}

/// Masked keys never matter: NaN in the last key's k and v leaves every row that cannot see
/// it finite and equal to the reference; rows that see it are NaN in both.
#[test]
fn masked_nan_keys_do_not_leak() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape::new(1, 80, 80, 16);
    let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 0 });
    let q = common::normal_data(shape.q_len(), 7);
    let mut k = common::normal_data(shape.kv_len(), 8);
    let mut v = common::normal_data(shape.kv_len(), 9);
    let d_out = common::normal_data(shape.q_len(), 10);
    let last = (shape.n_kv - 1) * shape.head_dim;
    k[last] = f32::NAN;
    v[last + 3] = f32::NAN;
    let got = gpu_grads(&ctx, attn, (&q, &k, &v), &d_out);
    let want =
        dense_attention_backward(&shape, attn.scale, attn.mask, (&q, &k, &v), &d_out).unwrap();
    common::assert_grads("nan key", &got, &want, TOL);
    let d = shape.head_dim;
    assert!(got.dq[..(shape.n_q - 1) * d].iter().all(|x| x.is_finite()));
    assert!(got.dq[(shape.n_q - 1) * d..].iter().all(|x| x.is_nan()));
}

/// The dense backward is the sparse one with every key kept (two independent kernels).
#[test]
fn equals_sparse_backward_with_every_key() {
    use knn_attention::kernels::sparse_attention_backward::SparseAttentionBackward;
    use knn_attention::kernels::topk_attention::{KPolicy, TopkAttention, TopkAttentionConfig};
    let ctx = gpu_or_skip!();
    let shape = AttentionShape::new(2, 45, 45, 32);
    let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 0 });
    let q = common::normal_data(shape.q_len(), 20);
    let k = common::normal_data(shape.kv_len(), 21);
    let v = common::normal_data(shape.kv_len(), 22);
    let d_out = common::normal_data(shape.q_len(), 23);
    let fwd = TopkAttention::new(&ctx, TopkAttentionConfig::new(attn, KPolicy::Fixed(45)))
        .unwrap()
        .run(&q, &k, &v)
        .unwrap();
    let sparse = SparseAttentionBackward::new(&ctx, attn, fwd.slots)
        .unwrap()
        .run((&q, &k, &v), &d_out, (&fwd.kept, &fwd.probs))
        .unwrap();
    let dense = gpu_grads(&ctx, attn, (&q, &k, &v), &d_out);
    common::assert_grads("dense vs sparse", &dense, &sparse, TOL);
}

#[test]
fn bad_input_is_a_typed_error() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape::new(1, 8, 8, 16);
    let attn = AttentionConfig::new(shape);
    let bwd = DenseAttentionBackward::new(&ctx, attn).unwrap();
    let x = common::normal_data(shape.q_len(), 1);
    let fwd = DenseAttention::new(&ctx, attn)
        .unwrap()
        .run(&x, &x, &x)
        .unwrap();
    // d_out too short.
    assert!(matches!(
        bwd.run((&x, &x, &x), &fwd, &x[1..]),
        Err(Error::InvalidShape { .. })
    ));
    // lse too short.
    let mut short = fwd.clone();
    short.lse.pop();
    assert!(matches!(
        bwd.run((&x, &x, &x), &short, &x),
        Err(Error::InvalidShape { .. })
    ));
    // Storage type other than configured.
    let buf = GpuBuffer::<u16>::zeroed(&ctx, shape.q_len(), "f16").unwrap();
    let f = GpuBuffer::from_slice(&ctx, &x, "x").unwrap();
    let fwd_gpu = AttentionOutputs::new(&ctx, &shape).unwrap();
    let grads = GradOutputs::new(&ctx, &attn).unwrap();
    let mut enc = ctx.encoder("bad");
    let inputs = DenseBackwardInputs {
        qkv: Qkv::f16(&buf, &buf, &buf),
        forward: &fwd_gpu,
        d_out: &f,
    };
    assert!(matches!(
        bwd.encode(&mut enc, inputs, &grads),
        Err(Error::InvalidShape { .. })
    ));
    // Head dim over the limit.
    let big = AttentionConfig::new(AttentionShape::new(1, 4, 4, 512));
    assert!(DenseAttentionBackward::new(&ctx, big).is_err());
}
