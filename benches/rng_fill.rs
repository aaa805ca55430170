//! criterion: `rng_fill` throughput on whatever adapter is present (GPU time per submit,
//! including submission overhead; the bench CLI reports timestamp-based numbers).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use knn_attention::kernels::rng_fill::{Distribution, RngFill, RngKey};
use knn_attention::{GpuBuffer, GpuContext};

fn bench(c: &mut Criterion) {
    let ctx = match GpuContext::new_blocking() {
        Ok(ctx) => ctx,
        Err(e) => return eprintln!("no adapter, skipping rng_fill bench: {e}"),
    };
    let fill = RngFill::new(&ctx).unwrap();
    let mut group = c.benchmark_group("rng_fill");
    for len in [1usize << 20, 1 << 22] {
        let out = GpuBuffer::<f32>::zeroed(&ctx, len, "bench").unwrap();
        group.throughput(Throughput::Bytes(len as u64 * 4));
        for dist in [Distribution::Uniform, Distribution::Gumbel] {
            group.bench_function(format!("{dist:?}/{len}"), |b| {
                b.iter(|| {
                    let mut enc = ctx.encoder("bench");
                    fill.encode(&mut enc, &out, RngKey::default(), dist)
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
    config = Criterion::default().sample_size(20).without_plots();
    targets = bench
}
criterion_main!(benches);
