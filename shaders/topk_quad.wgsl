// topk_quad: f32 scores read as vec4 (`TopkConfig::loads`: rows on quad boundaries), so
// the one pass moves 16 bytes per load instead of 4. Same algorithm, rules and results as
// shaders/topk.wgsl; only the one pass's reading order differs (shared/topk_tile_quad.wgsl).
// An experiment until a GPU says whether it pays: on an H200, a plain row read took 0.57 ms
// in vec4 loads against 1.0 ms in scalar ones (bench `--kernel bandwidth`).

alias Score = vec4<f32>;

fn load_score(i: u32) -> f32 {
    return scores[i >> 2u][i & 3u];
}

//! include shared/topk_tier.wgsl
//! include shared/topk_tile_quad.wgsl
//! include shared/topk_body.wgsl
