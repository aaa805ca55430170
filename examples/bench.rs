//! Bench CLI: runs named kernels at given shapes, times them with GPU timestamps where the
//! adapter has them (wall time otherwise, labelled), prints a table and writes JSON.
//!
//! cargo run --release --example bench -- [--kernel NAME]... [--size small|full]
//!     [--reps N] [--warmup N] [--peak-gbps X] [--cpu] [--json FILE]

use clap::{Parser, ValueEnum};
use knn_attention::attention::{AttentionConfig, AttentionOutputs, GradOutputs, KeptOutputs, Qkv};
use knn_attention::buffer::{ElemType, Tensor};
use knn_attention::kernels::dense_attention::DenseAttention;
use knn_attention::kernels::dense_attention_backward::{
    DenseAttentionBackward, DenseBackwardInputs,
};
use knn_attention::kernels::gather_attention::{GatherAttention, GatherConfig, GatherInputs};
use knn_attention::kernels::gumbel_max::{GumbelMax, SamplerConfig};
use knn_attention::kernels::lazy_gumbel::{LazyGumbel, LazySamples};
use knn_attention::kernels::lev_attention::{LevAttention, LevAttentionConfig};
use knn_attention::kernels::rng_fill::{Distribution, RngFill, RngKey};
use knn_attention::kernels::sparse_attention_backward::{BackwardInputs, SparseAttentionBackward};
use knn_attention::kernels::topk::{Loads, ProfilePhase, Strategy, Topk, TopkConfig, TopkInput};
use knn_attention::kernels::topk_attention::{KPolicy, TopkAttention, TopkAttentionConfig};
use knn_attention::kernels::topk_baseline::TopkBaseline;
use knn_attention::reference::rng_fill::rng_fill_f32;
use knn_attention::reference::topk::topk as topk_cpu;
use knn_attention::timer::{Clock, StageTimer, time_gpu};
use knn_attention::{AttentionShape, GpuBuffer, GpuContext, Mask, Result, ShaderChecks};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Size {
    /// Shapes small enough for a CPU Vulkan driver (lavapipe).
    Small,
    /// The shapes named in the issues (H100-scale).
    Full,
}

#[derive(Parser)]
struct Args {
    /// Kernels to run (default: all but topk_sweep, topk_stages and bandwidth). Known:
    /// bandwidth (WGSL copy and row-read probes, examples/bench_bandwidth.wgsl),
    /// dispatch_overhead, rng_fill, topk (with topk_baseline), topk_sweep (radix vs one pass
    /// over rows × n × k, for `Strategy::Auto`), topk_stages (each dispatch of a top-k call
    /// timed on its own), dense_attention, topk_attention, gather_attention, gumbel_max,
    /// lazy_gumbel, lev_attention, dense_attention_backward, sparse_attention_backward.
    #[arg(long)]
    kernel: Vec<String>,
    /// Shape set; default `full` on GPUs, `small` on CPU adapters.
    #[arg(long, value_enum)]
    size: Option<Size>,
    #[arg(long, default_value_t = 10)]
    reps: usize,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Milliseconds of GPU work before anything is timed, so the GPU is at its working clocks
    /// (default: 1000 on GPUs, 0 on CPU adapters).
    #[arg(long)]
    spin_up_ms: Option<u64>,
    /// Device memory bandwidth in GB/s to report "% of peak" against. Default: measured here
    /// as the device-to-device copy bandwidth (read + write).
    #[arg(long)]
    peak_gbps: Option<f64>,
    /// Also time the CPU reference once per case (slow at full size).
    #[arg(long)]
    cpu: bool,
    /// topk: also time the radix path aiming for this many workgroups per pass
    /// (`TopkConfig::radix_groups`; repeatable), to tune the default on a new device.
    #[arg(long)]
    radix_groups: Vec<usize>,
    /// topk: also time the radix path with this many threads in its bitonic sort's workgroup
    /// (`TopkConfig::sort_workgroup`: 256, 512 or 1024; repeatable), sorted and at the
    /// default chunking.
    #[arg(long)]
    sort_workgroup: Vec<u32>,
    /// topk: leave out topk_baseline (one workgroup per row, a whole-row sort: seconds per
    /// run at decode shapes on a GPU, where it is no yardstick anyway).
    #[arg(long)]
    no_baseline: bool,
    /// Compile the kernels with these of wgpu's shader checks: `default` (the library's: all
    /// but loop bounding), `all` (wgpu's), `none`, or a comma-separated list to keep
    /// (`ShaderChecks`), to see what each costs on this driver.
    #[arg(long, default_value = "default")]
    shader_checks: ShaderChecks,
    /// Run only the cases whose "kernel shape" label contains one of these (repeatable; top-k
    /// cases are then not even built), e.g. `--only "65536x4096 k=64 OnePass"`: a short A/B.
    #[arg(long)]
    only: Vec<String>,
    /// Write results as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// `--only`'s substrings (empty: every case).
static ONLY: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Whether the case `kernel` `shape` runs under `--only`.
fn selected(kernel: &str, shape: &str) -> bool {
    let label = format!("{kernel} {shape}");
    ONLY.get()
        .is_none_or(|only| only.is_empty() || only.iter().any(|s| label.contains(s.as_str())))
}

/// Records one run of a case into an encoder.
type Record = Box<dyn FnMut(&mut wgpu::CommandEncoder) -> Result<()>>;

/// One benchmark case: what it is, how many bytes it must move, and how to record it.
struct Case {
    kernel: &'static str,
    shape: String,
    bytes: f64,
    /// Floating-point operations of one run (0: a memory-bound kernel).
    flops: f64,
    record: Record,
    /// The CPU reference on the same input, timed once (wall time), for comparison.
    cpu: Option<Box<dyn Fn()>>,
    /// Extra facts measured at setup (e.g. keys touched per sample).
    note: String,
    /// Samples drawn per run (sampling kernels; 0 otherwise), for samples/s.
    samples: f64,
}

#[derive(Serialize)]
struct Row {
    kernel: &'static str,
    shape: String,
    clock: &'static str,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    gbps: f64,
    tflops: f64,
    pct_of_peak: Option<f64>,
    cpu_reference_ms: Option<f64>,
    note: String,
}

#[derive(Serialize)]
struct Report {
    adapter: String,
    backend: String,
    device_type: String,
    driver: String,
    driver_info: String,
    size: String,
    /// The `--shader-checks` the kernels were compiled with.
    shader_checks: String,
    date_unix: u64,
    /// What the `pct_of_peak` column is relative to, GB/s.
    peak_gbps: f64,
    results: Vec<Row>,
}

fn rng_fill_cases(ctx: &GpuContext, size: Size) -> Result<Vec<Case>> {
    let fill = std::rc::Rc::new(RngFill::new(ctx)?);
    let lens: &[usize] = match size {
        Size::Small => &[1 << 20, 1 << 22],
        Size::Full => &[1 << 24, 1 << 28],
    };
    let mut cases = Vec::new();
    for &len in lens {
        for dist in [Distribution::Uniform, Distribution::Gumbel] {
            let out = GpuBuffer::<f32>::zeroed(ctx, len, "bench.rng")?;
            let fill = fill.clone();
            cases.push(Case {
                kernel: "rng_fill",
                shape: format!("{len} {dist:?}"),
                bytes: len as f64 * 4.0,
                flops: 0.0,
                record: Box::new(move |enc| fill.encode(enc, &out, RngKey::default(), dist)),
                cpu: Some(Box::new(move || {
                    std::hint::black_box(rng_fill_f32(len, RngKey::default(), dist));
                })),
                note: String::new(),
                samples: 0.0,
            });
        }
    }
    Ok(cases)
}

/// The top-k shapes (rows, n, k): at full size the five.
fn topk_shapes(size: Size) -> &'static [(usize, usize, usize)] {
    match size {
        Size::Small => &[
            (64, 4096, 32),
            (16, 65536, 256),
            (1, 131072, 2048),
            (1024, 1024, 64),
        ],
        Size::Full => &[
            (4096, 65536, 32),
            (4096, 65536, 256),
            (1, 131072, 2048),
            (64, 131072, 2048),
            (65536, 4096, 64),
        ],
    }
}

