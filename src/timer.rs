//! Kernel timing for benchmarks: GPU timestamps where the adapter has them, wall time of
//! submit-and-wait otherwise (reported as such, since it includes submission overhead).

use crate::buffer::GpuBuffer;
use crate::context::GpuContext;
use crate::error::Result;

/// How a [`Timing`] was measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Timestamp queries around the recorded commands.
    GpuTimestamps,
    /// Host wall time of submit + wait.
    Wall,
}

/// Repeated measurements of one piece of GPU work, in milliseconds.
#[derive(Clone, Debug)]
pub struct Timing {
    pub clock: Clock,
    pub samples_ms: Vec<f64>,
}

impl Timing {
    fn sorted(&self) -> Vec<f64> {
        let mut s = self.samples_ms.clone();
        s.sort_by(f64::total_cmp);
        s
    }
    /// Median sample.
    pub fn median_ms(&self) -> f64 {
        let s = self.sorted();
        s[s.len() / 2]
    }
    /// Fastest sample.
    pub fn min_ms(&self) -> f64 {
        self.sorted()[0]
    }
    /// Slowest sample.
    pub fn max_ms(&self) -> f64 {
        *self.sorted().last().unwrap()
    }
}

/// Times `record` (which records work into the given encoder) `reps` times after `warmup`
/// untimed runs. Each run is its own submission.
pub fn time_gpu(
    ctx: &GpuContext,
    warmup: usize,
    reps: usize,
    mut record: impl FnMut(&mut wgpu::CommandEncoder) -> Result<()>,
) -> Result<Timing> {
    let reps = reps.max(1);
    for _ in 0..warmup {
        let mut enc = ctx.encoder("warmup");
        record(&mut enc)?;
        ctx.submit_and_wait(enc)?;
    }
    if !ctx.capabilities().timestamps {
        let mut samples_ms = Vec::with_capacity(reps);
        for _ in 0..reps {
            let mut enc = ctx.encoder("timed");
            record(&mut enc)?;
            let t = std::time::Instant::now();
            ctx.submit_and_wait(enc)?;
            samples_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        return Ok(Timing {
            clock: Clock::Wall,
            samples_ms,
        });
    }
    let mut timer = StageTimer::new(ctx, 2)?;
    let mut samples_ms = Vec::with_capacity(reps);
    for _ in 0..reps {
        let mut enc = ctx.encoder("timed");
        timer.mark(&mut enc, "timed");
        record(&mut enc)?;
        timer.mark(&mut enc, "end");
        timer.resolve(&mut enc);
        ctx.submit_and_wait(enc)?;
        samples_ms.push(timer.read(ctx)?[0].1);
    }
    Ok(Timing {
        clock: Clock::GpuTimestamps,
        samples_ms,
    })
}

/// GPU time between the stages of one recorded call, e.g. [`Topk::encode_stages`]: its
/// `mark` writes a timestamp and remembers the stage's name; after the submission is done,
/// [`StageTimer::read`] gives each stage's time. Needs [`Capabilities::timestamps`].
///
/// [`Topk::encode_stages`]: crate::kernels::topk::Topk::encode_stages
/// [`Capabilities::timestamps`]: crate::Capabilities::timestamps
pub struct StageTimer {
    queries: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    stamps: GpuBuffer<u64>,
    capacity: u32,
    names: Vec<&'static str>,
    period_ns: f64,
}

impl StageTimer {
    /// Room for `capacity` marks (stages + 1) per call.
    pub fn new(ctx: &GpuContext, capacity: u32) -> Result<Self> {
        if !ctx.capabilities().timestamps {
            return Err(crate::Error::Unsupported {
                feature: "TIMESTAMP_QUERY | TIMESTAMP_QUERY_INSIDE_ENCODERS".into(),
            });
        }
        let capacity = capacity.clamp(2, wgpu::QUERY_SET_MAX_QUERIES);
        Ok(StageTimer {
            queries: ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("stage_timer"),
                ty: wgpu::QueryType::Timestamp,
                count: capacity,
            }),
            resolved: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("stage_timer.resolve"),
                size: u64::from(capacity) * 8,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            stamps: GpuBuffer::zeroed(ctx, capacity as usize, "stage_timer.stamps")?,
            capacity,
            names: Vec::new(),
            period_ns: f64::from(ctx.queue.get_timestamp_period()),
        })
    }

    /// Records a timestamp before stage `name` (or after the last, `"end"`). Marks past the
    /// capacity are counted but not timed; [`StageTimer::read`] reports them as an error.
    pub fn mark(&mut self, encoder: &mut wgpu::CommandEncoder, name: &'static str) {
        let i = self.names.len() as u32;
        if i < self.capacity {
            encoder.write_timestamp(&self.queries, i);
        }
        self.names.push(name);
    }

    /// Records the copy of this call's timestamps to where [`StageTimer::read`] finds them:
    /// after the call, in the same encoder.
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        let n = (self.names.len() as u32).min(self.capacity);
        if n > 0 {
            encoder.resolve_query_set(&self.queries, 0..n, &self.resolved, 0);
            encoder.copy_buffer_to_buffer(
                &self.resolved,
                0,
                self.stamps.buffer(),
                0,
                u64::from(n) * 8,
            );
        }
    }

    /// Once the submission holding the marks and [`StageTimer::resolve`] is done: each stage's
    /// name and time in ms (from its mark to the next), in order. Clears the marks for the next
    /// call.
    pub fn read(&mut self, ctx: &GpuContext) -> Result<Vec<(&'static str, f64)>> {
        let names = std::mem::take(&mut self.names);
        if names.len() as u32 > self.capacity {
            return Err(crate::Error::shape(
                "StageTimer marks",
                format!("≤ {} (its capacity)", self.capacity),
                names.len(),
            ));
        }
        let t = self.stamps.read(ctx)?;
        Ok(names
            .windows(2)
            .enumerate()
            .map(|(i, pair)| {
                let ticks = t[i + 1].wrapping_sub(t[i]);
                (pair[0], ticks as f64 * self.period_ns / 1e6)
            })
            .collect())
    }
}
