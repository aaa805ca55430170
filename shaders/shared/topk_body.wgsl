// Body of the topk kernels; the including file defines `alias Score` (the element type of the
// `scores` binding), `load_score` (entry i of the binding's elements, as f32) and includes one
// the tier hooks `append_candidate`, `sel_claim` and `sel_shuffle_xor`
// (shared/topk_tier{,_subgroup}.wgsl)
// and the one pass's reading order,
// `tile_span`, `tile_col`, `load_tile` and `admits` (shared/topk_tile{,_quad}.wgsl).

//! include shared/common.wgsl
//! include shared/order_key.wgsl


struct TopkParams {
    rows: u32,         // rows in this batch
    n: u32,            // row length (columns)
    k: u32,
    stride: u32,       // elements between row starts in the input
    row0: u32,         // global index of this batch's first row (outputs, lengths)
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
        return min(lengths[p.row0 + row], p.n);
    }
    return p.n;
}

// f16 scores are widened exactly (shared/f16_bits.wgsl), so both tiers share one order.
fn score(row: u32, col: u32) -> f32 {
    return load_score(p.in_shift + row * p.stride + col);
}

fn state_at(row: u32, s: u32) -> u32 {
    return p.state_base + (row * 4u + s - 1u) * 4u;
}

fn hist_at(row: u32, chunk: u32) -> u32 {
    return p.hist_base + (row * p.chunks + chunk) * 256u;
}

fn info_at(row: u32, chunk: u32) -> u32 {
    return p.info_base + row * p.chunks + chunk;
}

fn row_hist_at(row: u32, slot: u32) -> u32 {
    return (row * 3u + slot) * 256u;
}

// Entries with a digit above `digit`, from the suffix counts at `hist` (a hist_at offset).
fn count_above(hist: u32, digit: u32) -> u32 {
    if (digit == 255u) {
        return 0u;
    }
    return work[hist + digit + 1u];
}

// The keys at columns first, first + step, ... (KEY_LOADS of them; 0 from `end` on). All loads
// are issued before any key is used, so a thread waits on memory once per KEY_LOADS entries
// rather than once per entry: one long row spreads over few workgroups, which latency, not
// bandwidth, bounds.
fn keys_at(row: u32, first: u32, step: u32, end: u32) -> array<u32, KEY_LOADS> {
    var keys: array<u32, KEY_LOADS>;
    for (var e = 0u; e < KEY_LOADS; e++) {
        let col = first + e * step;
        if (col < end) {
            keys[e] = order_key(score(row, col));
        }
    }
    return keys;
}

// A histogram pass's counts, in HIST_COPIES copies: thread lid adds into copy lid % HIST_COPIES.
// Float keys crowd few digits (pass 0 sees sign and exponent: random scores fill a handful of
// bins; masked or constant rows fill one), and same-address atomics serialize, 32-way within
// an NVIDIA warp. Copies cut that to 4-way. Bin-major, so a bin's copies sit in distinct
// banks. Threads also add runs of equal digits as one atomic.
const HIST_COPIES: u32 = 8u;
var<workgroup> wg_hist: array<atomic<u32>, 256u * HIST_COPIES>;
var<workgroup> wg_chosen: vec4<u32>;
var<workgroup> wg_scan: array<vec2<u32>, WG>;
var<workgroup> wg_scan_block: array<vec2<u32>, 16>;

// Inclusive scan of `v` over the workgroup's threads, from thread 0 up, in two levels (16
// blocks of 16): four barriers and at most 31 loads per thread, where Hillis-Steele takes 16
// barriers (which CPU drivers pay dearly for). Uniform call.
fn workgroup_scan(lid: u32, v: vec2<u32>) -> vec2<u32> {
    workgroupBarrier();
    wg_scan[lid] = v;
    workgroupBarrier();
    if (lid < 16u) {
        var sum = vec2<u32>(0u);
        for (var i = 0u; i < 16u; i++) {
            sum += wg_scan[lid * 16u + i];
        }
        wg_scan_block[lid] = sum;
    }
    workgroupBarrier();
    let block = lid / 16u;
    var sum = vec2<u32>(0u);
    for (var b = 0u; b < block; b++) {
        sum += wg_scan_block[b];
    }
    for (var i = block * 16u; i <= lid; i++) {
        sum += wg_scan[i];
    }
    return sum;
}

// The sum over all threads of the last `workgroup_scan` (until the next one begins).
fn workgroup_scan_total() -> vec2<u32> {
    var total = vec2<u32>(0u);
    for (var b = 0u; b < 16u; b++) {
        total += wg_scan_block[b];
    }
    return total;
}

// Entries with digit ≥ 255 - lid, given this thread's count of digit 255 - lid: the scan from
// thread 0 up sums the digits from 255 down. Uniform call.
fn suffix_count(lid: u32, count: u32) -> u32 {
    return workgroup_scan(lid, vec2<u32>(count, 0u)).x;
}

// The row once digit `pass_ - 1` is chosen: (prefix, remaining, gt_total, that digit). Every
// workgroup of a pass works it out from the previous pass's row histogram, so no dispatch
// of its own (and no serial chain) sits between two histogram passes; chunk 0 stores it.
// Suffix counts never increase with the digit and the first is ≥ remaining, so exactly one
// digit is the last whose count reaches it (255 when remaining is 0: an empty row).
// Uniform call.
fn choose_digit(lid: u32, row: u32, pass_: u32) -> vec4<u32> {
    var prev = vec3<u32>(0u, min(p.k, row_len(row)), 0u);
    if (pass_ > 1u) {
        let st = state_at(row, pass_ - 1u);
        prev = vec3<u32>(work[st], work[st + 1u], work[st + 2u]);
    }
    let remaining = prev.y;
    // Thread lid takes digit 255 - lid: its suffix count and the count above it.
    let digit = 255u - lid;
    var suffix: u32;
    var above: u32;
    if (p.chunks == 1u) {
        // A one-chunk row's histogram is its chunk's, kept as suffix counts: no atomics.
        let h = hist_at(row, 0u);
        suffix = work[h + digit];
        above = count_above(h, digit);
    } else {
        let count = atomicLoad(&row_hist[row_hist_at(row, (pass_ - 1u) % 3u) + digit]);
        suffix = suffix_count(lid, count);
        above = suffix - count;
    }
    if (suffix >= remaining && (above < remaining || digit == 255u)) {
        wg_chosen = vec4<u32>(
            prev.x | (digit << (32u - 8u * pass_)),
            remaining - above,
            prev.z + above,
            digit,
        );
    }
    // The whole state through workgroupUniformLoad: `prev` comes from storage, which the
    // uniformity analysis cannot prove uniform, and callers branch on it before barriers.
    return workgroupUniformLoad(&wg_chosen);
}

fn store_state(row: u32, s: u32, state: vec4<u32>) {
    let st = state_at(row, s);
    work[st] = state.x;
    work[st + 1u] = state.y;
    work[st + 2u] = state.z;
}

// One workgroup per (row, chunk): first (from pass 1 on) the digit the previous pass settled,
// then the histogram of this pass's 8-bit digit over the entries whose higher digits equal the
// prefix so far: added into the row histogram, and kept per chunk as suffix counts (digit ≥ b)
// for the next pass's "above" count and for the compaction's slots.
@compute @workgroup_size(WG)
fn topk_histogram(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = linear_workgroup(wid, nwg);
    if (g >= p.rows * p.chunks) {
        return;
    }
    let row = g / p.chunks;
    let chunk = g % p.chunks;
    let pass_ = sp.pass_;
    for (var i = lid; i < 256u * HIST_COPIES; i += WG) {
        atomicStore(&wg_hist[i], 0u);
    }
    var prefix = 0u;
    // Entries of this chunk whose digits so far equal the prefix (any number on pass 0).
    var matching = 1u;
    if (pass_ > 0u) {
        let state = choose_digit(lid, row, pass_);
        prefix = state.x;
        let h = hist_at(row, chunk);
        let above = count_above(h, state.w);
        matching = work[h + state.w] - above;
        if (lid == 0u) {
            // This chunk's entries above the digit just chosen are above the threshold.
            let info = info_at(row, chunk);
            work[info] = select(work[info], 0u, pass_ == 1u) + above;
            if (chunk == 0u) {
                store_state(row, pass_, state);
            }
        }
        // The reads of the old counts come before this chunk's new ones are written.
        storageBarrier();
    }
    if (chunk == 0u && p.chunks > 1u) {
        atomicStore(&row_hist[row_hist_at(row, (pass_ + 1u) % 3u) + lid], 0u);
    }
    workgroupBarrier();
    let shift = 24u - 8u * pass_;
    // Bits above the current digit; none on the first pass.
    let high = select(0xFFFFFFFFu << (shift + 8u), 0u, pass_ == 0u);
    let len = row_len(row);
    let start = chunk * p.chunk;
    // A chunk with no entry left in the running skips its scan: its histogram is all zeros.
    // Past the first two digits few chunks of a long row still hold one (random scores: the
    // last pass scans about one chunk per row), so the later passes cost little more than
    // their dispatch.
    let end = select(start, min(start + p.chunk, len), matching != 0u);
    let copy = lid % HIST_COPIES;
    // This thread's current run of equal digits, added with one atomic when the digit changes.
    var run_digit = 0u;
    var run = 0u;
    for (var first = start + lid; first < end; first += WG * KEY_LOADS) {
        let keys = keys_at(row, first, WG, end);
        for (var e = 0u; e < KEY_LOADS; e++) {
            if (first + e * WG < end && (keys[e] & high) == (prefix & high)) {
                let d = (keys[e] >> shift) & 255u;
                if (d != run_digit && run != 0u) {
                    atomicAdd(&wg_hist[run_digit * HIST_COPIES + copy], run);
                    run = 0u;
                }
                run_digit = d;
                run++;
            }
        }
    }
    if (run != 0u) {
        atomicAdd(&wg_hist[run_digit * HIST_COPIES + copy], run);
    }
    workgroupBarrier();
    let digit = 255u - lid;
    var count = 0u;
    for (var c = 0u; c < HIST_COPIES; c++) {
        // Rotated by lid, so neighbouring threads read distinct banks.
        count += atomicLoad(&wg_hist[digit * HIST_COPIES + (c + lid) % HIST_COPIES]);
    }
    if (count != 0u && p.chunks > 1u) {
        atomicAdd(&row_hist[row_hist_at(row, pass_ % 3u) + digit], count);
    }
    work[hist_at(row, chunk) + digit] = suffix_count(lid, count);
}

// This chunk's first slots among the row's keys above / equal to the threshold (.xy) and its
// counts of them (.zw).
var<workgroup> wg_slots: vec4<u32>;

// One workgroup per (row, chunk): choose the last digit (the full threshold key), then write
// keys above the threshold, then the lowest-index keys equal to it, in index order, so the
// unsorted result is deterministic too.
@compute @workgroup_size(WG)
fn topk_compact(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = linear_workgroup(wid, nwg);
    if (g >= p.rows * p.chunks) {
        return;
    }
    let row = g / p.chunks;
    let chunk = g % p.chunks;
    let state = choose_digit(lid, row, COMPACT_PASS);
    let threshold = state.x;
    let need_eq = state.y;
    let gt_total = state.z;
    let digit = state.w;
    if (lid == 0u && chunk == 0u) {
        store_state(row, COMPACT_PASS, state);
    }
    // Every chunk's counts at the threshold, one thread per chunk (chunks ≤ WG), scanned.
    var counts = vec2<u32>(0u);
    if (lid < p.chunks) {
        let h = hist_at(row, lid);
        let above = count_above(h, digit);
        counts = vec2<u32>(work[info_at(row, lid)] + above, work[h + digit] - above);
    }
    var first = vec2<u32>(0u);
    if (p.chunks > 1u) {
        first = workgroup_scan(lid, counts) - counts;
    }
    if (lid == chunk) {
        wg_slots = vec4<u32>(first, counts);
    }
    let slots = workgroupUniformLoad(&wg_slots);
    if (slots.z == 0u && (slots.w == 0u || slots.y >= need_eq)) {
        return; // uniform across the workgroup: nothing selected here
    }
    // The chunk in tiles of WG·COMPACT_RUN entries, thread lid taking COMPACT_RUN
    // consecutive ones: each entry is read once, and one scan per tile gives every selected
    // key its slot in index order.
    let len = row_len(row);
    let start = chunk * p.chunk;
    let end = min(start + p.chunk, len);
    let base = row * p.sort_size;
    var next = slots.xy;
    for (var tile = start; tile < end; tile += WG * COMPACT_RUN) {
        let first = tile + lid * COMPACT_RUN;
        let run = min(COMPACT_RUN, end - min(first, end));
        // Loops bounded by the pipeline constant unroll, so `keys` stays in registers and
        // every load is issued before any key is used.
        var keys: array<u32, MAX_RUN>;
        for (var e = 0u; e < COMPACT_RUN; e++) {
            if (e < run) {
                keys[e] = order_key(score(row, first + e));
            }
        }
        var mine = vec2<u32>(0u);
        for (var e = 0u; e < COMPACT_RUN; e++) {
            mine.x += select(0u, 1u, e < run && keys[e] > threshold);
            mine.y += select(0u, 1u, e < run && keys[e] == threshold);
        }
        var slot = next + workgroup_scan(lid, mine) - mine;
        next += workgroup_scan_total();
        // An `if`, not a `continue`: a non-uniform one would make the next tile's scan
        // non-uniform.
        if (any(mine != vec2<u32>(0u))) {
            for (var e = 0u; e < COMPACT_RUN; e++) {
                let key = keys[e];
                let live = e < run; // not past the chunk or row end
                if (live && key > threshold) {
                    pairs[base + slot.x] = vec2<u32>(key, first + e);
                    slot.x++;
                } else if (live && key == threshold) {
                    if (slot.y < need_eq) {
                        pairs[base + gt_total + slot.y] = vec2<u32>(key, first + e);
                    }
                    slot.y++;
                }
            }
        }
    }
}

