//! Absurd sizes and parameters — dimensions whose products overflow `usize`, zero dimensions
//! beside huge ones, NaN and infinite floats — reach every constructor and CPU reference. Each
//! must return `Ok` or a typed error; none may panic (this crate's test and release builds
//! check integer overflow, so a wrapped size is a panic here rather than a silently wrong
//! allocation). A shape whose tensors cannot be indexed must be rejected everywhere.

use crate::common;

use knn_attention::attention::{AttentionConfig, AttentionOutputs, GradOutputs, KeptOutputs};
use knn_attention::kernels::dense_attention::DenseAttention;
use knn_attention::kernels::dense_attention_backward::DenseAttentionBackward;
use knn_attention::kernels::gather_attention::{GatherAttention, GatherConfig};
use knn_attention::kernels::gumbel_max::{GumbelMax, SamplerConfig};
use knn_attention::kernels::lazy_gumbel::{LazyGumbel, LazySamples};
use knn_attention::kernels::lev_attention::{LevAttention, LevAttentionConfig};
use knn_attention::kernels::leverage_scores::{LeverageConfig, LeverageScores};
use knn_attention::kernels::sampling_attention::{
    MomConfig, SamplingAttention, SamplingAttentionConfig,
};
use knn_attention::kernels::sparse_attention_backward::SparseAttentionBackward;
use knn_attention::kernels::topk::{Topk, TopkConfig};
use knn_attention::kernels::topk_attention::{KPolicy, TopkAttention, TopkAttentionConfig};
use knn_attention::reference;
use knn_attention::shape::{AttentionShape, Mask};
use proptest::prelude::*;

/// Small sizes and the edges of u32, 2^31 and usize.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..4,
        Just(64),
        Just(1 << 20),
        Just(1 << 31),
        Just((1 << 32) + 1),
        Just(1 << 40),
        Just(usize::MAX / 3),
        Just(usize::MAX),
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop::sample::select(vec![f64::NAN, f64::INFINITY, -1.0, 0.0, 1e-300, 0.5, 1e300])
}

