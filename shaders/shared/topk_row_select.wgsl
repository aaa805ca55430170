// A part of the topk kernels, included by shared/topk_body.wgsl (bindings, order, outputs).
// Reads tiles as the wide one pass does (WideTile, shared/topk_one_pass_wide.wgsl); sorts by
// shared/topk_row_select_sort.wgsl; splits a row over workgroups by
// shared/topk_row_select_split.wgsl.

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
    let chunk = group % SEL_SPLIT;
    if (SEL_SPLIT > 1u) {
        cols = sel_split_run(chunk, len);
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
        m = sel_split_gather(row, chunk, cols, first, len, lid, lb, sub);
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
    // Sorted by buckets: every gathered entry at once, the best `want` written from their
    // places.
    var bucketed = false;
    if (SEL_BUCKET_SORT && p.sorted != 0u && m <= SHUFFLED_PER_THREAD * SEL_WG) {
        bucketed = sel_bucket_sort(lid, m, sel_four_strided(lid, m), row, want);
    }
    if (!bucketed) {
        sel_keep_best(lid, m, want, sub, pos);
    }
    if (PROFILE_STOP == 3u) {
        return;
    }
    for (var slot = lid; slot < p.k && !bucketed; slot += SEL_WG) {
        write_kept(row, slot, sel_cand[min(slot, SEL_CAP - 1u)], slot < want);
    }
    if (lid == 0u) {
        out_counts[p.row_shift + row] = want;
    }
}
