//! Configuration, inputs and outputs shared by the attention kernels
//! ([`crate::kernels::dense_attention`], [`crate::kernels::gather_attention`],
//! [`crate::kernels::topk_attention`]) and their CPU references.
//!
//! Numbers, the same in every kernel and reference:
//! - Scores are `scale · q·k` accumulated in f32 on the GPU (f64 in the references), for f32
//!   and f16 storage alike; outputs and log-sum-exp are f32.
//! - A row that attends to no key (every slot skipped, or every score −∞) has output 0 and
//!   `lse = −∞`.
//! - NaN in a score the row uses makes that row's output, lse and probabilities NaN; a +∞
//!   score does too (∞ − ∞). Keys a row does not use (masked, not selected, skipped slots)
//!   never touch it, whatever their values.

use crate::buffer::{ElemType, Elems, GpuBuffer, Tensor, bytes_of, check_binding_size};
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::params::AttentionParams;
use crate::reference::dense_attention::AttentionOutput;
use crate::reference::sparse_attention_backward::AttentionGrads;
use crate::shader::{Module, Tier, wgsl};
use crate::shape::{AttentionShape, MAX_ELEMENTS, Mask};

/// Largest head dimension the kernels support (one thread per dimension in the gather).
pub const MAX_HEAD_DIM: usize = wgsl::dense_attention::MAX_HEAD_DIM as usize;

/// Queries per tile of the attention kernels (`Q_TILE` in the shaders).
pub(crate) const Q_TILE: usize = wgsl::dense_attention::Q_TILE as usize;

/// Query tiles of `shape`: each (batch, query head) row block of n_q queries in tiles of
/// [`Q_TILE`], the workgroup count of the per-tile kernels.
pub(crate) fn query_tiles(shape: &AttentionShape) -> usize {
    shape.batch * shape.heads_q * shape.n_q.div_ceil(Q_TILE)
}

/// Shape and numeric options of an attention call; fixed when a kernel is built.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionConfig {
    pub shape: AttentionShape,
    /// Multiplies q·k before the softmax (usually `1/√head_dim`).
    pub scale: f32,
    pub mask: Mask,
    /// Storage type of q, k and v. Outputs are always f32.
    pub storage: ElemType,
}

impl AttentionConfig {
    /// Unmasked f32 attention with `scale = 1/√head_dim`.
    pub fn new(shape: AttentionShape) -> Self {
        AttentionConfig {
            shape,
            scale: 1.0 / (shape.head_dim.max(1) as f32).sqrt(),
            mask: Mask::None,
            storage: ElemType::F32,
        }
    }

    pub fn with_mask(self, mask: Mask) -> Self {
        AttentionConfig { mask, ..self }
    }

    pub fn with_scale(self, scale: f32) -> Self {
        AttentionConfig { scale, ..self }
    }

    pub fn with_storage(self, storage: ElemType) -> Self {
        AttentionConfig { storage, ..self }
    }

    /// Checks the shape and options (not buffer lengths).
    pub fn validate(&self) -> Result<()> {
        let s = &self.shape;
        s.check_dims()?;
        for (arg, v) in [
            ("batch", s.batch),
            ("heads_q", s.heads_q),
            ("n_q", s.n_q),
            ("n_kv", s.n_kv),
        ] {
            if v == 0 {
                return Err(Error::shape(arg, "> 0", v));
            }
        }
        if s.head_dim > MAX_HEAD_DIM {
            return Err(Error::shape(
                "head_dim",
                format!("≤ {MAX_HEAD_DIM}"),
                s.head_dim,
            ));
        }
        if !self.scale.is_finite() {
            return Err(Error::shape("scale", "a finite number", self.scale));
        }
        if let Mask::Causal { offset } = self.mask
            && offset > MAX_ELEMENTS
        {
            return Err(Error::shape("mask offset", "< 2^31", offset));
        }
        Ok(())
    }

    /// Shader tier needed for the storage type.
    pub(crate) fn tier(&self) -> Tier {
        match self.storage {
            ElemType::F32 => Tier::Core,
            ElemType::F16 => Tier::F16,
        }
    }

    /// Compiles the f32 or f16 variant of a kernel.
    pub(crate) fn module(
        &self,
        ctx: &GpuContext,
        (name32, src32): (&'static str, &'static str),
        (name16, src16): (&'static str, &'static str),
    ) -> Result<Module> {
        match self.storage {
            ElemType::F32 => Module::new(ctx, name32, src32, self.tier()),
            ElemType::F16 => Module::new(ctx, name16, src16, self.tier()),
        }
    }