// The lower element of compare pair `t` at power-of-two distance j: 2j·⌊t/j⌋ + t mod j, in
// bit operations (a GPU divides integers in software, and the sorts do this every step).
fn bitonic_lower(t: u32, j: u32) -> u32 {
    return ((t & ~(j - 1u)) << 1u) | (t & (j - 1u));
}

// True when a comes first: larger key, then smaller index.
fn before(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.x > b.x || (a.x == b.x && a.y < b.y);
}

var<workgroup> wg_pairs: array<vec2<u32>, BLOCK>;

fn kept(row: u32) -> u32 {
    let st = state_at(row, COMPACT_PASS);
    return work[st + 2u] + work[st + 1u];
}

// Threads of a topk_sort_local workgroup (the host's `TopkConfig::sort_workgroup`: 256, 512
// or 1024, within the device's limits). A block's 66 steps (BLOCK = 2048) are one workgroup's
// barrier-separated rounds of BLOCK / 2 compare-exchanges: more threads, fewer rounds each.
override SORT_WG: u32 = WG;

// Bitonic steps with stride < BLOCK inside one workgroup. `full`: all sizes 2..block from
// scratch (padding the row with sentinels past its kept count); else the tail of size `size`.
@compute @workgroup_size(SORT_WG)
fn topk_sort_local(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let block = min(BLOCK, p.sort_size);
    let blocks = p.sort_size / block;
    let g = linear_workgroup(wid, nwg);
    if (g >= p.rows * blocks) {
        return;
    }
    let row = g / blocks;
    let first = (g % blocks) * block;
    let base = row * p.sort_size;
    let count = kept(row);
    if (sp.full != 0u && first == 0u && p.chunks > 1u && lid < 256u) {
        // topk_compact was the last reader of the row histogram's slot 0: clear it for the
        // next run's pass 0.
        atomicStore(&row_hist[row_hist_at(row, 0u) + lid], 0u);
    }
    for (var t = lid; t < block; t += SORT_WG) {
        var v = pairs[base + first + t];
        if (sp.full != 0u && first + t >= count) {
            v = vec2<u32>(0u, SENTINEL_IDX);
        }
        wg_pairs[t] = v;
    }
    var size = select(sp.size, 2u, sp.full != 0u);
    let last = select(sp.size, block, sp.full != 0u);
    loop {
        var j = min(size, block) / 2u;
        loop {
            workgroupBarrier();
            for (var t = lid; t < block / 2u; t += SORT_WG) {
                let i = bitonic_lower(t, j);
                let a = wg_pairs[i];
                let b = wg_pairs[i + j];
                let asc = ((first + i) & size) == 0u;
                if (select(before(a, b), before(b, a), asc)) {
                    wg_pairs[i] = b;
                    wg_pairs[i + j] = a;
                }
            }
            if (j == 1u) {
                break;
            }
            j /= 2u;
        }
        if (size >= last) {
            break;
        }
        size *= 2u;
    }
    workgroupBarrier();
    if (sp.last != 0u) {
        // The block is final: write its output slots (what topk_finalize does otherwise).
        for (var t = lid; t < block && first + t < p.k; t += SORT_WG) {
            let slot = first + t;
            write_slot(row, slot, select(SENTINEL_IDX, wg_pairs[t].y, slot < count));
        }
        if (first == 0u && lid == 0u) {
            out_counts[p.row0 + row] = count;
        }
        return;
    }
    for (var t = lid; t < block; t += SORT_WG) {
        pairs[base + first + t] = wg_pairs[t];
    }
}

// The sorted output by rank instead of the bitonic network (`TopkConfig::rank_sort`): each
// survivor counts the survivors that come before it (`before` is a strict total order, so the
// counts are a permutation of 0..kept) and writes output slot `rank` itself. One dispatch of
// rows × ⌈k / WG⌉ workgroups, one survivor per thread, the row's survivors streamed through
// workgroup memory RANK_CHUNK at a time: no barrier per step, and a decode row spreads over
// k / WG workgroups instead of one. kept² comparisons per row, so it suits few rows.
const RANK_CHUNK: u32 = 1024u;   // 8 KiB: more workgroups per core than the sort's 16 KiB
var<workgroup> wg_rank: array<vec2<u32>, RANK_CHUNK>;
var<workgroup> wg_kept: u32;

@compute @workgroup_size(WG)
fn topk_rank_sort(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tiles = (p.k + WG - 1u) / WG;
    let g = linear_workgroup(wid, nwg);
    if (g >= p.rows * tiles) {
        return;
    }
    let row = g / tiles;
    let tile = g % tiles;
    let base = row * p.sort_size;
    if (tile == 0u && p.chunks > 1u) {
        // As the first bitonic step does: topk_compact was the last reader of the row
        // histogram's slot 0; clear it for the next run's pass 0.
        atomicStore(&row_hist[row_hist_at(row, 0u) + lid], 0u);
    }
    if (lid == 0u) {
        wg_kept = kept(row);
    }
    let count = workgroupUniformLoad(&wg_kept);
    let i = tile * WG + lid;
    var mine = vec2<u32>(0u, SENTINEL_IDX);
    if (i < count) {
        mine = pairs[base + i];
    }
    var rank = 0u;
    for (var first = 0u; first < count; first += RANK_CHUNK) {
        let n = min(RANK_CHUNK, count - first);
        workgroupBarrier();
        for (var t = lid; t < n; t += WG) {
            wg_rank[t] = pairs[base + first + t];
        }
        workgroupBarrier();
        for (var j = 0u; j < n; j++) {
            rank += select(0u, 1u, before(wg_rank[j], mine));
        }
    }
    if (i < count) {
        write_slot(row, rank, mine.y);
    } else if (i < p.k) {
        write_slot(row, i, SENTINEL_IDX);
    }
    if (i == 0u) {
        out_counts[p.row0 + row] = count;
    }
}

// One bitonic step with stride ≥ BLOCK, on global memory.
@compute @workgroup_size(WG)
fn topk_sort_global(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = linear_workgroup(wid, nwg) * WG + lid;
    let half_ = p.sort_size / 2u;
    if (t >= p.rows * half_) {
        return;
    }
    let row = t / half_;
    let q = t % half_;
    let j = sp.stride;
    let i = bitonic_lower(q, j);
    let base = row * p.sort_size;
    let a = pairs[base + i];
    let b = pairs[base + i + j];
    let asc = (i & sp.size) == 0u;
    if (select(before(a, b), before(b, a), asc)) {
        pairs[base + i] = b;
        pairs[base + i + j] = a;
    }
}

// One thread per output slot: the selected index, its original value (so NaN payloads and
// -0.0 come back untouched), or the padding sentinel; slot 0 also writes the row's count.
@compute @workgroup_size(WG)
fn topk_finalize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = linear_workgroup(wid, nwg) * WG + lid;
    if (t >= p.rows * p.k) {
        return;
    }
    let row = t / p.k;
    let slot = t % p.k;
    let count = kept(row);
    // As the first sort step does when sorted: clear slot 0 of the row histogram.
    for (var i = slot; i < 256u && p.chunks > 1u; i += p.k) {
        atomicStore(&row_hist[row_hist_at(row, 0u) + i], 0u);
    }
    var idx = SENTINEL_IDX;
    if (slot < count) {
        idx = pairs[row * p.sort_size + slot].y;
    }
    write_slot(row, slot, idx);
    if (slot == 0u) {
        out_counts[p.row0 + row] = count;
    }
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
    let out = (p.row0 + row) * p.k + slot;
    out_indices[out] = e.y;
    out_values[out] = key_value(e.x);
}

fn write_slot(row: u32, slot: u32, idx: u32) {
    let out = (p.row0 + row) * p.k + slot;
    out_indices[out] = idx;
    if (idx != SENTINEL_IDX) {
        out_values[out] = score(row, idx);
    } else {
        out_values[out] = select(-1.0, 1.0, p.smallest != 0u) * pos_inf();
    }
}

// ---- One-pass top-k for small k (topk_one_pass) ----
//
// One workgroup per row reads the row once, in tiles of ONE_PASS_TILE entries. An entry joins
// a candidate buffer in workgroup memory when the row's current top-k is not full yet or it
// beats the current k-th entry `tau` (`admits`; in row order an equal key arrives later, so it
// loses the tie). When the buffer could overflow on the next tile, it shrinks to its best k
// and tau rises. Entries rejected against tau come after k others in the (key, index) order,
// so the result is exactly the radix path's, order and all. Random rows produce about k·(1 + ln(n/k))
// candidates in all, so a row costs one read plus a few small sorts; sorted ascending rows
// are the worst case (a shrink per tile), still exact.
//
// A shrink keeps the buffer's front sorted: only the candidates that arrived since the last
// one are sorted, then merged with the sorted front by rank (each entry binary-searches the
// other list) in one step. Up to RANK_FRESH_MAX arrivals are sorted by rank
// (`rank_candidates`: each against all, two barriers), more by a bitonic network over just
// their range (`sort_candidates`: a barrier per step); up to RANK_ALL_MAX candidates in all
// are ranked together, with no merge.

const ONE_PASS_CAP: u32 = 1024u;              // candidate buffer (8 KiB)
const ONE_PASS_PER_THREAD: u32 = 2u;         // load_tile's vec2
const ONE_PASS_TILE: u32 = WG * ONE_PASS_PER_THREAD; // k ≤ CAP - TILE (ONE_PASS_MAX_K)
const_assert ONE_PASS_CAP == 4u * WG; // shrink_candidates' merge holds 4 entries per thread
// Appends in the last tile from which the subgroup tier takes its next tile's appends with
// subgroup operations (one atomic per subgroup) instead of one atomic each: those operations
// cost every entry, admitted or not. H200: always using them made a random 4096×65536 k=32
// row set 1.86× slower (3.01 against 1.62 ms) than the core append.
const DENSE_APPENDS: u32 = 64u;
// Up to this many candidates in all, a shrink ranks them all (rank_candidates) rather than
// sort the arrivals and merge them with the sorted front; up to RANK_FRESH_MAX arrivals are
// ranked rather than sorted by a bitonic network. At most WG: ranking is n² compares, so
// past 128 the network's fewer compares won (H200, 4096 × 65536, k = 256: 966 µs ranking up
// to 256 arrivals, 956 µs up to 128).
const RANK_ALL_MAX: u32 = 128u;
const RANK_FRESH_MAX: u32 = 128u;

var<workgroup> cand: array<vec2<u32>, ONE_PASS_CAP>;
var<workgroup> cand_count: atomic<u32>;
var<workgroup> cand_tau: vec2<u32>;             // the k-th best (key, index) once full
var<workgroup> cand_sorted: u32;              // cand[0, cand_sorted) is sorted best-first

// Whether `b` goes before `a` in a candidate sort: best-first (`before`), or with `by_class`
// by (class, index), class 0 for keys above `t` and 1 for keys equal to it.
fn sorts_first(b: vec2<u32>, a: vec2<u32>, by_class: bool, t: u32) -> bool {
    if (by_class) {
        let ca = select(0u, 1u, a.x == t);
        let cb = select(0u, 1u, b.x == t);
        return cb < ca || (cb == ca && b.y < a.y);
    }
    return before(b, a);
}

