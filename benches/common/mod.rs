//! Shared by the criterion benches: the adapter, GPU-filled random data, and one timed
//! encode → submit → wait loop.
#![allow(dead_code)]

use criterion::BenchmarkGroup;
use criterion::measurement::WallTime;
use knn_attention::kernels::rng_fill::{Distribution, RngFill, RngKey};
use knn_attention::{GpuBuffer, GpuContext, Result};

/// The adapter, or `None` (with a message) so `cargo bench` still runs without one.
pub fn context(what: &str) -> Option<GpuContext> {
    GpuContext::new_blocking()
        .inspect_err(|e| eprintln!("no adapter, skipping {what} bench: {e}"))
        .ok()
}

/// `len` standard normals filled on the GPU (stream `stream`).
pub fn normal(ctx: &GpuContext, len: usize, stream: u64) -> GpuBuffer<f32> {
    let fill = RngFill::new(ctx).unwrap();
    let b = GpuBuffer::zeroed(ctx, len, "bench.data").unwrap();
    let mut enc = ctx.encoder("fill");
    let key = RngKey {
        stream,
        ..Default::default()
    };
    fill.encode(&mut enc, &b, key, Distribution::Normal)
        .unwrap();
    ctx.submit_and_wait(enc).unwrap();
    b
}

/// Times `record` (one encode) end to end: encode, submit, wait.
pub fn time(
    group: &mut BenchmarkGroup<'_, WallTime>,
    ctx: &GpuContext,
    name: String,
    record: impl Fn(&mut wgpu::CommandEncoder) -> Result<()>,
) {
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut enc = ctx.encoder("bench");
            record(&mut enc).unwrap();
            ctx.submit_and_wait(enc).unwrap();
        })
    });
}
