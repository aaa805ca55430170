//! `topk` on the GPU against the CPU reference: values bit-equal, indices equal (ties go to
//! the smaller index, so there is exactly one right answer).

use crate::common;

use knn_attention::kernels::topk::{
    Loads, MAX_WIDE_ROWS, ONE_PASS_MAX_K, Order, ScoreType, Strategy, Topk, TopkConfig, TopkInput,
    TopkResult,
};
use knn_attention::reference::topk::{best_first, topk as topk_ref};
use knn_attention::timer::StageTimer;
use knn_attention::{Error, GpuBuffer, GpuContext};
use proptest::prelude::*;

fn assert_same(gpu: &TopkResult, cpu: &TopkResult, what: &str) {
    assert_eq!(gpu.counts, cpu.counts, "{what}: counts");
    assert_eq!(gpu.indices, cpu.indices, "{what}: indices");
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&gpu.values), bits(&cpu.values), "{what}: values");
}

/// Runs `cfg` with each strategy (and tier) that supports it against the reference, and checks
/// that they agree bit for bit, unsorted order included.
fn check(ctx: &GpuContext, cfg: TopkConfig, scores: &[f32], lengths: Option<&[u32]>, what: &str) {
    // Radix with this adapter's chunking, with a GPU's (2048 workgroups per pass: short
    // chunks) and the largest sort workgroup the device allows, and sorting by rank; every
    // one-pass variant.
    let radix = Variant {
        strategy: Strategy::Radix,
        ..Default::default()
    };
    let gpu_radix = Variant {
        radix_groups: Some(2048),
        sort_workgroup: Some(largest_sort_workgroup(ctx)),
        ..radix
    };
    let ranked = Variant {
        rank_sort: true,
        ..radix
    };
    let variants: Vec<_> = [radix, gpu_radix, ranked]
        .into_iter()
        .chain(one_pass_variants())
        .chain(row_select_variants())
        .collect();
    check_variants(ctx, cfg, scores, lengths, what, &variants);
}

/// The row select with the device's slots and threads, and with the fewest of both: 256
/// slots make rows past 256 entries take the sample's floor, and its misses the exact
/// levels, at small sizes. The bucket sort (values from keys). Split (a workgroup per tile
/// of a row, the last to finish sorting it): at the device's threads, and at 256 threads and
/// slots (rows past 4096 entries split, and its lists miss often) in the subgroup tier with
/// the bucket sort (the shuffled sort where a bucket overflows).
fn row_select_variants() -> [Variant; 7] {
    let row_select = Variant {
        strategy: Strategy::RowSelect,
        ..Default::default()
    };
    // The subgroup tier (where the adapter has subgroups; otherwise the core kernel again):
    // its shuffled sort, and at 256 threads, where k > 1024 falls back to the core sort.
    let shuffled = Variant {
        subgroups: true,
        ..row_select
    };
    [
        row_select,
        Variant {
            select_cap: Some(256),
            select_workgroup: Some(256),
            ..row_select
        },
        shuffled,
        Variant {
            select_workgroup: Some(256),
            ..shuffled
        },
        Variant {
            select_buckets: true,
            values_from_keys: true,
            ..row_select
        },
        Variant {
            select_split: true,
            ..row_select
        },
        Variant {
            select_cap: Some(256),
            select_workgroup: Some(256),
            select_split: true,
            select_buckets: true,
            ..shuffled
        },
    ]
}

/// The one pass in 512-entry tiles with the core append, with the subgroup append (where
/// the adapter has subgroups; otherwise the same core kernel again) and reading quads, and in
/// wide tiles (the default) of scalars, three rows per workgroup each loaded ahead (an empty
/// row first, in the middle or last of its group in the ragged test), and of quads, tested
/// per entry and (lean: count and front in registers; values from keys) by bits.
fn one_pass_variants() -> [Variant; 6] {
    let one_pass = Variant {
        strategy: Strategy::OnePass,
        loads: Loads::Scalar,
        ..Default::default()
    };
    [
        one_pass,
        Variant {
            subgroups: true,
            ..one_pass
        },
        Variant {
            loads: Loads::Vec4,
            ..one_pass
        },
        Variant {
            wide_tiles: true,
            wide_rows: Some(3),
            wide_prefetch: Some(true),
            ..one_pass
        },
        Variant {
            wide_tiles: true,
            loads: Loads::Vec4,
            ..one_pass
        },
        Variant {
            wide_tiles: true,
            loads: Loads::Vec4,
            wide_bit_tests: true,
            wide_lean: true,
            wide_floor_fold: true,
            values_from_keys: true,
            ..one_pass
        },
    ]
}

/// The largest `TopkConfig::sort_workgroup` this device can run.
fn largest_sort_workgroup(ctx: &GpuContext) -> u32 {
    let l = ctx.limits();
    let max = l
        .max_compute_invocations_per_workgroup
        .min(l.max_compute_workgroup_size_x);
    [1024, 512, 256].into_iter().find(|&t| t <= max).unwrap()
}

/// The settings a `check` variant changes in a config.
#[derive(Clone, Copy, Debug, Default)]
struct Variant {
    strategy: Strategy,
    subgroups: bool,
    radix_groups: Option<usize>,
    sort_workgroup: Option<u32>,
    loads: Loads,
    rank_sort: bool,
    /// False (512-entry tiles) unless a variant says otherwise, unlike `TopkConfig`.
    wide_tiles: bool,
    wide_rows: Option<u32>,
    wide_prefetch: Option<bool>,
    select_buckets: bool,
    select_split: bool,
    wide_bit_tests: bool,
    wide_lean: bool,
    wide_floor_fold: bool,
    values_from_keys: bool,
    select_cap: Option<u32>,
    select_workgroup: Option<u32>,
}

/// `cfg` as variant `v` runs it.
fn variant_config(cfg: TopkConfig, v: Variant) -> TopkConfig {
    TopkConfig {
        strategy: v.strategy,
        subgroups: v.subgroups,
        radix_groups: v.radix_groups,
        sort_workgroup: v.sort_workgroup,
        loads: v.loads,
        rank_sort: v.rank_sort,
        wide_tiles: v.wide_tiles,
        wide_rows: v.wide_rows,
        wide_prefetch: v.wide_prefetch,
        select_buckets: v.select_buckets,
        select_split: v.select_split,
        wide_bit_tests: v.wide_bit_tests,
        wide_lean: v.wide_lean,
        wide_floor_fold: v.wide_floor_fold,
        values_from_keys: v.values_from_keys,
        select_cap: v.select_cap,
        select_workgroup: v.select_workgroup,
        ..cfg
    }
}

/// Each variant of `cfg` (one pass only where k allows, quads only where the rows allow, the
/// row select only where the device has the slots) matches the reference, and all agree.
fn check_variants(
    ctx: &GpuContext,
    cfg: TopkConfig,
    scores: &[f32],
    lengths: Option<&[u32]>,
    what: &str,
    variants: &[Variant],
) {
    let mut results = Vec::new();
    for &v in variants {
        if v.strategy == Strategy::OnePass && cfg.k > ONE_PASS_MAX_K
            || v.strategy == Strategy::RowSelect
                && variant_config(cfg, v).select_slots(ctx).is_err()
            || v.loads == Loads::Vec4
                && (!cfg.n.is_multiple_of(4) || !cfg.stride().is_multiple_of(4))
        {
            continue;
        }
        let c = variant_config(cfg, v);
        results.push(check_one(ctx, c, scores, lengths, &format!("{what} {v:?}")));
    }
    for r in &results[1..] {
        assert_same(r, &results[0], &format!("{what}: variants agree"));
    }
}

fn check_one(
    ctx: &GpuContext,
    cfg: TopkConfig,
    scores: &[f32],
    lengths: Option<&[u32]>,
    what: &str,
) -> TopkResult {
    let gpu = Topk::new(ctx, cfg).unwrap().run(scores, lengths).unwrap();
    assert_matches_reference(&gpu, &cfg, scores, lengths, what);
    if !cfg.sorted {
        let again = Topk::new(ctx, cfg).unwrap().run(scores, lengths).unwrap();
        assert_same(&again, &gpu, "unsorted run twice");
    }
    gpu
}

