// topk_f16: the f16-input tier of `topk`; same algorithm and rules, see shaders/topk.wgsl.
// Scores are read as bits and come back widened to f32 exactly (shared/topk_scores_f16.wgsl),
// so this tier runs on every adapter.

//! include shared/topk_scores_f16.wgsl
//! include shared/topk_tier.wgsl
//! include shared/topk_tile.wgsl
//! include shared/topk_body.wgsl
