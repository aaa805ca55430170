// gumbel_max: L exact samples per row from softmax(scores / T) by the Gumbel-max trick,
// argmax_j (s_j / T + G_j), reading every entry of the row (the baseline the lazy sampler
// beats). Two passes, no workgroup waits on another:
//   gumbel_max_partial (rows × chunks): per chunk and sample, the best (value, index);
//   gumbel_max_merge (rows × samples threads): the best over the chunks.
// NaN and −∞ scores are never drawn; a row with no finite score draws NO_KEY.

//! include shared/common.wgsl
//! include shared/gumbel.wgsl

struct GumbelMaxParams {
    rows: u32,
    n: u32,
    stride: u32,
    samples: u32,
    seed_lo: u32,
    seed_hi: u32,
    has_lengths: u32,
    chunk: u32,        // entries per partial workgroup (multiple of 4 * WG)
    chunks: u32,
    inv_temp: f32,
    row0: u32,         // RNG row of this call's row 0
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: GumbelMaxParams;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> lengths: array<u32>;
@group(0) @binding(3) var<storage, read_write> partial: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read_write> samples: array<u32>;

fn row_len(row: u32) -> u32 {
    if (p.has_lengths != 0u) {
        return min(lengths[row], p.n);
    }
    return p.n;
}

@compute @workgroup_size(256)
fn gumbel_max_partial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = linear_workgroup(wid, nwg);
    if (g >= p.rows * p.chunks) {
        return;
    }
    let row = g / p.chunks;
    let chunk = g % p.chunks;
    let len = row_len(row);
    let start = chunk * p.chunk;
    let end = min(start + p.chunk, len);
    let seed = vec2<u32>(p.seed_lo, p.seed_hi);
    for (var l = 0u; l < p.samples; l++) {
        var bv = neg_inf();
        var bj = NO_KEY;
        // Four consecutive keys share one Philox block.
        for (var j0 = start + 4u * lid; j0 < end; j0 += 4u * WG) {
            let w = philox_at(seed, p.row0 + row, l, j0 >> 2u);
            for (var c = 0u; c < 4u; c++) {
                let j = j0 + c;
                if (j < end) {
                    let s = scores[row * p.stride + j];
                    if (s > neg_inf()) {
                        let v = s * p.inv_temp + gumbel_from_uniform(uniform_open01(w[c]));
                        if (ranks_before(v, j, bv, bj)) {
                            bv = v;
                            bj = j;
                        }
                    }
                }
            }
        }
        let best = best_in_workgroup(lid, bv, bj);
        if (lid == 0u) {
            partial[(row * p.chunks + chunk) * p.samples + l] = best;
        }
    }
}

@compute @workgroup_size(256)
fn gumbel_max_merge(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = linear_workgroup(wid, nwg) * WG + lid;
    if (t >= p.rows * p.samples) {
        return;
    }
    let row = t / p.samples;
    let l = t % p.samples;
    var bv = neg_inf();
    var bj = NO_KEY;
    for (var c = 0u; c < p.chunks; c++) {
        let e = partial[(row * p.chunks + c) * p.samples + l];
        let v = bitcast<f32>(e.x);
        if (ranks_before(v, e.y, bv, bj)) {
            bv = v;
            bj = e.y;
        }
    }
    samples[t] = bj;
}
