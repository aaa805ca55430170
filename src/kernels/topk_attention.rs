//! `topk_attention`: kNN attention. Each query attends only to its k highest-scoring keys
//! (plus optional sinks and a local window), found by an exact search. The n×n score matrix
//! is never stored.
//!
//! Two selections, recorded into the caller's encoder, then the same softmax·V:
//! - **Fused** (`k_max ≤ 64`, the default there): `topk_attention_select`, one workgroup
//!   per 16-query tile, walks the key tiles and keeps each query's running top-k list in
//!   workgroup memory. Per tile, all 256 threads test the 64 new scores against each list's
//!   k-th key, and one thread per query inserts only the survivors (few once the lists are
//!   warm). Scores never leave the chip and memory is O(rows · k).
//! - **Blocked** (any k): per block of query tiles, `attention_scores` writes the block's
//!   scores (one workgroup per tile and 1024-key span, so long decode rows spread over many
//!   workgroups, flash-decoding style), then the exact [`Topk`] runs (one pass per row for
//!   k ≤ 256 on many rows, radix select otherwise), sorted best-first. Scratch is one block, `tiles · 16 · n_kv` f32 (at most `block_bytes`).
//! - Both share the score tile code and the topk rules (ties to the smaller index, NaN last),
//!   so they select identically, bit for bit (tested). Then [`GatherAttention`] computes the
//!   softmax over the kept scores and the weighted sum of their V rows; query `i` uses the
//!   first `k_rows[i]` of its `k_max` sorted keys, which is how per-row k policies work.
//!
//! The selection uses f32 scores. The CPU reference ([`crate::reference::topk_attention`])
//! ranks by f64 scores, so two keys whose scores differ by less than f32 rounding may swap at
//! the k-th place. Everything else matches exactly.

use crate::attention::{
    AttentionConfig, AttentionOutputs, Keep, KeptOutputs, Qkv, QkvTensors, SparseAttentionOutput,
    query_tiles,
};
use crate::buffer::{GpuBuffer, bytes_of, check_binding_size};
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::kernels::attention_scores::AttentionScores;
use crate::kernels::gather_attention::{GatherAttention, GatherConfig};
use crate::kernels::topk::{Topk, TopkConfig, TopkInput, TopkOutput};
use crate::shader::{self, BindingKind, sources, wgsl};

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

/// How the k best keys are found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Selection {
    /// Fused when `k_max ≤ FUSED_MAX_K`, blocked otherwise.
    #[default]
    Auto,
    /// Score blocks through global memory, then the radix-select [`Topk`]: any k.
    Blocked,
    /// One pass keeping a running top-k per query in workgroup memory; scores never leave
    /// the chip. Needs `k_max ≤ FUSED_MAX_K`.
    Fused,
}

/// Largest k of the fused selection (`FUSED_K` in `shaders/shared/topk_attention_body.wgsl`).
pub const FUSED_MAX_K: usize = wgsl::topk_attention::FUSED_K as usize;

/// Shape and options of a top-k attention call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TopkAttentionConfig {
    pub attn: AttentionConfig,
    pub k: KPolicy,
    pub keep: Keep,
    /// Upper bound on the score-block scratch, in bytes (default 64 MiB); also capped by
    /// `max_storage_buffer_binding_size`.
    pub block_bytes: usize,
    pub selection: Selection,
}