/// `gpu` equals the reference; unsorted, as a multiset per row listed in the kernel's order.
fn assert_matches_reference(
    gpu: &TopkResult,
    cfg: &TopkConfig,
    scores: &[f32],
    lengths: Option<&[u32]>,
    what: &str,
) {
    let cpu = topk_ref(scores, cfg, 0, lengths).unwrap();
    if cfg.sorted {
        assert_same(gpu, &cpu, what);
    } else {
        // Unsorted: same multiset per row, listed in a deterministic order.
        assert_same(&best_first(gpu, cfg), &cpu, what);
    }
}

/// A device of its own whose storage bindings hold 1 MiB, so that a few hundred rows of a
/// few thousand scores are split into row batches. One per test binary.
fn one_mib_bindings() -> GpuContext {
    static CTX: std::sync::OnceLock<GpuContext> = std::sync::OnceLock::new();
    CTX.get_or_init(|| bindings_of(1 << 20)).clone()
}

/// A device of its own whose storage bindings hold `bytes`.
fn bindings_of(bytes: u64) -> GpuContext {
    common::borrowed_context(wgpu::Limits {
        max_storage_buffer_binding_size: bytes,
        ..Default::default()
    })
}

/// f16 bit patterns as the f32 values they stand for (the reference's input for f16 scores).
fn widen_f16(bits: &[u16]) -> Vec<f32> {
    bits.iter()
        .map(|&b| half::f16::from_bits(b).to_f32())
        .collect()
}

fn cfg(rows: usize, n: usize, k: usize) -> TopkConfig {
    TopkConfig {
        rows,
        n,
        k,
        ..Default::default()
    }
}

#[test]
fn lengths_around_every_tile_boundary() {
    let ctx = gpu_or_skip!();
    // 256 = workgroup, 1024 = sort block, 2048/4096/16384 = chunk sizes (a GPU's shortest
    // chunk, 2048, is 4 compaction tiles of 512).
    for n in [
        1, 2, 3, 255, 256, 257, 511, 512, 513, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096,
        4097, 16383, 16384, 16385,
    ] {
        let rows = 3;
        let data = common::normal_data(rows * n, n as u64);
        for k in [1, 2, 31, 256, 1024, 1025, n] {
            if k <= n {
                check(&ctx, cfg(rows, n, k), &data, None, &format!("n={n} k={k}"));
            }
        }
    }
}

/// Rows of length `n` that stress the rules: orders, ties, signed zeros, denormals, NaN and
/// infinities, one thread's entries beating the rest, mostly NaN.
fn adversarial_rows(n: usize) -> Vec<(&'static str, Vec<f32>)> {
    let normal = common::normal_data(n, 99);
    vec![
        ("ascending", (0..n).map(|i| i as f32).collect()),
        ("descending", (0..n).map(|i| -(i as f32)).collect()),
        ("all equal", vec![1.5; n]),
        ("few distinct", (0..n).map(|i| (i * 7 % 3) as f32).collect()),
        (
            "signed zeros",
            (0..n)
                .map(|i| if i % 2 == 0 { 0.0 } else { -0.0 })
                .collect(),
        ),
        (
            "denormals",
            (0..n)
                .map(|i| f32::from_bits(i as u32 % 17 + 1) * if i % 3 == 0 { -1.0 } else { 1.0 })
                .collect(),
        ),
        (
            "nan and inf",
            normal
                .iter()
                .enumerate()
                .map(|(i, &x)| match i % 7 {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    2 => f32::NEG_INFINITY,
                    3 => -f32::NAN,
                    _ => x,
                })
                .collect(),
        ),
        // Every 256th entry, thread 0's in any row-order tile, beats the rest (largest), and
        // so does thread 1's (smallest): whole groups of one thread's entries come before the
        // k-th of the per-thread bests.
        (
            "one thread holds the best",
            (0..n)
                .map(|i| match i % 256 {
                    0 => 1e6 + i as f32,
                    1 => -1e6 - i as f32,
                    _ => normal[i],
                })
                .collect(),
        ),
        (
            "mostly nan",
            (0..n)
                .map(|i| match i % 100 {
                    5 => i as f32,
                    // NaNs of both signs with payloads, which must come back as stored.
                    _ => f32::from_bits(0x7FC0_0000 | ((i as u32 % 2) << 31) | (i as u32 % 977)),
                })
                .collect(),
        ),
    ]
}

#[test]
fn adversarial_distributions() {
    let ctx = gpu_or_skip!();
    let n = 3000;
    let cases = adversarial_rows(n);
    for (name, data) in &cases {
        for k in [1, 10, 40, 1500, n] {
            for order in [Order::Largest, Order::Smallest] {
                for sorted in [true, false] {
                    let c = TopkConfig {
                        rows: 1,
                        n,
                        k,
                        order,
                        sorted,
                        ..Default::default()
                    };
                    check(
                        &ctx,
                        c,
                        data,
                        None,
                        &format!("{name} k={k} {order:?} sorted={sorted}"),
                    );
                }
            }
        }
    }
}

/// The wide pass over rows of several tiles (the last one partial): its first tile's floor
/// from the seeds' histograms, where ties and equal prefixes admit far more than k (all
/// equal: the whole tile, an overflow), then tau and its refreshes over the later tiles.
#[test]
fn wide_pass_floor_and_refresh_over_several_tiles() {
    let ctx = gpu_or_skip!();
    let n = 2 * 4096 + 123;
    let wide: Vec<_> = one_pass_variants()
        .into_iter()
        .filter(|v| v.wide_tiles)
        .collect();
    for (name, data) in &adversarial_rows(n) {
        for k in [1, 40, 300] {
            for order in [Order::Largest, Order::Smallest] {
                let c = TopkConfig {
                    order,
                    ..cfg(1, n, k)
                };
                check_variants(
                    &ctx,
                    c,
                    data,
                    None,
                    &format!("{name} k={k} {order:?}"),
                    &wide,
                );
            }
        }
    }
}

/// The wide pass's floor with its top level folded by sixteen threads (`wide_floor_fold`),
/// which only full tiles take, over groups of rows whose first tiles are full: crowded top
/// digits (all equal, few distinct), NaN and infinities, random rows, and a row whose top
/// digit holds one seed fewer than k = 40 (39 large entries, one per thread in either
/// reading order, the rest of the first tile in [0.5, 1) and the second tile lower still: a
/// count one too high there loses the 40th); one and two seeds per thread; rows one per
/// workgroup, and three per workgroup, lean (the last group partial).
#[test]
fn folded_floor_over_groups_of_rows() {
    let ctx = gpu_or_skip!();
    let (rows, n) = (4, 2 * 4096);
    let fold = Variant {
        strategy: Strategy::OnePass,
        wide_tiles: true,
        wide_floor_fold: true,
        ..Default::default()
    };
    let variants = [
        Variant {
            loads: Loads::Scalar,
            ..fold
        },
        Variant {
            wide_rows: Some(3),
            wide_lean: true,
            ..fold
        },
    ];
    let sets = adversarial_rows(n);
    let wanted = ["all equal", "few distinct", "nan and inf"];
    let mut picked: Vec<_> = sets
        .iter()
        .filter(|(name, _)| wanted.contains(name))
        .collect();
    let normal = ("normal", common::normal_data(n, 17));
    picked.push(&normal);
    // Column 4j (j < 39) is thread j's in quads, thread 4j's in scalars: 39 distinct seeds.
    let short = (
        "top digit one short",
        common::normal_data(n, 18)
            .iter()
            .enumerate()
            .map(|(c, x)| match c {
                _ if c % 4 == 0 && c / 4 < 39 => 1.0e6 + c as f32,
                _ if c < 4096 => 0.5 + 0.49 * x.abs().fract(),
                _ => 0.25 + 0.24 * x.abs().fract(),
            })
            .collect::<Vec<f32>>(),
    );
    picked.push(&short);
    assert_eq!(picked.len(), 5, "the adversarial rows this test names");
    for (name, row) in picked {
        // Row r is the set's row rotated by 1000·r entries, so that rows differ (row 0 as
        // built: the only exact "one short" row).
        let data: Vec<f32> = (0..rows)
            .flat_map(|r| row.iter().cycle().skip(r * 1000).take(n).copied())
            .collect();
        for k in [40, 300] {
            let what = format!("{name} k={k}, folded floor");
            check_variants(&ctx, cfg(rows, n, k), &data, None, &what, &variants);
        }
    }
}

