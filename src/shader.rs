//! Loading the composed WGSL (see `build.rs`), building pipelines inside error scopes, and
//! the small dispatch helpers every kernel shares.
//!
//! Composition: a kernel file in `shaders/` may contain lines `//! include shared/NAME.wgsl`;
//! `build.rs` splices those files in (once each), validates the result with naga and embeds
//! it here as [`sources`]. WGSL structs named `*Params` get generated Rust twins in
//! [`crate::params`], and named `u32` constants become `wgsl::<kernel>::<NAME>`, so uniform
//! layouts, workgroup sizes and limits have one definition: the shader's.

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;

use wgpu::util::DeviceExt;

use crate::context::GpuContext;
use crate::error::{Error, Result};

mod checks;
pub use checks::ShaderChecks;

/// Composed WGSL sources, one constant per kernel file, and [`sources::ALL`].
pub mod sources {
    include!(concat!(env!("OUT_DIR"), "/shaders.rs"));
}

/// Named `u32` constants of every composed kernel (`wgsl::topk::WG`, ...), generated from
/// the shaders: the host's workgroup sizes and limits are these, not copies.
#[allow(dead_code)]
pub(crate) mod wgsl {
    include!(concat!(env!("OUT_DIR"), "/wgsl_consts.rs"));
}

/// Capability tier a pipeline is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Core WebGPU: runs on every adapter.
    Core,
    /// Needs `Features::SUBGROUP`.
    Subgroup,
    /// Needs `Features::SHADER_F16`.
    F16,
}

impl Tier {
    /// Fails with [`Error::Unsupported`] when the context lacks this tier's feature.
    pub fn check(self, ctx: &GpuContext) -> Result<()> {
        let caps = ctx.capabilities();
        let (ok, feature) = match self {
            Tier::Core => (true, ""),
            Tier::Subgroup => (caps.subgroups, "SUBGROUP"),
            Tier::F16 => (caps.f16, "SHADER_F16"),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Unsupported {
                feature: feature.into(),
            })
        }
    }
}

/// The WGSL to hand to `backend` for a kernel of `tier`. Browsers compile WGSL themselves
/// (wgpu passes it through on the web), and their compilers require `enable subgroups;`
/// before subgroup builtins, a directive naga 30 rejects: it is added for
/// [`wgpu::Backend::BrowserWebGpu`] only. `tests/shaders.rs` runs Dawn's compiler (Tint) on
/// exactly this text.
pub fn source_for(source: &str, tier: Tier, backend: wgpu::Backend) -> Cow<'_, str> {
    if tier == Tier::Subgroup && backend == wgpu::Backend::BrowserWebGpu {
        Cow::Owned(format!("enable subgroups;\n{source}"))
    } else {
        Cow::Borrowed(source)
    }
}

/// What a context has compiled, so that building a kernel again (another shape, another
/// thread) compiles nothing. Bind group layouts are shared by entries, pipeline layouts by
/// their group layouts, so a kernel's bind groups fit the cached pipelines it gets. Keys
/// hold the objects they name (wgpu handles compare by identity), so no key outlives its
/// object. Entries are never evicted: they are bounded by kernels × tiers × pipeline
/// constants, a few hundred at most.
#[derive(Default)]
pub(crate) struct Cache {
    modules: HashMap<ModuleKey, wgpu::ShaderModule>,
    group_layouts: HashMap<Vec<(u32, BindingKind)>, wgpu::BindGroupLayout>,
    pipeline_layouts: HashMap<Vec<wgpu::BindGroupLayout>, wgpu::PipelineLayout>,
    pipelines: HashMap<PipelineKey, wgpu::ComputePipeline>,
    /// Pipelines compiled (cache misses that succeeded).
    compiled: usize,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("modules", &self.modules.len())
            .field("pipelines", &self.pipelines.len())
            .field("compiled", &self.compiled)
            .finish_non_exhaustive()
    }
}

