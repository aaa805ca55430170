//! criterion: `gather_attention` for sparse decode (one query per sequence and head, random
//! keys) on whatever adapter is present.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use knn_attention::attention::{AttentionConfig, AttentionOutputs, Qkv};
use knn_attention::kernels::gather_attention::{GatherAttention, GatherConfig, GatherInputs};
use knn_attention::{AttentionShape, GpuBuffer};

fn bench(c: &mut Criterion) {
    let Some(ctx) = common::context("gather_attention") else {
        return;
    };
    let mut group = c.benchmark_group("gather_attention");
    let (n, k) = (4096, 128);
    let shape = AttentionShape {
        batch: 2,
        heads_q: 4,
        heads_kv: 1,
        n_q: 1,
        n_kv: n,
        head_dim: 128,
    };
    let kernel =
        GatherAttention::new(&ctx, GatherConfig::new(AttentionConfig::new(shape), k)).unwrap();
    let (q, kk, v) = (
        common::normal(&ctx, shape.q_len(), 1),
        common::normal(&ctx, shape.kv_len(), 2),
        common::normal(&ctx, shape.kv_len(), 3),
    );
    let idx: Vec<u32> = (0..shape.rows() * k)
        .map(|i| (i * 2654435761 % n) as u32)
        .collect();
    let indices = GpuBuffer::from_slice(&ctx, &idx, "indices").unwrap();
    let out = AttentionOutputs::new(&ctx, &shape).unwrap();
    common::time(&mut group, &ctx, format!("B2 H4/1 N{n} k{k} d128"), |enc| {
        let inputs = GatherInputs {
            qkv: Qkv::f32(&q, &kk, &v),
            indices: &indices,
            k_rows: None,
            block_table: None,
        };
        kernel.encode(enc, inputs, &out, None)
    });
    group.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(10).without_plots(); targets = bench }
criterion_main!(benches);
