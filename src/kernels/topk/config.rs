//! [`TopkConfig`]: a top-k call's shape and options, checked against the device.

use super::auto::auto_strategy;
use super::plan::{
    MAX_SELECT_CAP, MIN_SELECT_CAP, SORT_BLOCK, WG, max_workgroup, select_memory, slots_for,
};
use crate::buffer::ElemType;
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::shader::wgsl;
use crate::shape::row_span;

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

/// Which algorithm [`Topk`](super::Topk) uses; all give the same bits.
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
    /// devices with 48 KiB of workgroup memory); an error at
    /// [`Topk::new`](super::Topk::new) otherwise.
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
    /// [`Topk::new`](super::Topk::new), an offset that is not a multiple of 4 one at encode.
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
    /// workgroup memory; its floor's two digit levels alternate between two histograms, one
    /// barrier fewer each; and a row whose last shrink ranks every candidate (sorted output,
    /// at most 128) writes each to the output slot of its rank, not through workgroup
    /// memory (a one-tile row: 8 of its ~15 barriers, less one per workgroup). Unmeasured on
    /// a GPU; results are identical either way.
    #[doc(hidden)]
    pub wide_lean: bool,
    /// The wide one pass folds its floor: the top digit of a full tile's seeds (the first
    /// level) is counted by sixteen threads, each adding a run of equal digits with one
    /// atomic, instead of one atomic per seed (the top digit is the sign and seven exponent
    /// bits, which a row's thread bests mostly share, so those 256 atomics queue on one or
    /// two counters); and each level finds its digit in loops of fixed length whose loads
    /// issue at once, not in chains of dependent loads. Unmeasured on a GPU; results are
    /// identical either way.
    #[doc(hidden)]
    pub wide_floor_fold: bool,
    /// The one pass and the row select write each kept value from its order key where that
    /// is exact (every number but the two zeros) instead of reading it back from the scores,
    /// a dependent read at the end of each row; NaN and the zeros are still read, so payloads
    /// and signs come back as stored. Unmeasured on a GPU; results are identical either way.
    #[doc(hidden)]
    pub values_from_keys: bool,
    /// [`Strategy::RowSelect`] sorts its sorted output by buckets: every gathered entry (up to
    /// four per thread) at once, by a counting sort on the key bits below their common span
    /// (a few entries per bucket), then each entry's place in its bucket by counting those
    /// before it, the best k written to their places' output slots straight from the
    /// registers, in place of the exact select of the k best, their compaction, the network
    /// and the copy out: about ten barriers where those take about 80 on a decode row. Where a
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
    /// Scratch: 16 bytes per slot and row (two lists, one per call in turn). Aimed at the
    /// decode row's gather (13 of its 54 µs on an H200, one workgroup reading 512 KiB).
    /// Unmeasured on a GPU; results are identical either way.
    #[doc(hidden)]
    pub select_split: bool,
    /// Workgroups the split row select aims for in all (`None`:
    /// [`SPLIT_GROUPS`](super::SPLIT_GROUPS), about one per SM of a large GPU at 1024
    /// threads): a row takes `groups / rows` of them, at least one, at most one per tile and
    /// 64, so that few rows spread and many rows (which fill the GPU anyway) do not pay for a
    /// floor per workgroup. A tuning knob: results are identical for any value.
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
            wide_floor_fold: false,
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
    pub(super) fn sort_threads(&self, ctx: &GpuContext, sort_size: usize) -> Result<u32> {
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

    /// The algorithm [`Topk`](super::Topk) runs for this config on `ctx`'s device: the config's
    /// strategy, or for [`Strategy::Auto`] the one the H200 sweeps found fastest
    /// (`auto_strategy`), the row select only where the device can run it for this k.
    pub fn strategy_on(&self, ctx: &GpuContext) -> Strategy {
        self.resolve(ctx.limits())
    }

    pub(super) fn resolve(&self, limits: &wgpu::Limits) -> Strategy {
        match self.strategy {
            Strategy::Auto => {
                let row_select = self.slots_on(limits).is_ok();
                auto_strategy(self.rows, self.n, self.k, self.wide_tiles, row_select)
            }
            s => s,
        }
    }

    /// [`TopkConfig::select_workgroup`] or its default, if the device can run it.
    pub(super) fn select_threads(&self, limits: &wgpu::Limits) -> Result<u32> {
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

    pub(super) fn slots_on(&self, limits: &wgpu::Limits) -> Result<u32> {
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
    pub(super) fn vec4_loads_fit(&self) -> bool {
        self.scores == ScoreType::F32
            && self.n.is_multiple_of(4)
            && self.stride().is_multiple_of(4)
            && !self.subgroups
    }

    /// Whether the one pass is built with vec4 loads (`topk_quad`).
    pub(super) fn vec4_loads(&self) -> bool {
        match self.loads {
            Loads::Auto => self.vec4_loads_fit(),
            Loads::Scalar => false,
            Loads::Vec4 => true,
        }
    }

    /// Rows per wide one-pass workgroup ([`TopkConfig::wide_rows`]).
    pub(super) fn rows_per_group(&self) -> usize {
        if self.wide_tiles {
            self.wide_rows.unwrap_or(1) as usize
        } else {
            1
        }
    }

    /// The one pass's pipeline constants: the wide tiles skip the prefetch of a next tile
    /// where every row is one tile (`WIDE_PREFETCH`, unless [`TopkConfig::wide_prefetch`]
    /// says otherwise), and take `WIDE_ROWS` rows each.
    pub(super) fn one_pass_constants(&self) -> Vec<(&'static str, f64)> {
        let mut constants = Vec::new();
        if self.wide_tiles {
            let prefetch = self
                .wide_prefetch
                .unwrap_or(self.n > wgsl::topk::WIDE_TILE as usize);
            constants.push(("WIDE_PREFETCH", prefetch as u32 as f64));
            constants.push(("WIDE_ROWS", self.rows_per_group() as f64));
            constants.push(("WIDE_BIT_TESTS", self.wide_bit_tests as u32 as f64));
            constants.push(("WIDE_LEAN", self.wide_lean as u32 as f64));
            constants.push(("WIDE_FLOOR_FOLD", self.wide_floor_fold as u32 as f64));
        }
        if let Some(phase) = self.profile {
            constants.push(("PROFILE_STOP", phase as u32 as f64));
        }
        constants.push(("VALUES_FROM_KEYS", self.values_from_keys as u32 as f64));
        constants
    }

    /// The one pass's entry point: 512-entry tiles, or 4096-entry ones with `wide_tiles`.
    pub(super) fn one_pass_entry(&self) -> &'static str {
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
