//! `rng_fill`: Philox noise into a GPU buffer (raw bits, open uniforms, normals, Gumbels).

use bytemuck::Pod;

use crate::buffer::{GpuBuffer, check_binding_size};
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::params::RngFillParams;
use crate::shader::{self, Module, Tier, wgsl};

/// What `rng_fill` writes. Values match the WGSL `DIST_*` constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// Raw Philox words (u32).
    Bits = 0,
    /// Uniform in the open interval (0, 1), see [`crate::philox::uniform_open01`].
    Uniform = 1,
    /// Standard normal (Box–Muller on consecutive word pairs).
    Normal = 2,
    /// Standard Gumbel(0, 1), `-ln(-ln u)`.
    Gumbel = 3,
}

/// Which Philox draws to use: element `i` of the output is word `i % 4` of block
/// `counter + i / 4` in stream `stream` under `seed`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RngKey {
    pub seed: u64,
    pub stream: u64,
    pub counter: u64,
}

const WG: u32 = wgsl::rng_fill::WG;

/// The `rng_fill` kernel: one Philox call per invocation, four outputs each.
pub struct RngFill {
    ctx: GpuContext,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    bind_groups: shader::BindGroupMemo,
}

impl RngFill {
    /// Compiles the pipeline.
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let module = Module::new(ctx, "rng_fill", shader::sources::RNG_FILL, Tier::Core)?;
        let pipeline = module.pipeline(ctx, "rng_fill")?;
        Ok(RngFill {
            layout: pipeline.get_bind_group_layout(0),
            pipeline,
            bind_groups: Default::default(),
            ctx: ctx.clone(),
        })
    }

    /// Records a fill of all of `out` (4-byte elements: `u32` for bits, `f32` otherwise).
    pub fn encode<T: Pod>(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        out: &GpuBuffer<T>,
        key: RngKey,
        dist: Distribution,
    ) -> Result<()> {
        if size_of::<T>() != 4 {
            return Err(Error::shape(
                "out",
                "4-byte elements (u32 or f32)",
                size_of::<T>(),
            ));
        }
        let len = u32::try_from(out.len())
            .map_err(|_| Error::shape("out", "at most u32::MAX elements", out.len()))?;
        check_binding_size(&self.ctx, "out", out.len() as u64 * 4)?;
        let params = RngFillParams {
            len,
            seed_lo: key.seed as u32,
            seed_hi: (key.seed >> 32) as u32,
            stream_lo: key.stream as u32,
            stream_hi: (key.stream >> 32) as u32,
            counter_lo: key.counter as u32,
            counter_hi: (key.counter >> 32) as u32,
            distribution: dist as u32,
        };
        let ctx = &self.ctx;
        self.bind_groups.scoped(ctx, |call| {
            let bg = call.group(ctx, &self.layout, &params, &[out.binding()]);
            let groups = len.div_ceil(4).div_ceil(WG);
            shader::dispatch(ctx, encoder, "rng_fill", &self.pipeline, &[&bg], groups);
        })
    }

    /// Allocates `len` floats, fills them with `dist` and reads them back.
    pub fn run_f32(&self, len: usize, key: RngKey, dist: Distribution) -> Result<Vec<f32>> {
        self.run::<f32>(len, key, dist)
    }

    /// Allocates `len` words, fills them with raw Philox bits and reads them back.
    pub fn run_bits(&self, len: usize, key: RngKey) -> Result<Vec<u32>> {
        self.run::<u32>(len, key, Distribution::Bits)
    }

    fn run<T: Pod>(&self, len: usize, key: RngKey, dist: Distribution) -> Result<Vec<T>> {
        let out = GpuBuffer::<T>::zeroed(&self.ctx, len, "rng_fill.out")?;
        let mut enc = self.ctx.encoder("rng_fill");
        self.encode(&mut enc, &out, key, dist)?;
        self.ctx.submit_and_wait(enc)?;
        out.read(&self.ctx)
    }
}