/// Where a top-k call's time goes (`--kernel topk_stages`): each dispatch in a compute pass
/// of its own between timestamps ([`Topk::encode_stages`]), for the top-k shapes on the path
/// `Strategy::Auto` takes and on radix: the histogram passes, the compaction, each sort step.
/// Rows are "shape strategy: i kernel"; the extra pass boundaries may add a little time.
/// Without timestamp queries, `Error::Unsupported`.
fn topk_stage_rows(ctx: &GpuContext, size: Size, warmup: usize, reps: usize) -> Result<Vec<Row>> {
    let mut timer = StageTimer::new(ctx, 256)?;
    let mut rows_out = Vec::new();
    for &(rows, n, k) in topk_shapes(size) {
        let scores = random_scores(ctx, rows, n)?;
        let auto = TopkConfig {
            rows,
            n,
            k,
            ..Default::default()
        };
        let radix = TopkConfig {
            strategy: Strategy::Radix,
            ..auto
        };
        let configs = if auto.strategy_on(ctx) != Strategy::Radix {
            vec![auto, radix]
        } else {
            vec![radix]
        };
        for cfg in configs {
            let topk = Topk::new(ctx, cfg)?;
            let out = topk.outputs()?;
            let mut stages: Vec<(&str, Vec<f64>)> = Vec::new();
            for run in 0..warmup + reps.max(1) {
                let mut enc = ctx.encoder("topk_stages");
                topk.encode_stages(&mut enc, TopkInput::new(&scores), &out, &mut |e, name| {
                    timer.mark(e, name)
                })?;
                timer.resolve(&mut enc);
                ctx.submit_and_wait(enc)?;
                let times = timer.read(ctx)?;
                if run < warmup {
                    continue;
                }
                stages.resize(times.len(), ("", Vec::new()));
                for (s, (name, ms)) in stages.iter_mut().zip(times) {
                    s.0 = name;
                    s.1.push(ms);
                }
            }
            let path = format!("{:?}", cfg.strategy_on(ctx));
            for (i, (name, samples_ms)) in stages.into_iter().enumerate() {
                let t = knn_attention::timer::Timing {
                    clock: Clock::GpuTimestamps,
                    samples_ms,
                };
                rows_out.push(Row {
                    kernel: "topk_stages",
                    shape: format!("{rows}x{n} k={k} {path}: {i} {name}"),
                    clock: "gpu",
                    median_ms: t.median_ms(),
                    min_ms: t.min_ms(),
                    max_ms: t.max_ms(),
                    gbps: 0.0,
                    tflops: 0.0,
                    pct_of_peak: None,
                    cpu_reference_ms: None,
                    note: String::new(),
                });
            }
        }
    }
    Ok(rows_out)
}

/// `with_cpu`: also keep a host copy of the scores to time the CPU reference on (a full-size
/// readback is 1 GiB, so it is only made when asked for).
fn topk_cases(
    ctx: &GpuContext,
    size: Size,
    with_cpu: bool,
    radix_groups: &[usize],
    sort_workgroups: &[u32],
    with_baseline: bool,
) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    for &(rows, n, k) in topk_shapes(size) {
        let scores = std::rc::Rc::new(random_scores(ctx, rows, n)?);
        let cfg = TopkConfig {
            rows,
            n,
            k,
            ..Default::default()
        };
        let host = if with_cpu {
            Some(std::rc::Rc::new(scores.read(ctx)?))
        } else {
            None
        };
        // Both algorithms where the one-pass path applies (and radix at each asked-for
        // workgroup target); the note marks Auto's choice. Radix unsorted too: the gap to
        // sorted is the bitonic sort's share (less `topk_finalize`). The default one pass
        // (wide tiles, vec4 loads where rows sit on quads), with scalar loads ("scalar"), and
        // in 512-entry tiles ("512") of scalars, of vec4s ("quads") and with the subgroup tier
        // where the adapter has subgroups ("subgroups").
        let subgroups = ctx.capabilities().subgroups;
        let radix = TopkConfig {
            strategy: Strategy::Radix,
            ..cfg
        };
        let one_pass = TopkConfig {
            strategy: Strategy::OnePass,
            ..cfg
        };
        // The row select with the device's largest workgroup, unsorted, and at 512 and 256
        // threads (each where the device has them); it and the default one pass also to each
        // profiling phase (the one pass has the first three).
        // The row select's sorts: with the subgroup tier's shuffles ("subgroups", where the
        // adapter has them) and by buckets ("buckets").
        let [row_select, row_select_shuffled, row_select_buckets] = row_select_sorts(cfg);
        use ProfilePhase::{Floor, Gather, Read, Sort, Test};
        let profiled = |base: TopkConfig, phases: &[ProfilePhase]| {
            phases
                .iter()
                .map(|&p| TopkConfig {
                    profile: Some(p),
                    ..base
                })
                .collect::<Vec<_>>()
        };
        let row_select_512 = TopkConfig {
            select_workgroup: Some(512),
            ..row_select
        };
        let variants = [
            radix,
            row_select,
            TopkConfig {
                sorted: false,
                ..row_select
            },
            row_select_512,
            TopkConfig {
                select_workgroup: Some(256),
                ..row_select
            },
            row_select_shuffled,
            TopkConfig {
                sorted: false,
                ..row_select_shuffled
            },
            row_select_buckets,
        ]
        .into_iter()
        .chain(profiled(row_select, &[Floor, Gather, Sort, Read, Test]))
        .chain(profiled(row_select_512, &[Gather]))
        .chain(profiled(row_select_shuffled, &[Gather, Sort]))
        .chain(profiled(row_select_buckets, &[Sort]))
        .chain(profiled(one_pass, &[Floor, Gather, Sort]))
        .chain([
            TopkConfig {
                sorted: false,
                ..radix
            },
            TopkConfig {
                rank_sort: true,
                ..radix
            },
            one_pass,
            TopkConfig {
                loads: Loads::Scalar,
                ..one_pass
            },
            TopkConfig {
                wide_tiles: false,
                loads: Loads::Scalar,
                ..one_pass
            },
            TopkConfig {
                wide_tiles: false,
                loads: Loads::Vec4,
                ..one_pass
            },
            TopkConfig {
                wide_tiles: false,
                subgroups: true,
                ..one_pass
            },
        ])
        // The wide one pass taking 2, 4 and 8 rows per workgroup ("r=<rows>"), and 1 and 4
        // with the next tile loaded ahead even where rows are one tile ("ahead").
        .chain([2, 4, 8].map(|r| TopkConfig {
            wide_rows: Some(r),
            ..one_pass
        }))
        .chain([1, 4].map(|r| TopkConfig {
            wide_rows: Some(r),
            wide_prefetch: Some(true),
            ..one_pass
        }))
        // Admitting by bit tests ("bits"), the count and front in registers ("lean"), both.
        .chain(
            [(true, false), (false, true), (true, true)].map(|(bits, lean)| TopkConfig {
                wide_bit_tests: bits,
                wide_lean: lean,
                ..one_pass
            }),
        )
        // The floor folded ("fold": its top level counted by sixteen threads, its digits
        // found with the loads at once), alone, with "bits" and "lean", and to its floor (set
        // against the one pass "to Floor").
        .chain(
            [(false, false), (true, true)].map(|(bits, lean)| TopkConfig {
                wide_floor_fold: true,
                wide_bit_tests: bits,
                wide_lean: lean,
                ..one_pass
            }),
        )
        .chain(profiled(
            TopkConfig {
                wide_floor_fold: true,
                ..one_pass
            },
            &[Floor],
        ))
        // Values written from the kept keys ("keys").
        .chain([one_pass, row_select].map(|c| TopkConfig {
            values_from_keys: true,
            ..c
        }))
        // The row select spread over workgroups per row ("split": 128 in all by default, at
        // most one per tile), with each sort, and to its floor and its gather (the last
        // workgroup's handoff included); with the buckets also one per tile ("sg=65536").
        .chain(
            [row_select, row_select_shuffled, row_select_buckets].map(|c| TopkConfig {
                select_split: true,
                ..c
            }),
        )
        .chain([TopkConfig {
            select_split: true,
            select_split_groups: Some(65536),
            ..row_select_buckets
        }])
        .chain(profiled(
            TopkConfig {
                select_split: true,
                ..row_select
            },
            &[Floor, Gather],
        ))
        .chain(radix_groups.iter().map(|&g| TopkConfig {
            radix_groups: Some(g),
            ..radix
        }))
        .chain(sort_workgroups.iter().map(|&t| TopkConfig {
            sort_workgroup: Some(t),
            ..radix
        }));
        for scfg in variants {
            if scfg.validate().is_err()
                || scfg.subgroups && !subgroups
                || !row_select_runs(ctx, &scfg)
            {
                continue;
            }
            let Some(mut case) = topk_case(ctx, "topk", scfg, scores.clone())? else {
                continue;
            };
            case.cpu = host.clone().map(|host| -> Box<dyn Fn()> {
                Box::new(move || {
                    std::hint::black_box(topk_cpu(&host, &cfg, 0, None).unwrap());
                })
            });
            cases.push(case);
        }
        if !with_baseline {
            continue;
        }
        let baseline = TopkBaseline::new(ctx, cfg)?;
        cases.push(Case {
            kernel: "topk_baseline",
            shape: format!("{rows}x{n} k={k}"),
            bytes: (rows * n * 4) as f64,
            flops: 0.0,
            record: Box::new(move |enc| baseline.encode(enc, &scores)),
            cpu: None,
            note: String::new(),
            samples: 0.0,
        });
    }
    Ok(cases)
}

