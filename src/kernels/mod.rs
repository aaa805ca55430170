//! GPU kernels, one module per kernel (see `shaders/`, `src/reference/`, `tests/`).

pub mod rng_fill;
pub mod topk;