    /// Pipeline constants: the head dimension.
    pub(crate) fn constants(&self) -> [(&'static str, f64); 1] {
        [("HEAD_DIM", self.shape.head_dim as f64)]
    }

    /// Uniform parameters with the shape and mask filled in.
    pub(crate) fn params(&self) -> AttentionParams {
        let s = &self.shape;
        let (causal, offset) = match self.mask {
            Mask::None => (0, 0),
            Mask::Causal { offset } => (1, offset as u32),
        };
        AttentionParams {
            heads_q: s.heads_q as u32,
            heads_kv: s.heads_kv as u32,
            n_q: s.n_q as u32,
            n_kv: s.n_kv as u32,
            rows: s.rows() as u32,
            causal,
            causal_offset: offset,
            scale: self.scale,
            ..Default::default()
        }
    }
}

/// Keys every row keeps in addition to its selected ones: the first `sinks` keys (attention
/// sinks) and the last `window` keys the row can see (a local window; for causal rows the
/// keys just before the query). Each key counts once even when several rules pick it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keep {
    pub sinks: usize,
    pub window: usize,
}

/// q, k and v on the GPU, in the storage type the kernel was built for.
#[derive(Clone, Copy, Debug)]
pub struct Qkv<'a> {
    pub q: Elems<'a>,
    pub k: Elems<'a>,
    pub v: Elems<'a>,
}

impl<'a> Qkv<'a> {
    pub fn f32(q: &'a GpuBuffer<f32>, k: &'a GpuBuffer<f32>, v: &'a GpuBuffer<f32>) -> Self {
        Qkv {
            q: Elems::F32(q),
            k: Elems::F32(k),
            v: Elems::F32(v),
        }
    }

    /// f16 bit patterns.
    pub fn f16(q: &'a GpuBuffer<u16>, k: &'a GpuBuffer<u16>, v: &'a GpuBuffer<u16>) -> Self {
        Qkv {
            q: Elems::F16(q),
            k: Elems::F16(k),
            v: Elems::F16(v),
        }
    }

    /// Checks types, lengths (`kv_len` elements for k and v) and binding limits.
    pub(crate) fn check(
        &self,
        ctx: &GpuContext,
        cfg: &AttentionConfig,
        kv_len: usize,
    ) -> Result<()> {
        for (arg, t, want) in [
            ("q", &self.q, cfg.shape.q_len()),
            ("k", &self.k, kv_len),
            ("v", &self.v, kv_len),
        ] {
            if t.ty() != cfg.storage {
                return Err(Error::shape(
                    arg,
                    format!("{:?} storage (as configured)", cfg.storage),
                    format!("{:?}", t.ty()),
                ));
            }
            if t.len() != want {
                return Err(Error::shape(arg, format!("{want} elements"), t.len()));
            }
            check_binding_size(ctx, "q, k or v", t.buffer().size())?;
        }
        Ok(())
    }
}

/// q, k and v uploaded from host f32 data in a storage type (what the `run` paths use).
#[derive(Debug)]
pub struct QkvTensors {
    pub q: Tensor,
    pub k: Tensor,
    pub v: Tensor,
}

impl QkvTensors {
    pub fn upload(
        ctx: &GpuContext,
        storage: ElemType,
        (q, k, v): (&[f32], &[f32], &[f32]),
    ) -> Result<Self> {
        Ok(QkvTensors {
            q: Tensor::upload(ctx, storage, q, "q")?,
            k: Tensor::upload(ctx, storage, k, "k")?,
            v: Tensor::upload(ctx, storage, v, "v")?,
        })
    }

    /// Borrowed view for `encode`.
    pub fn view(&self) -> Qkv<'_> {
        Qkv {
            q: self.q.elems(),
            k: self.k.elems(),
            v: self.v.elems(),
        }
    }
}

/// GPU outputs of an attention call: `out [rows, head_dim]` and `lse [rows]`.
#[derive(Debug)]
pub struct AttentionOutputs {
    pub out: GpuBuffer<f32>,
    pub lse: GpuBuffer<f32>,
}

impl AttentionOutputs {
    /// Allocates outputs for `shape`.
    pub fn new(ctx: &GpuContext, shape: &AttentionShape) -> Result<Self> {
        shape.check_dims()?;
        check_binding_size(ctx, "attention output", bytes_of::<f32>(&[shape.q_len()]))?;
        Ok(AttentionOutputs {
            out: GpuBuffer::zeroed(ctx, shape.q_len(), "attention.out")?,
            lse: GpuBuffer::zeroed(ctx, shape.rows(), "attention.lse")?,
        })
    }

    /// Reads both back (blocking).
    pub fn read(&self, ctx: &GpuContext) -> Result<AttentionOutput> {
        Ok(AttentionOutput {
            out: self.out.read(ctx)?,
            lse: self.lse.read(ctx)?,
        })
    }

