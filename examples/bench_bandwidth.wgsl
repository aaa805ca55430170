// Bandwidth probes of the bench CLI (`--kernel bandwidth`): what a WGSL kernel reaches on this
// device through wgpu, as ceilings for ours. Not library kernels: no host struct, no reference.
//
// copy_vec4: every thread copies COPY_PER_THREAD vec4s, grid-strided (coalesced).
// read_rows: one workgroup per row, as `topk_one_pass` reads its row: tiles of 256·DEPTH
//   entries, the next tile's loads issued before the current one is used, a barrier per
//   tile; writes the row's max. DEPTH 2 is topk_one_pass's tile, 8 a deeper prefetch.
//   n must be a multiple of 256·DEPTH.
// read_rows_regs: as topk_one_pass_wide reads (see there).
// read_rows_lanes: each row read by LANES threads (a subgroup's worth), WG / LANES rows per
//   workgroup, with no barrier: how a subgroup-per-row top-k would stream its rows.
// barrier_chain: BARRIER_STEPS rounds of a workgroup-memory exchange between two barriers, per
//   workgroup: what a barrier-bound loop (the one pass's rounds, a bitonic step) pays per
//   barrier, alone (one workgroup) and with the GPU full (one per row).

struct ProbeParams {
    rows: u32,
    n: u32,
    words: u32, // vec4s to copy
    _pad: u32,
}

const WG: u32 = 256u;
const COPY_PER_THREAD: u32 = 4u;

@group(0) @binding(0) var<uniform> p: ProbeParams;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> src_f32: array<f32>; // `src` again, as topk reads it

fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + nwg.x * wid.y;
}

@compute @workgroup_size(WG)
fn copy_vec4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let base = group_index(wid, nwg) * WG * COPY_PER_THREAD + lid;
    for (var e = 0u; e < COPY_PER_THREAD; e++) {
        let i = base + e * WG;
        if (i < p.words) {
            dst[i] = src[i];
        }
    }
}

var<workgroup> wg_max: array<f32, WG>;

fn load(row: u32, col: u32) -> f32 {
    return src_f32[row * p.n + col];
}

fn finish_row(row: u32, lid: u32, m: f32) {
    wg_max[lid] = m;
    workgroupBarrier();
    if (lid == 0u) {
        var r = wg_max[0];
        for (var t = 1u; t < WG; t++) {
            r = max(r, wg_max[t]);
        }
        dst[row / 4u][row % 4u] = r;
    }
}

// Loads each thread keeps in flight (2 or 8; at most MAX_DEPTH): a pipeline constant.
override DEPTH: u32 = 2u;
const MAX_DEPTH: u32 = 8u;

@compute @workgroup_size(WG)
fn read_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    var m = -3.0e38;
    var ahead: array<f32, MAX_DEPTH>;
    for (var e = 0u; e < DEPTH; e++) {
        ahead[e] = load(row, e * WG + lid);
    }
    for (var base = 0u; base < p.n; base += WG * DEPTH) {
        let tile = ahead;
        for (var e = 0u; e < DEPTH; e++) {
            let col = base + WG * DEPTH + e * WG + lid;
            if (col < p.n) {
                ahead[e] = load(row, col);
            }
        }
        for (var e = 0u; e < DEPTH; e++) {
            m = max(m, tile[e]);
        }
        workgroupBarrier();
    }
    finish_row(row, lid, m);
}

// read_rows with vec4 loads (DEPTH of them per thread per tile, 1024·DEPTH entries): what a
// one-workgroup-per-row kernel gains from 16-byte loads where a row starts 16-byte aligned.
// n must be a multiple of 1024·DEPTH.
@compute @workgroup_size(WG)
fn read_rows_vec4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let words = p.n / 4u;
    let first = row * words;
    var m = vec4<f32>(-3.0e38);
    var ahead: array<vec4<f32>, MAX_DEPTH>;
    for (var e = 0u; e < DEPTH; e++) {
        ahead[e] = src[first + e * WG + lid];
    }
    for (var base = 0u; base < words; base += WG * DEPTH) {
        let tile = ahead;
        for (var e = 0u; e < DEPTH; e++) {
            let w = base + WG * DEPTH + e * WG + lid;
            if (w < words) {
                ahead[e] = src[first + w];
            }
        }
        for (var e = 0u; e < DEPTH; e++) {
            m = max(m, tile[e]);
        }
        workgroupBarrier();
    }
    finish_row(row, lid, max(max(m.x, m.y), max(m.z, m.w)));
}

// read_rows as `topk_one_pass_wide` reads: tiles of 4096 entries, 16 per thread in four vec4
// registers (no array, so no local memory whatever the driver unrolls), the next tile's loads
// issued before the current one is used, a barrier per tile. `quads`: the same tile in four
// 16-byte loads per thread instead of sixteen 4-byte ones. n must be a multiple of 4096.
// Dispatched over fewer workgroups than rows, it reads only the first rows.
struct Regs {
    a: vec4<f32>,
    b: vec4<f32>,
    c: vec4<f32>,
    d: vec4<f32>,
}

