// topk_f16_subgroup: f16 scores with the subgroup candidate append (needs `SHADER_F16` and
// `SUBGROUP`); same algorithm, rules and results as shaders/topk.wgsl. See topk_subgroup.wgsl
// for why there is no `enable subgroups;`.

enable f16;

alias Score = f16;

//! include shared/topk_append_subgroup.wgsl
//! include shared/topk_body.wgsl
