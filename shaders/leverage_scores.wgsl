// leverage_scores: per kv head, the ridge leverage score of every key,
//   sigma_i = k_i^T (K^T K + lambda I)^-1 k_i,
// in three passes, none waiting on another workgroup:
//   leverage_gram (heads x chunks): partial Gram matrices of key chunks [key0, key1);
//   leverage_factor (one workgroup per head): G (+)= sum of partials (kept for streaming),
//       Cholesky of G + lambda I in scratch, W = L^-1 by forward substitution;
//   leverage_apply (one thread per key): sigma_i = |W k_i|^2, and per head the number of
//       keys scored (so a top-k over sigma can skip stale entries past it).
// lambda = ridge * max(trace(G) / d, tiny): relative, so scaling K does not change sigma.
// K is [heads, cap, d] (cap = n_kv, the allocated keys per head); d <= 128.

//! include shared/common.wgsl

struct LeverageParams {
    heads: u32,
    cap: u32,          // keys allocated per head (row pitch of K and sigma)
    key0: u32,         // first key of this update
    key1: u32,         // one past the last key (gram: update range; apply: keys scored)
    chunk: u32,        // keys per gram workgroup
    chunks: u32,
    ridge: f32,
    accumulate: u32,   // 1: add the partials to the stored G; 0: replace it
    dim: u32,
}

const WG: u32 = 256u;
const MAX_DIM: u32 = 128u;
const PER_THREAD: u32 = MAX_DIM * MAX_DIM / WG;
const KEY_TILE: u32 = 16u;

@group(0) @binding(0) var<uniform> p: LeverageParams;
@group(0) @binding(1) var<storage, read> k_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;  // [heads, chunks, d, d]
@group(0) @binding(3) var<storage, read_write> gram: array<f32>;     // [heads, d, d]
@group(0) @binding(4) var<storage, read_write> work: array<f32>;     // [heads, 2, d, d]: L, W
@group(0) @binding(5) var<storage, read_write> sigma: array<f32>;    // [heads, cap]
@group(0) @binding(6) var<storage, read_write> scored: array<u32>;   // [heads]: keys scored

var<workgroup> k_tile: array<f32, 2048>;   // KEY_TILE x MAX_DIM

@compute @workgroup_size(256)
fn leverage_gram(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = linear_workgroup(wid, nwg);
    if (g >= p.heads * p.chunks) {
        return;
    }
    let head = g / p.chunks;
    let chunk = g % p.chunks;
    let d = p.dim;
    let dd = d * d;
    let start = p.key0 + chunk * p.chunk;
    let end = min(start + p.chunk, p.key1);
    var acc: array<f32, PER_THREAD>;
    for (var t0 = start; t0 < end; t0 += KEY_TILE) {
        for (var e = lid; e < KEY_TILE * d; e += WG) {
            let key = t0 + e / d;
            k_tile[e] = select(0.0, k_in[(head * p.cap + key) * d + e % d], key < end);
        }
        workgroupBarrier();
        for (var m = 0u; m < PER_THREAD; m++) {
            let e = lid + m * WG;
            if (e < dd) {
                let a = e / d;
                let b = e % d;
                var s = 0.0;
                for (var r = 0u; r < KEY_TILE; r++) {
                    s += k_tile[r * d + a] * k_tile[r * d + b];
                }
                acc[m] += s;
            }
        }
        workgroupBarrier();
    }
    for (var m = 0u; m < PER_THREAD; m++) {
        let e = lid + m * WG;
        if (e < dd) {
            partial[(head * p.chunks + chunk) * dd + e] = acc[m];
        }
    }
}

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn leverage_factor(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let head = linear_workgroup(wid, nwg);
    if (head >= p.heads) {
        return;
    }
    let d = p.dim;
    let dd = d * d;
    let gbase = head * dd;
    let lbase = head * 2u * dd;
    let wbase = lbase + dd;
    // G (+)= partials; trace for the ridge.
    var tr = 0.0;
    for (var e = lid; e < dd; e += WG) {
        var s = select(0.0, gram[gbase + e], p.accumulate != 0u);
        for (var c = 0u; c < p.chunks; c++) {
            s += partial[(head * p.chunks + c) * dd + e];
        }
        gram[gbase + e] = s;
        if (e / d == e % d) {
            tr += s;
        }
    }
    red[lid] = tr;
    workgroupBarrier();
    for (var off = WG / 2u; off > 0u; off /= 2u) {
        if (lid < off) {
            red[lid] += red[lid + off];
        }
        workgroupBarrier();
    }
    let lambda = p.ridge * max(red[0] / f32(d), 1e-30);
    // A trace past the f32 range (keys of norm around 1e19 and more) or NaN: the factor
    // would give silent zeros, so the head's scores are NaN instead (as in the reference).
    let overflow = (bitcast<u32>(red[0]) & 0x7F800000u) == 0x7F800000u;
    for (var e = lid; e < dd; e += WG) {
        work[lbase + e] = gram[gbase + e] + select(0.0, lambda, e / d == e % d);
    }
    storageBarrier();
    workgroupBarrier();
    // Right-looking Cholesky, lower triangle of work[lbase..] (columns in turn).
    for (var j = 0u; j < d; j++) {
        if (lid == 0u) {
            work[lbase + j * d + j] = sqrt(max(work[lbase + j * d + j], lambda * 1e-6));
        }
        storageBarrier();
        workgroupBarrier();
        let pivot = work[lbase + j * d + j];
        for (var i = j + 1u + lid; i < d; i += WG) {
            work[lbase + i * d + j] /= pivot;
        }
        storageBarrier();
        workgroupBarrier();
        let m = d - j - 1u;
        for (var e = lid; e < m * m; e += WG) {
            let i = j + 1u + e / m;
            let c = j + 1u + e % m;
            if (c <= i) {
                work[lbase + i * d + c] -= work[lbase + i * d + j] * work[lbase + c * d + j];
            }
        }
        storageBarrier();
        workgroupBarrier();
    }
    // W = L^-1: column c solves L w = e_c (w_i = 0 above the diagonal).
    for (var c = lid; c < d; c += WG) {
        for (var i = 0u; i < d; i++) {
            var w = 0.0;
            if (i >= c) {
                var s = select(0.0, 1.0, i == c);
                for (var j = c; j < i; j++) {
                    s -= work[lbase + i * d + j] * work[wbase + j * d + c];
                }
                w = s / work[lbase + i * d + i];
            }
            work[wbase + i * d + c] = w;
        }
    }
    storageBarrier();
    workgroupBarrier();
    if (overflow) {
        for (var e = lid; e < dd; e += WG) {
            work[wbase + e] = quiet_nan();
        }
    }
}

@compute @workgroup_size(256)
fn leverage_apply(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = linear_workgroup(wid, nwg) * WG + lid;
    if (t >= p.heads * p.key1) {
        return;
    }
    let head = t / p.key1;
    let key = t % p.key1;
    let d = p.dim;
    let wbase = head * 2u * d * d + d * d;
    let kb = (head * p.cap + key) * d;
    var s = 0.0;
    for (var a = 0u; a < d; a++) {
        var u = 0.0;
        for (var b = 0u; b <= a; b++) {
            u += work[wbase + a * d + b] * k_in[kb + b];
        }
        s += u * u;
    }
    sigma[head * p.cap + key] = s;
    if (key == 0u) {
        scored[head] = p.key1;
    }
}
