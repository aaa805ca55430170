//! `topk`: exact row-wise top-k of a `[rows, n]` f32 score matrix.
//!
//! Three algorithms (see `shaders/shared/topk_body.wgsl`), chosen per config by [`Strategy`],
//! with identical results bit for bit:
//! - **Radix** (any k): MSB-first radix select over order-preserving u32 keys, 8 bits per
//!   pass; each pass histograms every (row, chunk) in its own workgroup and sums the row's
//!   histogram with atomics, and every workgroup of the next dispatch settles the digit from
//!   it, so one long row spreads over up to 256 workgroups and many rows fill the GPU without
//!   any workgroup waiting on another. A compaction (which settles the last digit) writes the
//!   keys above the threshold and the lowest-index keys equal to it, then a bitonic sort
//!   orders them: 6 dispatches for k ≤ 2048.
//! - **One pass** (k ≤ [`ONE_PASS_MAX_K`]): one workgroup per row reads it once, keeping
//!   candidates that beat the running k-th key in workgroup memory; when full, it sorts the
//!   new arrivals and merges them into the sorted best k. One read of the input and one
//!   dispatch instead of ~10: the choice for many rows and small k. A subgroup tier
//!   (`topk_subgroup`, `topk_f16_subgroup`, `TopkConfig::subgroups`) appends a busy tile's
//!   candidates with one atomic per subgroup; it measured slower on an H200, so the core
//!   kernel is the default, and both are tested. By default (`TopkConfig::wide_tiles`) it
//!   reads the row in 4096-entry tiles held in registers (`topk_one_pass_wide`: per-thread
//!   bests set a key floor for the first tile, the running k-th is refreshed as the row goes,
//!   appends past the buffer retry after a shrink), f32 scores as vec4s where rows sit on
//!   quads ([`Loads`]); `wide_tiles: false` gives 512-entry tiles (`topk_one_pass`).
//! - **Row select** (k ≤ its slots, [`TopkConfig::select_slots`]): one workgroup of up to
//!   1024 threads per row and one dispatch (`topk_row_select`): a strided sample's floor,
//!   one read gathering the entries above it into workgroup memory (an exact radix select
//!   over the row when the sample misjudged it), then the k best selected and sorted there.
//!   The choice for few rows, large k and long rows (decode).
//!
//! Rules, identical in [`crate::reference::topk`]:
//! - NaN ranks below every number (also below −∞) in both orders: it is only selected when a
//!   row has fewer than k non-NaN entries.
//! - −0.0 and +0.0 are equal; ties go to the smaller index, so results are deterministic.
//! - Values are returned exactly as stored in the input (bit for bit; f16 input widened
//!   exactly to f32).
//! - A row with fewer than k entries (ragged `lengths`) returns all of them; the other slots
//!   hold index `u32::MAX` and value −∞ (+∞ when selecting the smallest), and `counts[row]`
//!   says how many are real.
//! - `sorted: false` skips the sort: each row lists the keys above the threshold in index
//!   order, then the tied ones in index order (still deterministic).

use crate::buffer::{ElemType, Elems, GpuBuffer, bytes_of, check_binding_size};
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::params::{TopkParams, TopkStepParams};
use crate::shader::{self, BindingKind, Module, Tier, wgsl};
use crate::shape::row_span;
use std::sync::Mutex;

/// Which end of each row to keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    Largest,
    Smallest,
}

/// Element type of the scores: [`ElemType::F16`] scores are raw bits in a `GpuBuffer<u16>`
/// and come back widened to f32 exactly (subnormals included). The kernel reads them as bits,
/// so f16 top-k runs on every adapter, without `Features::SHADER_F16`.
pub type ScoreType = ElemType;

/// Largest k of the one-pass path (512: its candidate buffer holds k plus one 512-entry tile).
pub const ONE_PASS_MAX_K: usize = (wgsl::topk::ONE_PASS_CAP - wgsl::topk::ONE_PASS_TILE) as usize;

/// Most rows one wide one-pass workgroup takes ([`TopkConfig::wide_rows`]).
pub const MAX_WIDE_ROWS: u32 = 64;

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
fn auto_strategy(rows: usize, n: usize, k: usize, wide_tiles: bool, row_select: bool) -> Strategy {
    if row_select && row_select_wins(rows, n, k) {
        Strategy::RowSelect
    } else if one_pass_wins(rows, n, k, wide_tiles) {
        Strategy::OnePass
    } else {
        Strategy::Radix
    }
}

/// Which algorithm [`Topk`] uses; all give the same bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Measured on an H200 (see `auto_strategy`): the row select for few rows, large k or
    /// long rows, where the device can run it for this k; the one pass for many rows of
    /// small k, and short rows; radix where neither runs (or, without the row select, as
    /// before it: few very long rows). [`TopkConfig::strategy_on`] says which.
    #[default]
    Auto,
    Radix,
    /// Needs k ≤ [`ONE_PASS_MAX_K`].
    OnePass,
    /// One workgroup of up to 1024 threads per row and one dispatch (`topk_row_select`): a
    /// strided sample sets a key floor, one read gathers the entries above it into
    /// workgroup memory (an exact radix select over the row when the sample misjudged it),
    /// and they are sorted there. For few long rows of large k (decode), where radix pays
    /// for six dependent dispatches. Needs k ≤ [`TopkConfig::select_cap`]'s value (4096 on
    /// devices with 48 KiB of workgroup memory); an error at [`Topk::new`] otherwise.
    RowSelect,
}

/// How the one pass loads f32 scores. On an H200 (2026-11-27 sweep) vec4 loads made the wide
/// one pass up to 1.36× faster (65536×4096, k = 64: 3.19 → 2.36 ms) and never more than 3 %
/// slower; the 512-entry tiles gained nothing from them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Loads {
    /// vec4 loads where the config allows them (f32 scores, `n` and the row stride multiples
    /// of 4, no `subgroups`) and the call's offset is a multiple of 4; scalar loads otherwise
    /// (a call at another offset runs a scalar pipeline, compiled on its first use).
    #[default]
    Auto,
    /// 4-byte loads.
    Scalar,
    /// 16-byte loads (`topk_quad`), required: a config that cannot have them is an error at
    /// [`Topk::new`], an offset that is not a multiple of 4 one at encode.
    Vec4,
}