/// The device's cost per dependent dispatch: 1, 16 and 64 back-to-back `rng_fill`s of 1024
/// floats into one buffer (each waits on the last), so launch gaps and barriers dominate, and
/// 64 into different buffers (no barrier needed). The yardstick for trading dispatches
/// against work (the radix path uses 6–8 per call; H200: 8.2 µs per dependent dispatch).
fn dispatch_overhead_cases(ctx: &GpuContext) -> Result<Vec<Case>> {
    let fill = std::rc::Rc::new(RngFill::new(ctx)?);
    // 64 tiny outputs: the dependent cases write the first one every time (each dispatch
    // waits on the last), the independent case writes a different one each time, so wgpu
    // needs no barrier between them: the gap between the two is the barrier's share.
    let outs = std::rc::Rc::new(
        (0..64)
            .map(|_| GpuBuffer::<f32>::zeroed(ctx, 1024, "bench.tiny"))
            .collect::<Result<Vec<_>>>()?,
    );
    Ok([(1usize, true), (16, true), (64, true), (64, false)]
        .into_iter()
        .map(|(count, dependent)| {
            let (fill, outs) = (fill.clone(), outs.clone());
            let kind = if dependent {
                "dependent"
            } else {
                "independent"
            };
            Case {
                kernel: "dispatch_overhead",
                shape: format!("{count} {kind} dispatches"),
                bytes: 0.0,
                flops: 0.0,
                record: Box::new(move |enc| {
                    (0..count).try_for_each(|i| {
                        let out = &outs[if dependent { 0 } else { i }];
                        fill.encode(enc, out, RngKey::default(), Distribution::Uniform)
                    })
                }),
                cpu: None,
                note: format!("per dispatch: median / {count}"),
                samples: 0.0,
            }
        })
        .collect())
}

/// `cfg` as the row select with its core sort, the subgroup tier's shuffled sort and the
/// bucket sort.
fn row_select_sorts(cfg: TopkConfig) -> [TopkConfig; 3] {
    let core = TopkConfig {
        strategy: Strategy::RowSelect,
        ..cfg
    };
    [
        core,
        TopkConfig {
            subgroups: true,
            ..core
        },
        TopkConfig {
            select_buckets: true,
            ..core
        },
    ]
}

/// Whether a row-select config (any other passes) runs on `ctx`'s device: its workgroup
/// within the device's, k within its slots.
fn row_select_runs(ctx: &GpuContext, cfg: &TopkConfig) -> bool {
    cfg.strategy != Strategy::RowSelect || cfg.select_slots(ctx).is_ok()
}

