// A part of the topk kernels, included by shared/topk_body.wgsl (bindings, order, outputs).

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
//   the exact levels instead: a result stays exact, and no dispatch can hang.
// - A row has two lists, and a call uses the one its parity word names. Each workgroup
//   clears its share of the other, the last call's, whose every store has landed once that
//   dispatch ended: even a store that became visible only after the last workgroup gave up
//   on it, which would otherwise sit in a slot of the next call's list as a stale entry.
//   The last workgroup zeroes the word and flips the parity (every other workgroup read it
//   before arriving), so the next call finds a cleared list, as the zeroed buffer starts.
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

// (first slot of this workgroup's entries, the row's word after its arrival, the row's
// parity: which of its two lists this call uses).
var<workgroup> sel_split: vec3<u32>;

// Where row `row`'s words start in row_hist: its word, its parity, then two lists of SEL_CAP
// slots of (~key, index + 1).
fn sel_split_base(row: u32) -> u32 {
    return row * (2u + 4u * SEL_CAP);
}

// Where list `list` (0 or 1) of the row at `base` starts.
fn sel_list_at(base: u32, list: u32) -> u32 {
    return base + 2u + list * 2u * SEL_CAP;
}

// List entry i from its slot in row_hist (whose words were read as `key` and `index`):
// read again until both are written (at most SEL_SPIN_MAX times; past that sel_moved says
// so), then into sel_cand[i]. The next call clears the slot.
fn sel_take_slot(slot: u32, i: u32, key: u32, index: u32) {
    var e = vec2<u32>(key, index);
    for (var tries = 0u; tries < SEL_SPIN_MAX && (e.x == 0u || e.y == 0u); tries++) {
        e = vec2<u32>(atomicLoad(&row_hist[slot]), atomicLoad(&row_hist[slot + 1u]));
    }
    if (e.x == 0u || e.y == 0u) {
        atomicStore(&sel_moved, 1u);
    }
    sel_cand[i] = vec2<u32>(~e.x, e.y - 1u);
}

// Columns [start, end) of workgroup `chunk`'s run of tiles of a row of `len` entries.
fn sel_split_run(chunk: u32, len: u32) -> vec2<u32> {
    let tile = sel_tile_entries();
    let run = ((p.n + tile - 1u) / tile + SEL_SPLIT - 1u) / SEL_SPLIT * tile;
    return vec2<u32>(chunk * run, min(chunk * run + run, len));
}

// The split gather of workgroup `chunk` over the columns `cols` (sel_split_run) of row `row`,
// the first tile already in `first` where the run has one: SEL_NOT_LAST for every workgroup
// of the row but the last to arrive; for that one, the row's count of entries ≥ lb (above
// SEL_CAP: too many), its entries in sel_cand where they fit. Uniform call.
fn sel_split_gather(row: u32, chunk: u32, cols: vec2<u32>, first: WideTile, len: u32, lid: u32, lb: vec2<u32>, sub: u32) -> u32 {
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
        sel_split.z = atomicLoad(&row_hist[base + 1u]);
        atomicStore(&sel_moved, 0u); // becomes 1 if a slot stays unseen (barriers away)
    }
    let split = workgroupUniformLoad(&sel_split);
    let at = split.x;
    let list = sel_list_at(base, split.z);
    // This workgroup's share of the other list, the last call's.
    let old = sel_list_at(base, 1u - split.z);
    let share = (2u * SEL_CAP + SEL_SPLIT - 1u) / SEL_SPLIT;
    for (var j = chunk * share + lid; j < min(chunk * share + share, 2u * SEL_CAP); j += SEL_WG) {
        atomicStore(&row_hist[old + j], 0u);
    }
    for (var i = lid; i < min(mine, SEL_CAP); i += SEL_WG) {
        let slot = list + 2u * (at + i);
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
        atomicStore(&row_hist[base + 1u], 1u - split.z);
    }
    let m = word % SEL_ARRIVAL;
    let listed = min(m, SEL_CAP);
    // Four slots a thread at a time, all eight loads issued before any is used (one round
    // trip to memory, where a loop waiting on each slot took one per slot); a slot not yet
    // visible is read again on its own.
    for (var i0 = lid; i0 < listed; i0 += 4u * SEL_WG) {
        let i = vec4<u32>(i0, i0 + SEL_WG, i0 + 2u * SEL_WG, i0 + 3u * SEL_WG);
        // Past the list a lane reads the last slot again, and ignores it.
        let slot = vec4<u32>(list) + 2u * min(i, vec4<u32>(listed - 1u));
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
