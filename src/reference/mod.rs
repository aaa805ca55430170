//! CPU oracles, one module per kernel, same names as `src/kernels/`. Public so users can
//! validate GPU results on their own data. Accumulation is in f64 where it matters.

pub mod dense_attention;
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