/// A module is its name, tier and (static) source text, by address.
type ModuleKey = (&'static str, Tier, usize, usize);

#[derive(PartialEq, Eq, Hash)]
struct PipelineKey {
    module: wgpu::ShaderModule,
    entry: String,
    /// Override constants by name and value bits.
    constants: Vec<(String, u64)>,
    layout: Option<wgpu::PipelineLayout>,
}

/// Looks `key` up in the context's cache, else creates it with `make` (outside the lock:
/// compiles may take long and two threads building at once is harmless) and keeps it unless
/// it failed.
fn cached<K, V, E>(
    ctx: &GpuContext,
    map: impl Fn(&mut Cache) -> &mut HashMap<K, V>,
    key: K,
    make: impl FnOnce() -> std::result::Result<V, E>,
) -> std::result::Result<V, E>
where
    K: std::hash::Hash + Eq,
    V: Clone,
{
    if let Some(v) = map(&mut ctx.cache.lock().unwrap()).get(&key) {
        return Ok(v.clone());
    }
    let v = make()?;
    Ok(map(&mut ctx.cache.lock().unwrap())
        .entry(key)
        .or_insert(v)
        .clone())
}

/// [`cached`] for objects whose creation cannot fail here (layouts: wgpu reports a bad one
/// when a pipeline or bind group uses it).
fn cached_infallible<K, V>(
    ctx: &GpuContext,
    map: impl Fn(&mut Cache) -> &mut HashMap<K, V>,
    key: K,
    make: impl FnOnce() -> V,
) -> V
where
    K: std::hash::Hash + Eq,
    V: Clone,
{
    let Ok(v) = cached(ctx, map, key, || Ok::<_, Infallible>(make()));
    v
}

impl Cache {
    pub(crate) fn compiled(&self) -> usize {
        self.compiled
    }
}

/// A compiled shader module plus the name used in errors.
pub struct Module {
    name: &'static str,
    module: wgpu::ShaderModule,
}

impl Module {
    /// Compiles `source` on the device, once per context; compile errors become
    /// [`Error::ShaderCompilation`].
    pub fn new(
        ctx: &GpuContext,
        name: &'static str,
        source: &'static str,
        tier: Tier,
    ) -> Result<Self> {
        tier.check(ctx)?;
        let key = (name, tier, source.as_ptr() as usize, source.len());
        let module = cached(
            ctx,
            |c| &mut c.modules,
            key,
            || {
                ctx.scoped(|| {
                    let desc = wgpu::ShaderModuleDescriptor {
                        label: Some(name),
                        source: wgpu::ShaderSource::Wgsl(source_for(
                            source,
                            tier,
                            ctx.adapter_info.backend,
                        )),
                    };
                    // SAFETY: by default only loop bounding is off, on this crate's
                    // guarantee that each of its loops ends for every input the host checks
                    // accept (`ShaderChecks::DEFAULT`); fewer checks than that come only from
                    // the unsafe `GpuContext::with_shader_checks`, whose caller took on its
                    // contract.
                    unsafe {
                        ctx.device.create_shader_module_trusted(
                            desc,
                            ctx.shader_checks().runtime_checks(),
                        )
                    }
                })
                .map_err(|e| Error::ShaderCompilation {
                    shader: name.into(),
                    message: e.to_string(),
                })
            },
        )?;
        Ok(Module { name, module })
    }

    /// Builds the compute pipeline for `entry` (bind group layout derived from the shader).
    pub fn pipeline(&self, ctx: &GpuContext, entry: &str) -> Result<wgpu::ComputePipeline> {
        self.pipeline_with_layout(ctx, entry, None)
    }

    /// Builds the compute pipeline for `entry` with an explicit layout, so that one bind group
    /// can serve several entry points of the module.
    pub fn pipeline_with_layout(
        &self,
        ctx: &GpuContext,
        entry: &str,
        layout: Option<&wgpu::PipelineLayout>,
    ) -> Result<wgpu::ComputePipeline> {
        self.pipeline_with_constants(ctx, entry, layout, &[])
    }

    /// As [`Module::pipeline_with_layout`], with values for the shader's `override` constants
    /// (e.g. `HEAD_DIM`, so that loops over it have a fixed trip count and unroll). Built
    /// once per context.
    pub fn pipeline_with_constants(
        &self,
        ctx: &GpuContext,
        entry: &str,
        layout: Option<&wgpu::PipelineLayout>,
        constants: &[(&str, f64)],
    ) -> Result<wgpu::ComputePipeline> {
        let key = PipelineKey {
            module: self.module.clone(),
            entry: entry.to_owned(),
            constants: constants
                .iter()
                .map(|&(n, v)| (n.to_owned(), v.to_bits()))
                .collect(),
            layout: layout.cloned(),
        };
        cached(
            ctx,
            |c| &mut c.pipelines,
            key,
            || {
                let pipeline = self.create_pipeline(ctx, entry, layout, constants)?;
                ctx.cache.lock().unwrap().compiled += 1;
                Ok(pipeline)
            },
        )
    }

    fn create_pipeline(
        &self,
        ctx: &GpuContext,
        entry: &str,
        layout: Option<&wgpu::PipelineLayout>,
        constants: &[(&str, f64)],
    ) -> Result<wgpu::ComputePipeline> {
        ctx.scoped(|| {
            ctx.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout,
                    module: &self.module,
                    entry_point: Some(entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants,
                        zero_initialize_workgroup_memory: ctx.shader_checks().zero_workgroup_memory,
                    },
                    cache: None,
                })
        })
        .map_err(|e| Error::ShaderCompilation {
            shader: format!("{}::{entry}", self.name),
            message: e.to_string(),
        })
    }
}

