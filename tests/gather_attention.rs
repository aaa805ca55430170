//! `gather_attention` on the GPU against its CPU reference: slot rule (padding, invisible and
//! duplicate indices, per-row k, sinks and window), paged KV, head dims, GQA, causal masks,
//! f16 storage, >65535 rows, and bad input.

use crate::common;

use knn_attention::attention::{
    AttentionConfig, AttentionOutputs, Keep, Qkv, SparseAttentionOutput,
};
use knn_attention::buffer::{ElemType, GpuBuffer};
use knn_attention::kernels::gather_attention::{
    GatherAttention, GatherConfig, GatherInputs, PagedKv,
};
use knn_attention::reference::dense_attention::dense_attention;
use knn_attention::reference::gather_attention::gather_attention;
use knn_attention::tolerance::ATTENTION;
use knn_attention::{AttentionShape, Error, GpuContext, Mask};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

struct Case {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    indices: Vec<u32>,
}

/// Random data; indices mostly valid keys, with padding, out-of-range keys and duplicates.
fn case(cfg: &GatherConfig, seed: u64) -> Case {
    let s = &cfg.attn.shape;
    let mut rng = StdRng::seed_from_u64(seed);
    let indices = (0..s.rows() * cfg.slots)
        .map(|_| match rng.random_range(0..20) {
            0 => u32::MAX,
            1 => s.n_kv as u32 + rng.random_range(0..3),
            _ => rng.random_range(0..s.n_kv as u32),
        })
        .collect();
    let kv = cfg.kv_len();
    let mut c = Case {
        q: common::normal_data(s.q_len(), seed),
        k: common::normal_data(kv, seed + 1),
        v: common::normal_data(kv, seed + 2),
        indices,
    };
    if cfg.attn.storage == ElemType::F16 {
        c.q = common::round_f16(&c.q);
        c.k = common::round_f16(&c.k);
        c.v = common::round_f16(&c.v);
    }
    c
}

fn assert_matches(what: &str, got: &SparseAttentionOutput, want: &SparseAttentionOutput) {
    assert_eq!(got.kept, want.kept, "{what}: kept keys");
    common::assert_close(&format!("{what}: out"), &got.out, &want.out, ATTENTION);
    common::assert_close(&format!("{what}: lse"), &got.lse, &want.lse, ATTENTION);
    common::assert_close(
        &format!("{what}: probs"),
        &got.probs,
        &want.probs,
        ATTENTION,
    );
}

fn check(ctx: &GpuContext, cfg: GatherConfig, k_rows: Option<&[u32]>, seed: u64) {
    let c = case(&cfg, seed);
    let got = GatherAttention::new(ctx, cfg)
        .unwrap()
        .run((&c.q, &c.k, &c.v), &c.indices, k_rows, None)
        .unwrap();
    let want = gather_attention(&cfg, (&c.q, &c.k, &c.v), &c.indices, k_rows, None).unwrap();
    assert_matches(&format!("{cfg:?}"), &got, &want);
}

/// Slot counts just below, at and above the 256-slot chunk; sinks and windows that overlap
/// each other and the indices; causal rows shorter than the window.
#[test]
fn gpu_matches_reference_for_slots_sinks_and_windows() {
    let ctx = gpu_or_skip!();
    for slots in [1, 255, 256, 257, 600] {
        for (sinks, window) in [(0, 0), (4, 0), (0, 16), (3, 300)] {
            let shape = AttentionShape::new(2, 5, 700, 16);
            let mut cfg = GatherConfig::new(
                AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 695 }),
                slots,
            );
            cfg.keep = Keep { sinks, window };
            check(&ctx, cfg, None, slots as u64 * 7 + sinks as u64);
        }
    }
}

