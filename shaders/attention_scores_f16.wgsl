// attention_scores_f16: as attention_scores, with q and k stored as f16 (arithmetic in f32).

enable f16;

alias Elem = f16;

//! include shared/attention_scores_body.wgsl
