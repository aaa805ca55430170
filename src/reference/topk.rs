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
        // (inverted key, index) packed in a u64: ascending order is descending key, then
        // ascending index, a total order, so a partial selection then a sort of the kept ones
        // is exact (and O(n + k log k) instead of a sort of the whole row).
        let mut keyed: Vec<u64> = data
            .iter()
            .enumerate()
            .map(|(i, &x)| (u64::from(!order_key(x, cfg.order)) << 32) | i as u64)
            .collect();
        let kept = k.min(len);
        if kept < len {
            keyed.select_nth_unstable(kept);
        }
        keyed[..kept].sort_unstable();
        for (slot, &packed) in keyed[..kept].iter().enumerate() {
            let i = packed as u32;
            r.values[row * k + slot] = data[i as usize];
            r.indices[row * k + slot] = i;
        }
        r.counts[row] = kept as u32;
    }
    Ok(r)
}

/// `result` (of `cfg`, `sorted: false`) with each row listed best-first, ties by index and
/// padding slots (index `u32::MAX`) last: the order [`topk`] uses, so an unsorted GPU result
/// can be compared with it entry by entry.
pub fn best_first(result: &TopkResult, cfg: &TopkConfig) -> TopkResult {
    let mut r = result.clone();
    let k = cfg.k;
    for (indices, values) in r.indices.chunks_mut(k).zip(r.values.chunks_mut(k)) {
        let mut pairs: Vec<(u32, f32)> = indices
            .iter()
            .copied()
            .zip(values.iter().copied())
            .collect();
        let key = |i: u32, v: f32| {
            if i == u32::MAX {
                0
            } else {
                order_key(v, cfg.order)
            }
        };
        pairs.sort_by_key(|&(i, v)| (std::cmp::Reverse(key(i, v)), i));
        for (slot, (i, v)) in pairs.into_iter().enumerate() {
            indices[slot] = i;
            values[slot] = v;
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, spelled out: sort every index of the row by (key descending, index
    /// ascending) and keep the first k.
    fn by_full_sort(data: &[f32], k: usize, order: Order) -> Vec<u32> {
        let mut idx: Vec<u32> = (0..data.len() as u32).collect();
        idx.sort_by_key(|&i| (std::cmp::Reverse(order_key(data[i as usize], order)), i));
        idx.truncate(k);
        idx
    }

    const SPECIAL: [f32; 8] = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        1.0e-40, // denormal
        -1.0e-40,
        1.0,
    ];

    proptest! {
        /// Selection then sorting the kept entries gives exactly the full sort's prefix, with
        /// heavy ties, NaN, ±inf, ±0 and denormals in the rows.
        #[test]
        fn partial_selection_equals_the_full_sort(
            row in prop::collection::vec(
                prop_oneof![(-3i32..3).prop_map(|v| v as f32), prop::sample::select(&SPECIAL[..])],
                1..300,
            ),
            kf in 0.0f64..=1.0,
            smallest: bool,
        ) {
            let n = row.len();
            let k = ((n as f64 * kf) as usize).clamp(1, n);
            let order = if smallest { Order::Smallest } else { Order::Largest };
            let cfg = TopkConfig { rows: 1, n, k, order, ..Default::default() };
            let r = topk(&row, &cfg, 0, None).unwrap();
            let want = by_full_sort(&row, k, order);
            prop_assert_eq!(&r.indices, &want);
            for (v, &i) in r.values.iter().zip(&want) {
                prop_assert_eq!(v.to_bits(), row[i as usize].to_bits());
            }
        }
    }
}
