//! Philox 4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel Random Numbers: As Easy as 1, 2, 3",
//! SC'11), bit-identical to `shaders/shared/rng.wgsl`.
//!
//! Counter-based: a draw is a pure function of `(seed, stream, counter)`, so sample `i` of row
//! `r` is the same number on every GPU and on the CPU, with no generator state to share.
//! The counter block is `[counter_lo, counter_hi, stream_lo, stream_hi]`, the key
//! `[seed_lo, seed_hi]`.
//!
//! ```
//! use knn_attention::philox;
//! // Random123's known-answer vector for a zero counter and key.
//! assert_eq!(philox::philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
//! let u = philox::uniform_open01(u32::MAX);
//! assert!(u > 0.0 && u < 1.0);
//! ```

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Ten Philox4x32 rounds on counter `ctr` under key `key` (the Random123 definition).
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
        }
        let p0 = u64::from(M0) * u64::from(c[0]);
        let p1 = u64::from(M1) * u64::from(c[2]);
        c = [
            (p1 >> 32) as u32 ^ c[1] ^ k[0],
            p1 as u32,
            (p0 >> 32) as u32 ^ c[3] ^ k[1],
            p0 as u32,
        ];
    }
    c
}

/// The four words of block `counter` in stream `stream` under `seed`.
pub fn block(seed: u64, stream: u64, counter: u64) -> [u32; 4] {
    philox4x32_10(
        [
            counter as u32,
            (counter >> 32) as u32,
            stream as u32,
            (stream >> 32) as u32,
        ],
        [seed as u32, (seed >> 32) as u32],
    )
}

/// Uniform in the open interval (0, 1): `((x >> 8) | 1) · 2⁻²⁴`, an odd multiple of 2⁻²⁴,
/// exact in f32 on every device. Smallest value 2⁻²⁴, largest 1 − 2⁻²⁴, so `ln u` is finite.
pub fn uniform_open01(x: u32) -> f32 {
    ((x >> 8) | 1) as f32 * (1.0 / 16_777_216.0)
}

/// Standard exponential `−ln u`. For `u > 15/16` the series `−ln(1 − y) = y + y²/2 + …` on
/// the exact `y = 1 − u` is used, because GPU `log` is only accurate to an absolute 2⁻²¹ near
/// 1 (WGSL spec), which would destroy small exponentials (and Gumbels near their maximum).
pub fn exponential_from_uniform(u: f32) -> f32 {
    if u > 0.9375 {
        let y = 1.0 - u;
        y * (1.0
            + y * (0.5
                + y * (0.333_333_34
                    + y * (0.25
                        + y * (0.2 + y * (0.166_666_67 + y * (0.142_857_15 + y * 0.125)))))))
    } else {
        -u.ln()
    }
}

/// Standard Gumbel(0, 1) from an open uniform, by inversion: `−ln(−ln u)`.
pub fn gumbel_from_uniform(u: f32) -> f32 {
    -exponential_from_uniform(u).ln()
}

/// Two independent standard normals from two open uniforms (Box–Muller), angle in [−π, π].
pub fn normal_pair(u1: f32, u2: f32) -> [f32; 2] {
    let r = (2.0 * exponential_from_uniform(u1)).sqrt();
    let theta = std::f32::consts::TAU * u2 - std::f32::consts::PI;
    [r * theta.cos(), r * theta.sin()]
}
