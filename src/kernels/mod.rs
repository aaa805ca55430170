//! GPU kernels, one module per kernel (see `shaders/`, `src/reference/`, `tests/`).

pub(crate) mod attention_scores;
pub mod dense_attention;
pub mod dense_attention_backward;
pub mod gather_attention;
pub mod gumbel_max;
pub mod gumbel_top_l;
pub mod lazy_gumbel;
pub mod lev_attention;
pub mod leverage_scores;
pub mod rng_fill;
pub mod sampling_attention;
pub mod sparse_attention_backward;
pub mod topk;
pub mod topk_attention;
pub mod topk_baseline;
