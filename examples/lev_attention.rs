//! LevAttention on real attention data (`../shared/data`): for equal key budgets B, the
//! leverage-score universal set U (|U| = B per head, chosen without looking at queries)
//! against exact top-B per query and exact attention. Reports median relative output error,
//! mean softmax mass kept, and the fraction of each query's exact top-32 keys that lie in U.
//! Writes a markdown table to stdout and `lev_attention.{csv,png}` to `--out`.
//!
//! `cargo run --release --example lev_attention [-- --cpu]`

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Parser;
use knn_attention::attention::AttentionConfig;
use knn_attention::kernels::lev_attention::{LevAttention, LevAttentionConfig};
use knn_attention::kernels::topk_attention::{KPolicy, TopkAttention, TopkAttentionConfig};
use knn_attention::reference::dense_attention::scores_row;
use knn_attention::reference::lev_attention::lev_attention;
use knn_attention::reference::topk_attention::{rank, topk_attention};
use knn_attention::{AttentionShape, GpuContext, Mask};

use common::{CAPTURES, Series, data, error_and_mass};

#[derive(Parser)]
struct Args {
    /// Use the CPU references even when a GPU is present.
    #[arg(long)]
    cpu: bool,
    #[arg(long, default_value = "target/accuracy")]
    out: PathBuf,
    #[arg(
        long,
        default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    )]
    font: PathBuf,
}

const BUDGETS: [usize; 4] = [16, 32, 64, 128];

/// Mean over queries of |top-32(q) ∩ U| / 32.
fn coverage(c: &data::Capture, shape: &AttentionShape, universal: &[u32], u: usize) -> f64 {
    let mut total = 0.0;
    for h in 0..c.heads {
        let set = &universal[h * u..][..u];
        for i in 0..c.tokens {
            let s = scores_row(shape, &c.q, &c.k, c.scale, Mask::None, (0, h, i));
            let top = rank(&s);
            total += top[..32].iter().filter(|j| set.contains(j)).count() as f64 / 32.0;
        }
    }
    total / (c.heads * c.tokens) as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let ctx = if args.cpu {
        None
    } else {
        GpuContext::new_blocking()
            .inspect_err(|e| eprintln!("no GPU ({e}); using the CPU references"))
            .ok()
    };
    println!(
        "| set | layer | B | Lev-U error | Lev-U mass | top-32 in U | top-B error | top-B mass | random coverage |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut csv =
        String::from("set,layer,budget,lev_err,lev_mass,lev_top32_coverage,topk_err,topk_mass\n");
    let mut series = Vec::new();
    for (ci, (set, layer, file)) in CAPTURES.into_iter().enumerate() {
        let Some(c) = data::load(file) else {
            continue;
        };
        let shape = AttentionShape::new(c.heads, c.tokens, c.tokens, c.head_dim);
        let attn = AttentionConfig::new(shape).with_scale(c.scale);
        let (mut lev_pts, mut top_pts) = (Vec::new(), Vec::new());
        for b in BUDGETS {
            let lcfg = LevAttentionConfig::new(attn, b);
            let tcfg = TopkAttentionConfig::new(attn, KPolicy::Fixed(b));
            let (lev, top) = match &ctx {
                Some(ctx) => (
                    LevAttention::new(ctx, lcfg)?.run(&c.q, &c.k, &c.v)?,
                    TopkAttention::new(ctx, tcfg)?.run(&c.q, &c.k, &c.v)?,
                ),
                None => (
                    lev_attention(&lcfg, (&c.q, &c.k, &c.v))?,
                    topk_attention(&tcfg, (&c.q, &c.k, &c.v))?,
                ),
            };
            let (le, lm) = error_and_mass(&c, &lev.attention.out, &lev.attention.lse);
            let (te, tm) = error_and_mass(&c, &top.out, &top.lse);
            let cov = coverage(&c, &shape, &lev.universal, b);
            println!(
                "| {set} | {layer} | {b} | {le:.3} | {lm:.3} | {cov:.3} | {te:.3} | {tm:.3} | {:.3} |",
                b as f64 / c.tokens as f64
            );
            writeln!(csv, "{set},{layer},{b},{le},{lm},{cov},{te},{tm}")?;
            lev_pts.push((b as f64, le));
            top_pts.push((b as f64, te));
        }
        series.push(Series {
            label: Some(format!(
                "{set} layer {layer}: top-B (solid), Lev-U (dashed)"
            )),
            points: top_pts,
            color: ci,
            dashed: false,
            markers: false,
        });
        series.push(Series {
            label: None,
            points: lev_pts,
            color: ci,
            dashed: true,
            markers: false,
        });
    }
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("lev_attention.csv"), csv)?;
    if common::register_font(&args.font) {
        let path = args.out.join("lev_attention.png");
        common::plot(
            &path,
            "LevAttention universal set vs exact top-B on MiniLM (gpl3)",
            "key budget B per query (top-B) or per head (|U|)",
            "median relative output error",
            &series,
        )?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
