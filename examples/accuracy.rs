//! Accuracy of kNN (top-k) attention on real attention data (`../shared/data`): relative
//! output error against exact attention and the softmax mass the kept keys capture, for fixed
//! k, k = ⌈√n⌉ and k = ⌈α·n^C⌉, per layer. Writes a markdown table to stdout and
//! `accuracy.csv` and `accuracy.png` to `--out` (default `target/accuracy`).
//!
//! `cargo run --release --example accuracy [-- --cpu] [--alpha 1 --c 0.75]`
//!
//! Runs on the GPU when there is one (the CPU reference otherwise, or with `--cpu`).

#[path = "../tests/common/data.rs"]
#[allow(dead_code)]
mod data;

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Parser;
use knn_attention::attention::{AttentionConfig, SparseAttentionOutput};
use knn_attention::kernels::topk_attention::{KPolicy, TopkAttention, TopkAttentionConfig};
use knn_attention::reference::topk_attention::topk_attention;
use knn_attention::{AttentionShape, GpuContext};
use plotters::prelude::*;

#[derive(Parser)]
struct Args {
    /// Use the CPU reference even when a GPU is present.
    #[arg(long)]
    cpu: bool,
    /// α of the n^C policy.
    #[arg(long, default_value_t = 1.0)]
    alpha: f64,
    /// C of the n^C policy.
    #[arg(long, default_value_t = 0.75)]
    c: f64,
    /// Output folder for the CSV and PNG.
    #[arg(long, default_value = "target/accuracy")]
    out: PathBuf,
    /// TTF font for the plot's text.
    #[arg(
        long,
        default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    )]
    font: PathBuf,
}

/// One measured point.
struct Row {
    set: &'static str,
    layer: usize,
    policy: String,
    k: usize,
    median_rel_err: f64,
    mean_mass: f64,
}

const CAPTURES: [(&str, usize, &str); 7] = [
    ("gpl3", 0, "gpl3-layer0.safetensors"),
    ("gpl3", 1, "gpl3-layer1.safetensors"),
    ("gpl3", 2, "gpl3-layer2.safetensors"),
    ("gpl3", 3, "gpl3-layer3.safetensors"),
    ("gpl3", 4, "gpl3-layer4.safetensors"),
    ("gpl3", 5, "gpl3-layer5.safetensors"),
    ("gpl3-long", 3, "gpl3-long-layer3.safetensors"),
];