/// Shape and options of a top-k call; fixed when the kernel is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopkConfig {
    pub rows: usize,
    /// Row length (entries per row).
    pub n: usize,
    /// Entries kept per row, `1 ≤ k ≤ n`.
    pub k: usize,
    pub order: Order,
    /// Sort each row best-first (default); `false` skips the sort.
    pub sorted: bool,
    /// Elements between row starts in the input (`None`: `n`), to read a slice of a wider
    /// matrix.
    pub row_stride: Option<usize>,
    pub scores: ScoreType,
    pub strategy: Strategy,
    /// Use the subgroup tier (`topk_subgroup`, `topk_f16_subgroup`) when the adapter has
    /// `SUBGROUP`. The one pass: after a tile that admitted many candidates, its append takes
    /// one atomic per subgroup. The row select (`topk_row_select_subgroup`): its gather takes
    /// one atomic per subgroup and tile instead of one per thread, and its sort holds four
    /// entries per thread in registers and exchanges within a subgroup by shuffles, so only
    /// steps between subgroups pass through workgroup memory, a barrier each (2048 entries at
    /// 32 lanes: 18 barriers instead of 66); where a subgroup is partial it runs as the core
    /// tier does. Default false: on an H200 (NVIDIA Vulkan 580.159.04,
    /// 4096×65536, k=32) the one pass took 1.62 ms in the core tier, 2.45 ms in this one
    /// (3.01 ms when every tile used subgroup operations); the row select's sort is not yet
    /// measured on a GPU. Results are identical either way.
    pub subgroups: bool,
    /// Workgroups the radix path aims for per histogram pass (each scans one chunk of a row;
    /// at most 256 chunks per row). `None`: 512 on GPUs, with chunks no shorter than 1024
    /// entries; on CPU adapters (lavapipe runs a few workgroups at a time and pays per
    /// workgroup) the longest chunks, 16384 entries. A tuning knob: results are identical for
    /// any value.
    pub radix_groups: Option<usize>,
    /// Threads per workgroup of the radix path's in-workgroup bitonic sort (256, 512 or 1024,
    /// within the device's `max_compute_invocations_per_workgroup`; `None`: 512 for 2048 or
    /// more survivors per row where the device allows, else 256). A row's 2048 survivors take
    /// 66 barrier-separated steps in one workgroup (about 37 µs of the decode row's 70 on an
    /// H200): more threads, fewer compare-exchanges each per step. A tuning knob: results are
    /// identical for any value.
    pub sort_workgroup: Option<u32>,
    /// How the one pass loads f32 scores: vec4 where it can ([`Loads::Auto`], the default),
    /// always, or never. The radix path ignores it. Results are identical either way.
    pub loads: Loads,
    /// The radix path sorts its survivors by rank (`topk_rank_sort`: each counts those that
    /// come before it and writes its own slot; one dispatch of ⌈k / 256⌉ workgroups per row)
    /// instead of by the bitonic network (one workgroup per row up to k = 2048, 66 barrier
    /// steps at 2048). kept² comparisons per row, so meant for few rows of large k (decode).
    /// Sorted output only; the one pass ignores it. Opt-in: on an H200 it was slower than the
    /// bitonic sort even there (1 × 131072, k = 2048: 82.0 against 69.4 µs, 2026-11-27).
    /// Results are identical either way.
    pub rank_sort: bool,
    /// The one pass reads tiles of 4096 entries, 16 per thread held in registers
    /// (`topk_one_pass_wide`, the default), or, with `false`, tiles of 512 (`topk_one_pass`).
    /// Wide: in a row's first tile each thread's best entry (for k > 64 its best two) is a
    /// seed, and histograms of the seeds' keys give a floor that k entries reach, so the tile
    /// admits about k entries; the running k-th (tau) is refreshed whenever max(k, 32)
    /// candidates have arrived; appends overflow into a retry instead of keeping a tile's
    /// worth of headroom, so a tile costs one barrier instead of eight; a vec4 below tau
    /// skips its key conversions; with vec4 loads each thread's 16 entries are four 16-byte
    /// loads. On an H200 (2026-11-27 sweep, vec4 loads, before the floor and the refresh,
    /// which made it 1.15–1.57× faster again on the shapes) it beat the 512-entry
    /// tiles on 102 of 105 shapes, 1.3–4.2× at k = 512 and up to 1.8× at k ≤ 256; those won
    /// by 2–3 % on three (1024 × 65536, k = 32–256) and on the 4096 × 65536 rows by
    /// 2 % (k = 32) and 5 % (k = 256), and by up to 20 % on such many-row shapes against
    /// scalar wide loads. The radix path ignores it; results are identical either way.
    pub wide_tiles: bool,
    /// Consecutive rows one wide one-pass workgroup takes in turn (1 to [`MAX_WIDE_ROWS`];
    /// `None`: 1), so that many short rows (65536 × 4096) pay a workgroup's start and end
    /// once per group. Unmeasured on a GPU so far, hence 1 by default. A tuning knob: results
    /// are identical for any value; the 512-entry tiles and the other paths ignore it.
    pub wide_rows: Option<u32>,
    /// Whether the wide one pass loads its next tile (with [`TopkConfig::wide_rows`], possibly
    /// the next row's first) while working on this one. `None`: where a row has more than one
    /// tile; one-tile rows ran 10 % faster without it on an H200 (65536 × 4096, k = 64, 1.853
    /// → 1.665 ms, 2026-11-27: the second tile's registers cost occupancy). Profiling and
    /// tuning only; results are identical either way.
    #[doc(hidden)]
    pub wide_prefetch: Option<bool>,
    /// [`Strategy::RowSelect`]'s candidate slots per row, a power of two from 256 to 4096
    /// within the device's workgroup memory (`None`: the largest that fits, at most 4096);
    /// k may not exceed it. Fewer slots make the sample's floor miss more often (then the
    /// exact radix levels run); a tuning and testing knob: results are identical for any
    /// value.
    pub select_cap: Option<u32>,
    /// Threads of a [`Strategy::RowSelect`] workgroup: 256, 512 or 1024 within the device's
    /// limits (`None`: the largest). Results are identical for any value.
    pub select_workgroup: Option<u32>,
    /// The wide one pass admits a tile's entries by bit tests, four at once (key ≥ tau's key,
    /// then key > it, as floats compared on their bits; indices compared only for keys equal
    /// to tau's), as the row select's gather does (H200: its gather went from 12 to 3.4 µs of
    /// a decode row that way), instead of a per-entry key conversion and comparison. Unmeasured
    /// in the one pass on a GPU; results are identical either way.
    #[doc(hidden)]
    pub wide_bit_tests: bool,
    /// The wide one pass keeps its candidate count and sorted front in registers, so a
    /// row's start, each shrink and its finish skip the barrier that reads them from
    /// workgroup memory, and its floor's two digit levels alternate between two histograms,
    /// one barrier fewer each (a one-tile row: 5 of its ~15 barriers, less one per
    /// workgroup). Unmeasured on a GPU; results are identical either way.
    #[doc(hidden)]
    pub wide_lean: bool,
    /// The one pass and the row select write each kept value from its order key where that
    /// is exact (every number but the two zeros) instead of reading it back from the scores,
    /// a dependent read at the end of each row; NaN and the zeros are still read, so payloads
    /// and signs come back as stored. Unmeasured on a GPU; results are identical either way.
    #[doc(hidden)]
    pub values_from_keys: bool,
    /// [`Strategy::RowSelect`] sorts its sorted output by buckets: every gathered entry (up to
    /// four per thread) at once, by a counting sort on the key bits below their common span
    /// (a few entries per bucket), then each entry's place in its bucket by counting those
    /// before it, in place of the exact select of the k best, their compaction and the
    /// network: about a dozen barriers where those take about 80 on a decode row. Where a
    /// bucket would hold over 64 (clustered keys) the row goes the usual way. Unmeasured on a
    /// GPU so far; results are identical either way.
    #[doc(hidden)]
    pub select_buckets: bool,
    /// [`Strategy::RowSelect`] spreads each row longer than one of its tiles (16 entries per
    /// thread) over up to one workgroup per tile ([`TopkConfig::select_split_groups`] says
    /// how many; at most 64, each over a run of tiles), in the same dispatch: each finds the
    /// sample's floor and gathers its tiles' entries above it into a list of the row's, and
    /// the last workgroup of the row to arrive (a counter of arrivals; none waits for
    /// another to run) selects and sorts them as the one workgroup of the plain kernel does.
    /// Scratch: 8 bytes per slot and row. Aimed at the decode row's gather (13 of its 54 µs
    /// on an H200, one workgroup reading 512 KiB). Unmeasured on a GPU; results are
    /// identical either way.
    #[doc(hidden)]
    pub select_split: bool,
    /// Workgroups the split row select aims for in all (`None`: [`SPLIT_GROUPS`], about one
    /// per SM of a large GPU at 1024 threads): a row takes `groups / rows` of them, at least
    /// one, at most one per tile and 64, so that few rows spread and many rows (which fill
    /// the GPU anyway) do not pay for a floor per workgroup. A tuning knob: results are
    /// identical for any value.
    #[doc(hidden)]
    pub select_split_groups: Option<u32>,
    /// Profiling only: the row select, or the wide one pass (floor, tile loop, sort), ends
    /// after this phase, leaving its outputs unwritten (the bench's phase breakdown). `None`
    /// (the default) runs it all.
    #[doc(hidden)]
    pub profile: Option<ProfilePhase>,
}

