//! CPU reference of the exact backward pass of sparse (gather / top-k) attention, f64.
//!
//! For a row i with kept keys S_i (the selection is treated as fixed) and
//! `P_ij = softmax_j∈S_i(scale · q_i·k_j)`, `o_i = Σ_j P_ij v_j`, and upstream gradient `dO_i`:
//! `D_i = dO_i·o_i`, `dS_ij = P_ij (dO_i·v_j − D_i)`,
//! `dQ_i = scale Σ_j dS_ij k_j`, `dK_j = scale Σ_i dS_ij q_i`, `dV_j = Σ_i P_ij dO_i`.
//! Dense attention is the case S_i = every visible key ([`dense_attention_backward`]).

use crate::error::{Error, Result};
use crate::reference::dense_attention::softmax;
use crate::shape::{AttentionShape, Mask, elements};

/// Gradients with respect to q, k and v (same layouts as the inputs).
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionGrads {
    pub dq: Vec<f32>,
    pub dk: Vec<f32>,
    pub dv: Vec<f32>,
}

/// Backward of attention over fixed key sets: `kept [rows, slots]` lists each row's keys
/// (`u32::MAX` = none), as `gather_attention` / `topk_attention` report them. Keys should be
/// visible to their row (the forward never keeps others); an index ≥ `n_kv` counts as an
/// empty slot, like `u32::MAX`, here and on the GPU.
pub fn sparse_attention_backward(
    shape: &AttentionShape,
    scale: f32,
    (q, k, v): (&[f32], &[f32], &[f32]),
    kept: &[u32],
    slots: usize,
    d_out: &[f32],
) -> Result<AttentionGrads> {
    shape.validate(q.len(), k.len(), v.len())?;
    let want = elements(&[shape.rows(), slots]);
    if want.is_none_or(|w| kept.len() < w) {
        return Err(Error::shape(
            "kept",
            format!("rows × slots = {} × {slots}", shape.rows()),
            kept.len(),
        ));
    }
    if d_out.len() != shape.q_len() {
        return Err(Error::shape(
            "d_out",
            format!("{} elements", shape.q_len()),
            d_out.len(),
        ));
    }
    let d = shape.head_dim;
    let sc = f64::from(scale);
    let mut dq = vec![0f64; shape.q_len()];
    let mut dk = vec![0f64; shape.kv_len()];
    let mut dv = vec![0f64; shape.kv_len()];
    let dot = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum::<f64>()
    };
    for row in 0..shape.rows() {
        let bh = row / shape.n_q;
        let (b, h) = (bh / shape.heads_q, bh % shape.heads_q);
        let base = (b * shape.heads_kv + shape.kv_head(h)) * shape.n_kv;
        let keys: Vec<usize> = kept[row * slots..][..slots]
            .iter()
            .map(|&j| j as usize)
            .filter(|&j| j < shape.n_kv)
            .collect();
        let qi = &q[row * d..][..d];
        let doi = &d_out[row * d..][..d];
        let scores: Vec<f64> = keys
            .iter()
            .map(|&j| sc * dot(qi, &k[(base + j) * d..][..d]))
            .collect();
        let (p, lse) = softmax(&scores);
        if lse == f64::NEG_INFINITY {
            continue;
        }
        let mut o = vec![0f64; d];
        for (&j, &pj) in keys.iter().zip(&p) {
            for (oc, &x) in o.iter_mut().zip(&v[(base + j) * d..][..d]) {
                *oc += pj * f64::from(x);
            }
        }
        let di: f64 = o.iter().zip(doi).map(|(a, &b)| a * f64::from(b)).sum();
        for (&j, &pj) in keys.iter().zip(&p) {
            let kr = (base + j) * d;
            let ds = pj * (dot(doi, &v[kr..kr + d]) - di);
            for c in 0..d {
                dq[row * d + c] += sc * ds * f64::from(k[kr + c]);
                dk[kr + c] += sc * ds * f64::from(qi[c]);
                dv[kr + c] += pj * f64::from(doi[c]);
            }
        }
    }
    let f = |x: Vec<f64>| x.into_iter().map(|v| v as f32).collect();
    Ok(AttentionGrads {
        dq: f(dq),
        dk: f(dk),
        dv: f(dv),
    })
}

/// Backward of exact dense attention: every visible key kept.
pub fn dense_attention_backward(
    shape: &AttentionShape,
    scale: f32,
    mask: Mask,
    qkv: (&[f32], &[f32], &[f32]),
    d_out: &[f32],
) -> Result<AttentionGrads> {
    let n = shape.n_kv;
    let kept: Vec<u32> = (0..shape.rows())
        .flat_map(|row| {
            let vis = mask.visible_keys(row % shape.n_q, n);
            (0..n as u32).map(move |j| if (j as usize) < vis { j } else { u32::MAX })
        })
        .collect();
    sparse_attention_backward(shape, scale, qkv, &kept, n, d_out)
}

/// The random-walk (sampled) estimator of the same gradients: row i's softmax is replaced by
/// its `l` samples `samples [rows, l]` at weight 1/l, and `D_i = dO_i·o_i` uses the exact
/// forward output `out`. Unbiased: each term's expectation over a sample is its P-weighted
/// sum. Same samples as the GPU → the same estimate up to f32 summation order.
pub fn sampled_attention_backward(
    shape: &AttentionShape,
    scale: f32,
    (q, k, v): (&[f32], &[f32], &[f32]),
    (samples, l): (&[u32], usize),
    d_out: &[f32],
    out: &[f32],
) -> Result<AttentionGrads> {
    shape.validate(q.len(), k.len(), v.len())?;
    if elements(&[shape.rows(), l]).is_none_or(|want| samples.len() < want)
        || d_out.len() != shape.q_len()
        || out.len() != shape.q_len()
    {
        return Err(Error::shape(
            "samples, d_out, out",
            "[rows, L], [rows, d], [rows, d]",
            samples.len(),
        ));
    }
    let d = shape.head_dim;
    let (sc, w) = (f64::from(scale), 1.0 / l as f64);
    let mut dq = vec![0f64; shape.q_len()];
    let mut dk = vec![0f64; shape.kv_len()];
    let mut dv = vec![0f64; shape.kv_len()];
    for row in 0..shape.rows() {
        let bh = row / shape.n_q;
        let (b, h) = (bh / shape.heads_q, bh % shape.heads_q);
        let base = (b * shape.heads_kv + shape.kv_head(h)) * shape.n_kv;
        let doi = &d_out[row * d..][..d];
        let qi = &q[row * d..][..d];
        let di: f64 = doi
            .iter()
            .zip(&out[row * d..][..d])
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        let keys = samples[row * l..][..l].iter().map(|&j| j as usize);
        for j in keys.filter(|&j| j < shape.n_kv) {
            let kr = (base + j) * d;
            let dp: f64 = doi
                .iter()
                .zip(&v[kr..kr + d])
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            let ds = w * (dp - di);
            for c in 0..d {
                dq[row * d + c] += sc * ds * f64::from(k[kr + c]);
                dk[kr + c] += sc * ds * f64::from(qi[c]);
                dv[kr + c] += w * f64::from(doi[c]);
            }
        }
    }
    let f = |x: Vec<f64>| x.into_iter().map(|v| v as f32).collect();
    Ok(AttentionGrads {
        dq: f(dq),
        dk: f(dk),
        dv: f(dv),
    })
}
