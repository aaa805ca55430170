// gumbel_top_l: L distinct samples without replacement from softmax(scores / T) per row: the
// L largest perturbed scores s_j / T + G_j (Gumbel-top-k; Vieira, Kool et al.). This pass
// writes the perturbed scores; the exact top-k kernel then picks the L best. The noise is
// sample 0's (shared/gumbel.wgsl), so the first pick equals gumbel_max's sample 0.
// NaN and -inf scores become NaN, which the top-k ranks last: a pick with a NaN value is not
// a sample (the row had fewer than L keys of non-zero probability).

//! include shared/common.wgsl
//! include shared/gumbel.wgsl

struct GumbelTopLParams {
    rows: u32,
    n: u32,
    stride: u32,
    seed_lo: u32,
    seed_hi: u32,
    inv_temp: f32,
}

@group(0) @binding(0) var<uniform> p: GumbelTopLParams;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read_write> perturbed: array<f32>;

// One thread per 4 consecutive keys of a row (one Philox block).
@compute @workgroup_size(256)
fn gumbel_perturb(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let quads = (p.n + 3u) / 4u;
    let t = linear_workgroup(wid, nwg) * 256u + lid;
    if (t >= p.rows * quads) {
        return;
    }
    let row = t / quads;
    let j0 = (t % quads) * 4u;
    let w = philox_at(vec2<u32>(p.seed_lo, p.seed_hi), row, 0u, j0 >> 2u);
    for (var c = 0u; c < 4u; c++) {
        let j = j0 + c;
        if (j < p.n) {
            let s = scores[row * p.stride + j];
            var v = quiet_nan();
            if (s > neg_inf()) {
                v = s * p.inv_temp + gumbel_from_uniform(uniform_open01(w[c]));
            }
            perturbed[row * p.n + j] = v;
        }
    }
}
