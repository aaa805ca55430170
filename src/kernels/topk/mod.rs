//! `topk`: exact row-wise top-k of a `[rows, n]` f32 score matrix.
//!
//! Three algorithms (shaders: `shaders/shared/topk_body.wgsl` and its parts,
//! `topk_radix`, `topk_one_pass`, `topk_one_pass_wide`, `topk_row_select{,_sort,_split}`),
//! chosen per config by [`Strategy`] (`auto.rs` holds `Strategy::Auto`'s measured rules),
//! with identical results bit for bit:
//! - **Radix** (any k): MSB-first radix select over order-preserving u32 keys, 8 bits per
//!   pass; each pass histograms every (row, chunk) in its own workgroup and sums the row's
//!   histogram with atomics, and every workgroup of the next dispatch settles the digit from
//!   it, so one long row spreads over up to 256 workgroups and many rows fill the GPU without
//!   any workgroup waiting on another. A compaction (which settles the last digit) writes the
//!   keys above the threshold and the lowest-index keys equal to it, then a bitonic sort
//!   orders them: 6 dispatches for k ≤ 2048.
//! - **One pass** (k ≤ [`ONE_PASS_MAX_K`]): one workgroup per row reads it once, keeping
//!   candidates that beat the running k-th key in workgroup memory; when full, it sorts the
//!   new arrivals and merges them into the sorted best k. One read of the input and one
//!   dispatch instead of ~10: the choice for many rows and small k. A subgroup tier
//!   (`topk_subgroup`, `topk_f16_subgroup`, `TopkConfig::subgroups`) appends a busy tile's
//!   candidates with one atomic per subgroup; it measured slower on an H200, so the core
//!   kernel is the default, and both are tested. By default (`TopkConfig::wide_tiles`) it
//!   reads the row in 4096-entry tiles held in registers (`topk_one_pass_wide`: per-thread
//!   bests set a key floor for the first tile, the running k-th is refreshed as the row goes,
//!   appends past the buffer retry after a shrink), f32 scores as vec4s where rows sit on
//!   quads ([`Loads`]); `wide_tiles: false` gives 512-entry tiles (`topk_one_pass`).
//! - **Row select** (k ≤ its slots, [`TopkConfig::select_slots`]): one workgroup of up to
//!   1024 threads per row and one dispatch (`topk_row_select`): a strided sample's floor,
//!   one read gathering the entries above it into workgroup memory (an exact radix select
//!   over the row when the sample misjudged it), then the k best selected and sorted there.
//!   The choice for few rows, large k and long rows (decode).
//!
//! Rules, identical in [`crate::reference::topk`]:
//! - NaN ranks below every number (also below −∞) in both orders: it is only selected when a
//!   row has fewer than k non-NaN entries.
//! - −0.0 and +0.0 are equal; ties go to the smaller index, so results are deterministic.
//! - Values are returned exactly as stored in the input (bit for bit; f16 input widened
//!   exactly to f32).
//! - A row with fewer than k entries (ragged `lengths`) returns all of them; the other slots
//!   hold index `u32::MAX` and value −∞ (+∞ when selecting the smallest), and `counts[row]`
//!   says how many are real.
//! - `sorted: false` skips the sort: each row lists the keys above the threshold in index
//!   order, then the tied ones in index order (still deterministic).

mod auto;
mod config;
mod plan;

pub use config::{
    Loads, MAX_WIDE_ROWS, ONE_PASS_MAX_K, Order, ProfilePhase, ScoreType, Strategy, TopkConfig,
};
pub use plan::{SPLIT_GROUPS, row_select_slots};

use crate::buffer::{Elems, GpuBuffer, bytes_of, check_buffer_size, slice_binding};
use crate::context::GpuContext;
use crate::error::{Error, Result};
use crate::params::{TopkParams, TopkStepParams};
use crate::shader::{self, BindingKind, Module, Tier};
use plan::{Plan, SORT_BLOCK, WG};
use std::sync::Mutex;

/// Score buffer of either element type.
pub type Scores<'a> = Elems<'a>;

