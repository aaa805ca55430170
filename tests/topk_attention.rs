//! `topk_attention` (kNN attention) on the GPU against its CPU reference: selection (up to
//! f32 near-ties at the k-th place), outputs, k policies, masks, GQA, head dims, special
//! values, block splitting, and bad input.

use crate::common;

use knn_attention::attention::{AttentionConfig, Keep, SparseAttentionOutput};
use knn_attention::buffer::ElemType;
use knn_attention::kernels::topk_attention::{KPolicy, TopkAttention, TopkAttentionConfig};
use knn_attention::reference::dense_attention::{dense_attention, scores_row};
use knn_attention::reference::gather_attention::gather_attention;
use knn_attention::reference::topk_attention::topk_attention;
use knn_attention::tolerance::ATTENTION;
use knn_attention::{AttentionShape, Error, GpuContext, Mask};

/// Scores closer than this (relative to the row's largest |score|) count as tied: f32
/// scores from an f32 dot product may order them differently from the f64 reference.
const NEAR_TIE: f64 = 1e-5;

fn data(cfg: &TopkAttentionConfig, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let s = &cfg.attn.shape;
    let mut d = (
        common::normal_data(s.q_len(), seed),
        common::normal_data(s.kv_len(), seed + 1),
        common::normal_data(s.kv_len(), seed + 2),
    );
    if cfg.attn.storage == ElemType::F16 {
        d = (
            common::round_f16(&d.0),
            common::round_f16(&d.1),
            common::round_f16(&d.2),
        );
    }
    d
}

/// GPU vs reference. The selected sets may differ only in keys whose f64 score is within
/// NEAR_TIE of the reference's k-th score; the softmax·V part must match the reference run on
/// the GPU's own selection to the attention tolerance. Returns the GPU result.
fn check_on(
    ctx: &GpuContext,
    cfg: TopkAttentionConfig,
    (q, k, v): (&[f32], &[f32], &[f32]),
) -> SparseAttentionOutput {
    let what = format!("{cfg:?}");
    let gpu = TopkAttention::new(ctx, cfg).unwrap().run(q, k, v).unwrap();
    let cpu = topk_attention(&cfg, (q, k, v)).unwrap();
    let s = &cfg.attn.shape;
    let (k_rows, k_max) = cfg.k_rows();
    let total = gpu.slots;
    assert_eq!(total, cpu.slots);
    let mut swapped = 0;
    let mut gpu_indices = vec![u32::MAX; s.rows() * k_max];
    for row in 0..s.rows() {
        let (bh, i) = (row / s.n_q, row % s.n_q);
        let sc = scores_row(
            s,
            q,
            k,
            cfg.attn.scale,
            cfg.attn.mask,
            (bh / s.heads_q, bh % s.heads_q, i),
        );
        let g = &gpu.kept[row * total..][..total];
        let c = &cpu.kept[row * total..][..total];
        // Sinks and window slots are fixed by the rule: identical.
        assert_eq!(g[k_max..], c[k_max..], "{what}: row {row} sinks/window");
        let kr = k_rows[i] as usize;
        if g[..kr] != c[..kr] {
            let mut gs: Vec<u32> = g[..kr].iter().copied().filter(|&j| j != u32::MAX).collect();
            let mut cs: Vec<u32> = c[..kr].iter().copied().filter(|&j| j != u32::MAX).collect();
            gs.sort();
            cs.sort();
            if gs != cs {
                let kth = c[..kr]
                    .iter()
                    .filter(|&&j| j != u32::MAX)
                    .map(|&j| sc[j as usize])
                    .fold(f64::INFINITY, f64::min);
                let top = sc.iter().fold(0f64, |m, x| m.max(x.abs()));
                for &j in gs
                    .iter()
                    .filter(|j| !cs.contains(j))
                    .chain(cs.iter().filter(|j| !gs.contains(j)))
                {
                    assert!(
                        (sc[j as usize] - kth).abs() <= NEAR_TIE * top.max(1.0),
                        "{what}: row {row}: key {j} (score {}) differs from the reference selection, k-th score {kth}",
                        sc[j as usize]
                    );
                }
                swapped += 1;
            }
        }
        // Rebuild the GPU's top-k index list (skipped sink/window keys are re-added by the rule).
        gpu_indices[row * k_max..][..k_max].copy_from_slice(&g[..k_max]);
    }
    assert!(
        swapped * 50 <= s.rows(),
        "{what}: {swapped} rows differ from the reference selection"
    );
    let same =
        gather_attention(&cfg.gather(), (q, k, v), &gpu_indices, Some(&k_rows), None).unwrap();
    common::assert_close(&format!("{what}: out"), &gpu.out, &same.out, ATTENTION);
    common::assert_close(&format!("{what}: lse"), &gpu.lse, &same.lse, ATTENTION);
    common::assert_close(
        &format!("{what}: probs"),
        &gpu.probs,
        &same.probs,
        ATTENTION,
    );
    gpu
}

