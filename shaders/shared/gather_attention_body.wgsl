// Body of gather_attention{,_f16}: the including file defines `alias Elem`.

//! include shared/attention_common.wgsl

@group(0) @binding(0) var<uniform> p: AttentionParams;
@group(0) @binding(1) var<storage, read> q_in: array<Elem>;
@group(0) @binding(2) var<storage, read> k_in: array<Elem>;
@group(0) @binding(3) var<storage, read> v_in: array<Elem>;
@group(0) @binding(4) var<storage, read> indices: array<u32>;
// k_rows[n_q] (per-query slot counts) or the paged block table [batch, pages_per_seq].
@group(0) @binding(5) var<storage, read> aux: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> lse_out: array<f32>;
// Per-slot probabilities [rows, slots + sinks + window] when p.write_kept == 1 (else a dummy).
@group(0) @binding(8) var<storage, read_write> kept_prob: array<f32>;
// Per-slot key indices, written by gather_attention_slots only.
@group(0) @binding(9) var<storage, read_write> kept_idx: array<u32>;

const GATHER_THREADS: u32 = 256u;

var<workgroup> q_vec: array<f32, MAX_HEAD_DIM>;
var<workgroup> s_chunk: array<f32, 256>;    // scores, then probabilities
var<workgroup> key_chunk: array<u32, 256>;
var<workgroup> red: array<f32, 256>;

// Element offset of key `key`'s row in k/v, or NO_KEY when its page id is out of range.
fn key_row(kvh: u32, key: u32) -> u32 {
    if (p.paged != 0u) {
        let b = kvh / p.heads_kv;
        let h = kvh % p.heads_kv;
        let page = aux[b * p.pages_per_seq + key / p.page_size];
        if (page >= p.pool_pages) {
            return NO_KEY;
        }
        return ((page * p.heads_kv + h) * p.page_size + key % p.page_size) * HEAD_DIM;
    }
    return (kvh * p.n_kv + key) * HEAD_DIM;
}

// Key of slot `slot` of a row (NO_KEY: skipped). Slots [0, slots) come from `indices` (only
// the first `kr`), then `sinks` slots for keys 0.., then `window` slots for the last visible
// keys. Every key is used at most once: an index that is a sink or in the window is skipped
// in the index part, and window keys that are sinks are skipped.
fn slot_key(index_row: u32, vis: u32, kr: u32, slot: u32) -> u32 {
    let sinks = min(p.sinks, vis);
    let win_start = max(vis - min(p.window, vis), sinks);
    if (slot < p.slots) {
        if (slot >= kr) {
            return NO_KEY;
        }
        let j = indices[index_row * p.slots + slot];
        return select(NO_KEY, j, j >= sinks && j < win_start);
    }
    let s = slot - p.slots;
    if (s < p.sinks) {
        return select(NO_KEY, s, s < sinks);
    }
    let j = vis - min(p.window, vis) + (s - p.sinks);
    return select(NO_KEY, j, j >= win_start && j < vis);
}

// (bh, i, index row) of dispatch row g: a score-block tile row (tiled) or a plain row.
// i >= n_q marks a padding row.
fn row_of(g: u32) -> vec3<u32> {
    if (p.tiled != 0u) {
        let qr = query_of_block_row(g);
        return vec3<u32>(qr.x, qr.y, g);
    }
    let r = p.tile0 + g;
    return vec3<u32>(r / p.n_q, r % p.n_q, r);
}

// Element offset of slot `slot`'s k/v row, or NO_KEY when the slot is skipped.
fn slot_base(index_row: u32, vis: u32, kr: u32, kvh: u32, slot: u32) -> u32 {
    let key = slot_key(index_row, vis, kr, slot);
    if (key == NO_KEY) {
        return NO_KEY;
    }
    return key_row(kvh, key);
}

