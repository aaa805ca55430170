//! [`GpuBuffer`]: a typed storage buffer with upload and readback.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytemuck::Pod;

use crate::context::GpuContext;
use crate::error::{Error, Result};

/// Fails with [`Error::BufferTooLarge`] when `bytes` exceeds the device's buffer size limit.
pub fn check_buffer_size(ctx: &GpuContext, what: &'static str, bytes: u64) -> Result<()> {
    let max = ctx.limits().max_buffer_size;
    if bytes > max {
        return Err(Error::BufferTooLarge {
            what,
            requested: bytes,
            limit: "max_buffer_size",
            max,
        });
    }
    Ok(())
}

/// Fails with [`Error::BufferTooLarge`] when one storage binding of `bytes` exceeds
/// `max_storage_buffer_binding_size`.
pub fn check_binding_size(ctx: &GpuContext, what: &'static str, bytes: u64) -> Result<()> {
    let max = ctx.limits().max_storage_buffer_binding_size;
    if bytes > max {
        return Err(Error::BufferTooLarge {
            what,
            requested: bytes,
            limit: "max_storage_buffer_binding_size",
            max,
        });
    }
    Ok(())
}

/// A binding of the `len` elements of `elem` bytes from element `first` of `buffer`, on a
/// device whose storage bindings start at multiples of `align` bytes: bound from the aligned
/// offset at or below `first`, with where `first` lies in it (in elements), so a kernel that
/// adds that shift to its indices reads a slice of a buffer too large for one binding. The
/// size rounds up to 4 bytes, as [`GpuBuffer`]'s allocations do.
pub(crate) fn slice_binding(
    buffer: &wgpu::Buffer,
    elem: usize,
    align: usize,
    first: usize,
    len: usize,
) -> (wgpu::BindingResource<'_>, usize) {
    let start = first * elem;
    let aligned = start / align * align;
    let shift = (start - aligned) / elem;
    let bytes = ((shift + len) * elem).next_multiple_of(4);
    let binding = wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset: aligned as u64,
        size: std::num::NonZeroU64::new(bytes as u64),
    });
    (binding, shift)
}

/// Element type of a tensor on the GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ElemType {
    #[default]
    F32,
    /// IEEE half precision stored as raw bits (`GpuBuffer<u16>`); kernels reading it need
    /// `Features::SHADER_F16` and compute in f32.
    F16,
}

impl ElemType {
    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            ElemType::F32 => 4,
            ElemType::F16 => 2,
        }
    }
}

/// A borrowed GPU tensor of either element type.
#[derive(Clone, Copy, Debug)]
pub enum Elems<'a> {
    F32(&'a GpuBuffer<f32>),
    /// f16 bit patterns.
    F16(&'a GpuBuffer<u16>),
}

impl Elems<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Elems::F32(b) => b.len(),
            Elems::F16(b) => b.len(),
        }
    }
    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The underlying buffer.
    pub fn buffer(&self) -> &wgpu::Buffer {
        match self {
            Elems::F32(b) => b.buffer(),
            Elems::F16(b) => b.buffer(),
        }
    }
    /// Binding of the whole buffer.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        self.buffer().as_entire_binding()
    }
    /// Element type.
    pub fn ty(&self) -> ElemType {
        match self {
            Elems::F32(_) => ElemType::F32,
            Elems::F16(_) => ElemType::F16,
        }
    }
}

/// Bytes actually allocated for `len` elements: copies need 4-byte multiples and bindings need
/// a non-zero size, so tiny and odd-sized buffers are padded.
/// `u64::MAX` on overflow, which every size check then rejects.
fn padded_bytes<T>(len: usize) -> u64 {
    bytes_of::<T>(&[len])
        .checked_next_multiple_of(4)
        .map_or(u64::MAX, |b| b.max(16))
}

/// Bytes of a `T` tensor whose dimensions are `dims`, multiplied out in u64 so no size can
/// wrap: `u64::MAX` on overflow, which every size check then rejects.
pub fn bytes_of<T>(dims: &[usize]) -> u64 {
    dims.iter()
        .try_fold(size_of::<T>() as u64, |a, &d| a.checked_mul(d as u64))
        .unwrap_or(u64::MAX)
}

