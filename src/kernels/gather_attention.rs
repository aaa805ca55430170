//! `gather_attention`: softmax attention of each query over a given list of keys.
//!
//! The selector is anyone's: top-k, leverage scores, an index, a sampler. Per query row the
//! kernel reads `slots` key indices (`u32::MAX` = padding, skipped), adds the [`Keep`] keys
//! (sinks and a local window, each key counted once), and computes the softmax over those
//! keys' scores and the weighted sum of their V rows, with log-sum-exp and optionally the
//! per-slot keys and probabilities (what backward passes need).
//!
//! Slot rule (same in [`crate::reference::gather_attention`]), for a row that sees `vis` keys:
//! - slots `0..slots`: `indices[row][s]`, used only if `s < k_rows[i]` (when given), the key
//!   is visible (`< vis`), not a sink and not in the window. Duplicates count as given.
//! - the next `sinks` slots: keys `0..sinks` (those `< vis`);
//! - the last `window` slots: keys `vis − window .. vis` that are not sinks.
//!
//! Paged KV (as inference servers store caches): `k` and `v` are a pool of pages laid out
//! `[pool_pages, heads_kv, page_size, head_dim]`; key `j` of batch `b` lives in page
//! `block_table[b][j / page_size]` at row `j % page_size`. A page id `≥ pool_pages` skips
//! the key instead of reading out of bounds.
//!
//! One workgroup per query row: scores one slot per thread (256 per chunk), keeps an online
//! softmax across chunks, and splits the threads into `256 / head_dim` groups that read V
//! rows coalesced along the head dimension.

use crate::attention::{
    AttentionConfig, AttentionOutputs, Keep, KeptOutputs, Qkv, QkvTensors, SparseAttentionOutput,
};
use crate::buffer::{GpuBuffer, check_binding_size};
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::params::AttentionParams;
use crate::shader::{self, BindingKind, sources, wgsl};

/// Paged k/v layout (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PagedKv {
    /// Keys per page.
    pub page_size: usize,
    /// Block-table entries per sequence: `pages_per_seq · page_size ≥ n_kv`.
    pub pages_per_seq: usize,
    /// Pages in the pool.
    pub pool_pages: usize,
}

/// Shape and options of a gather call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GatherConfig {
    pub attn: AttentionConfig,
    /// Index slots per query row.
    pub slots: usize,
    pub keep: Keep,
    pub paged: Option<PagedKv>,
    /// `indices` has one row per kv head (`[batch · heads_kv, slots]`), shared by every query
    /// of that head: a query-independent key set such as LevAttention's universal set.
    pub per_kv_head: bool,
}

impl GatherConfig {
    pub fn new(attn: AttentionConfig, slots: usize) -> Self {
        GatherConfig {
            attn,
            slots,
            keep: Keep::default(),
            paged: None,
            per_kv_head: false,
        }
    }

    /// Rows of `indices`: query rows, or kv heads with `per_kv_head`.
    pub fn index_rows(&self) -> usize {
        let s = &self.attn.shape;
        if self.per_kv_head {
            s.batch * s.heads_kv
        } else {
            s.rows()
        }
    }

    /// Slots per row of the kept outputs: `slots + sinks + window`.
    pub fn total_slots(&self) -> usize {
        self.slots + self.keep.sinks + self.keep.window
    }

