// topk_attention_f16: as topk_attention, with q and k stored as f16 (arithmetic in f32).

enable f16;

alias Elem = f16;

//! include shared/topk_attention_body.wgsl
