//! CPU reference of `topk_attention`: f64 scores, exact top-k per row (NaN last, ties to the
//! smaller index, −0.0 = +0.0), then [`gather_attention`] over the kept keys.

use std::cmp::Ordering;

use crate::attention::SparseAttentionOutput;
use crate::error::Result;
use crate::kernels::topk_attention::TopkAttentionConfig;
use crate::reference::dense_attention::scores_row;
use crate::reference::gather_attention::gather_attention;

/// Best-first order of scores: larger first, NaN after every number, ties by index.
pub fn rank(scores: &[f64]) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..scores.len() as u32).collect();
    idx.sort_by(|&a, &b| {
        let (x, y) = (scores[a as usize], scores[b as usize]);
        match (x.is_nan(), y.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => y.partial_cmp(&x).unwrap(),
        }
        .then(a.cmp(&b))
    });
    idx
}

/// The k_max best keys of every row, `[rows, k_max]`, padded with `u32::MAX`.
pub fn topk_indices(cfg: &TopkAttentionConfig, q: &[f32], k: &[f32]) -> Vec<u32> {
    let s = &cfg.attn.shape;
    let k_max = cfg.k_rows().1;
    let mut out = vec![u32::MAX; s.rows() * k_max];
    for row in 0..s.rows() {
        let (bh, i) = (row / s.n_q, row % s.n_q);
        let (b, h) = (bh / s.heads_q, bh % s.heads_q);
        let scores = scores_row(s, q, k, cfg.attn.scale, cfg.attn.mask, (b, h, i));
        for (slot, j) in rank(&scores).into_iter().take(k_max).enumerate() {
            out[row * k_max + slot] = j;
        }
    }
    out
}

/// Top-k attention of every row, with kept keys and probabilities as the kernel reports them.
pub fn topk_attention(
    cfg: &TopkAttentionConfig,
    (q, k, v): (&[f32], &[f32], &[f32]),
) -> Result<SparseAttentionOutput> {
    cfg.validate()?;
    let s = &cfg.attn.shape;
    s.validate(q.len(), k.len(), v.len())?;
    let (k_rows, _) = cfg.k_rows();
    let indices = topk_indices(cfg, q, k);
    gather_attention(&cfg.gather(), (q, k, v), &indices, Some(&k_rows), None)
}