fn check(ctx: &GpuContext, cfg: TopkAttentionConfig, seed: u64) -> SparseAttentionOutput {
    let (q, k, v) = data(&cfg, seed);
    check_on(ctx, cfg, (&q, &k, &v))
}

/// Key counts below, at and above the 64-key tile and 1024-key span; query counts around the
/// 16-query tile; k = 1, k = √n and k ≥ n.
#[test]
fn gpu_matches_reference_across_tiles_and_k() {
    let ctx = gpu_or_skip!();
    for (n_q, n_kv) in [
        (1usize, 1usize),
        (15, 63),
        (16, 64),
        (17, 65),
        (3, 1023),
        (2, 1025),
        (20, 2100),
    ] {
        for k in [KPolicy::Fixed(1), KPolicy::Sqrt, KPolicy::Fixed(n_kv + 5)] {
            let attn = AttentionConfig::new(AttentionShape::new(2, n_q, n_kv, 16));
            check(
                &ctx,
                TopkAttentionConfig::new(attn, k),
                (n_q * 31 + n_kv) as u64,
            );
        }
    }
}

/// k ≥ n keeps every key: exact dense attention.
#[test]
fn k_at_least_n_is_dense_attention() {
    let ctx = gpu_or_skip!();
    for mask in [Mask::None, Mask::Causal { offset: 0 }] {
        let attn = AttentionConfig::new(AttentionShape::new(2, 40, 40, 32)).with_mask(mask);
        let cfg = TopkAttentionConfig::new(attn, KPolicy::Fixed(40));
        let (q, k, v) = data(&cfg, 77);
        let gpu = check_on(&ctx, cfg, (&q, &k, &v));
        let dense = dense_attention(&attn.shape, &q, &k, &v, attn.scale, mask).unwrap();
        common::assert_close("out vs dense", &gpu.out, &dense.out, ATTENTION);
        common::assert_close("lse vs dense", &gpu.lse, &dense.lse, ATTENTION);
    }
}

/// Causal rows (the first ones see fewer keys than k), prefill after a cache, per-row
/// policies (√n and α·n^C follow each row's causal length), sinks and windows.
#[test]
fn causal_rows_policies_sinks_and_windows() {
    let ctx = gpu_or_skip!();
    let policies = [
        KPolicy::Fixed(8),
        KPolicy::Sqrt,
        KPolicy::Power { alpha: 1.0, c: 0.6 },
    ];
    for (i, k) in policies.into_iter().enumerate() {
        for offset in [0, 50] {
            for keep in [
                Keep::default(),
                Keep {
                    sinks: 2,
                    window: 5,
                },
            ] {
                let attn = AttentionConfig::new(AttentionShape::new(2, 70, 70 + offset, 24))
                    .with_mask(Mask::Causal { offset });
                let cfg = TopkAttentionConfig {
                    keep,
                    ..TopkAttentionConfig::new(attn, k)
                };
                let gpu = check(&ctx, cfg, 900 + i as u64);
                // Row 0 of a plain causal mask sees one key: it keeps exactly that key.
                if offset == 0 && keep == Keep::default() {
                    assert_eq!(gpu.kept[0], 0);
                    assert!(gpu.kept[1..gpu.slots].iter().all(|&j| j == u32::MAX));
                }
            }
        }
    }
}