// Sorts cand[first, first + count) best-first (`before`). `by_class`: instead order by
// (class, index) with class 0 for keys above `t` and 1 for keys equal to it: the unsorted
// output order of the radix path. A bitonic network in its one-direction form (each merge
// starts by comparing mirrored pairs), so entries past `count` act as sentinels that never
// move and need not exist: the sort touches only its range. Uniform call.
fn sort_candidates(lid: u32, first: u32, count: u32, by_class: bool, t: u32) {
    var size = 2u;
    while (size < count) {
        size *= 2u;
    }
    for (var s = 2u; s <= size; s *= 2u) {
        for (var j = s / 2u; j > 0u; j /= 2u) {
            workgroupBarrier();
            for (var h = lid; h < size / 2u; h += WG) {
                let i = bitonic_lower(h, j);
                // The first step of a merge pairs i with its mirror in the block of size s.
                let q = select(i + j, (i | (s - 1u)) - (i & (s - 1u)), j == s / 2u);
                if (q < count) {
                    let a = cand[first + i];
                    let b = cand[first + q];
                    if (sorts_first(b, a, by_class, t)) {
                        cand[first + i] = b;
                        cand[first + q] = a;
                    }
                }
            }
        }
    }
    workgroupBarrier();
}

// How many of the sorted cand[lo, hi) come before `v` (`before` is a strict total order: keys,
// then distinct indices).
fn count_before(v: vec2<u32>, lo: u32, hi: u32) -> u32 {
    var l = lo;
    var h = hi;
    while (l < h) {
        let mid = (l + h) / 2u;
        if (before(cand[mid], v)) {
            l = mid + 1u;
        } else {
            h = mid;
        }
    }
    return l - lo;
}

// The merged place of candidate `v` at `slot`, of the sorted cand[0, front) and the sorted
// cand[front, count); ONE_PASS_CAP (never placed) past `count`.
fn merge_rank(v: vec2<u32>, slot: u32, front: u32, count: u32) -> u32 {
    if (slot >= count) {
        return ONE_PASS_CAP;
    }
    if (slot < front) {
        return slot + count_before(v, front, count);
    }
    return slot - front + count_before(v, 0u, front);
}

fn place_candidate(v: vec2<u32>, rank: u32) {
    if (rank < p.k) {
        cand[rank] = v;
    }
}

// Sorts cand[first, first + n) (n ≤ WG) best-first by rank: each thread ranks one entry
// against all of them (`before` is a strict total order, so the ranks are distinct) and
// puts it at its rank if that is below `keep`. Two barriers, where a bitonic sort takes one
// per step (28 for 128 entries, 36 for 256), for n² compares. Uniform call.
fn rank_candidates(lid: u32, first: u32, n: u32, keep: u32) {
    var v = vec2<u32>(0u, SENTINEL_IDX);
    var rank = ONE_PASS_CAP;
    if (lid < n) {
        v = cand[first + lid];
        rank = 0u;
        for (var j = first; j < first + n; j++) {
            rank += select(0u, 1u, before(cand[j], v));
        }
    }
    workgroupBarrier();
    if (rank < keep) {
        cand[first + rank] = v;
    }
    workgroupBarrier();
}

// Keeps the best k of the `count` candidates, sorted, and sets tau. Uniform call.
fn shrink_candidates(lid: u32, count: u32) {
    shrink_candidates_at(lid, count, workgroupUniformLoad(&cand_sorted));
}

// shrink_candidates where the caller knows how many lead sorted (`front`, cand_sorted), so
// no barrier reads it. Uniform call.
fn shrink_candidates_at(lid: u32, count: u32, front: u32) {
    if (count <= RANK_ALL_MAX && front < count) {
        // Few in all: rank them all at once, with no merge.
        rank_candidates(lid, 0u, count, p.k);
    } else if (front < count) {
        // Sort the arrivals since the last shrink, then merge them with the sorted front.
        let fresh = count - front;
        if (fresh <= RANK_FRESH_MAX) {
            rank_candidates(lid, front, fresh, fresh);
        } else {
            sort_candidates(lid, front, fresh, false, 0u);
        }
        if (front > 0u) {
            // Merge by rank: an entry's place is its index in its own list plus the number of
            // the other list's entries that come before it. Read all, then write the first k.
            // Four entries per thread (ONE_PASS_CAP = 4·WG), in named registers: a private
            // array indexed in a loop may live in local memory.
            let slots = vec4<u32>(0u, WG, 2u * WG, 3u * WG) + lid;
            let a = cand[slots.x];
            let b = cand[slots.y];
            let c = cand[slots.z];
            let d = cand[slots.w];
            let ranks = vec4<u32>(
                merge_rank(a, slots.x, front, count),
                merge_rank(b, slots.y, front, count),
                merge_rank(c, slots.z, front, count),
                merge_rank(d, slots.w, front, count),
            );
            workgroupBarrier();
            place_candidate(a, ranks.x);
            place_candidate(b, ranks.y);
            place_candidate(c, ranks.z);
            place_candidate(d, ranks.w);
            workgroupBarrier();
        }
    }
    if (lid == 0u) {
        let kept = min(count, p.k);
        atomicStore(&cand_count, kept);
        cand_sorted = kept;
        if (kept == p.k) {
            cand_tau = cand[p.k - 1u];
        }
    }
    workgroupBarrier();
}

// After the appends of a tile: the candidate count, read by every thread as one uniform
// value (the atomic form of workgroupUniformLoad: one barrier and a load, where copying the
// atomic into a plain variable first took three barriers per tile).
fn candidates_now() -> u32 {
    return workgroupUniformLoad(&cand_count);
}

// A row's start in either one pass: no candidates, no tau. Uniform call.
fn empty_candidates(lid: u32) {
    if (lid == 0u) {
        atomicStore(&cand_count, 0u);
        cand_tau = vec2<u32>(0u);
        cand_sorted = 0u;
    }
    workgroupBarrier();
}

@compute @workgroup_size(WG)
fn topk_one_pass(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    empty_candidates(lid);
    let len = row_len(row);
    var ahead = load_tile(row, 0u, len, lid);
    // Uniform loop state: the candidate count, and whether the running top-k holds k entries
    // (from then on only keys above tau are admitted).
    var count = 0u;
    var full = false;
    // Uniform too: the last tile admitted at least DENSE_APPENDS entries, so this one likely
    // does as well (sorted ascending rows, the first tiles of large k).
    var dense = false;
    for (var base = 0u; tile_span(base).x < len; base += ONE_PASS_TILE) {
        let tile = ahead;
        ahead = load_tile(row, base + ONE_PASS_TILE, len, lid);
        if (full) {
            let tau = cand_tau;
            for (var e = 0u; e < ONE_PASS_PER_THREAD; e++) {
                let col = tile_col(base, e, lid);
                var key = 0u;
                var admit = false;
                if (col < len) {
                    key = order_key(tile[e]);
                    admit = admits(key, col, tau);
                }
                append_candidate(admit, key, col, dense);
            }
        } else if (tile_span(base).y <= len) {
            // Every entry is admitted (the whole first tile of a row), so each takes a slot of
            // its own: no atomics, where the appends would all hit one counter.
            for (var e = 0u; e < ONE_PASS_PER_THREAD; e++) {
                cand[count + e * WG + lid] = vec2<u32>(order_key(tile[e]), tile_col(base, e, lid));
            }
            if (lid == 0u) {
                atomicStore(&cand_count, count + ONE_PASS_TILE);
            }
        } else {
            // A row's last, partial tile, still admitting everything.
            for (var e = 0u; e < ONE_PASS_PER_THREAD; e++) {
                let col = tile_col(base, e, lid);
                append_candidate(col < len, order_key(tile[e]), col, dense);
            }
        }
        // Shrink when the next tile might not fit, and as soon as k candidates exist, so that
        // tau filters from the second tile on.
        let before = count;
        count = candidates_now();
        dense = count - before >= DENSE_APPENDS;
        let first_full = !full && count >= p.k;
        let more = tile_span(base + ONE_PASS_TILE).x < len;
        if (count > ONE_PASS_CAP - ONE_PASS_TILE || (first_full && more)) {
            shrink_candidates(lid, count);
            count = min(count, p.k);
            full = count == p.k;
        }
    }
    finish_one_pass(lid, row);
}

// The end of a row in either one pass: the last shrink, the unsorted order if asked for,
// then the outputs. Uniform call.
fn finish_one_pass(lid: u32, row: u32) {
    finish_one_pass_at(lid, row, candidates_now(), workgroupUniformLoad(&cand_sorted));
}

// finish_one_pass where the caller knows the candidate count and the sorted front. Uniform
// call.
fn finish_one_pass_at(lid: u32, row: u32, count: u32, front: u32) {
    shrink_candidates_at(lid, count, front);
    let kept = min(count, p.k);
    if (p.sorted == 0u && kept > 0u) {
        sort_candidates(lid, 0u, kept, true, cand[kept - 1u].x);
    }
    if (PROFILE_STOP == 3u) {
        return;
    }
    for (var slot = lid; slot < p.k; slot += WG) {
        write_kept(row, slot, cand[slot], slot < kept);
    }
    if (lid == 0u) {
        out_counts[p.row0 + row] = kept;
    }
}

// ---- The wide one pass (topk_one_pass_wide, `TopkConfig::wide_tiles`) ----
//
// The one pass's algorithm over tiles of WIDE_TILE entries, 16 per thread, kept in registers:
// four vec4s and a bit mask, never an array (a private array that the driver does not
// unroll lives in local memory, and a load stored there waits for its data at once, so the
// next tile's loads would not overlap this one's work). In topk_quad those are four 16-byte
// loads per thread (shared/topk_tile_quad.wgsl), otherwise sixteen 4-byte ones. Per tile:
// - While the running top-k is not full (a row's first tile), each thread finds its best
//   entry (and for larger k its second best). Two 8-bit histograms of those seeds' keys
//   give a floor: the highest 16-bit key prefix that k seeds reach. k entries of the row
//   then reach it, so no entry below it can be kept, and it filters the tile as tau does
//   later: a random row's first tile admits about k entries instead of all of it. The
//   histograms take eight barriers, where sorting the seeds took 36 to 45.
// - Entries are offered against tau (or the floor) in (key, index) order. A whole vec4
//   provably below it as floats skips its keys.
// - Appends take slots by atomics with no headroom kept: an entry whose slot falls past
//   the buffer stays pending in its thread's mask, and after a shrink the tile's pending
//   entries are offered again (against the new tau). A thread takes the slots of all its
//   admitted entries of a tile with one atomic (H200: 2-3 % faster at k = 64 and 256 than
//   one atomic per entry). One barrier per tile when nothing overflows, where the 512-entry
//   tiles take eight.
// - A tile ends in a shrink once k candidates exist, and then whenever max(k, WIDE_REFRESH)
//   have arrived since the last one, so that tau follows the row: a tau left at the first
//   tile's k-th best admits about k entries of every later tile, a fresh one about k / t
//   after t tiles. H200, 4096 × 65536, k = 32: 658 → 497 µs; with the floor, 431 µs.
// Every entry is either kept, or dropped because k entries of the row come before it, so
// the result is the other paths' exactly.

const WIDE_PER_THREAD: u32 = 16u;
const WIDE_TILE: u32 = WG * WIDE_PER_THREAD;
// Up to this k each thread seeds its best entry only: the k-th of 256 thread bests (of 16
// entries each) already sits near the tile's k-th. Above it the k-th best drifts down to the
// smallest thread best (at k = 256, about the 69th percentile of a normal row: ~1300 of the
// tile's 4096 entries admitted, an overflow and a large shrink), so each thread seeds its
// second best too, and the floor is that of 512 seeds.
const WIDE_ONE_SEED_K: u32 = 64u;
// Whether the next tile is loaded while this one is worked on. The host turns it off where
// every row is one tile (n ≤ WIDE_TILE), which has nothing to load ahead: the pipeline then
// needs no registers for a second tile, so more workgroups may fit a core. Either way exact.
override WIDE_PREFETCH: bool = true;
// A tile ends in a shrink once max(k, WIDE_REFRESH) candidates arrived since the last one.
// H200, same call, 4096 × 65536: k = 32 gained 3 % at max(k / 2, 32) against max(k, 64)
// (410 against 424 µs), k = 256 lost 3 % (1.018 against 0.988 ms); 2k and min(k, 128) lost.
const WIDE_REFRESH: u32 = 32u;

// This thread's entries of a wide tile: entry e = 4·g + c is component c of `g<g>`, column
// wide_col(base, g, c, lid) (the reading order, shared/topk_tile{,_quad}.wgsl).
struct WideTile {
    g0: vec4<f32>,
    g1: vec4<f32>,
    g2: vec4<f32>,
    g3: vec4<f32>,
}

// All loads issued before any value is used.
fn load_wide(row: u32, base: u32, len: u32, lid: u32) -> WideTile {
    return WideTile(
        wide_group(row, base, 0u, len, lid),
        wide_group(row, base, 1u, len, lid),
        wide_group(row, base, 2u, len, lid),
        wide_group(row, base, 3u, len, lid),
    );
}

