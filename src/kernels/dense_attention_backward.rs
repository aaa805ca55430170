//! `dense_attention_backward`: exact gradients dQ, dK, dV of [`crate::kernels::dense_attention`],
//! flash-style (see `shaders/shared/dense_attention_backward_body.wgsl`).
//!
//! Inputs are q, k, v, the forward's output and log-sum-exp, and the upstream gradient `dO`.
//! The probabilities are recomputed tile by tile from the log-sum-exp, so memory is O(n·d) —
//! the exact baseline that [`crate::kernels::sparse_attention_backward`] (O(n·k), fixed key
//! sets) is compared against, at any sequence length. Three passes: `D = rowsum(dO ∘ O)`;
//! dQ per query tile walking the keys; dK and dV per key tile walking the queries of every
//! query head of its kv group. Every gradient element has one owner thread that sums in a fixed
//! order, so results are the same bits on every run, without float atomics.
//!
//! f32 or f16 storage for q, k, v (f16 needs `SHADER_F16`); dO, the forward outputs and the
//! gradients are f32. Special values follow [`crate::attention`]: NaN or ±∞ in an input a row
//! uses poisons that row's gradients (and the keys it touches); masked keys never matter.
//! Oracle: [`crate::reference::sparse_attention_backward::dense_attention_backward`].

use crate::attention::{AttentionConfig, AttentionOutputs, GradOutputs, Qkv, QkvTensors};
use crate::buffer::GpuBuffer;
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::reference::dense_attention::AttentionOutput;
use crate::reference::sparse_attention_backward::AttentionGrads;
use crate::shader::{self, BindingKind, sources, wgsl};

/// Rows (queries, or keys in the dK/dV pass) per workgroup (`Q_TILE` in the shader).
const TILE: usize = wgsl::dense_attention_backward::Q_TILE as usize;

/// GPU inputs of the dense backward.
#[derive(Clone, Copy, Debug)]
pub struct DenseBackwardInputs<'a> {
    pub qkv: Qkv<'a>,
    /// The forward's output and log-sum-exp (e.g. from [`crate::kernels::dense_attention`]).
    pub forward: &'a AttentionOutputs,
    /// Upstream gradient `[rows, head_dim]`.
    pub d_out: &'a GpuBuffer<f32>,
}

/// The exact dense backward for one [`AttentionConfig`].
pub struct DenseAttentionBackward {
    ctx: GpuContext,
    cfg: AttentionConfig,
    layout: wgpu::BindGroupLayout,
    bind_groups: shader::BindGroupMemo,
    d_pipeline: wgpu::ComputePipeline,
    dq_pipeline: wgpu::ComputePipeline,
    dkv_pipeline: wgpu::ComputePipeline,
    /// `D_i = dO_i·o_i` per row.
    d_rows: GpuBuffer<f32>,
}

impl DenseAttentionBackward {
    /// Validates `cfg` and compiles the three pipelines.
    pub fn new(ctx: &GpuContext, cfg: AttentionConfig) -> Result<Self> {
        cfg.validate()?;
        use BindingKind::{Read, ReadWrite, Uniform};
        let layout = shader::bind_group_layout(
            ctx,
            "dense_attention_backward",
            &[
                Uniform, Read, Read, Read, Read, Read, ReadWrite, ReadWrite, ReadWrite,
            ],
        );
        let module = cfg.module(
            ctx,
            (
                "dense_attention_backward",
                sources::DENSE_ATTENTION_BACKWARD,
            ),
            (
                "dense_attention_backward_f16",
                sources::DENSE_ATTENTION_BACKWARD_F16,
            ),
        )?;
        let pl = shader::pipeline_layout(ctx, "dense_attention_backward", &[&layout]);
        let constants = cfg.constants();
        let build = |e| module.pipeline_with_constants(ctx, e, Some(&pl), &constants);
        Ok(DenseAttentionBackward {
            d_pipeline: build("dense_backward_d")?,
            dq_pipeline: build("dense_backward_dq")?,
            dkv_pipeline: build("dense_backward_dkv")?,
            d_rows: GpuBuffer::zeroed(ctx, cfg.shape.rows(), "dense_backward.d_rows")?,
            ctx: ctx.clone(),
            cfg,
            layout,
            bind_groups: Default::default(),
        })
    }

    pub fn config(&self) -> &AttentionConfig {
        &self.cfg
    }

    /// Records the gradients into `grads` (every element is written). Validates every size
    /// first.
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        inputs: DenseBackwardInputs<'_>,
        grads: &GradOutputs,
    ) -> Result<()> {
        let (ctx, cfg) = (&self.ctx, &self.cfg);
        let s = &cfg.shape;
        inputs.qkv.check(ctx, cfg, s.kv_len())?;
        inputs.forward.check(s)?;
        Error::check_lengths(&[("d_out", inputs.d_out.len(), s.q_len())])?;
        grads.check(s)?;
        let qkv = inputs.qkv;
        let params = cfg.params();
        self.bind_groups.scoped(ctx, |groups| {
            let mut bind = |g1: &GpuBuffer<f32>, g2: &GpuBuffer<f32>| {
                groups.group(
                    ctx,
                    &self.layout,
                    &params,
                    &[
                        qkv.q.binding(),
                        qkv.k.binding(),
                        qkv.v.binding(),
                        inputs.d_out.binding(),
                        inputs.forward.lse.binding(),
                        self.d_rows.binding(),
                        g1.binding(),
                        g2.binding(),
                    ],
                )
            };
            let passes = [
                (
                    "dense_backward_d",
                    &self.d_pipeline,
                    bind(&inputs.forward.out, &grads.dv),
                    s.rows().div_ceil(256),
                ),
                (
                    "dense_backward_dq",
                    &self.dq_pipeline,
                    bind(&grads.dq, &grads.dv),
                    s.batch * s.heads_q * s.n_q.div_ceil(TILE),
                ),
                (
                    "dense_backward_dkv",
                    &self.dkv_pipeline,
                    bind(&grads.dk, &grads.dv),
                    s.batch * s.heads_kv * s.n_kv.div_ceil(TILE),
                ),
            ];
            for (label, pipeline, bg, groups) in &passes {
                shader::dispatch(ctx, encoder, label, pipeline, &[bg], *groups as u32);
            }
        })
    }

    /// Uploads `q, k, v` (in the configured storage), the forward's outputs and `d_out`, runs,
    /// reads the gradients back.
    pub fn run(
        &self,
        (q, k, v): (&[f32], &[f32], &[f32]),
        forward: &AttentionOutput,
        d_out: &[f32],
    ) -> Result<AttentionGrads> {
        let ctx = &self.ctx;
        let tensors = QkvTensors::upload(ctx, self.cfg.storage, (q, k, v))?;
        let fwd = AttentionOutputs {
            out: GpuBuffer::from_slice(ctx, &forward.out, "forward.out")?,
            lse: GpuBuffer::from_slice(ctx, &forward.lse, "forward.lse")?,
        };
        let d_out = GpuBuffer::from_slice(ctx, d_out, "d_out")?;
        let grads = GradOutputs::new(ctx, &self.cfg)?;
        let mut enc = ctx.encoder("dense_attention_backward");
        let inputs = DenseBackwardInputs {
            qkv: tensors.view(),
            forward: &fwd,
            d_out: &d_out,
        };
        self.encode(&mut enc, inputs, &grads)?;
        ctx.submit_and_wait(enc)?;
        grads.read(ctx)
    }
}