/// One timed `Topk` over the first `cfg.rows` rows of `scores` (n-long, f32). The note marks
/// the path `Strategy::Auto` would take (with the default radix chunking).
fn topk_case(
    ctx: &GpuContext,
    kernel: &'static str,
    cfg: TopkConfig,
    scores: std::rc::Rc<GpuBuffer<f32>>,
) -> Result<Option<Case>> {
    let auto_cfg = TopkConfig {
        strategy: Strategy::Auto,
        ..cfg
    };
    // Auto's pick: this strategy with every other setting at its default (no tuning knob,
    // profile or experiment).
    let plain = TopkConfig {
        rows: cfg.rows,
        n: cfg.n,
        k: cfg.k,
        strategy: cfg.strategy,
        ..Default::default()
    };
    let auto = cfg == plain && auto_cfg.strategy_on(ctx) == cfg.strategy_on(ctx);
    // The tuning knobs that are set, in this order.
    let groups: String = [
        cfg.radix_groups.map(|g| format!(" g={g}")),
        cfg.sort_workgroup
            .or(cfg.select_workgroup)
            .map(|t| format!(" t={t}")),
        cfg.select_split_groups.map(|g| format!(" sg={g}")),
        cfg.wide_rows.map(|r| format!(" r={r}")),
        cfg.wide_prefetch
            .map(|ahead| if ahead { " ahead" } else { " not ahead" }.to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let one_pass = cfg.strategy_on(ctx) == Strategy::OnePass;
    let tier: String = [
        (cfg.subgroups, " subgroups"),
        (!cfg.wide_tiles && one_pass, " 512"),
        (cfg.loads == Loads::Scalar && one_pass, " scalar"),
        (cfg.loads == Loads::Vec4 && one_pass, " quads"),
        (cfg.rank_sort && !one_pass, " rank"),
        (cfg.select_buckets, " buckets"),
        (cfg.select_split, " split"),
        (cfg.wide_bit_tests && one_pass, " bits"),
        (cfg.wide_lean && one_pass, " lean"),
        (cfg.wide_floor_fold && one_pass, " fold"),
        (cfg.values_from_keys, " keys"),
    ]
    .into_iter()
    .filter_map(|(on, label)| on.then_some(label))
    .collect();
    let order = if cfg.sorted { "" } else { " unsorted" };
    let order = match cfg.profile {
        Some(phase) => format!("{order} to {phase:?}"),
        None => order.to_string(),
    };
    let TopkConfig {
        rows,
        n,
        k,
        strategy,
        ..
    } = cfg;
    let shape = format!("{rows}x{n} k={k} {strategy:?}{groups}{order}{tier}");
    if !selected(kernel, &shape) {
        return Ok(None);
    }
    let topk = Topk::new(ctx, cfg)?;
    let out = topk.outputs()?;
    Ok(Some(Case {
        kernel,
        shape,
        bytes: (rows * n * 4) as f64,
        flops: 0.0,
        record: Box::new(move |enc| topk.encode(enc, TopkInput::new(&scores), &out)),
        cpu: None,
        note: if auto {
            "Strategy::Auto picks this".into()
        } else {
            String::new()
        },
        samples: 0.0,
    }))
}

/// Radix vs one pass (wide and 512-entry tiles, scalar and vec4 loads) over a grid of rows × n × k (random normal
/// scores): the data behind `Strategy::Auto`'s crossover. Opt-in (`--kernel topk_sweep`).
fn topk_sweep_cases(ctx: &GpuContext, size: Size) -> Result<Vec<Case>> {
    let (rows_set, n_set): (&[usize], &[usize]) = match size {
        Size::Small => (&[1, 16, 256], &[4096, 32768]),
        Size::Full => (&[1, 16, 64, 256, 1024, 4096], &[4096, 16384, 65536, 262144]),
    };
    let mut cases = Vec::new();
    for &n in n_set {
        // One buffer per n, big enough for the most rows that fit 256 MiB.
        let max_rows = rows_set
            .iter()
            .copied()
            .filter(|&r| r * n * 4 <= 256 << 20)
            .max()
            .unwrap_or(1);
        let scores = std::rc::Rc::new(random_scores(ctx, max_rows, n)?);
        for &rows in rows_set.iter().filter(|&&r| r <= max_rows) {
            for k in [8, 32, 128, 256, 512, 2048] {
                let radix = TopkConfig {
                    rows,
                    n,
                    k,
                    strategy: Strategy::Radix,
                    ..Default::default()
                };
                let one_pass = TopkConfig {
                    strategy: Strategy::OnePass,
                    ..radix
                };
                // The default one pass (wide tiles, vec4 loads here) and taking 4 rows per
                // workgroup; the row select with its core sort, the subgroup tier's shuffled
                // sort (where the adapter has subgroups), the bucket sort and split: the defaults
                // Auto chooses among and the opt-ins that might join them. (The scalar wide
                // and 512-entry tiles, in the sweeps up to session 16, left the sweep.)
                let rows_4 = TopkConfig {
                    wide_rows: Some(4),
                    ..one_pass
                };
                let [row_select, shuffled, buckets] = row_select_sorts(radix);
                // ... and spread over a workgroup per tile of its row, core and shuffled.
                let [split, split_shuffled] = [row_select, shuffled].map(|c| TopkConfig {
                    select_split: true,
                    ..c
                });
                let subgroups = ctx.capabilities().subgroups;
                // k = 2048: radix against the row selects only.
                for cfg in [
                    radix,
                    one_pass,
                    rows_4,
                    row_select,
                    shuffled,
                    buckets,
                    split,
                    split_shuffled,
                ] {
                    if cfg.validate().is_ok()
                        && row_select_runs(ctx, &cfg)
                        && (subgroups || !cfg.subgroups)
                    {
                        cases.extend(topk_case(ctx, "topk_sweep", cfg, scores.clone())?);
                    }
                }
            }
        }
    }
    Ok(cases)
}

/// q, k, v of `shape` filled with standard normals on the GPU (f32 storage).
fn random_qkv(ctx: &GpuContext, shape: &AttentionShape) -> Result<[GpuBuffer<f32>; 3]> {
    let fill = RngFill::new(ctx)?;
    let mut enc = ctx.encoder("fill");
    let mut make = |len, stream| -> Result<GpuBuffer<f32>> {
        let b = GpuBuffer::zeroed(ctx, len, "bench.qkv")?;
        let key = RngKey {
            stream,
            ..Default::default()
        };
        fill.encode(&mut enc, &b, key, Distribution::Normal)?;
        Ok(b)
    };
    let qkv = [
        make(shape.q_len(), 1)?,
        make(shape.kv_len(), 2)?,
        make(shape.kv_len(), 3)?,
    ];
    ctx.submit_and_wait(enc)?;
    Ok(qkv)
}

/// Causal self-attention shapes of issue 5: 8 heads, d = 64 (4 heads, n = 1024 on small).
fn attention_shapes(size: Size) -> &'static [usize] {
    match size {
        Size::Small => &[1024],
        Size::Full => &[16384, 65536],
    }
}

fn attention_heads(size: Size) -> usize {
    match size {
        Size::Small => 4,
        Size::Full => 8,
    }
}

fn dense_attention_cases(ctx: &GpuContext, size: Size) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    for &n in attention_shapes(size) {
        let shape = AttentionShape::new(attention_heads(size), n, n, 64);
        let cfg = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 0 });
        let kernel = DenseAttention::new(ctx, cfg)?;
        let [q, k, v] = random_qkv(ctx, &shape)?;
        let out = AttentionOutputs::new(ctx, &shape)?;
        cases.push(Case {
            kernel: "dense_attention",
            shape: format!("h{} n{n} d64 causal", shape.heads_q),
            bytes: (4 * shape.q_len() * 4) as f64,
            // QKᵀ and PV over the causal half.
            flops: 2.0 * (shape.heads_q * n * n * 64) as f64,
            record: Box::new(move |enc| kernel.encode(enc, Qkv::f32(&q, &k, &v), &out)),
            cpu: None,
            note: String::new(),
            samples: 0.0,
        });
    }
    Ok(cases)
}

/// Dense decode: one query per sequence and head against a long cache, one pass (one
/// workgroup per head) vs split-K as `DenseAttention::new` chooses.
fn dense_decode_cases(ctx: &GpuContext, size: Size) -> Result<Vec<Case>> {
    let (batch, heads_q, heads_kv, n) = match size {
        Size::Small => (2, 8, 2, 16384),
        Size::Full => (4, 32, 8, 65536), // K and V of 1 GiB each: one binding on every GPU
    };
    let shape = AttentionShape {
        batch,
        heads_q,
        heads_kv,
        n_q: 1,
        n_kv: n,
        head_dim: 128,
    };
    let cfg = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: n - 1 });
    let qkv = std::rc::Rc::new(random_qkv(ctx, &shape)?);
    let mut cases = Vec::new();
    // On a CPU adapter `new` does not split; time a split anyway for the comparison.
    let auto = DenseAttention::new(ctx, cfg)?;
    let split = match auto.key_splits() {
        1 => DenseAttention::with_key_splits(ctx, cfg, 32)?,
        _ => auto,
    };
    for kernel in [DenseAttention::with_key_splits(ctx, cfg, 1)?, split] {
        let out = AttentionOutputs::new(ctx, &shape)?;
        let splits = kernel.key_splits();
        let qkv = qkv.clone();
        cases.push(Case {
            kernel: "dense_attention",
            shape: format!("decode B{batch} H{heads_q}/{heads_kv} N{n} d128 splits={splits}"),
            // The cache dominates: k and v read once.
            bytes: (2 * shape.kv_len() * 4) as f64,
            flops: 4.0 * (shape.rows() * n * 128) as f64,
            record: Box::new(move |enc| {
                let [q, k, v] = &*qkv;
                kernel.encode(enc, Qkv::f32(q, k, v), &out)
            }),
            cpu: None,
            note: String::new(),
            samples: 0.0,
        });
    }
    Ok(cases)
}

fn topk_attention_cases(ctx: &GpuContext, size: Size) -> Result<Vec<Case>> {
    use knn_attention::kernels::topk_attention::Selection;
    let mut cases = Vec::new();
    for &n in attention_shapes(size) {
        let shape = AttentionShape::new(attention_heads(size), n, n, 64);
        let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 0 });
        let qkv = std::rc::Rc::new(random_qkv(ctx, &shape)?);
        for k in [32, 64] {
            for selection in [Selection::Fused, Selection::Blocked] {
                let cfg = TopkAttentionConfig {
                    selection,
                    ..TopkAttentionConfig::new(attn, KPolicy::Fixed(k))
                };
                let kernel = TopkAttention::new(ctx, cfg)?;
                let out = AttentionOutputs::new(ctx, &shape)?;
                let qkv = qkv.clone();
                cases.push(Case {
                    kernel: "topk_attention",
                    shape: format!("h{} n{n} d64 k{k} causal {selection:?}", shape.heads_q),
                    bytes: (4 * shape.q_len() * 4) as f64,
                    // QKᵀ over the causal half; the gather is negligible.
                    flops: (shape.heads_q * n * n * 64) as f64,
                    record: Box::new(move |enc| {
                        let [q, k, v] = &*qkv;
                        kernel.encode(enc, Qkv::f32(q, k, v), &out, None)
                    }),
                    cpu: None,
                    note: String::new(),
                    samples: 0.0,
                });
            }
        }
    }
    Ok(cases)
}

