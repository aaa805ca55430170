//! `gumbel_max` on the GPU: samples fit the softmax (χ², α = 0.001, fixed seeds), equal the
//! CPU reference's samples except at near-ties, and follow the NaN/∞/empty-row rules.

use crate::common;

use common::stats::{assert_fits, softmax_probs};
use knn_attention::kernels::gumbel_max::{GumbelMax, SamplerConfig};
use knn_attention::reference::gumbel_max::{gumbel_max, perturbed};
use knn_attention::{Error, GpuContext};

/// `copies` identical rows of `row` (independent RNG streams), `samples` draws each: all
/// draws pooled must fit softmax(row / T).
fn fits(
    ctx: &GpuContext,
    what: &str,
    row: &[f32],
    temperature: f32,
    copies: usize,
    samples: usize,
) {
    let n = row.len();
    let scores: Vec<f32> = (0..copies).flat_map(|_| row.iter().copied()).collect();
    let cfg = SamplerConfig {
        temperature,
        ..SamplerConfig::new(copies, n, samples, 11)
    };
    let got = GumbelMax::new(ctx, cfg)
        .unwrap()
        .run(&scores, None)
        .unwrap();
    assert_fits(what, &got, &softmax_probs(row, temperature));
}

#[test]
fn samples_fit_the_softmax() {
    let ctx = gpu_or_skip!();
    let normal = common::normal_data(300, 5);
    let peaked: Vec<f32> = normal.iter().map(|x| 3.0 * x).collect();
    fits(&ctx, "peaked", &peaked, 1.0, 128, 128);
    fits(&ctx, "flat", &[0.0; 40], 1.0, 128, 64);
    let tied: Vec<f32> = (0..60).map(|j| (j % 3) as f32).collect();
    fits(&ctx, "tied", &tied, 1.0, 128, 64);
    fits(&ctx, "cold (T = 0.1)", &normal[..50], 0.1, 128, 64);
    fits(&ctx, "hot (T = 20)", &normal[..50], 20.0, 128, 64);
    fits(&ctx, "n = 1", &[0.3], 1.0, 4, 16);
}

/// The same uniforms on CPU and GPU: every sample agrees unless the two best perturbed
/// scores are within the GPU's log error of each other.
#[test]
fn gpu_samples_equal_the_reference() {
    let ctx = gpu_or_skip!();
    let (rows, n) = (64, 3000);
    let scores = common::normal_data(rows * n, 21);
    let lengths: Vec<u32> = (0..rows as u32).map(|r| r * 97 % 3001).collect();
    let cfg = SamplerConfig::new(rows, n, 8, 99);
    let gpu = GumbelMax::new(&ctx, cfg)
        .unwrap()
        .run(&scores, Some(&lengths))
        .unwrap();
    let cpu = gumbel_max(&scores, &cfg, Some(&lengths)).unwrap();
    let mut differ = 0;
    for (t, (&g, &c)) in gpu.iter().zip(&cpu).enumerate() {
        if g != c {
            let (row, l) = (t / 8, t % 8);
            let v =
                |j: u32| perturbed(&cfg, scores[row * n + j as usize], row, l, j as usize).unwrap();
            assert!(
                (v(g) - v(c)).abs() <= 1e-5 * v(c).abs().max(1.0),
                "sample {t}: {g} vs {c}"
            );
            differ += 1;
        }
    }
    assert!(differ <= 2, "{differ} samples differ");
    // Rows of length 0 draw nothing.
    assert_eq!(&gpu[..8], &[u32::MAX; 8]);
}

#[test]
fn special_values() {
    let ctx = gpu_or_skip!();
    // NaN and −∞ are never drawn; the rest fits the softmax over the finite scores.
    let row = [1.0, f32::NAN, 0.5, f32::NEG_INFINITY, 2.0, f32::NAN];
    fits(&ctx, "NaN and −∞", &row, 1.0, 64, 64);
    // A row with no finite score draws u32::MAX; a +∞ score is always drawn.
    let scores = [
        f32::NAN,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::INFINITY,
        1.0,
        f32::INFINITY,
    ];
    let cfg = SamplerConfig::new(2, 3, 5, 1);
    let got = GumbelMax::new(&ctx, cfg)
        .unwrap()
        .run(&scores, None)
        .unwrap();
    assert_eq!(got, [vec![u32::MAX; 5], vec![0; 5]].concat());
}

#[test]
fn bad_input_is_a_typed_error() {
    let ctx = gpu_or_skip!();
    for (cfg, arg) in [
        (SamplerConfig::new(1, 0, 1, 0), "n"),
        (SamplerConfig::new(1, 4, 0, 0), "samples"),
        (
            SamplerConfig {
                temperature: 0.0,
                ..SamplerConfig::new(1, 4, 1, 0)
            },
            "temperature",
        ),
        (
            SamplerConfig {
                temperature: f32::NAN,
                ..SamplerConfig::new(1, 4, 1, 0)
            },
            "temperature",
        ),
    ] {
        assert!(
            matches!(GumbelMax::new(&ctx, cfg), Err(Error::InvalidShape { arg: a, .. }) if a == arg),
            "{arg}"
        );
    }
    let k = GumbelMax::new(&ctx, SamplerConfig::new(2, 4, 1, 0)).unwrap();
    assert!(matches!(
        k.run(&[0.0; 7], None),
        Err(Error::InvalidShape { arg: "scores", .. })
    ));
}
