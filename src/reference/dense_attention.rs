//! Exact dense softmax attention on the CPU, accumulated in f64: the oracle every attention
//! kernel is tested against, and a validation path for users.

use crate::error::Result;
use crate::shape::{AttentionShape, Mask};

/// Output of [`dense_attention`].
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionOutput {
    /// `[batch, heads_q, n_q, head_dim]`.
    pub out: Vec<f32>,
    /// Natural-log Σ exp(scale · q·k) over the visible keys, `[batch, heads_q, n_q]`.
    /// A row that sees no key has `lse = −∞` and output 0.
    pub lse: Vec<f32>,
}

/// Scaled scores of query row `(b, h, i)` against its visible keys, in f64.
pub fn scores_row(
    shape: &AttentionShape,
    q: &[f32],
    k: &[f32],
    scale: f32,
    mask: Mask,
    (b, h, i): (usize, usize, usize),
) -> Vec<f64> {
    let d = shape.head_dim;
    let qrow = &q[((b * shape.heads_q + h) * shape.n_q + i) * d..][..d];
    let kbase = (b * shape.heads_kv + shape.kv_head(h)) * shape.n_kv * d;
    (0..mask.visible_keys(i, shape.n_kv))
        .map(|j| {
            let krow = &k[kbase + j * d..][..d];
            let dot: f64 = qrow
                .iter()
                .zip(krow)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            dot * f64::from(scale)
        })
        .collect()
}

/// Softmax of `scores` in f64 (max-subtracted), with its log-sum-exp. Empty input gives an
/// empty row and `lse = −∞`; NaN scores propagate.
pub fn softmax(scores: &[f64]) -> (Vec<f64>, f64) {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if scores.is_empty() || max == f64::NEG_INFINITY {
        return (vec![0.0; scores.len()], f64::NEG_INFINITY);
    }
    let e: Vec<f64> = scores.iter().map(|&s| (s - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    (e.iter().map(|x| x / sum).collect(), max + sum.ln())
}

/// Attention probabilities of one query row (`(b, h, i)`) over its visible keys.
pub fn probabilities_row(
    shape: &AttentionShape,
    q: &[f32],
    k: &[f32],
    scale: f32,
    mask: Mask,
    row: (usize, usize, usize),
) -> Vec<f64> {
    softmax(&scores_row(shape, q, k, scale, mask, row)).0
}

/// Exact `softmax(scale · q kᵀ, masked) v` for every head, query and batch.
pub fn dense_attention(
    shape: &AttentionShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    scale: f32,
    mask: Mask,
) -> Result<AttentionOutput> {
    shape.validate(q.len(), k.len(), v.len())?;
    let d = shape.head_dim;
    let mut out = vec![0f32; shape.q_len()];
    let mut lse = vec![0f32; shape.rows()];
    for b in 0..shape.batch {
        for h in 0..shape.heads_q {
            let vbase = (b * shape.heads_kv + shape.kv_head(h)) * shape.n_kv * d;
            for i in 0..shape.n_q {
                let row = (b * shape.heads_q + h) * shape.n_q + i;
                let (p, l) = softmax(&scores_row(shape, q, k, scale, mask, (b, h, i)));
                let mut acc = vec![0f64; d];
                for (j, &pj) in p.iter().enumerate() {
                    for (a, &x) in acc.iter_mut().zip(&v[vbase + j * d..][..d]) {
                        *a += pj * f64::from(x);
                    }
                }
                for (o, a) in out[row * d..][..d].iter_mut().zip(acc) {
                    *o = a as f32;
                }
                lse[row] = l as f32;
            }
        }
    }
    Ok(AttentionOutput { out, lse })
}
