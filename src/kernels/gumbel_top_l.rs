//! `gumbel_top_l`: `L` distinct samples per row without replacement from
//! `softmax(scores / T)`, as the `L` largest perturbed scores `s_j / T + G_j` (the Gumbel-top-k
//! trick). A perturbation pass (`shaders/gumbel_top_l.wgsl`) feeds the exact [`Topk`]
//! kernel, so picks come sorted by perturbed score with its tie rules. The noise is sample 0
//! of [`crate::kernels::gumbel_max`]: the first pick is that sampler's first sample.
//!
//! Keys with NaN or −∞ scores are never picked; a row with fewer than `L` such keys returns
//! `u32::MAX` in the remaining slots.

use crate::buffer::{GpuBuffer, bytes_of, check_binding_size};
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::kernels::gumbel_max::SamplerConfig;
use crate::kernels::topk::{Topk, TopkConfig, TopkInput, TopkOutput};
use crate::params::GumbelTopLParams;
use crate::shader::{self, BindingKind, Module, Tier, sources};

/// The without-replacement sampler for one [`SamplerConfig`] (`samples` = L ≤ n).
pub struct GumbelTopL {
    ctx: GpuContext,
    cfg: SamplerConfig,
    topk: Topk,
    layout: wgpu::BindGroupLayout,
    bind_groups: shader::BindGroupMemo,
    pipeline: wgpu::ComputePipeline,
    perturbed: GpuBuffer<f32>,
}

impl GumbelTopL {
    pub fn new(ctx: &GpuContext, cfg: SamplerConfig) -> Result<Self> {
        cfg.validate()?;
        if cfg.samples > cfg.n {
            return Err(Error::shape(
                "samples",
                format!("≤ n = {}", cfg.n),
                cfg.samples,
            ));
        }
        check_binding_size(ctx, "scores", bytes_of::<f32>(&[cfg.input_len()]))?;
        let topk = Topk::new(
            ctx,
            TopkConfig {
                rows: cfg.rows,
                n: cfg.n,
                k: cfg.samples,
                ..Default::default()
            },
        )?;
        use BindingKind::{Read, ReadWrite, Uniform};
        let layout = shader::bind_group_layout(ctx, "gumbel_top_l", &[Uniform, Read, ReadWrite]);
        let module = Module::new(ctx, "gumbel_top_l", sources::GUMBEL_TOP_L, Tier::Core)?;
        let pl = shader::pipeline_layout(ctx, "gumbel_top_l", &[&layout]);
        Ok(GumbelTopL {
            pipeline: module.pipeline_with_layout(ctx, "gumbel_perturb", Some(&pl))?,
            perturbed: GpuBuffer::zeroed(ctx, cfg.rows * cfg.n, "gumbel_top_l.perturbed")?,
            topk,
            layout,
            bind_groups: Default::default(),
            cfg,
            ctx: ctx.clone(),
        })
    }

    /// Allocates outputs: `values` are the perturbed scores of the picks (NaN: no sample).
    pub fn outputs(&self) -> Result<TopkOutput> {
        self.topk.outputs()
    }

    /// Records the perturbation and the top-L selection into `out`.
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        scores: &GpuBuffer<f32>,
        out: &TopkOutput,
    ) -> Result<()> {
        let (ctx, cfg) = (&self.ctx, &self.cfg);
        cfg.validate_input(scores.len(), None)?;
        let params = GumbelTopLParams {
            rows: cfg.rows as u32,
            n: cfg.n as u32,
            stride: cfg.stride() as u32,
            seed_lo: cfg.seed as u32,
            seed_hi: (cfg.seed >> 32) as u32,
            inv_temp: cfg.inv_temp(),
            ..Default::default()
        };
        self.bind_groups.scoped(ctx, |groups| {
            let bg = groups.group(
                ctx,
                &self.layout,
                &params,
                &[scores.binding(), self.perturbed.binding()],
            );
            let threads = cfg.rows * cfg.n.div_ceil(4);
            shader::dispatch(
                ctx,
                encoder,
                "gumbel_perturb",
                &self.pipeline,
                &[&bg],
                threads.div_ceil(256) as u32,
            );
        })?;
        self.topk
            .encode(encoder, TopkInput::new(&self.perturbed), out)
    }

    /// Uploads, samples, reads back `[rows, L]` keys (`u32::MAX` where no sample).
    pub fn run(&self, scores: &[f32]) -> Result<Vec<u32>> {
        let ctx = &self.ctx;
        self.cfg.validate_input(scores.len(), None)?;
        let s = GpuBuffer::from_slice(ctx, scores, "scores")?;
        let out = self.outputs()?;
        let mut enc = ctx.encoder("gumbel_top_l");
        self.encode(&mut enc, &s, &out)?;
        ctx.submit_and_wait(enc)?;
        let r = out.read(ctx)?;
        Ok(picks(&r.values, &r.indices))
    }
}

/// Indices of the picks, `u32::MAX` where the perturbed value is NaN (not a sample).
pub fn picks(values: &[f32], indices: &[u32]) -> Vec<u32> {
    values
        .iter()
        .zip(indices)
        .map(|(v, &j)| if v.is_nan() { u32::MAX } else { j })
        .collect()
}
