// Body of dense_attention{,_f16}: the including file defines `alias Elem`.

//! include shared/attention_common.wgsl

@group(0) @binding(0) var<uniform> p: AttentionParams;
@group(0) @binding(1) var<storage, read> q_in: array<Elem>;
@group(0) @binding(2) var<storage, read> k_in: array<Elem>;
@group(0) @binding(3) var<storage, read> v_in: array<Elem>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse_out: array<f32>;

// Operand pairs of attention_tile.wgsl: 0 = (q, k) for scores; B of pair 1 is v for P·V.
fn tile_a(pair: u32, idx: u32) -> f32 {
    return f32(q_in[idx]);
}

fn tile_b(pair: u32, idx: u32) -> f32 {
    if (pair == 0u) {
        return f32(k_in[idx]);
    }
    return f32(v_in[idx]);
}

//! include shared/attention_tile.wgsl

var<workgroup> p_tile: array<f32, 1024>;   // Q_TILE x KEY_TILE scores, then probabilities

const MAX_DIM_CHUNKS: u32 = 16u;           // HEAD_DIM <= 256

// One workgroup per (head, tile of Q_TILE queries): flash-style online softmax over key
// tiles. Thread t accumulates query t / 16, dims t % 16 + 16 c. Tiles past the last visible
// key of the tile are never loaded (causal rows do half the work).
@compute @workgroup_size(256)
fn dense_attention(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tph = query_tiles_per_head();
    let g = linear_workgroup(wid, nwg);
    if (g >= (p.rows / p.n_q) * tph) {
        return;
    }
    let bh = g / tph;
    let i0 = (g % tph) * Q_TILE;
    let q_valid = min(Q_TILE, p.n_q - i0);
    let vis_min = visible(i0);
    let vis_max = visible(i0 + q_valid - 1u);
    let kvh = kv_head_of(bh);
    let qi = lid / 16u;
    let kj = lid % 16u;
    let my_vis = select(0u, visible(i0 + qi), qi < q_valid);
    let chunks = (HEAD_DIM + DIM_CHUNK - 1u) / DIM_CHUNK;

    var m = neg_inf();
    var l = 0.0;
    var acc: array<f32, MAX_DIM_CHUNKS>;
    for (var key0 = 0u; key0 < vis_max; key0 += KEY_TILE) {
        let kv = min(KEY_TILE, vis_max - key0);
        let raw = score_tile(lid, bh * p.n_q + i0, q_valid, kvh, key0, kv) * p.scale;
        var s: vec4<f32>;
        for (var j = 0u; j < 4u; j++) {
            s[j] = select(neg_inf(), raw[j], key0 + kj + 16u * j < my_vis);
            p_tile[qi * KEY_TILE + kj + 16u * j] = s[j];
        }
        workgroupBarrier();
        var tmax = neg_inf();
        for (var j = 0u; j < KEY_TILE; j++) {
            tmax = max_num(tmax, p_tile[qi * KEY_TILE + j]);
        }
        let m_new = max_num(m, tmax);
        let live = m_new != neg_inf();
        let alpha = select(0.0, exp(m - m_new), live);
        workgroupBarrier();
        for (var j = 0u; j < 4u; j++) {
            p_tile[qi * KEY_TILE + kj + 16u * j] = select(0.0, exp(s[j] - m_new), live);
        }
        workgroupBarrier();
        l *= alpha;
        for (var j = 0u; j < KEY_TILE; j++) {
            l += p_tile[qi * KEY_TILE + j];
        }
        // Keys a query cannot see have probability 0 but their V row may hold inf or NaN;
        // only the tiles that straddle a causal edge pay for the guard (uniform branch).
        let straddles = key0 + kv > vis_min;
        for (var c = 0u; c < chunks; c++) {
            load_b_chunk(lid, 1u, kvh * p.n_kv + key0, kv, c * DIM_CHUNK);
            workgroupBarrier();
            var a = acc[c] * alpha;
            if (straddles) {
                for (var j = 0u; j < KEY_TILE; j++) {
                    let w = p_tile[qi * KEY_TILE + j] * kv_chunk[j * KV_PITCH + kj];
                    a = select(a, a + w, key0 + j < my_vis);
                }
            } else {
                for (var j = 0u; j < KEY_TILE; j++) {
                    a += p_tile[qi * KEY_TILE + j] * kv_chunk[j * KV_PITCH + kj];
                }
            }
            acc[c] = a;
            workgroupBarrier();
        }
        m = m_new;
    }
    if (qi < q_valid) {
        let row = bh * p.n_q + i0 + qi;
        let empty = m == neg_inf();
        for (var c = 0u; c < chunks; c++) {
            let dim = c * DIM_CHUNK + kj;
            if (dim < HEAD_DIM) {
                out[row * HEAD_DIM + dim] = select(acc[c] / l, 0.0, empty);
            }
        }
        if (kj == 0u) {
            lse_out[row] = select(m + log(l), neg_inf(), empty);
        }
    }
}
