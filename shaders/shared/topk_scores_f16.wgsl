// f16 scores of the topk kernels, read as packed bits (two per u32, little-endian as WGSL lays
// out memory) and widened exactly, so no `enable f16` and no SHADER_F16 are needed.

//! include shared/f16_bits.wgsl

alias Score = u32;

fn load_score(i: u32) -> f32 {
    return widen_f16_bits((scores[i >> 1u] >> ((i & 1u) * 16u)) & 0xFFFFu);
}