#[test]
fn head_dims_and_gqa() {
    let ctx = gpu_or_skip!();
    for d in [32, 64, 80, 96, 128, 256] {
        let attn = AttentionConfig::new(AttentionShape::new(1, 17, 130, d));
        check(
            &ctx,
            TopkAttentionConfig::new(attn, KPolicy::Fixed(12)),
            d as u64,
        );
    }
    for (hq, hkv) in [(1, 1), (2, 1), (4, 1), (8, 1), (3, 1), (6, 2)] {
        let shape = AttentionShape {
            batch: 2,
            heads_q: hq,
            heads_kv: hkv,
            n_q: 18,
            n_kv: 90,
            head_dim: 16,
        };
        let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 72 });
        check(
            &ctx,
            TopkAttentionConfig::new(attn, KPolicy::Fixed(9)),
            50 + hq as u64,
        );
    }
}

#[test]
fn f16_storage() {
    let ctx = gpu_or_skip!();
    let attn =
        AttentionConfig::new(AttentionShape::new(2, 20, 300, 64)).with_storage(ElemType::F16);
    let cfg = TopkAttentionConfig::new(attn, KPolicy::Sqrt);
    if !ctx.capabilities().f16 {
        assert!(matches!(
            TopkAttention::new(&ctx, cfg),
            Err(Error::Unsupported { .. })
        ));
        return;
    }
    check(&ctx, cfg, 1234);
}

/// A tiny block budget forces one 16-query tile per block: the same result as one block.
#[test]
fn many_blocks_equal_one_block() {
    let ctx = gpu_or_skip!();
    let attn = AttentionConfig::new(AttentionShape::new(3, 50, 200, 16))
        .with_mask(Mask::Causal { offset: 150 });
    // Blocked selection: the fused one has no blocks.
    let one = TopkAttentionConfig {
        selection: knn_attention::kernels::topk_attention::Selection::Blocked,
        ..TopkAttentionConfig::new(attn, KPolicy::Fixed(10))
    };
    let many = TopkAttentionConfig {
        block_bytes: 16 * 200 * 4,
        ..one
    };
    let (q, k, v) = data(&one, 5);
    let a = TopkAttention::new(&ctx, one)
        .unwrap()
        .run(&q, &k, &v)
        .unwrap();
    let b = check_on(&ctx, many, (&q, &k, &v));
    assert_eq!(a, b);
}

/// All keys equal: ties go to the smallest indices, on the GPU as in the reference. A NaN
/// key is never selected ahead of a number; NaN in a kept key makes its row NaN.
#[test]
fn ties_and_nan_follow_the_rules() {
    let ctx = gpu_or_skip!();
    let attn = AttentionConfig::new(AttentionShape::new(1, 4, 50, 8));
    let cfg = TopkAttentionConfig::new(attn, KPolicy::Fixed(5));
    let q = common::normal_data(32, 1);
    let mut k: Vec<f32> = (0..50 * 8).map(|i| (i % 8) as f32 * 0.25).collect();
    let v = common::normal_data(400, 2);
    let gpu = check_on(&ctx, cfg, (&q, &k, &v));
    for row in 0..4 {
        assert_eq!(&gpu.kept[row * 5..][..5], &[0, 1, 2, 3, 4]);
    }
    // Key 2 becomes NaN: it drops to last place, so keys 0, 1, 3, 4, 5 are kept.
    k[2 * 8 + 1] = f32::NAN;
    let gpu = check_on(&ctx, cfg, (&q, &k, &v));
    assert_eq!(&gpu.kept[..5], &[0, 1, 3, 4, 5]);
    assert!(gpu.out.iter().all(|x| x.is_finite()));
    // With k = 50 the NaN key is kept (fewer than k numbers): every row is NaN.
    let all = TopkAttentionConfig::new(attn, KPolicy::Fixed(50));
    let gpu = check_on(&ctx, all, (&q, &k, &v));
    assert!(gpu.lse.iter().all(|x| x.is_nan()));
}

