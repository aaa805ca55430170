// Body of the topk kernels: the parameters and bindings, the order, the outputs and what
// several paths share; each path's kernels are in a part of their own, included at the end.
// The including file defines `alias Score` (the element type of the `scores` binding),
// `load_score` (entry i of the binding's elements, as f32), and includes one of the tier
// hooks `append_candidate`, `sel_claim` and `sel_shuffle_xor`
// (shared/topk_tier{,_subgroup}.wgsl) and one of the one pass's reading orders, `tile_span`,
// `tile_col`, `load_tile` and `admits` (shared/topk_tile{,_quad}.wgsl).

//! include shared/common.wgsl
//! include shared/order_key.wgsl


struct TopkParams {
    rows: u32,         // rows in this batch
    n: u32,            // row length (columns)
    k: u32,
    stride: u32,       // elements between row starts in the input
    out_shift: u32,    // element offset of this batch's row 0 in the out_values/indices bindings
    row_shift: u32,    // element offset of this batch's row 0 in the lengths/counts bindings
    in_shift: u32,     // element offset of row 0 inside the input binding
    has_lengths: u32,  // 1: row r considers only its first min(lengths[r], n) entries
    smallest: u32,     // 1: select the k smallest
    chunk: u32,        // elements per histogram/compact workgroup (multiple of WG)
    chunks: u32,       // chunks per row (≤ WG)
    sort_size: u32,    // power of two ≥ k: row pitch of `pairs`
    hist_base: u32,    // u32 offsets into `work`
    info_base: u32,
    state_base: u32,
    sorted: u32,       // 0: unsorted output order (one-pass path; radix skips the sort)
}

// Per-dispatch step of the radix path (group 1): which pass, or which bitonic step.
struct TopkStepParams {
    pass_: u32,    // radix pass 0..3 (topk_histogram)
    size: u32,     // bitonic merge size s
    stride: u32,   // compare distance j (global step), or 0 for a local step
    full: u32,     // 1: local step sorts whole blocks from scratch (sizes 2..block)
    last: u32,     // 1: the final sort step, which writes the outputs itself
}

const WG: u32 = 256u;
const BLOCK: u32 = 2048u;        // elements a local bitonic step holds in workgroup memory (16 KiB,
                                 // the WebGPU minimum limit): k ≤ 2048 sorts in one dispatch
const SENTINEL_IDX: u32 = 0xFFFFFFFFu;
// Profiling only (`TopkConfig::profile`): the row select and the wide one pass end after a
// phase without writing a result: 1 the (first tile's) floor, 2 the gather or the tile loop,
// 3 the sort; the row select also 4 and 5, after a gather that only reads, or reads and
// tests. 0 (the default) runs it all.
override PROFILE_STOP: u32 = 0u;
const COMPACT_PASS: u32 = 4u;    // topk_compact chooses the last digit, as a fifth pass would
const KEY_LOADS: u32 = 4u;       // loads a radix thread issues before using the first
const MAX_RUN: u32 = 16u;        // largest COMPACT_RUN
// Consecutive entries each compaction thread takes per tile of WG·COMPACT_RUN (1..MAX_RUN):
// the host sets chunk / 512, so a chunk is 2 tiles (4 at the longest chunks).
override COMPACT_RUN: u32 = 4u;

// work layout: hist [rows][chunks][256] | info [rows][chunks] | state [rows][4][4]
// hist: per chunk, the latest pass's count of entries (matching the prefix) whose digit is ≥ b:
//   suffix counts, so that "how many above digit d" is one load.
// info: per chunk, the entries known to be above the threshold from the digits chosen so far.
// state s (1..4): the row once digits 0..s-1 are chosen: prefix, remaining, gt_total, unused.
//   Written by chunk 0 of the dispatch that chose digit s-1, for the dispatches after it.
// The split row select's row_hist is its own (sel_split_base).
// row_hist [rows][3][256], only for rows of several chunks (a one-chunk row's histogram is its
//   chunk's): each pass's row histogram (plain counts), summed by atomics from the chunks.
//   Pass p adds into slot p % 3 and clears slot (p+1) % 3, whose last reader was pass p-1, so
//   the next pass finds its slot zero. Slot 0 (pass 3's, read by topk_compact) is cleared by
//   the first sort step or topk_finalize, so every run leaves the slot that the next run's
//   pass 0 adds into at zero, as the buffer starts.

