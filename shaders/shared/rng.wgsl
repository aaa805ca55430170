// Philox 4x32-10 (Salmon et al., SC'11), bit-identical to `knn_attention::philox` in Rust.
// A sample is a pure function of (key = seed, counter = (counter, stream)): no state, so any
// kernel can draw "sample i of row r" without coordination.

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// Full 32x32 -> 64-bit product as (hi, lo), from 16-bit halves (WGSL has no u64).
fn philox_mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xFFFFu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xFFFFu;
    let b_hi = b >> 16u;
    let ll = a_lo * b_lo;
    let lh = a_lo * b_hi;
    let hl = a_hi * b_lo;
    let hh = a_hi * b_hi;
    let mid = (ll >> 16u) + (lh & 0xFFFFu) + (hl & 0xFFFFu);
    let hi = hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

// Ten rounds of Philox4x32 on counter `ctr` with key `key`.
fn philox4x32_10(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = ctr;
    var k = key;
    for (var round = 0u; round < 10u; round++) {
        if (round > 0u) {
            k = k + vec2<u32>(PHILOX_W0, PHILOX_W1);
        }
        let p0 = philox_mulhilo(PHILOX_M0, c.x);
        let p1 = philox_mulhilo(PHILOX_M1, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    }
    return c;
}

// Uniform in the open interval (0, 1): an odd multiple of 2^-24, exact in f32, so the CPU
// reference produces the same bits and `log(u)` is always finite.
fn uniform_open01(x: u32) -> f32 {
    return f32((x >> 8u) | 1u) * 5.9604645e-8;
}

// Standard exponential, -ln u. WGSL only promises log to an absolute 2^-21 near 1, which
// would wreck -ln u for u close to 1 (it can even round to 0), so there the series
// -ln(1 - y) = y + y^2/2 + ... on the exact y = 1 - u is used instead.
fn exponential_from_uniform(u: f32) -> f32 {
    if (u > 0.9375) {
        let y = 1.0 - u;
        return y * (1.0 + y * (0.5 + y * (0.33333334 + y * (0.25 + y * (0.2
            + y * (0.16666667 + y * (0.14285715 + y * 0.125)))))));
    }
    return -log(u);
}

// Standard Gumbel(0, 1) by inversion: -ln(-ln u).
fn gumbel_from_uniform(u: f32) -> f32 {
    return -log(exponential_from_uniform(u));
}

// Two independent standard normals by Box-Muller from two open uniforms. The angle stays in
// [-pi, pi], where WGSL bounds the error of sin and cos.
fn normal_pair(u1: f32, u2: f32) -> vec2<f32> {
    let r = sqrt(2.0 * exponential_from_uniform(u1));
    let theta = 6.2831855 * u2 - 3.1415927;
    return vec2<f32>(r * cos(theta), r * sin(theta));
}