#[test]
fn gpu_matches_reference_for_head_dims_gqa_and_k_rows() {
    let ctx = gpu_or_skip!();
    for d in [1, 32, 80, 96, 128, 256] {
        let cfg = GatherConfig::new(AttentionConfig::new(AttentionShape::new(2, 9, 50, d)), 20);
        check(&ctx, cfg, None, 1000 + d as u64);
    }
    for (hq, hkv) in [(2, 1), (3, 1), (4, 2), (8, 1)] {
        let shape = AttentionShape {
            batch: 2,
            heads_q: hq,
            heads_kv: hkv,
            n_q: 12,
            n_kv: 30,
            head_dim: 8,
        };
        let cfg = GatherConfig {
            keep: Keep {
                sinks: 1,
                window: 2,
            },
            ..GatherConfig::new(
                AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 3 }),
                6,
            )
        };
        let k_rows: Vec<u32> = (0..12).map(|i| (i % 7) as u32).collect();
        check(&ctx, cfg, Some(&k_rows), 2000 + hq as u64);
    }
}

#[test]
fn gpu_f16_storage() {
    let ctx = gpu_or_skip!();
    let attn = AttentionConfig::new(AttentionShape::new(2, 7, 300, 64)).with_storage(ElemType::F16);
    let cfg = GatherConfig::new(attn, 40);
    if !ctx.capabilities().f16 {
        assert!(matches!(
            GatherAttention::new(&ctx, cfg),
            Err(Error::Unsupported { .. })
        ));
        return;
    }
    check(&ctx, cfg, None, 3000);
}

/// Every visible key as an index (plus padding) is exact dense attention.
#[test]
fn all_keys_equal_dense_attention() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape::new(3, 10, 37, 12);
    let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 27 });
    let cfg = GatherConfig::new(attn, 40);
    let c = case(&cfg, 4000);
    let indices: Vec<u32> = (0..shape.rows())
        .flat_map(|_| (0..40u32).map(|j| if j < 37 { 36 - j } else { u32::MAX }))
        .collect();
    let dense = dense_attention(&shape, &c.q, &c.k, &c.v, attn.scale, attn.mask).unwrap();
    let cpu = gather_attention(&cfg, (&c.q, &c.k, &c.v), &indices, None, None).unwrap();
    let gpu = GatherAttention::new(&ctx, cfg)
        .unwrap()
        .run((&c.q, &c.k, &c.v), &indices, None, None)
        .unwrap();
    common::assert_close("reference vs dense", &cpu.out, &dense.out, ATTENTION);
    common::assert_close("reference lse vs dense", &cpu.lse, &dense.lse, ATTENTION);
    common::assert_close("gpu vs dense", &gpu.out, &dense.out, ATTENTION);
}

