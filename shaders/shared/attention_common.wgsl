// Shapes, indexing and numerics shared by the attention kernels. Kernels with two storage
// tiers define `alias Elem` (f32 or f16: the storage type of q, k, v; arithmetic is f32).
//
// Layout (see src/shape.rs): q, out [batch, heads_q, n_q, HEAD_DIM]; k, v [batch, heads_kv,
// n_kv, HEAD_DIM]; lse [batch, heads_q, n_q]. A "row" is one query: row = bh * n_q + i with
// bh = b * heads_q + h. Query head h reads kv head h / (heads_q / heads_kv).

//! include shared/common.wgsl

struct AttentionParams {
    heads_q: u32,
    heads_kv: u32,
    n_q: u32,
    n_kv: u32,
    rows: u32,          // batch * heads_q * n_q
    causal: u32,        // 1: query i sees keys j <= i + causal_offset
    causal_offset: u32,
    scale: f32,
    slots: u32,         // index slots per row (gather: k; top-k attention: k_max)
    sinks: u32,         // always keep keys [0, sinks)
    window: u32,        // always keep the last `window` visible keys
    has_k_rows: u32,    // 1: query i uses only its first k_rows[i] index slots
    tiled: u32,         // 1: rows come in score-block tile order (see query_of_block_row)
    tile0: u32,         // first query tile of this block (tiled) / first row (plain)
    block_rows: u32,    // rows (plain) or tile rows (tiled) in this dispatch
    key_span: u32,      // keys per workgroup of attention_scores
    paged: u32,         // 1: k, v are a page pool addressed through block_table
    page_size: u32,
    pages_per_seq: u32,
    write_kept: u32,    // 1: write per-slot probabilities
    pool_pages: u32,    // pages in the paged k/v pool; larger page ids are skipped
    index_per_head: u32, // 1: one index row per kv head (b * heads_kv + h), shared by its queries
    sample_weight: f32, // backward: > 0 means slots are samples of weight 1/L and D is given
    key_splits: u32,    // dense: > 1 splits each tile's keys into spans of key_span (split-K)
}

// Head dimension, a pipeline constant so that loops over it unroll.
override HEAD_DIM: u32 = 64u;

const NO_KEY: u32 = 0xFFFFFFFFu;
// Largest HEAD_DIM: one thread per dimension in a 256-thread workgroup (gather, backward),
// and 16 chunks of DIM_CHUNK in the tiled kernels. The host's `MAX_HEAD_DIM` is this.
const MAX_HEAD_DIM: u32 = 256u;
const Q_TILE: u32 = 16u;      // queries per score tile

// max that ignores NaN in `b` (a is never NaN): NaN scores then propagate through exp() into
// the sums, as in the f64 reference, instead of depending on how the GPU's max treats NaN.
fn max_num(a: f32, b: f32) -> f32 {
    return select(a, b, b > a);
}

// Number of keys query i sees.
fn visible(i: u32) -> u32 {
    if (p.causal != 0u) {
        return min(i + p.causal_offset + 1u, p.n_kv);
    }
    return p.n_kv;
}

// Flattened kv head (b * heads_kv + kv_h) read by query head bh = b * heads_q + h.
fn kv_head_of(bh: u32) -> u32 {
    let b = bh / p.heads_q;
    let h = bh % p.heads_q;
    return b * p.heads_kv + h / (p.heads_q / p.heads_kv);
}

fn query_tiles_per_head() -> u32 {
    return (p.n_q + Q_TILE - 1u) / Q_TILE;
}

// Query of row r of a score block: tiles of Q_TILE queries of one head, starting at p.tile0.
// Returns (bh, i); i >= n_q marks a padding row of the last tile of a head.
fn query_of_block_row(r: u32) -> vec2<u32> {
    let tph = query_tiles_per_head();
    let tile = p.tile0 + r / Q_TILE;
    return vec2<u32>(tile / tph, (tile % tph) * Q_TILE + r % Q_TILE);
}

// The query tile of workgroup g < query_tiles(): Q_TILE queries of head bh from query i0
// (q_valid of them real), its kv head, the q row of its first query, and how many keys its
// first and last query see (keys past vis_max are never loaded; tiles ending after vis_min
// straddle a causal edge).
struct QueryTile {
    bh: u32,
    i0: u32,
    q_valid: u32,
    kvh: u32,
    row0: u32,
    vis_min: u32,
    vis_max: u32,
}

fn query_tiles() -> u32 {
    return (p.rows / p.n_q) * query_tiles_per_head();
}

fn query_tile(g: u32) -> QueryTile {
    let tph = query_tiles_per_head();
    let bh = g / tph;
    let i0 = (g % tph) * Q_TILE;
    let q_valid = min(Q_TILE, p.n_q - i0);
    return QueryTile(bh, i0, q_valid, kv_head_of(bh), bh * p.n_q + i0, visible(i0), visible(i0 + q_valid - 1u));
}
