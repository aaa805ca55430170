//! `gumbel_max`: exact samples from `softmax(scores / T)` per row by the Gumbel-max trick,
//! reading the whole row: the baseline for [`crate::kernels::lazy_gumbel`].
//!
//! Sample `l` of row `r` is `argmax_j (s_j / T + G_j)` where `G_j` is the standard Gumbel of
//! key `j` in sample `l` of row `r` under the seed (see `shaders/shared/gumbel.wgsl`): the CPU
//! reference draws the same uniforms. GPU `log` is not correctly rounded, so the Gumbels agree
//! to ~2e-6 relative, and a sample can differ only when the two best perturbed scores are that
//! close (the tests check that every difference is such a near-tie).
//!
//! NaN and −∞ scores are never drawn (probability 0); a row with no finite score draws
//! `u32::MAX`. A +∞ score is always drawn (the smallest index among several).

use crate::buffer::{GpuBuffer, bytes_of, check_binding_size};
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::params::GumbelMaxParams;
use crate::shader::{self, BindingKind, Module, Tier, sources, wgsl};
use crate::shape::row_span;

/// Shape and options of a sampling call over a `[rows, n]` score matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerConfig {
    pub rows: usize,
    /// Row length.
    pub n: usize,
    /// Samples per row (`L`).
    pub samples: usize,
    /// Softmax temperature `T > 0` (scores are divided by it).
    pub temperature: f32,
    pub seed: u64,
    /// Elements between row starts (`None`: `n`).
    pub row_stride: Option<usize>,
}

impl SamplerConfig {
    pub fn new(rows: usize, n: usize, samples: usize, seed: u64) -> Self {
        SamplerConfig {
            rows,
            n,
            samples,
            temperature: 1.0,
            seed,
            row_stride: None,
        }
    }

    pub fn stride(&self) -> usize {
        self.row_stride.unwrap_or(self.n)
    }

    /// Elements the scores span, `(rows − 1)·stride + n` (`usize::MAX` where that overflows,
    /// which no input has).
    pub fn input_len(&self) -> usize {
        row_span(self.rows, self.stride(), self.n).unwrap_or(usize::MAX)
    }

    /// `1 / T` as every kernel and reference multiplies by it.
    pub fn inv_temp(&self) -> f32 {
        1.0 / self.temperature
    }

    pub fn validate(&self) -> Result<()> {
        let lim = u32::MAX as usize / 2;
        if self.n == 0 || self.n > lim {
            return Err(Error::shape("n", "1 ≤ n < 2^31", self.n));
        }
        if self.rows == 0 || self.rows > lim {
            return Err(Error::shape("rows", "1 ≤ rows < 2^31", self.rows));
        }
        if self.samples == 0 || self.samples > lim {
            return Err(Error::shape("samples", "1 ≤ samples < 2^31", self.samples));
        }
        if !(self.temperature > 0.0 && self.inv_temp().is_finite()) {
            return Err(Error::shape(
                "temperature",
                "> 0 with a finite inverse",
                self.temperature,
            ));
        }
        if self.stride() < self.n {
            return Err(Error::shape(
                "row_stride",
                format!("≥ n = {}", self.n),
                self.stride(),
            ));
        }
        Ok(())
    }

    /// Checks a score input of `len` elements and optional lengths.
    pub fn validate_input(&self, len: usize, lengths: Option<usize>) -> Result<()> {
        self.validate()?;
        let need = self.input_len();
        if len < need {
            return Err(Error::shape("scores", format!("≥ {need} elements"), len));
        }
        if let Some(l) = lengths
            && l < self.rows
        {
            return Err(Error::shape(
                "lengths",
                format!("≥ rows = {}", self.rows),
                l,
            ));
        }
        Ok(())
    }
}

const WG: usize = wgsl::gumbel_max::WG as usize;
/// Entries per partial workgroup: at least 4 per thread, ~2048 workgroups in all.
fn chunk_for(cfg: &SamplerConfig) -> usize {
    let target = (cfg.rows * cfg.n).div_ceil(2048);
    target.clamp(4 * WG, 65536).next_multiple_of(4 * WG)
}

/// Full-row Gumbel-max sampler for one [`SamplerConfig`].
pub struct GumbelMax {
    ctx: GpuContext,
    cfg: SamplerConfig,
    chunk: usize,
    layout: wgpu::BindGroupLayout,
    bind_groups: shader::BindGroupMemo,
    partial_pipeline: wgpu::ComputePipeline,
    merge_pipeline: wgpu::ComputePipeline,
    partial: GpuBuffer<[u32; 2]>,
    no_lengths: GpuBuffer<u32>,
}

