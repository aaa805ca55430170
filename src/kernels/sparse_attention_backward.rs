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
//! A kept index ≥ `n_kv` counts as an empty slot (like `u32::MAX`), so a bad index never
//! reads another head's keys.
//!
//! Limits: `n_kv < 2^24` (keys are sorted as exact f32), head_dim ≤ 256. q, k, v in f32 or f16
//! storage (f16 needs `SHADER_F16`); dO, probabilities and gradients are f32.

use crate::attention::{AttentionConfig, GradOutputs, KeptOutputs, Qkv, QkvTensors};
use crate::buffer::{GpuBuffer, bytes_of, check_binding_size};
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::kernels::topk::{Order, Topk, TopkConfig, TopkInput, TopkOutput};
use crate::reference::sparse_attention_backward::AttentionGrads;
use crate::shader::{self, BindingKind, MemoCall, sources};

/// GPU inputs: q, k, v (in the configured storage), the upstream gradient `[rows, d]`, and
/// the forward's kept keys and probabilities `[rows, slots]`.
#[derive(Clone, Copy, Debug)]
pub struct BackwardInputs<'a> {
    pub qkv: Qkv<'a>,
    pub d_out: &'a GpuBuffer<f32>,
    pub kept: &'a KeptOutputs,
}

/// Inputs of the sampled (random-walk) estimator: `samples [rows, L]` are keys drawn from each
/// row's softmax (e.g. by [`crate::kernels::sampling_attention`]), `out` the exact forward
/// output (its `dO·o` keeps the estimates unbiased).
#[derive(Clone, Copy, Debug)]
pub struct SampledInputs<'a> {
    pub qkv: Qkv<'a>,
    pub d_out: &'a GpuBuffer<f32>,
    pub out: &'a GpuBuffer<f32>,
    pub samples: &'a GpuBuffer<u32>,
}

/// Buffers of one backward pass: `kept [rows, slots]` keys and per-slot `weights` (the
/// forward's probabilities, or `D` per row in sampled mode).
struct Io<'a> {
    qkv: Qkv<'a>,
    d_out: &'a GpuBuffer<f32>,
    kept: &'a GpuBuffer<u32>,
    weights: &'a GpuBuffer<f32>,
}

