// Body of dense_attention_backward{,_f16}: the including file defines `alias Elem`.
//
// Flash-style exact backward (FlashAttention-2's split): the score matrix is recomputed tile by
// tile from q, k and the forward's log-sum-exp, never stored, so memory is O(n·d). With
// P_ij = exp(scale q_i·k_j − lse_i), dP_ij = dO_i·v_j, D_i = dO_i·o_i, dS_ij = P_ij (dP_ij − D_i):
//   dense_backward_d   (one thread per row): D_i from the forward output.
//   dense_backward_dq  (one workgroup per head and 16-query tile, walking 64-key tiles):
//                      dQ_i = scale Σ_j dS_ij k_j.
//   dense_backward_dkv (one workgroup per kv head and 16-key tile, walking the 64-query tiles
//                      of every query head of its group): dV_j = Σ_i P_ij dO_i and
//                      dK_j = scale Σ_i dS_ij q_i.
// Each gradient element is owned by one thread and summed in a fixed order: deterministic,
// no float atomics. Causal tiles skip what no query of the tile sees.

//! include shared/attention_common.wgsl

@group(0) @binding(0) var<uniform> p: AttentionParams;
@group(0) @binding(1) var<storage, read> q_in: array<Elem>;
@group(0) @binding(2) var<storage, read> k_in: array<Elem>;
@group(0) @binding(3) var<storage, read> v_in: array<Elem>;
@group(0) @binding(4) var<storage, read> d_out: array<f32>;
@group(0) @binding(5) var<storage, read> lse_in: array<f32>;
@group(0) @binding(6) var<storage, read_write> d_rows: array<f32>;
// d pass: the forward output (read only); dq pass: dQ; dkv pass: dK.
@group(0) @binding(7) var<storage, read_write> g1: array<f32>;
// dkv pass: dV.
@group(0) @binding(8) var<storage, read_write> g2: array<f32>;

// Operand pairs of attention_tile.wgsl (A rows are the 16-row side of a tile).
const PAIR_QK: u32 = 0u;   // scores, query-major
const PAIR_DOV: u32 = 1u;  // dP, query-major
const PAIR_KQ: u32 = 2u;   // scores, key-major
const PAIR_VDO: u32 = 3u;  // dP, key-major

fn tile_a(pair: u32, idx: u32) -> f32 {
    switch pair {
        case 0u: { return f32(q_in[idx]); }
        case 1u: { return d_out[idx]; }
        case 2u: { return f32(k_in[idx]); }
        default: { return f32(v_in[idx]); }
    }
}

fn tile_b(pair: u32, idx: u32) -> f32 {
    switch pair {
        case 0u: { return f32(k_in[idx]); }
        case 1u: { return f32(v_in[idx]); }
        case 2u: { return f32(q_in[idx]); }
        default: { return d_out[idx]; }
    }
}

//! include shared/attention_tile.wgsl

var<workgroup> w_tile: array<f32, Q_TILE * KEY_TILE>;   // weights of the current sum

const MAX_DIM_CHUNKS: u32 = MAX_HEAD_DIM / DIM_CHUNK;

// P_ij from a scaled score and the row's lse; a row that saw no key (lse = −inf) has P = 0.
// NaN propagates (a NaN input poisons the gradients that touch it, as in the reference); the
// −inf test is on the bits (see is_neg_inf).
fn prob(s: f32, lse: f32) -> f32 {
    return select(0.0, exp(s - lse), !is_neg_inf(lse));
}

// a + Σ_j w_tile[row][j] · kv_chunk[j][t % 16] over the loaded B chunk's rows j in [lo, hi).
// Rows outside have weight 0, but their B values may be inf or NaN, so partial ranges are
// guarded; full ranges (most tiles) take the plain loop.
fn weighted_rows(a0: f32, t: u32, lo: u32, hi: u32) -> f32 {
    let row = t / 16u;
    let dim = t % DIM_CHUNK;
    var a = a0;
    if (lo == 0u && hi >= KEY_TILE) {
        for (var j = 0u; j < KEY_TILE; j++) {
            a += w_tile[row * KEY_TILE + j] * kv_chunk[j * KV_PITCH + dim];
        }
    } else {
        for (var j = 0u; j < KEY_TILE; j++) {
            let w = w_tile[row * KEY_TILE + j] * kv_chunk[j * KV_PITCH + dim];
            a = select(a, a + w, j >= lo && j < hi);
        }
    }
    return a;
}

// D_i = dO_i·o_i, one thread per row (g1 holds the forward output).
@compute @workgroup_size(256)
fn dense_backward_d(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg) * TILE_THREADS + lid;
    if (row >= p.rows) {
        return;
    }
    var d = 0.0;
    for (var c = 0u; c < HEAD_DIM; c++) {
        d += d_out[row * HEAD_DIM + c] * g1[row * HEAD_DIM + c];
    }
    d_rows[row] = d;
}

