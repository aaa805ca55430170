// Candidate append of the one-pass top-k, core WebGPU: one workgroup atomic per admitted entry.
// Called by every thread of the workgroup, in uniform control flow.
// `dense` is for the subgroup tier's choice; here every append is one atomic.
fn append_candidate(admit: bool, key: u32, col: u32, dense: bool) {
    if (admit) {
        cand[atomicAdd(&cand_count, 1u)] = vec2<u32>(key, col);
    }
}
