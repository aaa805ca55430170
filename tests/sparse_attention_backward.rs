//! Backward passes: the f64 reference gradients against central finite differences of the
//! forward references (dense, and sparse with a fixed key selection), then the GPU kernel
//! against the reference.

use crate::common;

use knn_attention::attention::{AttentionConfig, Keep};
use knn_attention::buffer::ElemType;
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
        common::assert_grads(&format!("{mask:?}"), &g, &fd, 2e-3);
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
    common::assert_grads("sparse", &g, &fd, 2e-3);
}

// ---- GPU kernel ----

use knn_attention::kernels::sparse_attention_backward::SparseAttentionBackward;
use knn_attention::kernels::topk_attention::{KPolicy, TopkAttention, TopkAttentionConfig};

/// Forward top-k attention on the GPU, then the GPU backward against the reference on the
/// same kept keys. Gradients are sums of O(slots) f32 terms: 1e-4 of the largest suffices.
fn check_gpu(
    ctx: &knn_attention::GpuContext,
    cfg: TopkAttentionConfig,
    seed: u64,
) -> AttentionGrads {
    let s = &cfg.attn.shape;
    // With f16 storage the reference sees the values the GPU stores.
    let round = |x: Vec<f32>| match cfg.attn.storage {
        ElemType::F32 => x,
        ElemType::F16 => common::round_f16(&x),
    };
    let q = round(common::normal_data(s.q_len(), seed));
    let k = round(common::normal_data(s.kv_len(), seed + 1));
    let v = round(common::normal_data(s.kv_len(), seed + 2));
    let d_out = common::normal_data(s.q_len(), seed + 3);
    let fwd = TopkAttention::new(ctx, cfg)
        .unwrap()
        .run(&q, &k, &v)
        .unwrap();
    let bwd = SparseAttentionBackward::new(ctx, cfg.attn, fwd.slots).unwrap();
    let got = bwd
        .run((&q, &k, &v), &d_out, (&fwd.kept, &fwd.probs))
        .unwrap();
    let want = sparse_attention_backward(
        s,
        cfg.attn.scale,
        (&q, &k, &v),
        &fwd.kept,
        fwd.slots,
        &d_out,
    )
    .unwrap();
    common::assert_grads(&format!("{cfg:?}"), &got, &want, 1e-4);
    let again = bwd
        .run((&q, &k, &v), &d_out, (&fwd.kept, &fwd.probs))
        .unwrap();
    assert_eq!(got, again, "not deterministic");
    got
}

#[test]
fn gpu_matches_reference_for_topk_attention() {
    let ctx = gpu_or_skip!();
    for d in [16, 64, 80, 128, 256] {
        let shape = AttentionShape::new(2, 40, 90, d);
        let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 50 });
        check_gpu(
            &ctx,
            TopkAttentionConfig::new(attn, KPolicy::Fixed(8)),
            d as u64,
        );
    }
    // GQA, sinks (one key kept by every query: a large bucket) and a window.
    let shape = AttentionShape {
        batch: 2,
        heads_q: 6,
        heads_kv: 2,
        n_q: 150,
        n_kv: 150,
        head_dim: 8,
    };
    let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 0 });
    let cfg = TopkAttentionConfig {
        keep: Keep {
            sinks: 1,
            window: 4,
        },
        ..TopkAttentionConfig::new(attn, KPolicy::Sqrt)
    };
    check_gpu(&ctx, cfg, 300);
}

#[test]
fn gpu_matches_reference_with_f16_storage() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape {
        batch: 1,
        heads_q: 4,
        heads_kv: 2,
        n_q: 70,
        n_kv: 90,
        head_dim: 64,
    };
    let attn = AttentionConfig::new(shape)
        .with_mask(Mask::Causal { offset: 20 })
        .with_storage(ElemType::F16);
    if !ctx.capabilities().f16 {
        assert!(matches!(
            SparseAttentionBackward::new(&ctx, attn, 8),
            Err(knn_attention::Error::Unsupported { .. })
        ));
        return;
    }
    check_gpu(&ctx, TopkAttentionConfig::new(attn, KPolicy::Fixed(8)), 500);
}

