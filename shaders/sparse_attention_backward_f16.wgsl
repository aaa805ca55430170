// sparse_attention_backward_f16: as sparse_attention_backward, with q, k, v stored as f16
// (arithmetic and gradients in f32).

enable f16;

alias Elem = f16;

//! include shared/sparse_attention_backward_body.wgsl