impl GumbelMax {
    pub fn new(ctx: &GpuContext, cfg: SamplerConfig) -> Result<Self> {
        cfg.validate()?;
        let chunk = chunk_for(&cfg);
        let chunks = cfg.n.div_ceil(chunk);
        check_binding_size(ctx, "scores", bytes_of::<f32>(&[cfg.input_len()]))?;
        check_binding_size(
            ctx,
            "gumbel_max partials",
            (cfg.rows * chunks * cfg.samples * 8) as u64,
        )?;
        use BindingKind::{Read, ReadWrite, Uniform};
        let layout = shader::bind_group_layout(
            ctx,
            "gumbel_max",
            &[Uniform, Read, Read, ReadWrite, ReadWrite],
        );
        let module = Module::new(ctx, "gumbel_max", sources::GUMBEL_MAX, Tier::Core)?;
        let pl = shader::pipeline_layout(ctx, "gumbel_max", &[&layout]);
        Ok(GumbelMax {
            partial_pipeline: module.pipeline_with_layout(ctx, "gumbel_max_partial", Some(&pl))?,
            merge_pipeline: module.pipeline_with_layout(ctx, "gumbel_max_merge", Some(&pl))?,
            partial: GpuBuffer::zeroed(ctx, cfg.rows * chunks * cfg.samples, "gumbel_max.partial")?,
            no_lengths: GpuBuffer::zeroed(ctx, 4, "gumbel_max.no_lengths")?,
            layout,
            bind_groups: Default::default(),
            chunk,
            cfg,
            ctx: ctx.clone(),
        })
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Records sampling of `scores` (optionally ragged) into `samples` (`[rows, samples]`).
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        scores: &GpuBuffer<f32>,
        lengths: Option<&GpuBuffer<u32>>,
        samples: &GpuBuffer<u32>,
    ) -> Result<()> {
        let (ctx, cfg) = (&self.ctx, &self.cfg);
        cfg.validate_input(scores.len(), lengths.map(GpuBuffer::len))?;
        if samples.len() < cfg.rows * cfg.samples {
            return Err(Error::shape(
                "samples",
                format!("≥ {} elements", cfg.rows * cfg.samples),
                samples.len(),
            ));
        }
        let chunks = cfg.n.div_ceil(self.chunk);
        let params = GumbelMaxParams {
            rows: cfg.rows as u32,
            n: cfg.n as u32,
            stride: cfg.stride() as u32,
            samples: cfg.samples as u32,
            seed_lo: cfg.seed as u32,
            seed_hi: (cfg.seed >> 32) as u32,
            has_lengths: lengths.is_some() as u32,
            chunk: self.chunk as u32,
            chunks: chunks as u32,
            inv_temp: cfg.inv_temp(),
            row0: 0,
            ..Default::default()
        };
        self.bind_groups.scoped(ctx, |groups| {
            let bg = groups.group(
                ctx,
                &self.layout,
                &params,
                &[
                    scores.binding(),
                    lengths.unwrap_or(&self.no_lengths).binding(),
                    self.partial.binding(),
                    samples.binding(),
                ],
            );
            let groups = (cfg.rows * chunks) as u32;
            shader::dispatch(
                ctx,
                encoder,
                "gumbel_max_partial",
                &self.partial_pipeline,
                &[&bg],
                groups,
            );
            let merge = (cfg.rows * cfg.samples).div_ceil(WG) as u32;
            shader::dispatch(
                ctx,
                encoder,
                "gumbel_max_merge",
                &self.merge_pipeline,
                &[&bg],
                merge,
            );
        })
    }

    /// Uploads, samples, reads back `[rows, samples]` key indices.
    pub fn run(&self, scores: &[f32], lengths: Option<&[u32]>) -> Result<Vec<u32>> {
        let ctx = &self.ctx;
        self.cfg
            .validate_input(scores.len(), lengths.map(<[u32]>::len))?;
        let s = GpuBuffer::from_slice(ctx, scores, "scores")?;
        let l = lengths
            .map(|l| GpuBuffer::from_slice(ctx, l, "lengths"))
            .transpose()?;
        let out = GpuBuffer::zeroed(ctx, self.cfg.rows * self.cfg.samples, "samples")?;
        let mut enc = ctx.encoder("gumbel_max");
        self.encode(&mut enc, &s, l.as_ref(), &out)?;
        ctx.submit_and_wait(enc)?;
        out.read(ctx)
    }
}