/// Inputs of one call: the scores, an element offset into them, optional row lengths.
#[derive(Clone, Copy, Debug)]
pub struct TopkInput<'a> {
    pub scores: Scores<'a>,
    pub offset: usize,
    /// Row `r` considers only its first `min(lengths[r], n)` entries (ragged or causal rows).
    pub lengths: Option<&'a GpuBuffer<u32>>,
}

impl<'a> TopkInput<'a> {
    pub fn new(scores: &'a GpuBuffer<f32>) -> Self {
        TopkInput {
            scores: Scores::F32(scores),
            offset: 0,
            lengths: None,
        }
    }
    /// f16 scores as raw bits (kernel built with [`ScoreType::F16`]).
    pub fn f16(scores: &'a GpuBuffer<u16>) -> Self {
        TopkInput {
            scores: Scores::F16(scores),
            offset: 0,
            lengths: None,
        }
    }
    pub fn with_offset(self, offset: usize) -> Self {
        TopkInput { offset, ..self }
    }
    pub fn with_lengths(self, lengths: &'a GpuBuffer<u32>) -> Self {
        TopkInput {
            lengths: Some(lengths),
            ..self
        }
    }
}

/// GPU outputs: `values` and `indices` are `[rows, k]`, `counts` is `[rows]`.
#[derive(Debug)]
pub struct TopkOutput {
    pub values: GpuBuffer<f32>,
    pub indices: GpuBuffer<u32>,
    pub counts: GpuBuffer<u32>,
}

impl TopkOutput {
    /// Reads all three outputs back (blocking).
    pub fn read(&self, ctx: &GpuContext) -> Result<TopkResult> {
        Ok(TopkResult {
            values: self.values.read(ctx)?,
            indices: self.indices.read(ctx)?,
            counts: self.counts.read(ctx)?,
        })
    }
}

/// Host copy of a top-k result (from [`Topk::run`] or the CPU reference).
#[derive(Clone, Debug, PartialEq)]
pub struct TopkResult {
    pub values: Vec<f32>,
    pub indices: Vec<u32>,
    pub counts: Vec<u32>,
}

/// Only the chosen algorithm's pipelines are compiled.
enum Pipelines {
    OnePass {
        pipeline: wgpu::ComputePipeline,
        /// With vec4 loads chosen by [`Loads::Auto`]: the scalar-load pipeline for a call at
        /// an offset that is not a multiple of 4, compiled on the first such call.
        scalar: Mutex<Option<wgpu::ComputePipeline>>,
    },
    RowSelect {
        pipeline: wgpu::ComputePipeline,
        /// `topk_row_select`, or with the subgroup tier `topk_row_select_subgroup`.
        entry: &'static str,
    },
    Radix {
        histogram: wgpu::ComputePipeline,
        compact: wgpu::ComputePipeline,
        /// One step bind group per radix pass.
        passes: Vec<wgpu::BindGroup>,
        output: RadixOutput,
    },
}

/// How the radix path writes its outputs: sorted, the last bitonic step does, or
/// `topk_rank_sort` (`TopkConfig::rank_sort`); unsorted, `topk_finalize` does.
enum RadixOutput {
    Sorted {
        local: wgpu::ComputePipeline,
        global: wgpu::ComputePipeline,
        steps: Vec<SortStep>,
    },
    Ranked(wgpu::ComputePipeline),
    Unsorted(wgpu::ComputePipeline),
}

struct SortStep {
    global: bool,
    bind_group: wgpu::BindGroup,
}

/// What [`Topk::encode_stages`] records before each dispatch: given the encoder and the
/// dispatch's kernel name.
pub type StageMark<'a> = dyn FnMut(&mut wgpu::CommandEncoder, &'static str) + 'a;

/// One dispatch of a top-k call: its kernel's name, pipeline, bind groups (the batch's, and a
/// radix step's) and workgroups.
struct Stage<'a> {
    name: &'static str,
    pipeline: &'a wgpu::ComputePipeline,
    batch: &'a wgpu::BindGroup,
    step: Option<&'a wgpu::BindGroup>,
    size: u32,
}

