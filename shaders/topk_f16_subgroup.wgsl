// topk_f16_subgroup: f16 scores with the subgroup candidate append (needs `SUBGROUP`); same
// algorithm, rules and results as shaders/topk.wgsl. See topk_subgroup.wgsl for why there is
// no `enable subgroups;`.

//! include shared/topk_scores_f16.wgsl
//! include shared/topk_tier_subgroup.wgsl
//! include shared/topk_tile.wgsl
//! include shared/topk_body.wgsl