// Bit e set for each entry e of this thread inside the row.
fn wide_valid(base: u32, len: u32, lid: u32) -> u32 {
    if (base + WIDE_TILE <= len) {
        return (1u << WIDE_PER_THREAD) - 1u;
    }
    var mask = 0u;
    for (var e = 0u; e < WIDE_PER_THREAD; e++) {
        if (wide_col(base, e / 4u, e % 4u, lid) < len) {
            mask |= 1u << e;
        }
    }
    return mask;
}

fn order_keys(v: vec4<f32>) -> vec4<u32> {
    return vec4<u32>(order_key(v.x), order_key(v.y), order_key(v.z), order_key(v.w));
}

// A number whose order key is `key` (either zero for the zeros' key; NaN for key 0): tau as a
// float, for the whole-vec4 test.
fn key_value(key: u32) -> f32 {
    let largest = select(key, ~key, p.smallest != 0u && key != 0u);
    if (largest == 0u) {
        return quiet_nan();
    }
    let bits = select(~largest, largest & 0x7FFFFFFFu, (largest & 0x80000000u) != 0u);
    return bitcast<f32>(bits);
}

// No entry of `v` can be admitted against tau, whose value `t` is a number: each is a number
// beyond it on the wrong side. A NaN entry compares false and goes to the exact test (which
// rejects it: its key is below any number's); were a compiler to rewrite the comparison so
// that NaN passes it, rejecting it here would be right as well. Entries equal to t (either
// zero included) go to the exact test. A flush of denormals keeps the order weak, so it
// makes no entry pass that should not.
fn wide_group_below(v: vec4<f32>, t: f32) -> bool {
    if (p.smallest != 0u) {
        return all(v > vec4<f32>(t));
    }
    return all(v < vec4<f32>(t));
}

// The better of `best` and entry (key, col) if `ok`. A thread's entries come in column
// order (both reading orders), so a later entry beats an equal key never: the key alone
// decides, and an entry beats no entry yet whatever its key (NaN's 0 included).
fn wide_better(best: vec2<u32>, key: u32, col: u32, ok: bool) -> vec2<u32> {
    let v = vec2<u32>(key, col);
    return select(best, v, ok && (key > best.x || best.y == SENTINEL_IDX));
}

// This thread's best entry among those in `valid` (best.y = SENTINEL_IDX if none).
fn wide_best(tile: WideTile, base: u32, valid: u32, lid: u32) -> vec2<u32> {
    var best = vec2<u32>(0u, SENTINEL_IDX);
    best = wide_best_group(best, tile.g0, base, 0u, valid, lid);
    best = wide_best_group(best, tile.g1, base, 1u, valid, lid);
    best = wide_best_group(best, tile.g2, base, 2u, valid, lid);
    return wide_best_group(best, tile.g3, base, 3u, valid, lid);
}

fn wide_best_group(
    best: vec2<u32>,
    v: vec4<f32>,
    base: u32,
    g: u32,
    valid: u32,
    lid: u32,
) -> vec2<u32> {
    let keys = order_keys(v);
    let ok = (valid >> (4u * g)) & 15u;
    var b = wide_better(best, keys.x, wide_col(base, g, 0u, lid), (ok & 1u) != 0u);
    b = wide_better(b, keys.y, wide_col(base, g, 1u, lid), (ok & 2u) != 0u);
    b = wide_better(b, keys.z, wide_col(base, g, 2u, lid), (ok & 4u) != 0u);
    return wide_better(b, keys.w, wide_col(base, g, 3u, lid), (ok & 8u) != 0u);
}

// The pending entries of group `g` (values `v`) of the tile at `base` that `tau` admits if
// `gate` (all pending ones if not), as bits of the tile's mask.
fn wide_admitted_group(
    pending: u32,
    v: vec4<f32>,
    base: u32,
    g: u32,
    lid: u32,
    tau: vec2<u32>,
    t: f32,
    gate: bool,
) -> u32 {
    let bits = 15u << (4u * g);
    if ((pending & bits) == 0u) {
        return 0u;
    }
    // Not against a NaN tau (key 0): every number beats it, and a compiler that assumes no
    // NaN may turn `v < t` into `!(v >= t)`, true for any v.
    if (gate && tau.x != 0u && wide_group_below(v, t)) {
        return 0u;
    }
    let keys = order_keys(v);
    let ok = vec4<bool>(
        !gate || before(vec2<u32>(keys.x, wide_col(base, g, 0u, lid)), tau),
        !gate || before(vec2<u32>(keys.y, wide_col(base, g, 1u, lid)), tau),
        !gate || before(vec2<u32>(keys.z, wide_col(base, g, 2u, lid)), tau),
        !gate || before(vec2<u32>(keys.w, wide_col(base, g, 3u, lid)), tau),
    );
    let mask = select(vec4<u32>(0u), vec4<u32>(1u, 2u, 4u, 8u), ok);
    return pending & ((mask.x | mask.y | mask.z | mask.w) << (4u * g));
}

// Whether the wide one pass admits entries by bit tests (`TopkConfig::wide_bit_tests`).
override WIDE_BIT_TESTS: bool = false;

// The pending entries of the tile that `tau` admits if `gate` (all pending ones if not).
// With WIDE_BIT_TESTS, where tau's key and the next one are numbers' keys, on their bits,
// four entries at once (`sel_at_least`: key ≥ tau's, then key > tau's; the few equal to tau
// compare indices), so no per-entry key conversion or branch; else per group
// (`wide_admitted_group`). The row select's gather went from 12 to 3.4 µs of a decode row on
// the H200 this way.
fn wide_admitted(pending: u32, tile: WideTile, base: u32, lid: u32, tau: vec2<u32>, gate: bool) -> u32 {
    if (!gate) {
        return pending;
    }
    let next = tau.x + 1u;
    let t0 = key_value(tau.x);
    let t1 = key_value(next);
    if (WIDE_BIT_TESTS && tau.x != 0u && next != 0u && order_key(t0) == tau.x && order_key(t1) == next) {
        let ge = pending & tile_at_least(tile, t0);
        if (ge == 0u) {
            return 0u;
        }
        let gt = ge & tile_at_least(tile, t1);
        var admitted = gt;
        // Equal to tau's key: admitted below its index.
        var equal = ge & ~gt;
        while (equal != 0u) {
            let e = firstTrailingBit(equal);
            equal &= equal - 1u;
            if (wide_col(base, e / 4u, e % 4u, lid) < tau.y) {
                admitted |= 1u << e;
            }
        }
        return admitted;
    }
    return wide_admitted_group(pending, tile.g0, base, 0u, lid, tau, t0, gate)
        | wide_admitted_group(pending, tile.g1, base, 1u, lid, tau, t0, gate)
        | wide_admitted_group(pending, tile.g2, base, 2u, lid, tau, t0, gate)
        | wide_admitted_group(pending, tile.g3, base, 3u, lid, tau, t0, gate);
}

// Entry e of this thread's part of a wide tile.
fn wide_value(tile: WideTile, e: u32) -> f32 {
    let g = e / 4u;
    let v = select(select(tile.g0, tile.g1, g == 1u), select(tile.g2, tile.g3, g == 3u), g >= 2u);
    let c = e % 4u;
    return select(select(v.x, v.y, c == 1u), select(v.z, v.w, c == 3u), c >= 2u);
}

// Appends this thread's `admitted` entries of the tile at `base` with one atomic for all of
// them (where one each put every admission of a tile on one counter in turn), in slots
// while the buffer has them. Returns those that found none: still pending.
fn wide_append(tile: WideTile, base: u32, lid: u32, admitted: u32) -> u32 {
    var left = admitted;
    if (left != 0u) {
        var slot = atomicAdd(&cand_count, countOneBits(left));
        while (left != 0u && slot < ONE_PASS_CAP) {
            let e = firstTrailingBit(left);
            left &= left - 1u;
            let col = wide_col(base, e / 4u, e % 4u, lid);
            cand[slot] = vec2<u32>(order_key(wide_value(tile, e)), col);
            slot++;
        }
    }
    return left;
}

// The floor's digit histograms and picks: floor_digit uses the first; the lean pass's two
// levels alternate between both (floor_digit_lean).
var<workgroup> floor_hist: array<atomic<u32>, 512>;
var<workgroup> floor_block: array<u32, 16>;
var<workgroup> floor_pick: array<vec2<u32>, 2>;

// Of this thread's seeds (`s0`, `s1`; y = SENTINEL_IDX for none), those whose key's digit
// (key >> shift) & 255 is the chosen one, if `prefix` is their key's higher bits: the largest
// digit d such that `want` of those seeds have a digit ≥ d, and how many of them still count
// below d (want minus those above); (0, 0) if fewer than `want` seeds match. Uniform call.
fn floor_digit(lid: u32, s0: vec2<u32>, s1: vec2<u32>, shift: u32, prefix: u32, want: u32) -> vec2<u32> {
    atomicStore(&floor_hist[lid], 0u);
    workgroupBarrier();
    // Past a barrier, so every thread has read the previous call's pick.
    if (lid == 0u) {
        floor_pick[0] = vec2<u32>(0u);
    }
    floor_count(0u, s0, s1, shift, prefix);
    return floor_choose(lid, 0u, want);
}

// Counts this thread's seeds (those with the key prefix) by digit into histogram `h`.
fn floor_count(h: u32, s0: vec2<u32>, s1: vec2<u32>, shift: u32, prefix: u32) {
    let high = shift + 8u;
    if (s0.y != SENTINEL_IDX && (high == 32u || (s0.x >> high) == prefix)) {
        atomicAdd(&floor_hist[256u * h + ((s0.x >> shift) & 255u)], 1u);
    }
    if (s1.y != SENTINEL_IDX && (high == 32u || (s1.x >> high) == prefix)) {
        atomicAdd(&floor_hist[256u * h + ((s1.x >> shift) & 255u)], 1u);
    }
}

// After the counts: floor_digit's result from histogram `h`, through its pick ((0, 0) there
// unless the digit is found). Sixteen threads sum sixteen digits each, from 255 down; the one
// whose block holds the digit where the count from the top reaches `want` walks its block for
// it. One warp's work and a barrier, where a scan of the 256 bins over every thread took
// three. Uniform call.
fn floor_choose(lid: u32, h: u32, want: u32) -> vec2<u32> {
    workgroupBarrier();
    let bins = 256u * h + 255u;
    if (lid < 16u) {
        var sum = 0u;
        for (var i = 0u; i < 16u; i++) {
            sum += atomicLoad(&floor_hist[bins - (16u * lid + i)]);
        }
        floor_block[lid] = sum;
    }
    workgroupBarrier();
    if (lid < 16u) {
        var above = 0u;
        for (var b = 0u; b < lid; b++) {
            above += floor_block[b];
        }
        if (above < want && above + floor_block[lid] >= want) {
            for (var i = 0u; i < 16u; i++) {
                let digit = 255u - (16u * lid + i);
                let count = atomicLoad(&floor_hist[256u * h + digit]);
                if (above + count >= want) {
                    floor_pick[h] = vec2<u32>(digit, want - above);
                    break;
                }
                above += count;
            }
        }
    }
    return workgroupUniformLoad(&floor_pick[h]);
}

// floor_digit over histogram `h` (0 or 1), cleared and its pick zero on entry (by the other
// level, or at the workgroup's start); clears the other's and zeroes its pick for the other
// level, so that a level needs no barrier of its own before counting (three barriers where
// floor_digit takes four). Uniform call.
fn floor_digit_lean(lid: u32, s0: vec2<u32>, s1: vec2<u32>, shift: u32, prefix: u32, want: u32, h: u32) -> vec2<u32> {
    // The other level read its histogram before its last barrier (its pick's uniform load),
    // so its counts may be cleared now; its pick once every thread has loaded it, past this
    // call's barriers.
    let other = 1u - h;
    atomicStore(&floor_hist[256u * other + lid], 0u);
    floor_count(h, s0, s1, shift, prefix);
    let digit = floor_choose(lid, h, want);
    if (lid == 0u) {
        floor_pick[other] = vec2<u32>(0u);
    }
    return digit;
}

// A key floor for a row whose running top-k is not full: the highest 16-bit key prefix F
// such that `want` (k) seeds have keys ≥ F << 16, so that k entries of the row reach the
// floor and no entry below it can be among the k best; 0 (no floor) if fewer seeds exist.
// Two 8-bit histograms of the seeds (each thread's best, and for k > WIDE_ONE_SEED_K its
// second best) in eight barriers, where sorting the seeds took one per bitonic step
// (36 for 256 seeds). Uniform call.
fn seeds_floor(lid: u32, s0: vec2<u32>, s1: vec2<u32>, want: u32) -> u32 {
    if (WIDE_LEAN) {
        // Both levels always run, so each leaves the other's histogram cleared.
        let top = floor_digit_lean(lid, s0, s1, 24u, 0u, want, 0u);
        let next = floor_digit_lean(lid, s0, s1, 16u, top.x, top.y, 1u);
        return select(0u, (top.x << 24u) | (next.x << 16u), top.y != 0u);
    }
    let top = floor_digit(lid, s0, s1, 24u, 0u, want);
    if (top.y == 0u) {
        return 0u;
    }
    let next = floor_digit(lid, s0, s1, 16u, top.x, top.y);
    return (top.x << 24u) | (next.x << 16u);
}

