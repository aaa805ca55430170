//! `leverage_scores`: ridge leverage scores of the keys of every kv head,
//! `σ_i = k_iᵀ (KᵀK + λI)⁻¹ k_i` (LevAttention, Kannan et al.: keys with large leverage form a
//! universal set that holds every key with large attention, for any query).
//!
//! Passes (`shaders/leverage_scores.wgsl`): partial Gram matrices of key chunks → one
//! workgroup per head sums them into `G` (kept, so streams can append), factors `G + λI`
//! (Cholesky) and inverts the factor → one thread per key computes `|L⁻¹ k_i|²`.
//! `λ = ridge · trace(G)/d`, relative to the average eigenvalue, so it regularises
//! rank-deficient keys the same way at any scale. With `λ → 0`, `Σσ_i = rank(K)`.
//!
//! Keys are f32 and so is `G`: a head whose `trace(KᵀK)` leaves the f32 range (keys of norm
//! ≳ 1e19) or holds NaN gets NaN scores for every key, GPU and reference alike, rather than
//! silently wrong ones.
//!
//! Limits: f32 keys, `head_dim ≤ 128`. Streaming: [`LeverageScores::append`] adds a block
//! of keys to `G` and refactors; [`LeverageScores::score`] rescores every key so far. The
//! result equals a batch computation over the same keys (up to f32 summation order).

use crate::buffer::{GpuBuffer, bytes_of, check_binding_size};
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::params::LeverageParams;
use crate::shader::{self, BindingKind, Module, Tier, sources, wgsl};
use crate::shape::{MAX_ELEMENTS, elements};

/// Largest head dimension (the Gram matrix lives in 64 registers per thread).
pub const MAX_DIM: usize = wgsl::leverage_scores::MAX_DIM as usize;
/// Default relative ridge: λ = 1e-3 · trace(G)/d keeps the f32 Cholesky well conditioned.
pub const DEFAULT_RIDGE: f32 = 1e-3;

/// Keys of `heads` kv heads, `[heads, cap, dim]` f32, `cap` keys allocated per head.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeverageConfig {
    pub heads: usize,
    pub cap: usize,
    pub dim: usize,
    pub ridge: f32,
}

impl LeverageConfig {
    pub fn new(heads: usize, cap: usize, dim: usize) -> Self {
        LeverageConfig {
            heads,
            cap,
            dim,
            ridge: DEFAULT_RIDGE,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.dim > MAX_DIM {
            return Err(Error::shape(
                "head_dim",
                format!("1 ≤ d ≤ {MAX_DIM}"),
                self.dim,
            ));
        }
        if self.heads == 0 || self.cap == 0 {
            return Err(Error::shape(
                "heads, n_kv",
                "> 0",
                format!("{} × {}", self.heads, self.cap),
            ));
        }
        if elements(&[self.heads, self.cap, self.dim]).is_none_or(|l| l > MAX_ELEMENTS) {
            return Err(Error::shape(
                "k",
                "fewer than 2^31 elements",
                format!("{} × {} × {}", self.heads, self.cap, self.dim),
            ));
        }
        if !(self.ridge > 0.0 && self.ridge.is_finite()) {
            return Err(Error::shape("ridge", "a finite number > 0", self.ridge));
        }
        Ok(())
    }

    /// Keys per Gram workgroup: ≤ 64 chunks per head for a full pass.
    fn chunk(&self) -> usize {
        self.cap.div_ceil(64).max(256)
    }
}

const WG: usize = wgsl::leverage_scores::WG as usize;

/// The leverage-score kernel for one [`LeverageConfig`]; holds `G` and its factor per head.
pub struct LeverageScores {
    ctx: GpuContext,
    cfg: LeverageConfig,
    layout: wgpu::BindGroupLayout,
    bind_groups: shader::BindGroupMemo,
    gram_pipeline: wgpu::ComputePipeline,
    factor_pipeline: wgpu::ComputePipeline,
    apply_pipeline: wgpu::ComputePipeline,
    partial: GpuBuffer<f32>,
    gram: GpuBuffer<f32>,
    work: GpuBuffer<f32>,
    /// Stand-in for `sigma` in passes that do not score.
    no_sigma: GpuBuffer<f32>,
    /// Keys scored per head by the last `score` (`[heads]`): row lengths for a top-k over
    /// `sigma` while a cache grows.
    pub scored: GpuBuffer<u32>,
}

impl LeverageScores {
    pub fn new(ctx: &GpuContext, cfg: LeverageConfig) -> Result<Self> {
        cfg.validate()?;
        let dd = cfg.dim * cfg.dim;
        check_binding_size(ctx, "k", bytes_of::<f32>(&[cfg.heads, cfg.cap, cfg.dim]))?;
        use BindingKind::{Read, ReadWrite, Uniform};
        let layout = shader::bind_group_layout(
            ctx,
            "leverage_scores",
            &[
                Uniform, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite,
            ],
        );
        let module = Module::new(ctx, "leverage_scores", sources::LEVERAGE_SCORES, Tier::Core)?;
        let pl = shader::pipeline_layout(ctx, "leverage_scores", &[&layout]);
        let build = |e| module.pipeline_with_layout(ctx, e, Some(&pl));
        Ok(LeverageScores {
            gram_pipeline: build("leverage_gram")?,
            factor_pipeline: build("leverage_factor")?,
            apply_pipeline: build("leverage_apply")?,
            partial: GpuBuffer::zeroed(
                ctx,
                cfg.heads * cfg.cap.div_ceil(cfg.chunk()) * dd,
                "leverage.partial",
            )?,
            gram: GpuBuffer::zeroed(ctx, cfg.heads * dd, "leverage.gram")?,
            work: GpuBuffer::zeroed(ctx, cfg.heads * 2 * dd, "leverage.work")?,
            no_sigma: GpuBuffer::zeroed(ctx, 4, "leverage.no_sigma")?,
            scored: GpuBuffer::zeroed(ctx, cfg.heads, "leverage.scored")?,
            layout,
            bind_groups: Default::default(),
            cfg,
            ctx: ctx.clone(),
        })
    }

