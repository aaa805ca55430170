// The one pass's reading order in quads (topk_quad: `Score` is vec4<f32>, rows start on a
// quad and n is a multiple of 4, as `Loads::Vec4` and `Loads::Auto` require). Two tiles are one
// double tile of 2·ONE_PASS_TILE entries, one quad per thread: thread lid reads entries
// 4·lid .. 4·lid + 3 of it in one 16-byte load, and takes two of them in each tile (the
// first tile components 0 and 1, the second 2 and 3; ONE_PASS_PER_THREAD is 2). A tile is
// then no longer a range of indices, so a key equal to tau may come from a smaller index:
// `admits` compares (key, index) pairs, and the result stays exactly the reference's.

fn double_tile(base: u32) -> u32 {
    return base & ~(2u * ONE_PASS_TILE - 1u);
}

// Which half of its quad tile `base` takes: component 0 or 2.
fn quad_half(base: u32) -> u32 {
    return select(0u, 2u, base != double_tile(base));
}

// The columns the tile at `base` may hold: its whole double tile.
fn tile_span(base: u32) -> vec2<u32> {
    return vec2<u32>(double_tile(base), double_tile(base) + 2u * ONE_PASS_TILE);
}

fn tile_col(base: u32, e: u32, lid: u32) -> u32 {
    return double_tile(base) + 4u * lid + quad_half(base) + e;
}

fn admits(key: u32, col: u32, tau: vec2<u32>) -> bool {
    return key > tau.x || (key == tau.x && col < tau.y);
}

// This thread's entries of the tile at `base` (0 past the row): one quad load, which the
// second tile of a double tile makes again (a cache hit) rather than keep it across the loop.
fn load_tile(row: u32, base: u32, len: u32, lid: u32) -> vec2<f32> {
    let quad = double_tile(base) + 4u * lid; // this thread's quad, in columns
    if (quad + quad_half(base) < len) {
        let q = scores[(p.in_shift + row * p.stride + quad) / 4u];
        // The second entry past a ragged row's length: read, never used.
        return select(q.xy, q.zw, quad_half(base) != 0u);
    }
    return vec2<f32>(0.0);
}

// The wide pass's reading order in quads: group g of thread lid in the tile at `base` is the
// quad at column base + 4·(g·WG + lid), read in one 16-byte load.
fn wide_col(base: u32, g: u32, c: u32, lid: u32) -> u32 {
    return base + 4u * (g * WG + lid) + c;
}

fn wide_entry(col: u32, base: u32, lid: u32) -> u32 {
    let q = col - base;
    return 4u * ((q / 4u - lid) / WG) + q % 4u;
}

// Past a ragged row's length: read (the quad lies within n), never used.
fn wide_group(row: u32, base: u32, g: u32, len: u32, lid: u32) -> vec4<f32> {
    let col = wide_col(base, g, 0u, lid);
    if (col < len) {
        return scores[(p.in_shift + row * p.stride + col) / 4u];
    }
    return vec4<f32>(0.0);
}
