//! `Strategy::Auto`'s rules: which path is fastest for a shape, read off GPU sweeps.

use super::config::{ONE_PASS_MAX_K, Strategy};

/// One pass or radix: `Strategy::Auto`'s choice where the row select cannot run (and its
/// whole choice before the row select existed), read off the H200 sweeps of 2026-11-27
/// (`bench --kernel topk_sweep`: 105 shapes of rows × n × k, every path timed, the
/// library's default shader checks). The one pass gives each row one workgroup, so it wins
/// where enough rows fill the GPU, or rows are short enough to finish before radix's ~45 µs
/// of dependent dispatches; radix spreads a long row over many workgroups and wins for few
/// long rows (decode).
/// Against the wide one pass (the default: its seeds' floor, refreshed tau and one atomic
/// per thread's appends; the last sweep of 2026-11-27) this picks the faster path in all
/// 105 (in the sweep before the batched appends, it was 0.6 µs off once); against the 512-entry
/// tiles (`wide_tiles: false`; rule from the sweep with all checks) it mispicks 4, all at
/// k = 512.
fn one_pass_wins(rows: usize, n: usize, k: usize, wide_tiles: bool) -> bool {
    if wide_tiles {
        k <= ONE_PASS_MAX_K
            && (rows >= 256
                || n <= 4096
                || (rows >= 64 && (k <= 256 || n >= 262144))
                || (n <= 16384 && k <= 256)
                || (k <= 32 && (n <= 65536 || rows >= 16))
                || (rows >= 16 && n <= 65536 && k <= 128))
    } else {
        k <= 256
            && (rows >= 256
                || n <= 4096
                || (n <= 8192 && k <= 128)
                || (rows >= 64 && n <= 65536 && k <= 128)
                || (n <= 16384 && k <= 32))
    }
}

/// Where the row select beats the one pass (H200 sweep of 2026-11-27, 126 shapes of rows ×
/// n × k with every path: it beat radix in all of them, by up to 14× at 256 × 262144, and
/// tied it at 4096 × 4096, k = 2048; this rule picks the fastest path in all 126). The one
/// pass's 256-thread workgroups cost less per row where rows are many and k small; the row
/// select's one 1024-thread workgroup per row wins for few rows, large k and long rows.
fn row_select_wins(rows: usize, n: usize, k: usize) -> bool {
    if k > ONE_PASS_MAX_K {
        return true;
    }
    if n <= 4096 {
        return k > 256 && rows <= 256;
    }
    if k > 256 {
        return true;
    }
    if k > 128 {
        return rows <= 256 || n >= 65536;
    }
    if k > 32 {
        return rows <= 64 || (rows <= 256 && n >= 65536);
    }
    n >= 65536 && rows <= 64
}

/// `Strategy::Auto`'s choice: the row select where it wins and the device can run it
/// (`row_select`), else the one pass where it wins, else radix.
pub(super) fn auto_strategy(
    rows: usize,
    n: usize,
    k: usize,
    wide_tiles: bool,
    row_select: bool,
) -> Strategy {
    if row_select && row_select_wins(rows, n, k) {
        Strategy::RowSelect
    } else if one_pass_wins(rows, n, k, wide_tiles) {
        Strategy::OnePass
    } else {
        Strategy::Radix
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::topk::TopkConfig;

    /// `Strategy::Auto` only picks the one pass where it can run (k ≤ ONE_PASS_MAX_K) and the
    /// row select where the device can (k within its slots), and keeps the regimes the
    /// sweeps measured: the row select for the decode rows, few rows and large k, the one
    /// pass for many rows of small k, radix only where the row select cannot run.
    #[test]
    fn auto_picks_a_path_that_runs() {
        // An H200's limits (48 KiB of workgroup memory: 4096 slots), a WebGPU default
        // adapter's (16 KiB: 1024 slots) and none for the row select (8 KiB).
        let h200 = wgpu::Limits {
            max_compute_workgroup_storage_size: 49152,
            max_compute_invocations_per_workgroup: 1024,
            max_compute_workgroup_size_x: 1024,
            ..wgpu::Limits::default()
        };
        let small = wgpu::Limits {
            max_compute_workgroup_storage_size: 8192,
            ..wgpu::Limits::default()
        };
        for limits in [&h200, &wgpu::Limits::default(), &small] {
            for rows in [1, 16, 63, 64, 255, 256, 70000] {
                for n in [1, 4096, 4097, 8192, 16384, 65536, 65537, 1 << 20] {
                    for k in [1, 32, 33, 128, 129, 256, 257, 511, 512, 513, 2048, 4096] {
                        for wide_tiles in [true, false] {
                            let cfg = TopkConfig {
                                rows,
                                n,
                                k: k.min(n),
                                wide_tiles,
                                ..Default::default()
                            };
                            let what = format!("{rows}x{n} k={k} wide={wide_tiles}");
                            match cfg.resolve(limits) {
                                Strategy::OnePass => assert!(cfg.k <= ONE_PASS_MAX_K, "{what}"),
                                Strategy::RowSelect => {
                                    assert!(cfg.slots_on(limits).is_ok(), "{what}")
                                }
                                Strategy::Radix => {}
                                Strategy::Auto => panic!("{what}: unresolved"),
                            }
                        }
                    }
                }
            }
        }
        let auto_on = |limits, rows, n, k| {
            TopkConfig {
                rows,
                n,
                k,
                ..Default::default()
            }
            .resolve(limits)
        };
        let auto = |rows, n, k| auto_on(&h200, rows, n, k);
        use Strategy::{OnePass, Radix, RowSelect};
        // The shapes.
        assert_eq!(auto(1, 131072, 2048), RowSelect);
        assert_eq!(auto(64, 131072, 2048), RowSelect);
        assert_eq!(auto(4096, 65536, 32), OnePass);
        assert_eq!(auto(4096, 65536, 256), RowSelect);
        assert_eq!(auto(65536, 4096, 64), OnePass);
        // The row select beat radix everywhere: one very long row, many rows past the one
        // pass's k.
        assert_eq!(auto(1, 262144, 8), RowSelect);
        assert_eq!(auto(1, 262144, 2048), RowSelect);
        assert_eq!(auto(4096, 65536, 1024), RowSelect);
        assert_eq!(auto(4096, 4096, 512), OnePass);
        // The row select takes k ≥ 128 in long rows, and small k in long rows of few rows;
        // the one pass short rows of small k and 256 rows of small k.
        assert_eq!(auto(16, 65536, 128), RowSelect);
        assert_eq!(auto(64, 65536, 32), RowSelect);
        assert_eq!(auto(16, 262144, 8), RowSelect);
        assert_eq!(auto(256, 262144, 8), OnePass);
        assert_eq!(auto(64, 4096, 256), OnePass);
        assert_eq!(auto(256, 16384, 128), OnePass);
        assert_eq!(auto(256, 4096, 512), RowSelect);
        // Without room for the row select, the rule before it.
        let without = |rows, n, k| auto_on(&small, rows, n, k);
        assert_eq!(without(64, 131072, 2048), Radix);
        assert_eq!(without(1, 262144, 8), Radix);
        assert_eq!(without(1, 65536, 32), OnePass);
        assert_eq!(without(16, 65536, 256), Radix);
    }
}