/// The backward kernel for one attention shape and slot count.
pub struct SparseAttentionBackward {
    ctx: GpuContext,
    attn: AttentionConfig,
    slots: usize,
    /// Group 0 of the rows pass (with v).
    rows_layout: wgpu::BindGroupLayout,
    /// Group 0 of the keys and d passes (without v), and their group 1 (one f32 buffer).
    keys_layout: wgpu::BindGroupLayout,
    aux_layout: wgpu::BindGroupLayout,
    bind_groups: shader::BindGroupMemo,
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
        if s.n_kv >= 1 << 24 {
            return Err(Error::shape("n_kv", "< 2^24", s.n_kv));
        }
        if slots == 0 {
            return Err(Error::shape("slots", "≥ 1", 0));
        }
        check_binding_size(ctx, "backward entries", bytes_of::<f32>(&[s.rows(), slots]))?;
        let entries = s.rows() * slots;
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
        let label = "sparse_attention_backward";
        let kinds = [
            Uniform, Read, Read, Read, Read, Read, ReadWrite, ReadWrite, ReadWrite,
        ];
        let rows_layout = shader::bind_group_layout(ctx, label, &kinds);
        let without_v: Vec<_> = (0..kinds.len() as u32)
            .filter(|&b| b != 2)
            .map(|b| (b, kinds[b as usize]))
            .collect();
        let keys_layout = shader::bind_group_layout_at(ctx, label, &without_v);
        let aux_layout = shader::bind_group_layout(ctx, label, &[Read]);
        let module = attn.module(
            ctx,
            (label, sources::SPARSE_ATTENTION_BACKWARD),
            (
                "sparse_attention_backward_f16",
                sources::SPARSE_ATTENTION_BACKWARD_F16,
            ),
        )?;
        let rows_pl = shader::pipeline_layout(ctx, label, &[&rows_layout]);
        let keys_pl = shader::pipeline_layout(ctx, label, &[&keys_layout, &aux_layout]);
        let constants = attn.constants();
        let build = |e, pl| module.pipeline_with_constants(ctx, e, Some(pl), &constants);
        Ok(SparseAttentionBackward {
            rows_pipeline: build("sparse_backward_rows", &rows_pl)?,
            keys_pipeline: build("sparse_backward_keys", &keys_pl)?,
            d_pipeline: build("sparse_backward_d", &keys_pl)?,
            d_rows: GpuBuffer::zeroed(ctx, s.rows(), "backward.d_rows")?,
            sorted: sort.outputs()?,
            sort,
            ds: GpuBuffer::zeroed(ctx, entries, "backward.ds")?,
            slot_keys: GpuBuffer::zeroed(ctx, entries, "backward.slot_keys")?,
            rows_layout,
            keys_layout,
            aux_layout,
            bind_groups: Default::default(),
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
        inputs.qkv.check(&self.ctx, &self.attn, s.kv_len())?;
        Error::check_lengths(&[
            ("d_out", inputs.d_out.len(), s.q_len()),
            ("kept.indices", inputs.kept.indices.len(), entries),
            ("kept.probs", inputs.kept.probs.len(), entries),
        ])?;
        grads.check(s)?;
        let mut params = self.attn.params();
        params.slots = self.slots as u32;
        let io = Io {
            qkv: inputs.qkv,
            d_out: inputs.d_out,
            kept: &inputs.kept.indices,
            weights: &inputs.kept.probs,
        };
        self.bind_groups.scoped(&self.ctx, |call| {
            self.record(call, encoder, params, io, grads)
        })?
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
        inputs.qkv.check(ctx, &self.attn, s.kv_len())?;
        Error::check_lengths(&[
            ("d_out", inputs.d_out.len(), s.q_len()),
            ("out", inputs.out.len(), s.q_len()),
            ("samples", inputs.samples.len(), s.rows() * self.slots),
        ])?;
        grads.check(s)?;
        let mut params = self.attn.params();
        params.slots = self.slots as u32;
        params.sample_weight = 1.0 / self.slots as f32;
        let io = Io {
            qkv: inputs.qkv,
            d_out: inputs.d_out,
            kept: inputs.samples,
            weights: &self.d_rows,
        };
        self.bind_groups.scoped(ctx, |call| {
            let bg = self.keys_group(
                call,
                &params,
                [
                    inputs.qkv.q.binding(),
                    inputs.d_out.binding(),
                    inputs.samples.binding(),
                    inputs.out.binding(),
                    self.d_rows.binding(),
                    self.ds.binding(),
                    self.slot_keys.binding(),
                ],
            );
            let aux = call.group_without_uniform(ctx, &self.aux_layout, &[inputs.out.binding()]);
            let groups = s.rows().div_ceil(256) as u32;
            shader::dispatch(
                ctx,
                encoder,
                "sparse_backward_d",
                &self.d_pipeline,
                &[&bg, &aux],
                groups,
            );
            self.record(call, encoder, params, io, grads)
        })?
    }

    /// Group 0 of the keys and d passes: bindings 1 and 3..=8 in order.
    fn keys_group(
        &self,
        call: &mut MemoCall<'_>,
        params: &crate::params::AttentionParams,
        res: [wgpu::BindingResource<'_>; 7],
    ) -> wgpu::BindGroup {
        let at: Vec<_> = [1, 3, 4, 5, 6, 7, 8].into_iter().zip(res).collect();
        call.group_at(&self.ctx, &self.keys_layout, params, &at)
    }

    /// The rows pass, the sort of its entries by key, then the keys pass, with the groups of
    /// one memo call (`call`), so that a repeated encode creates none.
    fn record(
        &self,
        call: &mut MemoCall<'_>,
        encoder: &mut wgpu::CommandEncoder,
        params: crate::params::AttentionParams,
        io: Io<'_>,
        grads: &GradOutputs,
    ) -> Result<()> {
        let (ctx, s) = (&self.ctx, &self.attn.shape);
        let bg = call.group(
            ctx,
            &self.rows_layout,
            &params,
            &[
                io.qkv.k.binding(),
                io.qkv.v.binding(),
                io.d_out.binding(),
                io.kept.binding(),
                io.weights.binding(),
                grads.dq.binding(),
                self.ds.binding(),
                self.slot_keys.binding(),
            ],
        );
        shader::dispatch(
            ctx,
            encoder,
            "sparse_backward_rows",
            &self.rows_pipeline,
            &[&bg],
            s.rows() as u32,
        );
        self.sort
            .encode(encoder, TopkInput::new(&self.slot_keys), &self.sorted)?;
        let bg = self.keys_group(
            call,
            &params,
            [
                io.qkv.q.binding(),
                io.d_out.binding(),
                self.sorted.indices.binding(),
                io.weights.binding(),
                grads.dk.binding(),
                self.ds.binding(),
                grads.dv.binding(),
            ],
        );
        let aux =
            call.group_without_uniform(ctx, &self.aux_layout, &[self.sorted.values.binding()]);
        let keys = s.batch * s.heads_kv * s.n_kv;
        shader::dispatch(
            ctx,
            encoder,
            "sparse_backward_keys",
            &self.keys_pipeline,
            &[&bg, &aux],
            keys as u32,
        );
        Ok(())
    }

    /// Uploads everything (q, k, v in the configured storage), runs, reads the gradients back.
    pub fn run(
        &self,
        qkv: (&[f32], &[f32], &[f32]),
        d_out: &[f32],
        (kept, probs): (&[u32], &[f32]),
    ) -> Result<AttentionGrads> {
        let ctx = &self.ctx;
        let tensors = QkvTensors::upload(ctx, self.attn.storage, qkv)?;
        let d_out = GpuBuffer::from_slice(ctx, d_out, "d_out")?;
        let kept = KeptOutputs {
            indices: GpuBuffer::from_slice(ctx, kept, "kept")?,
            probs: GpuBuffer::from_slice(ctx, probs, "probs")?,
        };
        let grads = GradOutputs::new(ctx, &self.attn)?;
        let mut enc = ctx.encoder("sparse_attention_backward");
        let inputs = BackwardInputs {
            qkv: tensors.view(),
            d_out: &d_out,
            kept: &kept,
        };
        self.encode(&mut enc, inputs, &grads)?;
        ctx.submit_and_wait(enc)?;
        grads.read(ctx)
    }
}
