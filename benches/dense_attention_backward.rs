//! criterion: exact flash-style backward of causal dense attention on whatever adapter is
//! present.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use knn_attention::attention::{AttentionConfig, AttentionOutputs, GradOutputs, Qkv};
use knn_attention::kernels::dense_attention::DenseAttention;
use knn_attention::kernels::dense_attention_backward::{
    DenseAttentionBackward, DenseBackwardInputs,
};
use knn_attention::{AttentionShape, Mask};

fn bench(c: &mut Criterion) {
    let Some(ctx) = common::context("dense_attention_backward") else {
        return;
    };
    let mut group = c.benchmark_group("dense_attention_backward");
    let shape = AttentionShape::new(2, 256, 256, 64);
    let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 0 });
    let (q, k, v, d_out) = (
        common::normal(&ctx, shape.q_len(), 1),
        common::normal(&ctx, shape.kv_len(), 2),
        common::normal(&ctx, shape.kv_len(), 3),
        common::normal(&ctx, shape.q_len(), 4),
    );
    let out = AttentionOutputs::new(&ctx, &shape).unwrap();
    let mut enc = ctx.encoder("forward");
    DenseAttention::new(&ctx, attn)
        .unwrap()
        .encode(&mut enc, Qkv::f32(&q, &k, &v), &out)
        .unwrap();
    ctx.submit_and_wait(enc).unwrap();
    let back = DenseAttentionBackward::new(&ctx, attn).unwrap();
    let grads = GradOutputs::new(&ctx, &attn).unwrap();
    common::time(&mut group, &ctx, "h2 n256 d64 causal".into(), |enc| {
        let inputs = DenseBackwardInputs {
            qkv: Qkv::f32(&q, &k, &v),
            forward: &out,
            d_out: &d_out,
        };
        back.encode(enc, inputs, &grads)
    });
    group.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(10).without_plots(); targets = bench }
criterion_main!(benches);
