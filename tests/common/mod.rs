//! Shared test helpers: the GPU context, statistics, and the real-data loader.

pub mod data;
pub mod stats;

use std::sync::OnceLock;

use knn_attention::GpuContext;

/// True when a missing adapter must fail the test run (CI, or explicitly requested).
pub fn gpu_required() -> bool {
    data::strict()
}

/// One context per test binary, chosen like wgpu's own tests (`WGPU_BACKEND`,
/// `WGPU_ADAPTER_NAME`). `None` (with a printed reason) when there is no adapter and no GPU
/// is required; a panic when one is required. `KNN_ATTENTION_SHADER_CHECKS` (`none`, or the
/// checks to keep, as `ShaderChecks` parses them) runs every test on kernels compiled with
/// fewer checks.
pub fn gpu() -> Option<GpuContext> {
    static CTX: OnceLock<Result<GpuContext, String>> = OnceLock::new();
    let init = || -> Result<GpuContext, String> {
        let ctx = GpuContext::new_blocking().map_err(|e| e.to_string())?;
        match std::env::var("KNN_ATTENTION_SHADER_CHECKS") {
            Err(_) => Ok(ctx),
            Ok(spec) => {
                let checks = spec
                    .parse()
                    .unwrap_or_else(|e| panic!("KNN_ATTENTION_SHADER_CHECKS: {e}"));
                // SAFETY: testing the kernels under these checks is the point.
                Ok(unsafe { ctx.with_shader_checks(checks) })
            }
        }
    };
    match CTX.get_or_init(init) {
        Ok(ctx) => Some(ctx.clone()),
        Err(e) if gpu_required() => panic!("GPU required (CI or KNN_ATTENTION_REQUIRE_GPU=1): {e}"),
        Err(e) => {
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}

/// `let ctx = gpu_or_skip!();` at the top of a GPU test.
#[macro_export]
macro_rules! gpu_or_skip {
    () => {
        match $crate::common::gpu() {
            Some(ctx) => ctx,
            None => return,
        }
    };
}

/// Deterministic test data from the crate's own generator (so tests need no other RNG).
pub fn normal_data(len: usize, seed: u64) -> Vec<f32> {
    use knn_attention::kernels::rng_fill::{Distribution, RngKey};
    knn_attention::reference::rng_fill::rng_fill_f32(
        len,
        RngKey {
            seed,
            ..Default::default()
        },
        Distribution::Normal,
    )
}

/// A context on a device the test created itself with `limits`, as an application embedding
/// the library would (`GpuContext::from_device`).
pub fn borrowed_context(limits: wgpu::Limits) -> GpuContext {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default())).unwrap();
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: limits,
        ..Default::default()
    }))
    .unwrap();
    GpuContext::from_device(device, queue, adapter.get_info())
}

/// `data` rounded to f16 and back: what a kernel with f16 storage actually sees.
pub fn round_f16(data: &[f32]) -> Vec<f32> {
    data.iter()
        .map(|&x| half::f16::from_f32(x).to_f32())
        .collect()
}

/// Asserts `got ≈ want` under `tol`, naming the first mismatch.
pub fn assert_close(
    what: &str,
    got: &[f32],
    want: &[f32],
    tol: knn_attention::tolerance::Tolerance,
) {
    if let Some(m) = tol.first_mismatch(got, want) {
        panic!(
            "{what}: element {} is {} but the reference says {} (tolerance {tol:?}, len {} vs {})",
            m.index,
            m.got,
            m.want,
            got.len(),
            want.len()
        );
    }
}

/// Asserts gradients match the reference within `tol` times the largest finite reference
/// magnitude of each tensor (at least 1): gradients are sums of many f32 terms of both signs,
/// so their error scales with the tensor, not the element. NaN must meet NaN.
pub fn assert_grads(
    what: &str,
    got: &knn_attention::reference::sparse_attention_backward::AttentionGrads,
    want: &knn_attention::reference::sparse_attention_backward::AttentionGrads,
    tol: f32,
) {
    for (name, g, w) in [
        ("dq", &got.dq, &want.dq),
        ("dk", &got.dk, &want.dk),
        ("dv", &got.dv, &want.dv),
    ] {
        assert_eq!(g.len(), w.len(), "{what} {name}: length");
        let scale = w
            .iter()
            .filter(|x| x.is_finite())
            .fold(1f32, |m, x| m.max(x.abs()));
        for (i, (a, b)) in g.iter().zip(w).enumerate() {
            let ok = if b.is_nan() || a.is_nan() {
                a.is_nan() && b.is_nan()
            } else {
                (a - b).abs() <= tol * scale
            };
            assert!(ok, "{what} {name}[{i}]: {a} vs {b}");
        }
    }
}