/// A small uniform buffer holding `value`, never written again: two encodes recorded before
/// one submit never see each other's parameters (identical calls may share one, see
/// [`BindGroupMemo`]).
pub fn uniform<T: bytemuck::Pod>(ctx: &GpuContext, value: &T) -> wgpu::Buffer {
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: bytemuck::bytes_of(value),
            usage: wgpu::BufferUsages::UNIFORM,
        })
}

/// Everything a bind group holds: its layout, its uniform's bytes, and each buffer binding
/// (binding number, buffer identity as wgpu compares handles, offset and size).
#[derive(Debug, PartialEq)]
struct GroupKey {
    layout: wgpu::BindGroupLayout,
    params: Vec<u8>,
    buffers: Vec<(u32, wgpu::Buffer, u64, Option<std::num::NonZeroU64>)>,
}

type Remembered = Vec<(GroupKey, wgpu::BindGroup)>;

/// The bind groups of a kernel's last `encode`, reused by the next call for any group whose
/// layout, uniform bytes and buffer bindings are all identical: so reuse is exact by
/// construction. Creating a uniform and a bind group is most of an encode's host time
/// (callgrind, a radix top-k of one row: 70 %), and a decode loop binds the same buffers
/// every step. Sharing a group between encodes recorded before one submit is safe: a uniform
/// is never written after its creation. The cost: the buffers of a kernel's last call stay
/// alive until its next call (with other buffers) or its drop.
#[derive(Debug, Default)]
pub struct BindGroupMemo(std::sync::Mutex<Remembered>);

