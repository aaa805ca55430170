//! `lev_attention`: LevAttention (Kannan, Bhattacharyya et al.). Per kv head, the `|U|` keys
//! with the largest leverage scores form a universal set that contains every key with large
//! attention for any query. Attention then runs over `U` (plus optional sinks and a local
//! window) without looking at the queries to choose keys.
//!
//! Pipeline: [`LeverageScores`] over all `n_kv` keys → [`Topk`] of the scores per head (the
//! universal set, best first) → [`GatherAttention`] with one shared index row per kv head.
//! Causal queries skip the set's keys they cannot see, so early queries may attend to few
//! keys; [`LeverageScores::append`] keeps the set current as a cache grows. A head whose
//! scores are NaN (NaN keys, or keys large enough to overflow the f32 Gram matrix) gets keys
//! `0..|U|` as its set: NaN ranks last and ties go to the smaller index.
//!
//! Limits: f32 keys (f16 storage is [`Error::Unsupported`] here), `head_dim ≤ 128`.

use crate::attention::{
    AttentionConfig, AttentionOutputs, Keep, KeptOutputs, Qkv, QkvTensors, SparseAttentionOutput,
};
use crate::buffer::{ElemType, Elems, GpuBuffer};
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::kernels::gather_attention::{GatherAttention, GatherConfig, GatherInputs};
use crate::kernels::leverage_scores::{DEFAULT_RIDGE, LeverageConfig, LeverageScores};
use crate::kernels::topk::{Topk, TopkConfig, TopkInput, TopkOutput};

/// Shape and options of a LevAttention call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LevAttentionConfig {
    pub attn: AttentionConfig,
    /// Keys in the universal set per kv head, `1 ≤ |U| ≤ n_kv`.
    pub universal: usize,
    pub keep: Keep,
    /// Relative ridge of the leverage scores (see [`crate::kernels::leverage_scores`]).
    pub ridge: f32,
}

impl LevAttentionConfig {
    pub fn new(attn: AttentionConfig, universal: usize) -> Self {
        LevAttentionConfig {
            attn,
            universal,
            keep: Keep::default(),
            ridge: DEFAULT_RIDGE,
        }
    }

    /// `|U| = ⌈d/ε⌉` (the paper's universal-set size for an ε fraction of attention mass),
    /// capped at `n_kv`.
    pub fn from_eps(attn: AttentionConfig, eps: f64) -> Result<Self> {
        if !(eps > 0.0 && eps.is_finite()) {
            return Err(Error::shape("eps", "> 0", eps));
        }
        let u = (attn.shape.head_dim as f64 / eps).ceil() as usize;
        Ok(Self::new(attn, u.clamp(1, attn.shape.n_kv.max(1))))
    }

    pub fn leverage(&self) -> LeverageConfig {
        let s = &self.attn.shape;
        LeverageConfig {
            ridge: self.ridge,
            ..LeverageConfig::new(s.batch * s.heads_kv, s.n_kv, s.head_dim)
        }
    }

    pub fn gather(&self) -> GatherConfig {
        GatherConfig {
            keep: self.keep,
            per_kv_head: true,
            ..GatherConfig::new(self.attn, self.universal)
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.attn.validate()?;
        if self.attn.storage != ElemType::F32 {
            return Err(Error::Unsupported {
                feature: "f16 keys in lev_attention (leverage scores read f32)".into(),
            });
        }
        if self.universal == 0 || self.universal > self.attn.shape.n_kv {
            return Err(Error::shape(
                "universal",
                format!("1 ≤ |U| ≤ n_kv = {}", self.attn.shape.n_kv),
                self.universal,
            ));
        }
        self.leverage().validate()
    }
}

/// Host result: the attention and the universal set `[batch · heads_kv, |U|]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LevResult {
    pub attention: SparseAttentionOutput,
    pub universal: Vec<u32>,
    /// Leverage scores `[batch · heads_kv, n_kv]`.
    pub sigma: Vec<f32>,
}

/// LevAttention for one [`LevAttentionConfig`].
pub struct LevAttention {
    ctx: GpuContext,
    cfg: LevAttentionConfig,
    lev: LeverageScores,
    topk: Topk,
    gather: GatherAttention,
    /// Leverage scores `[batch · heads_kv, n_kv]` of the last call.
    pub sigma: GpuBuffer<f32>,
    /// The universal set of the last call: `indices [batch · heads_kv, |U|]`, best first.
    pub universal: TopkOutput,
}