/// Exact flash-style backward of causal dense attention, the forward's outputs already on the
/// GPU: issue 7's baseline at its shapes.
fn dense_backward_cases(ctx: &GpuContext, size: Size) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    for &n in attention_shapes(size) {
        let shape = AttentionShape::new(attention_heads(size), n, n, 64);
        let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 0 });
        let [q, k, v] = random_qkv(ctx, &shape)?;
        let out = AttentionOutputs::new(ctx, &shape)?;
        let mut enc = ctx.encoder("forward");
        DenseAttention::new(ctx, attn)?.encode(&mut enc, Qkv::f32(&q, &k, &v), &out)?;
        ctx.submit_and_wait(enc)?;
        let back = DenseAttentionBackward::new(ctx, attn)?;
        let grads = GradOutputs::new(ctx, &attn)?;
        let [d_out, ..] = random_qkv(ctx, &shape)?;
        cases.push(Case {
            kernel: "dense_attention_backward",
            shape: format!("h{} n{n} d64 causal", shape.heads_q),
            // q, k, v, O, dO in; dQ, dK, dV out.
            bytes: (8 * shape.q_len() * 4) as f64,
            // The five n²·d products of a flash backward (S, dP, dV, dQ, dK), causal half.
            flops: 5.0 * (shape.heads_q * n * n * 64) as f64,
            record: Box::new(move |enc| {
                let inputs = DenseBackwardInputs {
                    qkv: Qkv::f32(&q, &k, &v),
                    forward: &out,
                    d_out: &d_out,
                };
                back.encode(enc, inputs, &grads)
            }),
            cpu: None,
            note: String::new(),
            samples: 0.0,
        });
    }
    Ok(cases)
}

/// Exact backward of causal top-k attention (k = 32), the forward's kept keys already on the
/// GPU: issue 7's shapes.
fn backward_cases(ctx: &GpuContext, size: Size) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    for &n in attention_shapes(size) {
        let shape = AttentionShape::new(attention_heads(size), n, n, 64);
        let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 0 });
        let fwd = TopkAttention::new(ctx, TopkAttentionConfig::new(attn, KPolicy::Fixed(32)))?;
        let [q, k, v] = random_qkv(ctx, &shape)?;
        let out = AttentionOutputs::new(ctx, &shape)?;
        let kept = KeptOutputs::new(ctx, shape.rows(), fwd.total_slots())?;
        let mut enc = ctx.encoder("forward");
        fwd.encode(&mut enc, Qkv::f32(&q, &k, &v), &out, Some(&kept))?;
        ctx.submit_and_wait(enc)?;
        let back = SparseAttentionBackward::new(ctx, attn, fwd.total_slots())?;
        let grads = GradOutputs::new(ctx, &attn)?;
        let d_out = out.out;
        cases.push(Case {
            kernel: "sparse_attention_backward",
            shape: format!("h{} n{n} d64 k32 causal", shape.heads_q),
            bytes: (shape.rows() * 32 * 64 * 4 * 4) as f64,
            flops: 0.0,
            record: Box::new(move |enc| {
                let inputs = BackwardInputs {
                    qkv: Qkv::f32(&q, &k, &v),
                    d_out: &d_out,
                    kept: &kept,
                };
                back.encode(enc, inputs, &grads)
            }),
            cpu: None,
            note: String::new(),
            samples: 0.0,
        });
    }
    Ok(cases)
}

/// Sparse decode: one query per sequence and head against a long cache, k random keys each,
/// f16 where the adapter has it. Multi-query (one kv head) keeps the full-size cache at 1 GiB.
fn gather_attention_cases(ctx: &GpuContext, size: Size) -> Result<Vec<Case>> {
    let (batch, heads, n, k, d) = match size {
        Size::Small => (4, 4, 8192, 256, 128),
        Size::Full => (64, 16, 65536, 2048, 128),
    };
    let storage = if ctx.capabilities().f16 {
        ElemType::F16
    } else {
        ElemType::F32
    };
    let shape = AttentionShape {
        batch,
        heads_q: heads,
        heads_kv: 1,
        n_q: 1,
        n_kv: n,
        head_dim: d,
    };
    let kernel = GatherAttention::new(
        ctx,
        GatherConfig::new(AttentionConfig::new(shape).with_storage(storage), k),
    )?;
    let mut rng = StdRng::seed_from_u64(7);
    let mut host =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    let q = Tensor::upload(ctx, storage, &host(shape.q_len()), "bench.q")?;
    let kk = Tensor::upload(ctx, storage, &host(shape.kv_len()), "bench.k")?;
    let v = Tensor::upload(ctx, storage, &host(shape.kv_len()), "bench.v")?;
    let idx: Vec<u32> = (0..shape.rows() * k)
        .map(|_| rng.random_range(0..n as u32))
        .collect();
    let indices = GpuBuffer::from_slice(ctx, &idx, "bench.indices")?;
    let out = AttentionOutputs::new(ctx, &shape)?;
    Ok(vec![Case {
        kernel: "gather_attention",
        shape: format!("B{batch} H{heads}/1 N{n} k{k} d{d} {storage:?}"),
        bytes: (shape.rows() * k * d * 2 * storage.bytes()) as f64,
        flops: 0.0,
        record: Box::new(move |enc| {
            let inputs = GatherInputs {
                qkv: Qkv {
                    q: q.elems(),
                    k: kk.elems(),
                    v: v.elems(),
                },
                indices: &indices,
                k_rows: None,
                block_table: None,
            };
            kernel.encode(enc, inputs, &out, None)
        }),
        cpu: None,
        note: String::new(),
        samples: 0.0,
    }])
}

/// Normal scores `[rows, n]` filled on the GPU.
fn random_scores(ctx: &GpuContext, rows: usize, n: usize) -> Result<GpuBuffer<f32>> {
    let fill = RngFill::new(ctx)?;
    let scores = GpuBuffer::<f32>::zeroed(ctx, rows * n, "bench.scores")?;
    let mut enc = ctx.encoder("fill");
    fill.encode(&mut enc, &scores, RngKey::default(), Distribution::Normal)?;
    ctx.submit_and_wait(enc)?;
    Ok(scores)
}

