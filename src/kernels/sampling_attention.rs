//! `sampling_attention`: the attention output estimated from exact samples of each row's
//! softmax (kNN Attention Demystified): attention is an expectation, `o = E_{j~p}[v_j]`, so
//! the mean of the V rows at L sampled keys is unbiased, and a median of group means gives
//! (ε, δ) guarantees.
//!
//! Pipeline per block of queries: `attention_scores` → exact top-k → [`LazyGumbel`] (reads
//! the top-k set and ~(n − k)/k tail keys per sample), then one `sampling_attention` pass:
//! per row and output dimension, the median over `groups` of the mean of `samples / groups`
//! sampled V rows.
//!
//! Sample `l` of query row `r` uses Philox stream `r` under `seed`, whatever the blocking.
//! The samples are exact for the f32 scores the GPU computes; the CPU reference
//! ([`crate::reference::sampling_attention`]) reproduces the estimate from given samples.

use crate::attention::{AttentionConfig, Qkv, QkvTensors};
use crate::buffer::{GpuBuffer, bytes_of, check_binding_size};
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::kernels::attention_scores::AttentionScores;
use crate::kernels::gumbel_max::SamplerConfig;
use crate::kernels::lazy_gumbel::{LazyGumbel, LazySamples, MAX_K};
use crate::kernels::topk_attention::KPolicy;
use crate::params::SamplingParams;
use crate::shader::{self, BindingKind, sources, wgsl};
use crate::shape::MAX_ELEMENTS;

/// Largest number of median-of-means groups.
pub const MAX_GROUPS: usize = wgsl::sampling_attention::MAX_GROUPS as usize;

/// Median-of-means layout: `samples` per row in `groups` equal groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MomConfig {
    pub samples: usize,
    pub groups: usize,
}

impl MomConfig {
    /// Samples for `|estimate − o| ≤ ε` per coordinate with probability ≥ 1 − δ, when the
    /// coordinate's standard deviation under the row's softmax is at most `sigma`. Each group
    /// of `b = ⌈4σ²/ε²⌉` samples misses by more than ε with probability ≤ 1/4 (Chebyshev);
    /// the median misses only if half the groups do, which Hoeffding bounds by `e^(−g/8)`,
    /// so `g = ⌈8 ln(1/δ)⌉` groups.
    pub fn for_bound(eps: f64, delta: f64, sigma: f64) -> Result<Self> {
        if !(eps > 0.0 && eps.is_finite()) {
            return Err(Error::shape("eps", "> 0", eps));
        }
        if !(delta > 0.0 && delta < 1.0) {
            return Err(Error::shape("delta", "in (0, 1)", delta));
        }
        if !(sigma >= 0.0 && sigma.is_finite()) {
            return Err(Error::shape("sigma", "a finite number ≥ 0", sigma));
        }
        // Float-to-int casts saturate, so an absurd ratio becomes a count that fails below.
        let per = (4.0 * sigma * sigma / (eps * eps)).ceil().max(1.0) as usize;
        let groups = (8.0 * (1.0 / delta).ln()).ceil().max(1.0) as usize;
        let samples = per
            .checked_mul(groups)
            .ok_or_else(|| Error::shape("eps", "a bound needing fewer than 2^64 samples", eps))?;
        let m = MomConfig { samples, groups };
        m.validate()?;
        Ok(m)
    }

    pub fn validate(&self) -> Result<()> {
        if self.groups == 0 || self.groups > MAX_GROUPS {
            return Err(Error::shape(
                "groups",
                format!("1 ≤ groups ≤ {MAX_GROUPS}"),
                self.groups,
            ));
        }
        if self.samples == 0
            || self.samples > MAX_ELEMENTS
            || !self.samples.is_multiple_of(self.groups)
        {
            return Err(Error::shape(
                "samples",
                format!("a multiple of groups = {} in [1, 2^31)", self.groups),
                self.samples,
            ));
        }
        Ok(())
    }
}

/// Shape and options of a sampling-attention call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingAttentionConfig {
    pub attn: AttentionConfig,
    /// Size of the exact top-k set the lazy sampler perturbs, from the longest row
    /// (capped at `min(n_kv, 2048)`). `KPolicy::Sqrt` is the paper's choice.
    pub k: KPolicy,
    pub mom: MomConfig,
    pub seed: u64,
    /// Upper bound on the score-block scratch in bytes (default 64 MiB).
    pub block_bytes: usize,
}

impl SamplingAttentionConfig {
    pub fn new(attn: AttentionConfig, mom: MomConfig, seed: u64) -> Self {
        SamplingAttentionConfig {
            attn,
            k: KPolicy::Sqrt,
            mom,
            seed,
            block_bytes: 64 << 20,
        }
    }

    /// The top-k size actually used.
    pub fn k_set(&self) -> usize {
        self.k.k_for(self.attn.shape.n_kv).min(MAX_K)
    }

    pub fn validate(&self) -> Result<()> {
        self.attn.validate()?;
        self.k.validate()?;
        self.mom.validate()
    }
}

/// Host copy of a sampling-attention result.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingResult {
    /// `[rows, head_dim]`.
    pub out: Vec<f32>,
    /// `[rows, samples]` sampled keys (`u32::MAX` for rows that see no key).
    pub samples: Vec<u32>,
    /// `[rows, samples]` tail keys each sample read.
    pub touched: Vec<u32>,
}