impl Stage<'_> {
    /// Groups 0 (and 1), without allocating: encode runs per call.
    fn groups(&self) -> ([&wgpu::BindGroup; 2], usize) {
        match self.step {
            Some(step) => ([self.batch, step], 2),
            None => ([self.batch, self.batch], 1),
        }
    }
}

/// Group 1 of a radix step: one uniform `TopkStepParams` (which pass, or which sort step).
fn step_bind_group(
    ctx: &GpuContext,
    layout: &wgpu::BindGroupLayout,
    p: &TopkStepParams,
) -> wgpu::BindGroup {
    let u = shader::uniform(ctx, p);
    shader::bind_group_with_layout(ctx, layout, &[u.as_entire_binding()])
}

/// The top-k kernel for one [`TopkConfig`]. Build once (compiles pipelines, allocates
/// scratch for one row batch), then [`Topk::encode`] as often as needed.
pub struct Topk {
    ctx: GpuContext,
    cfg: TopkConfig,
    plan: Plan,
    layout: wgpu::BindGroupLayout,
    pipelines: Pipelines,
    work: wgpu::Buffer,
    pairs: wgpu::Buffer,
    /// Per-row atomic histograms, or the split row select's words and lists. Starts zeroed
    /// (wgpu zero-fills new buffers) and every run leaves it ready for the next (see the work
    /// layout in `shaders/shared/topk_body.wgsl` and `topk_row_select_split.wgsl`), so
    /// nothing is cleared per call.
    row_hist: GpuBuffer<u32>,
    no_lengths: GpuBuffer<u32>,
    bind_groups: shader::BindGroupMemo,
}

fn scratch(ctx: &GpuContext, label: &str, bytes: usize) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (bytes as u64).max(16),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// The bitonic sort schedule of the radix path for sort size `sort_size`: one uniform bind
/// group per step; the last (always a local step) writes the outputs.
fn sort_steps(
    ctx: &GpuContext,
    step_layout: &wgpu::BindGroupLayout,
    sort_size: usize,
) -> Vec<SortStep> {
    // Bitonic schedule: sort blocks locally, then for each larger size the strides
    // ≥ block as global steps and the rest as one local step.
    let block = SORT_BLOCK.min(sort_size);
    let mut steps = vec![(
        false,
        TopkStepParams {
            full: 1,
            ..Default::default()
        },
    )];
    let mut size = 2 * block;
    while size <= sort_size {
        let mut j = size / 2;
        while j >= block {
            let p = TopkStepParams {
                size: size as u32,
                stride: j as u32,
                ..Default::default()
            };
            steps.push((true, p));
            j /= 2;
        }
        steps.push((
            false,
            TopkStepParams {
                size: size as u32,
                ..Default::default()
            },
        ));
        size *= 2;
    }
    if let Some((_, p)) = steps.last_mut() {
        p.last = 1;
    }
    steps
        .into_iter()
        .map(|(global, p)| SortStep {
            global,
            bind_group: step_bind_group(ctx, step_layout, &p),
        })
        .collect()
}

