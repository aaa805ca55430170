// Exact f16 -> f32 widening in integer arithmetic, for kernels that promise the stored value
// bit for bit. A float conversion may flush f16 subnormals to zero (WGSL allows it; with the
// conversion, f16 top-k failed its reference test on NVIDIA's Vulkan driver, and passed with
// this), and every f16 subnormal is a normal f32, so integer widening loses nothing. NaN gets
// the quiet bit, as the `half` crate (the CPU reference's widening) and F16C do.
fn widen_f16_bits(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1Fu;
    let m = h & 0x3FFu;
    if (e == 0x1Fu) {
        return bitcast<f32>(sign | select(0x7F800000u, 0x7FC00000u | (m << 13u), m != 0u));
    }
    if (e != 0u) {
        return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
    }
    if (m == 0u) {
        return bitcast<f32>(sign);
    }
    // Subnormal m·2^-24: the leading bit b becomes the implicit one, exponent b - 24.
    let b = firstLeadingBit(m);
    return bitcast<f32>(sign | ((b + 103u) << 23u) | ((m << (23u - b)) & 0x7FFFFFu));
}
