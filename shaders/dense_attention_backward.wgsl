// dense_attention_backward: exact flash-style gradients of dense attention (f32 storage).

alias Elem = f32;

//! include shared/dense_attention_backward_body.wgsl
