// sampling_attention_f16: as sampling_attention, with v stored as f16 (arithmetic in f32).

enable f16;

alias Elem = f16;

//! include shared/sampling_attention_body.wgsl