// The wide one pass keeps the candidate count and the sorted front in uniform registers
// (`TopkConfig::wide_lean`): a row's start, each shrink and its finish skip the barrier that
// reads them from workgroup memory; and its floor's two levels alternate between two
// histograms (floor_digit_lean), one barrier fewer each. A one-tile row: 5 of its ~15
// barriers, less one per workgroup.
override WIDE_LEAN: bool = false;

// A shrink of the wide one pass: the sorted front is k once `full`, else none.
fn wide_shrink(lid: u32, count: u32, full: bool) {
    if (WIDE_LEAN) {
        shrink_candidates_at(lid, count, select(0u, p.k, full));
    } else {
        shrink_candidates(lid, count);
    }
}

// Consecutive rows one workgroup takes (`TopkConfig::wide_rows`): many short rows pay a
// workgroup's start and end once per group. With WIDE_PREFETCH a row's last tile loads the
// next row's first.
override WIDE_ROWS: u32 = 1u;

@compute @workgroup_size(WG)
fn topk_one_pass_wide(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = linear_workgroup(wid, nwg) * WIDE_ROWS;
    if (first >= p.rows) {
        return;
    }
    let end = min(first + WIDE_ROWS, p.rows);
    if (WIDE_LEAN) {
        // The first floor's histogram and pick (each floor leaves them so for the next).
        atomicStore(&floor_hist[lid], 0u);
        if (lid == 0u) {
            floor_pick[0] = vec2<u32>(0u);
        }
        workgroupBarrier();
    }
    var len = row_len(first);
    var ahead = load_wide(first, 0u, len, lid);
    for (var row = first; row < end; row++) {
        if (WIDE_LEAN) {
            // Only the count, with no barrier: the first tile's floor takes one before any
            // append, and the row before read no counter after its last shrink's barrier
            // (cand_tau counts only once full, so after this row's first shrink sets it;
            // cand_sorted is never read, the front being passed).
            if (lid == 0u) {
                atomicStore(&cand_count, 0u);
            }
        } else {
            empty_candidates(lid);
        }
        // Uniform: the candidate count, and whether the running top-k holds k entries (then
        // the k best lead the buffer, sorted: every shrink keeps k).
        var count = 0u;
        var full = false;
        for (var base = 0u; base < len; base += WIDE_TILE) {
            var tile = ahead;
            if (WIDE_PREFETCH) {
                // The next tile: this row's, else the next row's first (none past the last).
                let more = base + WIDE_TILE < len;
                let next = select(row + 1u, row, more);
                var next_len = len;
                if (!more) {
                    next_len = select(0u, row_len(min(next, end - 1u)), next < end);
                }
                ahead = load_wide(next, select(0u, base + WIDE_TILE, more), next_len, lid);
            } else if (base > 0u || row > first) {
                tile = load_wide(row, base, len, lid);
            }
            var pending = wide_valid(base, len, lid);
            // Before the running top-k is full, the tile's seeds set a floor (tau's role until
            // then): each thread's best entry, and for k > WIDE_ONE_SEED_K its second best. A
            // loop, not two copies of wide_best: with the second copy inlined, Chrome's
            // SwiftShader never finished the kernel (the web check hung until the device was
            // lost).
            var floor = 0u;
            if (!full) {
                var s0 = vec2<u32>(0u, SENTINEL_IDX);
                var s1 = s0;
                var left = pending;
                let rounds = select(1u, 2u, p.k > WIDE_ONE_SEED_K);
                for (var m = 0u; m < rounds; m++) {
                    let best = wide_best(tile, base, left, lid);
                    if (best.y != SENTINEL_IDX) {
                        left &= ~(1u << wide_entry(best.y, base, lid));
                    }
                    if (m == 0u) {
                        s0 = best;
                    } else {
                        s1 = best;
                    }
                }
                floor = seeds_floor(lid, s0, s1, p.k);
                if (PROFILE_STOP == 1u) {
                    return;
                }
            }
            loop {
                // Against tau once full, else against the floor: (floor, SENTINEL_IDX) admits
                // exactly the keys ≥ floor.
                let tau = select(vec2<u32>(floor, SENTINEL_IDX), cand_tau, full);
                let gate = full || floor != 0u;
                // Entries tau does not admit never will be (it only rises): only admitted ones
                // that find no slot stay pending.
                let admitted = wide_admitted(pending, tile, base, lid, tau, gate);
                pending = wide_append(tile, base, lid, admitted);
                count = candidates_now();
                if (count <= ONE_PASS_CAP) {
                    break;
                }
                // Overflow: keep the best k of the full buffer, then offer what is left again.
                wide_shrink(lid, ONE_PASS_CAP, full);
                count = p.k;
                full = true;
            }
            // As the 512-entry pass does: shrink as soon as k candidates exist, so that tau
            // filters the next tile; and once max(k, WIDE_REFRESH) more have arrived, so that
            // tau keeps up with the row (a tau fixed at the first tile's k-th best admits
            // about k entries from every later tile, where a fresh one admits about k / tiles
            // seen).
            let first_full = !full && count >= p.k;
            let refresh = full && count >= p.k + max(p.k, WIDE_REFRESH);
            if ((first_full || refresh) && base + WIDE_TILE < len) {
                wide_shrink(lid, count, full);
                count = p.k;
                full = true;
            }
        }
        if (PROFILE_STOP == 2u) {
            return;
        }
        if (WIDE_LEAN) {
            finish_one_pass_at(lid, row, count, select(0u, p.k, full));
        } else {
            finish_one_pass(lid, row);
        }
        if (row + 1u < end) {
            // An empty row read no tile, so it loaded none ahead either.
            let had_tile = len > 0u;
            len = row_len(row + 1u);
            if (WIDE_PREFETCH && !had_tile) {
                ahead = load_wide(row + 1u, 0u, len, lid);
            }
        }
    }
}

// ---- Row select (topk_row_select, `Strategy::RowSelect`) ----
//
// One workgroup of SEL_WG threads (up to 1024) per row and one dispatch, for few long rows and
// large k (decode: 1 × 131072, k = 2048), where radix pays ~8 µs for each of its six
// dependent dispatches. A row's k best sit among the entries at or above some key; the kernel
// finds such a bound `lb` that at most SEL_CAP entries reach, gathers those entries into
// workgroup memory and sorts them there:
// 1. A strided sample of at most SEL_CAP entries (every 2^s-th, read alone: a quarter of the
//    row's 32-byte sectors at s = 5) gives a floor: the highest 16-bit key prefix that
//    `aim` sample keys reach, aim chosen so that about (k + SEL_CAP) / 2 row entries should.
// 2. One read of the row gathers the entries at or above the floor. If they are at least
//    min(k, len) and at most SEL_CAP, they hold the k best: done.
// 3. Otherwise (a sample that misjudged the row: many equal keys, or a periodic pattern), an
//    exact MSB-first radix select over the composite (key, ~index), 8 bits per level and one
//    read of the row per level, stops at the first level whose bound leaves at most SEL_CAP
//    entries; on distinct composites that level exists. A second gather collects them.
// 4. In workgroup memory: the same radix select over the gathered entries finds exactly the
//    k best, they move to the front, and a bitonic network sorts just those (H200, decode
//    row: 26 of 54 µs; the gather 13, the sample and floor 4, a lone dispatch ~9). With
//    SEL_BUCKET_SORT a counting sort orders every gathered entry instead (sel_bucket_sort).
// The result is the other paths' exactly: the gathered entries include every entry that
// comes before the k-th, sorted by the same (key, index) order.

override SEL_WG: u32 = 256u;   // threads (256, 512 or 1024: the host's choice)
// Candidate slots in workgroup memory (8 bytes each; the host sets it from the device's
// limit, at most 4096; the small default keeps the module within WebGPU's default 16 KiB).
override SEL_CAP: u32 = 512u;
const SEL_LEVELS: u32 = 8u;     // 8-bit digits of the 64-bit composite (key, ~index)

var<workgroup> sel_cand: array<vec2<u32>, SEL_CAP>;
var<workgroup> sel_count: atomic<u32>;
var<workgroup> sel_digits: array<u32, 256>;
var<workgroup> sel_blocks: array<u32, 16>;
var<workgroup> sel_pick: vec3<u32>;

// Column of entry e of this thread in the tile at `base` (entry e of every thread is one
// coalesced run).
fn sel_col(base: u32, e: u32, lid: u32) -> u32 {
    return base + e * SEL_WG + lid;
}

// The score at `col`, read at column `last` instead past it: every load is made, with no
// branch around it. (H200: a load under `if` waited for its data before the next one issued,
// so sixteen loads per thread took sixteen memory latencies, 3.7 µs a tile.) The caller
// masks what lies past the row.
fn sel_score(row: u32, col: u32, last: u32) -> f32 {
    return score(row, min(col, last));
}

// Entries 4g .. 4g + 3 of this thread in the tile at `base` (the row's last entry repeated
// past it; len ≥ 1).
fn sel_group(row: u32, base: u32, g: u32, len: u32, lid: u32) -> vec4<f32> {
    let c = sel_col(base, 4u * g, lid) + vec4<u32>(0u, 1u, 2u, 3u) * SEL_WG;
    return vec4<f32>(
        sel_score(row, c.x, len - 1u),
        sel_score(row, c.y, len - 1u),
        sel_score(row, c.z, len - 1u),
        sel_score(row, c.w, len - 1u),
    );
}

// A tile of 16 entries per thread (WideTile's layout, sel_col's columns), all loads issued
// before any is used; entries past the row are the row's last again (callers mask them).
fn sel_load(row: u32, base: u32, len: u32, lid: u32) -> WideTile {
    return WideTile(
        sel_group(row, base, 0u, len, lid),
        sel_group(row, base, 1u, len, lid),
        sel_group(row, base, 2u, len, lid),
        sel_group(row, base, 3u, len, lid),
    );
}

fn sel_tile_entries() -> u32 {
    return WIDE_PER_THREAD * SEL_WG;
}

fn sel_clear_hist(lid: u32) {
    for (var i = lid; i < 256u * HIST_COPIES; i += SEL_WG) {
        atomicStore(&wg_hist[i], 0u);
    }
    workgroupBarrier();
}

fn sel_count_digit(digit: u32, lid: u32) {
    atomicAdd(&wg_hist[digit * HIST_COPIES + lid % HIST_COPIES], 1u);
}

// sel_blocks[b] = the sum of sel_digits[16b, 16b + 16), as written before the call: the
// block sums that the 256-entry scans of sel_choose and sel_bucket_sort start from. Uniform
// call.
fn sel_sum_blocks(lid: u32) {
    workgroupBarrier();
    if (lid < 16u) {
        var sum = 0u;
        for (var i = 0u; i < 16u; i++) {
            sum += sel_digits[lid * 16u + i];
        }
        sel_blocks[lid] = sum;
    }
    workgroupBarrier();
}

// The sum of sel_digits[0, i) (i < 256), from sel_sum_blocks' block sums.
fn sel_digits_before(i: u32) -> u32 {
    var sum = 0u;
    for (var b = 0u; b < i / 16u; b++) {
        sum += sel_blocks[b];
    }
    for (var j = i / 16u * 16u; j < i; j++) {
        sum += sel_digits[j];
    }
    return sum;
}

// After a histogram in wg_hist: (d, above, count) for the largest digit d whose suffix count
// reaches `want` (≥ 1, at most the histogram's total): the entries counted above d and at d.
// Uniform call.
fn sel_choose(lid: u32, want: u32) -> vec3<u32> {
    workgroupBarrier();
    if (lid < 256u) {
        // Thread lid takes digit 255 - lid, so the scan from thread 0 up is a suffix sum.
        let digit = 255u - lid;
        var count = 0u;
        for (var c = 0u; c < HIST_COPIES; c++) {
            count += atomicLoad(&wg_hist[digit * HIST_COPIES + (c + lid) % HIST_COPIES]);
        }
        sel_digits[lid] = count;
    }
    sel_sum_blocks(lid);
    if (lid < 256u) {
        let count = sel_digits[lid];
        let suffix = sel_digits_before(lid) + count;
        if (suffix >= want && suffix - count < want) {
            sel_pick = vec3<u32>(255u - lid, suffix - count, count);
        }
    }
    return workgroupUniformLoad(&sel_pick);
}

