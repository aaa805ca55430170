//! `dense_attention`: exact softmax attention on the GPU, the accuracy and speed baseline.
//!
//! Flash-style (see `shaders/shared/dense_attention_body.wgsl`): one workgroup per tile of 16
//! queries of one head walks the key tiles with an online softmax, so memory is O(n·d) and the
//! score matrix never exists. Causal tiles stop at the tile's last visible key. Rules for
//! special values are those of [`crate::attention`]; the oracle is
//! [`crate::reference::dense_attention`].

use crate::attention::{AttentionConfig, AttentionOutputs, Qkv, QkvTensors};
use crate::context::GpuContext;
use crate::error::Result;
use crate::reference::dense_attention::AttentionOutput;
use crate::shader::{self, BindingKind, sources};

/// Queries per workgroup (`Q_TILE` in the shader).
const Q_TILE: usize = 16;

/// Exact attention for one [`AttentionConfig`].
pub struct DenseAttention {
    ctx: GpuContext,
    cfg: AttentionConfig,
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
}

impl DenseAttention {
    /// Validates `cfg` and compiles the pipeline (f16 storage needs `SHADER_F16`).
    pub fn new(ctx: &GpuContext, cfg: AttentionConfig) -> Result<Self> {
        cfg.validate()?;
        use BindingKind::{Read, ReadWrite, Uniform};
        let layout = shader::bind_group_layout(
            ctx,
            "dense_attention",
            &[Uniform, Read, Read, Read, ReadWrite, ReadWrite],
        );
        let module = cfg.module(
            ctx,
            ("dense_attention", sources::DENSE_ATTENTION),
            ("dense_attention_f16", sources::DENSE_ATTENTION_F16),
        )?;
        let pl = shader::pipeline_layout(ctx, "dense_attention", &[&layout]);
        let pipeline =
            module.pipeline_with_constants(ctx, "dense_attention", Some(&pl), &cfg.constants())?;
        Ok(DenseAttention {
            ctx: ctx.clone(),
            cfg,
            layout,
            pipeline,
        })
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
        ctx.scoped(|| {
            let uniform = shader::uniform(ctx, &cfg.params());
            let bg = shader::bind_group_with_layout(
                ctx,
                &self.layout,
                &[
                    uniform.as_entire_binding(),
                    qkv.q.binding(),
                    qkv.k.binding(),
                    qkv.v.binding(),
                    out.out.binding(),
                    out.lse.binding(),
                ],
            );
            let groups = s.batch * s.heads_q * s.n_q.div_ceil(Q_TILE);
            shader::dispatch(
                ctx,
                encoder,
                "dense_attention",
                &self.pipeline,
                &[&bg],
                groups as u32,
            );
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
