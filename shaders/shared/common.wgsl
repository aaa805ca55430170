// Helpers shared by every kernel.

// Flattens a (possibly folded) 3D dispatch into one workgroup index. The host folds dispatches
// of more than 65535 workgroups into x·y (see `dispatch::grid`), and kernels use this index
// with a bounds check instead of assuming the grid is exact.
fn linear_workgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + nwg.x * (wid.y + nwg.y * wid.z);
}
