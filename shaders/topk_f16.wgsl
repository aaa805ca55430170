// topk_f16: the f16-input tier of `topk` (needs `Features::SHADER_F16`); same algorithm and
// rules, see shaders/topk.wgsl. Selected values come back widened to f32 (exactly).

enable f16;

alias Score = f16;

//! include shared/topk_append.wgsl
//! include shared/topk_body.wgsl
