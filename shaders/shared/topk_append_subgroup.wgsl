// Candidate append of the one-pass top-k, subgroup tier. When `dense` (workgroup-uniform: the
// last tile admitted many), one workgroup atomic per subgroup: the admitted lanes take
// consecutive slots by their exclusive prefix count; the first of them reserves the
// subgroup's slots and subgroupMax hands the base to the others (every other lane holds 0).
// Otherwise few are admitted, and one atomic each costs less than three subgroup operations
// on every entry. Called by every thread of the workgroup, in uniform control flow.
fn append_candidate(admit: bool, key: u32, col: u32, dense: bool) {
    if (!dense) {
        if (admit) {
            cand[atomicAdd(&cand_count, 1u)] = vec2<u32>(key, col);
        }
        return;
    }
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