/// The one-pass path's shrinks (sort the arrivals, merge them into the sorted front) at k
/// near its limit, where the buffer has the least headroom: random rows (a few shrinks),
/// ascending rows (a shrink every tile) and heavy ties, sorted and unsorted.
#[test]
fn one_pass_shrinks_near_its_largest_k() {
    let ctx = gpu_or_skip!();
    let n = 20000;
    let normal = common::normal_data(2 * n, 7);
    let rows: Vec<(&str, Vec<f32>)> = vec![
        ("random", normal.clone()),
        ("ascending", (0..2 * n).map(|i| (i % n) as f32).collect()),
        (
            "ties",
            normal.iter().map(|x| (x * 3.0).round()).collect::<Vec<_>>(),
        ),
    ];
    for (name, data) in &rows {
        for k in [255, 257, 300, 511, ONE_PASS_MAX_K] {
            for sorted in [true, false] {
                let c = TopkConfig {
                    sorted,
                    ..cfg(2, n, k)
                };
                check(
                    &ctx,
                    c,
                    data,
                    None,
                    &format!("{name} k={k} sorted={sorted}"),
                );
            }
        }
    }
}

#[test]
fn nan_is_selected_only_after_every_number() {
    let ctx = gpu_or_skip!();
    let data = [f32::NAN, f32::NEG_INFINITY, f32::NAN, -1.0];
    let r = Topk::new(&ctx, cfg(1, 4, 3))
        .unwrap()
        .run(&data, None)
        .unwrap();
    assert_eq!(r.indices, vec![3, 1, 0]);
    assert!(r.values[2].is_nan());
}

#[test]
fn ragged_and_causal_rows_including_empty() {
    let ctx = gpu_or_skip!();
    let (rows, n) = (300, 700);
    let data = common::normal_data(rows * n, 5);
    // Causal: row r sees its first r + 1 entries; plus some empty and over-long rows.
    let lengths: Vec<u32> = (0..rows as u32)
        .map(|r| match r % 50 {
            0 => 0,
            1 => 10_000,
            _ => r + 1,
        })
        .collect();
    // 65 and 300: the wide pass's second seeds, with rows of every length mod 4 (quads).
    for k in [1, 16, 64, 65, 300, 700] {
        for sorted in [true, false] {
            let c = TopkConfig {
                sorted,
                ..cfg(rows, n, k)
            };
            check(&ctx, c, &data, Some(&lengths), &format!("ragged k={k}"));
        }
    }
    // The wide pass's other row groupings, with and without the tile loaded ahead: a group
    // of the most rows (its last one partial; lean) and one row loaded ahead.
    let wide = Variant {
        strategy: Strategy::OnePass,
        wide_tiles: true,
        ..Default::default()
    };
    let groupings = [
        (Some(3), Some(false), false),
        (Some(64), None, true),
        (None, Some(true), false),
    ]
    .map(|(wide_rows, wide_prefetch, wide_lean)| Variant {
        wide_rows,
        wide_prefetch,
        wide_lean,
        ..wide
    });
    for k in [16, 300] {
        let what = format!("ragged k={k}, row groupings");
        check_variants(
            &ctx,
            cfg(rows, n, k),
            &data,
            Some(&lengths),
            &what,
            &groupings,
        );
    }
    // Padding is documented: index u32::MAX, value −∞, count 0.
    let r = Topk::new(&ctx, cfg(rows, n, 16))
        .unwrap()
        .run(&data, Some(&lengths))
        .unwrap();
    assert_eq!(r.counts[0], 0);
    assert!(r.indices[..16].iter().all(|&i| i == u32::MAX));
    assert!(r.values[..16].iter().all(|&v| v == f32::NEG_INFINITY));
}

#[test]
fn more_than_65535_rows_fold_the_grid() {
    let ctx = gpu_or_skip!();
    let (rows, n) = (70_000, 8);
    let data = common::normal_data(rows * n, 6);
    // Not every variant of `check`: the GPU-chunking radix plans these rows exactly like the
    // default (one 256-entry chunk each), and lavapipe takes half a minute per radix run here.
    // The row select once, at 256 threads: its grid of one workgroup per row folds too.
    let radix = Variant {
        strategy: Strategy::Radix,
        ..Default::default()
    };
    let row_select = Variant {
        strategy: Strategy::RowSelect,
        select_workgroup: Some(256),
        ..Default::default()
    };
    let variants: Vec<_> = [radix, row_select]
        .into_iter()
        .chain(one_pass_variants())
        .collect();
    check_variants(&ctx, cfg(rows, n, 3), &data, None, "70000 rows", &variants);
}

#[test]
fn long_row_and_large_k() {
    let ctx = gpu_or_skip!();
    let n = 1 << 20;
    let data = common::normal_data(n, 7);
    check(&ctx, cfg(1, n, 4096), &data, None, "n=2^20 k=4096");
    check(&ctx, cfg(1, n, 1), &data, None, "n=2^20 k=1");
    let data = common::normal_data(4 * 8192, 8);
    check(
        &ctx,
        cfg(4, 8192, 4096),
        &data,
        None,
        "k=4096 (global bitonic steps)",
    );
    check(&ctx, cfg(4, 8192, 8192), &data, None, "k=n=8192");
}

/// The row select's strided sample can misjudge a row: every fourth entry (all that a
/// sample of stride 4 or 32 sees) far above the rest puts the floor too high (fewer than k
/// entries reach it), far below puts it too low (more than its slots); equal keys fill the
/// floor's bin. Each then takes the exact radix levels (down into the index digits for
/// ties) and a second gather, and must still match the reference, at the device's slots
/// and at 256.
#[test]
fn row_select_recovers_when_its_sample_misjudges_the_row() {
    let ctx = gpu_or_skip!();
    let n = 5000;
    let normal = common::normal_data(n, 11);
    // Every fourth entry spread far out to one side (distinct, so that the floor's 16-bit
    // bins stay narrow: at 256 slots the sample sees every eighth of them, and about k / 8
    // reach its floor).
    let sampled = |side: f32| -> Vec<f32> {
        let mut row = normal.clone();
        for (i, x) in row.iter_mut().enumerate().step_by(4) {
            *x = side * 1000.0 * (i + 1) as f32;
        }
        row
    };
    let rows: Vec<(&str, Vec<f32>)> = vec![
        ("sampled entries high", sampled(1.0)),
        ("sampled entries low", sampled(-1.0)),
        ("all equal", vec![0.5; n]),
        ("three values", (0..n).map(|i| (i % 3) as f32).collect()),
    ];
    for (name, row) in &rows {
        for k in [1, 100, 256] {
            for order in [Order::Largest, Order::Smallest] {
                for sorted in [true, false] {
                    let c = TopkConfig {
                        order,
                        sorted,
                        ..cfg(1, n, k)
                    };
                    let what = format!("{name} k={k} {order:?} sorted={sorted}");
                    check_variants(&ctx, c, row, None, &what, &row_select_variants());
                }
            }
        }
    }
}

/// The split row select on rows of 2^19 entries: at 256 threads they have 128 tiles, and
/// three rows take 42 workgroups each (128 in all by default), so each workgroup takes a run
/// of four and the last ten none; a shorter row leaves more without tiles, and an empty row
/// gives them none at all. Sorted (core, and the subgroup tier with the bucket sort) and
/// unsorted, at k where the sample's floor holds (a list of at least k and at most the
/// slots: a workgroup's run taken wrong fails it); f16 scores too.
#[test]
fn split_row_select_over_runs_of_tiles() {
    let ctx = gpu_or_skip!();
    let (rows, n) = (3, 1 << 19);
    let data = common::normal_data(rows * n, 21);
    let lengths = [n as u32, (n / 3 + 5) as u32, 0];
    let split = Variant {
        strategy: Strategy::RowSelect,
        select_split: true,
        select_workgroup: Some(256),
        ..Default::default()
    };
    let variants = [
        split,
        Variant {
            subgroups: true,
            select_buckets: true,
            ..split
        },
    ];
    for k in [1, 100, 300] {
        for sorted in [true, false] {
            let c = TopkConfig {
                sorted,
                ..cfg(rows, n, k)
            };
            let what = format!("split n=2^19 k={k} sorted={sorted}");
            check_variants(&ctx, c, &data, Some(&lengths), &what, &variants);
        }
    }
    // f16 scores: the same rows rounded, with the ties that brings.
    let bits: Vec<u16> = data
        .iter()
        .map(|&x| half::f16::from_f32(x).to_bits())
        .collect();
    let widened = widen_f16(&bits);
    for v in variants {
        let c = variant_config(
            TopkConfig {
                scores: ScoreType::F16,
                ..cfg(rows, n, 100)
            },
            v,
        );
        let gpu = Topk::new(&ctx, c)
            .unwrap()
            .run_f16(&bits, Some(&lengths))
            .unwrap();
        assert_matches_reference(&gpu, &c, &widened, Some(&lengths), &format!("f16 {v:?}"));
    }
}