/// A paged cache (pages shuffled through a block table, one page id out of the pool) equals
/// the same cache stored densely, with the out-of-pool page's keys skipped.
#[test]
fn paged_layout_matches_dense_layout() {
    let ctx = gpu_or_skip!();
    let (batch, hkv, n_kv, d, page) = (2usize, 2usize, 45usize, 8usize, 8usize);
    let pages_per_seq = n_kv.div_ceil(page);
    let pool_pages = batch * pages_per_seq + 3;
    let shape = AttentionShape {
        batch,
        heads_q: 4,
        heads_kv: hkv,
        n_q: 3,
        n_kv,
        head_dim: d,
    };
    let attn = AttentionConfig::new(shape);
    let dense_cfg = GatherConfig::new(attn, 30);
    let paged_cfg = GatherConfig {
        paged: Some(PagedKv {
            page_size: page,
            pages_per_seq,
            pool_pages,
        }),
        ..dense_cfg
    };
    let mut c = case(&paged_cfg, 5000);
    // Page p of sequence b lives at pool page (7 p + 3 b + 1) mod pool_pages (a permutation).
    let mut table: Vec<u32> = (0..batch * pages_per_seq)
        .map(|t| ((7 * (t % pages_per_seq) + 3 * (t / pages_per_seq) + 1) % pool_pages) as u32)
        .collect();
    let mut seen = table.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        table.len(),
        "the test's page map must be a permutation"
    );
    // Un-page into the dense layout.
    let mut k_dense = vec![0f32; shape.kv_len()];
    let mut v_dense = vec![0f32; shape.kv_len()];
    for b in 0..batch {
        for h in 0..hkv {
            for j in 0..n_kv {
                let pg = table[b * pages_per_seq + j / page] as usize;
                let src = ((pg * hkv + h) * page + j % page) * d;
                let dst = ((b * hkv + h) * n_kv + j) * d;
                k_dense[dst..dst + d].copy_from_slice(&c.k[src..src + d]);
                v_dense[dst..dst + d].copy_from_slice(&c.v[src..src + d]);
            }
        }
    }
    let gpu_paged = GatherAttention::new(&ctx, paged_cfg).unwrap();
    let got = gpu_paged
        .run((&c.q, &c.k, &c.v), &c.indices, None, Some(&table))
        .unwrap();
    let want = gather_attention(
        &dense_cfg,
        (&c.q, &k_dense, &v_dense),
        &c.indices,
        None,
        None,
    )
    .unwrap();
    assert_matches("paged vs dense", &got, &want);
    // An out-of-pool page id: its keys are skipped, on the GPU as in the reference.
    table[1] = pool_pages as u32 + 5;
    c.indices
        .iter_mut()
        .step_by(3)
        .for_each(|j| *j = (page + 2) as u32);
    let got = gpu_paged
        .run((&c.q, &c.k, &c.v), &c.indices, None, Some(&table))
        .unwrap();
    let want = gather_attention(
        &paged_cfg,
        (&c.q, &c.k, &c.v),
        &c.indices,
        None,
        Some(&table),
    )
    .unwrap();
    assert_matches("out-of-pool page", &got, &want);
    // Batch 0 (the first heads_q · n_q rows) lost keys page..2·page; batch 1 kept them.
    let batch0 = &want.kept[..shape.heads_q * shape.n_q * want.slots];
    assert!(
        batch0
            .iter()
            .all(|&j| j == u32::MAX || !(page..2 * page).contains(&(j as usize)))
    );
    assert!(want.kept[batch0.len()..].contains(&((page + 2) as u32)));
}

/// 70 000 rows: the dispatch grid folds past 65 535 workgroups.
#[test]
fn more_rows_than_one_grid_dimension() {
    let ctx = gpu_or_skip!();
    let cfg = GatherConfig::new(
        AttentionConfig::new(AttentionShape::new(1, 70_000, 5, 4)),
        2,
    );
    check(&ctx, cfg, None, 6000);
}

#[test]
fn bad_input_is_a_typed_error() {
    let ctx = gpu_or_skip!();
    let attn = AttentionConfig::new(AttentionShape::new(1, 2, 4, 4));
    let bad = |cfg| GatherAttention::new(&ctx, cfg).err();
    assert!(matches!(
        bad(GatherConfig::new(attn, 0)),
        Some(Error::InvalidShape { .. })
    ));
    let paged = GatherConfig {
        paged: Some(PagedKv {
            page_size: 2,
            pages_per_seq: 1,
            pool_pages: 4,
        }),
        ..GatherConfig::new(attn, 2)
    };
    assert!(matches!(
        bad(paged),
        Some(Error::InvalidShape {
            arg: "paged.pages_per_seq",
            ..
        })
    ));

    let cfg = GatherConfig::new(attn, 3);
    let kernel = GatherAttention::new(&ctx, cfg).unwrap();
    let q = GpuBuffer::<f32>::zeroed(&ctx, 8, "q").unwrap();
    let kv = GpuBuffer::<f32>::zeroed(&ctx, 16, "kv").unwrap();
    let few = GpuBuffer::<u32>::zeroed(&ctx, 5, "indices").unwrap();
    let out = AttentionOutputs::new(&ctx, &attn.shape).unwrap();
    let mut enc = ctx.encoder("bad");
    let inputs = GatherInputs {
        qkv: Qkv::f32(&q, &kv, &kv),
        indices: &few,
        k_rows: None,
        block_table: None,
    };
    assert!(matches!(
        kernel.encode(&mut enc, inputs, &out, None),
        Err(Error::InvalidShape { arg: "indices", .. })
    ));
    let indices = GpuBuffer::<u32>::zeroed(&ctx, 6, "indices").unwrap();
    let inputs = GatherInputs {
        indices: &indices,
        block_table: Some(&indices),
        ..inputs
    };
    assert!(matches!(
        kernel.encode(&mut enc, inputs, &out, None),
        Err(Error::InvalidShape {
            arg: "block_table",
            ..
        })
    ));
}