@group(0) @binding(0) var<uniform> p: TopkParams;
@group(0) @binding(1) var<storage, read> scores: array<Score>;
@group(0) @binding(2) var<storage, read> lengths: array<u32>;
@group(0) @binding(3) var<storage, read_write> work: array<u32>;
@group(0) @binding(4) var<storage, read_write> pairs: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read_write> out_values: array<f32>;
@group(0) @binding(6) var<storage, read_write> out_indices: array<u32>;
@group(0) @binding(7) var<storage, read_write> out_counts: array<u32>;
@group(0) @binding(8) var<storage, read_write> row_hist: array<atomic<u32>>;
@group(1) @binding(0) var<uniform> sp: TopkStepParams;


// Order key for the configured end: selecting the smallest inverts the keys of numbers only,
// so NaN (key 0) stays last.
fn order_key(x: f32) -> u32 {
    let key = largest_key(x);
    return select(key, ~key, p.smallest != 0u && key != 0u);
}

fn row_len(row: u32) -> u32 {
    if (p.has_lengths != 0u) {
        return min(lengths[p.row_shift + row], p.n);
    }
    return p.n;
}

// f16 scores are widened exactly (shared/f16_bits.wgsl), so both tiers share one order.
fn score(row: u32, col: u32) -> f32 {
    return load_score(p.in_shift + row * p.stride + col);
}

// ---- Shared by the paths ----

// A histogram pass's counts, in HIST_COPIES copies: thread lid adds into copy lid % HIST_COPIES.
// Float keys crowd few digits (pass 0 sees sign and exponent: random scores fill a handful of
// bins; masked or constant rows fill one), and same-address atomics serialize, 32-way within
// an NVIDIA warp. Copies cut that to 4-way. Bin-major, so a bin's copies sit in distinct
// banks. Threads also add runs of equal digits as one atomic.
const HIST_COPIES: u32 = 8u;
var<workgroup> wg_hist: array<atomic<u32>, 256u * HIST_COPIES>;

// The lower element of compare pair `t` at power-of-two distance j: 2j·⌊t/j⌋ + t mod j, in
// bit operations (a GPU divides integers in software, and the sorts do this every step).
fn bitonic_lower(t: u32, j: u32) -> u32 {
    return ((t & ~(j - 1u)) << 1u) | (t & (j - 1u));
}

// True when a comes first: larger key, then smaller index.
fn before(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.x > b.x || (a.x == b.x && a.y < b.y);
}

// Output slot `slot` of batch row `row`: the selected index and its original value (so NaN
// payloads and -0.0 come back untouched), or, for SENTINEL_IDX, the padding value.
// The one pass and the row select write a kept entry's value from its key
// (`TopkConfig::values_from_keys`) where that is exact, every number but the two zeros (whose
// keys are equal), instead of reading it back from the scores: a dependent read at the end of
// each row. NaN and the zeros are still read, so payloads and signs come back as stored.
override VALUES_FROM_KEYS: bool = false;

// write_slot for the kept entry `e` (key, index) if `ok`, else padding.
fn write_kept(row: u32, slot: u32, e: vec2<u32>, ok: bool) {
    let largest = select(e.x, ~e.x, p.smallest != 0u && e.x != 0u);
    if (!VALUES_FROM_KEYS || !ok || e.x == 0u || largest == 0x80000000u) {
        write_slot(row, slot, select(SENTINEL_IDX, e.y, ok));
        return;
    }
    let out = p.out_shift + row * p.k + slot;
    out_indices[out] = e.y;
    out_values[out] = key_value(e.x);
}

// Padding in batch row `row`'s output slots from `start` to k, by `threads` threads (this
// one `lid`).
fn write_padding(row: u32, start: u32, lid: u32, threads: u32) {
    for (var slot = start + lid; slot < p.k; slot += threads) {
        write_slot(row, slot, SENTINEL_IDX);
    }
}

fn write_slot(row: u32, slot: u32, idx: u32) {
    let out = p.out_shift + row * p.k + slot;
    out_indices[out] = idx;
    if (idx != SENTINEL_IDX) {
        out_values[out] = score(row, idx);
    } else {
        out_values[out] = select(-1.0, 1.0, p.smallest != 0u) * pos_inf();
    }
}

// The paths, one part each (WGSL declarations may come in any order, so a part uses what
// another declares: the row select reads tiles as the wide one pass does).
//! include shared/topk_radix.wgsl
//! include shared/topk_one_pass.wgsl
//! include shared/topk_one_pass_wide.wgsl
//! include shared/topk_row_select.wgsl
//! include shared/topk_row_select_sort.wgsl
//! include shared/topk_row_select_split.wgsl
