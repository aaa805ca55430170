// A part of the topk kernels, included by shared/topk_body.wgsl (bindings, order, outputs).
// ---- Radix select (topk_histogram, topk_compact, the sorts, topk_finalize) ----
//
// The dispatches and their order are in shaders/topk.wgsl's header; the `work` layout in
// shared/topk_body.wgsl, beside the bindings.

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
            out_counts[p.row_shift + row] = count;
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
        out_counts[p.row_shift + row] = count;
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
        out_counts[p.row_shift + row] = count;
    }
}
