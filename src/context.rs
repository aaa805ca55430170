//! [`GpuContext`]: the adapter, device and queue every kernel runs on, owned or borrowed.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::shader::ShaderChecks;

/// Optional capabilities the context enabled on its device. Kernels choose their tier
/// (core WebGPU, subgroups, f16) from this at pipeline creation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `Features::SUBGROUP`: subgroup (wave/warp) operations in WGSL.
    pub subgroups: bool,
    /// `Features::SHADER_F16`: `f16` storage and arithmetic in WGSL.
    pub f16: bool,
    /// `Features::TIMESTAMP_QUERY` (+ `_INSIDE_ENCODERS`): GPU timing for benchmarks.
    pub timestamps: bool,
}

impl Capabilities {
    fn from_features(f: wgpu::Features) -> Self {
        Capabilities {
            subgroups: f.contains(wgpu::Features::SUBGROUP),
            f16: f.contains(wgpu::Features::SHADER_F16),
            timestamps: f.contains(
                wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS,
            ),
        }
    }
}

/// Features this crate can use when the adapter offers them; none is required.
const WANTED_FEATURES: wgpu::Features = wgpu::Features::SUBGROUP
    .union(wgpu::Features::SHADER_F16)
    .union(wgpu::Features::TIMESTAMP_QUERY)
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS);

/// A device and queue plus what they can do.
///
/// Create one with [`GpuContext::new`] / [`GpuContext::new_blocking`] (adapter chosen from
/// `WGPU_BACKEND` and `WGPU_ADAPTER_NAME`, else the best available), or borrow an
/// application's device with [`GpuContext::from_device`]. Cloning is cheap (wgpu handles are
/// reference counted).
///
/// A context compiles each shader module and pipeline once: kernels built on it (or on a
/// clone) reuse them, so building a kernel per shape (a decode step's growing n, a new batch
/// size) costs buffer allocations, not shader compiles.
#[derive(Clone, Debug)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter_info: wgpu::AdapterInfo,
    caps: Capabilities,
    limits: wgpu::Limits,
    checks: ShaderChecks,
    lost: Arc<Mutex<Option<String>>>,
    /// Compiled modules, layouts and pipelines, shared by every kernel built on this context
    /// and its clones.
    pub(crate) cache: Arc<Mutex<crate::shader::Cache>>,
    #[cfg(target_arch = "wasm32")]
    pending: PendingScopes,
}

/// wasm32: error scopes that [`GpuContext::scoped`] popped but could not wait for, since
/// nothing may block on the web; [`GpuContext::deferred_errors`] awaits them.
#[cfg(target_arch = "wasm32")]
#[derive(Clone, Default)]
struct PendingScopes(Arc<Mutex<Vec<ScopeResult>>>);

/// What a popped error scope will report.
#[cfg(target_arch = "wasm32")]
type ScopeResult = std::pin::Pin<Box<dyn std::future::Future<Output = Option<wgpu::Error>>>>;

#[cfg(target_arch = "wasm32")]
impl std::fmt::Debug for PendingScopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PendingScopes({})", self.0.lock().unwrap().len())
    }
}

/// What an error scope caught, as this crate's error.
fn caught(error: Option<wgpu::Error>) -> Result<()> {
    match error {
        Some(e) => Err(Error::Wgpu(e.to_string())),
        None => Ok(()),
    }
}

