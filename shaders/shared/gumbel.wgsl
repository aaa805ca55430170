// Gumbel noise and helpers shared by the samplers (gumbel_max, gumbel_top_l, lazy_gumbel).
// Mirrors src/reference/gumbel_max.rs: the noise of key j in sample l of row r is word j % 4
// of Philox block (seed, stream = r, counter = l << 32 | j / 4), so the CPU and every GPU see
// the same uniforms. Draws of a lazy sampler's tail use counter = (l | 2^31) << 32 | i.

//! include shared/rng.wgsl

const NO_KEY: u32 = 0xFFFFFFFFu;

fn philox_at(seed: vec2<u32>, row: u32, hi: u32, lo: u32) -> vec4<u32> {
    return philox4x32_10(vec4<u32>(lo, hi, row, 0u), seed);
}

// Uniform of key j in sample l of row `row`.
fn key_uniform(seed: vec2<u32>, row: u32, l: u32, j: u32) -> f32 {
    let w = philox_at(seed, row, l, j >> 2u);
    return uniform_open01(w[j & 3u]);
}

// True when (v, j) ranks before (w, i): larger value, then smaller index. NaN never ranks
// first (comparisons with NaN are false), and NO_KEY loses every tie.
fn ranks_before(v: f32, j: u32, w: f32, i: u32) -> bool {
    return v > w || (v == w && j < i);
}

// -ln(1 - x) for x in [0, 1), accurate for small x, where 1 - x would lose the digits.
fn neg_log1m(x: f32) -> f32 {
    if (x < 0.0625) {
        return x * (1.0 + x * (0.5 + x * (0.33333334 + x * (0.25 + x * (0.2
            + x * (0.16666667 + x * (0.14285715 + x * 0.125)))))));
    }
    return -log(1.0 - x);
}

// 1 - exp(-y) for y >= 0, accurate for small y.
fn one_minus_exp_neg(y: f32) -> f32 {
    if (y < 0.0625) {
        return y * (1.0 - y * (0.5 - y * (0.16666667 - y * (0.041666668 - y * (0.008333334
            - y * 0.0013888889)))));
    }
    return 1.0 - exp(-y);
}

var<workgroup> red_v: array<f32, 256>;
var<workgroup> red_j: array<u32, 256>;

// Workgroup-wide best (value, index) of every invocation's (v, j), by ranks_before, returned
// to all invocations. Every invocation of a 256-wide workgroup must call it (barriers).
fn best_in_workgroup(lid: u32, v: f32, j: u32) -> vec2<u32> {
    red_v[lid] = v;
    red_j[lid] = j;
    workgroupBarrier();
    for (var off = 128u; off > 0u; off /= 2u) {
        if (lid < off && ranks_before(red_v[lid + off], red_j[lid + off], red_v[lid], red_j[lid])) {
            red_v[lid] = red_v[lid + off];
            red_j[lid] = red_j[lid + off];
        }
        workgroupBarrier();
    }
    let best = vec2<u32>(bitcast<u32>(red_v[0]), red_j[0]);
    workgroupBarrier();
    return best;
}