    /// Elements of `k` (and `v`): the dense tensor or the page pool.
    pub fn kv_len(&self) -> usize {
        let s = &self.attn.shape;
        match self.paged {
            None => s.kv_len(),
            Some(p) => p.pool_pages * s.heads_kv * p.page_size * s.head_dim,
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.attn.validate()?;
        let total = self.total_slots();
        if total == 0 || total > u32::MAX as usize / 2 {
            return Err(Error::shape(
                "slots + sinks + window",
                "between 1 and 2^31",
                total,
            ));
        }
        if let Some(p) = self.paged {
            if p.page_size == 0 || p.pool_pages == 0 {
                return Err(Error::shape(
                    "paged",
                    "page_size > 0 and pool_pages > 0",
                    format!("{p:?}"),
                ));
            }
            if p.pages_per_seq.saturating_mul(p.page_size) < self.attn.shape.n_kv {
                return Err(Error::shape(
                    "paged.pages_per_seq",
                    format!(
                        "≥ n_kv / page_size = {}",
                        self.attn.shape.n_kv.div_ceil(p.page_size)
                    ),
                    p.pages_per_seq,
                ));
            }
            if self.kv_len() > u32::MAX as usize / 2 {
                return Err(Error::shape(
                    "paged pool",
                    "fewer than 2^31 elements",
                    self.kv_len(),
                ));
            }
        }
        Ok(())
    }

    /// Uniform parameters for a plain (row-ordered) call.
    pub(crate) fn params(&self) -> AttentionParams {
        let mut p = self.attn.params();
        p.slots = self.slots as u32;
        p.sinks = self.keep.sinks as u32;
        p.window = self.keep.window as u32;
        p.block_rows = self.attn.shape.rows() as u32;
        p.index_per_head = self.per_kv_head as u32;
        if let Some(pg) = self.paged {
            p.paged = 1;
            p.page_size = pg.page_size as u32;
            p.pages_per_seq = pg.pages_per_seq as u32;
            p.pool_pages = pg.pool_pages as u32;
        }
        p
    }
}

/// GPU inputs of one call.
#[derive(Clone, Copy, Debug)]
pub struct GatherInputs<'a> {
    pub qkv: Qkv<'a>,
    /// `[rows, slots]` key indices (`[batch · heads_kv, slots]` with `per_kv_head`).
    pub indices: &'a GpuBuffer<u32>,
    /// Optional `[n_q]`: query `i` uses only its first `k_rows[i]` slots (all heads, batches).
    pub k_rows: Option<&'a GpuBuffer<u32>>,
    /// `[batch, pages_per_seq]` page ids; required with a paged layout.
    pub block_table: Option<&'a GpuBuffer<u32>>,
}

/// The gather-attention kernel for one [`GatherConfig`].
pub struct GatherAttention {
    ctx: GpuContext,
    cfg: GatherConfig,
    layout: wgpu::BindGroupLayout,
    bind_groups: shader::BindGroupMemo,
    slots_layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
    slots_pipeline: wgpu::ComputePipeline,
    /// Stand-ins for absent optional bindings (two: one read-only, one read-write).
    no_aux: GpuBuffer<u32>,
    no_probs: GpuBuffer<f32>,
}

const THREADS: usize = wgsl::gather_attention::GATHER_THREADS as usize;

impl GatherAttention {
    /// Validates `cfg` and compiles the pipelines (f16 storage needs `SHADER_F16`).
    pub fn new(ctx: &GpuContext, cfg: GatherConfig) -> Result<Self> {
        cfg.validate()?;
        use BindingKind::{Read, ReadWrite, Uniform};
        let layout = shader::bind_group_layout(
            ctx,
            "gather_attention",
            &[
                Uniform, Read, Read, Read, Read, Read, ReadWrite, ReadWrite, ReadWrite,
            ],
        );
        let slots_layout = shader::bind_group_layout_at(
            ctx,
            "gather_attention_slots",
            &[(0, Uniform), (4, Read), (5, Read), (9, ReadWrite)],
        );
        let module = cfg.attn.module(
            ctx,
            ("gather_attention", sources::GATHER_ATTENTION),
            ("gather_attention_f16", sources::GATHER_ATTENTION_F16),
        )?;
        let constants = cfg.attn.constants();
        let build = |entry, l: &wgpu::BindGroupLayout| {
            let pl = shader::pipeline_layout(ctx, entry, &[l]);
            module.pipeline_with_constants(ctx, entry, Some(&pl), &constants)
        };
        Ok(GatherAttention {
            pipeline: build("gather_attention", &layout)?,
            slots_pipeline: build("gather_attention_slots", &slots_layout)?,
            no_aux: GpuBuffer::zeroed(ctx, 4, "gather_attention.no_aux")?,
            no_probs: GpuBuffer::zeroed(ctx, 4, "gather_attention.no_probs")?,
            layout,
            bind_groups: Default::default(),
            slots_layout,
            cfg,
            ctx: ctx.clone(),
        })
    }

    pub fn config(&self) -> &GatherConfig {
        &self.cfg
    }