impl TopkAttentionConfig {
    pub fn new(attn: AttentionConfig, k: KPolicy) -> Self {
        TopkAttentionConfig {
            attn,
            k,
            keep: Keep::default(),
            block_bytes: 64 << 20,
            selection: Selection::Auto,
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.attn.validate()?;
        self.k.validate()?;
        if self.selection == Selection::Fused && self.k_rows().1 > FUSED_MAX_K {
            return Err(Error::shape(
                "k",
                format!("≤ {FUSED_MAX_K} for the fused selection"),
                self.k_rows().1,
            ));
        }
        Ok(())
    }

    /// True when the fused selection runs.
    pub fn fused(&self) -> bool {
        match self.selection {
            Selection::Auto => self.k_rows().1 <= FUSED_MAX_K,
            Selection::Blocked => false,
            Selection::Fused => true,
        }
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

/// Score blocks and the radix-select top-k with its outputs.
struct Blocked {
    scores: AttentionScores,
    topk: Topk,
    topk_out: TopkOutput,
}

/// The selection stage of one kernel.
enum Selector {
    Blocked(Box<Blocked>),
    Fused {
        layout: wgpu::BindGroupLayout,
        pipeline: wgpu::ComputePipeline,
        /// `[rows, k_max]` selected keys, best first.
        indices: GpuBuffer<u32>,
    },
}

/// The top-k attention kernel for one [`TopkAttentionConfig`].
pub struct TopkAttention {
    ctx: GpuContext,
    cfg: TopkAttentionConfig,
    selector: Selector,
    gather: GatherAttention,
    k_rows: GpuBuffer<u32>,
    /// The fused selection's group (the blocked path's kernels keep their own).
    bind_groups: shader::BindGroupMemo,
}

impl TopkAttention {
    /// Validates `cfg`, compiles the pipelines and allocates one block of scratch.
    pub fn new(ctx: &GpuContext, cfg: TopkAttentionConfig) -> Result<Self> {
        cfg.validate()?;
        let s = &cfg.attn.shape;
        let (k_rows, k_max) = cfg.k_rows();
        let selector = if cfg.fused() {
            use BindingKind::{Read, ReadWrite, Uniform};
            let layout =
                shader::bind_group_layout(ctx, "topk_attention", &[Uniform, Read, Read, ReadWrite]);
            let module = cfg.attn.module(
                ctx,
                ("topk_attention", sources::TOPK_ATTENTION),
                ("topk_attention_f16", sources::TOPK_ATTENTION_F16),
            )?;
            let pl = shader::pipeline_layout(ctx, "topk_attention", &[&layout]);
            let pipeline = module.pipeline_with_constants(
                ctx,
                "topk_attention_select",
                Some(&pl),
                &cfg.attn.constants(),
            )?;
            check_binding_size(
                ctx,
                "topk_attention indices",
                bytes_of::<u32>(&[s.rows(), k_max]),
            )?;
            Selector::Fused {
                layout,
                pipeline,
                indices: GpuBuffer::zeroed(ctx, s.rows() * k_max, "topk_attention.indices")?,
            }
        } else {
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
            Selector::Blocked(Box::new(Blocked {
                topk_out: topk.outputs()?,
                topk,
                scores,
            }))
        };
        Ok(TopkAttention {
            selector,
            bind_groups: Default::default(),
            gather: GatherAttention::new(ctx, cfg.gather())?,
            k_rows: GpuBuffer::from_slice(ctx, &k_rows, "topk_attention.k_rows")?,
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
        let mut params = self.gather.config().params();
        params.has_k_rows = 1;
        match &self.selector {
            Selector::Fused {
                layout,
                pipeline,
                indices,
            } => {
                self.bind_groups.scoped(ctx, |groups| {
                    let bg = groups.group(
                        ctx,
                        layout,
                        &params,
                        &[qkv.q.binding(), qkv.k.binding(), indices.binding()],
                    );
                    let tiles = query_tiles(s);
                    shader::dispatch(
                        ctx,
                        encoder,
                        "topk_attention_select",
                        pipeline,
                        &[&bg],
                        tiles as u32,
                    );
                    self.gather
                        .record(encoder, params, qkv, indices, &self.k_rows, out, kept);
                })?;
            }
            Selector::Blocked(b) => {
                let Blocked {
                    scores,
                    topk,
                    topk_out,
                } = &**b;
                for block in scores.blocks() {
                    block.apply(&mut params);
                    scores.record(encoder, params, block, qkv)?;
                    topk.encode(
                        encoder,
                        TopkInput::new(&scores.scores).with_lengths(&scores.lengths),
                        topk_out,
                    )?;
                    ctx.scoped(|| {
                        self.gather.record(
                            encoder,
                            params,
                            qkv,
                            &topk_out.indices,
                            &self.k_rows,
                            out,
                            kept,
                        );
                    })?;
                }
            }
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
