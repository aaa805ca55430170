// A part of the topk kernels, included by shared/topk_body.wgsl (bindings, order, outputs).
// The candidate buffer, its shrinks and a row's finish are also the wide one pass's
// (shared/topk_one_pass_wide.wgsl).

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
    let r = candidate_rank(lid, first, n);
    workgroupBarrier();
    if (r.rank < keep) {
        cand[first + r.rank] = r.entry;
    }
    workgroupBarrier();
}

// A candidate and its rank among others.
struct Ranked {
    entry: vec2<u32>,
    rank: u32,
}

// Thread lid's candidate cand[first + lid] and how many of cand[first, first + n) come
// before it (`before` is a strict total order, so the ranks are distinct); rank ONE_PASS_CAP
// (never kept) for lid ≥ n.
fn candidate_rank(lid: u32, first: u32, n: u32) -> Ranked {
    var r = Ranked(vec2<u32>(0u, SENTINEL_IDX), ONE_PASS_CAP);
    if (lid < n) {
        r = Ranked(cand[first + lid], 0u);
        for (var j = first; j < first + n; j++) {
            r.rank += select(0u, 1u, before(cand[j], r.entry));
        }
    }
    return r;
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
        out_counts[p.row_shift + row] = kept;
    }
}
