//! CPU reference of `topk`, with the same ordering rules (see [`crate::kernels::topk`]).

use crate::error::Result;
use crate::kernels::topk::{Order, TopkConfig, TopkResult};

/// The u32 key the kernel sorts by: larger key = better. NaN maps to 0, below every number
/// in both orders; −0.0 and +0.0 map to the same key.
pub fn order_key(x: f32, order: Order) -> u32 {
    if x.is_nan() {
        return 0;
    }
    let bits = if x == 0.0 { 0 } else { x.to_bits() };
    let key = if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    };
    match order {
        Order::Largest => key,
        Order::Smallest => !key,
    }
}

/// Top-k of every row of `scores` (read from `offset` with the config's stride), sorted
/// best-first with ties to the smaller index; `lengths` as in the kernel. The `sorted` flag is
/// ignored: the reference is always sorted.
///
/// ```
/// use knn_attention::kernels::topk::TopkConfig;
/// use knn_attention::reference::topk::topk;
/// let cfg = TopkConfig { rows: 1, n: 5, k: 3, ..Default::default() };
/// let r = topk(&[2.0, f32::NAN, 7.0, 2.0, -0.0], &cfg, 0, None).unwrap();
/// assert_eq!(r.indices, vec![2, 0, 3]); // 7, then the tied 2.0s by index; NaN never first
/// assert_eq!(r.counts, vec![3]);
/// ```
pub fn topk(
    scores: &[f32],
    cfg: &TopkConfig,
    offset: usize,
    lengths: Option<&[u32]>,
) -> Result<TopkResult> {
    cfg.validate_input(scores.len(), offset, lengths.map(<[u32]>::len))?;
    let (k, n, stride) = (cfg.k, cfg.n, cfg.stride());
    let pad = match cfg.order {
        Order::Largest => f32::NEG_INFINITY,
        Order::Smallest => f32::INFINITY,
    };
    let mut r = TopkResult {
        values: vec![pad; cfg.rows * k],
        indices: vec![u32::MAX; cfg.rows * k],
        counts: vec![0; cfg.rows],
    };
    for row in 0..cfg.rows {
        let len = lengths.map_or(n, |l| (l[row] as usize).min(n));
        let data = &scores[offset + row * stride..][..len];
        let mut idx: Vec<u32> = (0..len as u32).collect();
        // Descending key, then ascending index.
        idx.sort_by_key(|&i| (std::cmp::Reverse(order_key(data[i as usize], cfg.order)), i));
        let kept = k.min(len);
        for (slot, &i) in idx[..kept].iter().enumerate() {
            r.values[row * k + slot] = data[i as usize];
            r.indices[row * k + slot] = i;
        }
        r.counts[row] = kept as u32;
    }
    Ok(r)
}
