//! criterion: leverage scores plus the universal set (`lev_attention` append + refresh) on
//! whatever adapter is present.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use knn_attention::AttentionShape;
use knn_attention::attention::AttentionConfig;
use knn_attention::kernels::lev_attention::{LevAttention, LevAttentionConfig};

fn bench(c: &mut Criterion) {
    let Some(ctx) = common::context("lev_attention") else {
        return;
    };
    let mut group = c.benchmark_group("lev_attention");
    let (heads, n) = (2, 4096);
    let shape = AttentionShape::new(heads, 1, n, 64);
    let lev = LevAttention::new(
        &ctx,
        LevAttentionConfig::new(AttentionConfig::new(shape), 64),
    )
    .unwrap();
    let k = common::normal(&ctx, shape.kv_len(), 2);
    common::time(&mut group, &ctx, format!("h{heads} n{n} d64 U64"), |enc| {
        lev.append(enc, &k, 0, n)?;
        lev.refresh(enc, &k, n)
    });
    group.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(10).without_plots(); targets = bench }
criterion_main!(benches);