// One workgroup per query row: scores of the row's slots (one per thread, 256 per chunk),
// online softmax across chunks, and P·V with the threads split into 256 / HEAD_DIM groups
// that each take every group-th slot, reading V rows coalesced along the head dimension.
@compute @workgroup_size(256)
fn gather_attention(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let write_kept = p.write_kept != 0u;
    let g = linear_workgroup(wid, nwg);
    if (g >= p.block_rows) {
        return;
    }
    let at = row_of(g);
    if (at.y >= p.n_q) {
        return;
    }
    let bh = at.x;
    let i = at.y;
    var index_row = at.z;
    let row = bh * p.n_q + i;
    let vis = visible(i);
    let kvh = kv_head_of(bh);
    if (p.index_per_head != 0u) {
        index_row = kvh;
    }
    let kr = select(p.slots, min(aux[i], p.slots), p.has_k_rows != 0u);
    let total = p.slots + p.sinks + p.window;
    var x = 0.0;
    if (lid < HEAD_DIM) {
        x = f32(q_in[row * HEAD_DIM + lid]);
    }
    q_vec[lid] = x;
    workgroupBarrier();

    let groups = GATHER_THREADS / HEAD_DIM;
    let grp = lid / HEAD_DIM;
    let dim = lid % HEAD_DIM;
    var m = neg_inf();
    var l = 0.0;
    var acc = 0.0;
    for (var c0 = 0u; c0 < total; c0 += GATHER_THREADS) {
        let slot = c0 + lid;
        var base = NO_KEY;
        var s = neg_inf();
        if (slot < total) {
            base = slot_base(index_row, vis, kr, kvh, slot);
            if (base != NO_KEY) {
                var dot = 0.0;
                for (var d = 0u; d < HEAD_DIM; d++) {
                    dot += q_vec[d] * f32(k_in[base + d]);
                }
                s = dot * p.scale;
            }
            if (write_kept) {
                kept_prob[row * total + slot] = s;
            }
        }
        key_chunk[lid] = base;
        red[lid] = select(s, neg_inf(), s != s);
        workgroupBarrier();
        for (var off = GATHER_THREADS / 2u; off > 0u; off /= 2u) {
            if (lid < off) {
                red[lid] = max(red[lid], red[lid + off]);
            }
            workgroupBarrier();
        }
        let m_new = max(m, red[0]);
        let live = m_new != neg_inf();
        let alpha = select(0.0, exp(m - m_new), live);
        s_chunk[lid] = select(0.0, exp(s - m_new), live && base != NO_KEY);
        workgroupBarrier();
        acc *= alpha;
        l *= alpha;
        if (grp < groups) {
            let n = min(GATHER_THREADS, total - c0);
            for (var j = grp; j < n; j += groups) {
                let b = key_chunk[j];
                if (b != NO_KEY) {
                    let pj = s_chunk[j];
                    acc += pj * f32(v_in[b + dim]);
                    l += pj;
                }
            }
        }
        m = m_new;
        workgroupBarrier();
    }
    // Combine the groups: partial sums share the same running max m.
    red[lid] = acc;
    s_chunk[lid] = select(0.0, l, dim == 0u && grp < groups);
    workgroupBarrier();
    let empty = m == neg_inf();
    var lt = 0.0;
    for (var gg = 0u; gg < groups; gg++) {
        lt += s_chunk[gg * HEAD_DIM];
    }
    let lse = select(m + log(lt), neg_inf(), empty);
    if (grp == 0u) {
        var a = 0.0;
        for (var gg = 0u; gg < groups; gg++) {
            a += red[gg * HEAD_DIM + dim];
        }
        out[row * HEAD_DIM + dim] = select(a / lt, 0.0, empty);
        if (dim == 0u) {
            lse_out[row] = lse;
        }
    }
    if (write_kept) {
        // Each thread rewrites the slots it scored: raw score -> probability.
        for (var slot = lid; slot < total; slot += GATHER_THREADS) {
            let sv = kept_prob[row * total + slot];
            let valid = slot_base(index_row, vis, kr, kvh, slot) != NO_KEY;
            kept_prob[row * total + slot] = select(0.0, exp(sv - lse), valid && !empty);
        }
    }
}

// Resolves every slot of every row to its key (NO_KEY when skipped), by the rule of
// slot_key and key_row: one thread per (row, slot).
@compute @workgroup_size(256)
fn gather_attention_slots(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let total = p.slots + p.sinks + p.window;
    let t = linear_workgroup(wid, nwg) * GATHER_THREADS + lid;
    if (t >= p.block_rows * total) {
        return;
    }
    let g = t / total;
    let slot = t % total;
    let at = row_of(g);
    if (at.y >= p.n_q) {
        return;
    }
    let bh = at.x;
    let i = at.y;
    var index_row = at.z;
    let row = bh * p.n_q + i;
    if (p.index_per_head != 0u) {
        index_row = kv_head_of(bh);
    }
    let kr = select(p.slots, min(aux[i], p.slots), p.has_k_rows != 0u);
    let base = slot_base(index_row, visible(i), kr, kv_head_of(bh), slot);
    kept_idx[row * total + slot] = select(slot_key(index_row, visible(i), kr, slot), NO_KEY, base == NO_KEY);
}