impl Topk {
    /// Validates `cfg` against the device and compiles the pipelines.
    pub fn new(ctx: &GpuContext, cfg: TopkConfig) -> Result<Self> {
        cfg.validate()?;
        // The results are bound a row batch at a time, but must fit one buffer.
        check_buffer_size(ctx, "topk output", bytes_of::<f32>(&[cfg.rows, cfg.k]))?;
        let plan = Plan::new(&cfg, ctx.limits(), ctx.is_cpu_adapter())?;
        use BindingKind::{Read, ReadWrite, Uniform};
        let layout = shader::bind_group_layout(
            ctx,
            "topk",
            &[
                Uniform, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite,
                ReadWrite,
            ],
        );
        let step_layout = shader::bind_group_layout(ctx, "topk.step", &[Uniform]);
        let main = shader::pipeline_layout(ctx, "topk", &[&layout]);
        let with_step = shader::pipeline_layout(ctx, "topk.step", &[&layout, &step_layout]);
        let row_select = plan.strategy == Strategy::RowSelect;
        let subgroup_tier =
            cfg.subgroups && (plan.one_pass() || row_select) && ctx.capabilities().subgroups;
        let module = match cfg.scores {
            ScoreType::F32 if plan.one_pass() && cfg.vec4_loads() => {
                Module::new(ctx, "topk_quad", shader::sources::TOPK_QUAD, Tier::Core)?
            }
            ScoreType::F32 if subgroup_tier => Module::new(
                ctx,
                "topk_subgroup",
                shader::sources::TOPK_SUBGROUP,
                Tier::Subgroup,
            )?,
            ScoreType::F32 => Module::new(ctx, "topk", shader::sources::TOPK, Tier::Core)?,
            ScoreType::F16 if subgroup_tier => Module::new(
                ctx,
                "topk_f16_subgroup",
                shader::sources::TOPK_F16_SUBGROUP,
                Tier::Subgroup,
            )?,
            ScoreType::F16 => Module::new(ctx, "topk_f16", shader::sources::TOPK_F16, Tier::Core)?,
        };
        let build = |entry, l| module.pipeline_with_layout(ctx, entry, Some(l));

        let pipelines = if row_select {
            let constants = [
                ("SEL_WG", cfg.select_threads(ctx.limits())? as f64),
                ("SEL_CAP", cfg.select_slots(ctx)? as f64),
                ("PROFILE_STOP", cfg.profile.map_or(0, |p| p as u32) as f64),
                ("SEL_BUCKET_SORT", cfg.select_buckets as u32 as f64),
                ("SEL_SPLIT", plan.select_split as f64),
                ("VALUES_FROM_KEYS", cfg.values_from_keys as u32 as f64),
            ];
            let entry = if subgroup_tier {
                "topk_row_select_subgroup"
            } else {
                "topk_row_select"
            };
            Pipelines::RowSelect {
                pipeline: module.pipeline_with_constants(ctx, entry, Some(&main), &constants)?,
                entry,
            }
        } else if plan.one_pass() {
            Pipelines::OnePass {
                pipeline: module.pipeline_with_constants(
                    ctx,
                    cfg.one_pass_entry(),
                    Some(&main),
                    &cfg.one_pass_constants(),
                )?,
                scalar: Mutex::new(None),
            }
        } else {
            Pipelines::Radix {
                histogram: build("topk_histogram", &with_step)?,
                compact: module.pipeline_with_constants(
                    ctx,
                    "topk_compact",
                    Some(&main),
                    &[("COMPACT_RUN", plan.compact_run() as f64)],
                )?,
                passes: (0..4)
                    .map(|pass_| {
                        let p = TopkStepParams {
                            pass_,
                            ..Default::default()
                        };
                        step_bind_group(ctx, &step_layout, &p)
                    })
                    .collect(),
                output: if cfg.sorted && cfg.rank_sort {
                    RadixOutput::Ranked(build("topk_rank_sort", &main)?)
                } else if cfg.sorted {
                    RadixOutput::Sorted {
                        local: module.pipeline_with_constants(
                            ctx,
                            "topk_sort_local",
                            Some(&with_step),
                            &[("SORT_WG", cfg.sort_threads(ctx, plan.sort_size)? as f64)],
                        )?,
                        global: build("topk_sort_global", &with_step)?,
                        steps: sort_steps(ctx, &step_layout, plan.sort_size),
                    }
                } else {
                    RadixOutput::Unsorted(build("topk_finalize", &main)?)
                },
            }
        };
        let batch = plan.batch_rows;
        Ok(Topk {
            pipelines,
            work: scratch(ctx, "topk.work", batch * plan.work_per_row * 4),
            pairs: scratch(ctx, "topk.pairs", batch * plan.sort_size * 8),
            row_hist: GpuBuffer::zeroed(
                ctx,
                (batch * plan.row_hist_per_row).max(4),
                "topk.row_hist",
            )?,
            no_lengths: GpuBuffer::zeroed(ctx, 4, "topk.no_lengths")?,
            bind_groups: Default::default(),
            layout,
            plan,
            cfg,
            ctx: ctx.clone(),
        })
    }

    /// The configuration this kernel was built for.
    pub fn config(&self) -> &TopkConfig {
        &self.cfg
    }

