//! CPU reference of `lev_attention`: f64 leverage scores, the top-|U| keys per kv head (ties
//! to the smaller index), then gather attention over that shared set.

use crate::error::Result;
use crate::kernels::lev_attention::{LevAttentionConfig, LevResult};
use crate::reference::gather_attention::gather_attention;
use crate::reference::leverage_scores::leverage_scores;
use crate::reference::topk_attention::rank;

/// The universal set `[batch · heads_kv, |U|]` from leverage scores `[heads, n_kv]`.
pub fn universal_set(sigma: &[f64], heads: usize, n: usize, u: usize) -> Vec<u32> {
    (0..heads)
        .flat_map(|h| rank(&sigma[h * n..][..n]).into_iter().take(u))
        .collect()
}

pub fn lev_attention(
    cfg: &LevAttentionConfig,
    (q, k, v): (&[f32], &[f32], &[f32]),
) -> Result<LevResult> {
    cfg.validate()?;
    let s = &cfg.attn.shape;
    s.validate(q.len(), k.len(), v.len())?;
    let heads = s.batch * s.heads_kv;
    let sigma = leverage_scores(k, &cfg.leverage(), s.n_kv)?;
    let universal = universal_set(&sigma, heads, s.n_kv, cfg.universal);
    let attention = gather_attention(&cfg.gather(), (q, k, v), &universal, None, None)?;
    Ok(LevResult {
        attention,
        universal,
        sigma: sigma.iter().map(|&x| x as f32).collect(),
    })
}