// Thread t owns query t / 16: scores against keys t % 16 + 16 m of each tile, then dims
// t % 16 + 16 c of dQ.
@compute @workgroup_size(256)
fn dense_backward_dq(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = linear_workgroup(wid, nwg);
    if (g >= query_tiles()) {
        return;
    }
    let tile = query_tile(g);
    let qi = lid / 16u;
    let kj = lid % 16u;
    let live = qi < tile.q_valid;
    let my_vis = select(0u, visible(tile.i0 + qi), live);
    var lse = 0.0;
    var d_row = 0.0;
    if (live) {
        lse = lse_in[tile.row0 + qi];
        d_row = d_rows[tile.row0 + qi];
    }
    let chunks = (HEAD_DIM + DIM_CHUNK - 1u) / DIM_CHUNK;
    var acc: array<f32, MAX_DIM_CHUNKS>;
    for (var key0 = 0u; key0 < tile.vis_max; key0 += KEY_TILE) {
        let kv = min(KEY_TILE, tile.vis_max - key0);
        let kv_row0 = tile.kvh * p.n_kv + key0;
        let s = dot_tile(lid, PAIR_QK, tile.row0, tile.q_valid, kv_row0, kv) * p.scale;
        let dp = dot_tile(lid, PAIR_DOV, tile.row0, tile.q_valid, kv_row0, kv);
        for (var m = 0u; m < 4u; m++) {
            let j = kj + 16u * m;
            let pr = prob(s[m], lse);
            w_tile[qi * KEY_TILE + j] = select(0.0, pr * (dp[m] - d_row), key0 + j < my_vis);
        }
        workgroupBarrier();
        let hi = select(0u, my_vis - key0, my_vis > key0);
        for (var c = 0u; c < chunks; c++) {
            load_b_chunk(lid, PAIR_QK, kv_row0, kv, c * DIM_CHUNK);
            workgroupBarrier();
            acc[c] = weighted_rows(acc[c], lid, 0u, hi);
            workgroupBarrier();
        }
    }
    if (live) {
        for (var c = 0u; c < chunks; c++) {
            let dim = c * DIM_CHUNK + kj;
            if (dim < HEAD_DIM) {
                g1[(tile.row0 + qi) * HEAD_DIM + dim] = p.scale * acc[c];
            }
        }
    }
}

// Thread t owns key t / 16: scores against queries t % 16 + 16 m of each 64-query tile, then
// dims t % 16 + 16 c of dK and dV. Query heads of the kv group are walked in order, so the
// grouped-query sum is deterministic too.
@compute @workgroup_size(256)
fn dense_backward_dkv(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ratio = p.heads_q / p.heads_kv;
    let key_tiles = (p.n_kv + Q_TILE - 1u) / Q_TILE;
    let g = linear_workgroup(wid, nwg);
    if (g >= (p.rows / (p.n_q * ratio)) * key_tiles) {
        return;
    }
    let kvh = g / key_tiles;
    let j0 = (g % key_tiles) * Q_TILE;
    let k_valid = min(Q_TILE, p.n_kv - j0);
    let kk = lid / 16u;
    let qq = lid % 16u;
    let my_key = j0 + kk;
    let kv_row0 = kvh * p.n_kv + j0;
    let bh0 = (kvh / p.heads_kv) * p.heads_q + (kvh % p.heads_kv) * ratio;
    // Causal: query i sees key j iff j <= i + offset, so the tile's first reader is j0 − offset.
    var i_start = 0u;
    if (p.causal != 0u && j0 > p.causal_offset) {
        i_start = j0 - p.causal_offset;
    }
    let chunks = (HEAD_DIM + DIM_CHUNK - 1u) / DIM_CHUNK;
    var dk: array<f32, MAX_DIM_CHUNKS>;
    var dv: array<f32, MAX_DIM_CHUNKS>;
    for (var r = 0u; r < ratio; r++) {
        let bh = bh0 + r;
        for (var i0 = i_start; i0 < p.n_q; i0 += KEY_TILE) {
            let q_valid = min(KEY_TILE, p.n_q - i0);
            let q_row0 = bh * p.n_q + i0;
            let s = dot_tile(lid, PAIR_KQ, kv_row0, k_valid, q_row0, q_valid) * p.scale;
            let dp = dot_tile(lid, PAIR_VDO, kv_row0, k_valid, q_row0, q_valid);
            // Queries i0 + j with j in [lo, hi) see this thread's key.
            var lo = 0u;
            if (p.causal != 0u && my_key > i0 + p.causal_offset) {
                lo = my_key - i0 - p.causal_offset;
            }
            let hi = select(0u, q_valid, kk < k_valid);
            var ds: vec4<f32>;
            for (var m = 0u; m < 4u; m++) {
                let j = qq + 16u * m;
                var pr = 0.0;
                ds[m] = 0.0;
                if (j >= lo && j < hi) {
                    pr = prob(s[m], lse_in[q_row0 + j]);
                    ds[m] = pr * (dp[m] - d_rows[q_row0 + j]);
                }
                w_tile[kk * KEY_TILE + j] = pr;
            }
            workgroupBarrier();
            for (var c = 0u; c < chunks; c++) {
                load_b_chunk(lid, PAIR_VDO, q_row0, q_valid, c * DIM_CHUNK);
                workgroupBarrier();
                dv[c] = weighted_rows(dv[c], lid, lo, hi);
                workgroupBarrier();
            }
            for (var m = 0u; m < 4u; m++) {
                w_tile[kk * KEY_TILE + qq + 16u * m] = ds[m];
            }
            workgroupBarrier();
            for (var c = 0u; c < chunks; c++) {
                load_b_chunk(lid, PAIR_KQ, q_row0, q_valid, c * DIM_CHUNK);
                workgroupBarrier();
                dk[c] = weighted_rows(dk[c], lid, lo, hi);
                workgroupBarrier();
            }
        }
    }
    if (kk < k_valid) {
        for (var c = 0u; c < chunks; c++) {
            let dim = c * DIM_CHUNK + qq;
            if (dim < HEAD_DIM) {
                g1[(kv_row0 + kk) * HEAD_DIM + dim] = p.scale * dk[c];
                g2[(kv_row0 + kk) * HEAD_DIM + dim] = dv[c];
            }
        }
    }
}