// Step 1's sample: sel_cand[i].x = the key at column i << shift, for i < ns (four loads in
// flight per thread).
fn sel_sample(row: u32, lid: u32, shift: u32, ns: u32) {
    for (var i = lid; i < ns; i += 4u * SEL_WG) {
        let s = vec4<u32>(i, i + SEL_WG, i + 2u * SEL_WG, i + 3u * SEL_WG);
        let ok = s < vec4<u32>(ns);
        let at = min(s, vec4<u32>(ns - 1u)) << vec4<u32>(shift);
        let v = vec4<f32>(
            score(row, at.x),
            score(row, at.y),
            score(row, at.z),
            score(row, at.w),
        );
        let keys = order_keys(v);
        for (var c = 0u; c < 4u; c++) {
            if (ok[c]) {
                sel_cand[s[c]].x = keys[c];
            }
        }
    }
}

// The highest 16-bit key prefix F such that `aim` (1 ≤ aim ≤ ns) sample keys are ≥ F << 16:
// two 8-bit histograms of the sample. Uniform call.
fn sel_floor(lid: u32, ns: u32, aim: u32) -> u32 {
    sel_clear_hist(lid);
    for (var i = lid; i < ns; i += SEL_WG) {
        sel_count_digit(sel_cand[i].x >> 24u, lid);
    }
    let top = sel_choose(lid, aim);
    sel_clear_hist(lid);
    for (var i = lid; i < ns; i += SEL_WG) {
        let key = sel_cand[i].x;
        if ((key >> 24u) == top.x) {
            sel_count_digit((key >> 16u) & 255u, lid);
        }
    }
    let next = sel_choose(lid, aim - top.y);
    return (top.x << 24u) | (next.x << 16u);
}

// The top `bits` bits of a u32 set (0 ≤ bits ≤ 32).
fn top_bits(bits: u32) -> u32 {
    return select(0xFFFFFFFFu << (32u - bits), 0u, bits == 0u);
}

// The composite's bits decided before `level`, as masks of the key and of ~index.
fn sel_masks(level: u32) -> vec2<u32> {
    let bits = 8u * level;
    return vec2<u32>(top_bits(min(bits, 32u)), top_bits(max(bits, 32u) - 32u));
}

fn sel_digit(key: u32, inv: u32, level: u32) -> u32 {
    return (select(key, inv, level >= 4u) >> (24u - 8u * (level % 4u))) & 255u;
}

fn sel_with_digit(prefix: vec2<u32>, level: u32, digit: u32) -> vec2<u32> {
    let d = digit << (24u - 8u * (level % 4u));
    return select(vec2<u32>(prefix.x | d, prefix.y), vec2<u32>(prefix.x, prefix.y | d), level >= 4u);
}

// Counts the digit at `level` of the composite (key, inv = ~index) if it matches `prefix` on
// the bits decided before that level (`masks`, sel_masks(level)).
fn sel_count_matching(key: u32, inv: u32, prefix: vec2<u32>, masks: vec2<u32>, level: u32, lid: u32) {
    if ((key & masks.x) == prefix.x && (inv & masks.y) == prefix.y) {
        sel_count_digit(sel_digit(key, inv, level), lid);
    }
}

// sel_count_matching for this thread's entries of group g that lie in the row.
fn sel_hist_group(v: vec4<f32>, base: u32, g: u32, len: u32, lid: u32, prefix: vec2<u32>, level: u32) {
    let masks = sel_masks(level);
    let keys = order_keys(v);
    for (var c = 0u; c < 4u; c++) {
        let col = sel_col(base, 4u * g + c, lid);
        if (col < len) {
            sel_count_matching(keys[c], ~col, prefix, masks, level, lid);
        }
    }
}

// Step 3: the bound of the first level whose entries at or above it are at most SEL_CAP
// (it exists: at the last level each composite is one entry, and fewer than `want` are
// above it). One read of the row per level. Uniform call, want ≥ 1.
fn sel_levels(row: u32, len: u32, lid: u32, want: u32) -> vec2<u32> {
    var prefix = vec2<u32>(0u);
    var above = 0u;
    var left = want;
    for (var level = 0u; level < SEL_LEVELS; level++) {
        sel_clear_hist(lid);
        for (var base = 0u; base < len; base += sel_tile_entries()) {
            let t = sel_load(row, base, len, lid);
            sel_hist_group(t.g0, base, 0u, len, lid, prefix, level);
            sel_hist_group(t.g1, base, 1u, len, lid, prefix, level);
            sel_hist_group(t.g2, base, 2u, len, lid, prefix, level);
            sel_hist_group(t.g3, base, 3u, len, lid, prefix, level);
        }
        let pick = sel_choose(lid, left);
        above += pick.y;
        left -= pick.y;
        prefix = sel_with_digit(prefix, level, pick.x);
        if (above + pick.z <= SEL_CAP) {
            break;
        }
    }
    return prefix;
}

// Bits 4g + c of this thread's entries in group g whose composite (key, ~col) is ≥ lb.
fn sel_passing(v: vec4<f32>, base: u32, g: u32, len: u32, lid: u32, lb: vec2<u32>) -> u32 {
    let keys = order_keys(v);
    var bits = 0u;
    for (var c = 0u; c < 4u; c++) {
        let col = sel_col(base, 4u * g + c, lid);
        if (col < len && sel_in(vec2<u32>(keys[c], col), lb)) {
            bits |= 1u << (4u * g + c);
        }
    }
    return bits;
}

// Bits 4g + c of group `v`'s entries whose key is ≥ that of `t` (a number), on the bits alone
// (`flip`: 0x80000000 when selecting the smallest, which mirrors the order): for t above zero
// the numbers whose bits are at least t's as signed integers, else every non-negative number
// and the negative ones no larger in magnitude; NaN never. Exact whatever a compiler assumes
// of floats, in a few vector operations per group.
fn sel_at_least(v: vec4<f32>, g: u32, t: f32, flip: u32) -> u32 {
    let w = bitcast<vec4<u32>>(v) ^ vec4<u32>(flip);
    var tb = bitcast<u32>(t) ^ flip;
    tb = select(tb, 0x80000000u, tb == 0u); // +0: as -0 (they are equal)
    let number_up = w <= vec4<u32>(0x7F800000u); // +0 .. +inf
    var ok: vec4<bool>;
    if (tb < 0x80000000u) {
        ok = number_up & (bitcast<vec4<i32>>(w) >= vec4<i32>(bitcast<i32>(tb)));
    } else {
        ok = number_up | ((w >= vec4<u32>(0x80000000u)) & (w <= vec4<u32>(tb)));
    }
    let m = select(vec4<u32>(0u), vec4<u32>(1u, 2u, 4u, 8u), ok);
    return (m.x | m.y | m.z | m.w) << (4u * g);
}

// Bits e of this thread's tile entries whose key is ≥ that of `t` (a number), by
// sel_at_least on each group, in the configured order. Entries past the row are not masked.
fn tile_at_least(tile: WideTile, t: f32) -> u32 {
    let flip = select(0u, 0x80000000u, p.smallest != 0u);
    return sel_at_least(tile.g0, 0u, t, flip)
        | sel_at_least(tile.g1, 1u, t, flip)
        | sel_at_least(tile.g2, 2u, t, flip)
        | sel_at_least(tile.g3, 3u, t, flip);
}

// This thread's bits of the tile at `base` that lie in the row.
fn sel_valid(base: u32, len: u32, lid: u32) -> u32 {
    if (base + sel_tile_entries() <= len) {
        return 0xFFFFu;
    }
    var bits = 0u;
    for (var e = 0u; e < WIDE_PER_THREAD; e++) {
        bits |= select(0u, 1u << e, sel_col(base, e, lid) < len);
    }
    return bits;
}

// Bits e of this thread's tile entries whose composite (key, ~col) is ≥ lb. Where lb bounds
// the key alone (lb.y = 0: the floor, or levels that ended within the key), a bit test per
// group (`sel_at_least`). Otherwise a group (vec4) wholly below lb's key as floats is skipped
// with one compare and the others are tested exactly, one per turn of a loop, so that the
// compiler cannot if-convert the exact test into every group (H200: the test took 19.5 of
// the decode row's 76 µs when it did; 12 with the loop).
fn sel_passing_tile(tile: WideTile, base: u32, len: u32, lid: u32, lb: vec2<u32>, t: f32) -> u32 {
    if (lb.y == 0u && lb.x != 0u) {
        return sel_valid(base, len, lid) & tile_at_least(tile, t);
    }
    var todo = 15u;
    if (lb.x != 0u) {
        todo = select(1u, 0u, wide_group_below(tile.g0, t))
            | select(2u, 0u, wide_group_below(tile.g1, t))
            | select(4u, 0u, wide_group_below(tile.g2, t))
            | select(8u, 0u, wide_group_below(tile.g3, t));
    }
    var bits = 0u;
    while (todo != 0u) {
        let g = firstTrailingBit(todo);
        todo &= todo - 1u;
        let v = select(select(tile.g0, tile.g1, g == 1u), select(tile.g2, tile.g3, g == 3u), g >= 2u);
        bits |= sel_passing(v, base, g, len, lid, lb);
    }
    return bits;
}

// This thread's entries `left` of the tile at `base`, into the slots from `slot` on (those past
// SEL_CAP are counted, not stored).
fn sel_append(tile: WideTile, base: u32, lid: u32, left: u32, slot: u32) {
    var todo = left;
    var at = slot;
    while (todo != 0u) {
        let e = firstTrailingBit(todo);
        todo &= todo - 1u;
        if (at < SEL_CAP) {
            sel_cand[at] = vec2<u32>(order_key(wide_value(tile, e)), sel_col(base, e, lid));
        }
        at++;
    }
}

// Gathers the row's entries in the tiles from column `start` (a multiple of the tile) to `end`
// whose composite is ≥ lb into sel_cand (those past SEL_CAP are counted, not stored); returns
// how many there are. One atomic per thread and tile; with `sub` ≠ 0 (the subgroup tier) one
// per subgroup and tile: a decode row's ~3000 appends otherwise queue on one counter (H200:
// 4.8 of its 54 µs). With `early`, `first` is the tile at `start`, already loaded. Uniform
// call.
fn sel_gather(
    row: u32,
    start: u32,
    end: u32,
    len: u32,
    lid: u32,
    lb: vec2<u32>,
    sub: u32,
    early: bool,
    first: WideTile,
) -> u32 {
    workgroupBarrier();
    if (lid == 0u) {
        atomicStore(&sel_count, 0u);
    }
    workgroupBarrier();
    let t = key_value(lb.x);
    // Profiling (PROFILE_STOP 4, 5): the reads alone, and the reads and tests without appends.
    var probe = 0u;
    for (var base = start; base < end; base += sel_tile_entries()) {
        var tile = first;
        if (!early || base != start) {
            tile = sel_load(row, base, len, lid);
        }
        if (PROFILE_STOP == 4u) {
            let v = max(max(tile.g0, tile.g1), max(tile.g2, tile.g3));
            probe = max(probe, order_key(max(max(v.x, v.y), max(v.z, v.w))));
            continue;
        }
        var left = sel_passing_tile(tile, base, len, lid, lb, t);
        if (PROFILE_STOP == 5u) {
            probe += countOneBits(left);
            continue;
        }
        if (sub != 0u) {
            // The subgroup tier: one atomic per subgroup and tile.
            sel_append(tile, base, lid, left, sel_claim(countOneBits(left)));
        } else if (left != 0u) {
            sel_append(tile, base, lid, left, atomicAdd(&sel_count, countOneBits(left)));
        }
    }
    if (PROFILE_STOP >= 4u) {
        atomicMax(&sel_count, probe);
    }
    return workgroupUniformLoad(&sel_count);
}

var<workgroup> sel_moved: atomic<u32>;

// The bound of exactly the `want` best of the m gathered candidates (want < m): the radix
// select of sel_levels over sel_cand instead of the row, down to the level whose chosen
// digit holds exactly the entries still wanted (at the last level, one). Uniform call.
fn sel_top(lid: u32, m: u32, want: u32) -> vec2<u32> {
    var prefix = vec2<u32>(0u);
    var left = want;
    for (var level = 0u; level < SEL_LEVELS; level++) {
        sel_clear_hist(lid);
        let masks = sel_masks(level);
        for (var i = lid; i < m; i += SEL_WG) {
            let e = sel_cand[i];
            sel_count_matching(e.x, ~e.y, prefix, masks, level, lid);
        }
        let pick = sel_choose(lid, left);
        left -= pick.y;
        prefix = sel_with_digit(prefix, level, pick.x);
        if (pick.z == left) {
            break;
        }
    }
    return prefix;
}

// Whether entry (key, index) `e`'s composite (key, ~index) is ≥ lb.
fn sel_in(e: vec2<u32>, lb: vec2<u32>) -> bool {
    return e.x > lb.x || (e.x == lb.x && ~e.y >= lb.y);
}

