// The top-k body's tier hooks, core WebGPU (shared/topk_tier_subgroup.wgsl: the subgroup tier).
//
// Candidate append of the one-pass top-k: one workgroup atomic per admitted entry.
// Called by every thread of the workgroup, in uniform control flow.
// `dense` is for the subgroup tier's choice; here every append is one atomic.
fn append_candidate(admit: bool, key: u32, col: u32, dense: bool) {
    if (admit) {
        cand[atomicAdd(&cand_count, 1u)] = vec2<u32>(key, col);
    }
}

// The row select's subgroup hooks (sel_claim in sel_gather, the shuffle in sel_sort_shuffled),
// never called in the core tier: its entry point passes no subgroups.
fn sel_claim(n: u32) -> u32 {
    return atomicAdd(&sel_count, n);
}

fn sel_shuffle_xor(v: vec2<u32>, mask: u32) -> vec2<u32> {
    return v;
}
