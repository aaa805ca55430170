// Dot-product tiles shared by the attention kernels: Q_TILE rows of an operand A against
// KEY_TILE rows of an operand B (rows of HEAD_DIM elements), with the head dimension walked in
// chunks of DIM_CHUNK so workgroup memory stays under 6 KiB for any HEAD_DIM (core WebGPU
// guarantees 16 KiB). The including file defines the operands as two functions,
//     fn tile_a(pair: u32, idx: u32) -> f32    fn tile_b(pair: u32, idx: u32) -> f32
// reading element idx of A or B of operand pair `pair` (the forward kernels have one pair,
// q·k; the backward also needs dO·v and the transposed products), and `p: AttentionParams`.
//
// Thread t (of 256) owns A row t / 16 and B rows t % 16 + 16 m, m = 0..3, so each B row chunk
// is read by 16 threads at once and each A chunk value is broadcast.

const TILE_THREADS: u32 = 256u;
const KEY_TILE: u32 = 64u;
const DIM_CHUNK: u32 = 16u;
const KV_PITCH: u32 = DIM_CHUNK + 1u;   // padding avoids 16-way bank conflicts

var<workgroup> q_chunk: array<f32, Q_TILE * DIM_CHUNK>;
var<workgroup> kv_chunk: array<f32, KEY_TILE * KV_PITCH>;

// Loads dims d0 .. d0 + DIM_CHUNK of B rows b_row0 .. b_row0 + KEY_TILE (of which b_valid are
// real; the rest, and dims past HEAD_DIM, read as zero) into kv_chunk[row * KV_PITCH + dim].
// No barrier: the caller places them.
fn load_b_chunk(t: u32, pair: u32, b_row0: u32, b_valid: u32, d0: u32) {
    let dim = d0 + t % DIM_CHUNK;
    let rr = t / DIM_CHUNK;
    for (var m = 0u; m < 4u; m++) {
        let row = rr + 16u * m;
        var y = 0.0;
        if (row < b_valid && dim < HEAD_DIM) {
            y = tile_b(pair, (b_row0 + row) * HEAD_DIM + dim);
        }
        kv_chunk[row * KV_PITCH + t % DIM_CHUNK] = y;
    }
}

// Dot products a·b of thread t's four (A row, B row) pairs; A rows a_row0 .. + a_valid and
// B rows b_row0 .. + b_valid are absolute row numbers. Every thread must call it (barriers).
fn dot_tile(t: u32, pair: u32, a_row0: u32, a_valid: u32, b_row0: u32, b_valid: u32) -> vec4<f32> {
    var s = vec4<f32>(0.0);
    let qi = t / 16u;
    let kj = t % 16u;
    let dd = t % DIM_CHUNK;
    let rr = t / DIM_CHUNK;
    for (var d0 = 0u; d0 < HEAD_DIM; d0 += DIM_CHUNK) {
        let dim = d0 + dd;
        var x = 0.0;
        if (rr < a_valid && dim < HEAD_DIM) {
            x = tile_a(pair, (a_row0 + rr) * HEAD_DIM + dim);
        }
        q_chunk[rr * DIM_CHUNK + dd] = x;
        load_b_chunk(t, pair, b_row0, b_valid, d0);
        workgroupBarrier();
        for (var c = 0u; c < DIM_CHUNK; c++) {
            let qv = q_chunk[qi * DIM_CHUNK + c];
            s += qv * vec4<f32>(
                kv_chunk[kj * KV_PITCH + c],
                kv_chunk[(kj + 16u) * KV_PITCH + c],
                kv_chunk[(kj + 32u) * KV_PITCH + c],
                kv_chunk[(kj + 48u) * KV_PITCH + c],
            );
        }
        workgroupBarrier();
    }
    return s;
}

// Raw scores q·k (unscaled) of thread t's four (query, key) pairs: queries are rows
// q_row0 .. q_row0 + q_valid of q, keys key0 .. key0 + k_valid of flattened kv head kvh.
// Operand pair 0 must be (q, k).
fn score_tile(t: u32, q_row0: u32, q_valid: u32, kvh: u32, key0: u32, k_valid: u32) -> vec4<f32> {
    return dot_tile(t, 0u, q_row0, q_valid, kvh * p.n_kv + key0, k_valid);
}
