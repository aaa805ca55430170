// The q·k operand pair of attention_tile.wgsl for kernels that only score (the including
// file declares `q_in` and `k_in` as array<Elem>).

fn tile_a(pair: u32, idx: u32) -> f32 {
    return f32(q_in[idx]);
}

fn tile_b(pair: u32, idx: u32) -> f32 {
    return f32(k_in[idx]);
}

//! include shared/attention_tile.wgsl
