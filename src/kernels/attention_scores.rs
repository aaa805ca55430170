//! `attention_scores`: scaled q·k scores of a block of queries against every visible key,
//! the first stage of [`crate::kernels::topk_attention`] and
//! [`crate::kernels::sampling_attention`]. Internal: the block layout (16-query tiles of one
//! head, rows padded to whole tiles) is what the later stages read.
//!
//! One workgroup per (tile, 1024-key span), so long rows spread over many workgroups (decode).
//! Each block writes `scores [tiles · 16, n_kv]` (only visible keys) and `lengths [tiles · 16]`
//! (visible keys per row, 0 for padding rows), which is exactly a ragged top-k input.

use crate::attention::{AttentionConfig, Q_TILE, Qkv, query_tiles};
use crate::buffer::GpuBuffer;
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::params::AttentionParams;
use crate::shader::{self, BindingKind, sources};

/// Keys per workgroup (a multiple of 64).
const KEY_SPAN: usize = 1024;

/// One block of tiles: the first tile and how many.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Block {
    pub tile0: usize,
    pub tiles: usize,
}

impl Block {
    pub fn rows(&self) -> usize {
        self.tiles * Q_TILE
    }

    /// Points `params` at this block (tiled row order).
    pub fn apply(&self, params: &mut AttentionParams) {
        params.tiled = 1;
        params.tile0 = self.tile0 as u32;
        params.block_rows = self.rows() as u32;
    }
}

/// The score stage: pipeline plus one block of scratch.
pub(crate) struct AttentionScores {
    ctx: GpuContext,
    cfg: AttentionConfig,
    tiles_per_block: usize,
    layout: wgpu::BindGroupLayout,
    bind_groups: shader::BindGroupMemo,
    pipeline: wgpu::ComputePipeline,
    pub scores: GpuBuffer<f32>,
    pub lengths: GpuBuffer<u32>,
}

impl AttentionScores {
    /// Sizes the block to at most `block_bytes` of scores (and one storage binding).
    pub fn new(ctx: &GpuContext, cfg: AttentionConfig, block_bytes: usize) -> Result<Self> {
        cfg.validate()?;
        let s = &cfg.shape;
        let row_bytes = s.n_kv * 4;
        let budget = block_bytes.min(ctx.limits().max_storage_buffer_binding_size as usize);
        let tiles_per_block = (budget / (Q_TILE * row_bytes)).min(query_tiles(&cfg.shape));
        if tiles_per_block == 0 {
            return Err(Error::BufferTooLarge {
                what: "one 16-query block of scores",
                requested: (Q_TILE * row_bytes) as u64,
                limit: "block_bytes or max_storage_buffer_binding_size",
                max: budget as u64,
            });
        }
        use BindingKind::{Read, ReadWrite, Uniform};
        let layout = shader::bind_group_layout(
            ctx,
            "attention_scores",
            &[Uniform, Read, Read, ReadWrite, ReadWrite],
        );
        let module = cfg.module(
            ctx,
            ("attention_scores", sources::ATTENTION_SCORES),
            ("attention_scores_f16", sources::ATTENTION_SCORES_F16),
        )?;
        let pl = shader::pipeline_layout(ctx, "attention_scores", &[&layout]);
        let pipeline =
            module.pipeline_with_constants(ctx, "attention_scores", Some(&pl), &cfg.constants())?;
        let rows = tiles_per_block * Q_TILE;
        Ok(AttentionScores {
            scores: GpuBuffer::zeroed(ctx, rows * s.n_kv, "attention_scores.scores")?,
            lengths: GpuBuffer::zeroed(ctx, rows, "attention_scores.lengths")?,
            layout,
            bind_groups: Default::default(),
            pipeline,
            tiles_per_block,
            cfg,
            ctx: ctx.clone(),
        })
    }

    /// Rows of one (full) block: the row count later stages are built for.
    pub fn block_rows(&self) -> usize {
        self.tiles_per_block * Q_TILE
    }

    /// The blocks covering every query, in order.
    pub fn blocks(&self) -> impl Iterator<Item = Block> + use<> {
        let (total, per) = (query_tiles(&self.cfg.shape), self.tiles_per_block);
        (0..total).step_by(per).map(move |tile0| Block {
            tile0,
            tiles: per.min(total - tile0),
        })
    }

    /// Records the scores and lengths of `block` (`params` carries the shape; its tile fields
    /// are set here). Rows past the block read as empty.
    pub fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        mut params: AttentionParams,
        block: Block,
        qkv: Qkv<'_>,
    ) -> Result<()> {
        let ctx = &self.ctx;
        block.apply(&mut params);
        params.key_span = KEY_SPAN as u32;
        let spans = self.cfg.shape.n_kv.div_ceil(KEY_SPAN);
        self.bind_groups.scoped(ctx, |groups| {
            encoder.clear_buffer(self.lengths.buffer(), 0, None);
            let bg = groups.group(
                ctx,
                &self.layout,
                &params,
                &[
                    qkv.q.binding(),
                    qkv.k.binding(),
                    self.scores.binding(),
                    self.lengths.binding(),
                ],
            );
            shader::dispatch(
                ctx,
                encoder,
                "attention_scores",
                &self.pipeline,
                &[&bg],
                (block.tiles * spans) as u32,
            );
        })
    }
}
