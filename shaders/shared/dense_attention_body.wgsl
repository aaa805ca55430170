// Body of dense_attention{,_f16}: the including file defines `alias Elem`.

//! include shared/attention_common.wgsl

@group(0) @binding(0) var<uniform> p: AttentionParams;
@group(0) @binding(1) var<storage, read> q_in: array<Elem>;
@group(0) @binding(2) var<storage, read> k_in: array<Elem>;
@group(0) @binding(3) var<storage, read> v_in: array<Elem>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse_out: array<f32>;
// Split-K partials: per (split, row) the span's normalised output and log-sum-exp.
@group(0) @binding(6) var<storage, read_write> part_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> part_lse: array<f32>;

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

var<workgroup> p_tile: array<f32, Q_TILE * KEY_TILE>;   // scores, then probabilities

const MAX_DIM_CHUNKS: u32 = MAX_HEAD_DIM / DIM_CHUNK;

// One workgroup per (head, tile of Q_TILE queries[, key split]): flash-style online softmax
// over key tiles. Thread t accumulates query t / 16, dims t % 16 + 16 c. Tiles past the last
// visible key of the tile are never loaded (causal rows do half the work).
//
// Split-K (p.key_splits > 1, for decode: few query tiles, long caches): workgroup
// (tile, split) covers keys [split · key_span, +key_span) only and writes its partial output
// and log-sum-exp; dense_attention_merge combines the splits in a fixed order.
@compute @workgroup_size(256)
fn dense_attention(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let splits = max(p.key_splits, 1u);
    let g = linear_workgroup(wid, nwg);
    if (g >= query_tiles() * splits) {
        return;
    }
    let split = g % splits;
    let tile = query_tile(g / splits);
    let qi = lid / 16u;
    let kj = lid % 16u;
    let my_vis = select(0u, visible(tile.i0 + qi), qi < tile.q_valid);
    let chunks = (HEAD_DIM + DIM_CHUNK - 1u) / DIM_CHUNK;

    var m = neg_inf();
    var l = 0.0;
    var acc: array<f32, MAX_DIM_CHUNKS>;
    var k_begin = 0u;
    var k_end = tile.vis_max;
    if (splits > 1u) {
        k_begin = split * p.key_span;
        k_end = min(k_begin + p.key_span, tile.vis_max);
    }
    for (var key0 = k_begin; key0 < k_end; key0 += KEY_TILE) {
        let kv = min(KEY_TILE, k_end - key0);
        let raw = score_tile(lid, tile.row0, tile.q_valid, tile.kvh, key0, kv) * p.scale;
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
        let straddles = key0 + kv > tile.vis_min;
        for (var c = 0u; c < chunks; c++) {
            load_b_chunk(lid, 1u, tile.kvh * p.n_kv + key0, kv, c * DIM_CHUNK);
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
    if (qi < tile.q_valid) {
        let row = tile.row0 + qi;
        let empty = m == neg_inf();
        // Split s of row r goes to partial row s · rows + r.
        let dst = select(row, split * p.rows + row, splits > 1u);
        for (var c = 0u; c < chunks; c++) {
            let dim = c * DIM_CHUNK + kj;
            if (dim < HEAD_DIM) {
                let o = select(acc[c] / l, 0.0, empty);
                if (splits > 1u) {
                    part_out[dst * HEAD_DIM + dim] = o;
                } else {
                    out[row * HEAD_DIM + dim] = o;
                }
            }
        }
        if (kj == 0u) {
            let lse = select(m + log(l), neg_inf(), empty);
            if (splits > 1u) {
                part_lse[dst] = lse;
            } else {
                lse_out[row] = lse;
            }
        }
    }
}

// Split-K merge, one thread per output element: lse = log Σ_s exp(lse_s) and
// out = Σ_s exp(lse_s − lse) out_s, splits in order (deterministic). Splits that saw no key
// (lse_s = −inf) weigh 0; a row whose splits all saw none gets 0 and −inf, as unsplit. NaN
// in any split propagates, as in one pass.
@compute @workgroup_size(256)
fn dense_attention_merge(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = linear_workgroup(wid, nwg) * 256u + lid;
    if (t >= p.rows * HEAD_DIM) {
        return;
    }
    let row = t / HEAD_DIM;
    let dim = t % HEAD_DIM;
    // NaN and −inf are tested on the bits (is_nan, is_neg_inf).
    var mx = neg_inf();
    var nan = false;
    for (var s = 0u; s < p.key_splits; s++) {
        let x = part_lse[s * p.rows + row];
        nan = nan || is_nan(x);
        mx = max_num(mx, x);
    }
    if (nan) {
        out[t] = quiet_nan();
        if (dim == 0u) {
            lse_out[row] = quiet_nan();
        }
        return;
    }
    if (is_neg_inf(mx)) {
        out[t] = 0.0;
        if (dim == 0u) {
            lse_out[row] = neg_inf();
        }
        return;
    }
    var sum = 0.0;
    var o = 0.0;
    for (var s = 0u; s < p.key_splits; s++) {
        let w = exp(part_lse[s * p.rows + row] - mx);
        sum += w;
        o += w * part_out[(s * p.rows + row) * HEAD_DIM + dim];
    }
    out[t] = o / sum;
    if (dim == 0u) {
        lse_out[row] = mx + log(sum);
    }
}
