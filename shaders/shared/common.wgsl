// Helpers shared by every kernel.

// Flattens a (possibly folded) 3D dispatch into one workgroup index. The host folds dispatches
// of more than 65535 workgroups into x·y (see `dispatch::grid`), and kernels use this index
// with a bounds check instead of assuming the grid is exact.
fn linear_workgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + nwg.x * (wid.y + nwg.y * wid.z);
}

// ±inf and NaN, made at run time: WGSL makes a constant expression whose value is not finite
// a shader-creation error, so `bitcast<f32>(0xFF800000u)` is rejected by Tint (Chrome, Dawn)
// though naga accepts it. A function parameter is never constant.
fn f32_from_bits(bits: u32) -> f32 {
    return bitcast<f32>(bits);
}

fn neg_inf() -> f32 {
    return f32_from_bits(0xFF800000u);
}

fn pos_inf() -> f32 {
    return f32_from_bits(0x7F800000u);
}

fn quiet_nan() -> f32 {
    return f32_from_bits(0x7FC00000u);
}

// Special-value tests on the bits. Float comparisons with NaN are not reliably unordered on
// every driver (lavapipe evaluates NaN != -inf as false), and exp(NaN) need not be NaN.
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7FFFFFFFu) > 0x7F800000u;
}

fn is_neg_inf(x: f32) -> bool {
    return bitcast<u32>(x) == 0xFF800000u;
}
