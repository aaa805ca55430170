// gather_attention_f16: as gather_attention, with q, k, v stored as f16 (arithmetic in f32).

enable f16;

alias Elem = f16;

//! include shared/gather_attention_body.wgsl
