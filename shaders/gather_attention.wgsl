// gather_attention: softmax attention over given key indices per query (f32 storage).

alias Elem = f32;

//! include shared/gather_attention_body.wgsl
