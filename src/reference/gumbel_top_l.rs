//! CPU reference of `gumbel_top_l`: the same perturbation (sample 0's Philox noise) and the
//! reference top-k.

use crate::error::{Error, Result};
use crate::kernels::gumbel_max::SamplerConfig;
use crate::kernels::gumbel_top_l::picks;
use crate::kernels::topk::TopkConfig;
use crate::reference::gumbel_max::perturbed;
use crate::reference::topk::topk;

/// `[rows, L]` picks, `u32::MAX` where a row has fewer than L keys of non-zero probability.
pub fn gumbel_top_l(scores: &[f32], cfg: &SamplerConfig) -> Result<Vec<u32>> {
    cfg.validate_input(scores.len(), None)?;
    if cfg.samples > cfg.n {
        return Err(Error::shape(
            "samples",
            format!("≤ n = {}", cfg.n),
            cfg.samples,
        ));
    }
    let mut pert = vec![0f32; cfg.rows * cfg.n];
    for row in 0..cfg.rows {
        for j in 0..cfg.n {
            pert[row * cfg.n + j] =
                perturbed(cfg, scores[row * cfg.stride() + j], row, 0, j).unwrap_or(f32::NAN);
        }
    }
    let tcfg = TopkConfig {
        rows: cfg.rows,
        n: cfg.n,
        k: cfg.samples,
        ..Default::default()
    };
    let r = topk(&pert, &tcfg, 0, None)?;
    Ok(picks(&r.values, &r.indices))
}