/// Where a profiled row select or wide one pass ends ([`TopkConfig::profile`]).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfilePhase {
    /// After the sample's floor (the one pass: its first tile's seeds' floor).
    Floor = 1,
    /// After gathering the candidates and the exact levels where the floor missed (the one
    /// pass: its loop over the tiles).
    Gather = 2,
    /// After sorting them (the one pass: its last shrink).
    Sort = 3,
    /// The row select only: after a gather that only reads the row.
    Read = 4,
    /// The row select only: after a gather that reads and tests the row, appending nothing.
    Test = 5,
}

impl Default for TopkConfig {
    fn default() -> Self {
        TopkConfig {
            rows: 1,
            n: 1,
            k: 1,
            order: Order::Largest,
            sorted: true,
            row_stride: None,
            scores: ScoreType::F32,
            strategy: Strategy::Auto,
            subgroups: false,
            radix_groups: None,
            sort_workgroup: None,
            loads: Loads::Auto,
            rank_sort: false,
            wide_tiles: true,
            wide_rows: None,
            wide_prefetch: None,
            wide_bit_tests: false,
            wide_lean: false,
            values_from_keys: false,
            select_buckets: false,
            select_split: false,
            select_split_groups: None,
            select_cap: None,
            select_workgroup: None,
            profile: None,
        }
    }
}

impl TopkConfig {
    /// Row stride actually used.
    pub fn stride(&self) -> usize {
        self.row_stride.unwrap_or(self.n)
    }

    /// Checks `k`, `n` and the stride. `k = 0` is rejected: asking for nothing is almost
    /// always a bug upstream (e.g. a k policy that rounded down).
    pub fn validate(&self) -> Result<()> {
        if self.n == 0 || self.n > u32::MAX as usize / 2 {
            return Err(Error::shape("n", "1 ≤ n < 2^31", self.n));
        }
        if self.k == 0 || self.k > self.n {
            return Err(Error::shape("k", format!("1 ≤ k ≤ n = {}", self.n), self.k));
        }
        if self.strategy == Strategy::OnePass && self.k > ONE_PASS_MAX_K {
            return Err(Error::shape(
                "k",
                format!("≤ {ONE_PASS_MAX_K} with Strategy::OnePass"),
                self.k,
            ));
        }
        if let Some(r) = self.wide_rows
            && !(1..=MAX_WIDE_ROWS).contains(&r)
        {
            return Err(Error::shape(
                "wide_rows",
                format!("1 to {MAX_WIDE_ROWS}"),
                r,
            ));
        }
        if self.radix_groups == Some(0) {
            return Err(Error::shape("radix_groups", "≥ 1", 0));
        }
        if self.select_split_groups == Some(0) {
            return Err(Error::shape("select_split_groups", "≥ 1", 0));
        }
        if let Some(t) = self.sort_workgroup
            && !matches!(t, 256 | 512 | 1024)
        {
            return Err(Error::shape("sort_workgroup", "256, 512 or 1024", t));
        }
        if let Some(t) = self.select_workgroup
            && !matches!(t, 256 | 512 | 1024)
        {
            return Err(Error::shape("select_workgroup", "256, 512 or 1024", t));
        }
        if let Some(c) = self.select_cap
            && !(c.is_power_of_two() && (MIN_SELECT_CAP..=MAX_SELECT_CAP).contains(&c))
        {
            return Err(Error::shape(
                "select_cap",
                format!("a power of two from {MIN_SELECT_CAP} to {MAX_SELECT_CAP}"),
                c,
            ));
        }
        if self.strategy == Strategy::RowSelect && self.k > MAX_SELECT_CAP as usize {
            return Err(Error::shape(
                "k",
                format!("≤ {MAX_SELECT_CAP} with Strategy::RowSelect"),
                self.k,
            ));
        }
        if self.loads == Loads::Vec4 && !self.vec4_loads_fit() {
            return Err(Error::shape(
                "loads",
                "n and row_stride multiples of 4, f32 scores, no subgroups",
                format!(
                    "n = {}, stride = {}, {:?}, subgroups = {}",
                    self.n,
                    self.stride(),
                    self.scores,
                    self.subgroups
                ),
            ));
        }
        if self.stride() < self.n {
            return Err(Error::shape(
                "row_stride",
                format!("≥ n = {}", self.n),
                self.stride(),
            ));
        }
        Ok(())
    }

