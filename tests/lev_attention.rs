//! `lev_attention` on the GPU against its CPU reference: the universal set (up to f32
//! near-ties in the leverage scores), the attention over it, |U| = n equal to dense
//! attention, planted high-leverage keys found, and bad input.

use crate::common;

use knn_attention::attention::{AttentionConfig, Keep};
use knn_attention::buffer::ElemType;
use knn_attention::kernels::lev_attention::{LevAttention, LevAttentionConfig, LevResult};
use knn_attention::reference::dense_attention::dense_attention;
use knn_attention::reference::gather_attention::gather_attention;
use knn_attention::reference::lev_attention::lev_attention;
use knn_attention::tolerance::ATTENTION;
use knn_attention::{AttentionShape, Error, GpuContext, Mask};

/// Leverage scores closer than this (relative to the head's largest) may order differently
/// in f32 than in the f64 reference (see tests/leverage_scores.rs for the bound).
const NEAR_TIE: f64 = 2e-3;

fn check_on(
    ctx: &GpuContext,
    cfg: LevAttentionConfig,
    (q, k, v): (&[f32], &[f32], &[f32]),
) -> LevResult {
    let gpu = LevAttention::new(ctx, cfg).unwrap().run(q, k, v).unwrap();
    let cpu = lev_attention(&cfg, (q, k, v)).unwrap();
    let s = &cfg.attn.shape;
    let (n, u) = (s.n_kv, cfg.universal);
    for h in 0..s.batch * s.heads_kv {
        let sig = &cpu.sigma[h * n..][..n];
        let top = sig.iter().fold(0f32, |m, &x| m.max(x));
        let kth = sig[cpu.universal[h * u + u - 1] as usize];
        let (mut g, mut c) = (
            gpu.universal[h * u..][..u].to_vec(),
            cpu.universal[h * u..][..u].to_vec(),
        );
        g.sort();
        c.sort();
        for j in g
            .iter()
            .filter(|j| !c.contains(j))
            .chain(c.iter().filter(|j| !g.contains(j)))
        {
            let d = f64::from((sig[*j as usize] - kth).abs());
            assert!(
                d <= NEAR_TIE * f64::from(top),
                "head {h}: key {j} differs from the reference set"
            );
        }
    }
    // The attention over the GPU's own set equals the reference's gather on it.
    let same = gather_attention(&cfg.gather(), (q, k, v), &gpu.universal, None, None).unwrap();
    common::assert_close("out", &gpu.attention.out, &same.out, ATTENTION);
    common::assert_close("lse", &gpu.attention.lse, &same.lse, ATTENTION);
    assert_eq!(gpu.attention.kept, same.kept);
    gpu
}

fn data(shape: &AttentionShape, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    (
        common::normal_data(shape.q_len(), seed),
        common::normal_data(shape.kv_len(), seed + 1),
        common::normal_data(shape.kv_len(), seed + 2),
    )
}

#[test]
fn gpu_matches_reference() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape {
        batch: 2,
        heads_q: 4,
        heads_kv: 2,
        n_q: 20,
        n_kv: 150,
        head_dim: 16,
    };
    for (mask, keep) in [
        (Mask::None, Keep::default()),
        (
            Mask::Causal { offset: 130 },
            Keep {
                sinks: 2,
                window: 8,
            },
        ),
    ] {
        let cfg = LevAttentionConfig {
            keep,
            ..LevAttentionConfig::new(AttentionConfig::new(shape).with_mask(mask), 24)
        };
        let (q, k, v) = data(&shape, 5);
        check_on(&ctx, cfg, (&q, &k, &v));
    }
}

#[test]
fn full_universal_set_is_dense_attention() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape::new(2, 10, 40, 8);
    let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 30 });
    let (q, k, v) = data(&shape, 6);
    let gpu = check_on(&ctx, LevAttentionConfig::new(attn, 40), (&q, &k, &v));
    let dense = dense_attention(&shape, &q, &k, &v, attn.scale, attn.mask).unwrap();
    common::assert_close("out vs dense", &gpu.attention.out, &dense.out, ATTENTION);
}