/// Runs `topk` through `encode` on rows `stride` apart starting at element `offset`.
fn check_strided(
    ctx: &GpuContext,
    (rows, n, stride, offset): (usize, usize, usize, usize),
    k: usize,
) {
    let data = common::normal_data(offset + rows * stride, (n + stride) as u64);
    let s = GpuBuffer::from_slice(ctx, &data, "s").unwrap();
    // Every one-pass variant, in quads only where rows start on quads, and the default
    // (wide tiles, `Loads::Auto`: quads, or scalars at an offset off a quad boundary).
    let quads = [n, stride, offset].iter().all(|x| x.is_multiple_of(4));
    let radix = Variant {
        strategy: Strategy::Radix,
        ..Default::default()
    };
    let default = Variant {
        strategy: Strategy::OnePass,
        wide_tiles: true,
        ..Default::default()
    };
    let variants = [radix, default].into_iter().chain(one_pass_variants());
    for v in variants.filter(|v| quads || v.loads != Loads::Vec4) {
        let strided = TopkConfig {
            row_stride: Some(stride),
            ..cfg(rows, n, k)
        };
        let c = variant_config(strided, v);
        let topk = Topk::new(ctx, c).unwrap();
        let out = topk.outputs().unwrap();
        let mut enc = ctx.encoder("t");
        topk.encode(&mut enc, TopkInput::new(&s).with_offset(offset), &out)
            .unwrap();
        ctx.submit_and_wait(enc).unwrap();
        let gpu = out.read(ctx).unwrap();
        let want = topk_ref(&data, &c, offset, None).unwrap();
        assert_same(&gpu, &want, &format!("strided {v:?}"));
    }
}

/// The split row select's hand-off between calls, read from its scratch
/// (`Topk::row_scratch`): after every run each row's word is zero, its parity has flipped,
/// the list the next run fills is all zero and the one just filled holds this run's
/// entries. Lavapipe makes every store visible at once, so neither a list left uncleared nor
/// a parity left unflipped changes a result there; this checks them directly.
#[test]
fn split_lists_alternate_and_are_cleared() {
    let ctx = gpu_or_skip!();
    let (rows, n, k) = (3, 20000, 64);
    // Five workgroups per row (256 threads: tiles of 4096).
    let c = TopkConfig {
        strategy: Strategy::RowSelect,
        select_split: true,
        select_split_groups: Some(1 << 20),
        select_workgroup: Some(256),
        ..cfg(rows, n, k)
    };
    let cap = c.select_slots(&ctx).unwrap() as usize;
    let topk = Topk::new(&ctx, c).unwrap();
    // Per row: the word (count and arrivals), the parity, then two lists of `cap` slots.
    let per_row = 2 + 4 * cap;
    for run in 0..3 {
        let data = common::normal_data(rows * n, 30 + run as u64);
        let r = topk.run(&data, None).unwrap();
        assert_matches_reference(&r, &c, &data, None, &format!("split run {run}"));
        let s = topk.row_scratch().unwrap();
        for row in 0..rows {
            let what = format!("run {run}, row {row}");
            let base = row * per_row;
            let parity = s[base + 1] as usize;
            assert_eq!(s[base], 0, "{what}: word zeroed");
            assert_eq!(parity, (run + 1) % 2, "{what}: parity flipped");
            let list = |j: usize| &s[base + 2 + j * 2 * cap..][..2 * cap];
            assert!(
                list(parity).iter().all(|&w| w == 0),
                "{what}: next list clear"
            );
            assert!(
                list(1 - parity).iter().any(|&w| w != 0),
                "{what}: list filled"
            );
        }
    }
}

/// The split row select divides a row's tiles into equal runs, one per workgroup: every
/// number of workgroups from 2 to the row's tiles, over rows whose last tile holds one entry
/// or all but one, covers the whole row. The rows ascend (the best entries last) or descend
/// (first), so a run that stops a tile short, or starts one late, loses the answer.
#[test]
fn split_runs_cover_every_tile() {
    let ctx = gpu_or_skip!();
    let tile = 4096; // 256 threads, 16 entries each
    for tiles in 2..=6 {
        for n in [(tiles - 1) * tile + 1, tiles * tile - 1] {
            let up: Vec<f32> = (0..n).map(|i| i as f32).collect();
            let down: Vec<f32> = up.iter().rev().copied().collect();
            let data = [up, down].concat();
            for groups in 2..=tiles as u32 {
                // Two rows, `groups` workgroups each.
                let c = TopkConfig {
                    strategy: Strategy::RowSelect,
                    select_split: true,
                    select_split_groups: Some(2 * groups),
                    select_workgroup: Some(256),
                    ..cfg(2, n, 100)
                };
                let r = Topk::new(&ctx, c).unwrap().run(&data, None).unwrap();
                let what = format!("n={n}, {groups} workgroups per row");
                assert_matches_reference(&r, &c, &data, None, &what);
            }
        }
    }
}

/// The radix path sums the row histograms of multi-chunk rows with atomics in scratch that each
/// run must leave zeroed for the next (nothing clears it per call), and the split row select
/// counts its rows' entries and arrivals there. One `Topk`, reused on new data, recorded
/// twice in one encoder, and over many row batches (a device with a 1 MiB binding limit),
/// sorted and unsorted (a different kernel clears the radix scratch), with one-chunk and
/// multi-chunk rows, matches the reference every time.
#[test]
fn scratch_is_left_clean_for_the_next_run() {
    let ctx = gpu_or_skip!();
    let batched = one_mib_bindings();
    for (ctx, rows) in [(&ctx, 3), (&batched, 300)] {
        // The sort clears the row histogram when sorted: also with the largest workgroup.
        let largest = Some(largest_sort_workgroup(ctx));
        let radix = TopkConfig {
            strategy: Strategy::Radix,
            ..cfg(rows, 5000, 64)
        };
        // Two workgroups per row (256 threads: tiles of 4096), however many rows.
        let split = TopkConfig {
            strategy: Strategy::RowSelect,
            select_split: true,
            select_split_groups: Some(1 << 20),
            select_workgroup: Some(256),
            ..radix
        };
        for c in [
            radix,
            TopkConfig {
                sorted: false,
                ..radix
            },
            TopkConfig {
                radix_groups: Some(2048),
                ..radix
            },
            TopkConfig {
                radix_groups: Some(2048),
                sort_workgroup: largest,
                ..radix
            },
            TopkConfig {
                radix_groups: Some(2048),
                rank_sort: true,
                ..radix
            },
            TopkConfig {
                radix_groups: Some(2048),
                sorted: false,
                ..radix
            },
            split,
            TopkConfig {
                sorted: false,
                ..split
            },
        ] {
            let what = format!(
                "rows={rows} {:?} sorted={} groups={:?} sort={:?} rank={} split={}",
                c.strategy, c.sorted, c.radix_groups, c.sort_workgroup, c.rank_sort, c.select_split
            );
            let topk = Topk::new(ctx, c).unwrap();
            let data: Vec<Vec<f32>> = (0..3)
                .map(|seed| common::normal_data(rows * c.n, 100 + seed))
                .collect();
            let buffers: Vec<_> = data[..2]
                .iter()
                .map(|d| GpuBuffer::from_slice(ctx, d, "s").unwrap())
                .collect();
            let outs: Vec<_> = (0..2).map(|_| topk.outputs().unwrap()).collect();
            let mut enc = ctx.encoder("t");
            for (b, out) in buffers.iter().zip(&outs) {
                topk.encode(&mut enc, TopkInput::new(b), out).unwrap();
            }
            ctx.submit_and_wait(enc).unwrap();
            for (i, out) in outs.iter().enumerate() {
                let gpu = out.read(ctx).unwrap();
                assert_matches_reference(&gpu, &c, &data[i], None, &format!("{what} encode {i}"));
            }
            let gpu = topk.run(&data[2], None).unwrap();
            assert_matches_reference(&gpu, &c, &data[2], None, &format!("{what} run"));
        }
    }
}

