// Body of sparse_attention_backward{,_f16}: the including file defines `alias Elem` (the
// storage of q, k, v; everything else is f32).
//
// Exact gradients of attention over fixed key sets (the kept keys and probabilities of a
// sparse forward), deterministic without float atomics.
//   sparse_backward_rows (one workgroup per query row): dP_ij = dO_i·v_j, D_i = Σ_j P_ij dP_ij
//       (= dO_i·o_i), dS_ij = P_ij (dP_ij − D_i), dQ_i = scale Σ_j dS_ij k_j; writes dS and each
//       slot's key as f32 (NaN for empty slots) for the transpose.
//   (host) exact top-k, smallest first, of every kv group's slot keys: a stable sort by key,
//       ties by slot position (row, then slot), so each key's entries come in row order.
//   sparse_backward_keys (one workgroup per key): its entries by binary search in the sorted
//       keys, then dV_j = Σ P_ij dO_i and dK_j = scale Σ dS_ij q_i, summed in that fixed order.
// A kv group's query rows are contiguous: heads h of one kv head are consecutive.
//
// Sampled mode (p.sample_weight = 1/L > 0; the random-walk estimator): the slots are L keys
// drawn from each row's softmax, each with weight 1/L instead of P_ij, and D_i = dO_i·o_i
// comes from the exact forward output (sparse_backward_d writes it to g1, later passes read it
// as `probs`), which keeps dQ and dK unbiased: E[(1/L) Σ_s f(j_s)] = Σ_j P_ij f(j) per row.

//! include shared/attention_common.wgsl

// Group 0 binding 2 (v) is in the rows pass's layout only; the keys and d passes bind group 1
// instead, so every pass stays within 8 storage buffers and no binding changes type between
// passes (which HLSL could not express).
@group(0) @binding(0) var<uniform> p: AttentionParams;
@group(0) @binding(1) var<storage, read> a_in: array<Elem>;      // rows: k; keys: q
@group(0) @binding(2) var<storage, read> v_in: array<Elem>;      // rows: v
@group(1) @binding(0) var<storage, read> aux: array<f32>;        // keys: sorted keys; d: O
@group(0) @binding(3) var<storage, read> d_out: array<f32>;
@group(0) @binding(4) var<storage, read> kept: array<u32>;      // rows: kept; keys: sorted slots
@group(0) @binding(5) var<storage, read> probs: array<f32>;
@group(0) @binding(6) var<storage, read_write> g1: array<f32>;  // rows: dq; keys: dk
@group(0) @binding(7) var<storage, read_write> ds: array<f32>;  // rows: write; keys: read
@group(0) @binding(8) var<storage, read_write> g2: array<f32>;  // rows: slot keys; keys: dv

const WG: u32 = 256u;

var<workgroup> do_vec: array<f32, 256>;
var<workgroup> red: array<f32, 256>;
var<workgroup> part: array<f32, 256>;

// Key of kept slot `e` in the rows pass: an index past the head's keys is an empty slot, as
// u32::MAX is, so a bad index can never read another head's rows.
fn kept_key(e: u32) -> u32 {
    let j = kept[e];
    return select(NO_KEY, j, j < p.n_kv);
}

fn slot_weight(e: u32) -> f32 {
    if (p.sample_weight > 0.0) {
        return p.sample_weight;
    }
    return probs[e];
}

// Sampled mode: D_i = dO_i·o_i into g1, one thread per row.
@compute @workgroup_size(256)
fn sparse_backward_d(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg) * WG + lid;
    if (row >= p.rows) {
        return;
    }
    var d = 0.0;
    for (var c = 0u; c < HEAD_DIM; c++) {
        d += d_out[row * HEAD_DIM + c] * aux[row * HEAD_DIM + c];
    }
    g1[row] = d;
}

@compute @workgroup_size(256)
fn sparse_backward_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let kvh = kv_head_of(row / p.n_q);
    do_vec[lid] = select(0.0, d_out[row * HEAD_DIM + lid], lid < HEAD_DIM);
    workgroupBarrier();
    // dP into ds, and the row's D by a tree reduction.
    var dsum = 0.0;
    for (var s = lid; s < p.slots; s += WG) {
        let e = row * p.slots + s;
        let j = kept_key(e);
        var dp = 0.0;
        if (j != NO_KEY) {
            let base = (kvh * p.n_kv + j) * HEAD_DIM;
            for (var c = 0u; c < HEAD_DIM; c++) {
                dp += do_vec[c] * f32(v_in[base + c]);
            }
            dsum += slot_weight(e) * dp;
        }
        ds[e] = dp;
        g2[e] = select(f32(j), quiet_nan(), j == NO_KEY);
    }
    red[lid] = dsum;
    workgroupBarrier();
    for (var off = WG / 2u; off > 0u; off /= 2u) {
        if (lid < off) {
            red[lid] += red[lid + off];
        }
        workgroupBarrier();
    }
    var d_row = red[0];
    if (p.sample_weight > 0.0) {
        d_row = probs[row];
    }
    // dS = P (dP − D), each thread on the slots it wrote.
    for (var s = lid; s < p.slots; s += WG) {
        let e = row * p.slots + s;
        ds[e] = select(0.0, slot_weight(e) * (ds[e] - d_row), kept_key(e) != NO_KEY);
    }
    storageBarrier();
    workgroupBarrier();
    // dQ = scale Σ dS k: thread groups over dims, each taking every groups-th slot.
    let groups = WG / HEAD_DIM;
    let grp = lid / HEAD_DIM;
    let dim = lid % HEAD_DIM;
    var acc = 0.0;
    if (grp < groups) {
        for (var s = grp; s < p.slots; s += groups) {
            let e = row * p.slots + s;
            let j = kept_key(e);
            if (j != NO_KEY) {
                acc += ds[e] * f32(a_in[(kvh * p.n_kv + j) * HEAD_DIM + dim]);
            }
        }
    }
    part[lid] = acc;
    workgroupBarrier();
    if (grp == 0u) {
        var t = 0.0;
        for (var gg = 0u; gg < groups; gg++) {
            t += part[gg * HEAD_DIM + dim];
        }
        g1[row * HEAD_DIM + dim] = p.scale * t;
    }
}

// First position in sorted keys [lo, hi) whose key is >= x (NaN counts as +inf).
fn lower_bound(lo0: u32, hi0: u32, x: f32) -> u32 {
    var lo = lo0;
    var hi = hi0;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (aux[mid] < x) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

@compute @workgroup_size(256)
fn sparse_backward_keys(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = linear_workgroup(wid, nwg);
    let groups_total = p.rows / (p.n_q * (p.heads_q / p.heads_kv));
    if (t >= groups_total * p.n_kv || lid >= HEAD_DIM) {
        return;
    }
    let grp = t / p.n_kv;
    let j = t % p.n_kv;
    // This group's entries: rows [grp · per_group, +per_group) of every slot.
    let per_group = p.n_q * (p.heads_q / p.heads_kv);
    let n = per_group * p.slots;
    let base = grp * n;
    let lo = lower_bound(base, base + n, f32(j));
    let hi = lower_bound(lo, base + n, f32(j) + 0.5);
    var dk = 0.0;
    var dv = 0.0;
    for (var x = lo; x < hi; x++) {
        let e = base + kept[x];
        let row = e / p.slots;
        dv += slot_weight(e) * d_out[row * HEAD_DIM + lid];
        dk += ds[e] * f32(a_in[row * HEAD_DIM + lid]);
    }
    let kv = (grp * p.n_kv + j) * HEAD_DIM + lid;
    g1[kv] = p.scale * dk;
    g2[kv] = dv;
}