/// A storage buffer holding `len` values of `T`. Usage: `STORAGE | COPY_SRC | COPY_DST`.
#[derive(Debug)]
pub struct GpuBuffer<T: Pod> {
    buffer: wgpu::Buffer,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Pod> GpuBuffer<T> {
    /// A zero-filled buffer of `len` elements, checked against `max_buffer_size` first.
    pub fn zeroed(ctx: &GpuContext, len: usize, label: &str) -> Result<Self> {
        let bytes = padded_bytes::<T>(len);
        check_buffer_size(ctx, "buffer", bytes)?;
        let buffer = ctx.scoped(|| {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        Ok(GpuBuffer {
            buffer,
            len,
            _t: PhantomData,
        })
    }

    /// A buffer holding a copy of `data`.
    pub fn from_slice(ctx: &GpuContext, data: &[T], label: &str) -> Result<Self> {
        let buf = Self::zeroed(ctx, data.len(), label)?;
        buf.write(ctx, 0, data)?;
        Ok(buf)
    }

    /// Writes `data` starting at element `offset` (queued; visible to later submissions).
    pub fn write(&self, ctx: &GpuContext, offset: usize, data: &[T]) -> Result<()> {
        if offset + data.len() > self.len {
            return Err(Error::shape(
                "data",
                format!(
                    "at most {} elements after offset {offset}",
                    self.len - offset.min(self.len)
                ),
                data.len(),
            ));
        }
        let mut bytes = bytemuck::cast_slice::<T, u8>(data).to_vec();
        let start = (offset * size_of::<T>()) as u64;
        if !start.is_multiple_of(4) {
            return Err(Error::shape(
                "offset",
                "a 4-byte aligned element offset",
                offset,
            ));
        }
        bytes.resize(bytes.len().next_multiple_of(4), 0);
        ctx.scoped(|| ctx.queue.write_buffer(&self.buffer, start, &bytes))
    }

    /// Copies the buffer back to the host, blocking until the GPU is done.
    pub fn read(&self, ctx: &GpuContext) -> Result<Vec<T>> {
        let (staging, done) = self.start_read(ctx)?;
        ctx.wait(None)?;
        pollster::block_on(done).map_err(Error::Wgpu)?;
        self.finish_read(&staging)
    }

    /// Async readback. On native backends the map completes when the device is polled
    /// (`device.poll`), e.g. by the application's poll loop or by another blocking call. On
    /// wasm32 it is also where earlier wgpu errors surface ([`GpuContext::deferred_errors`]).
    pub async fn read_async(&self, ctx: &GpuContext) -> Result<Vec<T>> {
        let (staging, done) = self.start_read(ctx)?;
        done.await.map_err(Error::Wgpu)?;
        ctx.deferred_errors().await?;
        self.finish_read(&staging)
    }

    fn start_read(&self, ctx: &GpuContext) -> Result<(wgpu::Buffer, MapFuture)> {
        let staging = ctx.scoped(|| {
            let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: self.buffer.size(),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut enc = ctx.encoder("readback");
            enc.copy_buffer_to_buffer(&self.buffer, 0, &staging, 0, self.buffer.size());
            ctx.queue.submit([enc.finish()]);
            staging
        })?;
        let state = Arc::new(Mutex::new(MapState::default()));
        let cb_state = state.clone();
        staging
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |result| {
                let mut s = cb_state.lock().unwrap();
                s.result = Some(result.map_err(|e| e.to_string()));
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            });
        Ok((staging, MapFuture(state)))
    }

    fn finish_read(&self, staging: &wgpu::Buffer) -> Result<Vec<T>> {
        let bytes = (self.len * size_of::<T>()) as u64;
        let out = if bytes == 0 {
            Vec::new()
        } else {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Wgpu(format!("map readback: {e}")))?;
            bytemuck::pod_collect_to_vec(&view[..bytes as usize])
        };
        staging.unmap();
        Ok(out)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The underlying wgpu buffer.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Whole-buffer binding resource.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        self.buffer.as_entire_binding()
    }
}

#[derive(Default)]
struct MapState {
    result: Option<Result<(), String>>,
    waker: Option<Waker>,
}

/// Resolves when `map_async` has called back.
struct MapFuture(Arc<Mutex<MapState>>);

impl Future for MapFuture {
    type Output = Result<(), String>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.0.lock().unwrap();
        match s.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// An owned GPU tensor of either element type, uploaded from f32 host data.
#[derive(Debug)]
pub enum Tensor {
    F32(GpuBuffer<f32>),
    F16(GpuBuffer<u16>),
}

impl Tensor {
    /// Uploads `data` as `ty` (f16: rounded to nearest even, as `half` does).
    pub fn upload(ctx: &GpuContext, ty: ElemType, data: &[f32], label: &str) -> Result<Self> {
        Ok(match ty {
            ElemType::F32 => Tensor::F32(GpuBuffer::from_slice(ctx, data, label)?),
            ElemType::F16 => {
                let bits: Vec<u16> = data
                    .iter()
                    .map(|&x| half::f16::from_f32(x).to_bits())
                    .collect();
                Tensor::F16(GpuBuffer::from_slice(ctx, &bits, label)?)
            }
        })
    }

    /// Borrowed view.
    pub fn elems(&self) -> Elems<'_> {
        match self {
            Tensor::F32(b) => Elems::F32(b),
            Tensor::F16(b) => Elems::F16(b),
        }
    }
}
