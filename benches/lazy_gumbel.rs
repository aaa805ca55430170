//! criterion: `lazy_gumbel` (top-k included) against full-row `gumbel_max`, L = 16, on
//! whatever adapter is present.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use knn_attention::GpuBuffer;
use knn_attention::kernels::gumbel_max::{GumbelMax, SamplerConfig};
use knn_attention::kernels::lazy_gumbel::{LazyGumbel, LazySamples};

fn bench(c: &mut Criterion) {
    let Some(ctx) = common::context("lazy_gumbel") else {
        return;
    };
    let mut group = c.benchmark_group("lazy_gumbel");
    let (rows, n) = (16, 16384);
    let scores = common::normal(&ctx, rows * n, 1);
    let cfg = SamplerConfig::new(rows, n, 16, 1);
    let lazy = LazyGumbel::new(&ctx, cfg, 128).unwrap();
    let out = LazySamples::new(&ctx, rows, 16).unwrap();
    common::time(
        &mut group,
        &ctx,
        format!("lazy {rows}x{n} L16 k128"),
        |enc| lazy.encode(enc, &scores, None, &out),
    );
    let full = GumbelMax::new(&ctx, cfg).unwrap();
    let samples = GpuBuffer::<u32>::zeroed(&ctx, rows * 16, "samples").unwrap();
    common::time(
        &mut group,
        &ctx,
        format!("gumbel_max {rows}x{n} L16"),
        |enc| full.encode(enc, &scores, None, &samples),
    );
    group.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(10).without_plots(); targets = bench }
criterion_main!(benches);
