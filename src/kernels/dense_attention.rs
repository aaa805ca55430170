//! `dense_attention`: exact softmax attention on the GPU, the accuracy and speed baseline.
//!
//! Flash-style (see `shaders/shared/dense_attention_body.wgsl`): one workgroup per tile of 16
//! queries of one head walks the key tiles with an online softmax, so memory is O(n·d) and the
//! score matrix never exists. Causal tiles stop at the tile's last visible key. Rules for
//! special values are those of [`crate::attention`]; the oracle is
//! [`crate::reference::dense_attention`].
//!
//! Decode (few queries against a long cache) would give a GPU only `batch · heads` workgroups,
//! so the keys are then split (flash-decoding): each (query tile, key span) workgroup writes a
//! partial output and log-sum-exp, and a merge pass combines the spans in a fixed order.
//! [`DenseAttention::new`] splits when there are fewer than 512 query tiles and at least two
//! 512-key spans, on GPUs (not on CPU adapters, where more workgroups only add overhead);
//! [`DenseAttention::with_key_splits`] sets the count.

use crate::attention::{AttentionConfig, AttentionOutputs, Qkv, QkvTensors, query_tiles};
use crate::buffer::{GpuBuffer, bytes_of, check_binding_size};
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::reference::dense_attention::AttentionOutput;
use crate::shader::{self, BindingKind, sources, wgsl};

/// Keys per score tile (`KEY_TILE`): spans are multiples of it.
const KEY_TILE: usize = wgsl::dense_attention::KEY_TILE as usize;
/// Split-K aims for this many workgroups, with spans of at least `MIN_SPAN` keys.
const SPLIT_TARGET_GROUPS: usize = 512;
const MIN_SPAN: usize = 512;
/// Split-K partials stay below this.
const PARTIAL_BYTES: usize = 64 << 20;

/// Exact attention for one [`AttentionConfig`].
pub struct DenseAttention {
    ctx: GpuContext,
    cfg: AttentionConfig,
    layout: wgpu::BindGroupLayout,
    bind_groups: shader::BindGroupMemo,
    pipeline: wgpu::ComputePipeline,
    split: Option<Split>,
    /// Split-K partials (one element each without a split: bound, never touched).
    part_out: GpuBuffer<f32>,
    part_lse: GpuBuffer<f32>,
}

/// Split-K state: keys per span, span count and the merge pipeline.
struct Split {
    span: usize,
    splits: usize,
    merge: wgpu::ComputePipeline,
}

impl DenseAttention {
    /// Validates `cfg` and compiles the pipelines (f16 storage needs `SHADER_F16`); splits the
    /// keys when the shape is decode-like (see the module docs).
    pub fn new(ctx: &GpuContext, cfg: AttentionConfig) -> Result<Self> {
        cfg.validate()?;
        let s = &cfg.shape;
        let tiles = query_tiles(s);
        // A CPU adapter (lavapipe) runs a few workgroups at a time and pays per workgroup:
        // split decode measured 2.7–2.9× slower there, so it never splits by default.
        let splits =
            if ctx.is_cpu_adapter() || tiles >= SPLIT_TARGET_GROUPS || s.n_kv < 2 * MIN_SPAN {
                1
            } else {
                let span = s.n_kv.div_ceil(SPLIT_TARGET_GROUPS.div_ceil(tiles));
                s.n_kv.div_ceil(span.max(MIN_SPAN))
            };
        // Keep the partials bounded (they are splits × rows × (d + 1) floats).
        let per_split = s.rows() * (s.head_dim + 1) * 4;
        let cap = (PARTIAL_BYTES.min(ctx.limits().max_storage_buffer_binding_size as usize)
            / per_split.max(1))
        .max(1);
        Self::with_key_splits(ctx, cfg, splits.min(cap))
    }