fn load4(row: u32, col: u32) -> vec4<f32> {
    return vec4<f32>(load(row, col), load(row, col + WG), load(row, col + 2u * WG), load(row, col + 3u * WG));
}

fn load_regs(row: u32, base: u32, lid: u32) -> Regs {
    if (base >= p.n) {
        return Regs(vec4<f32>(), vec4<f32>(), vec4<f32>(), vec4<f32>());
    }
    if (QUADS) {
        let w = (row * p.n + base) / 4u + lid;
        return Regs(src[w], src[w + WG], src[w + 2u * WG], src[w + 3u * WG]);
    }
    let col = base + lid;
    return Regs(load4(row, col), load4(row, col + 4u * WG), load4(row, col + 8u * WG), load4(row, col + 12u * WG));
}

override QUADS: bool = false;
// Whether the next tile is loaded ahead, and whether each tile ends in a barrier: with both
// on, the wide pass's shape; the others say whether a barrier makes a thread wait for its
// loads in flight (then prefetching across one buys nothing).
override PREFETCH: bool = true;
override BARRIER: bool = true;
// Tiles of 32 entries per thread with no prefetch instead (n a multiple of 8192).
override DOUBLE: bool = false;

@compute @workgroup_size(WG)
fn read_rows_regs(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    var m = vec4<f32>(-3.0e38);
    if (DOUBLE) {
        // 32 entries per thread per tile, none loaded ahead: as many registers as a prefetch.
        for (var base = 0u; base < p.n; base += 32u * WG) {
            let t = load_regs(row, base, lid);
            let u = load_regs(row, base + 16u * WG, lid);
            m = max(max(m, max(t.a, u.a)), max(max(t.b, u.b), max(max(t.c, u.c), max(t.d, u.d))));
            if (BARRIER) {
                workgroupBarrier();
            }
        }
        finish_row(row, lid, max(max(m.x, m.y), max(m.z, m.w)));
        return;
    }
    var ahead = load_regs(row, 0u, lid);
    for (var base = 0u; base < p.n; base += 16u * WG) {
        var tile = ahead;
        if (PREFETCH) {
            ahead = load_regs(row, base + 16u * WG, lid);
        } else if (base > 0u) {
            tile = load_regs(row, base, lid);
        }
        m = max(max(m, tile.a), max(tile.b, max(tile.c, tile.d)));
        if (BARRIER) {
            workgroupBarrier();
        }
    }
    finish_row(row, lid, max(max(m.x, m.y), max(m.z, m.w)));
}

// Threads per row of read_rows_lanes (a power of two, at most WG).
override LANES: u32 = 32u;
// Whether read_rows_lanes also turns each entry into its order key and counts those above a
// threshold, as a filtering top-k does per entry, instead of taking the max alone.
override KEYS: bool = false;

fn order_key_probe(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// LANES threads per row, each over vec4 q = lane, lane + LANES, ... of its row (consecutive
// lanes on consecutive quads: 16·LANES bytes per load instruction across them), four loads
// in flight per turn. n must be a multiple of 16·LANES. A lane's result is written only if
// it is impossible, so the loads are not optimized away and no lane waits for another.
@compute @workgroup_size(WG)
fn read_rows_lanes(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wid, nwg) * (WG / LANES) + lid / LANES;
    if (row >= p.rows) {
        return;
    }
    let lane = lid % LANES;
    let quads = p.n / 4u;
    let first = row * quads + lane;
    var m = vec4<f32>(-3.0e38);
    var above = 0u;
    for (var q = 0u; q < quads; q += 4u * LANES) {
        let a = src[first + q];
        let b = src[first + q + LANES];
        let c = src[first + q + 2u * LANES];
        let d = src[first + q + 3u * LANES];
        if (KEYS) {
            // A threshold that moves with the count, as a running k-th does (rarely).
            let t = 0x80000000u | (above << 16u);
            var add = 0u;
            for (var i = 0u; i < 4u; i++) {
                add += select(0u, 1u, order_key_probe(a[i]) > t);
                add += select(0u, 1u, order_key_probe(b[i]) > t);
                add += select(0u, 1u, order_key_probe(c[i]) > t);
                add += select(0u, 1u, order_key_probe(d[i]) > t);
            }
            above += add;
        } else {
            m = max(max(m, a), max(b, max(c, d)));
        }
    }
    if (m.x == 1.5e-38 || above == 0xFFFFFFFFu) {
        dst[row / 4u][row % 4u] = m.x + f32(above);
    }
}

// Rounds of barrier_chain (two barriers each): set by the host, which labels the cases with it.
override BARRIER_STEPS: u32 = 1024u;

@compute @workgroup_size(WG)
fn barrier_chain(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = group_index(wid, nwg);
    var x = f32(lid);
    for (var s = 0u; s < BARRIER_STEPS; s++) {
        wg_max[lid] = x;
        workgroupBarrier();
        x = wg_max[(lid + 1u) % WG] * 0.5 + 1.0;
        workgroupBarrier();
    }
    if (lid == 0u) {
        dst[g / 4u][g % 4u] = x;
    }
}