/// The sampling estimator for one [`SamplingAttentionConfig`].
pub struct SamplingAttention {
    ctx: GpuContext,
    cfg: SamplingAttentionConfig,
    scores: AttentionScores,
    lazy: LazyGumbel,
    layout: wgpu::BindGroupLayout,
    bind_groups: shader::BindGroupMemo,
    pipeline: wgpu::ComputePipeline,
}

impl SamplingAttention {
    pub fn new(ctx: &GpuContext, cfg: SamplingAttentionConfig) -> Result<Self> {
        cfg.validate()?;
        let s = &cfg.attn.shape;
        let scores = AttentionScores::new(ctx, cfg.attn, cfg.block_bytes)?;
        let block_rows = scores.block_rows();
        let sampler = SamplerConfig::new(block_rows, s.n_kv, cfg.mom.samples, cfg.seed);
        let lazy = LazyGumbel::with_rows(ctx, sampler, cfg.k_set(), block_rows)?;
        check_binding_size(
            ctx,
            "samples",
            bytes_of::<u32>(&[s.rows(), cfg.mom.samples]),
        )?;
        use BindingKind::{Read, ReadWrite, Uniform};
        let layout =
            shader::bind_group_layout(ctx, "sampling_attention", &[Uniform, Read, Read, ReadWrite]);
        let module = cfg.attn.module(
            ctx,
            ("sampling_attention", sources::SAMPLING_ATTENTION),
            ("sampling_attention_f16", sources::SAMPLING_ATTENTION_F16),
        )?;
        let pl = shader::pipeline_layout(ctx, "sampling_attention", &[&layout]);
        let pipeline = module.pipeline_with_constants(
            ctx,
            "sampling_attention",
            Some(&pl),
            &cfg.attn.constants(),
        )?;
        Ok(SamplingAttention {
            ctx: ctx.clone(),
            cfg,
            scores,
            lazy,
            layout,
            bind_groups: Default::default(),
            pipeline,
        })
    }

    pub fn config(&self) -> &SamplingAttentionConfig {
        &self.cfg
    }

    /// Records the estimate into `out` (`[rows, head_dim]`) and the samples into `samples`
    /// (`[rows, samples]`, see [`LazySamples::new`]).
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        qkv: Qkv<'_>,
        out: &GpuBuffer<f32>,
        samples: &LazySamples,
    ) -> Result<()> {
        let (ctx, cfg) = (&self.ctx, &self.cfg);
        let s = &cfg.attn.shape;
        qkv.check(ctx, &cfg.attn, s.kv_len())?;
        if out.len() < s.q_len() {
            return Err(Error::shape(
                "out",
                format!("≥ {} elements", s.q_len()),
                out.len(),
            ));
        }
        let want = s.rows() * cfg.mom.samples;
        for (arg, len) in [
            ("samples", samples.samples.len()),
            ("touched", samples.touched.len()),
        ] {
            if len < want {
                return Err(Error::shape(arg, format!("≥ {want} elements"), len));
            }
        }
        for block in self.scores.blocks() {
            let mut params = cfg.attn.params();
            block.apply(&mut params);
            self.scores.record(encoder, params, block, qkv)?;
            let mut lp = self.lazy.params(true, 1, block.tile0, s.n_q);
            lp.rows = block.rows() as u32;
            self.lazy.record(
                encoder,
                lp,
                &self.scores.scores,
                Some(&self.scores.lengths),
                samples,
            )?;
        }
        let params = SamplingParams {
            rows: s.rows() as u32,
            n_q: s.n_q as u32,
            heads_q: s.heads_q as u32,
            heads_kv: s.heads_kv as u32,
            n_kv: s.n_kv as u32,
            samples: cfg.mom.samples as u32,
            groups: cfg.mom.groups as u32,
            ..Default::default()
        };
        self.bind_groups.scoped(ctx, |groups| {
            let bg = groups.group(
                ctx,
                &self.layout,
                &params,
                &[qkv.v.binding(), samples.samples.binding(), out.binding()],
            );
            shader::dispatch(
                ctx,
                encoder,
                "sampling_attention",
                &self.pipeline,
                &[&bg],
                s.rows() as u32,
            );
        })
    }

    /// Uploads `q, k, v`, runs, reads back the estimate and the samples.
    pub fn run(&self, q: &[f32], k: &[f32], v: &[f32]) -> Result<SamplingResult> {
        let ctx = &self.ctx;
        let (st, s) = (self.cfg.attn.storage, &self.cfg.attn.shape);
        let tensors = QkvTensors::upload(ctx, st, (q, k, v))?;
        let out = GpuBuffer::zeroed(ctx, s.q_len(), "sampling_attention.out")?;
        let samples = LazySamples::new(ctx, s.rows(), self.cfg.mom.samples)?;
        let mut enc = ctx.encoder("sampling_attention");
        let qkv = tensors.view();
        self.encode(&mut enc, qkv, &out, &samples)?;
        ctx.submit_and_wait(enc)?;
        Ok(SamplingResult {
            out: out.read(ctx)?,
            samples: samples.samples.read(ctx)?,
            touched: samples.touched.read(ctx)?,
        })
    }
}