/// Median over rows of ‖o − o*‖ / ‖o*‖, and mean over rows of exp(lse_k − lse*): the exact
/// softmax probability of the kept keys.
fn score(c: &data::Capture, r: &SparseAttentionOutput) -> (f64, f64) {
    let d = c.head_dim;
    let mut errs: Vec<f64> = (0..c.heads * c.tokens)
        .map(|row| {
            let (o, e) = (&r.out[row * d..][..d], &c.out[row * d..][..d]);
            let diff: f64 = o.iter().zip(e).map(|(a, b)| f64::from(a - b).powi(2)).sum();
            let norm: f64 = e.iter().map(|b| f64::from(*b).powi(2)).sum();
            (diff / norm.max(1e-30)).sqrt()
        })
        .collect();
    errs.sort_by(f64::total_cmp);
    let mass: f64 = r
        .lse
        .iter()
        .zip(&c.lse)
        .map(|(a, b)| f64::from(a - b).exp())
        .sum::<f64>()
        / r.lse.len() as f64;
    (errs[errs.len() / 2], mass)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let ctx = if args.cpu {
        None
    } else {
        GpuContext::new_blocking()
            .inspect_err(|e| eprintln!("no GPU ({e}); using the CPU reference"))
            .ok()
    };
    match &ctx {
        Some(ctx) => eprintln!(
            "adapter: {} ({:?})",
            ctx.adapter_info.name, ctx.adapter_info.backend
        ),
        None => eprintln!("CPU reference"),
    }
    let policies = [
        ("k=8", KPolicy::Fixed(8)),
        ("k=16", KPolicy::Fixed(16)),
        ("k=32", KPolicy::Fixed(32)),
        ("k=64", KPolicy::Fixed(64)),
        ("k=128", KPolicy::Fixed(128)),
        ("k=√n", KPolicy::Sqrt),
        (
            "k=α·n^C",
            KPolicy::Power {
                alpha: args.alpha,
                c: args.c,
            },
        ),
    ];
    let mut rows = Vec::new();
    for (set, layer, file) in CAPTURES {
        let Some(c) = data::load(file) else {
            continue;
        };
        let shape = AttentionShape::new(c.heads, c.tokens, c.tokens, c.head_dim);
        let attn = AttentionConfig::new(shape).with_scale(c.scale);
        for (name, policy) in policies {
            let cfg = TopkAttentionConfig::new(attn, policy);
            let r = match &ctx {
                Some(ctx) => TopkAttention::new(ctx, cfg)?.run(&c.q, &c.k, &c.v)?,
                None => topk_attention(&cfg, (&c.q, &c.k, &c.v))?,
            };
            let (median_rel_err, mean_mass) = score(&c, &r);
            rows.push(Row {
                set,
                layer,
                policy: name.into(),
                k: policy.k_for(c.tokens),
                median_rel_err,
                mean_mass,
            });
        }
    }
    if rows.is_empty() {
        return Err("no captures found (set KNN_ATTENTION_DATA)".into());
    }

    println!("| set | layer | policy | k | median rel. error | mean mass |");
    println!("|---|---|---|---|---|---|");
    let mut csv = String::from("set,layer,policy,k,median_rel_err,mean_mass\n");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {:.4} | {:.3} |",
            r.set, r.layer, r.policy, r.k, r.median_rel_err, r.mean_mass
        );
        writeln!(
            csv,
            "{},{},{},{},{},{}",
            r.set, r.layer, r.policy, r.k, r.median_rel_err, r.mean_mass
        )?;
    }
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("accuracy.csv"), csv)?;
    match std::fs::read(&args.font) {
        Ok(font) => {
            plotters::style::register_font(
                "sans-serif",
                FontStyle::Normal,
                Box::leak(font.into_boxed_slice()),
            )
            .map_err(|_| "invalid font")?;
            plot(&rows, &args.out.join("accuracy.png"))?;
            eprintln!("wrote {}", args.out.join("accuracy.png").display());
        }
        Err(e) => eprintln!("no plot: font {}: {e} (pass --font)", args.font.display()),
    }
    eprintln!("wrote {}", args.out.join("accuracy.csv").display());
    Ok(())
}

/// Median relative error against k (log-log), one line per capture; the √n and n^C policies
/// are the marked points.
fn plot(rows: &[Row], path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let (kmin, kmax) = rows.iter().fold((f64::MAX, 0f64), |(a, b), r| {
        (a.min(r.k as f64), b.max(r.k as f64))
    });
    let (emin, emax) = rows.iter().fold((f64::MAX, 0f64), |(a, b), r| {
        (a.min(r.median_rel_err), b.max(r.median_rel_err))
    });
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "kNN attention on MiniLM (gpl3): error vs k",
            ("sans-serif", 24),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (kmin * 0.8..kmax * 1.25).log_scale(),
            (emin * 0.8..emax * 1.25).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("k (keys kept per query); triangles: the √n and α·n^C policies")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y}"))
        .y_desc("median relative output error")
        .label_style(("sans-serif", 14))
        .draw()?;
    let mut captures: Vec<(&str, usize)> = rows.iter().map(|r| (r.set, r.layer)).collect();
    captures.dedup();
    for (i, (set, layer)) in captures.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mut fixed: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.set == set && r.layer == layer && !r.policy.contains('n'))
            .map(|r| (r.k as f64, r.median_rel_err))
            .collect();
        fixed.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(fixed, color.stroke_width(2)))?
            .label(format!("{set} layer {layer}"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        let marks = rows
            .iter()
            .filter(|r| r.set == set && r.layer == layer && r.policy.contains('n'))
            .map(|r| (r.k as f64, r.median_rel_err));
        chart.draw_series(marks.map(|p| TriangleMarker::new(p, 7, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}