// Moves the `want` candidates ≥ lb (of m) to sel_cand[0, want): each one past `want` takes the
// slot of one below `want` that is not, paired by tickets (the free slots listed in wg_hist,
// idle by now: at most min(want, m - want) ≤ SEL_CAP / 2 of them). Uniform call.
fn sel_compact(lid: u32, m: u32, want: u32, lb: vec2<u32>) {
    workgroupBarrier();
    if (lid == 0u) {
        atomicStore(&sel_count, 0u);
        atomicStore(&sel_moved, 0u);
    }
    workgroupBarrier();
    for (var i = lid; i < want; i += SEL_WG) {
        if (!sel_in(sel_cand[i], lb)) {
            atomicStore(&wg_hist[atomicAdd(&sel_count, 1u)], i);
        }
    }
    workgroupBarrier();
    for (var i = want + lid; i < m; i += SEL_WG) {
        let e = sel_cand[i];
        if (sel_in(e, lb)) {
            sel_cand[atomicLoad(&wg_hist[atomicAdd(&sel_moved, 1u)])] = e;
        }
    }
    workgroupBarrier();
}

// sort_candidates over sel_cand[0, count) with SEL_WG threads: a bitonic network, one barrier
// per step (78 for 4096 entries). Uniform call.
fn sel_sort(lid: u32, count: u32, by_class: bool, t: u32) {
    var size = 2u;
    while (size < count) {
        size *= 2u;
    }
    for (var s = 2u; s <= size; s *= 2u) {
        for (var j = s / 2u; j > 0u; j /= 2u) {
            workgroupBarrier();
            for (var h = lid; h < size / 2u; h += SEL_WG) {
                let i = bitonic_lower(h, j);
                let q = select(i + j, (i | (s - 1u)) - (i & (s - 1u)), j == s / 2u);
                if (q < count) {
                    let a = sel_cand[i];
                    let b = sel_cand[q];
                    if (sorts_first(b, a, by_class, t)) {
                        sel_cand[i] = b;
                        sel_cand[q] = a;
                    }
                }
            }
        }
    }
    workgroupBarrier();
}

// Entries per thread of sel_sort_shuffled, held in four registers.
const SHUFFLED_PER_THREAD: u32 = 4u;

// sel_sort's network with four entries per thread in registers, thread q holding entries
// 4q .. 4q + 3 where q = `pos` = subgroup_id · subgroup_size (`sub`, every subgroup full) +
// subgroup_invocation_id. A step whose pairs lie within a subgroup's 4·sub entries exchanges
// by subgroup shuffles, or inside a thread, with no barrier; only longer steps go through
// workgroup memory (2048 entries at subgroups of 32: 18 barriers where sel_sort takes 66).
// Positions from `count` to the power of two above hold a sentinel that sorts after every
// entry, so the network runs in its two-direction form. Needs 4·SEL_WG ≥ that power of two.
// Uniform call.
fn sel_sort_shuffled(lid: u32, count: u32, by_class: bool, t: u32, sub: u32, pos: u32) {
    var size = 2u;
    while (size < count) {
        size *= 2u;
    }
    let first = pos * SHUFFLED_PER_THREAD;
    let lanes = SHUFFLED_PER_THREAD * sub;
    let none = vec2<u32>(select(0u, t, by_class), SENTINEL_IDX);
    workgroupBarrier();
    var r = sel_load_four(first, count, none);
    for (var s = 2u; s <= size; s *= 2u) {
        if (s > lanes) {
            // The steps that pair entries of different subgroups, in workgroup memory.
            sel_store_four(first, size, r);
            for (var j = s / 2u; j >= lanes; j /= 2u) {
                workgroupBarrier();
                for (var h = lid; h < size / 2u; h += SEL_WG) {
                    let i = bitonic_lower(h, j);
                    let a = sel_cand[i];
                    let b = sel_cand[i + j];
                    if (sel_swaps(a, b, (i & s) == 0u, by_class, t)) {
                        sel_cand[i] = b;
                        sel_cand[i + j] = a;
                    }
                }
            }
            workgroupBarrier();
            r = sel_load_four(first, size, none);
        }
        for (var j = min(s, lanes) / 2u; j >= SHUFFLED_PER_THREAD; j /= 2u) {
            let m = j / SHUFFLED_PER_THREAD;
            r = SelFour(
                sel_keep(r.e0, sel_shuffle_xor(r.e0, m), first, j, s, by_class, t),
                sel_keep(r.e1, sel_shuffle_xor(r.e1, m), first + 1u, j, s, by_class, t),
                sel_keep(r.e2, sel_shuffle_xor(r.e2, m), first + 2u, j, s, by_class, t),
                sel_keep(r.e3, sel_shuffle_xor(r.e3, m), first + 3u, j, s, by_class, t),
            );
        }
        // Inside the thread: distance 2 (from s = 4), then 1.
        if (s >= 4u) {
            let x = sel_pair(r.e0, r.e2, first, s, by_class, t);
            let y = sel_pair(r.e1, r.e3, first + 1u, s, by_class, t);
            r = SelFour(x.lo, y.lo, x.hi, y.hi);
        }
        let x = sel_pair(r.e0, r.e1, first, s, by_class, t);
        let y = sel_pair(r.e2, r.e3, first + 2u, s, by_class, t);
        r = SelFour(x.lo, x.hi, y.lo, y.hi);
    }
    sel_store_four(first, size, r);
    workgroupBarrier();
}

// A thread's four entries of sel_sort_shuffled, in named registers: a private array indexed
// at run time may live in local memory.
struct SelFour {
    e0: vec2<u32>,
    e1: vec2<u32>,
    e2: vec2<u32>,
    e3: vec2<u32>,
}

// Entries first .. first + 3 of sel_cand, `none` from `end` on.
fn sel_load_four(first: u32, end: u32, none: vec2<u32>) -> SelFour {
    return SelFour(
        sel_entry_or(first, end, none),
        sel_entry_or(first + 1u, end, none),
        sel_entry_or(first + 2u, end, none),
        sel_entry_or(first + 3u, end, none),
    );
}

fn sel_entry_or(i: u32, end: u32, none: vec2<u32>) -> vec2<u32> {
    return select(none, sel_cand[min(i, SEL_CAP - 1u)], i < end);
}

fn sel_store_four(first: u32, end: u32, r: SelFour) {
    if (first < end) {
        sel_cand[first] = r.e0;
        sel_cand[first + 1u] = r.e1;
        sel_cand[first + 2u] = r.e2;
        sel_cand[first + 3u] = r.e3;
    }
}

// Whether a network step exchanges the pair (a at the lower position, b at the higher) of a
// block sorted ascending (`up`: sorts_first order) or descending.
fn sel_swaps(a: vec2<u32>, b: vec2<u32>, up: bool, by_class: bool, t: u32) -> bool {
    return select(sorts_first(a, b, by_class, t), sorts_first(b, a, by_class, t), up);
}

// What position i keeps of its entry `mine` and its partner's `other` (at i ^ j) in merge
// step j of blocks of s.
fn sel_keep(mine: vec2<u32>, other: vec2<u32>, i: u32, j: u32, s: u32, by_class: bool, t: u32) -> vec2<u32> {
    let other_first = sorts_first(other, mine, by_class, t);
    let earlier = select(mine, other, other_first);
    let later = select(other, mine, other_first);
    // The lower position of an ascending block, or the higher of a descending one, keeps
    // the earlier entry.
    return select(later, earlier, ((i & j) == 0u) == ((i & s) == 0u));
}

struct SelPair {
    lo: vec2<u32>,
    hi: vec2<u32>,
}

// A step on a thread's entries `lo` at position i and `hi` above it, in blocks of s.
fn sel_pair(lo: vec2<u32>, hi: vec2<u32>, i: u32, s: u32, by_class: bool, t: u32) -> SelPair {
    if (sel_swaps(lo, hi, (i & s) == 0u, by_class, t)) {
        return SelPair(hi, lo);
    }
    return SelPair(lo, hi);
}

// Whether the row select sorts its sorted output by buckets (sel_bucket_sort): all its
// gathered entries at once, in place of the exact select, the compaction and the network
// (`TopkConfig::select_buckets`).
override SEL_BUCKET_SORT: bool = false;
// Buckets of sel_bucket_sort: wg_hist's 2048 counters.
const SEL_BUCKETS: u32 = 256u * HIST_COPIES;
// A bucket fuller than this (equal or clustered keys) sends the row back to the exact select
// and the network: each entry reads its whole bucket to find its place. Buckets are linear
// in the key while a row's best entries crowd near the floor (a decode row of normals: ~14
// an entry's bucket there, ~25 at the fullest), so the bound is generous.
const SEL_BUCKET_MAX: u32 = 64u;

// Entry j (< 4) of a thread's SelFour.
fn sel_four_entry(r: SelFour, j: u32) -> vec2<u32> {
    return select(select(r.e0, r.e1, j == 1u), select(r.e2, r.e3, j == 3u), j >= 2u);
}

// This thread's entries of sel_cand[0, count) for sel_bucket_sort: i = lid + j·SEL_WG, j < 4
// (those from count on are junk, never used).
fn sel_four_strided(lid: u32, count: u32) -> SelFour {
    let none = vec2<u32>(0u);
    return SelFour(
        sel_entry_or(lid, count, none),
        sel_entry_or(lid + SEL_WG, count, none),
        sel_entry_or(lid + 2u * SEL_WG, count, none),
        sel_entry_or(lid + 3u * SEL_WG, count, none),
    );
}

// Sorts the `count` (≤ 4·SEL_WG) entries that the threads hold in `r` (sel_four_strided's
// layout) best-first into sel_cand[0, count): a counting sort by the key's bits below the
// entries' common span (≤ 2048 buckets, a few entries each), then each entry's place in its
// bucket by counting those of the bucket that sort before it, all entries at once. About a
// dozen barriers, where the exact select and the network on 2048 entries take about 80
// (~26 µs of the H200's decode row). False, with sel_cand untouched, where a bucket would
// hold more than SEL_BUCKET_MAX. Uniform call.
fn sel_bucket_sort(lid: u32, count: u32, r: SelFour) -> bool {
    // The keys' span: bucket b holds keys hi - key in [b, b + 1) << shift.
    workgroupBarrier();
    if (lid == 0u) {
        atomicStore(&sel_count, 0u);
        atomicStore(&sel_moved, 0xFFFFFFFFu);
    }
    workgroupBarrier();
    for (var j = 0u; j < SHUFFLED_PER_THREAD; j++) {
        if (lid + j * SEL_WG < count) {
            let key = sel_four_entry(r, j).x;
            atomicMax(&sel_count, key);
            atomicMin(&sel_moved, key);
        }
    }
    let hi = workgroupUniformLoad(&sel_count);
    let lo = workgroupUniformLoad(&sel_moved);
    let bits = 32u - countLeadingZeros(hi - lo);
    let shift = max(bits, 11u) - 11u;
    for (var b = lid; b < SEL_BUCKETS; b += SEL_WG) {
        atomicStore(&wg_hist[b], 0u);
    }
    workgroupBarrier();
    if (lid == 0u) {
        atomicStore(&sel_count, 0u); // becomes the largest bucket
    }
    for (var j = 0u; j < SHUFFLED_PER_THREAD; j++) {
        if (lid + j * SEL_WG < count) {
            atomicAdd(&wg_hist[(hi - sel_four_entry(r, j).x) >> shift], 1u);
        }
    }
    workgroupBarrier();
    // Exclusive offsets: 256 blocks of 8 buckets, the block sums scanned as sel_choose scans.
    if (lid < 256u) {
        var sum = 0u;
        var most = 0u;
        for (var j = 0u; j < 8u; j++) {
            let c = atomicLoad(&wg_hist[lid * 8u + j]);
            sum += c;
            most = max(most, c);
        }
        sel_digits[lid] = sum;
        atomicMax(&sel_count, most);
    }
    sel_sum_blocks(lid);
    if (lid < 256u) {
        var at = sel_digits_before(lid);
        for (var j = 0u; j < 8u; j++) {
            let c = atomicLoad(&wg_hist[lid * 8u + j]);
            atomicStore(&wg_hist[lid * 8u + j], at);
            at += c;
        }
    }
    if (workgroupUniformLoad(&sel_count) > SEL_BUCKET_MAX) {
        return false;
    }
    // Scatter from the registers (every read of sel_cand lies behind the barriers above),
    // in any order within a bucket; each bucket's counter ends at its end.
    var buckets = vec4<u32>(0u);
    for (var j = 0u; j < SHUFFLED_PER_THREAD; j++) {
        if (lid + j * SEL_WG < count) {
            let e = sel_four_entry(r, j);
            buckets[j] = (hi - e.x) >> shift;
            sel_cand[atomicAdd(&wg_hist[buckets[j]], 1u)] = e;
        }
    }
    workgroupBarrier();
    // Each entry's place: its bucket's start plus the entries of the bucket before it (the
    // composites are distinct, so the places are too).
    var places = vec4<u32>(0u);
    for (var j = 0u; j < SHUFFLED_PER_THREAD; j++) {
        if (lid + j * SEL_WG < count) {
            let e = sel_four_entry(r, j);
            let b = buckets[j];
            let start = select(atomicLoad(&wg_hist[max(b, 1u) - 1u]), 0u, b == 0u);
            var place = start;
            for (var i = start; i < atomicLoad(&wg_hist[b]); i++) {
                place += select(0u, 1u, before(sel_cand[i], e));
            }
            places[j] = place;
        }
    }
    workgroupBarrier();
    for (var j = 0u; j < SHUFFLED_PER_THREAD; j++) {
        if (lid + j * SEL_WG < count) {
            sel_cand[places[j]] = sel_four_entry(r, j);
        }
    }
    workgroupBarrier();
    return true;
}