impl BindGroupMemo {
    fn remembered(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a call: its groups replace the remembered ones when it ends (concurrent calls
    /// on one kernel are correct, they may just miss).
    pub fn call(&self) -> MemoCall<'_> {
        MemoCall {
            last: std::mem::take(&mut *self.remembered()),
            now: Vec::new(),
            memo: self,
        }
    }

    /// Drops the remembered groups (after an error, so that nothing invalid is reused).
    pub fn forget(&self) {
        self.remembered().clear();
    }

    /// [`GpuContext::scoped`] around one call's recording; forgets every group when the
    /// scopes caught an error.
    pub fn scoped<T>(&self, ctx: &GpuContext, f: impl FnOnce(&mut MemoCall<'_>) -> T) -> Result<T> {
        ctx.scoped(|| f(&mut self.call()))
            .inspect_err(|_| self.forget())
    }
}

/// One call's bind groups; see [`BindGroupMemo`].
pub struct MemoCall<'a> {
    memo: &'a BindGroupMemo,
    last: Remembered,
    now: Remembered,
}

impl MemoCall<'_> {
    /// A group of `layout` with a uniform holding `params` at binding 0 and `resources` at
    /// 1, 2, ...: the last call's (or this call's) identical group, or a new one.
    pub fn group<P: bytemuck::Pod>(
        &mut self,
        ctx: &GpuContext,
        layout: &wgpu::BindGroupLayout,
        params: &P,
        resources: &[wgpu::BindingResource<'_>],
    ) -> wgpu::BindGroup {
        let at: Vec<_> = (1..).zip(resources.iter().cloned()).collect();
        self.group_at(ctx, layout, params, &at)
    }

    /// [`MemoCall::group`] with explicit binding numbers for `resources` (the uniform is 0).
    pub fn group_at<P: bytemuck::Pod>(
        &mut self,
        ctx: &GpuContext,
        layout: &wgpu::BindGroupLayout,
        params: &P,
        resources: &[(u32, wgpu::BindingResource<'_>)],
    ) -> wgpu::BindGroup {
        self.reuse_or(layout, bytemuck::bytes_of(params), resources, || {
            let u = uniform(ctx, params);
            let mut all = vec![(0, u.as_entire_binding())];
            all.extend(resources.iter().cloned());
            bind_group_at(ctx, layout, &all)
        })
    }

    /// A group of `layout` with only `resources`, at 0, 1, ... (no uniform), reused as
    /// [`MemoCall::group`]'s are.
    pub fn group_without_uniform(
        &mut self,
        ctx: &GpuContext,
        layout: &wgpu::BindGroupLayout,
        resources: &[wgpu::BindingResource<'_>],
    ) -> wgpu::BindGroup {
        let at: Vec<_> = (0..).zip(resources.iter().cloned()).collect();
        self.reuse_or(layout, &[], &at, || bind_group_at(ctx, layout, &at))
    }

    /// The remembered group of this layout, uniform bytes and buffer bindings, or `create`'s.
    fn reuse_or(
        &mut self,
        layout: &wgpu::BindGroupLayout,
        params: &[u8],
        resources: &[(u32, wgpu::BindingResource<'_>)],
        create: impl FnOnce() -> wgpu::BindGroup,
    ) -> wgpu::BindGroup {
        let buffers = resources
            .iter()
            .map(|(at, r)| match r {
                wgpu::BindingResource::Buffer(b) => Some((*at, b.buffer.clone(), b.offset, b.size)),
                _ => None,
            })
            .collect::<Option<Vec<_>>>();
        let Some(buffers) = buffers else {
            return create();
        };
        let key = GroupKey {
            layout: layout.clone(),
            params: params.to_vec(),
            buffers,
        };
        if let Some((_, group)) = self.now.iter().find(|(k, _)| *k == key) {
            return group.clone();
        }
        let group = match self.last.iter().position(|(k, _)| *k == key) {
            Some(i) => self.last.swap_remove(i).1,
            None => create(),
        };
        self.now.push((key, group.clone()));
        group
    }
}

impl Drop for MemoCall<'_> {
    fn drop(&mut self) {
        *self.memo.remembered() = std::mem::take(&mut self.now);
    }
}

/// Storage (read-only or read-write) or uniform layout entry at `binding`, compute stage.
pub fn layout_entry(binding: u32, ty: BindingKind) -> wgpu::BindGroupLayoutEntry {
    let ty = match ty {
        BindingKind::Uniform => wgpu::BufferBindingType::Uniform,
        BindingKind::Read => wgpu::BufferBindingType::Storage { read_only: true },
        BindingKind::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
    };
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// Kinds of buffer binding for [`layout_entry`] and [`bind_group_layout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BindingKind {
    Uniform,
    Read,
    ReadWrite,
}

/// A compute bind group layout with the given kinds at bindings 0, 1, 2, ...
pub fn bind_group_layout(
    ctx: &GpuContext,
    label: &str,
    kinds: &[BindingKind],
) -> wgpu::BindGroupLayout {
    let at: Vec<_> = kinds
        .iter()
        .enumerate()
        .map(|(i, &k)| (i as u32, k))
        .collect();
    bind_group_layout_at(ctx, label, &at)
}

/// A compute bind group layout with explicit binding numbers, for entry points that use only
/// some of a module's bindings.
pub fn bind_group_layout_at(
    ctx: &GpuContext,
    label: &str,
    entries: &[(u32, BindingKind)],
) -> wgpu::BindGroupLayout {
    cached_infallible(
        ctx,
        |c| &mut c.group_layouts,
        entries.to_vec(),
        || {
            let entries: Vec<_> = entries.iter().map(|&(b, k)| layout_entry(b, k)).collect();
            ctx.device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(label),
                    entries: &entries,
                })
        },
    )
}

/// A pipeline layout of the given bind group layouts (groups 0, 1, ...).
pub fn pipeline_layout(
    ctx: &GpuContext,
    label: &str,
    layouts: &[&wgpu::BindGroupLayout],
) -> wgpu::PipelineLayout {
    let key: Vec<wgpu::BindGroupLayout> = layouts.iter().map(|&l| l.clone()).collect();
    cached_infallible(
        ctx,
        |c| &mut c.pipeline_layouts,
        key,
        || {
            let layouts: Vec<Option<&wgpu::BindGroupLayout>> =
                layouts.iter().map(|&l| Some(l)).collect();
            ctx.device
                .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(label),
                    bind_group_layouts: &layouts,
                    immediate_size: 0,
                })
        },
    )
}

/// A bind group of `layout` with `resources` at bindings 0, 1, 2, ...
pub fn bind_group_with_layout(
    ctx: &GpuContext,
    layout: &wgpu::BindGroupLayout,
    resources: &[wgpu::BindingResource<'_>],
) -> wgpu::BindGroup {
    let at: Vec<_> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| (i as u32, r.clone()))
        .collect();
    bind_group_at(ctx, layout, &at)
}

/// A bind group of `layout` with explicit binding numbers.
pub fn bind_group_at(
    ctx: &GpuContext,
    layout: &wgpu::BindGroupLayout,
    resources: &[(u32, wgpu::BindingResource<'_>)],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry<'_>> = resources
        .iter()
        .map(|(b, r)| wgpu::BindGroupEntry {
            binding: *b,
            resource: r.clone(),
        })
        .collect();
    ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout,
        entries: &entries,
    })
}

/// Folds `groups` workgroups into an (x, y, 1) grid with x ≤ `max_dim` (65535 on core
/// WebGPU). Kernels recover the flat index with `linear_workgroup` and bounds-check it.
pub fn grid(groups: u32, max_dim: u32) -> (u32, u32, u32) {
    if groups <= max_dim {
        (groups, 1, 1)
    } else {
        let y = groups.div_ceil(max_dim);
        (groups.div_ceil(y), y, 1)
    }
}

/// Records one compute pass: `pipeline` with `bind_groups` (group 0, 1, ...), over `groups`
/// workgroups (folded into a 2D grid when needed).
pub fn dispatch(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    bind_groups: &[&wgpu::BindGroup],
    groups: u32,
) {
    if groups == 0 {
        return;
    }
    let mut pass = compute_pass(encoder, label);
    dispatch_in(ctx, &mut pass, pipeline, bind_groups, groups);
}

/// A compute pass for a chain of dependent dispatches ([`dispatch_in`]). WebGPU makes each
/// dispatch its own usage scope, so wgpu orders them (a barrier where one writes what the
/// next reads) as it would across passes; the encoder pays for one pass instead of one per
/// dispatch (lavapipe: the radix top-k's `finish` went from ~45 µs to ~17 µs per call).
pub fn compute_pass<'e>(
    encoder: &'e mut wgpu::CommandEncoder,
    label: &str,
) -> wgpu::ComputePass<'e> {
    encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    })
}

/// Records `pipeline` with `bind_groups` (group 0, 1, ...) over `groups` workgroups (folded
/// into a 2D grid when needed) into `pass`; nothing for 0 groups.
pub fn dispatch_in(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    pipeline: &wgpu::ComputePipeline,
    bind_groups: &[&wgpu::BindGroup],
    groups: u32,
) {
    if groups == 0 {
        return;
    }
    let (x, y, z) = grid(groups, ctx.limits().max_compute_workgroups_per_dimension);
    pass.set_pipeline(pipeline);
    for (i, bg) in bind_groups.iter().enumerate() {
        pass.set_bind_group(i as u32, *bg, &[]);
    }
    pass.dispatch_workgroups(x, y, z);
}
