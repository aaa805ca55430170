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
// that depth (bench `--kernel bandwidth`); both held their loads in a private array, which
// the driver may keep in local memory, where a stored load waits for its data at once. So a
// vec2 here, and the wide pass (topk_one_pass_wide) holds 16 loads in vec4s.
fn load_tile(row: u32, base: u32, len: u32, lid: u32) -> vec2<f32> {
    return vec2<f32>(
        score_in_row(row, tile_col(base, 0u, lid), len),
        score_in_row(row, tile_col(base, 1u, lid), len),
    );
}

// The score at `col`, or 0 past the row's `len` (not read).
fn score_in_row(row: u32, col: u32, len: u32) -> f32 {
    if (col < len) {
        return score(row, col);
    }
    return 0.0;
}

// The wide pass's reading order: entry e = 4·g + c of thread lid in the tile at `base` is
// column base + e·WG + lid, so a thread's entries are in index order.
fn wide_col(base: u32, g: u32, c: u32, lid: u32) -> u32 {
    return base + (4u * g + c) * WG + lid;
}

// Which entry of thread lid column `col` is.
fn wide_entry(col: u32, base: u32, lid: u32) -> u32 {
    return (col - base - lid) / WG;
}

// Entries 4g .. 4g + 3 of this thread's part of the tile at `base` (0 past the row).
fn wide_group(row: u32, base: u32, g: u32, len: u32, lid: u32) -> vec4<f32> {
    return vec4<f32>(
        score_in_row(row, wide_col(base, g, 0u, lid), len),
        score_in_row(row, wide_col(base, g, 1u, lid), len),
        score_in_row(row, wide_col(base, g, 2u, lid), len),
        score_in_row(row, wide_col(base, g, 3u, lid), len),
    );
}