/// L = 16 samples per row: full-row Gumbel-max vs the lazy sampler (top-k included), then
/// the lazy sampler's cost and tail keys touched as n grows.
fn sampling_cases(ctx: &GpuContext, size: Size, want: &dyn Fn(&str) -> bool) -> Result<Vec<Case>> {
    let (rows, n) = match size {
        Size::Small => (64, 65536),
        Size::Full => (4096, 65536),
    };
    let mut cases = Vec::new();
    let scores = std::rc::Rc::new(random_scores(ctx, rows, n)?);
    let cfg = SamplerConfig::new(rows, n, 16, 1);
    if want("gumbel_max") {
        let gm = GumbelMax::new(ctx, cfg)?;
        let out = GpuBuffer::<u32>::zeroed(ctx, rows * 16, "bench.samples")?;
        let sc = scores.clone();
        cases.push(Case {
            kernel: "gumbel_max",
            shape: format!("{rows}x{n} L=16"),
            bytes: (rows * n * 4) as f64,
            flops: 0.0,
            record: Box::new(move |enc| gm.encode(enc, &sc, None, &out)),
            cpu: None,
            note: String::new(),
            samples: (rows * 16) as f64,
        });
    }
    if !want("lazy_gumbel") {
        return Ok(cases);
    }
    let sizes: &[(usize, usize)] = match size {
        Size::Small => &[(rows, n), (16, 1024), (16, 16384), (16, 262144)],
        Size::Full => &[
            (rows, n),
            (256, 1024),
            (256, 16384),
            (256, 262144),
            (256, 1 << 20),
        ],
    };
    for &(rows, n) in sizes {
        let scores = random_scores(ctx, rows, n)?;
        let k = (n as f64).sqrt().ceil() as usize;
        let cfg = SamplerConfig::new(rows, n, 16, 1);
        let lazy = LazyGumbel::new(ctx, cfg, k)?;
        let out = LazySamples::new(ctx, rows, 16)?;
        let mut enc = ctx.encoder("touched");
        lazy.encode(&mut enc, &scores, None, &out)?;
        ctx.submit_and_wait(enc)?;
        let touched = out.touched.read(ctx)?;
        let mean = touched.iter().map(|&t| f64::from(t)).sum::<f64>() / touched.len() as f64;
        cases.push(Case {
            kernel: "lazy_gumbel",
            shape: format!("{rows}x{n} L=16 k={k}"),
            bytes: (rows * n * 4) as f64,
            flops: 0.0,
            record: Box::new(move |enc| lazy.encode(enc, &scores, None, &out)),
            cpu: None,
            note: format!(
                "tail keys/sample {mean:.1} (bound (n-k)/k = {:.1}); keys read/sample {:.1} of {n}",
                (n - k) as f64 / k as f64,
                k as f64 + mean
            ),
            samples: (rows * 16) as f64,
        });
    }
    Ok(cases)
}

/// Leverage scores and the universal set (|U| = 64) of 8 heads × n keys, d = 64 (one pass
/// of Gram partials, the per-head factor, one scoring pass, top-k): issue 8's shape.
fn lev_attention_cases(ctx: &GpuContext, size: Size) -> Result<Vec<Case>> {
    let (heads, n) = match size {
        Size::Small => (2, 16384),
        Size::Full => (8, 65536),
    };
    let shape = AttentionShape::new(heads, 1, n, 64);
    let lev = LevAttention::new(
        ctx,
        LevAttentionConfig::new(AttentionConfig::new(shape), 64),
    )?;
    let [_, k, _] = random_qkv(ctx, &shape)?;
    Ok(vec![Case {
        kernel: "lev_attention",
        shape: format!("h{heads} n{n} d64 |U|=64 (scores + U)"),
        // K is read twice: Gram partials and scoring.
        bytes: (2 * shape.kv_len() * 4) as f64,
        flops: (2 * 2 * heads * n * 64 * 64) as f64,
        record: Box::new(move |enc| {
            lev.append(enc, &k, 0, n)?;
            lev.refresh(enc, &k, n)
        }),
        cpu: None,
        note: String::new(),
        samples: 0.0,
    }])
}

/// A probe to build: entry point, its pipeline constants, workgroups, bytes moved, label.
type ProbeSpec = (&'static str, Vec<(&'static str, f64)>, u32, f64, String);

/// Rounds of the barrier_chain probe (two barriers each), its pipeline constant.
const BARRIER_STEPS: u32 = 1024;

/// The vec4 copy of a `rows × n` probe's input to its output (read + write).
fn copy_spec(rows: usize, n: usize) -> ProbeSpec {
    let words = (rows * n / 4) as u32;
    (
        "copy_vec4",
        vec![],
        words.div_ceil(256 * 4),
        2.0 * (rows * n * 4) as f64,
        format!("{} MiB vec4 copy", (rows * n * 4) >> 20),
    )
}

/// `topk_one_pass_wide`'s read of the first `groups` rows of `n`: vec4 loads, with or without
/// the next tile loaded ahead and a barrier per tile.
fn wide_read_spec(groups: usize, n: usize, prefetch: bool, barrier: bool) -> ProbeSpec {
    let on = |b: bool| if b { "on" } else { "off" };
    (
        "read_rows_regs",
        vec![
            ("QUADS", 1.0),
            ("PREFETCH", f64::from(u8::from(prefetch))),
            ("BARRIER", f64::from(u8::from(barrier))),
        ],
        groups as u32,
        (groups * n * 4) as f64,
        format!(
            "{groups}x{n} rows, 4 vec4/thread, prefetch {}, barrier {}",
            on(prefetch),
            on(barrier)
        ),
    )
}

/// Every probe over a `rows × n` input, the copy first ([`COPY`]): one-workgroup-per-row
/// reads shaped like `topk_one_pass` at two prefetch depths and with vec4 loads, and like
/// `topk_one_pass_wide` (registers, scalar and vec4 loads; with and without its prefetch and
/// barrier, alone, one row per core and all rows), and a chain of barriers in one workgroup
/// and in one per row.
fn row_probe_specs(rows: usize, n: usize) -> Vec<ProbeSpec> {
    let bytes = (rows * n * 4) as f64;
    let mut probes: Vec<ProbeSpec> = vec![
        copy_spec(rows, n),
        (
            "read_rows",
            vec![("DEPTH", 2.0)],
            rows as u32,
            bytes,
            format!("{rows}x{n} rows, prefetch 2/thread"),
        ),
        (
            "read_rows",
            vec![("DEPTH", 8.0)],
            rows as u32,
            bytes,
            format!("{rows}x{n} rows, prefetch 8/thread"),
        ),
        (
            "read_rows_vec4",
            vec![("DEPTH", 2.0)],
            rows as u32,
            bytes,
            format!("{rows}x{n} rows, vec4 loads, 2/thread"),
        ),
        (
            "read_rows_regs",
            vec![("QUADS", 0.0)],
            rows as u32,
            bytes,
            format!("{rows}x{n} rows, 16/thread in registers"),
        ),
        (
            "read_rows_regs",
            vec![("QUADS", 1.0)],
            rows as u32,
            bytes,
            format!("{rows}x{n} rows, 4 vec4/thread in registers"),
        ),
        (
            "barrier_chain",
            vec![("BARRIER_STEPS", BARRIER_STEPS as f64)],
            1,
            0.0,
            format!("1 workgroup, {} barriers", 2 * BARRIER_STEPS),
        ),
        (
            "barrier_chain",
            vec![("BARRIER_STEPS", BARRIER_STEPS as f64)],
            rows as u32,
            0.0,
            format!("{rows} workgroups, {} barriers each", 2 * BARRIER_STEPS),
        ),
    ];
    // Does a barrier make the wide pass wait for the next tile it loaded ahead? Alone (one
    // row), one row per core (132: an H100's or H200's SMs) and all rows.
    for groups in [1, 132.min(rows), rows] {
        for (prefetch, barrier) in [(true, true), (true, false), (false, true), (false, false)] {
            probes.push(wide_read_spec(groups, n, prefetch, barrier));
        }
        probes.push((
            "read_rows_regs",
            vec![("QUADS", 1.0), ("DOUBLE", 1.0)],
            groups as u32,
            (groups * n * 4) as f64,
            format!("{groups}x{n} rows, 8 vec4/thread, no prefetch, barrier on"),
        ));
    }
    probes
}