    /// As [`DenseAttention::new`] with the keys split into `splits` spans of equal length
    /// (rounded up to 64 keys; trailing spans may be empty). `splits = 1` is one pass.
    pub fn with_key_splits(ctx: &GpuContext, cfg: AttentionConfig, splits: usize) -> Result<Self> {
        cfg.validate()?;
        let s = &cfg.shape;
        if splits == 0 {
            return Err(Error::shape("splits", "≥ 1", 0));
        }
        use BindingKind::{Read, ReadWrite, Uniform};
        let layout = shader::bind_group_layout(
            ctx,
            "dense_attention",
            &[
                Uniform, Read, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite,
            ],
        );
        let module = cfg.module(
            ctx,
            ("dense_attention", sources::DENSE_ATTENTION),
            ("dense_attention_f16", sources::DENSE_ATTENTION_F16),
        )?;
        let pl = shader::pipeline_layout(ctx, "dense_attention", &[&layout]);
        let build = |e| module.pipeline_with_constants(ctx, e, Some(&pl), &cfg.constants());
        let split = if splits > 1 {
            check_binding_size(
                ctx,
                "split-K partials",
                bytes_of::<f32>(&[splits, s.q_len()]),
            )?;
            Some(Split {
                span: s.n_kv.div_ceil(splits).next_multiple_of(KEY_TILE),
                splits,
                merge: build("dense_attention_merge")?,
            })
        } else {
            None
        };
        let parts = if splits > 1 { splits } else { 0 };
        Ok(DenseAttention {
            part_out: GpuBuffer::zeroed(ctx, (parts * s.q_len()).max(1), "dense.part_out")?,
            part_lse: GpuBuffer::zeroed(ctx, (parts * s.rows()).max(1), "dense.part_lse")?,
            pipeline: build("dense_attention")?,
            ctx: ctx.clone(),
            cfg,
            layout,
            bind_groups: Default::default(),
            split,
        })
    }

    /// Key spans per query tile (1: no split).
    pub fn key_splits(&self) -> usize {
        self.split.as_ref().map_or(1, |s| s.splits)
    }

    pub fn config(&self) -> &AttentionConfig {
        &self.cfg
    }

    /// Records the attention of `qkv` into `out`. Validates every size first.
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        qkv: Qkv<'_>,
        out: &AttentionOutputs,
    ) -> Result<()> {
        let (ctx, cfg) = (&self.ctx, &self.cfg);
        qkv.check(ctx, cfg, cfg.shape.kv_len())?;
        out.check(&cfg.shape)?;
        let s = &cfg.shape;
        let mut params = cfg.params();
        if let Some(split) = &self.split {
            params.key_splits = split.splits as u32;
            params.key_span = split.span as u32;
        }
        self.bind_groups.scoped(ctx, |groups| {
            let bg = groups.group(
                ctx,
                &self.layout,
                &params,
                &[
                    qkv.q.binding(),
                    qkv.k.binding(),
                    qkv.v.binding(),
                    out.out.binding(),
                    out.lse.binding(),
                    self.part_out.binding(),
                    self.part_lse.binding(),
                ],
            );
            let tiles = query_tiles(s);
            shader::dispatch(
                ctx,
                encoder,
                "dense_attention",
                &self.pipeline,
                &[&bg],
                (tiles * self.key_splits()) as u32,
            );
            if let Some(split) = &self.split {
                shader::dispatch(
                    ctx,
                    encoder,
                    "dense_attention_merge",
                    &split.merge,
                    &[&bg],
                    s.q_len().div_ceil(256) as u32,
                );
            }
        })
    }

    /// Uploads `q, k, v` (converted to the configured storage type), runs, reads back.
    pub fn run(&self, q: &[f32], k: &[f32], v: &[f32]) -> Result<AttentionOutput> {
        let ctx = &self.ctx;
        let st = self.cfg.storage;
        let tensors = QkvTensors::upload(ctx, st, (q, k, v))?;
        let out = AttentionOutputs::new(ctx, &self.cfg.shape)?;
        let mut enc = ctx.encoder("dense_attention");
        self.encode(&mut enc, tensors.view(), &out)?;
        ctx.submit_and_wait(enc)?;
        out.read(ctx)
    }
}
