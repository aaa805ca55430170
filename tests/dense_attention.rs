//! CPU reference of exact dense attention: hand-computed cases, invariants, shapes, and the
//! real captures' stored outputs.

use crate::common;

use approx::assert_relative_eq;
use knn_attention::reference::dense_attention::{dense_attention, probabilities_row};
use knn_attention::{AttentionShape, Error, Mask};

#[test]
fn hand_computed_two_keys() {
    // scores 0 and ln 3 → p = (1/4, 3/4); out = 1/4·1 + 3/4·5 = 4; lse = ln 4.
    let shape = AttentionShape::new(1, 1, 2, 1);
    let r = dense_attention(
        &shape,
        &[1.0],
        &[0.0, 3f32.ln()],
        &[1.0, 5.0],
        1.0,
        Mask::None,
    )
    .unwrap();
    assert_relative_eq!(r.out[0], 4.0, max_relative = 1e-6);
    assert_relative_eq!(r.lse[0], 4f32.ln(), max_relative = 1e-6);
}

#[test]
fn hand_computed_scale_and_causal() {
    // d = 2, q = (1, 1), keys (1, 0), (0, 2), scale 0.5 → scores 0.5, 1.0.
    let shape = AttentionShape::new(1, 2, 2, 2);
    let q = [1.0, 1.0, 1.0, 1.0];
    let k = [1.0, 0.0, 0.0, 2.0];
    let v = [2.0, 0.0, 0.0, 4.0];
    let r = dense_attention(&shape, &q, &k, &v, 0.5, Mask::Causal { offset: 0 }).unwrap();
    // Row 0 sees key 0 only.
    assert_eq!(&r.out[..2], &[2.0, 0.0]);
    assert_relative_eq!(r.lse[0], 0.5, max_relative = 1e-6);
    // Row 1 sees both: p1 = e^1 / (e^0.5 + e^1).
    let p1 = 1f64.exp() / (0.5f64.exp() + 1f64.exp());
    assert_relative_eq!(r.out[2], (2.0 * (1.0 - p1)) as f32, max_relative = 1e-6);
    assert_relative_eq!(r.out[3], (4.0 * p1) as f32, max_relative = 1e-6);
}

fn random_case(shape: &AttentionShape, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    (
        common::normal_data(shape.q_len(), seed),
        common::normal_data(shape.kv_len(), seed + 1),
        common::normal_data(shape.kv_len(), seed + 2),
    )
}

#[test]
fn probability_rows_sum_to_one_and_output_is_convex() {
    let shape = AttentionShape {
        batch: 2,
        heads_q: 4,
        heads_kv: 2,
        n_q: 9,
        n_kv: 17,
        head_dim: 8,
    };
    let (q, k, v) = random_case(&shape, 10);
    for mask in [Mask::None, Mask::Causal { offset: 8 }] {
        let r = dense_attention(&shape, &q, &k, &v, 0.35, mask).unwrap();
        for b in 0..2 {
            for h in 0..4 {
                for i in 0..9 {
                    let p = probabilities_row(&shape, &q, &k, 0.35, mask, (b, h, i));
                    assert_eq!(p.len(), mask.visible_keys(i, 17));
                    assert_relative_eq!(p.iter().sum::<f64>(), 1.0, max_relative = 1e-12);
                    assert!(p.iter().all(|&x| x > 0.0));
                }
            }
        }
        // Each output coordinate lies within the range of the visible values.
        let (vmin, vmax) = v
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        assert!(r.out.iter().all(|&o| o >= vmin - 1e-5 && o <= vmax + 1e-5));
    }
}

