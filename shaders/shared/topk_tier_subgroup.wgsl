// The top-k body's tier hooks, subgroup tier (shared/topk_tier.wgsl: core WebGPU).
//
// Candidate append of the one-pass top-k. When `dense` (workgroup-uniform: the
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

// The first of `n` gather slots for this thread, the subgroup's together taken by one atomic:
// as append_candidate's dense case, the first lane with entries reserves them and subgroupMax
// hands the base to the others (every other lane holds 0). Uniform call.
fn sel_claim(n: u32) -> u32 {
    let total = subgroupAdd(n);
    let before = subgroupExclusiveAdd(n);
    var mine = 0u;
    if (n != 0u && before == 0u) {
        mine = atomicAdd(&sel_count, total);
    }
    return subgroupMax(mine) + before;
}

// The row select's subgroup shuffle (sel_sort_shuffled).
fn sel_shuffle_xor(v: vec2<u32>, mask: u32) -> vec2<u32> {
    return subgroupShuffleXor(v, mask);
}

var<workgroup> sel_partial: atomic<u32>;

// Whether every subgroup of the workgroup is full and of one size (`count` subgroups of `size`
// lanes make the workgroup): the shuffled sort numbers threads by (subgroup, lane), and a
// lane of a partial subgroup would miss its partners. Where a driver varies the subgroup
// size within a dispatch, some subgroup's count × size misses the workgroup. Uniform call.
fn sel_subgroups_full(lid: u32, size: u32, count: u32) -> bool {
    if (lid == 0u) {
        atomicStore(&sel_partial, 0u);
    }
    workgroupBarrier();
    if (subgroupAdd(1u) != size || count * size != SEL_WG) {
        atomicStore(&sel_partial, 1u);
    }
    return workgroupUniformLoad(&sel_partial) == 0u;
}

// The row select, its sort's steps within a subgroup done by shuffles (sel_sort_shuffled);
// in workgroup memory as the core entry point does where a subgroup is partial.
@compute @workgroup_size(SEL_WG)
fn topk_row_select_subgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(subgroup_size) size: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(num_subgroups) count: u32,
) {
    let sub = select(0u, size, sel_subgroups_full(lid, size, count));
    row_select(wid, nwg, lid, sub, subgroup * size + lane);
}
