// Body of topk_attention{,_f16}: the including file defines `alias Elem`.
//
// Fused selection for small k (≤ FUSED_K): one workgroup per 16-query tile walks the key
// tiles with the same score_tile as attention_scores (so the f32 scores, and hence the
// selection, are identical to the blocked path), and each query's thread keeps a sorted
// best-first list of its k best (order key, index) in workgroup memory. Per tile the 16
// threads of each query first flag the scores that beat its list's k-th key (a bit mask), so
// the serial insertion touches only those. Keys are inserted in index order, so an equal key
// never displaces an earlier one: ties go to the smaller index, NaN (order key 0) ranks last,
// -0.0 == +0.0, exactly the topk rules. Scores never leave the chip; the indices [rows, k]
// then feed gather_attention.

//! include shared/attention_common.wgsl
//! include shared/order_key.wgsl

@group(0) @binding(0) var<uniform> p: AttentionParams;
@group(0) @binding(1) var<storage, read> q_in: array<Elem>;
@group(0) @binding(2) var<storage, read> k_in: array<Elem>;
@group(0) @binding(3) var<storage, read_write> out_indices: array<u32>;

//! include shared/attention_tile_qk.wgsl

const FUSED_K: u32 = 64u;

// The score tile reuses kv_chunk (free between score_tile calls), which leaves room for
// 64-entry lists within 16 KiB of workgroup memory.
var<workgroup> list_key: array<u32, 1024>;   // Q_TILE x FUSED_K order keys, best first
var<workgroup> list_idx: array<u32, 1024>;
var<workgroup> list_count: array<u32, 16>;
// Per query, bit c of the tile's 64 keys: key c beat the list's k-th key when the tile began.
var<workgroup> admit: array<atomic<u32>, 32>;

@compute @workgroup_size(256)
fn topk_attention_select(
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
    let k = p.slots;
    let my_vis = select(0u, visible(tile.i0 + qi), qi < tile.q_valid);
    if (lid < 32u) {
        atomicStore(&admit[lid], 0u);
    }
    if (lid < Q_TILE) {
        list_count[lid] = 0u;
    }
    workgroupBarrier();
    for (var key0 = 0u; key0 < tile.vis_max; key0 += KEY_TILE) {
        let raw = score_tile(lid, tile.row0, tile.q_valid, tile.kvh, key0, min(KEY_TILE, tile.vis_max - key0)) * p.scale;
        // Filter in parallel: the 16 threads of a query test its 64 scores against the list's
        // k-th key; only admitted keys reach the serial insertion below.
        let full = list_count[qi] == k;
        let kth = list_key[qi * FUSED_K + k - 1u];
        for (var m = 0u; m < 4u; m++) {
            let c = kj + 16u * m;
            kv_chunk[qi * KEY_TILE + c] = raw[m];
            if (key0 + c < my_vis && (!full || largest_key(raw[m]) > kth)) {
                atomicOr(&admit[qi * 2u + c / 32u], 1u << (c % 32u));
            }
        }
        workgroupBarrier();
        // One thread per query inserts its admitted keys in index order, so an equal key never
        // displaces an earlier one.
        if (lid < tile.q_valid) {
            let base = lid * FUSED_K;
            var count = list_count[lid];
            for (var w = 0u; w < 2u; w++) {
                var bits = atomicExchange(&admit[lid * 2u + w], 0u);
                while (bits != 0u) {
                    let c = firstTrailingBit(bits) + 32u * w;
                    bits &= bits - 1u;
                    let ok = largest_key(kv_chunk[lid * KEY_TILE + c]);
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
                    list_idx[base + pos] = key0 + c;
                    count = min(count + 1u, k);
                }
            }
            list_count[lid] = count;
        }
        workgroupBarrier();
    }
    if (lid < tile.q_valid) {
        let row = tile.row0 + lid;
        let count = list_count[lid];
        for (var s = 0u; s < k; s++) {
            out_indices[row * k + s] = select(NO_KEY, list_idx[lid * FUSED_K + s], s < count);
        }
    }
}