#[test]
fn causal_rows_ignore_future_keys() {
    let shape = AttentionShape::new(2, 6, 10, 4);
    let (q, k, v) = random_case(&shape, 20);
    let offset = 4; // query i sees keys 0..=i+4
    let mask = Mask::Causal { offset };
    let base = dense_attention(&shape, &q, &k, &v, 0.5, mask).unwrap();
    // Overwrite every key/value that query 0 must not see.
    let (mut k2, mut v2) = (k.clone(), v.clone());
    for h in 0..2 {
        for j in offset + 1..10 {
            for c in 0..4 {
                k2[(h * 10 + j) * 4 + c] = 1e3;
                v2[(h * 10 + j) * 4 + c] = -1e3;
            }
        }
    }
    let moved = dense_attention(&shape, &q, &k2, &v2, 0.5, mask).unwrap();
    for h in 0..2 {
        let row = h * 6; // query 0 of each head
        assert_eq!(base.out[row * 4..][..4], moved.out[row * 4..][..4]);
        assert_eq!(base.lse[row], moved.lse[row]);
        // The last query sees everything, so it must have changed.
        assert_ne!(base.out[(row + 5) * 4], moved.out[(row + 5) * 4]);
    }
}

#[test]
fn grouped_query_heads_equal_repeated_kv_heads() {
    for (heads_q, heads_kv) in [(6, 2), (6, 3), (8, 1), (4, 4)] {
        let shape = AttentionShape {
            batch: 2,
            heads_q,
            heads_kv,
            n_q: 5,
            n_kv: 7,
            head_dim: 3,
        };
        let (q, k, v) = random_case(&shape, 30);
        let g = heads_q / heads_kv;
        // Expand K and V so that every query head has its own copy.
        let expand = |x: &[f32]| -> Vec<f32> {
            let per_head = 7 * 3;
            (0..2)
                .flat_map(|b| (0..heads_q).map(move |h| (b, h)))
                .flat_map(|(b, h)| x[(b * heads_kv + h / g) * per_head..][..per_head].to_vec())
                .collect()
        };
        let full = AttentionShape {
            heads_kv: heads_q,
            ..shape
        };
        let a = dense_attention(&shape, &q, &k, &v, 0.6, Mask::None).unwrap();
        let b = dense_attention(&full, &q, &expand(&k), &expand(&v), 0.6, Mask::None).unwrap();
        assert_eq!(a, b, "heads {heads_q}/{heads_kv}");
    }
}

#[test]
fn empty_key_set_gives_zero_output_and_neg_inf_lse() {
    let shape = AttentionShape::new(1, 2, 0, 4);
    let r = dense_attention(&shape, &[1.0; 8], &[], &[], 1.0, Mask::None).unwrap();
    assert!(r.out.iter().all(|&x| x == 0.0));
    assert!(r.lse.iter().all(|&x| x == f32::NEG_INFINITY));
}

#[test]
fn bad_shapes_are_typed_errors() {
    let shape = AttentionShape {
        batch: 1,
        heads_q: 3,
        heads_kv: 2,
        n_q: 1,
        n_kv: 1,
        head_dim: 1,
    };
    let e = dense_attention(&shape, &[0.0; 3], &[0.0; 2], &[0.0; 2], 1.0, Mask::None);
    assert!(matches!(
        e,
        Err(Error::InvalidShape {
            arg: "heads_kv",
            ..
        })
    ));
    let shape = AttentionShape::new(1, 2, 2, 2);
    let e = dense_attention(&shape, &[0.0; 3], &[0.0; 4], &[0.0; 4], 1.0, Mask::None);
    assert!(matches!(e, Err(Error::InvalidShape { arg: "q", .. })));
    let e = dense_attention(&shape, &[0.0; 4], &[0.0; 4], &[0.0; 5], 1.0, Mask::None);
    assert!(matches!(e, Err(Error::InvalidShape { arg: "v", .. })));
}

/// The reference reproduces the exact outputs stored with the real captures (computed in f64
/// by numpy from the same f16 inputs); differences are f32 output rounding only.
#[test]
fn matches_stored_outputs_of_real_model() {
    for file in ["gpl3-layer0.safetensors", "gpl3-layer5.safetensors"] {
        let Some(c) = common::data::load(file) else {
            return;
        };
        let shape = AttentionShape::new(c.heads, c.tokens, c.tokens, c.head_dim);
        let r = dense_attention(&shape, &c.q, &c.k, &c.v, c.scale, Mask::None).unwrap();
        for (a, b) in r.out.iter().zip(&c.out) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{file}: {a} vs {b}"
            );
        }
        for (a, b) in r.lse.iter().zip(&c.lse) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{file}: lse {a} vs {b}"
            );
        }
    }
}

