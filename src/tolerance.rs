//! Tolerances for comparing GPU results with the CPU references, in one place.
//!
//! The references accumulate in f64; the kernels accumulate in f32 and use the GPU's `exp`
//! and `log` (WGSL allows 3 ulp + ~2^-21 absolute for these). For scores of magnitude ≤ ~30
//! and head dims ≤ 256, an f32 dot product is off by at most ~d·2^-24·|q||k| relative to
//! its magnitude, which moves a probability by the same relative amount; outputs are convex
//! combinations of V rows, so their error is bounded by that times max|v|. The constants
//! below leave a 10× margin over what the test data shows.
//!
//! Range: the kernels hold scores, sums and Gram matrices in f32. A value past the f32 range
//! (a score |q·k·scale| above ~3.4e38, or ~1e19-sized entries squared) is ±∞ on the GPU,
//! which the NaN/∞ rules then apply to, while the f64 reference may still see a finite
//! number; no tolerance covers that, and the tests do not compare there. Leverage scores
//! are the exception: the reference applies the kernel's overflow rule (NaN for the head).

/// `|got − want| ≤ abs + rel·|want|`, element-wise. NaN matches only NaN; ±∞ only itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub abs: f32,
    pub rel: f32,
}

/// Attention outputs, lse and probabilities (f32 or f16 storage, the reference fed the same
/// f16-rounded inputs).
pub const ATTENTION: Tolerance = Tolerance {
    abs: 2e-5,
    rel: 2e-4,
};

/// One element that is out of tolerance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mismatch {
    pub index: usize,
    pub got: f32,
    pub want: f32,
}

impl Tolerance {
    /// True when `got` is within tolerance of `want`.
    pub fn close(&self, got: f32, want: f32) -> bool {
        if want.is_nan() || got.is_nan() {
            return want.is_nan() && got.is_nan();
        }
        if want.is_infinite() || got.is_infinite() {
            return want == got;
        }
        (got - want).abs() <= self.abs + self.rel * want.abs()
    }

    /// The first element out of tolerance, if any (lengths must match).
    pub fn first_mismatch(&self, got: &[f32], want: &[f32]) -> Option<Mismatch> {
        if got.len() != want.len() {
            return Some(Mismatch {
                index: got.len().min(want.len()),
                got: f32::NAN,
                want: f32::NAN,
            });
        }
        got.iter()
            .zip(want)
            .position(|(&g, &w)| !self.close(g, w))
            .map(|index| Mismatch {
                index,
                got: got[index],
                want: want[index],
            })
    }
}
