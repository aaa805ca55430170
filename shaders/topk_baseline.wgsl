// topk_baseline: the simplest one-pass top-k, one thread per row, insertion into the sorted
// output list in place. Same order and tie rules as topk (NaN last, -0.0 == +0.0, ties to the
// smaller index), no multi-workgroup rows, no radix select: the yardstick the bench compares
// the real kernel against.

//! include shared/common.wgsl
//! include shared/order_key.wgsl

struct TopkBaselineParams {
    rows: u32,
    n: u32,
    k: u32,
}

@group(0) @binding(0) var<uniform> p: TopkBaselineParams;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read_write> out_keys: array<u32>;     // order keys
@group(0) @binding(3) var<storage, read_write> out_indices: array<u32>;
@group(0) @binding(4) var<storage, read_write> out_values: array<f32>;

@compute @workgroup_size(64)
fn topk_baseline(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg) * 64u + lid;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.k;
    var count = 0u;
    for (var j = 0u; j < p.n; j++) {
        let x = scores[row * p.n + j];
        let key = largest_key(x);
        // Keys arrive in index order, so an equal key never displaces an earlier one.
        if (count == p.k && key <= out_keys[base + p.k - 1u]) {
            continue;
        }
        var pos = min(count, p.k - 1u);
        while (pos > 0u && out_keys[base + pos - 1u] < key) {
            out_keys[base + pos] = out_keys[base + pos - 1u];
            out_indices[base + pos] = out_indices[base + pos - 1u];
            out_values[base + pos] = out_values[base + pos - 1u];
            pos -= 1u;
        }
        out_keys[base + pos] = key;
        out_indices[base + pos] = j;
        out_values[base + pos] = x;
        count = min(count + 1u, p.k);
    }
}
