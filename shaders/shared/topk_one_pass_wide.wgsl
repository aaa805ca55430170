// A part of the topk kernels, included by shared/topk_body.wgsl (bindings, order, outputs).
// Its tile (WideTile, order_keys, key_value) is also the row select's.

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

// Seeds per thread of a tile's floor: its best entry, and for k > WIDE_ONE_SEED_K its second
// best.
fn seeds_per_thread() -> u32 {
    return select(1u, 2u, p.k > WIDE_ONE_SEED_K);
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
// With `fold` (the top level of a full tile, WIDE_FLOOR_FOLD) the seeds are counted from
// floor_seeds, published before the call, by floor_fold.
fn floor_digit(lid: u32, s0: vec2<u32>, s1: vec2<u32>, shift: u32, prefix: u32, want: u32, fold: bool) -> vec2<u32> {
    atomicStore(&floor_hist[lid], 0u);
    workgroupBarrier();
    // Past a barrier, so every thread has read the previous call's pick.
    if (lid == 0u) {
        floor_pick[0] = vec2<u32>(0u);
    }
    floor_count_or_fold(lid, 0u, s0, s1, shift, prefix, fold);
    return floor_choose(lid, 0u, want);
}

// The floor folded (`TopkConfig::wide_floor_fold`). Level 1 of a full tile folds its
// counts: the top digit is the sign and seven exponent bits, which a row's thread bests (all
// within an octave or two) mostly share, so the 256 seeds' atomics all queue on one or two
// counters (an NVIDIA warp serializes same-address atomics). Sixteen threads instead each
// read 16 (or, with second seeds, 32) published seeds and add each run of equal digits at
// once: typically one or two atomics each. And every level finds its digit with its loads
// issued at once (floor_walk_at_once). The counts, so the floor, are the same.
override WIDE_FLOOR_FOLD: bool = false;
// The seeds of floor_fold: thread t's best at t, its second best at WG + t.
var<workgroup> floor_seeds: array<u32, 512>;

// floor_count, or with `fold` floor_fold (the top digit, no prefix: level 1 only).
fn floor_count_or_fold(lid: u32, h: u32, s0: vec2<u32>, s1: vec2<u32>, shift: u32, prefix: u32, fold: bool) {
    if (fold) {
        floor_fold(lid, h);
    } else {
        floor_count(h, s0, s1, shift, prefix);
    }
}

// Counts the top digits of the published seeds (every thread's one or two) into histogram
// `h`, sixteen threads adding a run of equal digits with one atomic.
fn floor_fold(lid: u32, h: u32) {
    let per = 16u * seeds_per_thread();
    if (lid < 16u) {
        let first = lid * per;
        var digit = floor_seeds[first] >> 24u;
        var run = 0u;
        for (var i = 0u; i < per; i++) {
            let d = floor_seeds[first + i] >> 24u;
            if (d != digit) {
                atomicAdd(&floor_hist[256u * h + digit], run);
                digit = d;
                run = 0u;
            }
            run++;
        }
        atomicAdd(&floor_hist[256u * h + digit], run);
    }
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
        if (WIDE_FLOOR_FOLD) {
            floor_walk_at_once(lid, h, want);
        } else {
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
    }
    return workgroupUniformLoad(&floor_pick[h]);
}

// floor_choose's walk (thread lid < 16) with WIDE_FLOOR_FOLD: the blocks before this one and
// the block's sixteen counts in loops of fixed length with no exit, so that every load can
// be issued at once, where the loops above wait on one load per turn (up to 15 block sums,
// then up to 16 counts: two chains of dependent loads per level).
fn floor_walk_at_once(lid: u32, h: u32, want: u32) {
    var above = 0u;
    for (var b = 0u; b < 16u; b++) {
        above += select(0u, floor_block[b], b < lid);
    }
    if (above < want && above + floor_block[lid] >= want) {
        var found = false;
        for (var i = 0u; i < 16u; i++) {
            let digit = 255u - (16u * lid + i);
            let count = atomicLoad(&floor_hist[256u * h + digit]);
            if (!found && above + count >= want) {
                floor_pick[h] = vec2<u32>(digit, want - above);
                found = true;
            }
            above += count;
        }
    }
}

// floor_digit over histogram `h` (0 or 1), cleared and its pick zero on entry (by the other
// level, or at the workgroup's start); clears the other's and zeroes its pick for the other
// level, so that a level needs no barrier of its own before counting (three barriers where
// floor_digit takes four). Uniform call.
fn floor_digit_lean(lid: u32, s0: vec2<u32>, s1: vec2<u32>, shift: u32, prefix: u32, want: u32, h: u32, fold: bool) -> vec2<u32> {
    // The other level read its histogram before its last barrier (its pick's uniform load),
    // so its counts may be cleared now; its pick once every thread has loaded it, past this
    // call's barriers.
    let other = 1u - h;
    atomicStore(&floor_hist[256u * other + lid], 0u);
    floor_count_or_fold(lid, h, s0, s1, shift, prefix, fold);
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
// (36 for 256 seeds). `full_tile`: every thread has 16 entries, so every seed exists (the
// fold needs that). Uniform call.
fn seeds_floor(lid: u32, s0: vec2<u32>, s1: vec2<u32>, want: u32, full_tile: bool) -> u32 {
    let fold = WIDE_FLOOR_FOLD && full_tile;
    if (fold) {
        floor_seeds[lid] = s0.x;
        floor_seeds[WG + lid] = s1.x;
    }
    if (WIDE_LEAN) {
        if (fold) {
            workgroupBarrier(); // the lean level counts at once
        }
        // Both levels always run, so each leaves the other's histogram cleared.
        let top = floor_digit_lean(lid, s0, s1, 24u, 0u, want, 0u, fold);
        let next = floor_digit_lean(lid, s0, s1, 16u, top.x, top.y, 1u, false);
        return select(0u, (top.x << 24u) | (next.x << 16u), top.y != 0u);
    }
    let top = floor_digit(lid, s0, s1, 24u, 0u, want, fold);
    if (top.y == 0u) {
        return 0u;
    }
    let next = floor_digit(lid, s0, s1, 16u, top.x, top.y, false);
    return (top.x << 24u) | (next.x << 16u);
}

// The wide one pass keeps the candidate count and the sorted front in uniform registers
// (`TopkConfig::wide_lean`): a row's start, each shrink and its finish skip the barrier that
// reads them from workgroup memory; its floor's two levels alternate between two
// histograms (floor_digit_lean), one barrier fewer each; and a row whose last shrink ranks
// every candidate writes them from their ranks (finish_lean). A one-tile row: 8 of its ~15
// barriers, less one per workgroup.
override WIDE_LEAN: bool = false;

// A lean row's end. Where its last shrink would rank every candidate (sorted output, at most
// RANK_ALL_MAX candidates, some not yet sorted), each thread ranks one and writes it to the
// output slot of its rank: nothing is placed in the buffer to be read back, so three
// barriers and a round trip through workgroup memory fewer. Nothing writes the buffer
// before the next row's appends, which follow its floor's barriers. Otherwise as
// finish_one_pass_at. Uniform call.
fn finish_lean(lid: u32, row: u32, count: u32, front: u32) {
    if (p.sorted == 0u || count > RANK_ALL_MAX || front >= count) {
        finish_one_pass_at(lid, row, count, front);
        return;
    }
    let r = candidate_rank(lid, 0u, count);
    if (PROFILE_STOP == 3u) {
        return;
    }
    let kept = min(count, p.k);
    if (r.rank < p.k) {
        write_kept(row, r.rank, r.entry, true);
    }
    write_padding(row, kept, lid, WG);
    if (lid == 0u) {
        out_counts[p.row_shift + row] = kept;
    }
}

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
                for (var m = 0u; m < seeds_per_thread(); m++) {
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
                floor = seeds_floor(lid, s0, s1, p.k, base + WIDE_TILE <= len);
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
            finish_lean(lid, row, count, select(0u, p.k, full));
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