/// Probes of examples/bench_bandwidth.wgsl on a `rows × n` f32 input (`specs`, each compiled
/// once): what WGSL reaches on this device at all, as ceilings for our kernels (the row
/// reads need n to be a multiple of 4096).
struct Probe {
    ctx: GpuContext,
    bind_group: wgpu::BindGroup,
    /// (entry point, its pipeline, workgroups, bytes moved, shape label)
    entries: Vec<(&'static str, wgpu::ComputePipeline, u32, f64, String)>,
    /// src (the f32 input), dst (the copy's output, or the reads' per-row results)
    buffers: [GpuBuffer<f32>; 2],
}

impl Probe {
    fn new(ctx: &GpuContext, rows: usize, n: usize, specs: Vec<ProbeSpec>) -> Result<Self> {
        use knn_attention::shader::{self, BindingKind::*, Module, Tier};
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        struct ProbeParams {
            rows: u32,
            n: u32,
            words: u32,
            pad: u32,
        }
        let source = include_str!("bench_bandwidth.wgsl");
        let module = Module::new(ctx, "bench_bandwidth", source, Tier::Core)?;
        let layout =
            shader::bind_group_layout(ctx, "bench_bandwidth", &[Uniform, Read, ReadWrite, Read]);
        let pl = shader::pipeline_layout(ctx, "bench_bandwidth", &[&layout]);
        let src = random_scores(ctx, rows, n)?;
        // The copy's output, or only the one float per row (or workgroup) the others write.
        let copies = specs.iter().any(|spec| spec.0 == "copy_vec4");
        let dst_len = if copies {
            rows * n
        } else {
            rows.next_multiple_of(4)
        };
        let dst = GpuBuffer::<f32>::zeroed(ctx, dst_len, "bench.copy_dst")?;
        let params = ProbeParams {
            rows: rows as u32,
            n: n as u32,
            words: (rows * n / 4) as u32,
            pad: 0,
        };
        let u = shader::uniform(ctx, &params);
        let bind_group = shader::bind_group_with_layout(
            ctx,
            &layout,
            &[
                u.as_entire_binding(),
                src.binding(),
                dst.binding(),
                src.binding(),
            ],
        );
        let mut entries = Vec::new();
        for (entry, constants, groups, moved, shape) in specs {
            let pipeline = module.pipeline_with_constants(ctx, entry, Some(&pl), &constants)?;
            entries.push((entry, pipeline, groups, moved, shape));
        }
        Ok(Probe {
            ctx: ctx.clone(),
            bind_group,
            entries,
            buffers: [src, dst],
        })
    }