/// `encode` reuses its last call's bind groups only for the same buffers at the same offset:
/// each call below changes one of them (scores, offset, lengths or not, the lengths buffer,
/// the outputs), or only the contents of a bound buffer, and must match the reference. Also
/// three encodes into one encoder before one submit. Both strategies, and a device whose
/// binding limit splits the rows into batches (one bind group each).
#[test]
fn encodes_reuse_bind_groups_only_for_the_same_buffers() {
    let ctx = gpu_or_skip!();
    let batched = one_mib_bindings();
    for (ctx, rows) in [(&ctx, 3), (&batched, 300)] {
        for strategy in [Strategy::Radix, Strategy::OnePass] {
            let c = TopkConfig {
                strategy,
                ..cfg(rows, 2000, 40)
            };
            let topk = Topk::new(ctx, c).unwrap();
            let len = (rows + 1) * c.n;
            let data: Vec<Vec<f32>> = (0..3)
                .map(|seed| common::normal_data(len, 200 + seed))
                .collect();
            let scores: Vec<_> = data[..2]
                .iter()
                .map(|d| GpuBuffer::from_slice(ctx, d, "s").unwrap())
                .collect();
            let lengths: Vec<Vec<u32>> = (0..2)
                .map(|s| {
                    (0..rows as u32)
                        .map(|r| (r * 37 + s * 500) % 2100)
                        .collect()
                })
                .collect();
            let len_bufs: Vec<_> = lengths
                .iter()
                .map(|l| GpuBuffer::from_slice(ctx, l, "len").unwrap())
                .collect();
            let outs: Vec<_> = (0..3).map(|_| topk.outputs().unwrap()).collect();
            // (scores, offset, lengths, output, buffer 0 rewritten with data[2] first): each
            // call changes one thing from the one before; the last only a bound buffer's data.
            let calls: [(usize, usize, Option<usize>, usize, bool); 8] = [
                (0, 0, None, 0, false),
                (1, 0, None, 0, false),
                (1, c.n, None, 0, false),
                (1, c.n, Some(0), 0, false),
                (1, c.n, Some(0), 1, false),
                (1, c.n, Some(1), 1, false),
                (0, 0, None, 0, false),
                (0, 0, None, 0, true),
            ];
            let mut host = [data[0].clone(), data[1].clone()];
            for (i, &(s, offset, l, o, rewrite)) in calls.iter().enumerate() {
                if rewrite {
                    ctx.queue
                        .write_buffer(scores[0].buffer(), 0, bytemuck::cast_slice(&data[2]));
                    host[0] = data[2].clone();
                }
                let mut input = TopkInput::new(&scores[s]).with_offset(offset);
                if let Some(l) = l {
                    input = input.with_lengths(&len_bufs[l]);
                }
                let mut enc = ctx.encoder("t");
                topk.encode(&mut enc, input, &outs[o]).unwrap();
                ctx.submit_and_wait(enc).unwrap();
                let want = l.map(|l| lengths[l].as_slice());
                let what = format!("rows={rows} {strategy:?} call {i}");
                let gpu = outs[o].read(ctx).unwrap();
                assert_matches_reference(&gpu, &c, &host[s][offset..], want, &what);
            }
            let mut enc = ctx.encoder("t");
            for (s, out) in [0, 1, 0].into_iter().zip(&outs) {
                topk.encode(&mut enc, TopkInput::new(&scores[s]), out)
                    .unwrap();
            }
            ctx.submit_and_wait(enc).unwrap();
            for (s, out) in [0, 1, 0].into_iter().zip(&outs) {
                let gpu = out.read(ctx).unwrap();
                let what = format!("rows={rows} {strategy:?} one encoder, scores {s}");
                assert_matches_reference(&gpu, &c, &host[s], None, &what);
            }
        }
    }
}

/// One `Topk` (multi-chunk radix: shared row histograms and scratch that each run must leave
/// clean) used from four threads at once, each running its own data repeatedly: every result
/// equals the reference, so concurrent submissions never see each other's scratch.
#[test]
fn one_kernel_shared_by_threads() {
    let ctx = gpu_or_skip!();
    let c = TopkConfig {
        strategy: Strategy::Radix,
        radix_groups: Some(2048),
        ..cfg(3, 5000, 64)
    };
    let topk = Topk::new(&ctx, c).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let topk = &topk;
            s.spawn(move || {
                for i in 0..3 {
                    let data = common::normal_data(c.rows * c.n, 1000 + 10 * t + i);
                    let gpu = topk.run(&data, None).unwrap();
                    assert_matches_reference(&gpu, &c, &data, None, &format!("thread {t} run {i}"));
                }
            });
        }
    });
}

/// `encode_stages` records the same work as `encode`, one mark before each dispatch (named
/// by its kernel) and one after: radix's four histogram passes, compaction and sort (or rank
/// sort, or finalize), and the one pass's single dispatch, over every row batch.
#[test]
fn encode_stages_marks_every_dispatch() {
    let ctx = gpu_or_skip!();
    let small = one_mib_bindings();
    let (rows, n, k) = (300, 3000, 40);
    let data = common::normal_data(rows * n, 11);
    let radix = TopkConfig {
        strategy: Strategy::Radix,
        ..cfg(rows, n, k)
    };
    let one_pass = TopkConfig {
        strategy: Strategy::OnePass,
        wide_tiles: false,
        ..radix
    };
    let histograms = ["topk_histogram"; 4];
    let cases = [
        (
            &ctx,
            radix,
            [&histograms[..], &["topk_compact", "topk_sort_local"]].concat(),
        ),
        (
            &ctx,
            TopkConfig {
                rank_sort: true,
                ..radix
            },
            [&histograms[..], &["topk_compact", "topk_rank_sort"]].concat(),
        ),
        (
            &ctx,
            TopkConfig {
                sorted: false,
                ..radix
            },
            [&histograms[..], &["topk_compact", "topk_finalize"]].concat(),
        ),
        (&ctx, one_pass, vec!["topk_one_pass"]),
        (
            &ctx,
            TopkConfig {
                wide_tiles: true,
                ..one_pass
            },
            vec!["topk_one_pass_wide"],
        ),
        // 300 rows of 3000 scores (3.6 MB) in 1 MiB bindings: several row batches.
        (&small, one_pass, vec!["topk_one_pass"]),
    ];
    for (ctx, c, per_batch) in cases {
        let topk = Topk::new(ctx, c).unwrap();
        let scores = GpuBuffer::from_slice(ctx, &data, "s").unwrap();
        let (plain, staged) = (topk.outputs().unwrap(), topk.outputs().unwrap());
        let mut enc = ctx.encoder("t");
        topk.encode(&mut enc, TopkInput::new(&scores), &plain)
            .unwrap();
        let mut marks = Vec::new();
        topk.encode_stages(
            &mut enc,
            TopkInput::new(&scores),
            &staged,
            &mut |_, name| marks.push(name),
        )
        .unwrap();
        ctx.submit_and_wait(enc).unwrap();
        let (plain, staged) = (plain.read(ctx).unwrap(), staged.read(ctx).unwrap());
        assert_same(&staged, &plain, &format!("{c:?}: staged"));
        assert_matches_reference(&staged, &c, &data, None, &format!("{c:?}"));
        assert_eq!(marks.pop(), Some("end"), "{c:?}");
        assert!(!marks.is_empty() && marks.len().is_multiple_of(per_batch.len()));
        let batches = marks.len() / per_batch.len();
        assert!(
            batches > 1 || !std::ptr::eq(ctx, &small),
            "{c:?}: one batch"
        );
        assert_eq!(marks, per_batch.repeat(batches), "{c:?}");
    }
}