#[test]
fn bad_input_is_a_typed_error() {
    let ctx = gpu_or_skip!();
    let attn = AttentionConfig::new(AttentionShape::new(1, 4, 50, 8));
    let bad = |k| TopkAttention::new(&ctx, TopkAttentionConfig::new(attn, k)).err();
    assert!(matches!(
        bad(KPolicy::Fixed(0)),
        Some(Error::InvalidShape { arg: "k", .. })
    ));
    assert!(matches!(
        bad(KPolicy::Power { alpha: 1.0, c: 1.5 }),
        Some(Error::InvalidShape { arg: "c", .. })
    ));
    assert!(matches!(
        bad(KPolicy::Power {
            alpha: -1.0,
            c: 0.5
        }),
        Some(Error::InvalidShape { arg: "alpha", .. })
    ));
    let tiny = TopkAttentionConfig {
        block_bytes: 100,
        selection: knn_attention::kernels::topk_attention::Selection::Blocked,
        ..TopkAttentionConfig::new(attn, KPolicy::Sqrt)
    };
    assert!(matches!(
        TopkAttention::new(&ctx, tiny),
        Err(Error::BufferTooLarge { .. })
    ));
    let kernel = TopkAttention::new(&ctx, TopkAttentionConfig::new(attn, KPolicy::Sqrt)).unwrap();
    assert!(matches!(
        kernel.run(&[0.0; 31], &[0.0; 400], &[0.0; 400]),
        Err(Error::InvalidShape { arg: "q", .. })
    ));
}

#[test]
fn k_policies_follow_their_formulas() {
    assert_eq!(KPolicy::Sqrt.k_for(2048), 46); // 45² = 2025 < 2048 ≤ 46²
    assert_eq!(KPolicy::Sqrt.k_for(2025), 45);
    assert_eq!(KPolicy::Sqrt.k_for(1), 1);
    assert_eq!(KPolicy::Sqrt.k_for(0), 0);
    assert_eq!(KPolicy::Fixed(64).k_for(10), 10);
    let p = KPolicy::Power { alpha: 2.0, c: 0.5 };
    assert_eq!(p.k_for(100), 20);
    assert_eq!(p.k_for(101), 21); // ⌈2·√101⌉ = ⌈20.1⌉
}

/// Real attention (MiniLM layer 3, 12 heads × 512 tokens): the GPU equals the reference for
/// the same k, the output error against the stored exact output falls as k grows, and k = n
/// is exact.
#[test]
fn real_data_error_falls_with_k() {
    let ctx = gpu_or_skip!();
    let Some(c) = common::data::load("gpl3-layer3.safetensors") else {
        return;
    };
    let shape = AttentionShape::new(c.heads, c.tokens, c.tokens, c.head_dim);
    let attn = AttentionConfig::new(shape).with_scale(c.scale);
    check_on(
        &ctx,
        TopkAttentionConfig::new(attn, KPolicy::Fixed(32)),
        (&c.q, &c.k, &c.v),
    );
    let d = c.head_dim;
    let mut last = f64::INFINITY;
    for k in [8, 32, 128, c.tokens] {
        let cfg = TopkAttentionConfig::new(attn, KPolicy::Fixed(k));
        let r = TopkAttention::new(&ctx, cfg)
            .unwrap()
            .run(&c.q, &c.k, &c.v)
            .unwrap();
        let err: f64 = (0..shape.rows())
            .map(|row| {
                let (o, e) = (&r.out[row * d..][..d], &c.out[row * d..][..d]);
                let diff: f64 = o.iter().zip(e).map(|(a, b)| f64::from(a - b).powi(2)).sum();
                let norm: f64 = e.iter().map(|b| f64::from(*b).powi(2)).sum();
                (diff / norm).sqrt()
            })
            .sum::<f64>()
            / shape.rows() as f64;
        assert!(
            err < last,
            "k = {k}: mean relative error {err} did not fall below {last}"
        );
        last = err;
        if k == c.tokens {
            common::assert_close("k = n vs exact", &r.out, &c.out, ATTENTION);
            common::assert_close("k = n lse vs exact", &r.lse, &c.lse, ATTENTION);
        }
    }
}