/// Keeping every key makes the sparse backward the dense one.
#[test]
fn gpu_with_all_keys_is_the_dense_backward() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape::new(2, 30, 30, 16);
    let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 0 });
    let got = check_gpu(
        &ctx,
        TopkAttentionConfig::new(attn, KPolicy::Fixed(30)),
        400,
    );
    let q = common::normal_data(shape.q_len(), 400);
    let k = common::normal_data(shape.kv_len(), 401);
    let v = common::normal_data(shape.kv_len(), 402);
    let d_out = common::normal_data(shape.q_len(), 403);
    let dense =
        dense_attention_backward(&shape, attn.scale, attn.mask, (&q, &k, &v), &d_out).unwrap();
    common::assert_grads("dense", &got, &dense, 1e-4);
}

// ---- Random-walk (sampled) estimator ----

use knn_attention::GpuBuffer;
use knn_attention::attention::{GradOutputs, Qkv};
use knn_attention::kernels::sampling_attention::{
    MomConfig, SamplingAttention, SamplingAttentionConfig,
};
use knn_attention::kernels::sparse_attention_backward::SampledInputs;
use knn_attention::reference::sparse_attention_backward::sampled_attention_backward;

struct Sampled {
    attn: AttentionConfig,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    d_out: Vec<f32>,
    out: Vec<f32>,
    exact: AttentionGrads,
}

fn sampled_case(shape: AttentionShape, seed: u64) -> Sampled {
    let attn = AttentionConfig::new(shape).with_mask(Mask::Causal {
        offset: shape.n_kv - shape.n_q,
    });
    let q = common::normal_data(shape.q_len(), seed);
    let k = common::normal_data(shape.kv_len(), seed + 1);
    let v = common::normal_data(shape.kv_len(), seed + 2);
    let d_out = common::normal_data(shape.q_len(), seed + 3);
    let out = dense_attention(&shape, &q, &k, &v, attn.scale, attn.mask)
        .unwrap()
        .out;
    let exact =
        dense_attention_backward(&shape, attn.scale, attn.mask, (&q, &k, &v), &d_out).unwrap();
    Sampled {
        attn,
        q,
        k,
        v,
        d_out,
        out,
        exact,
    }
}

/// `l` exact softmax samples per row from the GPU sampler.
fn draw(ctx: &knn_attention::GpuContext, c: &Sampled, l: usize, seed: u64) -> Vec<u32> {
    let cfg = SamplingAttentionConfig::new(
        c.attn,
        MomConfig {
            samples: l,
            groups: 1,
        },
        seed,
    );
    SamplingAttention::new(ctx, cfg)
        .unwrap()
        .run(&c.q, &c.k, &c.v)
        .unwrap()
        .samples
}

fn gpu_sampled(
    ctx: &knn_attention::GpuContext,
    c: &Sampled,
    samples: &[u32],
    l: usize,
) -> AttentionGrads {
    let b = SparseAttentionBackward::new(ctx, c.attn, l).unwrap();
    let up = |x: &[f32]| GpuBuffer::from_slice(ctx, x, "t").unwrap();
    let (q, k, v, d, o) = (up(&c.q), up(&c.k), up(&c.v), up(&c.d_out), up(&c.out));
    let s = GpuBuffer::from_slice(ctx, samples, "samples").unwrap();
    let grads = GradOutputs::new(ctx, &c.attn).unwrap();
    let mut enc = ctx.encoder("sampled");
    let inputs = SampledInputs {
        qkv: Qkv::f32(&q, &k, &v),
        d_out: &d,
        out: &o,
        samples: &s,
    };
    b.encode_sampled(&mut enc, inputs, &grads).unwrap();
    ctx.submit_and_wait(enc).unwrap();
    grads.read(ctx).unwrap()
}

fn rms_error(a: &AttentionGrads, b: &AttentionGrads) -> f64 {
    let all = |g: &AttentionGrads| [g.dq.clone(), g.dk.clone(), g.dv.clone()].concat();
    let (x, y) = (all(a), all(b));
    (x.iter()
        .zip(&y)
        .map(|(p, q)| f64::from(p - q).powi(2))
        .sum::<f64>()
        / x.len() as f64)
        .sqrt()
}

/// GPU estimate = reference estimate on the same samples, and the same bits twice.
#[test]
fn gpu_sampled_estimate_matches_reference() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape {
        batch: 1,
        heads_q: 4,
        heads_kv: 2,
        n_q: 30,
        n_kv: 60,
        head_dim: 16,
    };
    let c = sampled_case(shape, 500);
    let l = 32;
    let samples = draw(&ctx, &c, l, 1);
    let got = gpu_sampled(&ctx, &c, &samples, l);
    let want = sampled_attention_backward(
        &shape,
        c.attn.scale,
        (&c.q, &c.k, &c.v),
        (&samples, l),
        &c.d_out,
        &c.out,
    )
    .unwrap();
    common::assert_grads("sampled", &got, &want, 1e-4);
    assert_eq!(got, gpu_sampled(&ctx, &c, &samples, l), "not deterministic");
}

