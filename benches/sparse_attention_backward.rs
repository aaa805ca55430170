//! criterion: exact backward of causal top-k attention (k = 16) on whatever adapter is present.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use knn_attention::attention::{AttentionConfig, AttentionOutputs, GradOutputs, KeptOutputs, Qkv};
use knn_attention::kernels::sparse_attention_backward::{BackwardInputs, SparseAttentionBackward};
use knn_attention::kernels::topk_attention::{KPolicy, TopkAttention, TopkAttentionConfig};
use knn_attention::{AttentionShape, Mask};

fn bench(c: &mut Criterion) {
    let Some(ctx) = common::context("sparse_attention_backward") else {
        return;
    };
    let mut group = c.benchmark_group("sparse_attention_backward");
    let shape = AttentionShape::new(2, 256, 256, 64);
    let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 0 });
    let fwd = TopkAttention::new(&ctx, TopkAttentionConfig::new(attn, KPolicy::Fixed(16))).unwrap();
    let (q, k, v) = (
        common::normal(&ctx, shape.q_len(), 1),
        common::normal(&ctx, shape.kv_len(), 2),
        common::normal(&ctx, shape.kv_len(), 3),
    );
    let out = AttentionOutputs::new(&ctx, &shape).unwrap();
    let kept = KeptOutputs::new(&ctx, shape.rows(), fwd.total_slots()).unwrap();
    let mut enc = ctx.encoder("forward");
    fwd.encode(&mut enc, Qkv::f32(&q, &k, &v), &out, Some(&kept))
        .unwrap();
    ctx.submit_and_wait(enc).unwrap();
    let back = SparseAttentionBackward::new(&ctx, attn, fwd.total_slots()).unwrap();
    let grads = GradOutputs::new(&ctx, &attn).unwrap();
    common::time(&mut group, &ctx, "h2 n256 d64 k16 causal".into(), |enc| {
        back.encode(
            enc,
            BackwardInputs {
                qkv: Qkv::f32(&q, &k, &v),
                d_out: &out.out,
                kept: &kept,
            },
            &grads,
        )
    });
    group.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(10).without_plots(); targets = bench }
criterion_main!(benches);
