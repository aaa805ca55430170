//! CPU reference of `gumbel_max`, drawing the same Philox uniforms as the shaders.

use crate::error::Result;
use crate::kernels::gumbel_max::SamplerConfig;
use crate::philox;

/// Uniform of key `j` in sample `l` of row `row` (word `j % 4` of block `l << 32 | j / 4`).
pub fn key_uniform(seed: u64, row: usize, l: usize, j: usize) -> f32 {
    let w = philox::block(seed, row as u64, ((l as u64) << 32) | (j as u64 >> 2));
    philox::uniform_open01(w[j & 3])
}

/// Standard Gumbel of key `j` in sample `l` of row `row`.
pub fn key_gumbel(seed: u64, row: usize, l: usize, j: usize) -> f32 {
    philox::gumbel_from_uniform(key_uniform(seed, row, l, j))
}

/// True when `(v, j)` ranks before `(w, i)`: larger value, then smaller index.
pub fn ranks_before(v: f32, j: u32, w: f32, i: u32) -> bool {
    v > w || (v == w && j < i)
}

/// The row's perturbed score of key `j` in sample `l`, or `None` when `s` is NaN or −∞.
pub fn perturbed(cfg: &SamplerConfig, s: f32, row: usize, l: usize, j: usize) -> Option<f32> {
    (s > f32::NEG_INFINITY).then(|| s * cfg.inv_temp() + key_gumbel(cfg.seed, row, l, j))
}

/// `[rows, samples]` Gumbel-max samples (`u32::MAX` for a row with no finite score).
pub fn gumbel_max(
    scores: &[f32],
    cfg: &SamplerConfig,
    lengths: Option<&[u32]>,
) -> Result<Vec<u32>> {
    cfg.validate_input(scores.len(), lengths.map(<[u32]>::len))?;
    let mut out = vec![u32::MAX; cfg.rows * cfg.samples];
    for row in 0..cfg.rows {
        let len = lengths.map_or(cfg.n, |l| (l[row] as usize).min(cfg.n));
        let data = &scores[row * cfg.stride()..][..len];
        for l in 0..cfg.samples {
            let (mut bv, mut bj) = (f32::NEG_INFINITY, u32::MAX);
            for (j, &s) in data.iter().enumerate() {
                if let Some(v) = perturbed(cfg, s, row, l, j)
                    && ranks_before(v, j as u32, bv, bj)
                {
                    (bv, bj) = (v, j as u32);
                }
            }
            out[row * cfg.samples + l] = bj;
        }
    }
    Ok(out)
}