/// One kernel encoding again and again, its bind groups remembered between calls: the same
/// buffers, other samples and outputs, d_out rewritten in place, and two encodes in one
/// encoder. Every result is the reference's on what the buffers held.
#[test]
fn repeated_encodes_follow_their_buffers() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape {
        batch: 1,
        heads_q: 2,
        heads_kv: 1,
        n_q: 20,
        n_kv: 40,
        head_dim: 8,
    };
    let c = sampled_case(shape, 600);
    let l = 8;
    let samples = [draw(&ctx, &c, l, 2), draw(&ctx, &c, l, 3)];
    let want = |s: &[u32], d_out: &[f32]| {
        let qkv = (&c.q[..], &c.k[..], &c.v[..]);
        sampled_attention_backward(&shape, c.attn.scale, qkv, (s, l), d_out, &c.out).unwrap()
    };
    let b = SparseAttentionBackward::new(&ctx, c.attn, l).unwrap();
    let up = |x: &[f32]| GpuBuffer::from_slice(&ctx, x, "t").unwrap();
    let (q, k, v, d, o) = (up(&c.q), up(&c.k), up(&c.v), up(&c.d_out), up(&c.out));
    let s = samples
        .each_ref()
        .map(|x| GpuBuffer::from_slice(&ctx, x, "samples").unwrap());
    let grads = [0, 1].map(|_| GradOutputs::new(&ctx, &c.attn).unwrap());
    let inputs = |i: usize| SampledInputs {
        qkv: Qkv::f32(&q, &k, &v),
        d_out: &d,
        out: &o,
        samples: &s[i],
    };
    let other_d = common::normal_data(shape.q_len(), 601);
    let mut d_host = c.d_out.clone();
    // (samples, grads, rewrite d_out first): each call changes one thing from the last.
    let calls = [
        (0, 0, false),
        (0, 0, false),
        (1, 0, false),
        (1, 1, false),
        (1, 1, true),
        (0, 1, false),
    ];
    for (step, (i, g, rewrite)) in calls.into_iter().enumerate() {
        if rewrite {
            ctx.queue
                .write_buffer(d.buffer(), 0, bytemuck::cast_slice(&other_d));
            d_host = other_d.clone();
        }
        let mut enc = ctx.encoder("t");
        b.encode_sampled(&mut enc, inputs(i), &grads[g]).unwrap();
        ctx.submit_and_wait(enc).unwrap();
        let got = grads[g].read(&ctx).unwrap();
        common::assert_grads(
            &format!("call {step}"),
            &got,
            &want(&samples[i], &d_host),
            1e-4,
        );
    }
    let mut enc = ctx.encoder("t");
    for (i, g) in grads.iter().enumerate() {
        b.encode_sampled(&mut enc, inputs(i), g).unwrap();
    }
    ctx.submit_and_wait(enc).unwrap();
    for (i, g) in grads.iter().enumerate() {
        let got = g.read(&ctx).unwrap();
        common::assert_grads(
            &format!("one encoder, samples {i}"),
            &got,
            &want(&samples[i], &d_host),
            1e-4,
        );
    }
}

/// Unbiased: 400 independent L = 4 estimates (disjoint slices of 1600 exact samples per row)
/// average to the exact gradient within 5 standard errors, element by element.
#[test]
fn sampled_estimate_is_unbiased() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape::new(1, 6, 20, 4);
    let c = sampled_case(shape, 600);
    let (l, reps) = (4, 400);
    let all = draw(&ctx, &c, l * reps, 2);
    let rows = shape.rows();
    let estimates: Vec<AttentionGrads> = (0..reps)
        .map(|r| {
            let s: Vec<u32> = (0..rows)
                .flat_map(|row| all[row * l * reps + r * l..][..l].to_vec())
                .collect();
            sampled_attention_backward(
                &shape,
                c.attn.scale,
                (&c.q, &c.k, &c.v),
                (&s, l),
                &c.d_out,
                &c.out,
            )
            .unwrap()
        })
        .collect();
    for (name, pick) in [("dq", 0), ("dk", 1), ("dv", 2)] {
        let field = |g: &AttentionGrads| [&g.dq, &g.dk, &g.dv][pick].clone();
        let exact = field(&c.exact);
        for (e, &want) in exact.iter().enumerate() {
            let xs: Vec<f64> = estimates.iter().map(|g| f64::from(field(g)[e])).collect();
            let mean = xs.iter().sum::<f64>() / reps as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (reps - 1) as f64;
            let se = (var / reps as f64).sqrt();
            assert!(
                (mean - f64::from(want)).abs() <= 5.0 * se + 1e-6,
                "{name}[{e}]: mean {mean} vs exact {want} (se {se})"
            );
        }
    }
}