// ---- GPU kernel vs the reference ----

use knn_attention::attention::{AttentionConfig, AttentionOutputs, Qkv};
use knn_attention::buffer::{ElemType, GpuBuffer};
use knn_attention::kernels::dense_attention::DenseAttention;
use knn_attention::tolerance::ATTENTION;

/// Runs the GPU kernel and the reference on the same (storage-rounded) data.
fn check_gpu(ctx: &knn_attention::GpuContext, cfg: AttentionConfig, seed: u64) {
    let (mut q, mut k, mut v) = random_case(&cfg.shape, seed);
    if cfg.storage == ElemType::F16 {
        (q, k, v) = (
            common::round_f16(&q),
            common::round_f16(&k),
            common::round_f16(&v),
        );
    }
    check_gpu_on(ctx, cfg, &q, &k, &v);
}

fn check_gpu_on(
    ctx: &knn_attention::GpuContext,
    cfg: AttentionConfig,
    q: &[f32],
    k: &[f32],
    v: &[f32],
) {
    check_kernel_on(&DenseAttention::new(ctx, cfg).unwrap(), q, k, v);
}

fn check_kernel_on(kernel: &DenseAttention, q: &[f32], k: &[f32], v: &[f32]) {
    let cfg = *kernel.config();
    let got = kernel.run(q, k, v).unwrap();
    let want = dense_attention(&cfg.shape, q, k, v, cfg.scale, cfg.mask).unwrap();
    let what = format!("{cfg:?}, {} key splits", kernel.key_splits());
    common::assert_close(&format!("out {what}"), &got.out, &want.out, ATTENTION);
    common::assert_close(&format!("lse {what}"), &got.lse, &want.lse, ATTENTION);
}

/// Query counts and key counts just below, at and above the 16-query and 64-key tiles.
#[test]
fn gpu_matches_reference_across_tile_boundaries() {
    let ctx = gpu_or_skip!();
    for (n_q, n_kv) in [
        (1usize, 1usize),
        (15, 63),
        (16, 64),
        (17, 65),
        (33, 130),
        (5, 200),
    ] {
        for mask in [
            Mask::None,
            Mask::Causal {
                offset: n_kv.saturating_sub(n_q),
            },
        ] {
            let shape = AttentionShape::new(2, n_q, n_kv, 32);
            check_gpu(
                &ctx,
                AttentionConfig::new(shape).with_mask(mask),
                10 + n_q as u64,
            );
        }
    }
}

#[test]
fn gpu_matches_reference_for_head_dims_and_gqa() {
    let ctx = gpu_or_skip!();
    for d in [1, 32, 64, 72, 80, 96, 128, 256] {
        let shape = AttentionShape::new(1, 18, 70, d);
        check_gpu(&ctx, AttentionConfig::new(shape), 100 + d as u64);
    }
    for (hq, hkv) in [(2, 1), (4, 1), (8, 1), (3, 1), (6, 2), (8, 8)] {
        let shape = AttentionShape {
            batch: 2,
            heads_q: hq,
            heads_kv: hkv,
            n_q: 20,
            n_kv: 40,
            head_dim: 16,
        };
        let cfg = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 20 });
        check_gpu(&ctx, cfg, 200 + hq as u64);
    }
}

/// Plain causal self-attention (offset 0), a chunk after a cache (offset > 0), and rows that
/// see every key because the offset is past the end.
#[test]
fn gpu_causal_offsets() {
    let ctx = gpu_or_skip!();
    for offset in [0, 7, 64, 1000] {
        let shape = AttentionShape::new(2, 40, 90, 24);
        let cfg = AttentionConfig::new(shape)
            .with_mask(Mask::Causal { offset })
            .with_scale(0.3);
        check_gpu(&ctx, cfg, 300 + offset as u64);
    }
}

