// A part of the topk kernels, included by shared/topk_body.wgsl (bindings, order, outputs).
// ---- The row select's sorts: the network (core), the shuffled network (subgroups), buckets ----

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
// layout) best-first and writes the best `want` as row `row`'s outputs, with its padding:
// a counting sort by the key's bits below the entries' common span (≤ 2048 buckets, a few
// entries each), then each entry's place in its bucket by counting those of the bucket that
// sort before it, all entries at once, and each of the best written to the output slot of
// its place from the registers (nothing placed in sel_cand to be read back: two barriers
// fewer). About ten barriers, where the exact select and the network on 2048 entries take
// about 80 (~26 µs of the H200's decode row). False, with nothing written, where a bucket
// would hold more than SEL_BUCKET_MAX (sel_cand still holds the gathered entries). Writes
// every output but the row's count (none with PROFILE_STOP 3). Uniform call.
fn sel_bucket_sort(lid: u32, count: u32, r: SelFour, row: u32, want: u32) -> bool {
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
    if (PROFILE_STOP == 3u) {
        return true;
    }
    for (var j = 0u; j < SHUFFLED_PER_THREAD; j++) {
        if (lid + j * SEL_WG < count && places[j] < want) {
            write_kept(row, places[j], sel_four_entry(r, j), true);
        }
    }
    write_padding(row, want, lid, SEL_WG);
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
