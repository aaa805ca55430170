// sampling_attention: median-of-means attention estimate from exact softmax samples (f32 storage).

alias Elem = f32;

//! include shared/sampling_attention_body.wgsl
