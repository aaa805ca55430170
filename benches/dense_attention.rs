//! criterion: `dense_attention` (causal, d = 64) on whatever adapter is present.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use knn_attention::attention::{AttentionConfig, AttentionOutputs, Qkv};
use knn_attention::kernels::dense_attention::DenseAttention;
use knn_attention::{AttentionShape, Mask};

fn bench(c: &mut Criterion) {
    let Some(ctx) = common::context("dense_attention") else {
        return;
    };
    let mut group = c.benchmark_group("dense_attention");
    let shape = AttentionShape::new(2, 512, 512, 64);
    let cfg = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 0 });
    let kernel = DenseAttention::new(&ctx, cfg).unwrap();
    let (q, k, v) = (
        common::normal(&ctx, shape.q_len(), 1),
        common::normal(&ctx, shape.kv_len(), 2),
        common::normal(&ctx, shape.kv_len(), 3),
    );
    let out = AttentionOutputs::new(&ctx, &shape).unwrap();
    common::time(&mut group, &ctx, "h2 n512 d64 causal".into(), |enc| {
        kernel.encode(enc, Qkv::f32(&q, &k, &v), &out)
    });
    group.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(10).without_plots(); targets = bench }
criterion_main!(benches);
