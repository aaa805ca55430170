// dense_attention_f16: as dense_attention, with q, k, v stored as f16 (arithmetic in f32).

enable f16;

alias Elem = f16;

//! include shared/dense_attention_body.wgsl
