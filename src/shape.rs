//! Attention tensor shapes shared by the kernels and the CPU references.

use crate::error::{Error, Result};

/// Which keys a query may see.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mask {
    /// Every query sees every key (encoders).
    #[default]
    None,
    /// Query `i` sees keys `j ≤ i + offset`. For a prefill chunk of `n_q` queries appended to
    /// a cache, `offset = n_kv − n_q`; plain causal self-attention has `offset = 0`.
    Causal { offset: usize },
}

impl Mask {
    /// Number of keys query `i` sees among `n_kv`.
    pub fn visible_keys(self, i: usize, n_kv: usize) -> usize {
        match self {
            Mask::None => n_kv,
            // Saturating: an offset past every key just sees them all.
            Mask::Causal { offset } => i.saturating_add(offset).saturating_add(1).min(n_kv),
        }
    }
}

/// Most elements of one attention tensor: kernels index with u32 and reserve the top half.
pub const MAX_ELEMENTS: usize = u32::MAX as usize / 2;

/// The product of `dims`, `None` where it overflows.
pub(crate) fn elements(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// Elements spanned by `rows` rows of `n` entries `stride` apart, `(rows − 1)·stride + n`
/// (`n` for no rows), `None` where it overflows.
pub(crate) fn row_span(rows: usize, stride: usize, n: usize) -> Option<usize> {
    rows.saturating_sub(1).checked_mul(stride)?.checked_add(n)
}

/// Shape of one multi-head attention call. Tensors are dense row-major:
/// `q, out: [batch, heads_q, n_q, head_dim]`, `k, v: [batch, heads_kv, n_kv, head_dim]`,
/// `lse: [batch, heads_q, n_q]`. Grouped-query attention: query head `h` reads key/value
/// head `h / (heads_q / heads_kv)`, so `heads_q` must be a multiple of `heads_kv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    pub heads_q: usize,
    pub heads_kv: usize,
    pub n_q: usize,
    pub n_kv: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    /// Single-batch, single-group shape (`heads_q == heads_kv`).
    pub fn new(heads: usize, n_q: usize, n_kv: usize, head_dim: usize) -> Self {
        AttentionShape {
            batch: 1,
            heads_q: heads,
            heads_kv: heads,
            n_q,
            n_kv,
            head_dim,
        }
    }

    /// Elements of `q` (and of `out`).
    pub fn q_len(&self) -> usize {
        self.batch * self.heads_q * self.n_q * self.head_dim
    }

    /// Elements of `k` (and of `v`).
    pub fn kv_len(&self) -> usize {
        self.batch * self.heads_kv * self.n_kv * self.head_dim
    }

    /// Number of query rows, `batch · heads_q · n_q` (elements of `lse`).
    pub fn rows(&self) -> usize {
        self.batch * self.heads_q * self.n_q
    }

    /// Key/value head read by query head `h`.
    pub fn kv_head(&self, h: usize) -> usize {
        h / (self.heads_q / self.heads_kv)
    }

    /// Checks the shape itself and the lengths of `q`, `k`, `v`.
    pub fn validate(&self, q: usize, k: usize, v: usize) -> Result<()> {
        self.check_dims()?;
        for (arg, want, got) in [
            ("q", self.q_len(), q),
            ("k", self.kv_len(), k),
            ("v", self.kv_len(), v),
        ] {
            if want != got {
                return Err(Error::shape(
                    arg,
                    format!("{want} elements for {self:?}"),
                    got,
                ));
            }
        }
        Ok(())
    }

    /// Checks the shape alone: a non-zero head size, `heads_kv` dividing `heads_q`, and
    /// tensors of fewer than 2^31 elements (kernels index with u32 and reserve the top half for
    /// "no key"; a zero dimension counts as one, so it cannot hide absurd others). After it,
    /// [`q_len`](Self::q_len), [`kv_len`](Self::kv_len) and [`rows`](Self::rows) cannot
    /// overflow.
    pub fn check_dims(&self) -> Result<()> {
        if self.head_dim == 0 {
            return Err(Error::shape("head_dim", "> 0", 0));
        }
        if self.heads_kv == 0 || !self.heads_q.is_multiple_of(self.heads_kv) {
            return Err(Error::shape(
                "heads_kv",
                format!("a non-zero divisor of heads_q = {}", self.heads_q),
                self.heads_kv,
            ));
        }
        for (arg, dims) in [
            ("q", [self.batch, self.heads_q, self.n_q, self.head_dim]),
            ("k", [self.batch, self.heads_kv, self.n_kv, self.head_dim]),
        ] {
            // A zero dimension must not hide absurd others: loops still run over them.
            if elements(&dims.map(|d| d.max(1))).is_none_or(|l| l > MAX_ELEMENTS) {
                return Err(Error::shape(
                    arg,
                    "fewer than 2^31 elements",
                    format!("{dims:?}"),
                ));
            }
        }
        Ok(())
    }
}
