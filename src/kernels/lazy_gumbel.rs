//! `lazy_gumbel`: exact samples from `softmax(scores / T)` that read only each row's top-k
//! set and a few tail keys, about `k + (n − k)/k` keys per sample instead of `n`
//! (Mussmann et al., as used by kNN Attention Demystified). The top-k comes from the exact
//! [`Topk`] kernel; the sampler is `shaders/lazy_gumbel.wgsl`.
//!
//! Exactness: with `M` the best perturbed score in S and `s_min` S's weakest score, a tail key
//! can only win if its Gumbel exceeds `B = M − s_min / T`, which each does independently with
//! `q = 1 − exp(−e^−B)`. The kernel finds those keys by geometric skipping (gaps
//! `⌊E · e^B⌋`, `E ~ Exp(1)`): the count is exactly Binomial(n − k, q), the positions a
//! uniform subset, in O(count + 1) draws. No inversion table or rejection loop is needed,
//! whatever the mean. Each such key gets a Gumbel conditioned to exceed B, by inversion.
//!
//! Same noise as [`crate::kernels::gumbel_max`] on S, so both samplers agree in distribution
//! (tested by χ²), and the CPU reference reproduces every GPU sample up to near-ties of the
//! perturbed scores (GPU `log`/`exp` are not correctly rounded). `touched` reports the tail
//! keys each sample read. Rules for NaN, ±∞ and empty rows are those of `gumbel_max`.

use crate::buffer::{GpuBuffer, bytes_of, check_binding_size};
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::kernels::gumbel_max::SamplerConfig;
use crate::kernels::topk::{Topk, TopkConfig, TopkInput, TopkOutput};
use crate::params::LazyGumbelParams;
use crate::shader::{self, BindingKind, Module, Tier, sources, wgsl};
use crate::shape::elements;

/// Largest top-k set the sampler sorts in workgroup memory.
pub const MAX_K: usize = wgsl::lazy_gumbel::MAX_SORT as usize;

/// GPU outputs, `[rows, samples]` each: the drawn key and the tail keys it read.
#[derive(Debug)]
pub struct LazySamples {
    pub samples: GpuBuffer<u32>,
    pub touched: GpuBuffer<u32>,
}

impl LazySamples {
    pub fn new(ctx: &GpuContext, rows: usize, samples: usize) -> Result<Self> {
        let len = elements(&[rows, samples])
            .ok_or_else(|| Error::shape("samples", "rows × samples to fit in usize", samples))?;
        Ok(LazySamples {
            samples: GpuBuffer::zeroed(ctx, len, "lazy_gumbel.samples")?,
            touched: GpuBuffer::zeroed(ctx, len, "lazy_gumbel.touched")?,
        })
    }

    fn check(&self, want: usize) -> Result<()> {
        for (arg, len) in [
            ("samples", self.samples.len()),
            ("touched", self.touched.len()),
        ] {
            if len < want {
                return Err(Error::shape(arg, format!("≥ {want} elements"), len));
            }
        }
        Ok(())
    }
}

/// Host copy of a lazy sampling result.
#[derive(Clone, Debug, PartialEq)]
pub struct LazyResult {
    pub samples: Vec<u32>,
    pub touched: Vec<u32>,
}

/// The lazy sampler for one [`SamplerConfig`] and top-k size `k`.
pub struct LazyGumbel {
    ctx: GpuContext,
    cfg: SamplerConfig,
    k: usize,
    topk: Topk,
    topk_out: TopkOutput,
    layout: wgpu::BindGroupLayout,
    bind_groups: shader::BindGroupMemo,
    pipeline: wgpu::ComputePipeline,
    no_lengths: GpuBuffer<u32>,
}

impl LazyGumbel {
    /// `k` keys per row are found exactly and perturbed; `1 ≤ k ≤ min(n, MAX_K)`.
    pub fn new(ctx: &GpuContext, cfg: SamplerConfig, k: usize) -> Result<Self> {
        Self::with_rows(ctx, cfg, k, cfg.rows)
    }