    /// [`TopkConfig::sort_workgroup`] or its default, if `ctx`'s device can run it. The
    /// default is 512 threads for a full local block (`sort_size` ≥ 2048 survivors) where the
    /// device allows, else 256: on an H200 (three runs, 2026-11-27) 512 sorted the decode
    /// row's 2048 survivors 5–7 % faster (1 × 131072: 70.2 → 65.0 µs), and 512 or 1024 lost
    /// 1–11 % on the small sorts of many rows (65536 × 4096, k = 64).
    fn sort_threads(&self, ctx: &GpuContext, sort_size: usize) -> Result<u32> {
        let max = max_workgroup(ctx.limits());
        let full_block = sort_size >= SORT_BLOCK && max >= 512;
        let t = self
            .sort_workgroup
            .unwrap_or(if full_block { 512 } else { WG as u32 });
        if t > max {
            return Err(Error::shape(
                "sort_workgroup",
                format!("≤ {max}, this device's largest workgroup"),
                t,
            ));
        }
        Ok(t)
    }

    /// The algorithm [`Topk`] runs for this config on `ctx`'s device: the config's
    /// strategy, or for [`Strategy::Auto`] the one the H200 sweeps found fastest
    /// (`auto_strategy`), the row select only where the device can run it for this k.
    pub fn strategy_on(&self, ctx: &GpuContext) -> Strategy {
        self.resolve(ctx.limits())
    }

    fn resolve(&self, limits: &wgpu::Limits) -> Strategy {
        match self.strategy {
            Strategy::Auto => {
                let row_select = self.slots_on(limits).is_ok();
                auto_strategy(self.rows, self.n, self.k, self.wide_tiles, row_select)
            }
            s => s,
        }
    }

    /// [`TopkConfig::select_workgroup`] or its default, if the device can run it.
    fn select_threads(&self, limits: &wgpu::Limits) -> Result<u32> {
        let max = max_workgroup(limits);
        let t = self.select_workgroup.unwrap_or_else(|| {
            [1024, 512, 256]
                .into_iter()
                .find(|&t| t <= max)
                .unwrap_or(256)
        });
        if t > max {
            return Err(Error::shape(
                "select_workgroup",
                format!("≤ {max}, this device's largest workgroup"),
                t,
            ));
        }
        Ok(t)
    }

    /// [`Strategy::RowSelect`]'s slots per row for this config on `ctx`'s device:
    /// [`TopkConfig::select_cap`] or its default (the most the workgroup memory holds); an
    /// error if that does not fit the device or hold k, or the workgroup is too large.
    pub fn select_slots(&self, ctx: &GpuContext) -> Result<u32> {
        self.slots_on(ctx.limits())
    }

    fn slots_on(&self, limits: &wgpu::Limits) -> Result<u32> {
        let memory = limits.max_compute_workgroup_storage_size as usize;
        self.select_threads(limits)?;
        let cap = self.select_cap.unwrap_or_else(|| slots_for(limits));
        if select_memory(cap) > memory {
            return Err(Error::shape(
                "select_cap",
                format!("≤ what {memory} bytes of workgroup memory hold"),
                cap,
            ));
        }
        if self.k > cap as usize {
            return Err(Error::shape(
                "k",
                format!("≤ {cap}, Strategy::RowSelect's slots on this device"),
                self.k,
            ));
        }
        Ok(cap)
    }

    /// Whether the config allows the one pass's vec4 loads (a call also needs an offset that
    /// is a multiple of 4).
    fn vec4_loads_fit(&self) -> bool {
        self.scores == ScoreType::F32
            && self.n.is_multiple_of(4)
            && self.stride().is_multiple_of(4)
            && !self.subgroups
    }

    /// Whether the one pass is built with vec4 loads (`topk_quad`).
    fn vec4_loads(&self) -> bool {
        match self.loads {
            Loads::Auto => self.vec4_loads_fit(),
            Loads::Scalar => false,
            Loads::Vec4 => true,
        }
    }

    /// Rows per wide one-pass workgroup ([`TopkConfig::wide_rows`]).
    fn rows_per_group(&self) -> usize {
        if self.wide_tiles {
            self.wide_rows.unwrap_or(1) as usize
        } else {
            1
        }
    }

    /// The one pass's pipeline constants: the wide tiles skip the prefetch of a next tile
    /// where every row is one tile (`WIDE_PREFETCH`, unless [`TopkConfig::wide_prefetch`]
    /// says otherwise), and take `WIDE_ROWS` rows each.
    fn one_pass_constants(&self) -> Vec<(&'static str, f64)> {
        let mut constants = Vec::new();
        if self.wide_tiles {
            let prefetch = self
                .wide_prefetch
                .unwrap_or(self.n > wgsl::topk::WIDE_TILE as usize);
            constants.push(("WIDE_PREFETCH", prefetch as u32 as f64));
            constants.push(("WIDE_ROWS", self.rows_per_group() as f64));
            constants.push(("WIDE_BIT_TESTS", self.wide_bit_tests as u32 as f64));
            constants.push(("WIDE_LEAN", self.wide_lean as u32 as f64));
        }
        if let Some(phase) = self.profile {
            constants.push(("PROFILE_STOP", phase as u32 as f64));
        }
        constants.push(("VALUES_FROM_KEYS", self.values_from_keys as u32 as f64));
        constants
    }

    /// The one pass's entry point: 512-entry tiles, or 4096-entry ones with `wide_tiles`.
    fn one_pass_entry(&self) -> &'static str {
        if self.wide_tiles {
            "topk_one_pass_wide"
        } else {
            "topk_one_pass"
        }
    }

    /// Minimum input length for `offset` (`usize::MAX` where that overflows, which no input
    /// has).
    pub fn input_len(&self, offset: usize) -> usize {
        if self.rows == 0 {
            return 0;
        }
        row_span(self.rows, self.stride(), self.n)
            .and_then(|l| l.checked_add(offset))
            .unwrap_or(usize::MAX)
    }

    /// Checks an input of `len` elements read from `offset`, and optional per-row lengths.
    pub fn validate_input(&self, len: usize, offset: usize, lengths: Option<usize>) -> Result<()> {
        self.validate()?;
        let need = self.input_len(offset);
        if len < need {
            return Err(Error::shape("scores", format!("≥ {need} elements"), len));
        }
        if let Some(l) = lengths
            && l < self.rows
        {
            return Err(Error::shape(
                "lengths",
                format!("≥ rows = {}", self.rows),
                l,
            ));
        }
        Ok(())
    }
}

/// Score buffer of either element type.
pub type Scores<'a> = Elems<'a>;

/// Inputs of one call: the scores, an element offset into them, optional row lengths.
#[derive(Clone, Copy, Debug)]
pub struct TopkInput<'a> {
    pub scores: Scores<'a>,
    pub offset: usize,
    /// Row `r` considers only its first `min(lengths[r], n)` entries (ragged or causal rows).
    pub lengths: Option<&'a GpuBuffer<u32>>,
}