/// `encode` without kept outputs (the inference path) gives the same attention as `run`.
#[test]
fn encode_without_kept_outputs() {
    use knn_attention::GpuBuffer;
    use knn_attention::attention::{AttentionOutputs, Qkv};
    let ctx = gpu_or_skip!();
    let attn = AttentionConfig::new(AttentionShape::new(2, 20, 80, 16))
        .with_mask(Mask::Causal { offset: 60 });
    let cfg = TopkAttentionConfig::new(attn, KPolicy::Sqrt);
    let (q, k, v) = data(&cfg, 31);
    let kernel = TopkAttention::new(&ctx, cfg).unwrap();
    let want = kernel.run(&q, &k, &v).unwrap();
    let b = |x: &[f32]| GpuBuffer::from_slice(&ctx, x, "t").unwrap();
    let (qb, kb, vb) = (b(&q), b(&k), b(&v));
    let out = AttentionOutputs::new(&ctx, &attn.shape).unwrap();
    let mut enc = ctx.encoder("topk_attention");
    kernel
        .encode(&mut enc, Qkv::f32(&qb, &kb, &vb), &out, None)
        .unwrap();
    ctx.submit_and_wait(enc).unwrap();
    let got = out.read(&ctx).unwrap();
    assert_eq!(got.out, want.out);
    assert_eq!(got.lse, want.lse);
}

/// The fused selection (running top-k in workgroup memory) and the blocked one (scores
/// through global memory, radix select) use the same f32 scores and tie rules: identical
/// results, bit for bit, including NaN keys, ties, causal rows, GQA, sinks and windows.
#[test]
fn fused_and_blocked_selection_agree_bitwise() {
    use knn_attention::kernels::topk_attention::Selection;
    let ctx = gpu_or_skip!();
    let shapes = [
        (
            AttentionShape::new(2, 33, 130, 16),
            Mask::Causal { offset: 97 },
            KPolicy::Fixed(32),
            Keep::default(),
        ),
        (
            AttentionShape {
                batch: 2,
                heads_q: 4,
                heads_kv: 2,
                n_q: 20,
                n_kv: 70,
                head_dim: 24,
            },
            Mask::None,
            KPolicy::Sqrt,
            Keep {
                sinks: 2,
                window: 3,
            },
        ),
        (
            AttentionShape::new(1, 17, 17, 8),
            Mask::Causal { offset: 0 },
            KPolicy::Fixed(1),
            Keep::default(),
        ),
        // The largest fused k, over many key tiles.
        (
            AttentionShape::new(2, 40, 300, 32),
            Mask::Causal { offset: 260 },
            KPolicy::Fixed(64),
            Keep::default(),
        ),
    ];
    for (i, (shape, mask, k, keep)) in shapes.into_iter().enumerate() {
        let attn = AttentionConfig::new(shape).with_mask(mask);
        let base = TopkAttentionConfig {
            keep,
            ..TopkAttentionConfig::new(attn, k)
        };
        let (q, mut kk, v) = data(&base, 60 + i as u64);
        // Exact ties (a duplicated key) and a NaN key.
        let d = shape.head_dim;
        kk.copy_within(0..d, 5 * d);
        kk[9 * d] = f32::NAN;
        let fused = TopkAttentionConfig {
            selection: Selection::Fused,
            ..base
        };
        let blocked = TopkAttentionConfig {
            selection: Selection::Blocked,
            ..base
        };
        let a = TopkAttention::new(&ctx, fused)
            .unwrap()
            .run(&q, &kk, &v)
            .unwrap();
        let b = TopkAttention::new(&ctx, blocked)
            .unwrap()
            .run(&q, &kk, &v)
            .unwrap();
        assert_eq!(a.kept, b.kept, "case {i}: kept keys");
        let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.out), bits(&b.out), "case {i}: out");
        assert_eq!(bits(&a.lse), bits(&b.lse), "case {i}: lse");
    }
    let too_big = TopkAttentionConfig {
        selection: Selection::Fused,
        ..TopkAttentionConfig::new(
            AttentionConfig::new(AttentionShape::new(1, 4, 100, 8)),
            KPolicy::Fixed(65),
        )
    };
    assert!(matches!(
        TopkAttention::new(&ctx, too_big),
        Err(Error::InvalidShape { arg: "k", .. })
    ));
}
