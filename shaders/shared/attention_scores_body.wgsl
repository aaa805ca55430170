// Body of attention_scores{,_f16}: the including file defines `alias Elem`.

//! include shared/attention_common.wgsl

@group(0) @binding(0) var<uniform> p: AttentionParams;
@group(0) @binding(1) var<storage, read> q_in: array<Elem>;
@group(0) @binding(2) var<storage, read> k_in: array<Elem>;
@group(0) @binding(3) var<storage, read_write> scores_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> lengths_out: array<u32>;

//! include shared/attention_tile_qk.wgsl

// One workgroup per (query tile, key span) of the block: writes the scaled scores of the
// tile's visible keys in the span into rows tile_local * Q_TILE + qi of `scores_out`
// (row pitch n_kv), and (span 0) each row's visible length into `lengths_out`, so that the
// top-k kernel reads only visible keys. Padding rows get length 0.
@compute @workgroup_size(256)
fn attention_scores(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let spans = (p.n_kv + p.key_span - 1u) / p.key_span;
    let g = linear_workgroup(wid, nwg);
    if (g >= (p.block_rows / Q_TILE) * spans) {
        return;
    }
    let tile_local = g / spans;
    let span = g % spans;
    let first = query_of_block_row(tile_local * Q_TILE);
    let bh = first.x;
    let i0 = first.y;
    let q_valid = min(Q_TILE, p.n_q - i0);
    let vis_max = visible(i0 + q_valid - 1u);
    if (span == 0u && lid < Q_TILE) {
        lengths_out[tile_local * Q_TILE + lid] = select(0u, visible(i0 + lid), lid < q_valid);
    }
    let kvh = kv_head_of(bh);
    let qi = lid / 16u;
    let kj = lid % 16u;
    let my_vis = select(0u, visible(i0 + qi), qi < q_valid);
    let start = span * p.key_span;
    let end = min(start + p.key_span, vis_max);
    let out_row = (tile_local * Q_TILE + qi) * p.n_kv;
    for (var key0 = start; key0 < end; key0 += KEY_TILE) {
        let s = score_tile(lid, bh * p.n_q + i0, q_valid, kvh, key0, min(KEY_TILE, end - key0)) * p.scale;
        for (var m = 0u; m < 4u; m++) {
            let key = key0 + kj + 16u * m;
            if (key < end && key < my_vis) {
                scores_out[out_row + key] = s[m];
            }
        }
    }
}