impl<'a> TopkInput<'a> {
    pub fn new(scores: &'a GpuBuffer<f32>) -> Self {
        TopkInput {
            scores: Scores::F32(scores),
            offset: 0,
            lengths: None,
        }
    }
    /// f16 scores as raw bits (kernel built with [`ScoreType::F16`]).
    pub fn f16(scores: &'a GpuBuffer<u16>) -> Self {
        TopkInput {
            scores: Scores::F16(scores),
            offset: 0,
            lengths: None,
        }
    }
    pub fn with_offset(self, offset: usize) -> Self {
        TopkInput { offset, ..self }
    }
    pub fn with_lengths(self, lengths: &'a GpuBuffer<u32>) -> Self {
        TopkInput {
            lengths: Some(lengths),
            ..self
        }
    }
}

/// GPU outputs: `values` and `indices` are `[rows, k]`, `counts` is `[rows]`.
#[derive(Debug)]
pub struct TopkOutput {
    pub values: GpuBuffer<f32>,
    pub indices: GpuBuffer<u32>,
    pub counts: GpuBuffer<u32>,
}

impl TopkOutput {
    /// Reads all three outputs back (blocking).
    pub fn read(&self, ctx: &GpuContext) -> Result<TopkResult> {
        Ok(TopkResult {
            values: self.values.read(ctx)?,
            indices: self.indices.read(ctx)?,
            counts: self.counts.read(ctx)?,
        })
    }
}

/// Host copy of a top-k result (from [`Topk::run`] or the CPU reference).
#[derive(Clone, Debug, PartialEq)]
pub struct TopkResult {
    pub values: Vec<f32>,
    pub indices: Vec<u32>,
    pub counts: Vec<u32>,
}

const WG: usize = wgsl::topk::WG as usize;
/// Pairs one workgroup-local bitonic step holds (`BLOCK`).
const SORT_BLOCK: usize = wgsl::topk::BLOCK as usize;
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
const MIN_SELECT_CAP: u32 = 256;
const MAX_SELECT_CAP: u32 = 4096;

/// Workgroup memory of `topk_row_select` (and `topk_row_select_subgroup`) with `cap` slots:
/// the slots (8 bytes each), the histogram copies, the digit scan (digits, blocks, pick),
/// three counters (`sel_count`, `sel_moved`, the subgroup tier's `sel_partial`) and the
/// split's two words (`sel_split`).
fn select_memory(cap: u32) -> usize {
    let hist = 256 * wgsl::topk::HIST_COPIES as usize * 4;
    cap as usize * 8 + hist + (256 + 16 + 4 + 3 + 2) * 4
}

/// [`Strategy::RowSelect`]'s default slots per row on `ctx`'s device (so its largest k): the
/// most that its workgroup memory holds, a power of two up to 4096 (2048 with 32 KiB, 4096
/// with 48 KiB).
pub fn row_select_slots(ctx: &GpuContext) -> u32 {
    slots_for(ctx.limits())
}

fn slots_for(limits: &wgpu::Limits) -> u32 {
    let memory = limits.max_compute_workgroup_storage_size as usize;
    (MIN_SELECT_CAP.trailing_zeros()..=MAX_SELECT_CAP.trailing_zeros())
        .rev()
        .map(|b| 1 << b)
        .find(|&c| select_memory(c) <= memory)
        .unwrap_or(MIN_SELECT_CAP)
}

/// The device's largest workgroup (in x).
fn max_workgroup(l: &wgpu::Limits) -> u32 {
    l.max_compute_invocations_per_workgroup
        .min(l.max_compute_workgroup_size_x)
}

/// Sizes derived from the config and the device limits.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// The algorithm (never Auto).
    strategy: Strategy,
    chunk: usize,
    chunks: usize,
    sort_size: usize,
    batch_rows: usize,
    work_per_row: usize,
    /// u32s of `row_hist` per row: none for the one-pass path and one-chunk rows; the split
    /// row select's counters and list.
    row_hist_per_row: usize,
    /// Workgroups per row of the row select: 1, or with [`TopkConfig::select_split`] up to one
    /// per tile of its row (`SEL_SPLIT`).
    select_split: usize,
}

impl Plan {
    fn one_pass(&self) -> bool {
        self.strategy == Strategy::OnePass
    }

    /// Consecutive entries a compaction thread takes per tile (`COMPACT_RUN`): chunk / 512,
    /// 1 to 16 (`MAX_RUN`, the size of the shader's key array). A GPU's chunk of 1024 to
    /// 8192 entries is 2 tiles whose threads each keep chunk / 512 loads in flight, next to
    /// their neighbours'; a 16384-entry chunk (CPU adapters, long rows) is 4 tiles, few scans
    /// for a driver that pays for each barrier.
    fn compact_run(&self) -> usize {
        (self.chunk / (2 * WG)).clamp(1, wgsl::topk::MAX_RUN as usize)
    }

