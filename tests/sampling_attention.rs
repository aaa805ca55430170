//! `sampling_attention` (median-of-means estimate from lazy exact samples) on the GPU: the
//! estimate equals the reference's on the same samples, the samples fit each row's softmax,
//! the error falls like 1/√L, and the (ε, δ) bound holds on synthetic and real data.

use crate::common;

use common::stats::assert_fits;
use knn_attention::attention::AttentionConfig;
use knn_attention::kernels::sampling_attention::{
    MomConfig, SamplingAttention, SamplingAttentionConfig,
};
use knn_attention::reference::dense_attention::{dense_attention, probabilities_row};
use knn_attention::reference::sampling_attention::mom_estimate;
use knn_attention::tolerance::ATTENTION;
use knn_attention::{AttentionShape, Error, GpuContext, Mask};

fn data(shape: &AttentionShape, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    (
        common::normal_data(shape.q_len(), seed),
        common::normal_data(shape.kv_len(), seed + 1),
        common::normal_data(shape.kv_len(), seed + 2),
    )
}

fn run(
    ctx: &GpuContext,
    cfg: SamplingAttentionConfig,
    (q, k, v): (&[f32], &[f32], &[f32]),
) -> knn_attention::kernels::sampling_attention::SamplingResult {
    SamplingAttention::new(ctx, cfg)
        .unwrap()
        .run(q, k, v)
        .unwrap()
}

/// Same samples → same estimate; samples of each row fit its softmax (causal rows, GQA).
#[test]
fn estimate_and_samples_match_the_reference() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape {
        batch: 1,
        heads_q: 2,
        heads_kv: 1,
        n_q: 5,
        n_kv: 300,
        head_dim: 8,
    };
    let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 295 });
    let cfg = SamplingAttentionConfig::new(
        attn,
        MomConfig {
            samples: 4096,
            groups: 8,
        },
        17,
    );
    let (q, k, v) = data(&shape, 40);
    let r = run(&ctx, cfg, (&q, &k, &v));
    let want = mom_estimate(&shape, &v, &r.samples, &cfg.mom).unwrap();
    common::assert_close("estimate", &r.out, &want, ATTENTION);
    for row in 0..shape.rows() {
        let (bh, i) = (row / 5, row % 5);
        let p = probabilities_row(&shape, &q, &k, attn.scale, attn.mask, (0, bh, i));
        assert_fits(&format!("row {row}"), &r.samples[row * 4096..][..4096], &p);
    }
}

/// Mean absolute error over rows and dims for L = 16 … 1024 (plain means): it falls like
/// 1/√L (32× more samples: ≥ 4× smaller error, expected ≈ 5.7×).
#[test]
fn error_falls_like_one_over_sqrt_samples() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape::new(2, 32, 400, 16);
    let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 368 });
    let (q, k, v) = data(&shape, 50);
    let exact = dense_attention(&shape, &q, &k, &v, attn.scale, attn.mask).unwrap();
    let err = |l| {
        let r = run(
            &ctx,
            SamplingAttentionConfig::new(
                attn,
                MomConfig {
                    samples: l,
                    groups: 1,
                },
                3,
            ),
            (&q, &k, &v),
        );
        r.out
            .iter()
            .zip(&exact.out)
            .map(|(a, b)| f64::from((a - b).abs()))
            .sum::<f64>()
            / r.out.len() as f64
    };
    let errs: Vec<f64> = [16, 64, 256, 512].into_iter().map(err).collect();
    for w in errs.windows(2) {
        assert!(w[1] < w[0], "error did not fall: {errs:?}");
    }
    assert!(errs[3] * 4.0 < errs[0], "error not ∝ 1/√L: {errs:?}");
}

