//! A config's sizes on a device: radix chunks, scratch, row batches, the row select's slots.

use super::config::{Strategy, TopkConfig};
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::shader::wgsl;

pub(super) const WG: usize = wgsl::topk::WG as usize;
/// Pairs one workgroup-local bitonic step holds (`BLOCK`).
pub(super) const SORT_BLOCK: usize = wgsl::topk::BLOCK as usize;
/// Radix workgroups we aim for per pass by default. H200 (2026-11-27): 512 beat 2048 on
/// both decode shapes; 1×131072 k=2048 104 -> 98 µs (1024-entry chunks), 64×131072 421 -> 336
/// µs (16384-entry chunks: every chunk adds 256 atomics per pass into its row's histogram).
const TARGET_GROUPS: usize = 512;
/// Largest chunk a workgroup scans, unless the row is so long that 256 chunks need more.
const MAX_CHUNK: usize = 16384;
/// Shortest chunk of a default plan: 4 entries per thread, beside 256 digits of fixed work.
const MIN_CHUNK: usize = 1024;
/// Scratch per batch stays below this, whatever the rows.
const SCRATCH_BYTES: usize = 64 << 20;
/// u32s of atomic row histogram per row of several chunks: three 256-digit slots that the
/// passes rotate through.
const ROW_HIST: usize = 3 * 256;

/// Most workgroups per row of the split row select ([`TopkConfig::select_split`]): its
/// arrivals share a 32-bit word with a count of up to this many times 4097.
const MAX_SELECT_SPLIT: usize = 64;

/// Workgroups the split row select aims for in all by default
/// ([`TopkConfig::select_split_groups`]): an H200 holds one 1024-thread row-select
/// workgroup per SM (63 registers), 132 in all.
#[doc(hidden)]
pub const SPLIT_GROUPS: u32 = 128;

/// Bounds of [`TopkConfig::select_cap`].
pub(super) const MIN_SELECT_CAP: u32 = 256;
pub(super) const MAX_SELECT_CAP: u32 = 4096;

/// Workgroup memory of `topk_row_select` (and `topk_row_select_subgroup`) with `cap` slots:
/// the slots (8 bytes each), the histogram copies, the digit scan (digits, blocks, pick),
/// three counters (`sel_count`, `sel_moved`, the subgroup tier's `sel_partial`) and the
/// split's three words, a vec3 that takes four (`sel_split`).
pub(super) fn select_memory(cap: u32) -> usize {
    let hist = 256 * wgsl::topk::HIST_COPIES as usize * 4;
    cap as usize * 8 + hist + (256 + 16 + 4 + 3 + 4) * 4
}

/// [`Strategy::RowSelect`]'s default slots per row on `ctx`'s device (so its largest k): the
/// most that its workgroup memory holds, a power of two up to 4096 (2048 with 32 KiB, 4096
/// with 48 KiB).
pub fn row_select_slots(ctx: &GpuContext) -> u32 {
    slots_for(ctx.limits())
}

pub(super) fn slots_for(limits: &wgpu::Limits) -> u32 {
    let memory = limits.max_compute_workgroup_storage_size as usize;
    (MIN_SELECT_CAP.trailing_zeros()..=MAX_SELECT_CAP.trailing_zeros())
        .rev()
        .map(|b| 1 << b)
        .find(|&c| select_memory(c) <= memory)
        .unwrap_or(MIN_SELECT_CAP)
}

/// The device's largest workgroup (in x).
pub(super) fn max_workgroup(l: &wgpu::Limits) -> u32 {
    l.max_compute_invocations_per_workgroup
        .min(l.max_compute_workgroup_size_x)
}

/// Sizes derived from the config and the device limits.
#[derive(Clone, Copy, Debug)]
pub(super) struct Plan {
    /// The algorithm (never Auto).
    pub(super) strategy: Strategy,
    pub(super) chunk: usize,
    pub(super) chunks: usize,
    pub(super) sort_size: usize,
    pub(super) batch_rows: usize,
    pub(super) work_per_row: usize,
    /// u32s of `row_hist` per row: none for the one-pass path and one-chunk rows; the split
    /// row select's counters and list.
    pub(super) row_hist_per_row: usize,
    /// Workgroups per row of the row select: 1, or with [`TopkConfig::select_split`] up to one
    /// per tile of its row (`SEL_SPLIT`).
    pub(super) select_split: usize,
}

impl Plan {
    pub(super) fn one_pass(&self) -> bool {
        self.strategy == Strategy::OnePass
    }

    /// Consecutive entries a compaction thread takes per tile (`COMPACT_RUN`): chunk / 512,
    /// 1 to 16 (`MAX_RUN`, the size of the shader's key array). A GPU's chunk of 1024 to
    /// 8192 entries is 2 tiles whose threads each keep chunk / 512 loads in flight, next to
    /// their neighbours'; a 16384-entry chunk (CPU adapters, long rows) is 4 tiles, few scans
    /// for a driver that pays for each barrier.
    pub(super) fn compact_run(&self) -> usize {
        (self.chunk / (2 * WG)).clamp(1, wgsl::topk::MAX_RUN as usize)
    }

