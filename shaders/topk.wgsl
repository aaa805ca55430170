// topk: exact row-wise top-k by radix select (MSB first, 8 bits per pass, 4 passes), then a
// deterministic compaction and a bitonic sort of the k survivors.
//
// Per row batch the host records:
//   4 × topk_histogram (rows × chunks; from pass 1 on each workgroup first settles the previous
//       pass's digit from the atomic row histogram, so no per-row dispatch sits between passes)
//   topk_compact (rows × chunks)     -> settles the last digit: threshold key T; writes keys > T,
//                                       then the first keys == T by index, into `pairs`
//   topk_sort_local / topk_sort_global (bitonic; the last local step writes the outputs),
//       or topk_rank_sort (TopkConfig::rank_sort: each survivor writes its slot by rank)
//   or, unsorted, topk_finalize (rows × k) -> values (read back from the input), indices, counts
// No pass waits on another workgroup: every cross-workgroup step is a separate dispatch.
//
// Order: scores map to u32 keys that order like the floats, with -0.0 == +0.0 and NaN below
// every number (key 0). Ties go to the smaller index. Selecting the smallest inverts the keys
// of numbers only, so NaN is still last.

alias Score = f32;

fn load_score(i: u32) -> f32 {
    return scores[i];
}

//! include shared/topk_tier.wgsl
//! include shared/topk_tile.wgsl
//! include shared/topk_body.wgsl
