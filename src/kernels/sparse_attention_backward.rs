//! `sparse_attention_backward`: exact gradients dQ, dK, dV of attention over fixed key sets,
//! i.e. the backward of [`crate::kernels::topk_attention`], [`crate::kernels::gather_attention`]
//! and [`crate::kernels::lev_attention`] with the selection treated as fixed. Inputs are the
//! forward's kept keys and probabilities ([`KeptOutputs`]) and the upstream gradient `dO`.
//!
//! Deterministic and portable (no float atomics): dQ is a per-row gather; dK and dV need
//! every key's list of (query, slot) entries, which the exact [`Topk`] kernel provides by
//! sorting each kv group's slot keys smallest first. Its tie rule (smaller position first)
//! makes the sort stable, so each key sums its entries in row order, the same on every run and
//! every GPU. Cost: O(rows · slots · d) plus the sort. Oracle:
//! [`crate::reference::sparse_attention_backward`].
//!
//! Limits: f32 storage, `n_kv < 2^24` (keys are sorted as exact f32), head_dim ≤ 256.

use crate::attention::{AttentionConfig, GradOutputs, KeptOutputs};
use crate::buffer::{ElemType, GpuBuffer, check_binding_size};
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::kernels::topk::{Order, Topk, TopkConfig, TopkInput, TopkOutput};
use crate::reference::sparse_attention_backward::AttentionGrads;
use crate::shader::{self, BindingKind, Module, Tier, sources};

/// GPU inputs: q, k, v (f32), the upstream gradient `[rows, d]`, and the forward's kept
/// keys and probabilities `[rows, slots]`.
#[derive(Clone, Copy, Debug)]
pub struct BackwardInputs<'a> {
    pub q: &'a GpuBuffer<f32>,
    pub k: &'a GpuBuffer<f32>,
    pub v: &'a GpuBuffer<f32>,
    pub d_out: &'a GpuBuffer<f32>,
    pub kept: &'a KeptOutputs,
}

/// Inputs of the sampled (random-walk) estimator: `samples [rows, L]` are keys drawn from each
/// row's softmax (e.g. by [`crate::kernels::sampling_attention`]), `out` the exact forward
/// output (its `dO·o` keeps the estimates unbiased).
#[derive(Clone, Copy, Debug)]
pub struct SampledInputs<'a> {
    pub q: &'a GpuBuffer<f32>,
    pub k: &'a GpuBuffer<f32>,
    pub v: &'a GpuBuffer<f32>,
    pub d_out: &'a GpuBuffer<f32>,
    pub out: &'a GpuBuffer<f32>,
    pub samples: &'a GpuBuffer<u32>,
}

/// Buffers of one backward pass: `kept [rows, slots]` keys and per-slot `weights` (the
/// forward's probabilities, or `D` per row in sampled mode).
struct Io<'a> {
    q: &'a GpuBuffer<f32>,
    k: &'a GpuBuffer<f32>,
    v: &'a GpuBuffer<f32>,
    d_out: &'a GpuBuffer<f32>,
    kept: &'a GpuBuffer<u32>,
    weights: &'a GpuBuffer<f32>,
}

/// The backward kernel for one attention shape and slot count.
pub struct SparseAttentionBackward {
    ctx: GpuContext,
    attn: AttentionConfig,
    slots: usize,
    layout: wgpu::BindGroupLayout,
    rows_pipeline: wgpu::ComputePipeline,
    keys_pipeline: wgpu::ComputePipeline,
    d_pipeline: wgpu::ComputePipeline,
    /// `D_i = dO_i·o_i` per row (sampled mode).
    d_rows: GpuBuffer<f32>,
    sort: Topk,
    sorted: TopkOutput,
    ds: GpuBuffer<f32>,
    slot_keys: GpuBuffer<f32>,
}