fn adapter_rank(info: &wgpu::AdapterInfo) -> u8 {
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

impl GpuContext {
    /// Picks an adapter and creates a device with every useful optional feature the adapter
    /// has and the adapter's full limits.
    ///
    /// `WGPU_BACKEND` (e.g. `vulkan`, `metal`, `dx12`, `gl`) restricts the backends and
    /// `WGPU_ADAPTER_NAME` picks the first adapter whose name contains it (case-insensitive),
    /// as in wgpu's own tools. Otherwise discrete GPUs win over integrated, virtual and CPU
    /// adapters.
    pub async fn new() -> Result<Self> {
        // Without WGPU_BACKEND, the primary backends (Vulkan, Metal, DX12) are tried first and
        // GL only when they have no adapter.
        let mut adapters = Vec::new();
        let mut backends = wgpu::Backends::empty();
        let tries = match wgpu::Backends::from_env() {
            Some(b) => vec![b],
            None => vec![wgpu::Backends::PRIMARY, wgpu::Backends::SECONDARY],
        };
        for b in tries {
            backends |= b;
            let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
            desc.backends = b;
            adapters = wgpu::Instance::new(desc).enumerate_adapters(b).await;
            if !adapters.is_empty() {
                break;
            }
        }
        if adapters.is_empty() {
            return Err(Error::NoAdapter(format!(
                "no adapter for backends {backends:?}; on Linux without a GPU install Mesa's \
                 lavapipe: apt-get install mesa-vulkan-drivers libvulkan1"
            )));
        }
        let adapter = match std::env::var("WGPU_ADAPTER_NAME") {
            Ok(want) => {
                let want = want.to_lowercase();
                let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
                let pos = adapters
                    .iter()
                    .position(|a| a.get_info().name.to_lowercase().contains(&want))
                    .ok_or_else(|| {
                        Error::NoAdapter(format!(
                            "WGPU_ADAPTER_NAME={want} matches none of {names:?}"
                        ))
                    })?;
                adapters.swap_remove(pos)
            }
            Err(_) => {
                adapters.sort_by_key(|a| adapter_rank(&a.get_info()));
                adapters.swap_remove(0)
            }
        };
        Self::from_adapter(&adapter).await
    }

    /// Blocking form of [`GpuContext::new`].
    pub fn new_blocking() -> Result<Self> {
        pollster::block_on(Self::new())
    }

    /// Creates a device on a given adapter (features and limits as in [`GpuContext::new`]).
    pub async fn from_adapter(adapter: &wgpu::Adapter) -> Result<Self> {
        let features = adapter.features() & WANTED_FEATURES;
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("knn-attention"),
                required_features: features,
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::NoAdapter(format!("request_device failed: {e}")))?;
        let ctx = Self::from_device(device, queue, adapter.get_info());
        // An owned device reports loss through this callback; `check` turns it into an error.
        let lost = ctx.lost.clone();
        ctx.device.set_device_lost_callback(move |reason, msg| {
            *lost.lock().unwrap() = Some(format!("{reason:?}: {msg}"));
        });
        Ok(ctx)
    }

    /// Borrows an application's device and queue (embedding in an inference app). The
    /// context uses exactly the features and limits that device was created with, and leaves
    /// the application's device-lost and uncaptured-error handlers untouched.
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter_info: wgpu::AdapterInfo,
    ) -> Self {
        GpuContext {
            caps: Capabilities::from_features(device.features()),
            limits: device.limits(),
            checks: ShaderChecks::DEFAULT,
            device,
            queue,
            adapter_info,
            lost: Arc::new(Mutex::new(None)),
            cache: Arc::default(),
            #[cfg(target_arch = "wasm32")]
            pending: PendingScopes::default(),
        }
    }

    /// Compute pipelines compiled on this context so far. Each is built once and reused by
    /// every kernel that needs it, so this grows with the kinds of kernel built, not with
    /// their number.
    pub fn pipelines_compiled(&self) -> usize {
        self.cache.lock().unwrap().compiled()
    }

    /// The checks this context's kernels are compiled with ([`ShaderChecks::DEFAULT`], all
    /// but loop bounding, unless [`GpuContext::with_all_shader_checks`] or
    /// [`GpuContext::with_shader_checks`] chose others).
    pub fn shader_checks(&self) -> ShaderChecks {
        self.checks
    }

    /// A context on the same device whose kernels are compiled with every one of wgpu's
    /// checks ([`ShaderChecks::ALL`]), loop bounding included: for callers who would rather
    /// not rely on this crate's guarantee that its loops end, at the speed that costs (up to
    /// 2.7× on the top-k kernels of an H200). Its own pipeline cache, as with
    /// [`GpuContext::with_shader_checks`].
    pub fn with_all_shader_checks(&self) -> GpuContext {
        // SAFETY: more checks than the default only remove ways for a defect to misbehave.
        unsafe { self.with_shader_checks(ShaderChecks::ALL) }
    }

    /// A context on the same device whose kernels are compiled with `checks` instead. It has
    /// its own module and pipeline cache (the two kinds of kernel never share a pipeline),
    /// so build its kernels from it; `self` is unchanged.
    ///
    /// # Safety
    ///
    /// With `loop_bounding` off (as in the default) the GPU relies on this crate's WGSL
    /// ending every loop for every input its host checks accept; with `bounds` off, also on
    /// it indexing every array in range. That is how the kernels are written (loop bounds
    /// come from validated parameters; indices from buffer contents, such as row lengths and
    /// key indices, are clamped or skipped in the shader), and the test suite runs with every
    /// check off on lavapipe (`KNN_ATTENTION_SHADER_CHECKS=none`). A defect there would be
    /// undefined behaviour on the GPU (a hang, or with `bounds` off a stray read or write)
    /// instead of a bounded loop or a clamped access. The caller accepts that risk in
    /// exchange for the speed the checks cost on its driver; any `checks` with `bounds` on
    /// adds no risk beyond the default's. `integer_division` and `zero_workgroup_memory` off
    /// cannot cause undefined behaviour, only wrong values if a kernel were defective, but go
    /// through here too so that one call sets them all.
    pub unsafe fn with_shader_checks(&self, checks: ShaderChecks) -> GpuContext {
        GpuContext {
            checks,
            cache: Arc::default(),
            ..self.clone()
        }
    }

    /// Optional capabilities enabled on the device.
    pub fn capabilities(&self) -> Capabilities {
        self.caps
    }

    /// Whether the adapter is a CPU driver (lavapipe, WARP), which runs a few workgroups at a
    /// time and pays per workgroup and barrier: kernels plan fewer, longer workgroups there.
    pub fn is_cpu_adapter(&self) -> bool {
        self.adapter_info.device_type == wgpu::DeviceType::Cpu
    }

    /// Limits the device was created with.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Fails with [`Error::DeviceLost`] once the device has been lost.
    pub fn check(&self) -> Result<()> {
        match self.lost.lock().unwrap().as_ref() {
            Some(msg) => Err(Error::DeviceLost(msg.clone())),
            None => Ok(()),
        }
    }

    /// Runs `f` inside validation and out-of-memory error scopes and returns what they caught
    /// as [`Error::Wgpu`], so bad resource use surfaces as an error instead of a panic.
    ///
    /// On wasm32 nothing may block on the scopes' promises, so `f`'s errors are not known
    /// here: the scopes are kept and reported later, by the next `scoped` call once they
    /// have settled, or by [`GpuContext::deferred_errors`] (which
    /// [`GpuBuffer::read_async`](crate::buffer::GpuBuffer::read_async) awaits).
    pub fn scoped<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        self.check()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        #[cfg(target_arch = "wasm32")]
        {
            let earlier = self.settle_pending();
            let mut pending = self.pending.0.lock().unwrap();
            pending.push(Box::pin(validation.pop()));
            pending.push(Box::pin(oom.pop()));
            earlier.map(|()| value)
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let v = pollster::block_on(validation.pop());
            let o = pollster::block_on(oom.pop());
            self.check()?;
            caught(v.or(o)).map(|()| value)
        }
    }

    /// wasm32: drops the kept scopes that have settled (so an app that never reads back does
    /// not accumulate them) and returns the first error among them.
    #[cfg(target_arch = "wasm32")]
    fn settle_pending(&self) -> Result<()> {
        use std::task::{Context, Poll, Waker};
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = None;
        self.pending
            .0
            .lock()
            .unwrap()
            .retain_mut(|scope| match scope.as_mut().poll(&mut cx) {
                Poll::Ready(error) => {
                    first = first.take().or(error);
                    false
                }
                Poll::Pending => true,
            });
        caught(first)
    }

    /// The first wgpu error that [`GpuContext::scoped`] caught but could not report when it
    /// happened (wasm32 only; native targets report in place), as [`Error::Wgpu`]; or device
    /// loss.
    pub async fn deferred_errors(&self) -> Result<()> {
        #[cfg(target_arch = "wasm32")]
        {
            let scopes = std::mem::take(&mut *self.pending.0.lock().unwrap());
            let mut first = None;
            for scope in scopes {
                first = first.or(scope.await);
            }
            caught(first)?;
        }
        self.check()
    }

    /// Submits `encoder` and blocks until the GPU has finished it.
    pub fn submit_and_wait(&self, encoder: wgpu::CommandEncoder) -> Result<()> {
        let index = self.scoped(|| self.queue.submit([encoder.finish()]))?;
        self.wait(Some(index))
    }

    /// Blocks until the given submission (or all work) has completed.
    pub fn wait(&self, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: index,
                timeout: None,
            })
            .map_err(|e| Error::Wgpu(format!("poll: {e}")))?;
        self.check()
    }

    /// A new command encoder on this device.
    pub fn encoder(&self, label: &str) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
    }
}