    pub(crate) fn check(&self, shape: &AttentionShape) -> Result<()> {
        if self.out.len() < shape.q_len() {
            return Err(Error::shape(
                "out",
                format!("≥ {} elements", shape.q_len()),
                self.out.len(),
            ));
        }
        if self.lse.len() < shape.rows() {
            return Err(Error::shape(
                "lse",
                format!("≥ {} elements", shape.rows()),
                self.lse.len(),
            ));
        }
        Ok(())
    }
}

/// Per-slot outputs of the sparse kernels, `[rows, slots]` each: the key a slot used
/// (`u32::MAX` when skipped) and its softmax probability (0 when skipped).
#[derive(Debug)]
pub struct KeptOutputs {
    pub indices: GpuBuffer<u32>,
    pub probs: GpuBuffer<f32>,
}

impl KeptOutputs {
    /// Allocates `rows × slots` of each.
    pub fn new(ctx: &GpuContext, rows: usize, slots: usize) -> Result<Self> {
        check_binding_size(ctx, "kept outputs", bytes_of::<f32>(&[rows, slots]))?;
        Ok(KeptOutputs {
            indices: GpuBuffer::zeroed(ctx, rows * slots, "attention.kept")?,
            probs: GpuBuffer::zeroed(ctx, rows * slots, "attention.probs")?,
        })
    }

    /// Reads `out` and these kept outputs back into one host result (blocking).
    pub fn read_with(
        &self,
        ctx: &GpuContext,
        out: &AttentionOutputs,
        slots: usize,
    ) -> Result<SparseAttentionOutput> {
        let o = out.read(ctx)?;
        Ok(SparseAttentionOutput {
            out: o.out,
            lse: o.lse,
            slots,
            kept: self.indices.read(ctx)?,
            probs: self.probs.read(ctx)?,
        })
    }

    pub(crate) fn check(&self, rows: usize, slots: usize) -> Result<()> {
        for (arg, len) in [
            ("kept.indices", self.indices.len()),
            ("kept.probs", self.probs.len()),
        ] {
            if len < rows * slots {
                return Err(Error::shape(
                    arg,
                    format!("≥ {} elements", rows * slots),
                    len,
                ));
            }
        }
        Ok(())
    }
}

/// Host result of a sparse attention call (GPU `run` or CPU reference).
#[derive(Clone, Debug, PartialEq)]
pub struct SparseAttentionOutput {
    /// `[rows, head_dim]`.
    pub out: Vec<f32>,
    /// `[rows]`, over the kept keys only.
    pub lse: Vec<f32>,
    /// Slots per row of `kept` and `probs`.
    pub slots: usize,
    /// `[rows, slots]`: key of each slot, `u32::MAX` when skipped.
    pub kept: Vec<u32>,
    /// `[rows, slots]`: probability of each slot, 0 when skipped.
    pub probs: Vec<f32>,
}

/// GPU gradients of an attention call (f32 whatever the storage), laid out like q, k and v.
#[derive(Debug)]
pub struct GradOutputs {
    pub dq: GpuBuffer<f32>,
    pub dk: GpuBuffer<f32>,
    pub dv: GpuBuffer<f32>,
}

impl GradOutputs {
    pub fn new(ctx: &GpuContext, attn: &AttentionConfig) -> Result<Self> {
        let s = &attn.shape;
        s.check_dims()?;
        check_binding_size(
            ctx,
            "gradient",
            bytes_of::<f32>(&[s.q_len().max(s.kv_len())]),
        )?;
        Ok(GradOutputs {
            dq: GpuBuffer::zeroed(ctx, s.q_len(), "grad.dq")?,
            dk: GpuBuffer::zeroed(ctx, s.kv_len(), "grad.dk")?,
            dv: GpuBuffer::zeroed(ctx, s.kv_len(), "grad.dv")?,
        })
    }

    /// Reads all three back (blocking).
    pub fn read(&self, ctx: &GpuContext) -> Result<AttentionGrads> {
        Ok(AttentionGrads {
            dq: self.dq.read(ctx)?,
            dk: self.dk.read(ctx)?,
            dv: self.dv.read(ctx)?,
        })
    }

    /// Checks that each gradient holds its tensor of `shape`.
    pub(crate) fn check(&self, shape: &AttentionShape) -> Result<()> {
        Error::check_lengths(&[
            ("dq", self.dq.len(), shape.q_len()),
            ("dk", self.dk.len(), shape.kv_len()),
            ("dv", self.dv.len(), shape.kv_len()),
        ])
    }
}