    fn new(cfg: &TopkConfig, limits: &wgpu::Limits, cpu: bool) -> Result<Self> {
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
            // The split row select's word (count and arrivals) and (key, index) list.
            1 + 2 * cfg.slots_on(limits)? as usize
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
        let by_index = (u32::MAX as usize / 2) / cfg.stride();
        let batch_rows = cfg
            .rows
            .min(by_work)
            .min(by_pairs)
            .min(by_input)
            .min(by_index);
        if batch_rows == 0 && cfg.rows > 0 {
            return Err(Error::BufferTooLarge {
                what: "one top-k row (input, scratch or sort buffer)",
                requested: (input_row.max(sort_size * 8).max(work_per_row * 4)) as u64,
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

/// Only the chosen algorithm's pipelines are compiled.
enum Pipelines {
    OnePass {
        pipeline: wgpu::ComputePipeline,
        /// With vec4 loads chosen by [`Loads::Auto`]: the scalar-load pipeline for a call at
        /// an offset that is not a multiple of 4, compiled on the first such call.
        scalar: Mutex<Option<wgpu::ComputePipeline>>,
    },
    RowSelect {
        pipeline: wgpu::ComputePipeline,
        /// `topk_row_select`, or with the subgroup tier `topk_row_select_subgroup`.
        entry: &'static str,
    },
    Radix {
        histogram: wgpu::ComputePipeline,
        compact: wgpu::ComputePipeline,
        /// One step bind group per radix pass.
        passes: Vec<wgpu::BindGroup>,
        output: RadixOutput,
    },
}

/// How the radix path writes its outputs: sorted, the last bitonic step does, or
/// `topk_rank_sort` (`TopkConfig::rank_sort`); unsorted, `topk_finalize` does.
enum RadixOutput {
    Sorted {
        local: wgpu::ComputePipeline,
        global: wgpu::ComputePipeline,
        steps: Vec<SortStep>,
    },
    Ranked(wgpu::ComputePipeline),
    Unsorted(wgpu::ComputePipeline),
}

struct SortStep {
    global: bool,
    bind_group: wgpu::BindGroup,
}

/// What [`Topk::encode_stages`] records before each dispatch: given the encoder and the
/// dispatch's kernel name.
pub type StageMark<'a> = dyn FnMut(&mut wgpu::CommandEncoder, &'static str) + 'a;

/// One dispatch of a top-k call: its kernel's name, pipeline, bind groups (the batch's, and a
/// radix step's) and workgroups.
struct Stage<'a> {
    name: &'static str,
    pipeline: &'a wgpu::ComputePipeline,
    batch: &'a wgpu::BindGroup,
    step: Option<&'a wgpu::BindGroup>,
    size: u32,
}

impl Stage<'_> {
    /// Groups 0 (and 1), without allocating: encode runs per call.
    fn groups(&self) -> ([&wgpu::BindGroup; 2], usize) {
        match self.step {
            Some(step) => ([self.batch, step], 2),
            None => ([self.batch, self.batch], 1),
        }
    }
}

/// Group 1 of a radix step: one uniform `TopkStepParams` (which pass, or which sort step).
fn step_bind_group(
    ctx: &GpuContext,
    layout: &wgpu::BindGroupLayout,
    p: &TopkStepParams,
) -> wgpu::BindGroup {
    let u = shader::uniform(ctx, p);
    shader::bind_group_with_layout(ctx, layout, &[u.as_entire_binding()])
}

/// The top-k kernel for one [`TopkConfig`]. Build once (compiles pipelines, allocates
/// scratch for one row batch), then [`Topk::encode`] as often as needed.
pub struct Topk {
    ctx: GpuContext,
    cfg: TopkConfig,
    plan: Plan,
    layout: wgpu::BindGroupLayout,
    pipelines: Pipelines,
    work: wgpu::Buffer,
    pairs: wgpu::Buffer,
    /// Per-row atomic histograms. Starts zeroed (wgpu zero-fills new buffers) and every run
    /// leaves it zeroed (see the work layout in `shaders/shared/topk_body.wgsl`), so nothing
    /// is cleared per call.
    row_hist: wgpu::Buffer,
    no_lengths: GpuBuffer<u32>,
    bind_groups: shader::BindGroupMemo,
}

fn scratch(ctx: &GpuContext, label: &str, bytes: usize) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (bytes as u64).max(16),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// The bitonic sort schedule of the radix path for sort size `sort_size`: one uniform bind
/// group per step; the last (always a local step) writes the outputs.
fn sort_steps(
    ctx: &GpuContext,
    step_layout: &wgpu::BindGroupLayout,
    sort_size: usize,
) -> Vec<SortStep> {
    // Bitonic schedule: sort blocks locally, then for each larger size the strides
    // ≥ block as global steps and the rest as one local step.
    let block = SORT_BLOCK.min(sort_size);
    let mut steps = vec![(
        false,
        TopkStepParams {
            full: 1,
            ..Default::default()
        },
    )];
    let mut size = 2 * block;
    while size <= sort_size {
        let mut j = size / 2;
        while j >= block {
            let p = TopkStepParams {
                size: size as u32,
                stride: j as u32,
                ..Default::default()
            };
            steps.push((true, p));
            j /= 2;
        }
        steps.push((
            false,
            TopkStepParams {
                size: size as u32,
                ..Default::default()
            },
        ));
        size *= 2;
    }
    if let Some((_, p)) = steps.last_mut() {
        p.last = 1;
    }
    steps
        .into_iter()
        .map(|(global, p)| SortStep {
            global,
            bind_group: step_bind_group(ctx, step_layout, &p),
        })
        .collect()
}

impl Topk {
    /// Validates `cfg` against the device and compiles the pipelines.
    pub fn new(ctx: &GpuContext, cfg: TopkConfig) -> Result<Self> {
        cfg.validate()?;
        check_binding_size(ctx, "topk output", bytes_of::<f32>(&[cfg.rows, cfg.k]))?;
        let plan = Plan::new(&cfg, ctx.limits(), ctx.is_cpu_adapter())?;
        use BindingKind::{Read, ReadWrite, Uniform};
        let layout = shader::bind_group_layout(
            ctx,
            "topk",
            &[
                Uniform, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite,
                ReadWrite,
            ],
        );
        let step_layout = shader::bind_group_layout(ctx, "topk.step", &[Uniform]);
        let main = shader::pipeline_layout(ctx, "topk", &[&layout]);
        let with_step = shader::pipeline_layout(ctx, "topk.step", &[&layout, &step_layout]);
        let row_select = plan.strategy == Strategy::RowSelect;
        let subgroup_tier =
            cfg.subgroups && (plan.one_pass() || row_select) && ctx.capabilities().subgroups;
        let module = match cfg.scores {
            ScoreType::F32 if plan.one_pass() && cfg.vec4_loads() => {
                Module::new(ctx, "topk_quad", shader::sources::TOPK_QUAD, Tier::Core)?
            }
            ScoreType::F32 if subgroup_tier => Module::new(
                ctx,
                "topk_subgroup",
                shader::sources::TOPK_SUBGROUP,
                Tier::Subgroup,
            )?,
            ScoreType::F32 => Module::new(ctx, "topk", shader::sources::TOPK, Tier::Core)?,
            ScoreType::F16 if subgroup_tier => Module::new(
                ctx,
                "topk_f16_subgroup",
                shader::sources::TOPK_F16_SUBGROUP,
                Tier::Subgroup,
            )?,
            ScoreType::F16 => Module::new(ctx, "topk_f16", shader::sources::TOPK_F16, Tier::Core)?,
        };
        let build = |entry, l| module.pipeline_with_layout(ctx, entry, Some(l));

        let pipelines = if row_select {
            let constants = [
                ("SEL_WG", cfg.select_threads(ctx.limits())? as f64),
                ("SEL_CAP", cfg.select_slots(ctx)? as f64),
                ("PROFILE_STOP", cfg.profile.map_or(0, |p| p as u32) as f64),
                ("SEL_BUCKET_SORT", cfg.select_buckets as u32 as f64),
                ("SEL_SPLIT", plan.select_split as f64),
                ("VALUES_FROM_KEYS", cfg.values_from_keys as u32 as f64),
            ];
            let entry = if subgroup_tier {
                "topk_row_select_subgroup"
            } else {
                "topk_row_select"
            };
            Pipelines::RowSelect {
                pipeline: module.pipeline_with_constants(ctx, entry, Some(&main), &constants)?,
                entry,
            }
        } else if plan.one_pass() {
            Pipelines::OnePass {
                pipeline: module.pipeline_with_constants(
                    ctx,
                    cfg.one_pass_entry(),
                    Some(&main),
                    &cfg.one_pass_constants(),
                )?,
                scalar: Mutex::new(None),
            }
        } else {
            Pipelines::Radix {
                histogram: build("topk_histogram", &with_step)?,
                compact: module.pipeline_with_constants(
                    ctx,
                    "topk_compact",
                    Some(&main),
                    &[("COMPACT_RUN", plan.compact_run() as f64)],
                )?,
                passes: (0..4)
                    .map(|pass_| {
                        let p = TopkStepParams {
                            pass_,
                            ..Default::default()
                        };
                        step_bind_group(ctx, &step_layout, &p)
                    })
                    .collect(),
                output: if cfg.sorted && cfg.rank_sort {
                    RadixOutput::Ranked(build("topk_rank_sort", &main)?)
                } else if cfg.sorted {
                    RadixOutput::Sorted {
                        local: module.pipeline_with_constants(
                            ctx,
                            "topk_sort_local",
                            Some(&with_step),
                            &[("SORT_WG", cfg.sort_threads(ctx, plan.sort_size)? as f64)],
                        )?,
                        global: build("topk_sort_global", &with_step)?,
                        steps: sort_steps(ctx, &step_layout, plan.sort_size),
                    }
                } else {
                    RadixOutput::Unsorted(build("topk_finalize", &main)?)
                },
            }
        };
        let batch = plan.batch_rows;
        Ok(Topk {
            pipelines,
            work: scratch(ctx, "topk.work", batch * plan.work_per_row * 4),
            pairs: scratch(ctx, "topk.pairs", batch * plan.sort_size * 8),
            row_hist: scratch(ctx, "topk.row_hist", batch * plan.row_hist_per_row * 4),
            no_lengths: GpuBuffer::zeroed(ctx, 4, "topk.no_lengths")?,
            bind_groups: Default::default(),
            layout,
            plan,
            cfg,
            ctx: ctx.clone(),
        })
    }

    /// The configuration this kernel was built for.
    pub fn config(&self) -> &TopkConfig {
        &self.cfg
    }

    /// Allocates output buffers of the right size.
    pub fn outputs(&self) -> Result<TopkOutput> {
        let (rows, k) = (self.cfg.rows, self.cfg.k);
        Ok(TopkOutput {
            values: GpuBuffer::zeroed(&self.ctx, rows * k, "topk.values")?,
            indices: GpuBuffer::zeroed(&self.ctx, rows * k, "topk.indices")?,
            counts: GpuBuffer::zeroed(&self.ctx, rows, "topk.counts")?,
        })
    }

    /// Records the top-k of `input` into `out`. Validates every size first; records nothing
    /// on error. Allocates only small uniform buffers and bind groups, and reuses the last
    /// call's where it binds the same buffers the same way (so this kernel keeps that call's
    /// buffers alive until a call with others, or its drop).
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        input: TopkInput<'_>,
        out: &TopkOutput,
    ) -> Result<()> {
        self.check_call(input, out)?;
        self.record(encoder, input, out, None)
    }

    /// [`Topk::encode`] with each dispatch in a compute pass of its own, and `mark(encoder,
    /// stage)` recorded before each (`stage` names its kernel) and once more after the last
    /// (`"end"`): a per-stage profile, e.g. with `write_timestamp` (the bench's
    /// `--kernel topk_stages`). Same results; the extra passes may cost a little time.
    pub fn encode_stages(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        input: TopkInput<'_>,
        out: &TopkOutput,
        mark: &mut StageMark<'_>,
    ) -> Result<()> {
        self.check_call(input, out)?;
        self.record(encoder, input, out, Some(mark))?;
        mark(encoder, "end");
        Ok(())
    }

    /// Every row batch's stages: in one compute pass per batch, or, given `mark`, each in
    /// its own pass after a mark.
    fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        input: TopkInput<'_>,
        out: &TopkOutput,
        mut mark: Option<&mut StageMark<'_>>,
    ) -> Result<()> {
        let (ctx, cfg, plan) = (&self.ctx, &self.cfg, &self.plan);
        let scalar = self.scalar_fallback(input.offset)?;
        self.bind_groups.scoped(ctx, |groups| {
            for row0 in (0..cfg.rows).step_by(plan.batch_rows) {
                let rows = plan.batch_rows.min(cfg.rows - row0);
                let bg = self.bind_group(groups, input, out, row0, rows);
                let stages = self.stages(&bg, rows, scalar.as_ref());
                match mark.as_mut() {
                    None => {
                        // One compute pass for the whole chain (wgpu orders the dispatches).
                        let mut cpass = shader::compute_pass(encoder, "topk");
                        for st in &stages {
                            let (groups, n) = st.groups();
                            shader::dispatch_in(
                                ctx,
                                &mut cpass,
                                st.pipeline,
                                &groups[..n],
                                st.size,
                            );
                        }
                    }
                    Some(mark) => {
                        for st in &stages {
                            mark(encoder, st.name);
                            let (groups, n) = st.groups();
                            shader::dispatch(
                                ctx,
                                encoder,
                                st.name,
                                st.pipeline,
                                &groups[..n],
                                st.size,
                            );
                        }
                    }
                }
            }
        })
    }