/// The error against the exact gradient falls like 1/√L: 16× more samples, ≥ 2.5× smaller.
#[test]
fn sampled_error_falls_with_samples() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape::new(2, 24, 64, 8);
    let c = sampled_case(shape, 700);
    let err = |l| rms_error(&gpu_sampled(&ctx, &c, &draw(&ctx, &c, l, 3), l), &c.exact);
    let (e16, e256) = (err(16), err(256));
    assert!(
        e256 * 2.5 < e16,
        "rms error {e16} at L = 16, {e256} at L = 256"
    );
}

/// Indices past the head's keys (n_kv, n_kv + 1, 2^31) are empty slots, like `u32::MAX`: on
/// the GPU they must not read the other kv head's rows, and the reference skips them too.
/// Exact mode (kept slots of a top-k forward) and sampled mode (drawn samples).
#[test]
fn out_of_range_kept_indices_are_empty_slots() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape {
        batch: 1,
        heads_q: 4,
        heads_kv: 2,
        n_q: 24,
        n_kv: 40,
        head_dim: 16,
    };
    let n_kv = shape.n_kv as u32;
    let bad = [n_kv, n_kv + 1, 1 << 31];
    // Every 3rd slot replaced: by a bad index in one copy, by u32::MAX in the other.
    let spoil = |kept: &[u32]| -> (Vec<u32>, Vec<u32>) {
        let pick = |i: usize, j: u32, by: u32| if i % 3 == 1 { by } else { j };
        let with_bad = kept
            .iter()
            .enumerate()
            .map(|(i, &j)| pick(i, j, bad[i / 3 % 3]));
        let with_none = kept.iter().enumerate().map(|(i, &j)| pick(i, j, u32::MAX));
        (with_bad.collect(), with_none.collect())
    };

    let c = sampled_case(shape, 900);
    let (q, k, v) = (&c.q[..], &c.k[..], &c.v[..]);
    let fwd = TopkAttention::new(&ctx, TopkAttentionConfig::new(c.attn, KPolicy::Fixed(6)))
        .unwrap()
        .run(q, k, v)
        .unwrap();
    let (kept_bad, kept_none) = spoil(&fwd.kept);
    for b in bad {
        assert!(kept_bad.contains(&b), "index {b} not exercised");
    }
    let bwd = SparseAttentionBackward::new(&ctx, c.attn, fwd.slots).unwrap();
    let gpu = |kept: &[u32]| bwd.run((q, k, v), &c.d_out, (kept, &fwd.probs)).unwrap();
    let cpu = |kept: &[u32]| {
        let s = c.attn.scale;
        sparse_attention_backward(&shape, s, (q, k, v), kept, fwd.slots, &c.d_out).unwrap()
    };
    let want = cpu(&kept_none);
    assert_eq!(cpu(&kept_bad), want, "reference, exact mode");
    // (GPU against reference only where slots are consistent with the probabilities: the
    // GPU weighs slots by the forward's probabilities, the reference recomputes them.)
    assert_eq!(gpu(&kept_bad), gpu(&kept_none), "GPU, exact mode");

    let l = 8;
    let (samples_bad, samples_none) = spoil(&draw(&ctx, &c, l, 5));
    let cpu = |samples: &[u32]| {
        let (s, o) = (c.attn.scale, &c.out);
        sampled_attention_backward(&shape, s, (q, k, v), (samples, l), &c.d_out, o).unwrap()
    };
    let want = cpu(&samples_none);
    assert_eq!(cpu(&samples_bad), want, "reference, sampled mode");
    let got = gpu_sampled(&ctx, &c, &samples_bad, l);
    assert_eq!(
        got,
        gpu_sampled(&ctx, &c, &samples_none, l),
        "GPU, sampled mode"
    );
    common::assert_grads("sampled mode, bad indices", &got, &want, 1e-4);
}
