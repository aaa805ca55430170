// The u32 key every top-k orders by (larger key = larger number): NaN maps to 0, below
// every number including -inf; -0.0 and +0.0 share a key. Mirrors
// `reference::topk::order_key` with `Order::Largest`. Needs shared/common.wgsl.
fn largest_key(x: f32) -> u32 {
    if (is_nan(x)) {
        return 0u;
    }
    var bits = bitcast<u32>(x);
    if (bits == 0x80000000u) {
        bits = 0u;
    }
    return select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
}
