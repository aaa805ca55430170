//! CPU reference of `leverage_scores` in f64: Gram matrix, the same relative ridge, Cholesky,
//! `σ_i = |L⁻¹ k_i|²`.

use crate::error::{Error, Result};
use crate::kernels::leverage_scores::LeverageConfig;

/// `σ [heads, cap]` for keys `[0, n)` of every head (entries past `n` are 0).
pub fn leverage_scores(k: &[f32], cfg: &LeverageConfig, n: usize) -> Result<Vec<f64>> {
    cfg.validate()?;
    let (d, cap) = (cfg.dim, cfg.cap);
    if k.len() < cfg.heads * cap * d || n > cap {
        return Err(Error::shape(
            "k",
            format!("[{}, {cap}, {d}] with n ≤ {cap}", cfg.heads),
            k.len(),
        ));
    }
    let mut sigma = vec![0f64; cfg.heads * cap];
    for h in 0..cfg.heads {
        let key = |i: usize| &k[(h * cap + i) * d..][..d];
        let mut g = vec![0f64; d * d];
        for i in 0..n {
            let r = key(i);
            for a in 0..d {
                for b in 0..d {
                    g[a * d + b] += f64::from(r[a]) * f64::from(r[b]);
                }
            }
        }
        let tr: f64 = (0..d).map(|a| g[a * d + a]).sum();
        // The kernel's rule: a trace past the f32 range (or NaN) makes the head's scores NaN.
        if !(tr as f32).is_finite() {
            sigma[h * cap..][..n].fill(f64::NAN);
            continue;
        }
        let lambda = f64::from(cfg.ridge) * (tr / d as f64).max(1e-30);
        for a in 0..d {
            g[a * d + a] += lambda;
        }
        let l = cholesky(&g, d);
        for i in 0..n {
            // Forward substitution L u = k_i.
            let r = key(i);
            let mut u = vec![0f64; d];
            for a in 0..d {
                let s: f64 = (0..a).map(|b| l[a * d + b] * u[b]).sum();
                u[a] = (f64::from(r[a]) - s) / l[a * d + a];
            }
            sigma[h * cap + i] = u.iter().map(|x| x * x).sum();
        }
    }
    Ok(sigma)
}

/// Lower Cholesky factor of the symmetric positive definite `a` (`d × d`, row-major).
pub fn cholesky(a: &[f64], d: usize) -> Vec<f64> {
    let mut l = vec![0f64; d * d];
    for j in 0..d {
        let s: f64 = (0..j).map(|c| l[j * d + c] * l[j * d + c]).sum();
        l[j * d + j] = (a[j * d + j] - s).max(0.0).sqrt();
        for i in j + 1..d {
            let s: f64 = (0..j).map(|c| l[i * d + c] * l[j * d + c]).sum();
            l[i * d + j] = (a[i * d + j] - s) / l[j * d + j];
        }
    }
    l
}
