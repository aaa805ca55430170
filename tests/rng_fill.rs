//! `rng_fill` and `philox`: known answers, CPU/GPU bit identity, distributions.

use crate::common;

use common::stats::{ks_critical_001, ks_statistic, normal_cdf};
use knn_attention::kernels::rng_fill::{Distribution, RngFill, RngKey};
use knn_attention::philox;
use knn_attention::reference::rng_fill::{rng_fill_bits, rng_fill_f32};

/// Random123's published Philox4x32-10 known-answer vectors: (counter, key, output).
const KAT: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
    (
        [0; 4],
        [0; 2],
        [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
    ),
    (
        [u32::MAX; 4],
        [u32::MAX; 2],
        [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
    ),
    (
        [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
        [0xa4093822, 0x299f31d0],
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
    ),
];

fn kat_key(ctr: [u32; 4], key: [u32; 2]) -> RngKey {
    RngKey {
        seed: u64::from(key[0]) | u64::from(key[1]) << 32,
        stream: u64::from(ctr[2]) | u64::from(ctr[3]) << 32,
        counter: u64::from(ctr[0]) | u64::from(ctr[1]) << 32,
    }
}

#[test]
fn philox_known_answers_cpu() {
    for (ctr, key, want) in KAT {
        assert_eq!(philox::philox4x32_10(ctr, key), want);
        assert_eq!(rng_fill_bits(4, kat_key(ctr, key)), want);
    }
}

#[test]
fn philox_known_answers_gpu() {
    let ctx = gpu_or_skip!();
    let fill = RngFill::new(&ctx).unwrap();
    for (ctr, key, want) in KAT {
        assert_eq!(fill.run_bits(4, kat_key(ctr, key)).unwrap(), want);
    }
}

/// One kernel filling two buffers with the same key, the second after the first was
/// submitted: its remembered bind group must not carry the first buffer over, so both hold
/// the reference's words.
#[test]
fn one_kernel_fills_each_buffer_it_is_given() {
    let ctx = gpu_or_skip!();
    let fill = RngFill::new(&ctx).unwrap();
    let outs = [0, 1].map(|_| knn_attention::GpuBuffer::<u32>::zeroed(&ctx, 1000, "out").unwrap());
    for out in &outs {
        let mut enc = ctx.encoder("fill");
        fill.encode(&mut enc, out, KEYS[1], Distribution::Bits)
            .unwrap();
        ctx.submit_and_wait(enc).unwrap();
    }
    let want = rng_fill_bits(1000, KEYS[1]);
    for out in &outs {
        assert_eq!(out.read(&ctx).unwrap(), want);
    }
}

/// Lengths that are not multiples of 4 or of the workgroup (1024 outputs), and a counter
/// that carries from the low into the high word mid-buffer.
const KEYS: [RngKey; 3] = [
    RngKey {
        seed: 7,
        stream: 0,
        counter: 0,
    },
    RngKey {
        seed: 0xDEAD_BEEF_0123_4567,
        stream: 3,
        counter: 0xFFFF_FF00,
    },
    RngKey {
        seed: u64::MAX,
        stream: u64::MAX,
        counter: u64::MAX - 10,
    },
];

#[test]
fn gpu_bits_and_uniforms_equal_cpu_bit_for_bit() {
    let ctx = gpu_or_skip!();
    let fill = RngFill::new(&ctx).unwrap();
    for (key, len) in KEYS.into_iter().zip([1 << 20, 1023 * 1025 + 3, 5]) {
        assert_eq!(
            fill.run_bits(len, key).unwrap(),
            rng_fill_bits(len, key),
            "{key:?}"
        );
        let gpu = fill.run_f32(len, key, Distribution::Uniform).unwrap();
        let cpu = rng_fill_f32(len, key, Distribution::Uniform);
        assert!(
            gpu.iter()
                .zip(&cpu)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{key:?}"
        );
        assert!(gpu.iter().all(|&u| u > 0.0 && u < 1.0));
    }
}

/// Normals and Gumbels pass through `log`, `sqrt`, `sin`, `cos`, which WGSL does not require
/// to be correctly rounded: `log` is within 3 ULP (2⁻²¹ absolute on [0.5, 2]) and `sin`/`cos`
/// within 2⁻¹¹ absolute on [−π, π]. Hence: Gumbel within 2e-6·max(1, |g|) (a few ULP of the
/// two logs), normals within 2⁻¹¹·r + 1e-5 with r ≤ 5.8 the Box–Muller radius.
#[test]
fn gpu_normals_and_gumbels_match_cpu_within_wgsl_accuracy() {
    let ctx = gpu_or_skip!();
    let fill = RngFill::new(&ctx).unwrap();
    let len = 1 << 18;
    for key in KEYS {
        let g = fill.run_f32(len, key, Distribution::Gumbel).unwrap();
        let gc = rng_fill_f32(len, key, Distribution::Gumbel);
        for (i, (a, b)) in g.iter().zip(&gc).enumerate() {
            assert!(
                (a - b).abs() <= 2e-6 * b.abs().max(1.0),
                "gumbel {i}: {a} vs {b}"
            );
        }
        let n = fill.run_f32(len, key, Distribution::Normal).unwrap();
        let nc = rng_fill_f32(len, key, Distribution::Normal);
        for (i, (a, b)) in n.iter().zip(&nc).enumerate() {
            assert!((a - b).abs() <= 2.9e-3 + 1e-5, "normal {i}: {a} vs {b}");
        }
    }
}

/// KS tests of the GPU output at α = 0.001 (fixed seeds, so deterministic).
#[test]
fn gpu_distributions_pass_kolmogorov_smirnov() {
    let ctx = gpu_or_skip!();
    let fill = RngFill::new(&ctx).unwrap();
    let n = 1 << 20;
    let key = RngKey {
        seed: 2026,
        stream: 1,
        counter: 0,
    };
    let crit = ks_critical_001(n);
    let u = fill.run_f32(n, key, Distribution::Uniform).unwrap();
    let d = ks_statistic(&u, |x| x.clamp(0.0, 1.0));
    assert!(d < crit, "uniform D = {d} ≥ {crit}");
    let z = fill.run_f32(n, key, Distribution::Normal).unwrap();
    let d = ks_statistic(&z, normal_cdf);
    assert!(d < crit, "normal D = {d} ≥ {crit}");
    let g = fill.run_f32(n, key, Distribution::Gumbel).unwrap();
    let d = ks_statistic(&g, |x| (-(-x).exp()).exp());
    assert!(d < crit, "gumbel D = {d} ≥ {crit}");
    // Neighbouring normals come from one Box–Muller pair: they must be uncorrelated.
    let corr: f64 = z
        .chunks_exact(2)
        .map(|p| f64::from(p[0]) * f64::from(p[1]))
        .sum::<f64>()
        / (n / 2) as f64;
    assert!(
        corr.abs() < 4.0 / ((n / 2) as f64).sqrt(),
        "pair correlation {corr}"
    );
}

/// Distinct streams and seeds give independent-looking words (no accidental key reuse).
#[test]
fn streams_and_seeds_differ() {
    let a = rng_fill_bits(
        4096,
        RngKey {
            seed: 1,
            stream: 0,
            counter: 0,
        },
    );
    let b = rng_fill_bits(
        4096,
        RngKey {
            seed: 1,
            stream: 1,
            counter: 0,
        },
    );
    let c = rng_fill_bits(
        4096,
        RngKey {
            seed: 2,
            stream: 0,
            counter: 0,
        },
    );
    let same = |x: &[u32], y: &[u32]| x.iter().zip(y).filter(|(p, q)| p == q).count();
    assert!(same(&a, &b) < 3 && same(&a, &c) < 3);
}

#[test]
fn exponential_is_accurate_near_one() {
    // Against f64 -ln(u) over the whole series branch and the switch point.
    for m in (0..(1u32 << 23)).rev().step_by(997).take(2000) {
        let u = ((m << 1) | 1) as f32 / 16_777_216.0;
        let exact = -f64::from(u).ln();
        let got = f64::from(philox::exponential_from_uniform(u));
        assert!(
            (got - exact).abs() <= 4e-7 * exact,
            "u = {u}: {got} vs {exact}"
        );
    }
}
