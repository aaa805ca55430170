// topk_attention: fused score + top-k selection for small k (f32 storage); see the body.

alias Elem = f32;

//! include shared/topk_attention_body.wgsl
