//! CPU reference of `sampling_attention`: the median-of-means estimate from given samples
//! (bit-for-bit the kernel's arithmetic order, f32), and a full CPU estimator that draws its
//! own samples with the lazy sampler reference.

use crate::error::Result;
use crate::kernels::gumbel_max::SamplerConfig;
use crate::kernels::sampling_attention::{MomConfig, SamplingAttentionConfig, SamplingResult};
use crate::reference::dense_attention::scores_row;
use crate::reference::lazy_gumbel::lazy_gumbel_row;
use crate::shape::AttentionShape;

/// Median over groups of the mean of the sampled V rows, per row and dimension; rows whose
/// samples are `u32::MAX` (no visible key) give 0.
pub fn mom_estimate(
    shape: &AttentionShape,
    v: &[f32],
    samples: &[u32],
    mom: &MomConfig,
) -> Result<Vec<f32>> {
    mom.validate()?;
    let d = shape.head_dim;
    let per = mom.samples / mom.groups;
    let mut out = vec![0f32; shape.q_len()];
    for row in 0..shape.rows() {
        let bh = row / shape.n_q;
        let (b, h) = (bh / shape.heads_q, bh % shape.heads_q);
        let kvh = b * shape.heads_kv + shape.kv_head(h);
        let keys = &samples[row * mom.samples..][..mom.samples];
        if keys.contains(&u32::MAX) {
            continue;
        }
        for c in 0..d {
            let mut means: Vec<f32> = keys
                .chunks(per)
                .map(|g| {
                    let acc = g
                        .iter()
                        .fold(0f32, |a, &j| a + v[(kvh * shape.n_kv + j as usize) * d + c]);
                    acc / per as f32
                })
                .collect();
            means.sort_by(f32::total_cmp);
            let mid = mom.groups / 2;
            out[row * d + c] = if mom.groups.is_multiple_of(2) {
                0.5 * (means[mid - 1] + means[mid])
            } else {
                means[mid]
            };
        }
    }
    Ok(out)
}

/// The whole estimator on the CPU: f64 scores rounded to f32, the lazy sampler reference per
/// row (stream = query row), then [`mom_estimate`]. Samples match the GPU's in distribution,
/// not bit for bit (the GPU's f32 scores round differently).
pub fn sampling_attention(
    cfg: &SamplingAttentionConfig,
    (q, k, v): (&[f32], &[f32], &[f32]),
) -> Result<SamplingResult> {
    cfg.validate()?;
    let s = &cfg.attn.shape;
    s.validate(q.len(), k.len(), v.len())?;
    let (l, kset) = (cfg.mom.samples, cfg.k_set());
    let mut samples = vec![u32::MAX; s.rows() * l];
    let mut touched = vec![0; s.rows() * l];
    for row in 0..s.rows() {
        let (bh, i) = (row / s.n_q, row % s.n_q);
        let scores: Vec<f32> = scores_row(
            s,
            q,
            k,
            cfg.attn.scale,
            cfg.attn.mask,
            (bh / s.heads_q, bh % s.heads_q, i),
        )
        .into_iter()
        .map(|x| x as f32)
        .collect();
        if scores.is_empty() {
            continue;
        }
        let scfg = SamplerConfig::new(1, scores.len(), l, cfg.seed);
        let r = lazy_gumbel_row(&scores, &scfg, kset.min(scores.len()), row)?;
        samples[row * l..][..l].copy_from_slice(&r.samples);
        touched[row * l..][..l].copy_from_slice(&r.touched);
    }
    Ok(SamplingResult {
        out: mom_estimate(s, v, &samples, &cfg.mom)?,
        samples,
        touched,
    })
}
