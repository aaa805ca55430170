// Candidate append of the one-pass top-k, subgroup tier: one workgroup atomic per subgroup.
// The admitted lanes take consecutive slots by their exclusive prefix count; the first of them
// reserves the subgroup's slots and subgroupMax hands the base to the others (every other lane
// holds 0). Called by every thread of the workgroup, in uniform control flow.
fn append_candidate(admit: bool, key: u32, col: u32) {
    let v = select(0u, 1u, admit);
    let total = subgroupAdd(v);
    let rank = subgroupExclusiveAdd(v);
    var mine = 0u;
    if (admit && rank == 0u) {
        mine = atomicAdd(&cand_count, total);
    }
    let base = subgroupMax(mine);
    if (admit) {
        cand[base + rank] = vec2<u32>(key, col);
    }
}