#[test]
fn gpu_f16_storage() {
    let ctx = gpu_or_skip!();
    if !ctx.capabilities().f16 {
        let shape = AttentionShape::new(1, 4, 4, 8);
        let cfg = AttentionConfig::new(shape).with_storage(ElemType::F16);
        assert!(matches!(
            DenseAttention::new(&ctx, cfg),
            Err(Error::Unsupported { .. })
        ));
        return;
    }
    for mask in [Mask::None, Mask::Causal { offset: 0 }] {
        let shape = AttentionShape::new(2, 33, 77, 64);
        let cfg = AttentionConfig::new(shape)
            .with_mask(mask)
            .with_storage(ElemType::F16);
        check_gpu(&ctx, cfg, 400);
    }
}

/// NaN or ±∞ in keys a row sees makes that row NaN (or moves it to the ∞ key) exactly as in
/// the reference; NaN in keys and values a causal row cannot see leaves it untouched.
#[test]
fn gpu_special_values_follow_the_reference() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape::new(1, 20, 20, 8);
    let (q, mut k, mut v) = random_case(&shape, 500);
    // Key 10 and value 12 are NaN: rows 0..10 never see them.
    k[10 * 8 + 3] = f32::NAN;
    v[12 * 8 + 1] = f32::NAN;
    // Key 5 has a −∞ component: scores of key 5 become ±∞ (or NaN where q is 0).
    k[5 * 8] = f32::NEG_INFINITY;
    let cfg = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 0 });
    check_gpu_on(&ctx, cfg, &q, &k, &v);
    let got = DenseAttention::new(&ctx, cfg)
        .unwrap()
        .run(&q, &k, &v)
        .unwrap();
    // Rows 0..5 see neither the infinite nor the NaN keys: finite outputs.
    assert!(got.out[..5 * 8].iter().all(|x| x.is_finite()));
    // Rows from 10 on see the NaN key: NaN.
    assert!(got.lse[10..].iter().all(|x| x.is_nan()));
}

/// Split-K (decode): spans around the 64-key tile, empty trailing spans (40 spans of a short
/// cache), rows that see only the first span (causal offset 0), GQA; and `new` splits a decode
/// shape by itself.
#[test]
fn gpu_split_keys_match_reference() {
    let ctx = gpu_or_skip!();
    for (n_q, n_kv) in [(1, 65), (1, 1000), (5, 1000), (17, 300)] {
        for splits in [2, 7, 40] {
            for offset in [n_kv - n_q, 0] {
                let shape = AttentionShape {
                    batch: 2,
                    heads_q: 4,
                    heads_kv: 2,
                    n_q,
                    n_kv,
                    head_dim: 32,
                };
                let cfg = AttentionConfig::new(shape).with_mask(Mask::Causal { offset });
                let (q, k, v) = random_case(&shape, (n_kv + splits) as u64);
                let kernel = DenseAttention::with_key_splits(&ctx, cfg, splits).unwrap();
                assert_eq!(kernel.key_splits(), splits);
                check_kernel_on(&kernel, &q, &k, &v);
            }
        }
    }
    let shape = AttentionShape::new(2, 1, 5000, 64);
    let cfg = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 4999 });
    let kernel = DenseAttention::new(&ctx, cfg).unwrap();
    let cpu = ctx.is_cpu_adapter();
    assert_eq!(
        kernel.key_splits() > 1,
        !cpu,
        "decode splits the keys on GPUs only"
    );
    let (q, k, v) = random_case(&shape, 77);
    check_kernel_on(&kernel, &q, &k, &v);
    // Prefill-sized shapes do not split.
    let big = AttentionShape::new(8, 1024, 1024, 64);
    assert_eq!(
        DenseAttention::new(&ctx, AttentionConfig::new(big))
            .unwrap()
            .key_splits(),
        1
    );
}