    /// Records the attention into `out` and, when given, the per-slot keys and probabilities
    /// into `kept` (`[rows, total_slots]`). Validates every size first.
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        inputs: GatherInputs<'_>,
        out: &AttentionOutputs,
        kept: Option<&KeptOutputs>,
    ) -> Result<()> {
        let (ctx, cfg) = (&self.ctx, &self.cfg);
        let shape = &cfg.attn.shape;
        inputs.qkv.check(ctx, &cfg.attn, cfg.kv_len())?;
        out.check(shape)?;
        let rows = shape.rows();
        let want = cfg.index_rows() * cfg.slots;
        if inputs.indices.len() < want {
            return Err(Error::shape(
                "indices",
                format!("≥ index rows · slots = {want} elements"),
                inputs.indices.len(),
            ));
        }
        check_binding_size(ctx, "indices", inputs.indices.buffer().size())?;
        if let Some(kept) = kept {
            kept.check(rows, cfg.total_slots())?;
        }
        let mut params = cfg.params();
        let aux = match (cfg.paged, inputs.block_table, inputs.k_rows) {
            (Some(_), _, Some(_)) => {
                return Err(Error::shape(
                    "k_rows",
                    "absent with a paged layout",
                    "given",
                ));
            }
            (Some(p), Some(t), None) => {
                let want = shape.batch * p.pages_per_seq;
                if t.len() < want {
                    return Err(Error::shape(
                        "block_table",
                        format!("≥ {want} elements"),
                        t.len(),
                    ));
                }
                t
            }
            (Some(_), None, None) => {
                return Err(Error::shape(
                    "block_table",
                    "given with a paged layout",
                    "none",
                ));
            }
            (None, Some(_), _) => {
                return Err(Error::shape(
                    "block_table",
                    "absent without a paged layout",
                    "given",
                ));
            }
            (None, None, Some(k)) => {
                if k.len() < shape.n_q {
                    return Err(Error::shape(
                        "k_rows",
                        format!("≥ n_q = {}", shape.n_q),
                        k.len(),
                    ));
                }
                params.has_k_rows = 1;
                k
            }
            (None, None, None) => &self.no_aux,
        };
        ctx.scoped(|| {
            self.record(encoder, params, inputs.qkv, inputs.indices, aux, out, kept);
        })
    }

    /// Records both passes for `params` (plain rows or a tiled score block; no validation).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        mut params: AttentionParams,
        qkv: Qkv<'_>,
        indices: &GpuBuffer<u32>,
        aux: &GpuBuffer<u32>,
        out: &AttentionOutputs,
        kept: Option<&KeptOutputs>,
    ) {
        let ctx = &self.ctx;
        params.write_kept = kept.is_some() as u32;
        let probs = kept.map_or(self.no_probs.binding(), |k| k.probs.binding());
        // A memo call per record (topk_attention records one per query block).
        let mut groups = self.bind_groups.call();
        let bg = groups.group(
            ctx,
            &self.layout,
            &params,
            &[
                qkv.q.binding(),
                qkv.k.binding(),
                qkv.v.binding(),
                indices.binding(),
                aux.binding(),
                out.out.binding(),
                out.lse.binding(),
                probs,
            ],
        );
        let rows = params.block_rows;
        shader::dispatch(
            ctx,
            encoder,
            "gather_attention",
            &self.pipeline,
            &[&bg],
            rows,
        );
        if let Some(kept) = kept {
            let bg = groups.group_at(
                ctx,
                &self.slots_layout,
                &params,
                &[
                    (4, indices.binding()),
                    (5, aux.binding()),
                    (9, kept.indices.binding()),
                ],
            );
            let threads = rows as usize * self.cfg.total_slots();
            shader::dispatch(
                ctx,
                encoder,
                "gather_attention_slots",
                &self.slots_pipeline,
                &[&bg],
                threads.div_ceil(THREADS) as u32,
            );
        }
    }

    /// Uploads everything, runs with kept outputs, reads back.
    pub fn run(
        &self,
        (q, k, v): (&[f32], &[f32], &[f32]),
        indices: &[u32],
        k_rows: Option<&[u32]>,
        block_table: Option<&[u32]>,
    ) -> Result<SparseAttentionOutput> {
        let ctx = &self.ctx;
        let st = self.cfg.attn.storage;
        let tensors = QkvTensors::upload(ctx, st, (q, k, v))?;
        let indices = GpuBuffer::from_slice(ctx, indices, "indices")?;
        let k_rows = k_rows
            .map(|r| GpuBuffer::from_slice(ctx, r, "k_rows"))
            .transpose()?;
        let table = block_table
            .map(|t| GpuBuffer::from_slice(ctx, t, "block_table"))
            .transpose()?;
        let shape = &self.cfg.attn.shape;
        let out = AttentionOutputs::new(ctx, shape)?;
        let kept = KeptOutputs::new(ctx, shape.rows(), self.cfg.total_slots())?;
        let mut enc = ctx.encoder("gather_attention");
        let inputs = GatherInputs {
            qkv: tensors.view(),
            indices: &indices,
            k_rows: k_rows.as_ref(),
            block_table: table.as_ref(),
        };
        self.encode(&mut enc, inputs, &out, Some(&kept))?;
        ctx.submit_and_wait(enc)?;
        kept.read_with(ctx, &out, self.cfg.total_slots())
    }
}
