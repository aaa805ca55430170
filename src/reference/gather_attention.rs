//! CPU reference of `gather_attention` (f64 scores and softmax), with the same slot rule and
//! paged layout (see [`crate::kernels::gather_attention`]).

use crate::attention::SparseAttentionOutput;
use crate::error::{Error, Result};
use crate::kernels::gather_attention::GatherConfig;
use crate::reference::dense_attention::softmax;

/// Key of `slot` for a row that sees `vis` keys and uses `kr` index slots, or `None` when the
/// slot is skipped (padding, invisible, beyond `kr`, or covered by the sinks or window).
pub fn slot_key(
    cfg: &GatherConfig,
    index_row: &[u32],
    vis: usize,
    kr: usize,
    slot: usize,
) -> Option<usize> {
    let sinks = cfg.keep.sinks.min(vis);
    let win_start = (vis - cfg.keep.window.min(vis)).max(sinks);
    if slot < cfg.slots {
        let j = index_row[slot] as usize;
        return (slot < kr && j >= sinks && j < win_start).then_some(j);
    }
    let s = slot - cfg.slots;
    if s < cfg.keep.sinks {
        return (s < sinks).then_some(s);
    }
    let j = vis - cfg.keep.window.min(vis) + (s - cfg.keep.sinks);
    (j >= win_start && j < vis).then_some(j)
}

/// Element offset of key `j`'s row for flattened kv head `kvh` (`b · heads_kv + h`), or `None`
/// when its page id is out of the pool.
pub fn key_row(
    cfg: &GatherConfig,
    block_table: Option<&[u32]>,
    kvh: usize,
    j: usize,
) -> Option<usize> {
    let s = &cfg.attn.shape;
    match (cfg.paged, block_table) {
        (Some(p), Some(t)) => {
            let (b, h) = (kvh / s.heads_kv, kvh % s.heads_kv);
            let page = t[b * p.pages_per_seq + j / p.page_size] as usize;
            (page < p.pool_pages)
                .then(|| ((page * s.heads_kv + h) * p.page_size + j % p.page_size) * s.head_dim)
        }
        _ => Some((kvh * s.n_kv + j) * s.head_dim),
    }
}

/// Gather attention of every row: `indices` is `[rows, slots]`, `k_rows` optional `[n_q]`,
/// `block_table` `[batch, pages_per_seq]` with a paged layout.
pub fn gather_attention(
    cfg: &GatherConfig,
    (q, k, v): (&[f32], &[f32], &[f32]),
    indices: &[u32],
    k_rows: Option<&[u32]>,
    block_table: Option<&[u32]>,
) -> Result<SparseAttentionOutput> {
    cfg.validate()?;
    let s = &cfg.attn.shape;
    s.validate(q.len(), s.kv_len(), s.kv_len())?;
    for (arg, len) in [("k", k.len()), ("v", v.len())] {
        if len != cfg.kv_len() {
            return Err(Error::shape(arg, format!("{} elements", cfg.kv_len()), len));
        }
    }
    let want = cfg.index_rows() * cfg.slots;
    if indices.len() < want {
        return Err(Error::shape("indices", format!("≥ {want}"), indices.len()));
    }
    if cfg.paged.is_some() && block_table.is_none() {
        return Err(Error::shape(
            "block_table",
            "given with a paged layout",
            "none",
        ));
    }
    let d = s.head_dim;
    let total = cfg.total_slots();
    let mut r = SparseAttentionOutput {
        out: vec![0.0; s.q_len()],
        lse: vec![0.0; s.rows()],
        slots: total,
        kept: vec![u32::MAX; s.rows() * total],
        probs: vec![0.0; s.rows() * total],
    };
    for row in 0..s.rows() {
        let (bh, i) = (row / s.n_q, row % s.n_q);
        let (b, h) = (bh / s.heads_q, bh % s.heads_q);
        let kvh = b * s.heads_kv + s.kv_head(h);
        let vis = cfg.attn.mask.visible_keys(i, s.n_kv);
        let kr = k_rows.map_or(cfg.slots, |kr| (kr[i] as usize).min(cfg.slots));
        let irow = if cfg.per_kv_head { kvh } else { row };
        let index_row = &indices[irow * cfg.slots..][..cfg.slots];
        let qrow = &q[row * d..][..d];
        // (slot, key, row offset) of every used slot.
        let used: Vec<(usize, usize, usize)> = (0..total)
            .filter_map(|slot| {
                let j = slot_key(cfg, index_row, vis, kr, slot)?;
                Some((slot, j, key_row(cfg, block_table, kvh, j)?))
            })
            .collect();
        let scores: Vec<f64> = used
            .iter()
            .map(|&(_, _, off)| {
                let dot: f64 = qrow
                    .iter()
                    .zip(&k[off..off + d])
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum();
                dot * f64::from(cfg.attn.scale)
            })
            .collect();
        let (p, lse) = softmax(&scores);
        let mut acc = vec![0f64; d];
        for (&(slot, j, off), &pj) in used.iter().zip(&p) {
            r.kept[row * total + slot] = j as u32;
            r.probs[row * total + slot] = pj as f32;
            if lse != f64::NEG_INFINITY {
                for (a, &x) in acc.iter_mut().zip(&v[off..off + d]) {
                    *a += pj * f64::from(x);
                }
            }
        }
        for (o, a) in r.out[row * d..][..d].iter_mut().zip(acc) {
            *o = a as f32;
        }
        r.lse[row] = lse as f32;
    }
    Ok(r)
}
