// dense_attention: exact softmax attention, flash-style online softmax (f32 storage).

alias Elem = f32;

//! include shared/dense_attention_body.wgsl
