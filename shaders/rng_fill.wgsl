// rng_fill: fills a buffer with Philox noise. Invocation b computes counter block
// `counter + b` (one Philox call, four words) and writes elements 4b..4b+3, so element i of a
// buffer under (seed, stream) is the same on every device and on the CPU.

//! include shared/common.wgsl
//! include shared/rng.wgsl

struct RngFillParams {
    len: u32,
    seed_lo: u32,
    seed_hi: u32,
    stream_lo: u32,
    stream_hi: u32,
    counter_lo: u32,
    counter_hi: u32,
    // 0 = raw u32 bits, 1 = uniform (0,1), 2 = standard normal, 3 = Gumbel(0,1)
    distribution: u32,
}

const DIST_BITS: u32 = 0u;
const DIST_UNIFORM: u32 = 1u;
const DIST_NORMAL: u32 = 2u;
const DIST_GUMBEL: u32 = 3u;
const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: RngFillParams;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(WG)
fn rng_fill(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let block = linear_workgroup(wid, nwg) * WG + lid;
    let first = block * 4u;
    if (first >= params.len) {
        return;
    }
    // 64-bit counter = base + block, carried by hand.
    let lo = params.counter_lo + block;
    let hi = params.counter_hi + select(0u, 1u, lo < block);
    let w = philox4x32_10(
        vec4<u32>(lo, hi, params.stream_lo, params.stream_hi),
        vec2<u32>(params.seed_lo, params.seed_hi),
    );
    var v: vec4<u32>;
    switch params.distribution {
        case DIST_UNIFORM: {
            v = bitcast<vec4<u32>>(vec4<f32>(
                uniform_open01(w.x), uniform_open01(w.y), uniform_open01(w.z), uniform_open01(w.w)));
        }
        case DIST_NORMAL: {
            let a = normal_pair(uniform_open01(w.x), uniform_open01(w.y));
            let b = normal_pair(uniform_open01(w.z), uniform_open01(w.w));
            v = bitcast<vec4<u32>>(vec4<f32>(a, b));
        }
        case DIST_GUMBEL: {
            v = bitcast<vec4<u32>>(vec4<f32>(
                gumbel_from_uniform(uniform_open01(w.x)), gumbel_from_uniform(uniform_open01(w.y)),
                gumbel_from_uniform(uniform_open01(w.z)), gumbel_from_uniform(uniform_open01(w.w))));
        }
        default: {
            v = w;
        }
    }
    for (var j = 0u; j < 4u; j++) {
        if (first + j < params.len) {
            out[first + j] = v[j];
        }
    }
}