/// Keys in a 4-dimensional subspace plus 3 keys along other axes: those 3 have leverage ≈ 1
/// (each alone spans a direction) and must be in a universal set of 6.
#[test]
fn planted_high_leverage_keys_are_in_the_set() {
    let ctx = gpu_or_skip!();
    let (n, d) = (300, 16);
    let shape = AttentionShape::new(1, 4, n, d);
    let (q, mut k, v) = data(&shape, 7);
    for i in 0..n {
        for c in 4..d {
            k[i * d + c] = 0.0;
        }
    }
    for (key, axis) in [(17, 9), (150, 12), (299, 15)] {
        k[key * d + axis] = 3.0;
    }
    let r = check_on(
        &ctx,
        LevAttentionConfig::new(AttentionConfig::new(shape), 6),
        (&q, &k, &v),
    );
    for key in [17, 150, 299] {
        assert!(
            r.universal.contains(&key),
            "planted key {key} missing from {:?}",
            r.universal
        );
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let ctx = gpu_or_skip!();
    let attn = AttentionConfig::new(AttentionShape::new(1, 4, 20, 8));
    assert!(matches!(
        LevAttention::new(&ctx, LevAttentionConfig::new(attn, 0)),
        Err(Error::InvalidShape {
            arg: "universal",
            ..
        })
    ));
    assert!(matches!(
        LevAttention::new(&ctx, LevAttentionConfig::new(attn, 21)),
        Err(Error::InvalidShape {
            arg: "universal",
            ..
        })
    ));
    let f16 = LevAttentionConfig::new(attn.with_storage(ElemType::F16), 4);
    assert!(matches!(
        LevAttention::new(&ctx, f16),
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        LevAttentionConfig::from_eps(attn, 0.0),
        Err(Error::InvalidShape { arg: "eps", .. })
    ));
    assert_eq!(
        LevAttentionConfig::from_eps(attn, 0.5).unwrap().universal,
        16
    );
}

/// Decode-style streaming: keys arrive in blocks into a cache of capacity 300; after 230
/// keys, `refresh` builds the universal set from those keys only (matching the f64
/// reference on the first 230 keys up to near-ties), and a query at position 229 attends to
/// it exactly as the reference gather does.
#[test]
fn streaming_refresh_uses_only_the_keys_so_far() {
    use knn_attention::GpuBuffer;
    use knn_attention::attention::{AttentionOutputs, Qkv};
    use knn_attention::kernels::leverage_scores::LeverageConfig;
    use knn_attention::reference::leverage_scores::leverage_scores;
    use knn_attention::reference::topk_attention::rank;
    let ctx = gpu_or_skip!();
    let (cap, n, d, u) = (300, 230, 16, 20);
    let shape = AttentionShape::new(2, 1, cap, d);
    let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: n - 1 });
    let cfg = LevAttentionConfig::new(attn, u);
    let (q, k, v) = data(&shape, 11);
    let lev = LevAttention::new(&ctx, cfg).unwrap();
    let (qb, kb, vb) = (
        GpuBuffer::from_slice(&ctx, &q, "q").unwrap(),
        GpuBuffer::from_slice(&ctx, &k, "k").unwrap(),
        GpuBuffer::from_slice(&ctx, &v, "v").unwrap(),
    );
    let out = AttentionOutputs::new(&ctx, &shape).unwrap();
    let mut enc = ctx.encoder("stream");
    for key0 in (0..n).step_by(64) {
        lev.append(&mut enc, &kb, key0, (key0 + 64).min(n)).unwrap();
    }
    lev.refresh(&mut enc, &kb, n).unwrap();
    lev.attend(&mut enc, Qkv::f32(&qb, &kb, &vb), &out, None)
        .unwrap();
    ctx.submit_and_wait(enc).unwrap();
    let universal = lev.universal.indices.read(&ctx).unwrap();
    let sigma = leverage_scores(&k, &LeverageConfig::new(2, cap, d), n).unwrap();
    for h in 0..2 {
        let want = rank(&sigma[h * cap..][..n]);
        let got = &universal[h * u..][..u];
        assert!(
            got.iter().all(|&j| (j as usize) < n),
            "head {h}: a key past the stream"
        );
        let kth = sigma[h * cap + want[u - 1] as usize];
        let top = sigma[h * cap..][..n].iter().fold(0f64, |m, &x| m.max(x));
        for j in got.iter().filter(|j| !want[..u].contains(j)) {
            assert!(
                (sigma[h * cap + *j as usize] - kth).abs() <= NEAR_TIE * top,
                "head {h}: key {j}"
            );
        }
    }
    let same = gather_attention(&cfg.gather(), (&q, &k, &v), &universal, None, None).unwrap();
    let got = out.read(&ctx).unwrap();
    common::assert_close("out", &got.out, &same.out, ATTENTION);
}

/// A head whose keys overflow the f32 Gram matrix has NaN leverage scores; NaN ranks last and
/// ties go to the smaller index, so its universal set is keys 0..|U|, on the GPU as in the
/// reference, and the other head keeps its own set.
#[test]
fn overflowing_keys_give_the_first_keys_as_universal_set() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape::new(2, 10, 40, 8);
    let cfg = LevAttentionConfig::new(AttentionConfig::new(shape), 6);
    let (q, mut k, v) = data(&shape, 80);
    k[7 * 8 + 3] = 1e30;
    let gpu = check_on(&ctx, cfg, (&q, &k, &v));
    let cpu = lev_attention(&cfg, (&q, &k, &v)).unwrap();
    assert_eq!(gpu.universal[..6], [0, 1, 2, 3, 4, 5]);
    assert_eq!(gpu.universal, cpu.universal);
}