/// Half the shapes small and valid-looking (so the other parameters get checked), half with
/// sizes at the edges.
fn shape() -> impl Strategy<Value = AttentionShape> {
    let dims = |d: BoxedStrategy<usize>| (d.clone(), d.clone(), d.clone(), d.clone(), d.clone(), d);
    prop_oneof![dims((1usize..5).boxed()), dims(size().boxed())].prop_map(
        |(batch, heads_q, heads_kv, n_q, n_kv, head_dim)| AttentionShape {
            batch,
            heads_q,
            heads_kv,
            n_q,
            n_kv,
            head_dim,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn attention_kernels_reject_unindexable_shapes(
        shape in shape(), causal in prop::option::of(size()), a in size(), x in float(),
    ) {
        let Some(ctx) = common::gpu() else { return Ok(()) };
        let mask = causal.map_or(Mask::None, |offset| Mask::Causal { offset });
        let attn = AttentionConfig::new(shape).with_mask(mask).with_scale(x as f32);
        let lev = LevAttentionConfig { ridge: x as f32, ..LevAttentionConfig::new(attn, a) };
        let mom = MomConfig { samples: a, groups: a };
        let results = [
            DenseAttention::new(&ctx, attn).err(),
            DenseAttentionBackward::new(&ctx, attn).err(),
            SparseAttentionBackward::new(&ctx, attn, a).err(),
            TopkAttention::new(&ctx, TopkAttentionConfig::new(attn, KPolicy::Fixed(a))).err(),
            TopkAttention::new(&ctx, TopkAttentionConfig::new(attn, KPolicy::Power { alpha: x, c: x })).err(),
            GatherAttention::new(&ctx, GatherConfig::new(attn, a)).err(),
            LevAttention::new(&ctx, lev).err(),
            SamplingAttention::new(&ctx, SamplingAttentionConfig::new(attn, mom, 1)).err(),
            AttentionOutputs::new(&ctx, &shape).err(),
            GradOutputs::new(&ctx, &attn).err(),
        ];
        if shape.check_dims().is_err() {
            for (i, r) in results.iter().enumerate() {
                prop_assert!(r.is_some(), "constructor {i} accepted {shape:?}");
            }
        }
        // The first eight take the scale, x: a NaN or infinite one is an error.
        if !(x as f32).is_finite() {
            for (i, r) in results[..8].iter().enumerate() {
                prop_assert!(r.is_some(), "constructor {i} accepted scale {x}");
            }
        }

        // The references, with q/k/v of the right length where the shape is small.
        let small = shape.check_dims().is_ok() && shape.q_len().max(shape.kv_len()) <= 1 << 14;
        let (q, k) = if small {
            (vec![0.5f32; shape.q_len()], vec![0.25f32; shape.kv_len()])
        } else {
            (vec![], vec![])
        };
        let qkv = (&q[..], &k[..], &k[..]);
        let _ = reference::dense_attention::dense_attention(&shape, &q, &k, &k, x as f32, mask);
        let _ = reference::gather_attention::gather_attention(
            &GatherConfig::new(attn, a), qkv, &[0, 1, u32::MAX], None, None,
        );
        let _ = reference::topk_attention::topk_attention(
            &TopkAttentionConfig::new(attn, KPolicy::Power { alpha: x, c: x }), qkv,
        );
        let _ = reference::lev_attention::lev_attention(&lev, qkv);
        let _ = reference::sparse_attention_backward::sparse_attention_backward(
            &shape, x as f32, qkv, &[0, 1, u32::MAX], a, &q,
        );
        if shape.check_dims().is_err() {
            let r = reference::dense_attention::dense_attention(&shape, &q, &k, &k, 1.0, mask);
            prop_assert!(r.is_err());
        }
    }

    #[test]
    fn row_kernels_never_panic_on_absurd_sizes(
        rows in size(), n in size(), k in size(), stride in size(), x in float(),
    ) {
        let Some(ctx) = common::gpu() else { return Ok(()) };
        let cfg = TopkConfig { rows, n, k, row_stride: Some(stride), ..Default::default() };
        let topk = Topk::new(&ctx, cfg);
        let topk_ref = reference::topk::topk(&[1.0; 64], &cfg, stride, None);
        // Rows that span more than usize can hold fit no buffer and no slice.
        if rows > 0 && (rows - 1).checked_mul(stride.max(n)).is_none() {
            prop_assert!(topk.is_err() && topk_ref.is_err());
        }
        // Sample counts stay small: a valid config allocates rows × samples on the host.
        let sampler = SamplerConfig {
            temperature: x as f32,
            row_stride: Some(stride),
            ..SamplerConfig::new(rows, n, k.min(64), 1)
        };
        let _ = GumbelMax::new(&ctx, sampler);
        let _ = LazyGumbel::new(&ctx, sampler, stride);
        let _ = LazySamples::new(&ctx, rows, k);
        let _ = reference::gumbel_max::gumbel_max(&[1.0; 64], &sampler, None);
        let _ = reference::lazy_gumbel::lazy_gumbel(&[1.0; 64], &sampler, stride, None);
        let lev = LeverageConfig { ridge: x as f32, ..LeverageConfig::new(rows, n, k) };
        let _ = LeverageScores::new(&ctx, lev);
        let _ = reference::leverage_scores::leverage_scores(&[1.0; 64], &lev, stride);
        let _ = KeptOutputs::new(&ctx, rows, k);
        let _ = MomConfig::for_bound(x, x, x);
        let mom = MomConfig::for_bound(0.1, 0.1, x);
        if !(0.0..1e100).contains(&x) {
            prop_assert!(mom.is_err(), "sigma = {x} gave {mom:?}");
        }
    }
}
