// topk_subgroup: the subgroup tier of `topk` (needs `Features::SUBGROUP`), f32 scores. Same
// algorithm, rules and results as shaders/topk.wgsl; only the one-pass path's candidate append
// differs (one atomic per subgroup instead of per entry). No `enable subgroups;`: naga 30
// rejects the directive and gates subgroup builtins on the device feature instead.

alias Score = f32;

fn load_score(i: u32) -> f32 {
    return scores[i];
}

//! include shared/topk_tier_subgroup.wgsl
//! include shared/topk_tile.wgsl
//! include shared/topk_body.wgsl