/// `StageTimer` times each stage `encode_stages` marks: one time per dispatch, named by it,
/// each a real interval (a timestamp pair taken out of order, or the wrong slots, would wrap
/// to ~10^13 ms). A call with more marks than the timer holds is a typed error.
#[test]
fn stage_timer_times_every_dispatch() {
    let ctx = gpu_or_skip!();
    if !ctx.capabilities().timestamps {
        assert!(matches!(
            StageTimer::new(&ctx, 16),
            Err(Error::Unsupported { .. })
        ));
        return;
    }
    let c = TopkConfig {
        strategy: Strategy::Radix,
        ..cfg(4, 5000, 40)
    };
    let data = common::normal_data(4 * 5000, 3);
    let topk = Topk::new(&ctx, c).unwrap();
    let scores = GpuBuffer::from_slice(&ctx, &data, "s").unwrap();
    let out = topk.outputs().unwrap();
    let mut timer = StageTimer::new(&ctx, 16).unwrap();
    for _ in 0..2 {
        let mut enc = ctx.encoder("t");
        topk.encode_stages(&mut enc, TopkInput::new(&scores), &out, &mut |e, name| {
            timer.mark(e, name)
        })
        .unwrap();
        timer.resolve(&mut enc);
        ctx.submit_and_wait(enc).unwrap();
        let times = timer.read(&ctx).unwrap();
        let names: Vec<_> = times.iter().map(|t| t.0).collect();
        let mut want = vec!["topk_histogram"; 4];
        want.extend(["topk_compact", "topk_sort_local"]);
        assert_eq!(names, want);
        assert!(
            times
                .iter()
                .all(|t| t.1.is_finite() && (0.0..60_000.0).contains(&t.1)),
            "{times:?}"
        );
    }
    let mut small = StageTimer::new(&ctx, 3).unwrap();
    let mut enc = ctx.encoder("t");
    topk.encode_stages(&mut enc, TopkInput::new(&scores), &out, &mut |e, name| {
        small.mark(e, name)
    })
    .unwrap();
    small.resolve(&mut enc);
    ctx.submit_and_wait(enc).unwrap();
    assert!(matches!(small.read(&ctx), Err(Error::InvalidShape { .. })));
}

#[test]
fn strided_slice_of_a_wider_buffer() {
    let ctx = gpu_or_skip!();
    check_strided(&ctx, (9, 300, 517, 33), 20);
    check_strided(&ctx, (9, 300, 516, 32), 20);
    // Rows on quads but an offset off them: the default's scalar fallback.
    check_strided(&ctx, (9, 300, 516, 34), 20);
}