    pub(super) fn new(cfg: &TopkConfig, limits: &wgpu::Limits, cpu: bool) -> Result<Self> {
        let n = cfg.n;
        // ≤ 256 chunks per row (one compaction scan thread each), ≥ 256 entries (one per thread).
        let lower = n.div_ceil(WG).next_multiple_of(WG).max(WG);
        let target = |groups: usize| (cfg.rows.max(1) * n).div_ceil(groups).next_multiple_of(WG);
        let chunk = match cfg.radix_groups {
            Some(groups) => target(groups),
            // A CPU adapter runs a few workgroups at a time and pays a fixed cost for each
            // (lavapipe: decode 2-3x faster in 8 chunks than in 64): the longest chunks.
            None if cpu => MAX_CHUNK,
            // No shorter than MIN_CHUNK, so that a workgroup's fixed work (settling the
            // previous digit, writing its 256 counts, adding them into the row histogram)
            // stays small beside its scan of the chunk.
            None => target(TARGET_GROUPS).max(MIN_CHUNK),
        };
        let chunk = chunk.min(MAX_CHUNK).min(n.next_multiple_of(WG)).max(lower);
        let chunks = n.div_ceil(chunk);
        let strategy = cfg.resolve(limits);
        // The one pass and the row select need no scratch.
        let no_scratch = matches!(strategy, Strategy::OnePass | Strategy::RowSelect);
        let (sort_size, work_per_row) = if no_scratch {
            (2, 1)
        } else {
            (
                cfg.k.next_power_of_two().max(2),
                // hist (256 per chunk), info (1 per chunk), state (4 slots of 4)
                chunks * 256 + chunks + 4 * 4,
            )
        };
        let binding = limits.max_storage_buffer_binding_size as usize;
        let scratch = SCRATCH_BYTES.min(binding);
        let elem = cfg.scores.bytes();
        let input_row = cfg.stride().saturating_mul(elem);
        let select_split = if strategy == Strategy::RowSelect && cfg.select_split {
            let tile = wgsl::topk::WIDE_PER_THREAD as usize * cfg.select_threads(limits)? as usize;
            let groups = cfg.select_split_groups.unwrap_or(SPLIT_GROUPS) as usize;
            n.div_ceil(tile)
                .min(MAX_SELECT_SPLIT)
                .min((groups / cfg.rows.max(1)).max(1))
        } else {
            1
        };
        let row_hist_per_row = if select_split > 1 {
            // The split row select's word (count and arrivals), parity and two (key, index)
            // lists, one per call in turn.
            2 + 4 * cfg.slots_on(limits)? as usize
        } else if no_scratch || chunks == 1 {
            0
        } else {
            ROW_HIST
        };
        let by_work = scratch / ((work_per_row + row_hist_per_row) * 4);
        let by_pairs = binding / (sort_size * 8);
        // One batch's input slice, plus up to one alignment unit of shift, fits one binding.
        let align = limits.min_storage_buffer_offset_alignment as usize;
        let by_input = match binding.checked_sub(align + n * elem) {
            Some(rest) => rest / input_row + 1,
            None => 0,
        };
        // So do its k values (and indices) a row; with k ≥ 1, so do its counts and lengths,
        // one word a row.
        let by_output = binding.saturating_sub(align) / (4 * cfg.k.max(1));
        let by_index = (u32::MAX as usize / 2) / cfg.stride();
        let batch_rows = cfg
            .rows
            .min(by_work)
            .min(by_pairs)
            .min(by_input)
            .min(by_output)
            .min(by_index);
        if batch_rows == 0 && cfg.rows > 0 {
            return Err(Error::BufferTooLarge {
                what: "one top-k row (input, output, scratch or sort buffer)",
                requested: (input_row
                    .max(sort_size * 8)
                    .max(work_per_row * 4)
                    .max(cfg.k * 4)) as u64,
                limit: "max_storage_buffer_binding_size",
                max: binding as u64,
            });
        }
        Ok(Plan {
            strategy,
            chunk,
            chunks,
            sort_size,
            batch_rows: batch_rows.max(1),
            work_per_row,
            row_hist_per_row,
            select_split,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every plan the kernels may see: whole 256-entry chunks, at most 256 per row (one
    /// compaction scan thread each), covering the row; the default never cuts a row into
    /// chunks shorter than `MIN_CHUNK`.
    #[test]
    fn radix_plans_fit_the_kernels() {
        let limits = wgpu::Limits::default();
        for rows in [1, 3, 64, 4096, 70000] {
            for n in [1, 255, 256, 257, 5000, 131072, 1 << 20, 1 << 24] {
                for groups in [None, Some(1), Some(64), Some(2048), Some(1 << 20)] {
                    for cpu in [false, true] {
                        let cfg = TopkConfig {
                            rows,
                            n,
                            k: n.min(2048),
                            strategy: Strategy::Radix,
                            radix_groups: groups,
                            ..Default::default()
                        };
                        let Ok(plan) = Plan::new(&cfg, &limits, cpu) else {
                            continue; // a row too large for the default binding limit
                        };
                        let what = format!("rows={rows} n={n} groups={groups:?} cpu={cpu}");
                        assert_eq!(plan.chunk % WG, 0, "{what}");
                        assert!(plan.chunks <= WG && plan.chunks * plan.chunk >= n, "{what}");
                        // Rows of several chunks sum their histograms in `row_hist`.
                        let atomic = plan.chunks > 1;
                        assert_eq!(plan.row_hist_per_row > 0, atomic, "{what}");
                        if groups.is_none() {
                            assert!(plan.chunks == 1 || plan.chunk >= MIN_CHUNK, "{what}");
                        }
                    }
                }
            }
        }
    }
}
