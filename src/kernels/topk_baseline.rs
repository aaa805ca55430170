//! `topk_baseline`: a deliberately simple one-pass row-wise top-k (one thread per row,
//! insertion into the sorted output), with the same ordering rules as [`crate::kernels::topk`].
//! It exists as the yardstick for the bench (`--kernel topk` prints both): a kernel that
//! anyone would write first, against which the radix-select design must win. Largest only,
//! full rows only.

use crate::buffer::{GpuBuffer, bytes_of, check_binding_size};
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::kernels::topk::{TopkConfig, TopkResult};
use crate::params::TopkBaselineParams;
use crate::shader::{self, BindingKind, Module, Tier, sources};

/// The baseline for `rows × n`, k per row.
pub struct TopkBaseline {
    ctx: GpuContext,
    cfg: TopkConfig,
    layout: wgpu::BindGroupLayout,
    bind_groups: shader::BindGroupMemo,
    pipeline: wgpu::ComputePipeline,
    keys: GpuBuffer<u32>,
    /// `[rows, k]` outputs of the last call.
    pub indices: GpuBuffer<u32>,
    pub values: GpuBuffer<f32>,
}

impl TopkBaseline {
    pub fn new(ctx: &GpuContext, cfg: TopkConfig) -> Result<Self> {
        cfg.validate()?;
        if cfg.stride() != cfg.n || cfg.order != Default::default() {
            return Err(Error::Unsupported {
                feature: "strided or smallest-first input in topk_baseline".into(),
            });
        }
        check_binding_size(ctx, "scores", bytes_of::<f32>(&[cfg.rows, cfg.n]))?;
        use BindingKind::{Read, ReadWrite, Uniform};
        let layout = shader::bind_group_layout(
            ctx,
            "topk_baseline",
            &[Uniform, Read, ReadWrite, ReadWrite, ReadWrite],
        );
        let module = Module::new(ctx, "topk_baseline", sources::TOPK_BASELINE, Tier::Core)?;
        let pl = shader::pipeline_layout(ctx, "topk_baseline", &[&layout]);
        let len = cfg.rows * cfg.k;
        Ok(TopkBaseline {
            pipeline: module.pipeline_with_layout(ctx, "topk_baseline", Some(&pl))?,
            keys: GpuBuffer::zeroed(ctx, len, "topk_baseline.keys")?,
            indices: GpuBuffer::zeroed(ctx, len, "topk_baseline.indices")?,
            values: GpuBuffer::zeroed(ctx, len, "topk_baseline.values")?,
            layout,
            bind_groups: Default::default(),
            cfg,
            ctx: ctx.clone(),
        })
    }

    /// Records the top-k of `scores` into [`Self::indices`] and [`Self::values`].
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        scores: &GpuBuffer<f32>,
    ) -> Result<()> {
        let (ctx, cfg) = (&self.ctx, &self.cfg);
        cfg.validate_input(scores.len(), 0, None)?;
        let params = TopkBaselineParams {
            rows: cfg.rows as u32,
            n: cfg.n as u32,
            k: cfg.k as u32,
            ..Default::default()
        };
        self.bind_groups.scoped(ctx, |call| {
            let bg = call.group(
                ctx,
                &self.layout,
                &params,
                &[
                    scores.binding(),
                    self.keys.binding(),
                    self.indices.binding(),
                    self.values.binding(),
                ],
            );
            shader::dispatch(
                ctx,
                encoder,
                "topk_baseline",
                &self.pipeline,
                &[&bg],
                cfg.rows.div_ceil(64) as u32,
            );
        })
    }

    /// Uploads, runs, reads back (counts are `min(k, n)`: full rows only).
    pub fn run(&self, scores: &[f32]) -> Result<TopkResult> {
        let ctx = &self.ctx;
        let s = GpuBuffer::from_slice(ctx, scores, "scores")?;
        let mut enc = ctx.encoder("topk_baseline");
        self.encode(&mut enc, &s)?;
        ctx.submit_and_wait(enc)?;
        Ok(TopkResult {
            values: self.values.read(ctx)?,
            indices: self.indices.read(ctx)?,
            counts: vec![self.cfg.k as u32; self.cfg.rows],
        })
    }
}
