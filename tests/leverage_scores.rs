//! `leverage_scores` on the GPU against the f64 reference, the reference against an SVD,
//! the invariant Σσ = rank(K) (full rank, rank-deficient, duplicated keys), streaming equal to
//! batch, and bad input.

use crate::common;

use knn_attention::Error;
use knn_attention::GpuBuffer;
use knn_attention::kernels::leverage_scores::{LeverageConfig, LeverageScores};
use knn_attention::reference::leverage_scores::leverage_scores;

/// Relative agreement of f32 GPU scores with the f64 reference: the ridge bounds the
/// condition number of G + λI by ~d / ridge = 1.6e4 here, times f32 rounding ≈ 1e-3.
const REL: f64 = 2e-3;

fn assert_scores(what: &str, got: &[f32], want: &[f64]) {
    let scale = want.iter().fold(0f64, |m, x| m.max(x.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= REL * scale,
            "{what}: key {i}: {g} vs {w}"
        );
    }
}

/// Keys of rank `r` in dimension `d`: a random `[n, r]` times `[r, d]`, per head.
fn low_rank(heads: usize, n: usize, d: usize, r: usize, seed: u64) -> Vec<f32> {
    let a = common::normal_data(heads * n * r, seed);
    let b = common::normal_data(heads * r * d, seed + 1);
    let mut k = vec![0f32; heads * n * d];
    for h in 0..heads {
        for i in 0..n {
            for c in 0..d {
                k[(h * n + i) * d + c] = (0..r)
                    .map(|j| a[(h * n + i) * r + j] * b[(h * r + j) * d + c])
                    .sum();
            }
        }
    }
    k
}

#[test]
fn gpu_matches_reference_and_sums_to_rank() {
    let ctx = gpu_or_skip!();
    for (heads, n, d) in [(2, 300, 16), (3, 1000, 64), (1, 257, 128), (2, 40, 8)] {
        let cfg = LeverageConfig::new(heads, n, d);
        let k = common::normal_data(heads * n * d, (n + d) as u64);
        let got = LeverageScores::new(&ctx, cfg).unwrap().run(&k).unwrap();
        let want = leverage_scores(&k, &cfg, n).unwrap();
        assert_scores(&format!("{heads}×{n}×{d}"), &got, &want);
        for h in 0..heads {
            let sum: f64 = want[h * n..][..n].iter().sum();
            // Σ μ/(μ + λ) over the d eigenvalues μ of G: d minus a ridge-sized deficit.
            assert!(
                (sum - d as f64).abs() < 0.02 * d as f64,
                "Σσ = {sum}, rank {d}"
            );
        }
    }
}

/// Rank-deficient keys (rank 5 in d = 32) sum to 5; duplicating every key halves each score.
#[test]
fn rank_deficient_and_duplicated_keys() {
    let ctx = gpu_or_skip!();
    let (n, d, r) = (200, 32, 5);
    let cfg = LeverageConfig::new(1, n, d);
    let k = low_rank(1, n, d, r, 70);
    let got = LeverageScores::new(&ctx, cfg).unwrap().run(&k).unwrap();
    let want = leverage_scores(&k, &cfg, n).unwrap();
    assert_scores("rank 5", &got, &want);
    let sum: f64 = got.iter().map(|&x| f64::from(x)).sum();
    assert!(
        (sum - r as f64).abs() < 0.05 * r as f64,
        "Σσ = {sum}, rank {r}"
    );

    let full = common::normal_data(n * d, 71);
    let doubled: Vec<f32> = full.iter().chain(&full).copied().collect();
    let one = leverage_scores(&full, &LeverageConfig::new(1, n, d), n).unwrap();
    let cfg2 = LeverageConfig::new(1, 2 * n, d);
    let two = LeverageScores::new(&ctx, cfg2)
        .unwrap()
        .run(&doubled)
        .unwrap();
    for i in 0..n {
        // G doubles, so σ halves; the ridge is relative, so it doubles with G.
        assert!((f64::from(two[i]) - one[i] / 2.0).abs() < REL, "key {i}");
        assert_eq!(two[i], two[n + i], "duplicates score alike");
    }
}