    /// As `new`, with the top-k scratch sized for `topk_rows` rows (score blocks).
    pub(crate) fn with_rows(
        ctx: &GpuContext,
        cfg: SamplerConfig,
        k: usize,
        topk_rows: usize,
    ) -> Result<Self> {
        cfg.validate()?;
        if k == 0 || k > cfg.n.min(MAX_K) {
            return Err(Error::shape("k", format!("1 ≤ k ≤ min(n, {MAX_K})"), k));
        }
        check_binding_size(ctx, "scores", bytes_of::<f32>(&[cfg.input_len()]))?;
        let topk = Topk::new(
            ctx,
            TopkConfig {
                rows: topk_rows,
                n: cfg.n,
                k,
                row_stride: cfg.row_stride,
                ..Default::default()
            },
        )?;
        use BindingKind::{Read, ReadWrite, Uniform};
        let layout = shader::bind_group_layout(
            ctx,
            "lazy_gumbel",
            &[Uniform, Read, Read, Read, Read, Read, ReadWrite, ReadWrite],
        );
        let module = Module::new(ctx, "lazy_gumbel", sources::LAZY_GUMBEL, Tier::Core)?;
        let pl = shader::pipeline_layout(ctx, "lazy_gumbel", &[&layout]);
        Ok(LazyGumbel {
            pipeline: module.pipeline_with_layout(ctx, "lazy_gumbel", Some(&pl))?,
            topk_out: topk.outputs()?,
            topk,
            no_lengths: GpuBuffer::zeroed(ctx, 4, "lazy_gumbel.no_lengths")?,
            layout,
            bind_groups: Default::default(),
            k,
            cfg,
            ctx: ctx.clone(),
        })
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Records top-k and sampling of `scores` into `out` (`[rows, samples]`).
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        scores: &GpuBuffer<f32>,
        lengths: Option<&GpuBuffer<u32>>,
        out: &LazySamples,
    ) -> Result<()> {
        let cfg = &self.cfg;
        cfg.validate_input(scores.len(), lengths.map(GpuBuffer::len))?;
        out.check(cfg.rows * cfg.samples)?;
        let params = self.params(lengths.is_some(), 0, 0, 0);
        self.record(encoder, params, scores, lengths, out)
    }

    pub(crate) fn params(
        &self,
        has_lengths: bool,
        tiled: usize,
        tile0: usize,
        n_q: usize,
    ) -> LazyGumbelParams {
        let cfg = &self.cfg;
        LazyGumbelParams {
            rows: cfg.rows as u32,
            n: cfg.n as u32,
            stride: cfg.stride() as u32,
            samples: cfg.samples as u32,
            seed_lo: cfg.seed as u32,
            seed_hi: (cfg.seed >> 32) as u32,
            has_lengths: has_lengths as u32,
            k: self.k as u32,
            sort_size: self.k.next_power_of_two().max(2) as u32,
            inv_temp: cfg.inv_temp(),
            tiled: tiled as u32,
            tile0: tile0 as u32,
            n_q: n_q as u32,
            ..Default::default()
        }
    }

    /// Top-k then the sampler, for `params` (plain rows or a tiled score block).
    pub(crate) fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        params: LazyGumbelParams,
        scores: &GpuBuffer<f32>,
        lengths: Option<&GpuBuffer<u32>>,
        out: &LazySamples,
    ) -> Result<()> {
        let ctx = &self.ctx;
        let mut input = TopkInput::new(scores);
        if let Some(l) = lengths {
            input = input.with_lengths(l);
        }
        self.topk.encode(encoder, input, &self.topk_out)?;
        self.bind_groups.scoped(ctx, |groups| {
            let bg = groups.group(
                ctx,
                &self.layout,
                &params,
                &[
                    scores.binding(),
                    lengths.unwrap_or(&self.no_lengths).binding(),
                    self.topk_out.values.binding(),
                    self.topk_out.indices.binding(),
                    self.topk_out.counts.binding(),
                    out.samples.binding(),
                    out.touched.binding(),
                ],
            );
            shader::dispatch(
                ctx,
                encoder,
                "lazy_gumbel",
                &self.pipeline,
                &[&bg],
                params.rows,
            );
        })
    }

    /// Uploads, samples, reads back.
    pub fn run(&self, scores: &[f32], lengths: Option<&[u32]>) -> Result<LazyResult> {
        let (ctx, cfg) = (&self.ctx, &self.cfg);
        cfg.validate_input(scores.len(), lengths.map(<[u32]>::len))?;
        let s = GpuBuffer::from_slice(ctx, scores, "scores")?;
        let l = lengths
            .map(|l| GpuBuffer::from_slice(ctx, l, "lengths"))
            .transpose()?;
        let out = LazySamples::new(ctx, cfg.rows, cfg.samples)?;
        let mut enc = ctx.encoder("lazy_gumbel");
        self.encode(&mut enc, &s, l.as_ref(), &out)?;
        ctx.submit_and_wait(enc)?;
        Ok(LazyResult {
            samples: out.samples.read(ctx)?,
            touched: out.touched.read(ctx)?,
        })
    }
}