/// `encode` without kept outputs and without optional inputs (the inference path) gives the
/// same attention as `run`.
#[test]
fn encode_without_kept_outputs() {
    let ctx = gpu_or_skip!();
    let cfg = GatherConfig::new(AttentionConfig::new(AttentionShape::new(2, 3, 40, 8)), 9);
    let c = case(&cfg, 7000);
    let kernel = GatherAttention::new(&ctx, cfg).unwrap();
    let want = kernel
        .run((&c.q, &c.k, &c.v), &c.indices, None, None)
        .unwrap();
    let q = GpuBuffer::from_slice(&ctx, &c.q, "q").unwrap();
    let k = GpuBuffer::from_slice(&ctx, &c.k, "k").unwrap();
    let v = GpuBuffer::from_slice(&ctx, &c.v, "v").unwrap();
    let indices = GpuBuffer::from_slice(&ctx, &c.indices, "indices").unwrap();
    let out = AttentionOutputs::new(&ctx, &cfg.attn.shape).unwrap();
    let mut enc = ctx.encoder("gather");
    let inputs = GatherInputs {
        qkv: Qkv::f32(&q, &k, &v),
        indices: &indices,
        k_rows: None,
        block_table: None,
    };
    kernel.encode(&mut enc, inputs, &out, None).unwrap();
    ctx.submit_and_wait(enc).unwrap();
    let got = out.read(&ctx).unwrap();
    assert_eq!(got.out, want.out);
    assert_eq!(got.lse, want.lse);
}

/// One index row per kv head (a query-independent key set) equals the same row repeated for
/// every query of that head; causal queries skip the set's keys they cannot see.
#[test]
fn per_kv_head_indices_equal_broadcast_indices() {
    let ctx = gpu_or_skip!();
    let shape = AttentionShape {
        batch: 2,
        heads_q: 4,
        heads_kv: 2,
        n_q: 9,
        n_kv: 60,
        head_dim: 8,
    };
    let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 51 });
    let shared = GatherConfig {
        per_kv_head: true,
        keep: Keep {
            sinks: 1,
            window: 3,
        },
        ..GatherConfig::new(attn, 12)
    };
    let c = case(&GatherConfig::new(attn, 12), 8000);
    let per_head: Vec<u32> = c.indices[..shared.index_rows() * 12].to_vec();
    let broadcast: Vec<u32> = (0..shape.rows())
        .flat_map(|row| {
            let bh = row / shape.n_q;
            let kvh = (bh / 4) * 2 + shape.kv_head(bh % 4);
            per_head[kvh * 12..][..12].to_vec()
        })
        .collect();
    let plain = GatherConfig {
        per_kv_head: false,
        ..shared
    };
    let want = gather_attention(&plain, (&c.q, &c.k, &c.v), &broadcast, None, None).unwrap();
    let cpu = gather_attention(&shared, (&c.q, &c.k, &c.v), &per_head, None, None).unwrap();
    assert_eq!(cpu, want);
    let got = GatherAttention::new(&ctx, shared)
        .unwrap()
        .run((&c.q, &c.k, &c.v), &per_head, None, None)
        .unwrap();
    assert_matches("per kv head", &got, &want);
}
