// The one pass's reading order, row order (every kernel but topk_quad): tile entry e of thread
// lid is column base + e·WG + lid, so tiles arrive in index order and a key equal to the k-th
// (tau) always has a larger index than it: `admits` needs only the key.

// The columns the tile at `base` may hold: [x, y).
fn tile_span(base: u32) -> vec2<u32> {
    return vec2<u32>(base, base + ONE_PASS_TILE);
}

fn tile_col(base: u32, e: u32, lid: u32) -> u32 {
    return base + e * WG + lid;
}

fn admits(key: u32, col: u32, tau: vec2<u32>) -> bool {
    return key > tau.x;
}

// This thread's entries of the tile at `base` (0 past the row). The loop loads the next
// tile before filtering the current one, so the loads are in flight across the filter and
// its barriers instead of starting after them. Loading four tiles ahead (8 loads in flight)
// was slower on an H200 (4096×65536, k = 32: 3.18 -> 4.03 ms), as was a plain row read at
// that depth (bench `--kernel bandwidth`): latency is not what bounds this loop.
fn load_tile(row: u32, base: u32, len: u32, lid: u32) -> array<f32, ONE_PASS_PER_THREAD> {
    var v: array<f32, ONE_PASS_PER_THREAD>;
    for (var e = 0u; e < ONE_PASS_PER_THREAD; e++) {
        let col = tile_col(base, e, lid);
        if (col < len) {
            v[e] = score(row, col);
        }
    }
    return v;
}