/// Special values across spans: NaN in a key of the third span poisons exactly the rows that
/// see it; rows that see only earlier spans stay finite and exact.
#[test]
fn gpu_split_keys_special_values() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape::new(1, 40, 300, 8);
    let (q, mut k, v) = random_case(&shape, 600);
    k[200 * 8 + 2] = f32::NAN;
    let cfg = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 180 });
    let kernel = DenseAttention::with_key_splits(&ctx, cfg, 4).unwrap();
    check_kernel_on(&kernel, &q, &k, &v);
    let got = kernel.run(&q, &k, &v).unwrap();
    // Row i sees keys ≤ i + 180: rows < 20 do not see key 200.
    assert!(got.lse[..20].iter().all(|x| x.is_finite()));
    assert!(got.lse[20..].iter().all(|x| x.is_nan()));
    assert!(matches!(
        DenseAttention::with_key_splits(&ctx, cfg, 0),
        Err(Error::InvalidShape { .. })
    ));
}

#[test]
fn gpu_matches_stored_outputs_of_real_model() {
    let ctx = gpu_or_skip!();
    let file = "gpl3-layer3.safetensors";
    let Some(c) = common::data::load(file) else {
        return;
    };
    let shape = AttentionShape::new(c.heads, c.tokens, c.tokens, c.head_dim);
    let cfg = AttentionConfig::new(shape).with_scale(c.scale);
    let got = DenseAttention::new(&ctx, cfg)
        .unwrap()
        .run(&c.q, &c.k, &c.v)
        .unwrap();
    common::assert_close(file, &got.out, &c.out, ATTENTION);
    common::assert_close(file, &got.lse, &c.lse, ATTENTION);
}

#[test]
fn gpu_bad_input_is_a_typed_error() {
    let ctx = gpu_or_skip!();
    let bad = |shape| DenseAttention::new(&ctx, AttentionConfig::new(shape)).err();
    assert!(matches!(
        bad(AttentionShape::new(1, 2, 2, 300)),
        Some(Error::InvalidShape {
            arg: "head_dim",
            ..
        })
    ));
    assert!(matches!(
        bad(AttentionShape::new(1, 2, 0, 8)),
        Some(Error::InvalidShape { arg: "n_kv", .. })
    ));
    let cfg = AttentionConfig::new(AttentionShape::new(1, 2, 2, 4)).with_scale(f32::NAN);
    assert!(matches!(
        DenseAttention::new(&ctx, cfg).err(),
        Some(Error::InvalidShape { arg: "scale", .. })
    ));
    let shape = AttentionShape::new(1, 2, 3, 4);
    let kernel = DenseAttention::new(&ctx, AttentionConfig::new(shape)).unwrap();
    let q = GpuBuffer::<f32>::zeroed(&ctx, 8, "q").unwrap();
    let kv = GpuBuffer::<f32>::zeroed(&ctx, 11, "k").unwrap();
    let out = AttentionOutputs::new(&ctx, &shape).unwrap();
    let mut enc = ctx.encoder("bad");
    let e = kernel.encode(&mut enc, Qkv::f32(&q, &kv, &kv), &out);
    assert!(matches!(e, Err(Error::InvalidShape { arg: "k", .. })));
    let h = GpuBuffer::<u16>::zeroed(&ctx, 12, "k16").unwrap();
    let e = kernel.encode(
        &mut enc,
        Qkv {
            q: knn_attention::buffer::Elems::F32(&q),
            k: knn_attention::buffer::Elems::F16(&h),
            v: knn_attention::buffer::Elems::F16(&h),
        },
        &out,
    );
    assert!(matches!(e, Err(Error::InvalidShape { arg: "k", .. })));
    let small = AttentionOutputs::new(&ctx, &AttentionShape::new(1, 1, 3, 4)).unwrap();
    let k = GpuBuffer::<f32>::zeroed(&ctx, 12, "k").unwrap();
    let e = kernel.encode(&mut enc, Qkv::f32(&q, &k, &k), &small);
    assert!(matches!(e, Err(Error::InvalidShape { arg: "out", .. })));
}