/// `Loads::Auto` builds the vec4 one pass where the rows sit on quads and compiles its scalar
/// fallback once, on the first call at an offset off a quad boundary; both match the
/// reference.
#[test]
fn auto_loads_compile_the_scalar_fallback_once() {
    let ctx = gpu_or_skip!();
    // A context of its own: its pipeline count starts at zero.
    let ctx = ctx.with_all_shader_checks();
    let (rows, n, stride) = (5, 400, 404);
    let data = common::normal_data(8 + rows * stride, 13);
    let s = GpuBuffer::from_slice(&ctx, &data, "s").unwrap();
    let c = TopkConfig {
        row_stride: Some(stride),
        strategy: Strategy::OnePass,
        ..cfg(rows, n, 30)
    };
    let topk = Topk::new(&ctx, c).unwrap();
    let built = ctx.pipelines_compiled();
    for (offset, compiled) in [(4, built), (6, built + 1), (3, built + 1), (8, built + 1)] {
        let out = topk.outputs().unwrap();
        let mut enc = ctx.encoder("t");
        topk.encode(&mut enc, TopkInput::new(&s).with_offset(offset), &out)
            .unwrap();
        ctx.submit_and_wait(enc).unwrap();
        assert_eq!(ctx.pipelines_compiled(), compiled, "offset {offset}");
        let want = topk_ref(&data, &c, offset, None).unwrap();
        assert_same(&out.read(&ctx).unwrap(), &want, &format!("offset {offset}"));
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let ctx = gpu_or_skip!();
    let shape_err = |r: Result<Topk, Error>, want: &str| match r {
        Err(Error::InvalidShape { arg, .. }) => assert_eq!(arg, want),
        Err(e) => panic!("expected InvalidShape({want}), got {e}"),
        Ok(_) => panic!("expected InvalidShape({want})"),
    };
    shape_err(Topk::new(&ctx, cfg(1, 10, 0)), "k");
    shape_err(Topk::new(&ctx, cfg(1, 10, 11)), "k");
    shape_err(Topk::new(&ctx, cfg(1, 0, 1)), "n");
    shape_err(
        Topk::new(
            &ctx,
            TopkConfig {
                row_stride: Some(5),
                ..cfg(2, 10, 1)
            },
        ),
        "row_stride",
    );
    shape_err(
        Topk::new(
            &ctx,
            TopkConfig {
                radix_groups: Some(0),
                ..cfg(2, 10, 1)
            },
        ),
        "radix_groups",
    );
    shape_err(
        Topk::new(
            &ctx,
            TopkConfig {
                strategy: Strategy::RowSelect,
                select_split: true,
                select_split_groups: Some(0),
                ..cfg(2, 10, 1)
            },
        ),
        "select_split_groups",
    );
    for r in [0, MAX_WIDE_ROWS + 1] {
        let rows = TopkConfig {
            wide_rows: Some(r),
            ..cfg(2, 10, 1)
        };
        shape_err(Topk::new(&ctx, rows), "wide_rows");
    }
    let sort_threads = |t| TopkConfig {
        sort_workgroup: Some(t),
        strategy: Strategy::Radix,
        ..cfg(2, 10, 1)
    };
    for t in [0, 100, 257, 2048] {
        shape_err(Topk::new(&ctx, sort_threads(t)), "sort_workgroup");
    }
    let quads = |c: TopkConfig| TopkConfig {
        loads: Loads::Vec4,
        strategy: Strategy::OnePass,
        ..c
    };
    shape_err(Topk::new(&ctx, quads(cfg(2, 10, 1))), "loads");
    for bad in [
        TopkConfig {
            row_stride: Some(14),
            ..cfg(2, 12, 1)
        },
        TopkConfig {
            scores: ScoreType::F16,
            ..cfg(2, 12, 1)
        },
        TopkConfig {
            subgroups: true,
            ..cfg(2, 12, 1)
        },
    ] {
        shape_err(Topk::new(&ctx, quads(bad)), "loads");
    }
    let quad = Topk::new(&ctx, quads(cfg(2, 12, 1))).unwrap();
    let s = GpuBuffer::from_slice(&ctx, &[0.0f32; 30], "s").unwrap();
    let mut enc = ctx.encoder("t");
    assert!(matches!(
        quad.encode(
            &mut enc,
            TopkInput::new(&s).with_offset(2),
            &quad.outputs().unwrap()
        ),
        Err(Error::InvalidShape { arg: "offset", .. })
    ));
    // Within the set, but over a device's limit (WebGPU's default: 256 invocations).
    let small = common::borrowed_context(wgpu::Limits::default());
    shape_err(Topk::new(&small, sort_threads(512)), "sort_workgroup");
    assert!(Topk::new(&small, sort_threads(256)).is_ok());
    let topk = Topk::new(&ctx, cfg(4, 10, 2)).unwrap();
    assert!(matches!(
        topk.run(&[0.0; 39], None),
        Err(Error::InvalidShape { arg: "scores", .. })
    ));
    assert!(matches!(
        topk.run(&[0.0; 40], Some(&[1, 2])),
        Err(Error::InvalidShape { arg: "lengths", .. })
    ));
    let s = GpuBuffer::from_slice(&ctx, &[0.0f32; 40], "s").unwrap();
    let out = topk.outputs().unwrap();
    let mut enc = ctx.encoder("t");
    // Offsets whose input span overflows usize (or just runs past the buffer).
    for offset in [1, usize::MAX / 2, usize::MAX] {
        let input = TopkInput {
            offset,
            ..TopkInput::new(&s)
        };
        assert!(matches!(
            topk.encode(&mut enc, input, &out),
            Err(Error::InvalidShape { arg: "scores", .. })
        ));
    }
    let small = Topk::new(&ctx, cfg(2, 10, 2)).unwrap().outputs().unwrap();
    assert!(matches!(
        topk.encode(&mut enc, TopkInput::new(&s), &small),
        Err(Error::InvalidShape {
            arg: "out.values",
            ..
        })
    ));
    // encode_stages checks as encode does, and marks nothing on error.
    let mut marks = 0;
    assert!(matches!(
        topk.encode_stages(&mut enc, TopkInput::new(&s), &small, &mut |_, _| marks += 1),
        Err(Error::InvalidShape {
            arg: "out.values",
            ..
        })
    ));
    assert_eq!(marks, 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn random_shapes_match_reference(
        rows in 1usize..40, n in 1usize..5000, kf in 0.0f64..1.0, seed in 0u64..1000,
        sorted: bool, smallest: bool, ragged: bool,
    ) {
        let Some(ctx) = common::gpu() else { return Ok(()) };
        let k = ((n as f64 * kf * kf) as usize).clamp(1, n);
        let data: Vec<f32> = common::normal_data(rows * n, seed).iter()
            .map(|x| (x * 4.0).round()) // many ties
            .collect();
        let lengths: Vec<u32> = (0..rows).map(|r| ((r * 7919 + seed as usize) % (n + 2)) as u32).collect();
        let order = if smallest { Order::Smallest } else { Order::Largest };
        let c = TopkConfig { rows, n, k, order, sorted, ..Default::default() };
        check(&ctx, c, &data, ragged.then_some(&lengths[..]), "proptest");
    }
}

/// Scores of kind `kind` (0 to 6) for random knob tests: rounded normals at a random scale
/// (ties), few distinct values, ascending and descending runs with repeats, normals with NaN,
/// ±inf, ±0.0 and denormals scattered in, one value with a few others, and values spread
/// over the whole exponent range (the wide floor's first digit is sign and exponent).
fn knob_test_scores(kind: u8, len: usize, seed: u64) -> Vec<f32> {
    let normal = common::normal_data(len, seed);
    let hash = |i: usize| (i as u64 ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    let scale = f32::powi(2.0, (seed % 41) as i32 - 20);
    (0..len)
        .map(|i| match kind {
            0 => (normal[i] * 4.0).round() * scale,
            1 => (i * 7 % 3) as f32,
            2 => (i / 3) as f32,
            3 => -((i / 2) as f32),
            4 => match hash(i) % 11 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => f32::NEG_INFINITY,
                3 => 0.0,
                4 => -0.0,
                5 => f32::from_bits(hash(i) as u32 % 64 + 1),
                _ => normal[i],
            },
            5 => {
                if hash(i) % 97 == 0 {
                    normal[i]
                } else {
                    2.5
                }
            }
            _ => {
                let exp = (hash(i) % 254) as i32 - 126;
                let sign = if hash(i) % 2 == 0 { 1.0 } else { -1.0 };
                sign * f32::powi(2.0, exp) * (1.0 + normal[i].abs().fract())
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// Any combination of the tuning knobs, each results-neutral by contract (and several
    /// only ever tried in fixed sets by `check`), on any strategy, order, output mode, score
    /// type, stride, offset, ragged lengths and row batches, with scores that stress the
    /// rules: a config made valid for the device builds, and its result equals the
    /// reference. A knob that becomes a default after a GPU A/B has then been run in
    /// combinations nobody listed. `PROPTEST_CASES=2000` for a long run.
    #[test]
    fn random_knobs_match_reference(
        rows in prop_oneof![1usize..4, 1usize..48],
        n in prop_oneof![1usize..9000, 1usize..20000],
        kf in 0.0f64..1.0, seed in 0u64..1_000_000, knobs: u32,
        kind in 0u8..7, pad in 0usize..6, offset in 0usize..9, batched: bool,
    ) {
        let Some(ctx) = common::gpu() else { return Ok(()) };
        // Or the device whose 1 MiB bindings split inputs past 1 MiB into row batches.
        let ctx = if batched { one_mib_bindings() } else { ctx };
        // Long rows (several row-select tiles, to split) in fewer rows.
        let rows = if n > 9000 { rows.min(8) } else { rows };
        let bit = |b: u32| (knobs >> b) & 1 == 1;
        let pick = |b: u32, width: u32| ((knobs >> b) & ((1 << width) - 1)) as usize;
        let f16 = bit(31);
        let subgroups = bit(5);
        let mut loads = [Loads::Auto, Loads::Scalar, Loads::Vec4, Loads::Auto][pick(19, 2)];
        if loads == Loads::Vec4 && (f16 || subgroups) {
            loads = Loads::Auto;
        }
        // Quads need n, the stride and the offset on multiples of 4.
        let (n, pad, offset) = if loads == Loads::Vec4 {
            ((n / 4 * 4).max(4), pad / 4 * 4, offset / 4 * 4)
        } else {
            (n, pad, offset)
        };
        let stride = n + pad;
        let mut k = ((n as f64 * kf * kf) as usize).clamp(1, n);
        let strategy = [Strategy::Radix, Strategy::OnePass, Strategy::RowSelect, Strategy::Auto]
            [pick(0, 2)];
        if strategy == Strategy::OnePass {
            k = k.min(ONE_PASS_MAX_K);
        }
        let max_wg = largest_sort_workgroup(&ctx);
        let threads = |b: u32| [None, Some(256), Some(512), Some(1024)][pick(b, 2)]
            .filter(|&t| t <= max_wg);
        let c = TopkConfig {
            rows,
            n,
            k,
            order: if bit(3) { Order::Smallest } else { Order::Largest },
            sorted: !bit(2),
            row_stride: (pad > 0).then_some(stride),
            scores: if f16 { ScoreType::F16 } else { ScoreType::F32 },
            strategy,
            subgroups,
            wide_tiles: bit(6),
            wide_bit_tests: bit(7),
            wide_lean: bit(8),
            wide_floor_fold: bit(9),
            values_from_keys: bit(10),
            select_buckets: bit(11),
            select_split: bit(12),
            rank_sort: bit(13),
            wide_prefetch: [None, Some(false), Some(true), None][pick(14, 2)],
            wide_rows: [None, Some(1), Some(2), Some(3), Some(5), Some(8), Some(17),
                Some(MAX_WIDE_ROWS)][pick(16, 3)],
            loads,
            select_cap: [None, Some(256), Some(512), Some(1024)][pick(21, 2)],
            select_workgroup: threads(23),
            select_split_groups: [None, Some(2), Some(3), Some(1 << 20)][pick(25, 2)],
            radix_groups: [None, Some(1), Some(64), Some(2048)][pick(27, 2)],
            sort_workgroup: threads(29),
            ..Default::default()
        };
        // The row select where its slots hold k on this device (else radix, which any k
        // takes); whether they do is `select_slots`'s answer, which `new` must agree with.
        let c = if c.strategy == Strategy::RowSelect && c.select_slots(&ctx).is_err() {
            prop_assert!(Topk::new(&ctx, c).is_err(), "select_slots refused, new built");
            TopkConfig { strategy: Strategy::Radix, ..c }
        } else {
            c
        };
        let data = knob_test_scores(kind, offset + rows * stride, seed);
        let lengths: Vec<u32> = (0..rows)
            .map(|r| ((r as u64 * 7919 + seed) % (n as u64 + 2)) as u32)
            .collect();
        let lengths = bit(4).then_some(&lengths[..]);
        let topk = Topk::new(&ctx, c).unwrap_or_else(|e| panic!("{c:?}: {e}"));
        let out = topk.outputs().unwrap();
        // f16 scores are the data rounded; the reference ranks them widened.
        let bits: Vec<u16> = data.iter().map(|&x| half::f16::from_f32(x).to_bits()).collect();
        let s32 = GpuBuffer::from_slice(&ctx, &data, "s").unwrap();
        let s16 = GpuBuffer::from_slice(&ctx, &bits, "s").unwrap();
        let mut input = if f16 { TopkInput::f16(&s16) } else { TopkInput::new(&s32) }
            .with_offset(offset);
        let l = lengths.map(|l| GpuBuffer::from_slice(&ctx, l, "l").unwrap());
        if let Some(l) = &l {
            input = input.with_lengths(l);
        }
        let mut enc = ctx.encoder("t");
        topk.encode(&mut enc, input, &out).unwrap();
        ctx.submit_and_wait(enc).unwrap();
        let scores = if f16 { widen_f16(&bits) } else { data };
        let want = topk_ref(&scores, &c, offset, lengths).unwrap();
        let gpu = out.read(&ctx).unwrap();
        let what = format!("kind {kind} offset {offset} {c:?}");
        if c.sorted {
            assert_same(&gpu, &want, &what);
        } else {
            assert_same(&best_first(&gpu, &c), &want, &what);
        }
    }
}

/// A device with a 1 MiB storage-binding limit forces `topk` to split a 6 MiB input into row
/// batches bound at aligned offsets (here with an odd row stride and offset, so every batch
/// start needs an in-binding shift), and to reject a single row larger than one binding.
#[test]
fn inputs_larger_than_one_binding_are_split_into_row_batches() {
    if common::gpu().is_none() {
        return;
    }
    let ctx = one_mib_bindings();
    check_strided(&ctx, (300, 5000, 5003, 7), 50);
    check_strided(&ctx, (300, 5000, 5004, 8), 50);
    assert!(matches!(
        Topk::new(&ctx, cfg(1, 300_000, 4)),
        Err(Error::BufferTooLarge {
            limit: "max_storage_buffer_binding_size",
            ..
        })
    ));
}

/// Outputs larger than one binding are split the same way: on a device whose storage
/// bindings hold 1 MiB, rows × k results of 1.2 MB (ragged rows, each strategy that takes the
/// k, sorted and not), and on one whose bindings hold 64 KiB, 20000 rows' counts and lengths
/// (80 KB each), are written and read through bindings of each batch's slice. Results larger
/// than a buffer, or than a binding in one row, are typed errors.
#[test]
fn outputs_larger_than_one_binding_are_split_into_row_batches() {
    if common::gpu().is_none() {
        return;
    }
    let ctx = one_mib_bindings();
    let by = |strategy| Variant {
        strategy,
        ..Default::default()
    };
    let [radix, row_select, one_pass] =
        [Strategy::Radix, Strategy::RowSelect, Strategy::OnePass].map(by);
    let wide = Variant {
        wide_tiles: true,
        ..one_pass
    };
    for ((rows, n, k), variants) in [
        ((300, 1500, 1000), vec![radix, row_select]),
        ((600, 600, 512), vec![one_pass, wide]),
    ] {
        let data = common::normal_data(rows * n, (rows + k) as u64);
        let lengths: Vec<u32> = (0..rows as u32).map(|r| r * 37 % (n as u32 + 1)).collect();
        for sorted in [true, false] {
            let c = TopkConfig {
                sorted,
                ..cfg(rows, n, k)
            };
            let what = format!("{rows}x{n} k={k} sorted={sorted}");
            check_variants(&ctx, c, &data, Some(&lengths), &what, &variants);
        }
    }
    // Bindings of 64 KiB hold 16384 rows' counts or lengths.
    let (rows, n) = (20_000, 2);
    let data = common::normal_data(rows * n, 5);
    let lengths: Vec<u32> = (0..rows as u32).map(|r| r % 3).collect();
    let row_select = Variant {
        select_workgroup: Some(256),
        ..row_select
    };
    let variants = [radix, one_pass, wide, row_select];
    let c = cfg(rows, n, 1);
    check_variants(
        &bindings_of(1 << 16),
        c,
        &data,
        Some(&lengths),
        "20000 rows",
        &variants,
    );
    // Results that no buffer holds (256 MiB at most here) are refused when built.
    assert!(matches!(
        Topk::new(&ctx, cfg(70_000_000, 1, 1)),
        Err(Error::BufferTooLarge {
            limit: "max_buffer_size",
            ..
        })
    ));
    // f16 scores: the row's input fits one binding, its 300000 results do not.
    let f16_row = TopkConfig {
        scores: ScoreType::F16,
        ..cfg(1, 500_000, 300_000)
    };
    assert!(matches!(
        Topk::new(&ctx, f16_row),
        Err(Error::BufferTooLarge {
            limit: "max_storage_buffer_binding_size",
            ..
        })
    ));
}

/// Every one of the 65536 f16 bit patterns, each row holding 512 of them (k = n, so each comes
/// back), through every strategy: the widening is exact for each, subnormals and NaN payloads
/// included. A float conversion would flush subnormals on some drivers (NVIDIA's Vulkan did);
/// the kernel widens in integer arithmetic, and this checks that arithmetic on any adapter.
#[test]
fn f16_widening_is_exact_for_every_bit_pattern() {
    let ctx = gpu_or_skip!();
    let (rows, n) = (128, 512);
    // Interleaved so every row mixes signs, exponents, subnormals and NaNs.
    let bits: Vec<u16> = (0..rows * n)
        .map(|i| ((i % rows) * n + i / rows) as u16)
        .collect();
    let widened = widen_f16(&bits);
    for (strategy, wide_tiles) in [
        (Strategy::Radix, false),
        (Strategy::OnePass, false),
        (Strategy::OnePass, true),
        (Strategy::RowSelect, false),
    ] {
        let c = TopkConfig {
            scores: ScoreType::F16,
            strategy,
            wide_tiles,
            ..cfg(rows, n, n)
        };
        let gpu = Topk::new(&ctx, c).unwrap().run_f16(&bits, None).unwrap();
        let cpu = topk_ref(&widened, &c, 0, None).unwrap();
        let what = format!("all f16 patterns, {strategy:?} wide={wide_tiles}");
        assert_same(&gpu, &cpu, &what);
    }
}

/// f16 scores (`topk_f16`): the same rules on the exactly widened values, including
/// f16 NaN, ±inf, −0.0, subnormals and the many ties a 16-bit type produces.
#[test]
fn f16_scores_match_reference_on_widened_values() {
    let ctx = gpu_or_skip!();
    let f16_cfg = |rows, n, k| TopkConfig {
        scores: ScoreType::F16,
        ..cfg(rows, n, k)
    };
    let (rows, n) = (37, 2049);
    let mut bits: Vec<u16> = common::normal_data(rows * n, 12)
        .iter()
        .map(|&x| half::f16::from_f32(x * 3.0).to_bits())
        .collect();
    for (i, b) in bits.iter_mut().enumerate() {
        *b = match i % 97 {
            0 => 0x7E00, // NaN
            1 => 0x7C00, // +inf
            2 => 0xFC00, // -inf
            3 => 0x8000, // -0.0
            4 => 0x0001, // smallest subnormal
            _ => *b,
        };
    }
    let widened = widen_f16(&bits);
    let lengths: Vec<u32> = (0..rows as u32).map(|r| r * 61 % 2100).collect();
    for k in [1, 33, 700, 2049] {
        for order in [Order::Largest, Order::Smallest] {
            // Radix, one pass, one pass with the subgroup append (`topk_f16_subgroup`), in
            // wide tiles, and the row select in both tiers (where its slots hold k).
            for (strategy, subgroups, wide_tiles) in [
                (Strategy::Radix, false, false),
                (Strategy::OnePass, false, false),
                (Strategy::OnePass, true, false),
                (Strategy::OnePass, false, true),
                (Strategy::RowSelect, false, true),
                (Strategy::RowSelect, true, true),
            ] {
                let c = TopkConfig {
                    order,
                    strategy,
                    subgroups,
                    wide_tiles,
                    ..f16_cfg(rows, n, k)
                };
                if strategy == Strategy::OnePass && k > ONE_PASS_MAX_K
                    || strategy == Strategy::RowSelect && c.select_slots(&ctx).is_err()
                {
                    continue;
                }
                let gpu = Topk::new(&ctx, c)
                    .unwrap()
                    .run_f16(&bits, Some(&lengths))
                    .unwrap();
                let cpu = topk_ref(&widened, &c, 0, Some(&lengths)).unwrap();
                assert_same(
                    &gpu,
                    &cpu,
                    &format!("f16 k={k} {order:?} {strategy:?} {subgroups} {wide_tiles}"),
                );
            }
        }
    }
    // An f32 buffer handed to an f16 kernel is a typed error, not garbage.
    let topk = Topk::new(&ctx, f16_cfg(1, 8, 2)).unwrap();
    let s = GpuBuffer::from_slice(&ctx, &[0.0f32; 8], "s").unwrap();
    let out = topk.outputs().unwrap();
    assert!(matches!(
        topk.encode(&mut ctx.encoder("t"), TopkInput::new(&s), &out),
        Err(Error::InvalidShape { arg: "scores", .. })
    ));
}
