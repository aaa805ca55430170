//! criterion (no plots: plotters is built with `ab_glyph` for the examples, which needs a
//! registered font): `topk` (radix and one-pass) on whatever adapter is present, at shapes a
//! CPU driver can run.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use knn_attention::kernels::rng_fill::{Distribution, RngFill, RngKey};
use knn_attention::kernels::topk::{ONE_PASS_MAX_K, Strategy, Topk, TopkConfig, TopkInput};
use knn_attention::{GpuBuffer, GpuContext};

fn bench(c: &mut Criterion) {
    let ctx = match GpuContext::new_blocking() {
        Ok(ctx) => ctx,
        Err(e) => return eprintln!("no adapter, skipping topk bench: {e}"),
    };
    let fill = RngFill::new(&ctx).unwrap();
    let mut group = c.benchmark_group("topk");
    for (rows, n, k) in [(64, 4096, 32), (16, 65536, 256), (1, 131072, 2048)] {
        let scores = GpuBuffer::<f32>::zeroed(&ctx, rows * n, "scores").unwrap();
        let mut enc = ctx.encoder("fill");
        fill.encode(&mut enc, &scores, RngKey::default(), Distribution::Normal)
            .unwrap();
        ctx.submit_and_wait(enc).unwrap();
        for strategy in [Strategy::Radix, Strategy::OnePass] {
            if strategy == Strategy::OnePass && k > ONE_PASS_MAX_K {
                continue;
            }
            let cfg = TopkConfig {
                rows,
                n,
                k,
                strategy,
                ..Default::default()
            };
            let topk = Topk::new(&ctx, cfg).unwrap();
            let out = topk.outputs().unwrap();
            group.throughput(Throughput::Bytes((rows * n * 4) as u64));
            group.bench_function(format!("{rows}x{n}/k={k}/{strategy:?}"), |b| {
                b.iter(|| {
                    let mut enc = ctx.encoder("bench");
                    topk.encode(&mut enc, TopkInput::new(&scores), &out)
                        .unwrap();
                    ctx.submit_and_wait(enc).unwrap();
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).without_plots();
    targets = bench
}
criterion_main!(benches);
