// Score tile shared by attention_scores and dense_attention: Q_TILE queries of one head
// against KEY_TILE consecutive keys, with the head dimension walked in chunks of DIM_CHUNK so
// workgroup memory stays under 6 KiB for any HEAD_DIM (core WebGPU guarantees 16 KiB).
// The including file declares `q_in` and `k_in` (array<Elem>) and `p: AttentionParams`.
//
// Thread t (of 256) owns query t / 16 and keys t % 16 + 16 m, m = 0..3, so each key row
// chunk is read by 16 threads at once and each query chunk value is broadcast.

const TILE_THREADS: u32 = 256u;
const KEY_TILE: u32 = 64u;
const DIM_CHUNK: u32 = 16u;
const KV_PITCH: u32 = 17u;   // DIM_CHUNK + 1: padding avoids 16-way bank conflicts

var<workgroup> q_chunk: array<f32, 256>;        // Q_TILE x DIM_CHUNK
var<workgroup> kv_chunk: array<f32, 1088>;      // KEY_TILE x KV_PITCH

// Raw dot products q·k (unscaled) of thread t's four (query, key) pairs. Queries are rows
// q_row0 .. q_row0 + q_valid of q; keys key0 .. key0 + k_valid of flattened kv head kvh.
// Out-of-range queries and keys read as zero. Every thread must call it (barriers).
fn score_tile(t: u32, q_row0: u32, q_valid: u32, kvh: u32, key0: u32, k_valid: u32) -> vec4<f32> {
    var s = vec4<f32>(0.0);
    let qi = t / 16u;
    let kj = t % 16u;
    let dd = t % DIM_CHUNK;
    let rr = t / DIM_CHUNK;
    for (var d0 = 0u; d0 < HEAD_DIM; d0 += DIM_CHUNK) {
        let dim = d0 + dd;
        var x = 0.0;
        if (rr < q_valid && dim < HEAD_DIM) {
            x = f32(q_in[(q_row0 + rr) * HEAD_DIM + dim]);
        }
        q_chunk[rr * DIM_CHUNK + dd] = x;
        for (var m = 0u; m < 4u; m++) {
            let key = rr + 16u * m;
            var y = 0.0;
            if (key < k_valid && dim < HEAD_DIM) {
                y = f32(k_in[(kvh * p.n_kv + key0 + key) * HEAD_DIM + dim]);
            }
            kv_chunk[key * KV_PITCH + dd] = y;
        }
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
