// Body of sampling_attention{,_f16}: the including file defines `alias Elem`.
//
// Median-of-means estimate of softmax(q·K)·V from L exact samples of each row's softmax
// (drawn by lazy_gumbel): the samples split into `groups` consecutive groups of L / groups,
// each group's mean of the sampled V rows estimates the output, and the coordinate-wise
// median of the group means is the estimate (robust to a few bad groups).

//! include shared/common.wgsl

struct SamplingParams {
    rows: u32,
    n_q: u32,
    heads_q: u32,
    heads_kv: u32,
    n_kv: u32,
    samples: u32,
    groups: u32,
}

override HEAD_DIM: u32 = 64u;

const MAX_GROUPS: u32 = 64u;
const NO_KEY: u32 = 0xFFFFFFFFu;

@group(0) @binding(0) var<uniform> p: SamplingParams;
@group(0) @binding(1) var<storage, read> v_in: array<Elem>;
@group(0) @binding(2) var<storage, read> samples: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// One workgroup per query row, one thread per output dimension.
@compute @workgroup_size(256)
fn sampling_attention(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg);
    if (row >= p.rows || lid >= HEAD_DIM) {
        return;
    }
    let bh = row / p.n_q;
    let b = bh / p.heads_q;
    let kvh = b * p.heads_kv + (bh % p.heads_q) / (p.heads_q / p.heads_kv);
    let per = p.samples / p.groups;
    var means: array<f32, MAX_GROUPS>;
    var empty = false;
    for (var g = 0u; g < p.groups; g++) {
        var acc = 0.0;
        for (var s = g * per; s < (g + 1u) * per; s++) {
            let key = samples[row * p.samples + s];
            if (key == NO_KEY) {
                empty = true;
            } else {
                acc += f32(v_in[(kvh * p.n_kv + key) * HEAD_DIM + lid]);
            }
        }
        means[g] = acc / f32(per);
    }
    // Insertion sort of the group means, then the median.
    for (var i = 1u; i < p.groups; i++) {
        let x = means[i];
        var j = i;
        while (j > 0u && means[j - 1u] > x) {
            means[j] = means[j - 1u];
            j -= 1u;
        }
        means[j] = x;
    }
    let mid = p.groups / 2u;
    var median = means[mid];
    if (p.groups % 2u == 0u) {
        median = 0.5 * (means[mid - 1u] + means[mid]);
    }
    out[row * HEAD_DIM + lid] = select(median, 0.0, empty);
}
