// Body of topk_attention{,_f16}: the including file defines `alias Elem`.
//
// Fused selection for small k (≤ FUSED_K): one workgroup per 16-query tile walks the key
// tiles with the same score_tile as attention_scores (so the f32 scores, and hence the
// selection, are identical to the blocked path), and each query's thread keeps a sorted
// best-first list of its k best (order key, index) in workgroup memory. Keys arrive in index
// order, so an equal key never displaces an earlier one: ties go to the smaller index, NaN
// (order key 0) ranks last, -0.0 == +0.0, exactly the topk rules. Scores never leave the
// chip; the indices [rows, k] then feed gather_attention.

//! include shared/attention_common.wgsl
//! include shared/order_key.wgsl

@group(0) @binding(0) var<uniform> p: AttentionParams;
@group(0) @binding(1) var<storage, read> q_in: array<Elem>;
@group(0) @binding(2) var<storage, read> k_in: array<Elem>;
@group(0) @binding(3) var<storage, read_write> out_indices: array<u32>;

//! include shared/attention_tile_qk.wgsl

const FUSED_K: u32 = 32u;

var<workgroup> s_tile: array<f32, 1024>;     // Q_TILE x KEY_TILE scaled scores
var<workgroup> list_key: array<u32, 512>;    // Q_TILE x FUSED_K order keys, best first
var<workgroup> list_idx: array<u32, 512>;

@compute @workgroup_size(256)
fn topk_attention_select(
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
    let vis_max = visible(i0 + q_valid - 1u);
    let kvh = kv_head_of(bh);
    let qi = lid / 16u;
    let kj = lid % 16u;
    let k = p.slots;
    var count = 0u;
    for (var key0 = 0u; key0 < vis_max; key0 += KEY_TILE) {
        let raw = score_tile(lid, bh * p.n_q + i0, q_valid, kvh, key0, min(KEY_TILE, vis_max - key0)) * p.scale;
        for (var m = 0u; m < 4u; m++) {
            s_tile[qi * KEY_TILE + kj + 16u * m] = raw[m];
        }
        workgroupBarrier();
        if (lid < q_valid) {
            let qvis = visible(i0 + lid);
            let base = lid * FUSED_K;
            for (var c = 0u; c < KEY_TILE; c++) {
                let key = key0 + c;
                if (key >= qvis) {
                    break;
                }
                let ok = largest_key(s_tile[lid * KEY_TILE + c]);
                if (count == k && ok <= list_key[base + k - 1u]) {
                    continue;
                }
                var pos = min(count, k - 1u);
                while (pos > 0u && list_key[base + pos - 1u] < ok) {
                    list_key[base + pos] = list_key[base + pos - 1u];
                    list_idx[base + pos] = list_idx[base + pos - 1u];
                    pos -= 1u;
                }
                list_key[base + pos] = ok;
                list_idx[base + pos] = key;
                count = min(count + 1u, k);
            }
        }
        workgroupBarrier();
    }
    if (lid < q_valid) {
        let row = bh * p.n_q + i0 + lid;
        for (var s = 0u; s < k; s++) {
            out_indices[row * k + s] = select(NO_KEY, list_idx[lid * FUSED_K + s], s < count);
        }
    }
}
