//! `topk_attention`: kNN attention. Each query attends only to its k highest-scoring keys
//! (plus optional sinks and a local window), found by an exact search. The n×n score matrix
//! is never stored.
//!
//! Pipeline per block of query tiles, all recorded into the caller's encoder:
//! 1. `attention_scores`: the block's scaled scores against every visible key, one
//!    workgroup per (16-query tile, 1024-key span). Long rows spread over many workgroups,
//!    so the same path serves decode (1–16 queries against a long cache, flash-decoding style).
//! 2. [`Topk`]: exact radix-select top-k per row, sorted best-first. Ties go to the smaller
//!    index, and NaN ranks last (see [`crate::kernels::topk`]).
//! 3. [`GatherAttention`] in block order: softmax over the kept scores and the weighted sum of
//!    their V rows. Query `i` uses the first `k_rows[i]` of its `k_max` sorted keys, which is
//!    how per-row k policies work.
//!
//! Scratch is one block of scores, `tiles · 16 · n_kv` f32 (at most `block_bytes`). Memory is
//! O(n·k) for the outputs plus that constant-size block, never O(n²).
//!
//! The selection uses f32 scores. The CPU reference ([`crate::reference::topk_attention`])
//! ranks by f64 scores, so two keys whose scores differ by less than f32 rounding may swap at
//! the k-th place. Everything else matches exactly.

use crate::attention::{
    AttentionConfig, AttentionOutputs, Keep, KeptOutputs, Qkv, QkvTensors, SparseAttentionOutput,
};
use crate::buffer::GpuBuffer;
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::kernels::attention_scores::AttentionScores;
use crate::kernels::gather_attention::{GatherAttention, GatherConfig};
use crate::kernels::topk::{Topk, TopkConfig, TopkInput, TopkOutput};

/// How many keys each query keeps, given how many it can see (`n`, its causal length).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KPolicy {
    /// A fixed k (capped at `n`).
    Fixed(usize),
    /// `k = ⌈√n⌉`. kNN Attention Demystified (Haris) shows that the top √n keys plus a few
    /// sampled tail keys bound the softmax estimate's error; √n is the size of its kNN set.
    Sqrt,
    /// `k = ⌈α·n^C⌉`. "Attention is naturally n^C-sparse" (Deng et al.): the top α·n^C
    /// entries of each row carry almost all of the softmax mass for some C < 1. Far fewer
    /// keys is unstable.
    Power { alpha: f64, c: f64 },
}

impl KPolicy {
    /// Keys kept by a row that sees `n` keys: between 1 and `n` (0 when `n = 0`).
    pub fn k_for(&self, n: usize) -> usize {
        let k = match *self {
            KPolicy::Fixed(k) => k,
            KPolicy::Sqrt => {
                let s = n.isqrt();
                if s * s < n { s + 1 } else { s }
            }
            KPolicy::Power { alpha, c } => (alpha * (n as f64).powf(c)).ceil() as usize,
        };
        k.clamp(1, n.max(1)).min(n)
    }

    pub fn validate(&self) -> Result<()> {
        match *self {
            KPolicy::Fixed(0) => Err(Error::shape("k", "≥ 1", 0)),
            KPolicy::Power { alpha, .. } if !(alpha > 0.0 && alpha.is_finite()) => {
                Err(Error::shape("alpha", "a finite number > 0", alpha))
            }
            KPolicy::Power { c, .. } if !(c > 0.0 && c <= 1.0) => {
                Err(Error::shape("c", "in (0, 1]", c))
            }
            _ => Ok(()),
        }
    }
}

/// Shape and options of a top-k attention call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TopkAttentionConfig {
    pub attn: AttentionConfig,
    pub k: KPolicy,
    pub keep: Keep,
    /// Upper bound on the score-block scratch, in bytes (default 64 MiB); also capped by
    /// `max_storage_buffer_binding_size`.
    pub block_bytes: usize,
}