impl SparseAttentionBackward {
    /// `slots`: per-row slots of the forward's kept outputs (e.g. `TopkAttention::total_slots`).
    pub fn new(ctx: &GpuContext, attn: AttentionConfig, slots: usize) -> Result<Self> {
        attn.validate()?;
        let s = &attn.shape;
        if attn.storage != ElemType::F32 {
            return Err(Error::Unsupported {
                feature: "f16 storage in sparse_attention_backward".into(),
            });
        }
        if s.n_kv >= 1 << 24 {
            return Err(Error::shape("n_kv", "< 2^24", s.n_kv));
        }
        if slots == 0 {
            return Err(Error::shape("slots", "≥ 1", 0));
        }
        let entries = s.rows() * slots;
        check_binding_size(ctx, "backward entries", (entries * 4) as u64)?;
        let groups = s.batch * s.heads_kv;
        let per_group = entries / groups;
        let sort = Topk::new(
            ctx,
            TopkConfig {
                rows: groups,
                n: per_group,
                k: per_group,
                order: Order::Smallest,
                ..Default::default()
            },
        )?;
        use BindingKind::{Read, ReadWrite, Uniform};
        let layout = shader::bind_group_layout(
            ctx,
            "sparse_attention_backward",
            &[
                Uniform, Read, Read, Read, Read, Read, ReadWrite, ReadWrite, ReadWrite,
            ],
        );
        let module = Module::new(
            ctx,
            "sparse_attention_backward",
            sources::SPARSE_ATTENTION_BACKWARD,
            Tier::Core,
        )?;
        let pl = shader::pipeline_layout(ctx, "sparse_attention_backward", &[&layout]);
        let constants = attn.constants();
        let build = |e| module.pipeline_with_constants(ctx, e, Some(&pl), &constants);
        Ok(SparseAttentionBackward {
            rows_pipeline: build("sparse_backward_rows")?,
            keys_pipeline: build("sparse_backward_keys")?,
            d_pipeline: build("sparse_backward_d")?,
            d_rows: GpuBuffer::zeroed(ctx, s.rows(), "backward.d_rows")?,
            sorted: sort.outputs()?,
            sort,
            ds: GpuBuffer::zeroed(ctx, entries, "backward.ds")?,
            slot_keys: GpuBuffer::zeroed(ctx, entries, "backward.slot_keys")?,
            layout,
            slots,
            attn,
            ctx: ctx.clone(),
        })
    }

