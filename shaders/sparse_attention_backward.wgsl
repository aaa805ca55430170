// sparse_attention_backward: exact gradients of sparse attention (f32 storage).

alias Elem = f32;

//! include shared/sparse_attention_backward_body.wgsl
