//! criterion: `topk_attention` (causal, d = 64, k = 32) on whatever adapter is present.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use knn_attention::attention::{AttentionConfig, AttentionOutputs, Qkv};
use knn_attention::kernels::topk_attention::{KPolicy, TopkAttention, TopkAttentionConfig};
use knn_attention::{AttentionShape, Mask};

fn bench(c: &mut Criterion) {
    let Some(ctx) = common::context("topk_attention") else {
        return;
    };
    let mut group = c.benchmark_group("topk_attention");
    let shape = AttentionShape::new(2, 512, 512, 64);
    let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 0 });
    let kernel =
        TopkAttention::new(&ctx, TopkAttentionConfig::new(attn, KPolicy::Fixed(32))).unwrap();
    let (q, k, v) = (
        common::normal(&ctx, shape.q_len(), 1),
        common::normal(&ctx, shape.kv_len(), 2),
        common::normal(&ctx, shape.kv_len(), 3),
    );
    let out = AttentionOutputs::new(&ctx, &shape).unwrap();
    common::time(&mut group, &ctx, "h2 n512 d64 k32 causal".into(), |enc| {
        kernel.encode(enc, Qkv::f32(&q, &k, &v), &out, None)
    });
    group.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(10).without_plots(); targets = bench }
criterion_main!(benches);