// sel_sort_shuffled where the entry point has full subgroups (`sub` ≠ 0) and the threads hold
// `count`, else sel_sort. Uniform call.
fn sel_sort_tier(lid: u32, count: u32, by_class: bool, t: u32, sub: u32, pos: u32) {
    if (sub != 0u && count <= SHUFFLED_PER_THREAD * SEL_WG) {
        sel_sort_shuffled(lid, count, by_class, t, sub, pos);
    } else {
        sel_sort(lid, count, by_class, t);
    }
}

// ---- Split row select (SEL_SPLIT > 1, `TopkConfig::select_split`) ----
//
// SEL_SPLIT (≤ 64) workgroups per row, each over an equal run of the row's tiles, in the same
// single dispatch: each finds the sample's floor (every one the same: the same sample, the
// same exact histograms), gathers its run's entries at or above it, reserves slots for them
// in the row's list in `row_hist` and writes them there, then counts its arrival. The last
// workgroup of the row to arrive takes the list into sel_cand and goes on as the one
// workgroup of the plain row select does; the others end. No workgroup waits on another to
// run: the last waits only until the entries the others have already written are visible.
// - The row's count and arrivals share one atomic word (count in the low 24 bits, arrivals
//   above; each workgroup adds at most SEL_CAP + 1 to the count, enough to say "too many"),
//   so the last arrival's own update sees every reservation: one location's updates are
//   ordered, whatever the memory model orders across locations.
// - A slot holds ~key and index + 1, never 0 once written (no key is 0xFFFFFFFF, no index
//   2^32 - 1), and 0 when free. WGSL gives storageBarrier only workgroup scope (naga's
//   SPIR-V makes it device scope, which alone would make the entries visible), so the last
//   workgroup reads each slot until it holds an entry: the writer has stored it already,
//   so only its visibility is awaited. Should that take SEL_SPIN_MAX reads, the row takes
//   the exact levels instead: a result stays exact, and no dispatch can hang. It frees
//   every slot it read and the word, so the next call finds the list empty, as the zeroed
//   buffer starts.
// Where the list misses (fewer than k, or more than SEL_CAP entries) the last workgroup runs
// the exact levels over the whole row, as the plain kernel does. The aim: the decode row's
// gather (13 of 54 µs on an H200, one workgroup reading 512 KiB) spread over many SMs.

// Workgroups per row of the row select (1: the plain kernel).
override SEL_SPLIT: u32 = 1u;
// sel_split_gather's answer to every workgroup but the row's last.
const SEL_NOT_LAST: u32 = 0xFFFFFFFFu;
// One arrival in a row's word; the count lies below it.
const SEL_ARRIVAL: u32 = 0x1000000u;
// Reads of a list slot before the last workgroup gives up on it (~10 ms of L2 round trips).
const SEL_SPIN_MAX: u32 = 16384u;

// (first slot of this workgroup's entries, the row's word after its arrival).
var<workgroup> sel_split: vec2<u32>;

// Where row `row`'s word starts in row_hist, followed by SEL_CAP slots of (~key, index + 1).
fn sel_split_base(row: u32) -> u32 {
    return row * (1u + 2u * SEL_CAP);
}

// List entry i from its slot in row_hist (whose words were read as `key` and `index`):
// read again until both are written (at most SEL_SPIN_MAX times; past that sel_moved says
// so), then into sel_cand[i], the slot freed.
fn sel_take_slot(slot: u32, i: u32, key: u32, index: u32) {
    var e = vec2<u32>(key, index);
    for (var tries = 0u; tries < SEL_SPIN_MAX && (e.x == 0u || e.y == 0u); tries++) {
        e = vec2<u32>(atomicLoad(&row_hist[slot]), atomicLoad(&row_hist[slot + 1u]));
    }
    if (e.x == 0u || e.y == 0u) {
        atomicStore(&sel_moved, 1u);
    }
    atomicStore(&row_hist[slot], 0u);
    atomicStore(&row_hist[slot + 1u], 0u);
    sel_cand[i] = vec2<u32>(~e.x, e.y - 1u);
}

// Columns [start, end) of workgroup `chunk`'s run of tiles of a row of `len` entries.
fn sel_split_run(chunk: u32, len: u32) -> vec2<u32> {
    let tile = sel_tile_entries();
    let run = ((p.n + tile - 1u) / tile + SEL_SPLIT - 1u) / SEL_SPLIT * tile;
    return vec2<u32>(chunk * run, min(chunk * run + run, len));
}

// The split gather of a workgroup over the columns `cols` (sel_split_run) of row `row`, the
// first tile already in `first` where the run has one: SEL_NOT_LAST for every workgroup of
// the row but the last to arrive; for that one, the row's count of entries ≥ lb (above
// SEL_CAP: too many), its entries in sel_cand where they fit. Uniform call.
fn sel_split_gather(row: u32, cols: vec2<u32>, first: WideTile, len: u32, lid: u32, lb: vec2<u32>, sub: u32) -> u32 {
    var mine = 0u;
    if (PROFILE_STOP != 1u) {
        mine = sel_gather(row, cols.x, cols.y, len, lid, lb, sub, true, first);
    }
    if (PROFILE_STOP >= 4u) {
        // The profile's gather counted nothing (its answer is a probe).
        mine = 0u;
    }
    let base = sel_split_base(row);
    if (lid == 0u) {
        sel_split.x = atomicAdd(&row_hist[base], min(mine, SEL_CAP + 1u)) % SEL_ARRIVAL;
        atomicStore(&sel_moved, 0u); // becomes 1 if a slot stays unseen (barriers away)
    }
    let at = workgroupUniformLoad(&sel_split).x;
    for (var i = lid; i < min(mine, SEL_CAP); i += SEL_WG) {
        let slot = base + 1u + 2u * (at + i);
        if (at + i < SEL_CAP) {
            let e = sel_cand[i];
            atomicStore(&row_hist[slot], ~e.x);
            atomicStore(&row_hist[slot + 1u], e.y + 1u);
        }
    }
    storageBarrier();
    if (lid == 0u) {
        sel_split.y = atomicAdd(&row_hist[base], SEL_ARRIVAL) + SEL_ARRIVAL;
    }
    let word = workgroupUniformLoad(&sel_split).y;
    if (word / SEL_ARRIVAL != SEL_SPLIT) {
        return SEL_NOT_LAST;
    }
    storageBarrier();
    if (lid == 0u) {
        atomicStore(&row_hist[base], 0u);
    }
    let m = word % SEL_ARRIVAL;
    let listed = min(m, SEL_CAP);
    // Four slots a thread at a time, all eight loads issued before any is used (one round
    // trip to memory, where a loop waiting on each slot took one per slot); a slot not yet
    // visible is read again on its own.
    for (var i0 = lid; i0 < listed; i0 += 4u * SEL_WG) {
        let i = vec4<u32>(i0, i0 + SEL_WG, i0 + 2u * SEL_WG, i0 + 3u * SEL_WG);
        // Past the list a lane reads the last slot again, and ignores it.
        let slot = vec4<u32>(base + 1u) + 2u * min(i, vec4<u32>(listed - 1u));
        let keys = vec4<u32>(
            atomicLoad(&row_hist[slot.x]),
            atomicLoad(&row_hist[slot.y]),
            atomicLoad(&row_hist[slot.z]),
            atomicLoad(&row_hist[slot.w]),
        );
        let indices = vec4<u32>(
            atomicLoad(&row_hist[slot.x + 1u]),
            atomicLoad(&row_hist[slot.y + 1u]),
            atomicLoad(&row_hist[slot.z + 1u]),
            atomicLoad(&row_hist[slot.w + 1u]),
        );
        for (var c = 0u; c < 4u; c++) {
            if (i[c] < listed) {
                sel_take_slot(slot[c], i[c], keys[c], indices[c]);
            }
        }
    }
    if (workgroupUniformLoad(&sel_moved) != 0u) {
        return SEL_CAP + 1u; // too many, as far as the caller can tell: the exact levels
    }
    return m;
}

// Orders the best `want` of the m gathered entries into sel_cand[0, want): keeps exactly
// those (the exact select, then the compaction), then sorts just them, best-first or in the
// unsorted order (keys above the k-th, then those equal to it, each in index order): a
// network on 2048 entries takes 66 steps where one on the ~3000 gathered took 78, with half
// the exchanges each. Uniform call.
fn sel_keep_best(lid: u32, m: u32, want: u32, sub: u32, pos: u32) {
    if (m > want) {
        sel_compact(lid, m, want, sel_top(lid, m, want));
    }
    if (p.sorted != 0u) {
        sel_sort_tier(lid, want, false, 0u, sub, pos);
        return;
    }
    if (lid == 0u) {
        atomicStore(&sel_count, 0xFFFFFFFFu);
    }
    workgroupBarrier();
    for (var i = lid; i < want; i += SEL_WG) {
        atomicMin(&sel_count, sel_cand[i].x);
    }
    sel_sort_tier(lid, want, true, workgroupUniformLoad(&sel_count), sub, pos);
}

@compute @workgroup_size(SEL_WG)
fn topk_row_select(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    row_select(wid, nwg, lid, 0u, 0u);
}

// The row select of row `wid`. `sub`: the subgroup size where every subgroup is full, for
// the shuffled sort with this thread at `pos` (sel_sort_shuffled); 0 for sel_sort. Uniform
// call.
fn row_select(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, sub: u32, pos: u32) {
    let group = linear_workgroup(wid, nwg);
    let row = group / SEL_SPLIT;
    if (row >= p.rows) {
        return;
    }
    let len = row_len(row);
    let want = min(p.k, len);
    // Split: this workgroup's first tile, loaded before the floor so that its latency
    // overlaps the sample's.
    var cols = vec2<u32>(0u);
    var first = WideTile();
    if (SEL_SPLIT > 1u) {
        cols = sel_split_run(group % SEL_SPLIT, len);
        if (cols.x < cols.y) {
            first = sel_load(row, cols.x, len, lid);
        }
    }
    // A row of at most SEL_CAP entries is gathered whole (lb = 0).
    var lb = vec2<u32>(0u);
    if (len > SEL_CAP) {
        var shift = 0u;
        while (((len - 1u) >> shift) >= SEL_CAP) {
            shift++;
        }
        let ns = ((len - 1u) >> shift) + 1u;
        sel_sample(row, lid, shift, ns);
        // Aim for (want + SEL_CAP) / 2 row entries at or above the floor: the sample's
        // error is about 2^shift·√aim entries either way.
        let aim = clamp(((want + SEL_CAP) / 2u) >> shift, 1u, ns);
        lb = vec2<u32>(sel_floor(lid, ns, aim), 0u);
    }
    var m = 0u;
    if (SEL_SPLIT > 1u) {
        m = sel_split_gather(row, cols, first, len, lid, lb, sub);
        if (m == SEL_NOT_LAST || PROFILE_STOP == 1u || PROFILE_STOP >= 4u) {
            return;
        }
    } else {
        if (PROFILE_STOP == 1u) {
            return;
        }
        m = sel_gather(row, 0u, len, len, lid, lb, sub, false, first);
        if (PROFILE_STOP >= 4u) {
            return;
        }
    }
    if (m < want || m > SEL_CAP) {
        lb = sel_levels(row, len, lid, want);
        m = sel_gather(row, 0u, len, len, lid, lb, sub, false, first);
    }
    if (PROFILE_STOP == 2u) {
        return;
    }
    // Sorted by buckets: every gathered entry at once, the best `want` first.
    var bucketed = false;
    if (SEL_BUCKET_SORT && p.sorted != 0u && m <= SHUFFLED_PER_THREAD * SEL_WG) {
        bucketed = sel_bucket_sort(lid, m, sel_four_strided(lid, m));
    }
    if (!bucketed) {
        sel_keep_best(lid, m, want, sub, pos);
    }
    if (PROFILE_STOP == 3u) {
        return;
    }
    for (var slot = lid; slot < p.k; slot += SEL_WG) {
        write_kept(row, slot, sel_cand[min(slot, SEL_CAP - 1u)], slot < want);
    }
    if (lid == 0u) {
        out_counts[p.row0 + row] = want;
    }
}