    /// Records entry `i` (0: the copy).
    fn record(&self, enc: &mut wgpu::CommandEncoder, i: usize) {
        let (entry, pipeline, groups, ..) = &self.entries[i];
        knn_attention::shader::dispatch(
            &self.ctx,
            enc,
            entry,
            pipeline,
            &[&self.bind_group],
            *groups,
        );
    }
}

/// The probes as cases on a 1 GiB input (64 MiB on CPU adapters). The copy is also timed by
/// wall clock (20 in one submit) as a check on the timestamps.
fn bandwidth_cases(ctx: &GpuContext, size: Size) -> Result<Vec<Case>> {
    let (rows, n) = match size {
        Size::Small => (256, 65536),
        Size::Full => (4096, 65536),
    };
    let probe = std::rc::Rc::new(Probe::new(ctx, rows, n, row_probe_specs(rows, n))?);
    let wall = {
        let run = |reps| -> Result<f64> {
            let mut enc = ctx.encoder("bandwidth.wall");
            for _ in 0..reps {
                probe.record(&mut enc, COPY);
            }
            let t = std::time::Instant::now();
            ctx.submit_and_wait(enc)?;
            Ok(t.elapsed().as_secs_f64() * 1e3)
        };
        run(2)?;
        run(20)? / 20.0
    };
    let mut cases = Vec::new();
    for (i, (entry, _, _, moved, _)) in probe.entries.iter().enumerate() {
        let note = match (i, *entry) {
            (0, _) => format!(
                "wall clock, 20 in one submit: {wall:.4} ms each ({:.0} GB/s)",
                moved / wall / 1e6
            ),
            (_, "barrier_chain") => format!("per barrier: median / {}", 2 * BARRIER_STEPS),
            _ => String::new(),
        };
        cases.push(probe_case(&probe, i, note));
    }
    // Rows of one wide tile, as 65536 × 4096 top-k reads them: the read alone; and read by 32
    // threads per row, eight rows per workgroup and no barrier, as a subgroup per row would
    // (alone, and with each entry's key and a compare).
    let one_tile_rows = rows * n / 4096;
    let lanes = |keys: bool| -> ProbeSpec {
        (
            "read_rows_lanes",
            vec![("LANES", 32.0), ("KEYS", f64::from(u8::from(keys)))],
            (one_tile_rows / 8) as u32,
            (one_tile_rows * 4096 * 4) as f64,
            format!(
                "{one_tile_rows}x4096 rows, 32 threads/row, 4 vec4 in flight{}",
                if keys { ", keys" } else { "" }
            ),
        )
    };
    let specs = vec![
        wide_read_spec(one_tile_rows, 4096, false, true),
        lanes(false),
        lanes(true),
    ];
    let short = std::rc::Rc::new(Probe::new(ctx, one_tile_rows, 4096, specs)?);
    for i in 0..short.entries.len() {
        cases.push(probe_case(&short, i, String::new()));
    }
    Ok(cases)
}

/// Entry `i` of `probe` as a bandwidth case.
fn probe_case(probe: &std::rc::Rc<Probe>, i: usize, note: String) -> Case {
    let (_, _, _, bytes, shape) = &probe.entries[i];
    let (bytes, shape) = (*bytes, shape.clone());
    let probe = probe.clone();
    Case {
        kernel: "bandwidth",
        shape,
        bytes,
        flops: 0.0,
        record: Box::new(move |enc| {
            probe.record(enc, i);
            Ok(())
        }),
        cpu: None,
        note,
        samples: 0.0,
    }
}

/// Adds a kernel's cases, or says why it has none (a shape over this device's limits, say)
/// and goes on, so one kernel cannot cost a device run all the others.
fn add(cases: &mut Vec<Case>, kernel: &str, built: Result<Vec<Case>>) {
    match built {
        Ok(built) => cases.extend(built),
        Err(e) => println!("{kernel}: no cases on this device: {e}"),
    }
}

/// Device-to-device copy bandwidth in GB/s (bytes read + written per second, median of
/// `reps`): the faster of `copy_buffer_to_buffer` and the WGSL vec4 copy ([`Probe`]), the
/// ceiling a memory-bound kernel is reported against when `--peak-gbps` is not given. Both,
/// because each loses somewhere: on an H200 (NVIDIA Vulkan 580.159.04) the buffer copy ran at
/// 844 GB/s and the shader at 4172 (PyTorch's copy: 4137); on lavapipe the buffer copy (a
/// memcpy) wins. Both copies move `probe`'s buffers ([`copy_probe`]).
fn copy_bandwidth(ctx: &GpuContext, probe: &Probe, warmup: usize, reps: usize) -> Result<f64> {
    let [src, dst] = &probe.buffers;
    let bytes = (src.len() * 4) as u64;
    let buffer_copy = time_gpu(ctx, warmup, reps, |enc| {
        enc.copy_buffer_to_buffer(src.buffer(), 0, dst.buffer(), 0, bytes);
        Ok(())
    })?;
    let shader_copy = time_gpu(ctx, warmup, reps, |enc| {
        probe.record(enc, COPY);
        Ok(())
    })?;
    let gbps = |t: &knn_attention::timer::Timing| 2.0 * bytes as f64 / t.median_ms() / 1e6;
    let (a, b) = (gbps(&buffer_copy), gbps(&shader_copy));
    println!("copy bandwidth: copy_buffer_to_buffer {a:.1} GB/s, WGSL vec4 copy {b:.1} GB/s");
    Ok(a.max(b))
}

/// The probe whose vec4 copy [`copy_bandwidth`] times and [`spin_up`] runs: 256 MiB on GPUs,
/// 64 MiB on CPU adapters.
fn copy_probe(ctx: &GpuContext, size: Size) -> Result<Probe> {
    let floats: usize = match size {
        Size::Small => 16 << 20,
        Size::Full => 64 << 20,
    };
    let rows = floats / 4096;
    Probe::new(ctx, rows, 4096, vec![copy_spec(rows, 4096)])
}

/// The vec4 copy's entry in the probes that have it (first in [`row_probe_specs`], alone in
/// [`copy_probe`]).
const COPY: usize = 0;

/// Keeps the GPU busy copying `probe` for `ms` of wall time before anything is timed: on the
/// H200 of 2026-11-27 the first cases of a run timed up to 4× slow (a chain of 2048 barriers
/// 252 µs cold, 63 µs warm; the first radix top-k 13.4 ms, the same kernel unsorted right
/// after 4.4 ms). One second of this did not remove it while it ran before the cases were
/// built: every process's first cases stayed slow, the throwaway process that
/// scripts/on_gpu.sh runs first notwithstanding, but a process that went on to time at once
/// after it was fast. It now runs after the building (unmeasured on a GPU so far).
fn spin_up(ctx: &GpuContext, probe: &Probe, ms: u64) -> Result<()> {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_millis(ms) {
        let mut enc = ctx.encoder("spin_up");
        for _ in 0..20 {
            probe.record(&mut enc, COPY);
        }
        ctx.submit_and_wait(enc)?;
    }
    Ok(())
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // SAFETY: measuring what the checks cost is this flag's purpose; `default` and any
    // setting with `bounds` on add no risk to the library's default.
    let ctx = unsafe { GpuContext::new_blocking()?.with_shader_checks(args.shader_checks) };
    let info = ctx.adapter_info.clone();
    let size = args.size.unwrap_or(if ctx.is_cpu_adapter() {
        Size::Small
    } else {
        Size::Full
    });
    println!(
        "adapter: {} ({:?}, {:?}), driver: {} {}",
        info.name, info.backend, info.device_type, info.driver, info.driver_info
    );
    println!("capabilities: {:?}", ctx.capabilities());
    println!("shader checks: {}", ctx.shader_checks());
    ONLY.set(args.only.clone()).expect("set once");
    let named = |k: &str| args.kernel.iter().any(|x| x == k);
    let want = |k: &str| args.kernel.is_empty() || named(k);
    let mut cases = Vec::new();
    if want("rng_fill") {
        add(&mut cases, "rng_fill", rng_fill_cases(&ctx, size));
    }
    if named("bandwidth") {
        add(&mut cases, "bandwidth", bandwidth_cases(&ctx, size));
    }
    if want("dispatch_overhead") {
        add(
            &mut cases,
            "dispatch_overhead",
            dispatch_overhead_cases(&ctx),
        );
    }
    if want("topk") {
        add(
            &mut cases,
            "topk",
            topk_cases(
                &ctx,
                size,
                args.cpu,
                &args.radix_groups,
                &args.sort_workgroup,
                !args.no_baseline,
            ),
        );
    }
    if named("topk_sweep") {
        add(&mut cases, "topk_sweep", topk_sweep_cases(&ctx, size));
    }
    if want("dense_attention") {
        add(
            &mut cases,
            "dense_attention",
            dense_attention_cases(&ctx, size),
        );
        add(
            &mut cases,
            "dense_attention (decode)",
            dense_decode_cases(&ctx, size),
        );
    }
    if want("topk_attention") {
        add(
            &mut cases,
            "topk_attention",
            topk_attention_cases(&ctx, size),
        );
    }
    if want("gather_attention") {
        add(
            &mut cases,
            "gather_attention",
            gather_attention_cases(&ctx, size),
        );
    }
    if want("dense_attention_backward") {
        add(
            &mut cases,
            "dense_attention_backward",
            dense_backward_cases(&ctx, size),
        );
    }
    if want("sparse_attention_backward") {
        add(
            &mut cases,
            "sparse_attention_backward",
            backward_cases(&ctx, size),
        );
    }
    if want("lev_attention") {
        add(&mut cases, "lev_attention", lev_attention_cases(&ctx, size));
    }
    if want("gumbel_max") || want("lazy_gumbel") {
        add(
            &mut cases,
            "gumbel_max/lazy_gumbel",
            sampling_cases(&ctx, size, &want),
        );
    }
    cases.retain(|c| selected(c.kernel, &c.shape));
    let spin = args
        .spin_up_ms
        .unwrap_or(if ctx.is_cpu_adapter() { 0 } else { 1000 });
    // After every case is built: building them (pipelines, GiB inputs filled) leaves the GPU
    // idle for seconds, and on an H200 the first probes after that ran 2.3-5x slow (even the
    // barrier chain) when the spin-up came before the building. One copy probe serves the
    // spin-up and the bandwidth measurement.
    let probe = copy_probe(&ctx, size)?;
    spin_up(&ctx, &probe, spin)?;
    let peak_gbps = match args.peak_gbps {
        Some(p) => p,
        None => {
            let p = copy_bandwidth(&ctx, &probe, args.warmup, args.reps.max(3))?;
            println!(
                "measured copy bandwidth: {p:.1} GB/s, the faster copy (the % peak column; \
                 --peak-gbps overrides)"
            );
            p
        }
    };
    println!(
        "{:<25} {:<30} {:>6} {:>10} {:>10} {:>10} {:>9} {:>8} {:>7} {:>10}",
        "kernel",
        "shape",
        "clock",
        "median ms",
        "min ms",
        "max ms",
        "GB/s",
        "TFLOP/s",
        "% peak",
        "CPU ref ms"
    );
    // Written after every case, so a run cut short (a device time limit) keeps what it measured.
    let mut report = Report {
        adapter: info.name,
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: info.driver,
        driver_info: info.driver_info,
        size: format!("{size:?}"),
        shader_checks: ctx.shader_checks().to_string(),
        date_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        peak_gbps,
        results: Vec::new(),
    };
    for mut case in cases {
        let t = time_gpu(&ctx, args.warmup, args.reps, &mut case.record)?;
        let gbps = case.bytes / t.median_ms() / 1e6;
        let tflops = case.flops / t.median_ms() / 1e9;
        let pct = (case.bytes > 0.0).then(|| 100.0 * gbps / peak_gbps);
        let cpu_ms = case.cpu.as_ref().filter(|_| args.cpu).map(|f| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        });
        let clock = match t.clock {
            Clock::GpuTimestamps => "gpu",
            Clock::Wall => "wall",
        };
        println!(
            "{:<25} {:<30} {:>6} {:>10.4} {:>10.4} {:>10.4} {:>9.2} {:>8.3} {:>7} {:>10}",
            case.kernel,
            case.shape,
            clock,
            t.median_ms(),
            t.min_ms(),
            t.max_ms(),
            gbps,
            tflops,
            pct.map_or("-".into(), |p| format!("{p:.1}")),
            cpu_ms.map_or("-".into(), |c| format!("{c:.2}"))
        );
        let mut note = case.note.clone();
        if case.samples > 0.0 {
            note = format!(
                "{:.3e} samples/s; {note}",
                case.samples / t.median_ms() * 1e3
            );
        }
        if !note.is_empty() {
            println!("{:<25} {note}", "");
        }
        report.results.push(Row {
            kernel: case.kernel,
            shape: case.shape,
            clock,
            median_ms: t.median_ms(),
            min_ms: t.min_ms(),
            max_ms: t.max_ms(),
            gbps,
            tflops,
            pct_of_peak: pct,
            cpu_reference_ms: cpu_ms,
            note,
        });
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        }
    }
    if named("topk_stages") {
        match topk_stage_rows(&ctx, size, args.warmup, args.reps) {
            Ok(rows) => {
                for r in rows {
                    println!(
                        "{:<25} {:<50} {:>10.4} {:>10.4} {:>10.4}",
                        r.kernel, r.shape, r.median_ms, r.min_ms, r.max_ms
                    );
                    report.results.push(r);
                }
                if let Some(path) = &args.json {
                    std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
                }
            }
            Err(e) => println!("topk_stages: {e}"),
        }
    }
    if let Some(path) = &args.json {
        println!("wrote {}", path.display());
    }
    Ok(())
}
