//! `gumbel_top_l` on the GPU: distinct picks, the first and second picks follow the
//! without-replacement (Plackett–Luce) law (χ², α = 0.001), the first pick is gumbel_max's
//! sample 0, the CPU reference picks the same keys, NaN/−∞ are never picked.

use crate::common;

use common::stats::{assert_fits, softmax_probs};
use knn_attention::Error;
use knn_attention::kernels::gumbel_max::{GumbelMax, SamplerConfig};
use knn_attention::kernels::gumbel_top_l::GumbelTopL;
use knn_attention::reference::gumbel_top_l::gumbel_top_l;

#[test]
fn picks_follow_sampling_without_replacement() {
    let ctx = gpu_or_skip!();
    let row: Vec<f32> = common::normal_data(30, 3).iter().map(|x| 1.5 * x).collect();
    let copies = 8192;
    let scores: Vec<f32> = (0..copies).flat_map(|_| row.iter().copied()).collect();
    let cfg = SamplerConfig::new(copies, 30, 4, 21);
    let got = GumbelTopL::new(&ctx, cfg).unwrap().run(&scores).unwrap();
    for pick in got.chunks(4) {
        let mut s = pick.to_vec();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 4, "picks not distinct: {pick:?}");
    }
    let p = softmax_probs(&row, 1.0);
    let first: Vec<u32> = got.chunks(4).map(|c| c[0]).collect();
    assert_fits("first pick", &first, &p);
    // P(second = j) = Σ_{i≠j} p_i p_j / (1 − p_i).
    let second_p: Vec<f64> = (0..30)
        .map(|j| {
            (0..30)
                .filter(|&i| i != j)
                .map(|i| p[i] * p[j] / (1.0 - p[i]))
                .sum()
        })
        .collect();
    let second: Vec<u32> = got.chunks(4).map(|c| c[1]).collect();
    assert_fits("second pick", &second, &second_p);
    // Same noise as gumbel_max's sample 0.
    let one = SamplerConfig { samples: 1, ..cfg };
    let gm = GumbelMax::new(&ctx, one)
        .unwrap()
        .run(&scores, None)
        .unwrap();
    assert_eq!(first, gm);
}

#[test]
fn gpu_picks_equal_the_reference() {
    let ctx = gpu_or_skip!();
    let (rows, n) = (40, 700);
    let scores = common::normal_data(rows * n, 4);
    let cfg = SamplerConfig::new(rows, n, 25, 8);
    let gpu = GumbelTopL::new(&ctx, cfg).unwrap().run(&scores).unwrap();
    let cpu = gumbel_top_l(&scores, &cfg).unwrap();
    let differ = gpu.iter().zip(&cpu).filter(|(a, b)| a != b).count();
    assert!(differ <= 2, "{differ} picks differ");
}

#[test]
fn special_values_and_short_rows() {
    let ctx = gpu_or_skip!();
    let scores = [1.0, f32::NAN, 0.0, f32::NEG_INFINITY, 2.0];
    let cfg = SamplerConfig::new(1, 5, 4, 1);
    let got = GumbelTopL::new(&ctx, cfg).unwrap().run(&scores).unwrap();
    let mut real: Vec<u32> = got[..3].to_vec();
    real.sort();
    assert_eq!(real, [0, 2, 4]);
    assert_eq!(got[3], u32::MAX);
    assert!(matches!(
        GumbelTopL::new(&ctx, SamplerConfig::new(1, 5, 6, 1)),
        Err(Error::InvalidShape { arg: "samples", .. })
    ));
}