    /// Records the gradients into `grads`. Validates every size first.
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        inputs: BackwardInputs<'_>,
        grads: &GradOutputs,
    ) -> Result<()> {
        let s = &self.attn.shape;
        let entries = s.rows() * self.slots;
        Error::check_lengths(&[
            ("q", inputs.q.len(), s.q_len()),
            ("k", inputs.k.len(), s.kv_len()),
            ("v", inputs.v.len(), s.kv_len()),
            ("d_out", inputs.d_out.len(), s.q_len()),
            ("kept.indices", inputs.kept.indices.len(), entries),
            ("kept.probs", inputs.kept.probs.len(), entries),
        ])?;
        grads.check(s)?;
        let mut params = self.attn.params();
        params.slots = self.slots as u32;
        let io = Io {
            q: inputs.q,
            k: inputs.k,
            v: inputs.v,
            d_out: inputs.d_out,
            kept: &inputs.kept.indices,
            weights: &inputs.kept.probs,
        };
        self.record(encoder, params, io, grads)
    }

    /// The random-walk estimator: the exact backward's formulas with each row's P replaced by
    /// its L samples at weight 1/L (the kernel must be built with `slots = L`). Unbiased for
    /// dQ, dK and dV given the exact forward output; the error falls like 1/√L. Same samples,
    /// same bits.
    pub fn encode_sampled(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        inputs: SampledInputs<'_>,
        grads: &GradOutputs,
    ) -> Result<()> {
        let (ctx, s) = (&self.ctx, &self.attn.shape);
        Error::check_lengths(&[
            ("q", inputs.q.len(), s.q_len()),
            ("k", inputs.k.len(), s.kv_len()),
            ("v", inputs.v.len(), s.kv_len()),
            ("d_out", inputs.d_out.len(), s.q_len()),
            ("out", inputs.out.len(), s.q_len()),
            ("samples", inputs.samples.len(), s.rows() * self.slots),
        ])?;
        grads.check(s)?;
        let mut params = self.attn.params();
        params.slots = self.slots as u32;
        params.sample_weight = 1.0 / self.slots as f32;
        ctx.scoped(|| {
            let uniform = shader::uniform(ctx, &params);
            let bg = shader::bind_group_with_layout(
                ctx,
                &self.layout,
                &[
                    uniform.as_entire_binding(),
                    inputs.out.binding(),
                    inputs.v.binding(),
                    inputs.d_out.binding(),
                    inputs.samples.binding(),
                    inputs.v.binding(),
                    self.d_rows.binding(),
                    self.ds.binding(),
                    self.slot_keys.binding(),
                ],
            );
            let groups = s.rows().div_ceil(256) as u32;
            shader::dispatch(
                ctx,
                encoder,
                "sparse_backward_d",
                &self.d_pipeline,
                &[&bg],
                groups,
            );
        })?;
        let io = Io {
            q: inputs.q,
            k: inputs.k,
            v: inputs.v,
            d_out: inputs.d_out,
            kept: inputs.samples,
            weights: &self.d_rows,
        };
        self.record(encoder, params, io, grads)
    }

    fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        params: crate::params::AttentionParams,
        io: Io<'_>,
        grads: &GradOutputs,
    ) -> Result<()> {
        let (ctx, s) = (&self.ctx, &self.attn.shape);
        let uniform = shader::uniform(ctx, &params);
        let bind = |res: [wgpu::BindingResource<'_>; 8]| {
            let mut all = vec![uniform.as_entire_binding()];
            all.extend(res);
            shader::bind_group_with_layout(ctx, &self.layout, &all)
        };
        ctx.scoped(|| {
            let bg = bind([
                io.k.binding(),
                io.v.binding(),
                io.d_out.binding(),
                io.kept.binding(),
                io.weights.binding(),
                grads.dq.binding(),
                self.ds.binding(),
                self.slot_keys.binding(),
            ]);
            shader::dispatch(
                ctx,
                encoder,
                "sparse_backward_rows",
                &self.rows_pipeline,
                &[&bg],
                s.rows() as u32,
            );
        })?;
        self.sort
            .encode(encoder, TopkInput::new(&self.slot_keys), &self.sorted)?;
        ctx.scoped(|| {
            let bg = bind([
                io.q.binding(),
                self.sorted.values.binding(),
                io.d_out.binding(),
                self.sorted.indices.binding(),
                io.weights.binding(),
                grads.dk.binding(),
                self.ds.binding(),
                grads.dv.binding(),
            ]);
            let keys = s.batch * s.heads_kv * s.n_kv;
            shader::dispatch(
                ctx,
                encoder,
                "sparse_backward_keys",
                &self.keys_pipeline,
                &[&bg],
                keys as u32,
            );
        })
    }

    /// Uploads everything, runs, reads the gradients back.
    pub fn run(
        &self,
        (q, k, v): (&[f32], &[f32], &[f32]),
        d_out: &[f32],
        (kept, probs): (&[u32], &[f32]),
    ) -> Result<AttentionGrads> {
        let ctx = &self.ctx;
        let up = |x: &[f32], l| GpuBuffer::from_slice(ctx, x, l);
        let (qb, kb, vb, db) = (up(q, "q")?, up(k, "k")?, up(v, "v")?, up(d_out, "d_out")?);
        let kept = KeptOutputs {
            indices: GpuBuffer::from_slice(ctx, kept, "kept")?,
            probs: up(probs, "probs")?,
        };
        let grads = GradOutputs::new(ctx, &self.attn)?;
        let mut enc = ctx.encoder("sparse_attention_backward");
        let inputs = BackwardInputs {
            q: &qb,
            k: &kb,
            v: &vb,
            d_out: &db,
            kept: &kept,
        };
        self.encode(&mut enc, inputs, &grads)?;
        ctx.submit_and_wait(enc)?;
        grads.read(ctx)
    }
}
