//! CPU reference of `rng_fill`: the same Philox words, the same conversions.

use crate::kernels::rng_fill::{Distribution, RngKey};
use crate::philox;

/// Raw Philox words: element `i` is word `i % 4` of block `key.counter + i / 4`.
pub fn rng_fill_bits(len: usize, key: RngKey) -> Vec<u32> {
    (0..len.div_ceil(4) as u64)
        .flat_map(|b| philox::block(key.seed, key.stream, key.counter.wrapping_add(b)))
        .take(len)
        .collect()
}

/// Floats drawn as the GPU draws them. `Uniform` is bit-identical to the GPU; `Normal` and
/// `Gumbel` go through `ln`/`cos`/`sin`, whose last bits differ between devices (WGSL allows
/// a few ULP), see `tests/rng_fill.rs` for the tolerance.
pub fn rng_fill_f32(len: usize, key: RngKey, dist: Distribution) -> Vec<f32> {
    let words = rng_fill_bits(len.next_multiple_of(4), key);
    let u: Vec<f32> = words.iter().map(|&w| philox::uniform_open01(w)).collect();
    let mut out: Vec<f32> = match dist {
        Distribution::Bits => words.iter().map(|&w| f32::from_bits(w)).collect(),
        Distribution::Uniform => u,
        Distribution::Gumbel => u.iter().map(|&x| philox::gumbel_from_uniform(x)).collect(),
        Distribution::Normal => u
            .chunks_exact(2)
            .flat_map(|p| philox::normal_pair(p[0], p[1]))
            .collect(),
    };
    out.truncate(len);
    out
}