/// The (ε, δ) guarantee: with L from `MomConfig::for_bound(ε, δ, σ)` (σ = the largest
/// per-coordinate standard deviation of V under any row's softmax), at most a δ fraction of
/// (row, coordinate) estimates miss by more than ε (checked with a 3-sigma binomial margin).
fn bound_holds(
    ctx: &GpuContext,
    what: &str,
    attn: AttentionConfig,
    (q, k, v): (&[f32], &[f32], &[f32]),
) {
    let s = &attn.shape;
    let exact = dense_attention(s, q, k, v, attn.scale, attn.mask).unwrap();
    let d = s.head_dim;
    let mut sigma: f64 = 0.0;
    for row in 0..s.rows() {
        let (bh, i) = (row / s.n_q, row % s.n_q);
        let (b, h) = (bh / s.heads_q, bh % s.heads_q);
        let p = probabilities_row(s, q, k, attn.scale, attn.mask, (b, h, i));
        let base = (b * s.heads_kv + s.kv_head(h)) * s.n_kv * d;
        for c in 0..d {
            let m = f64::from(exact.out[row * d + c]);
            let var: f64 = p
                .iter()
                .enumerate()
                .map(|(j, pj)| pj * (f64::from(v[base + j * d + c]) - m).powi(2))
                .sum();
            sigma = sigma.max(var.sqrt());
        }
    }
    let (eps, delta) = (0.5 * sigma, 0.05);
    let mom = MomConfig::for_bound(eps, delta, sigma).unwrap();
    let r = run(ctx, SamplingAttentionConfig::new(attn, mom, 9), (q, k, v));
    let misses = r
        .out
        .iter()
        .zip(&exact.out)
        .filter(|(a, b)| f64::from((*a - *b).abs()) > eps)
        .count();
    let n = r.out.len() as f64;
    let allowed = delta * n + 3.0 * (delta * (1.0 - delta) * n).sqrt();
    assert!(
        (misses as f64) <= allowed,
        "{what}: {misses} of {n} miss ε = {eps:.3} (δ = {delta}, {mom:?})"
    );
}

#[test]
fn median_of_means_bound_holds_on_synthetic_data() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape::new(2, 24, 500, 16);
    let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 476 });
    let (q, k, v) = data(&shape, 60);
    bound_holds(&ctx, "synthetic", attn, (&q, &k, &v));
}

/// Two heads of MiniLM layer 3 (512 tokens).
#[test]
fn median_of_means_bound_holds_on_real_data() {
    let ctx = gpu_or_skip!();
    let Some(c) = common::data::load("gpl3-layer3.safetensors") else {
        return;
    };
    let heads = 2;
    let len = heads * c.tokens * c.head_dim;
    let shape = AttentionShape::new(heads, c.tokens, c.tokens, c.head_dim);
    let attn = AttentionConfig::new(shape).with_scale(c.scale);
    bound_holds(
        &ctx,
        "MiniLM layer 3",
        attn,
        (&c.q[..len], &c.k[..len], &c.v[..len]),
    );
}

#[test]
fn bad_config_is_a_typed_error() {
    assert!(matches!(
        MomConfig {
            samples: 10,
            groups: 3
        }
        .validate(),
        Err(Error::InvalidShape { arg: "samples", .. })
    ));
    assert!(matches!(
        MomConfig {
            samples: 130,
            groups: 65
        }
        .validate(),
        Err(Error::InvalidShape { arg: "groups", .. })
    ));
    assert!(matches!(
        MomConfig::for_bound(0.1, 1.5, 1.0),
        Err(Error::InvalidShape { arg: "delta", .. })
    ));
    let m = MomConfig::for_bound(0.5, 0.01, 1.0).unwrap();
    assert_eq!(
        m,
        MomConfig {
            samples: 16 * 37,
            groups: 37
        }
    ); // b = 4·1/0.25, g = ⌈8 ln 100⌉
}

/// f16 storage: the estimate equals the reference's median of means over the f16-rounded V
/// at the GPU's own samples, and the samples fit the softmax of the rounded q and k.
#[test]
fn f16_storage() {
    use knn_attention::buffer::ElemType;
    let ctx = gpu_or_skip!();
    let shape = AttentionShape::new(2, 3, 200, 32);
    let attn = AttentionConfig::new(shape).with_storage(ElemType::F16);
    let cfg = SamplingAttentionConfig::new(
        attn,
        MomConfig {
            samples: 2048,
            groups: 4,
        },
        5,
    );
    if !ctx.capabilities().f16 {
        assert!(matches!(
            SamplingAttention::new(&ctx, cfg),
            Err(Error::Unsupported { .. })
        ));
        return;
    }
    let (q, k, v) = data(&shape, 70);
    let (q, k, v) = (
        common::round_f16(&q),
        common::round_f16(&k),
        common::round_f16(&v),
    );
    let r = run(&ctx, cfg, (&q, &k, &v));
    let want = mom_estimate(&shape, &v, &r.samples, &cfg.mom).unwrap();
    common::assert_close("f16 estimate", &r.out, &want, ATTENTION);
    for row in 0..shape.rows() {
        let p = probabilities_row(&shape, &q, &k, attn.scale, attn.mask, (0, row / 3, row % 3));
        assert_fits(
            &format!("f16 row {row}"),
            &r.samples[row * 2048..][..2048],
            &p,
        );
    }
}
