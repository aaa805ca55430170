// attention_scores: scaled q·k scores of a block of query tiles (f32 storage).

alias Elem = f32;

//! include shared/attention_scores_body.wgsl