    pub fn config(&self) -> &LeverageConfig {
        &self.cfg
    }

    fn check(&self, k: &GpuBuffer<f32>, sigma: Option<&GpuBuffer<f32>>, key1: usize) -> Result<()> {
        let c = &self.cfg;
        if k.len() < c.heads * c.cap * c.dim {
            return Err(Error::shape(
                "k",
                format!("≥ {} elements", c.heads * c.cap * c.dim),
                k.len(),
            ));
        }
        if key1 > c.cap {
            return Err(Error::shape("keys", format!("≤ n_kv = {}", c.cap), key1));
        }
        if let Some(s) = sigma
            && s.len() < c.heads * c.cap
        {
            return Err(Error::shape(
                "sigma",
                format!("≥ {} elements", c.heads * c.cap),
                s.len(),
            ));
        }
        Ok(())
    }

    fn pass(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        params: LeverageParams,
        k: &GpuBuffer<f32>,
        sigma: &wgpu::Buffer,
        steps: &[(&str, &wgpu::ComputePipeline, u32)],
    ) -> Result<()> {
        let ctx = &self.ctx;
        self.bind_groups.scoped(ctx, |groups| {
            let bg = groups.group(
                ctx,
                &self.layout,
                &params,
                &[
                    k.binding(),
                    self.partial.binding(),
                    self.gram.binding(),
                    self.work.binding(),
                    sigma.as_entire_binding(),
                    self.scored.binding(),
                ],
            );
            for &(label, pipeline, groups) in steps {
                shader::dispatch(ctx, encoder, label, pipeline, &[&bg], groups);
            }
        })
    }

    fn params(&self, key0: usize, key1: usize, accumulate: bool) -> LeverageParams {
        let c = &self.cfg;
        let chunk = c.chunk();
        LeverageParams {
            heads: c.heads as u32,
            cap: c.cap as u32,
            key0: key0 as u32,
            key1: key1 as u32,
            chunk: chunk as u32,
            chunks: (key1 - key0).div_ceil(chunk) as u32,
            ridge: c.ridge,
            accumulate: accumulate as u32,
            dim: c.dim as u32,
            ..Default::default()
        }
    }

    /// Adds keys `[key0, key1)` of every head to `G` (from scratch when `key0 == 0`) and
    /// refactors `G + λI`.
    pub fn append(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        k: &GpuBuffer<f32>,
        key0: usize,
        key1: usize,
    ) -> Result<()> {
        self.check(k, None, key1)?;
        if key0 >= key1 {
            return Err(Error::shape(
                "keys",
                format!("a non-empty range from {key0}"),
                key1,
            ));
        }
        let p = self.params(key0, key1, key0 > 0);
        let groups = (self.cfg.heads as u32) * p.chunks;
        self.pass(
            encoder,
            p,
            k,
            self.no_sigma.buffer(),
            &[
                ("leverage_gram", &self.gram_pipeline, groups),
                (
                    "leverage_factor",
                    &self.factor_pipeline,
                    self.cfg.heads as u32,
                ),
            ],
        )
    }

    /// Scores keys `[0, n)` of every head with the current factor into `sigma [heads, cap]`.
    pub fn score(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        k: &GpuBuffer<f32>,
        n: usize,
        sigma: &GpuBuffer<f32>,
    ) -> Result<()> {
        self.check(k, Some(sigma), n)?;
        let p = self.params(0, n, true);
        let threads = self.cfg.heads * n;
        self.pass(
            encoder,
            p,
            k,
            sigma.buffer(),
            &[(
                "leverage_apply",
                &self.apply_pipeline,
                threads.div_ceil(WG) as u32,
            )],
        )
    }

    /// From scratch: `G` over keys `[0, n)`, factor, and every key's score.
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        k: &GpuBuffer<f32>,
        n: usize,
        sigma: &GpuBuffer<f32>,
    ) -> Result<()> {
        self.append(encoder, k, 0, n)?;
        self.score(encoder, k, n, sigma)
    }

    /// Uploads `k [heads, cap, dim]`, scores every key, reads `σ [heads, cap]` back.
    pub fn run(&self, k: &[f32]) -> Result<Vec<f32>> {
        let ctx = &self.ctx;
        let c = &self.cfg;
        let kb = GpuBuffer::from_slice(ctx, k, "k")?;
        let sigma = GpuBuffer::zeroed(ctx, c.heads * c.cap, "sigma")?;
        let mut enc = ctx.encoder("leverage_scores");
        self.encode(&mut enc, &kb, c.cap, &sigma)?;
        ctx.submit_and_wait(enc)?;
        sigma.read(ctx)
    }
}
