//! CPU reference of `lazy_gumbel`: the same top-k, the same Philox draws and the same f32
//! formulas as the shader, step for step.

use crate::error::{Error, Result};
use crate::kernels::gumbel_max::SamplerConfig;
use crate::kernels::lazy_gumbel::{LazyResult, MAX_K};
use crate::kernels::topk::TopkConfig;
use crate::philox;
use crate::reference::gumbel_max::{perturbed, ranks_before};
use crate::reference::topk::topk;

/// `−ln(1 − x)` for `x ∈ [0, 1)`, with a series where `1 − x` would lose digits.
pub fn neg_log1m(x: f32) -> f32 {
    if x < 0.0625 {
        x * (1.0
            + x * (0.5
                + x * (0.333_333_34
                    + x * (0.25
                        + x * (0.2 + x * (0.166_666_67 + x * (0.142_857_15 + x * 0.125)))))))
    } else {
        -(1.0 - x).ln()
    }
}

/// `1 − e^−y` for `y ≥ 0`, with a series for small `y`.
pub fn one_minus_exp_neg(y: f32) -> f32 {
    if y < 0.0625 {
        y * (1.0
            - y * (0.5
                - y * (0.166_666_67
                    - y * (0.041_666_668 - y * (0.008_333_334 - y * 0.001_388_888_9)))))
    } else {
        1.0 - (-y).exp()
    }
}

/// The `t`-th (0-based, increasing) key not in `sorted` (ascending, distinct):
/// `t + #{i : sorted[i] − i ≤ t}`, by binary search as in the shader.
pub fn tail_key(sorted: &[u32], t: usize) -> usize {
    let (mut lo, mut hi) = (0, sorted.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if sorted[mid] as usize - mid <= t {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    t + lo
}

/// Lazy Gumbel samples of every row (`k` keys perturbed, the tail visited lazily).
pub fn lazy_gumbel(
    scores: &[f32],
    cfg: &SamplerConfig,
    k: usize,
    lengths: Option<&[u32]>,
) -> Result<LazyResult> {
    cfg.validate_input(scores.len(), lengths.map(<[u32]>::len))?;
    if k == 0 || k > cfg.n.min(MAX_K) {
        return Err(Error::shape("k", format!("1 ≤ k ≤ min(n, {MAX_K})"), k));
    }
    let mut r = LazyResult {
        samples: Vec::with_capacity(cfg.rows * cfg.samples),
        touched: Vec::with_capacity(cfg.rows * cfg.samples),
    };
    for row in 0..cfg.rows {
        let len = lengths.map_or(cfg.n, |l| (l[row] as usize).min(cfg.n));
        let one = lazy_gumbel_row(&scores[row * cfg.stride()..][..len], cfg, k, row)?;
        r.samples.extend(one.samples);
        r.touched.extend(one.touched);
    }
    Ok(r)
}

/// `cfg.samples` lazy samples of one row of scores, drawn as row `stream` (the Philox
/// stream; the kernel uses the row's index in its call, or the query row in attention).
pub fn lazy_gumbel_row(
    data: &[f32],
    cfg: &SamplerConfig,
    k: usize,
    stream: usize,
) -> Result<LazyResult> {
    let len = data.len();
    let mut r = LazyResult {
        samples: vec![u32::MAX; cfg.samples],
        touched: vec![0; cfg.samples],
    };
    if len == 0 {
        return Ok(r);
    }
    let tcfg = TopkConfig {
        rows: 1,
        n: len,
        k: k.min(len),
        ..Default::default()
    };
    let top = topk(data, &tcfg, 0, None)?;
    let c = top.counts[0] as usize;
    let (vals, idx) = (&top.values[..c], &top.indices[..c]);
    let mut sorted = idx.to_vec();
    sorted.sort_unstable();
    let s_min = vals.last().copied().unwrap_or(f32::NEG_INFINITY);
    let has_tail = c < len && s_min.is_finite();
    let n_tail = len - c;
    for l in 0..cfg.samples {
        let (mut bv, mut bj) = (f32::NEG_INFINITY, u32::MAX);
        for (&s, &j) in vals.iter().zip(idx) {
            if let Some(v) = perturbed(cfg, s, stream, l, j as usize)
                && ranks_before(v, j, bv, bj)
            {
                (bv, bj) = (v, j);
            }
        }
        let mut count = 0;
        if has_tail {
            let y = (-(bv - s_min * cfg.inv_temp())).exp();
            let q = one_minus_exp_neg(y);
            let (mut pos, mut i) = (0usize, 0u64);
            loop {
                let w = philox::block(cfg.seed, stream as u64, (((l as u64) | 1 << 31) << 32) | i);
                i += 1;
                let gap = philox::exponential_from_uniform(philox::uniform_open01(w[0])) / y;
                if gap >= (n_tail - pos) as f32 {
                    break;
                }
                pos += gap as usize;
                if pos >= n_tail {
                    break;
                }
                let key = tail_key(&sorted, pos);
                let g = -neg_log1m(philox::uniform_open01(w[1]) * q).ln();
                let v = data[key] * cfg.inv_temp() + g;
                count += 1;
                if ranks_before(v, key as u32, bv, bj) {
                    (bv, bj) = (v, key as u32);
                }
                pos += 1;
                if pos >= n_tail {
                    break;
                }
            }
        }
        r.samples[l] = bj;
        r.touched[l] = count;
    }
    Ok(r)
}