    /// Testing only: the per-row scratch that runs hand to one another (`row_hist`: the
    /// radix path's row histograms, the split row select's words and lists), read back.
    #[doc(hidden)]
    pub fn row_scratch(&self) -> Result<Vec<u32>> {
        self.row_hist.read(&self.ctx)
    }

    /// Allocates output buffers of the right size.
    pub fn outputs(&self) -> Result<TopkOutput> {
        let (rows, k) = (self.cfg.rows, self.cfg.k);
        Ok(TopkOutput {
            values: GpuBuffer::zeroed(&self.ctx, rows * k, "topk.values")?,
            indices: GpuBuffer::zeroed(&self.ctx, rows * k, "topk.indices")?,
            counts: GpuBuffer::zeroed(&self.ctx, rows, "topk.counts")?,
        })
    }

    /// Records the top-k of `input` into `out`. Validates every size first; records nothing
    /// on error. Allocates only small uniform buffers and bind groups, and reuses the last
    /// call's where it binds the same buffers the same way (so this kernel keeps that call's
    /// buffers alive until a call with others, or its drop).
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        input: TopkInput<'_>,
        out: &TopkOutput,
    ) -> Result<()> {
        self.check_call(input, out)?;
        self.record(encoder, input, out, None)
    }

    /// [`Topk::encode`] with each dispatch in a compute pass of its own, and `mark(encoder,
    /// stage)` recorded before each (`stage` names its kernel) and once more after the last
    /// (`"end"`): a per-stage profile, e.g. with `write_timestamp` (the bench's
    /// `--kernel topk_stages`). Same results; the extra passes may cost a little time.
    pub fn encode_stages(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        input: TopkInput<'_>,
        out: &TopkOutput,
        mark: &mut StageMark<'_>,
    ) -> Result<()> {
        self.check_call(input, out)?;
        self.record(encoder, input, out, Some(mark))?;
        mark(encoder, "end");
        Ok(())
    }

    /// Every row batch's stages: in one compute pass per batch, or, given `mark`, each in
    /// its own pass after a mark.
    fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        input: TopkInput<'_>,
        out: &TopkOutput,
        mut mark: Option<&mut StageMark<'_>>,
    ) -> Result<()> {
        let (ctx, cfg, plan) = (&self.ctx, &self.cfg, &self.plan);
        let scalar = self.scalar_fallback(input.offset)?;
        self.bind_groups.scoped(ctx, |groups| {
            for row0 in (0..cfg.rows).step_by(plan.batch_rows) {
                let rows = plan.batch_rows.min(cfg.rows - row0);
                let bg = self.bind_group(groups, input, out, row0, rows);
                let stages = self.stages(&bg, rows, scalar.as_ref());
                match mark.as_mut() {
                    None => {
                        // One compute pass for the whole chain (wgpu orders the dispatches).
                        let mut cpass = shader::compute_pass(encoder, "topk");
                        for st in &stages {
                            let (groups, n) = st.groups();
                            shader::dispatch_in(
                                ctx,
                                &mut cpass,
                                st.pipeline,
                                &groups[..n],
                                st.size,
                            );
                        }
                    }
                    Some(mark) => {
                        for st in &stages {
                            mark(encoder, st.name);
                            let (groups, n) = st.groups();
                            shader::dispatch(
                                ctx,
                                encoder,
                                st.name,
                                st.pipeline,
                                &groups[..n],
                                st.size,
                            );
                        }
                    }
                }
            }
        })
    }

    /// Every size and type `encode` checks before it records anything.
    fn check_call(&self, input: TopkInput<'_>, out: &TopkOutput) -> Result<()> {
        let cfg = &self.cfg;
        if input.scores.ty() != cfg.scores {
            return Err(Error::shape(
                "scores",
                format!("{:?} scores (as configured)", cfg.scores),
                format!("{:?}", input.scores.ty()),
            ));
        }
        cfg.validate_input(
            input.scores.len(),
            input.offset,
            input.lengths.map(|l| l.len()),
        )?;
        if cfg.loads == Loads::Vec4 && self.plan.one_pass() && !input.offset.is_multiple_of(4) {
            return Err(Error::shape(
                "offset",
                "a multiple of 4 with Loads::Vec4",
                input.offset,
            ));
        }
        Error::check_lengths(&[
            ("out.values", out.values.len(), cfg.rows * cfg.k),
            ("out.indices", out.indices.len(), cfg.rows * cfg.k),
            ("out.counts", out.counts.len(), cfg.rows),
        ])?;
        Ok(())
    }

    /// The bind group of the row batch at `row0`: its parameters, the slices of the scores,
    /// lengths and outputs it uses (each bound from an aligned offset), and the scratch.
    fn bind_group(
        &self,
        groups: &mut shader::MemoCall<'_>,
        input: TopkInput<'_>,
        out: &TopkOutput,
        row0: usize,
        rows: usize,
    ) -> wgpu::BindGroup {
        let (ctx, cfg, plan) = (&self.ctx, &self.cfg, &self.plan);
        let (stride, k) = (cfg.stride(), cfg.k);
        let align = ctx.limits().min_storage_buffer_offset_alignment as usize;
        let (scores, in_shift) = slice_binding(
            input.scores.buffer(),
            cfg.scores.bytes(),
            align,
            input.offset + row0 * stride,
            (rows - 1) * stride + cfg.n,
        );
        // The batch's outputs and row lengths, bound from aligned offsets too, so that neither
        // rows × k results nor the rows' counts need fit one binding.
        let (values, out_shift) = slice_binding(out.values.buffer(), 4, align, row0 * k, rows * k);
        let (indices, _) = slice_binding(out.indices.buffer(), 4, align, row0 * k, rows * k);
        let (counts, row_shift) = slice_binding(out.counts.buffer(), 4, align, row0, rows);
        let lengths = match input.lengths {
            Some(l) => slice_binding(l.buffer(), 4, align, row0, rows).0,
            None => self.no_lengths.binding(),
        };
        let hist_len = rows * plan.chunks * 256;
        let info_len = rows * plan.chunks;
        let params = TopkParams {
            rows: rows as u32,
            n: cfg.n as u32,
            k: k as u32,
            stride: stride as u32,
            out_shift: out_shift as u32,
            row_shift: row_shift as u32,
            in_shift: in_shift as u32,
            has_lengths: input.lengths.is_some() as u32,
            smallest: (cfg.order == Order::Smallest) as u32,
            chunk: plan.chunk as u32,
            chunks: plan.chunks as u32,
            sort_size: plan.sort_size as u32,
            hist_base: 0,
            info_base: hist_len as u32,
            state_base: (hist_len + info_len) as u32,
            sorted: cfg.sorted as u32,
        };
        groups.group(
            ctx,
            &self.layout,
            &params,
            &[
                scores,
                lengths,
                self.work.as_entire_binding(),
                self.pairs.as_entire_binding(),
                values,
                indices,
                counts,
                self.row_hist.binding(),
            ],
        )
    }

    /// The one pass's scalar-load pipeline where [`Loads::Auto`] chose vec4 loads and a call
    /// reads from an `offset` they cannot (not a multiple of 4); compiled on the first such
    /// call, then kept. `None`: the kernel's own pipelines serve.
    fn scalar_fallback(&self, offset: usize) -> Result<Option<wgpu::ComputePipeline>> {
        let Pipelines::OnePass { scalar, .. } = &self.pipelines else {
            return Ok(None);
        };
        if self.cfg.loads != Loads::Auto || !self.cfg.vec4_loads() || offset.is_multiple_of(4) {
            return Ok(None);
        }
        let mut slot = scalar.lock().unwrap();
        if slot.is_none() {
            let ctx = &self.ctx;
            let module = Module::new(ctx, "topk", shader::sources::TOPK, Tier::Core)?;
            let layout = shader::pipeline_layout(ctx, "topk", &[&self.layout]);
            let entry = self.cfg.one_pass_entry();
            let constants = self.cfg.one_pass_constants();
            *slot = Some(module.pipeline_with_constants(ctx, entry, Some(&layout), &constants)?);
        }
        Ok(slot.clone())
    }

    /// The dispatches of one row batch. One pass: one (`scalar` in place of the kernel's
    /// pipeline where given). Row select: one. Radix: 4 histogram passes, compact, then the
    /// sort (whose last step writes the outputs), the rank sort, or, unsorted, finalize.
    fn stages<'s>(
        &'s self,
        bg: &'s wgpu::BindGroup,
        rows: usize,
        scalar: Option<&'s wgpu::ComputePipeline>,
    ) -> Vec<Stage<'s>> {
        let (cfg, plan) = (&self.cfg, &self.plan);
        let stage = |name, pipeline, step: Option<&'s wgpu::BindGroup>, size: usize| Stage {
            name,
            pipeline,
            batch: bg,
            step,
            size: size as u32,
        };
        let (histogram, compact, passes, output) = match &self.pipelines {
            Pipelines::OnePass { pipeline, .. } => {
                let pipeline = scalar.unwrap_or(pipeline);
                let groups = rows.div_ceil(cfg.rows_per_group());
                return vec![stage(cfg.one_pass_entry(), pipeline, None, groups)];
            }
            Pipelines::RowSelect { pipeline, entry } => {
                return vec![stage(entry, pipeline, None, rows * plan.select_split)];
            }
            Pipelines::Radix {
                histogram,
                compact,
                passes,
                output,
            } => (histogram, compact, passes, output),
        };
        let tiles = rows * plan.chunks;
        let mut stages: Vec<_> = passes
            .iter()
            .map(|pass| stage("topk_histogram", histogram, Some(pass), tiles))
            .collect();
        stages.push(stage("topk_compact", compact, None, tiles));
        match output {
            RadixOutput::Sorted {
                local,
                global,
                steps,
            } => {
                let blocks = plan.sort_size / SORT_BLOCK.min(plan.sort_size);
                let halves = (rows * plan.sort_size / 2).div_ceil(WG);
                stages.extend(steps.iter().map(|step| {
                    if step.global {
                        stage("topk_sort_global", global, Some(&step.bind_group), halves)
                    } else {
                        let size = rows * blocks;
                        stage("topk_sort_local", local, Some(&step.bind_group), size)
                    }
                }));
            }
            RadixOutput::Ranked(rank) => {
                stages.push(stage(
                    "topk_rank_sort",
                    rank,
                    None,
                    rows * cfg.k.div_ceil(WG),
                ));
            }
            RadixOutput::Unsorted(finalize) => {
                let slots = (rows * cfg.k).div_ceil(WG);
                stages.push(stage("topk_finalize", finalize, None, slots));
            }
        }
        stages
    }

    /// Uploads f32 `scores` (and `lengths`), runs, and reads the result back.
    pub fn run(&self, scores: &[f32], lengths: Option<&[u32]>) -> Result<TopkResult> {
        self.cfg
            .validate_input(scores.len(), 0, lengths.map(<[u32]>::len))?;
        let s = GpuBuffer::from_slice(&self.ctx, scores, "topk.scores")?;
        let l = self.upload_lengths(lengths)?;
        self.run_on(TopkInput::new(&s), l.as_ref())
    }

    /// Uploads f16 `scores` (raw bits), runs, and reads the result back.
    pub fn run_f16(&self, scores: &[u16], lengths: Option<&[u32]>) -> Result<TopkResult> {
        self.cfg
            .validate_input(scores.len(), 0, lengths.map(<[u32]>::len))?;
        let s = GpuBuffer::from_slice(&self.ctx, scores, "topk.scores")?;
        let l = self.upload_lengths(lengths)?;
        self.run_on(TopkInput::f16(&s), l.as_ref())
    }

    fn upload_lengths(&self, lengths: Option<&[u32]>) -> Result<Option<GpuBuffer<u32>>> {
        lengths
            .map(|l| GpuBuffer::from_slice(&self.ctx, l, "topk.lengths"))
            .transpose()
    }

    fn run_on(&self, input: TopkInput<'_>, lengths: Option<&GpuBuffer<u32>>) -> Result<TopkResult> {
        let ctx = &self.ctx;
        let input = match lengths {
            Some(l) => input.with_lengths(l),
            None => input,
        };
        let out = self.outputs()?;
        let mut enc = ctx.encoder("topk");
        self.encode(&mut enc, input, &out)?;
        ctx.submit_and_wait(enc)?;
        out.read(ctx)
    }
}
