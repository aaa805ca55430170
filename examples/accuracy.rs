//! Accuracy of kNN (top-k) attention on real attention data (`../shared/data`): relative
//! output error against exact attention and the softmax mass the kept keys capture, for fixed
//! k, k = ⌈√n⌉ and k = ⌈α·n^C⌉, per layer. Writes a markdown table to stdout and
//! `accuracy.csv` and `accuracy.png` to `--out` (default `target/accuracy`).
//!
//! `cargo run --release --example accuracy [-- --cpu] [--alpha 1 --c 0.75]`
//!
//! Runs on the GPU when there is one (the CPU reference otherwise, or with `--cpu`).

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Parser;
use knn_attention::attention::AttentionConfig;
use knn_attention::kernels::topk_attention::{KPolicy, TopkAttention, TopkAttentionConfig};
use knn_attention::reference::topk_attention::topk_attention;
use knn_attention::{AttentionShape, GpuContext};

use common::{CAPTURES, Series, data, error_and_mass};

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
            let (median_rel_err, mean_mass) = error_and_mass(&c, &r.out, &r.lse);
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
    if common::register_font(&args.font) {
        let path = args.out.join("accuracy.png");
        let mut captures: Vec<(&str, usize)> = rows.iter().map(|r| (r.set, r.layer)).collect();
        captures.dedup();
        let mut series = Vec::new();
        for (i, &(set, layer)) in captures.iter().enumerate() {
            let pick = |fixed: bool| {
                rows.iter()
                    .filter(|r| r.set == set && r.layer == layer && r.policy.contains('n') != fixed)
                    .map(|r| (r.k as f64, r.median_rel_err))
                    .collect::<Vec<_>>()
            };
            series.push(Series {
                label: Some(format!("{set} layer {layer}")),
                points: pick(true),
                color: i,
                dashed: false,
                markers: false,
            });
            series.push(Series {
                label: None,
                points: pick(false),
                color: i,
                dashed: false,
                markers: true,
            });
        }
        common::plot(
            &path,
            "kNN attention on MiniLM (gpl3): error vs k",
            "k (keys kept per query); triangles: the √n and α·n^C policies",
            "median relative output error",
            &series,
        )?;
        eprintln!("wrote {}", path.display());
    }
    eprintln!("wrote {}", args.out.join("accuracy.csv").display());
    Ok(())
}
