// lazy_gumbel: exact samples from softmax(scores / T) that touch only the row's top-k set S
// and a few tail keys (Mussmann et al.; kNN Attention Demystified). One workgroup per row:
//   1. sort S's key indices (to find tail keys by rank), bitonic, in workgroup memory;
//   2. per sample l: M = max over S of s_j / T + G_j (the same keyed Gumbels as gumbel_max);
//   3. per sample (one thread each): every tail key has s_j <= s_min, so it can only win if
//      G_j > B = M - s_min / T, which happens independently with q = 1 - exp(-e^-B). The tail
//      keys that do are found by geometric skipping: gaps floor(E / e^-B) with E ~ Exp(1)
//      are exactly the failure runs of Bernoulli(q) trials, so the count is Binomial(n - k, q)
//      and the positions a uniform subset, drawn in O(count + 1). Each such key gets
//      G = -ln E' with E' ~ Exp(1) conditioned on E' < e^-B (truncated by inversion), and
//      competes with M.
// Draws for the tail use Philox counters (l | 2^31) << 32 | i, disjoint from the key noise.

//! include shared/common.wgsl
//! include shared/gumbel.wgsl

struct LazyGumbelParams {
    rows: u32,         // rows in this dispatch
    n: u32,
    stride: u32,
    samples: u32,
    seed_lo: u32,
    seed_hi: u32,
    has_lengths: u32,
    k: u32,            // slots per row of the top-k inputs
    sort_size: u32,    // power of two >= k, <= MAX_SORT
    inv_temp: f32,
    tiled: u32,        // 1: rows are score-block tile rows (see rng_row)
    tile0: u32,
    n_q: u32,
}

const WG: u32 = 256u;
const MAX_SORT: u32 = 2048u;

@group(0) @binding(0) var<uniform> p: LazyGumbelParams;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> lengths: array<u32>;
@group(0) @binding(3) var<storage, read> top_values: array<f32>;
@group(0) @binding(4) var<storage, read> top_indices: array<u32>;
@group(0) @binding(5) var<storage, read> top_counts: array<u32>;
@group(0) @binding(6) var<storage, read_write> samples: array<u32>;
@group(0) @binding(7) var<storage, read_write> touched: array<u32>;

var<workgroup> sorted: array<u32, MAX_SORT>;
var<workgroup> best_v: array<f32, WG>;
var<workgroup> best_j: array<u32, WG>;

// Global row id (RNG stream and output row) of dispatch row r; NO_KEY for padding rows.
fn rng_row(r: u32) -> u32 {
    if (p.tiled == 0u) {
        return p.tile0 + r;
    }
    let tph = (p.n_q + 15u) / 16u;
    let tile = p.tile0 + r / 16u;
    let i = (tile % tph) * 16u + r % 16u;
    if (i >= p.n_q) {
        return NO_KEY;
    }
    return (tile / tph) * p.n_q + i;
}

// The t-th key (0-based, increasing) of [0, n) that is not in the first c sorted entries.
fn tail_key(t: u32, c: u32) -> u32 {
    var lo = 0u;
    var hi = c;
    // Count entries with sorted[i] - i <= t (non-decreasing in i for distinct keys).
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (sorted[mid] - mid <= t) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return t + lo;
}

@compute @workgroup_size(256)
fn lazy_gumbel(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let grow = rng_row(row);
    if (grow == NO_KEY) {
        return;
    }
    var len = p.n;
    if (p.has_lengths != 0u) {
        len = min(lengths[row], p.n);
    }
    let c = min(top_counts[row], p.k);
    let seed = vec2<u32>(p.seed_lo, p.seed_hi);

    // 1. Sort S's indices ascending (padding NO_KEY sorts last).
    for (var i = lid; i < p.sort_size; i += WG) {
        sorted[i] = select(NO_KEY, top_indices[row * p.k + i], i < c);
    }
    workgroupBarrier();
    for (var size = 2u; size <= p.sort_size; size *= 2u) {
        for (var stride = size / 2u; stride > 0u; stride /= 2u) {
            for (var t = lid; t < p.sort_size / 2u; t += WG) {
                let a = 2u * t - (t & (stride - 1u));
                let b = a + stride;
                let up = (a & size) == 0u;
                let x = sorted[a];
                let y = sorted[b];
                if ((x > y) == up) {
                    sorted[a] = y;
                    sorted[b] = x;
                }
            }
            workgroupBarrier();
        }
    }

    let minus_inf = neg_inf();
    let s_min = select(minus_inf, top_values[row * p.k + c - 1u], c > 0u);
    // The tail can win only if S's weakest score is a finite number.
    let has_tail = c < len && s_min > minus_inf && s_min < pos_inf();
    let n_tail = len - c;

    for (var l0 = 0u; l0 < p.samples; l0 += WG) {
        let batch = min(WG, p.samples - l0);
        // 2. Perturbed maximum over S for each sample of the batch.
        for (var b = 0u; b < batch; b++) {
            let l = l0 + b;
            var bv = minus_inf;
            var bj = NO_KEY;
            for (var slot = lid; slot < c; slot += WG) {
                let s = top_values[row * p.k + slot];
                let j = top_indices[row * p.k + slot];
                if (s > minus_inf) {
                    let v = s * p.inv_temp + gumbel_from_uniform(key_uniform(seed, grow, l, j));
                    if (ranks_before(v, j, bv, bj)) {
                        bv = v;
                        bj = j;
                    }
                }
            }
            let best = best_in_workgroup(lid, bv, bj);
            if (lid == 0u) {
                best_v[b] = bitcast<f32>(best.x);
                best_j[b] = best.y;
            }
        }
        workgroupBarrier();
        // 3. Tail keys, one thread per sample.
        if (lid < batch) {
            let l = l0 + lid;
            var bv = best_v[lid];
            var bj = best_j[lid];
            var count = 0u;
            if (has_tail) {
                let y = exp(-(bv - s_min * p.inv_temp));   // e^-B
                let q = one_minus_exp_neg(y);
                var pos = 0u;
                var i = 0u;
                loop {
                    let w = philox_at(seed, grow, l | 0x80000000u, i);
                    i += 1u;
                    let gap = exponential_from_uniform(uniform_open01(w.x)) / y;
                    if (gap >= f32(n_tail - pos)) {
                        break;
                    }
                    pos += u32(gap);
                    if (pos >= n_tail) {
                        break;
                    }
                    let key = tail_key(pos, c);
                    let g = -log(neg_log1m(uniform_open01(w.y) * q));
                    let v = scores[row * p.stride + key] * p.inv_temp + g;
                    count += 1u;
                    if (ranks_before(v, key, bv, bj)) {
                        bv = v;
                        bj = key;
                    }
                    pos += 1u;
                    if (pos >= n_tail) {
                        break;
                    }
                }
            }
            samples[grow * p.samples + l] = bj;
            touched[grow * p.samples + l] = count;
        }
        workgroupBarrier();
    }
}