impl TopkAttentionConfig {
    pub fn new(attn: AttentionConfig, k: KPolicy) -> Self {
        TopkAttentionConfig {
            attn,
            k,
            keep: Keep::default(),
            block_bytes: 64 << 20,
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.attn.validate()?;
        self.k.validate()
    }

    /// Keys kept per query position `i` (before sinks and window), and their maximum.
    pub fn k_rows(&self) -> (Vec<u32>, usize) {
        let s = &self.attn.shape;
        let rows: Vec<u32> = (0..s.n_q)
            .map(|i| self.k.k_for(self.attn.mask.visible_keys(i, s.n_kv)) as u32)
            .collect();
        let k_max = rows.iter().copied().max().unwrap_or(1).max(1) as usize;
        (rows, k_max)
    }

    /// The gather configuration of the softmax·V step: `k_max` slots plus the kept keys.
    pub fn gather(&self) -> GatherConfig {
        GatherConfig {
            keep: self.keep,
            ..GatherConfig::new(self.attn, self.k_rows().1)
        }
    }
}

/// The top-k attention kernel for one [`TopkAttentionConfig`].
pub struct TopkAttention {
    ctx: GpuContext,
    cfg: TopkAttentionConfig,
    scores: AttentionScores,
    topk: Topk,
    topk_out: TopkOutput,
    gather: GatherAttention,
    k_rows: GpuBuffer<u32>,
}

impl TopkAttention {
    /// Validates `cfg`, compiles the pipelines and allocates one block of scratch.
    pub fn new(ctx: &GpuContext, cfg: TopkAttentionConfig) -> Result<Self> {
        cfg.validate()?;
        let s = &cfg.attn.shape;
        let (k_rows, k_max) = cfg.k_rows();
        let scores = AttentionScores::new(ctx, cfg.attn, cfg.block_bytes)?;
        let topk = Topk::new(
            ctx,
            TopkConfig {
                rows: scores.block_rows(),
                n: s.n_kv,
                k: k_max,
                ..Default::default()
            },
        )?;
        Ok(TopkAttention {
            topk_out: topk.outputs()?,
            topk,
            gather: GatherAttention::new(ctx, cfg.gather())?,
            k_rows: GpuBuffer::from_slice(ctx, &k_rows, "topk_attention.k_rows")?,
            scores,
            cfg,
            ctx: ctx.clone(),
        })
    }

    pub fn config(&self) -> &TopkAttentionConfig {
        &self.cfg
    }

    /// Slots per row of the kept outputs: `k_max + sinks + window`.
    pub fn total_slots(&self) -> usize {
        self.gather.config().total_slots()
    }

    /// Records the attention into `out` and, when given, the kept keys and probabilities
    /// (`[rows, total_slots]`, best-first within the top-k part). Validates sizes first.
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        qkv: Qkv<'_>,
        out: &AttentionOutputs,
        kept: Option<&KeptOutputs>,
    ) -> Result<()> {
        let (ctx, cfg) = (&self.ctx, &self.cfg);
        let s = &cfg.attn.shape;
        qkv.check(ctx, &cfg.attn, s.kv_len())?;
        out.check(s)?;
        if let Some(kept) = kept {
            kept.check(s.rows(), self.total_slots())?;
        }
        for block in self.scores.blocks() {
            let mut params = self.gather.config().params();
            params.has_k_rows = 1;
            block.apply(&mut params);
            self.scores.record(encoder, params, block, qkv)?;
            self.topk.encode(
                encoder,
                TopkInput::new(&self.scores.scores).with_lengths(&self.scores.lengths),
                &self.topk_out,
            )?;
            ctx.scoped(|| {
                self.gather.record(
                    encoder,
                    params,
                    qkv,
                    &self.topk_out.indices,
                    &self.k_rows,
                    out,
                    kept,
                );
            })?;
        }
        Ok(())
    }

    /// Uploads `q, k, v`, runs with kept outputs, reads back.
    pub fn run(&self, q: &[f32], k: &[f32], v: &[f32]) -> Result<SparseAttentionOutput> {
        let ctx = &self.ctx;
        let st = self.cfg.attn.storage;
        let tensors = QkvTensors::upload(ctx, st, (q, k, v))?;
        let s = &self.cfg.attn.shape;
        let out = AttentionOutputs::new(ctx, s)?;
        let kept = KeptOutputs::new(ctx, s.rows(), self.total_slots())?;
        let mut enc = ctx.encoder("topk_attention");
        let qkv = tensors.view();
        self.encode(&mut enc, qkv, &out, Some(&kept))?;
        ctx.submit_and_wait(enc)?;
        kept.read_with(ctx, &out, self.total_slots())
    }
}