    /// Every size and type `encode` checks before it records anything.
    fn check_call(&self, input: TopkInput<'_>, out: &TopkOutput) -> Result<()> {
        let cfg = &self.cfg;
        if input.scores.ty() != cfg.scores {
            return Err(Error::shape(
                "scores",
                format!("{:?} scores (as configured)", cfg.scores),
                format!("{:?}", input.scores.ty()),
            ));
        }
        cfg.validate_input(
            input.scores.len(),
            input.offset,
            input.lengths.map(|l| l.len()),
        )?;
        if cfg.loads == Loads::Vec4 && self.plan.one_pass() && !input.offset.is_multiple_of(4) {
            return Err(Error::shape(
                "offset",
                "a multiple of 4 with Loads::Vec4",
                input.offset,
            ));
        }
        Error::check_lengths(&[
            ("out.values", out.values.len(), cfg.rows * cfg.k),
            ("out.indices", out.indices.len(), cfg.rows * cfg.k),
            ("out.counts", out.counts.len(), cfg.rows),
        ])?;
        Ok(())
    }

    /// The bind group of the row batch at `row0`: its parameters, the slice of the scores it
    /// reads (bound from an aligned offset), and the lengths, scratch and outputs.
    fn bind_group(
        &self,
        groups: &mut shader::MemoCall<'_>,
        input: TopkInput<'_>,
        out: &TopkOutput,
        row0: usize,
        rows: usize,
    ) -> wgpu::BindGroup {
        let (ctx, cfg, plan) = (&self.ctx, &self.cfg, &self.plan);
        let stride = cfg.stride();
        let align = ctx.limits().min_storage_buffer_offset_alignment as usize;
        let elem = cfg.scores.bytes();
        let first = (input.offset + row0 * stride) * elem;
        let aligned = first / align * align;
        let in_shift = (first - aligned) / elem;
        // Bindings are sized in 4-byte units; GpuBuffer pads its allocation to match.
        let bytes = ((in_shift + (rows - 1) * stride + cfg.n) * elem).next_multiple_of(4);
        let hist_len = rows * plan.chunks * 256;
        let info_len = rows * plan.chunks;
        let params = TopkParams {
            rows: rows as u32,
            n: cfg.n as u32,
            k: cfg.k as u32,
            stride: stride as u32,
            row0: row0 as u32,
            in_shift: in_shift as u32,
            has_lengths: input.lengths.is_some() as u32,
            smallest: (cfg.order == Order::Smallest) as u32,
            chunk: plan.chunk as u32,
            chunks: plan.chunks as u32,
            sort_size: plan.sort_size as u32,
            hist_base: 0,
            info_base: hist_len as u32,
            state_base: (hist_len + info_len) as u32,
            sorted: cfg.sorted as u32,
            ..Default::default()
        };
        let scores = wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: input.scores.buffer(),
            offset: aligned as u64,
            size: std::num::NonZeroU64::new(bytes as u64),
        });
        let lengths = input.lengths.unwrap_or(&self.no_lengths);
        groups.group(
            ctx,
            &self.layout,
            &params,
            &[
                scores,
                lengths.binding(),
                self.work.as_entire_binding(),
                self.pairs.as_entire_binding(),
                out.values.binding(),
                out.indices.binding(),
                out.counts.binding(),
                self.row_hist.as_entire_binding(),
            ],
        )
    }

    /// The one pass's scalar-load pipeline where [`Loads::Auto`] chose vec4 loads and a call
    /// reads from an `offset` they cannot (not a multiple of 4); compiled on the first such
    /// call, then kept. `None`: the kernel's own pipelines serve.
    fn scalar_fallback(&self, offset: usize) -> Result<Option<wgpu::ComputePipeline>> {
        let Pipelines::OnePass { scalar, .. } = &self.pipelines else {
            return Ok(None);
        };
        if self.cfg.loads != Loads::Auto || !self.cfg.vec4_loads() || offset.is_multiple_of(4) {
            return Ok(None);
        }
        let mut slot = scalar.lock().unwrap();
        if slot.is_none() {
            let ctx = &self.ctx;
            let module = Module::new(ctx, "topk", shader::sources::TOPK, Tier::Core)?;
            let layout = shader::pipeline_layout(ctx, "topk", &[&self.layout]);
            let entry = self.cfg.one_pass_entry();
            let constants = self.cfg.one_pass_constants();
            *slot = Some(module.pipeline_with_constants(ctx, entry, Some(&layout), &constants)?);
        }
        Ok(slot.clone())
    }

    /// The dispatches of one row batch. One pass: one (`scalar` in place of the kernel's
    /// pipeline where given). Row select: one. Radix: 4 histogram passes, compact, then the
    /// sort (whose last step writes the outputs), the rank sort, or, unsorted, finalize.
    fn stages<'s>(
        &'s self,
        bg: &'s wgpu::BindGroup,
        rows: usize,
        scalar: Option<&'s wgpu::ComputePipeline>,
    ) -> Vec<Stage<'s>> {
        let (cfg, plan) = (&self.cfg, &self.plan);
        let stage = |name, pipeline, step: Option<&'s wgpu::BindGroup>, size: usize| Stage {
            name,
            pipeline,
            batch: bg,
            step,
            size: size as u32,
        };
        let (histogram, compact, passes, output) = match &self.pipelines {
            Pipelines::OnePass { pipeline, .. } => {
                let pipeline = scalar.unwrap_or(pipeline);
                let groups = rows.div_ceil(cfg.rows_per_group());
                return vec![stage(cfg.one_pass_entry(), pipeline, None, groups)];
            }
            Pipelines::RowSelect { pipeline, entry } => {
                return vec![stage(entry, pipeline, None, rows * plan.select_split)];
            }
            Pipelines::Radix {
                histogram,
                compact,
                passes,
                output,
            } => (histogram, compact, passes, output),
        };
        let tiles = rows * plan.chunks;
        let mut stages: Vec<_> = passes
            .iter()
            .map(|pass| stage("topk_histogram", histogram, Some(pass), tiles))
            .collect();
        stages.push(stage("topk_compact", compact, None, tiles));
        match output {
            RadixOutput::Sorted {
                local,
                global,
                steps,
            } => {
                let blocks = plan.sort_size / SORT_BLOCK.min(plan.sort_size);
                let halves = (rows * plan.sort_size / 2).div_ceil(WG);
                stages.extend(steps.iter().map(|step| {
                    if step.global {
                        stage("topk_sort_global", global, Some(&step.bind_group), halves)
                    } else {
                        let size = rows * blocks;
                        stage("topk_sort_local", local, Some(&step.bind_group), size)
                    }
                }));
            }
            RadixOutput::Ranked(rank) => {
                stages.push(stage(
                    "topk_rank_sort",
                    rank,
                    None,
                    rows * cfg.k.div_ceil(WG),
                ));
            }
            RadixOutput::Unsorted(finalize) => {
                let slots = (rows * cfg.k).div_ceil(WG);
                stages.push(stage("topk_finalize", finalize, None, slots));
            }
        }
        stages
    }

    /// Uploads f32 `scores` (and `lengths`), runs, and reads the result back.
    pub fn run(&self, scores: &[f32], lengths: Option<&[u32]>) -> Result<TopkResult> {
        self.cfg
            .validate_input(scores.len(), 0, lengths.map(<[u32]>::len))?;
        let s = GpuBuffer::from_slice(&self.ctx, scores, "topk.scores")?;
        let l = self.upload_lengths(lengths)?;
        self.run_on(TopkInput::new(&s), l.as_ref())
    }

    /// Uploads f16 `scores` (raw bits), runs, and reads the result back.
    pub fn run_f16(&self, scores: &[u16], lengths: Option<&[u32]>) -> Result<TopkResult> {
        self.cfg
            .validate_input(scores.len(), 0, lengths.map(<[u32]>::len))?;
        let s = GpuBuffer::from_slice(&self.ctx, scores, "topk.scores")?;
        let l = self.upload_lengths(lengths)?;
        self.run_on(TopkInput::f16(&s), l.as_ref())
    }

    fn upload_lengths(&self, lengths: Option<&[u32]>) -> Result<Option<GpuBuffer<u32>>> {
        lengths
            .map(|l| GpuBuffer::from_slice(&self.ctx, l, "topk.lengths"))
            .transpose()
    }

    fn run_on(&self, input: TopkInput<'_>, lengths: Option<&GpuBuffer<u32>>) -> Result<TopkResult> {
        let ctx = &self.ctx;
        let input = match lengths {
            Some(l) => input.with_lengths(l),
            None => input,
        };
        let out = self.outputs()?;
        let mut enc = ctx.encoder("topk");
        self.encode(&mut enc, input, &out)?;
        ctx.submit_and_wait(enc)?;
        out.read(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