/// With a negligible ridge, leverage scores are the squared row norms of U in K = U S Vᵀ.
#[test]
fn reference_matches_svd() {
    let (n, d) = (50, 6);
    let k = common::normal_data(n * d, 80);
    let cfg = LeverageConfig {
        ridge: 1e-12,
        ..LeverageConfig::new(1, n, d)
    };
    let sigma = leverage_scores(&k, &cfg, n).unwrap();
    let m = nalgebra::DMatrix::from_row_iterator(n, d, k.iter().map(|&x| f64::from(x)));
    let svd = m.svd(true, false);
    let u = svd.u.unwrap();
    for i in 0..n {
        let norm2: f64 = (0..d).map(|c| u[(i, c)].powi(2)).sum();
        assert!(
            (sigma[i] - norm2).abs() < 1e-8,
            "key {i}: {} vs {norm2}",
            sigma[i]
        );
    }
}

/// Keys appended block by block, then scored, equal one batch computation.
#[test]
fn streaming_equals_batch() {
    let ctx = gpu_or_skip!();
    let (heads, cap, d) = (2, 700, 32);
    let cfg = LeverageConfig::new(heads, cap, d);
    let k = common::normal_data(heads * cap * d, 90);
    let lev = LeverageScores::new(&ctx, cfg).unwrap();
    let kb = GpuBuffer::from_slice(&ctx, &k, "k").unwrap();
    let streamed = GpuBuffer::<f32>::zeroed(&ctx, heads * cap, "s").unwrap();
    let batch = GpuBuffer::<f32>::zeroed(&ctx, heads * cap, "b").unwrap();
    let n = 650;
    let mut enc = ctx.encoder("stream");
    for key0 in (0..n).step_by(128) {
        lev.append(&mut enc, &kb, key0, (key0 + 128).min(n))
            .unwrap();
    }
    lev.score(&mut enc, &kb, n, &streamed).unwrap();
    ctx.submit_and_wait(enc).unwrap();
    let mut enc = ctx.encoder("batch");
    lev.encode(&mut enc, &kb, n, &batch).unwrap();
    ctx.submit_and_wait(enc).unwrap();
    let (s, b) = (streamed.read(&ctx).unwrap(), batch.read(&ctx).unwrap());
    let want = leverage_scores(&k, &cfg, n).unwrap();
    let b64: Vec<f64> = b.iter().map(|&x| f64::from(x)).collect();
    assert_scores("streamed vs batch", &s, &b64);
    assert_scores("batch vs reference", &b, &want);
}

#[test]
fn bad_input_is_a_typed_error() {
    let ctx = gpu_or_skip!();
    let bad = |cfg| LeverageScores::new(&ctx, cfg).err();
    assert!(matches!(
        bad(LeverageConfig::new(1, 10, 200)),
        Some(Error::InvalidShape {
            arg: "head_dim",
            ..
        })
    ));
    assert!(matches!(
        bad(LeverageConfig {
            ridge: 0.0,
            ..LeverageConfig::new(1, 10, 8)
        }),
        Some(Error::InvalidShape { arg: "ridge", .. })
    ));
    let lev = LeverageScores::new(&ctx, LeverageConfig::new(1, 10, 8)).unwrap();
    let k = GpuBuffer::<f32>::zeroed(&ctx, 80, "k").unwrap();
    let mut enc = ctx.encoder("bad");
    assert!(matches!(
        lev.append(&mut enc, &k, 5, 5),
        Err(Error::InvalidShape { arg: "keys", .. })
    ));
    assert!(matches!(
        lev.append(&mut enc, &k, 0, 11),
        Err(Error::InvalidShape { arg: "keys", .. })
    ));
}

/// One key of head 0 is NaN, +∞ or 1e30 (whose square overflows the f32 Gram matrix): every
/// score of head 0 is NaN on the GPU and in the reference, never silently finite, and head 1
/// is untouched.
#[test]
fn non_finite_gram_makes_that_heads_scores_nan() {
    let ctx = gpu_or_skip!();
    let (heads, n, d) = (2, 40, 8);
    let cfg = LeverageConfig::new(heads, n, d);
    let clean = common::normal_data(heads * n * d, 3);
    let kernel = LeverageScores::new(&ctx, cfg).unwrap();
    let head1 = leverage_scores(&clean, &cfg, n).unwrap()[n..].to_vec();
    for bad in [f32::NAN, f32::INFINITY, 1e30] {
        let mut k = clean.clone();
        k[5 * d + 2] = bad;
        let got = kernel.run(&k).unwrap();
        let want = leverage_scores(&k, &cfg, n).unwrap();
        assert!(got[..n].iter().all(|x| x.is_nan()), "GPU, key {bad}");
        assert!(want[..n].iter().all(|x| x.is_nan()), "reference, key {bad}");
        assert_eq!(want[n..], head1[..], "reference head 1, key {bad}");
        assert_scores(&format!("head 1, key {bad}"), &got[n..], &head1);
    }
}