impl LevAttention {
    pub fn new(ctx: &GpuContext, cfg: LevAttentionConfig) -> Result<Self> {
        cfg.validate()?;
        let s = &cfg.attn.shape;
        let heads = s.batch * s.heads_kv;
        let topk = Topk::new(
            ctx,
            TopkConfig {
                rows: heads,
                n: s.n_kv,
                k: cfg.universal,
                ..Default::default()
            },
        )?;
        Ok(LevAttention {
            lev: LeverageScores::new(ctx, cfg.leverage())?,
            universal: topk.outputs()?,
            topk,
            gather: GatherAttention::new(ctx, cfg.gather())?,
            sigma: GpuBuffer::zeroed(ctx, heads * s.n_kv, "lev_attention.sigma")?,
            cfg,
            ctx: ctx.clone(),
        })
    }

    pub fn config(&self) -> &LevAttentionConfig {
        &self.cfg
    }

    /// Slots per row of the kept outputs: `|U| + sinks + window`.
    pub fn total_slots(&self) -> usize {
        self.gather.config().total_slots()
    }

    /// Streaming: adds keys `[key0, key1)` of the cache `k` (`[batch · heads_kv, n_kv, d]`)
    /// to the leverage Gram matrices (from scratch when `key0 == 0`).
    pub fn append(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        k: &GpuBuffer<f32>,
        key0: usize,
        key1: usize,
    ) -> Result<()> {
        self.lev.append(encoder, k, key0, key1)
    }

    /// Streaming: rescores keys `[0, n)` and rebuilds the universal set from them only.
    pub fn refresh(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        k: &GpuBuffer<f32>,
        n: usize,
    ) -> Result<()> {
        self.lev.score(encoder, k, n, &self.sigma)?;
        let input = TopkInput::new(&self.sigma).with_lengths(&self.lev.scored);
        self.topk.encode(encoder, input, &self.universal)
    }

    /// Attention over the current universal set (after [`Self::refresh`]); queries see keys
    /// by the configured mask.
    pub fn attend(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        qkv: Qkv<'_>,
        out: &AttentionOutputs,
        kept: Option<&KeptOutputs>,
    ) -> Result<()> {
        let inputs = GatherInputs {
            qkv,
            indices: &self.universal.indices,
            k_rows: None,
            block_table: None,
        };
        self.gather.encode(encoder, inputs, out, kept)
    }

    /// Records scores, the universal set and the attention into `out` (and `kept`).
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        qkv: Qkv<'_>,
        out: &AttentionOutputs,
        kept: Option<&KeptOutputs>,
    ) -> Result<()> {
        let Elems::F32(k) = qkv.k else {
            return Err(Error::shape("k", "f32 storage", "f16"));
        };
        qkv.check(&self.ctx, &self.cfg.attn, self.cfg.attn.shape.kv_len())?;
        self.lev
            .encode(encoder, k, self.cfg.attn.shape.n_kv, &self.sigma)?;
        self.topk
            .encode(encoder, TopkInput::new(&self.sigma), &self.universal)?;
        let inputs = GatherInputs {
            qkv,
            indices: &self.universal.indices,
            k_rows: None,
            block_table: None,
        };
        self.gather.encode(encoder, inputs, out, kept)
    }

    /// Uploads `q, k, v`, runs, reads back the attention, the universal set and the scores.
    pub fn run(&self, q: &[f32], k: &[f32], v: &[f32]) -> Result<LevResult> {
        let ctx = &self.ctx;
        let s = &self.cfg.attn.shape;
        let tensors = QkvTensors::upload(ctx, ElemType::F32, (q, k, v))?;
        let out = AttentionOutputs::new(ctx, s)?;
        let kept = KeptOutputs::new(ctx, s.rows(), self.total_slots())?;
        let mut enc = ctx.encoder("lev_attention");
        let qkv = tensors.view();
        self.encode(&mut enc, qkv, &out, Some(&kept))?;
        ctx.submit_and_wait(enc)?;
        Ok(LevResult {
            attention: kept.read_with(ctx, &out, self.total_slots())?,
            universal: self.universal.indices.read(ctx)?,
            sigma: self.sigma.read(ctx)?,
        })
    }
}
