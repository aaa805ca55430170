//! Gradient descent with approximate attention gradients (kNN Attention Demystified, "GD with
//! approximate gradients"). Fit Q, K, V of one real attention head (MiniLM layer 3, head 0,
//! first 256 tokens, causal) to the output the original Q, K, V give, starting from a noisy
//! copy, with Adam and three gradients:
//! - exact dense: the flash-style dense backward (`dense_attention_backward`);
//! - exact top-k: forward and backward through the 16 best keys of each query;
//! - random walk: 16 exact softmax samples per query (`sampling_attention`'s lazy sampler) in
//!   the sampled estimator.
//!
//! The loss is always the true objective ½‖attention(Q, K, V) − target‖² (exact dense).
//! Writes `gd_experiment.csv` and `gd_experiment.png` to `--out`.
//!
//! `cargo run --release --example gd_experiment [-- --steps 60]`

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Parser;
use knn_attention::attention::{AttentionConfig, AttentionOutputs, GradOutputs, KeptOutputs, Qkv};
use knn_attention::kernels::dense_attention::DenseAttention;
use knn_attention::kernels::dense_attention_backward::{
    DenseAttentionBackward, DenseBackwardInputs,
};
use knn_attention::kernels::sampling_attention::{
    MomConfig, SamplingAttention, SamplingAttentionConfig,
};
use knn_attention::kernels::sparse_attention_backward::{
    BackwardInputs, SampledInputs, SparseAttentionBackward,
};
use knn_attention::kernels::topk_attention::{KPolicy, TopkAttention, TopkAttentionConfig};
use knn_attention::reference::sparse_attention_backward::AttentionGrads;
use knn_attention::{AttentionShape, GpuBuffer, GpuContext, Mask};

use common::{Series, data};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 60)]
    steps: usize,
    #[arg(long, default_value_t = 0.02)]
    lr: f32,
    #[arg(long, default_value = "target/accuracy")]
    out: PathBuf,
    #[arg(
        long,
        default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    )]
    font: PathBuf,
}

#[derive(Clone, Copy, PartialEq)]
enum Method {
    Dense,
    Topk,
    RandomWalk,
}

/// Adam on the concatenation of Q, K, V.
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    fn step(&mut self, x: &mut [f32], g: &[f32], lr: f32) {
        self.t += 1;
        let (b1, b2) = (0.9f32, 0.999f32);
        for i in 0..x.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g[i] * g[i];
            let mh = self.m[i] / (1.0 - b1.powi(self.t));
            let vh = self.v[i] / (1.0 - b2.powi(self.t));
            x[i] -= lr * mh / (vh.sqrt() + 1e-8);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let ctx = GpuContext::new_blocking()?;
    let c = data::load("gpl3-layer3.safetensors").ok_or("gpl3-layer3.safetensors not found")?;
    let (n, d) = (256, c.head_dim);
    let take = |x: &[f32]| x[..n * d].to_vec();
    let (q0, k0, v0) = (take(&c.q), take(&c.k), take(&c.v));
    let shape = AttentionShape::new(1, n, n, d);
    let attn = AttentionConfig::new(shape)
        .with_scale(c.scale)
        .with_mask(Mask::Causal { offset: 0 });
    let dense = DenseAttention::new(&ctx, attn)?;
    let target = dense.run(&q0, &k0, &v0)?.out;
    // Start from a noisy copy (noise of the data's own scale).
    let noise = |x: &[f32], stream| {
        let key = knn_attention::kernels::rng_fill::RngKey {
            seed: 5,
            stream,
            counter: 0,
        };
        let e = knn_attention::reference::rng_fill::rng_fill_f32(
            x.len(),
            key,
            knn_attention::kernels::rng_fill::Distribution::Normal,
        );
        let scale = (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
        x.iter()
            .zip(e)
            .map(|(a, b)| a + 0.5 * scale * b)
            .collect::<Vec<f32>>()
    };
    let start = [noise(&q0, 1), noise(&k0, 2), noise(&v0, 3)].concat();

    let (qn, kn) = (shape.q_len(), shape.kv_len());
    let top16 = TopkAttention::new(&ctx, TopkAttentionConfig::new(attn, KPolicy::Fixed(16)))?;
    let back_dense = DenseAttentionBackward::new(&ctx, attn)?;
    let back_top = SparseAttentionBackward::new(&ctx, attn, top16.total_slots())?;
    let back_rw = SparseAttentionBackward::new(&ctx, attn, 16)?;

    let up = |x: &[f32]| GpuBuffer::from_slice(&ctx, x, "t");
    let loss_of = |x: &[f32]| -> Result<f64, Box<dyn std::error::Error>> {
        let o = dense.run(&x[..qn], &x[qn..qn + kn], &x[qn + kn..])?.out;
        Ok(0.5
            * o.iter()
                .zip(&target)
                .map(|(a, b)| f64::from(a - b).powi(2))
                .sum::<f64>())
    };
    let grads_of = |x: &[f32],
                    method: Method,
                    step: usize|
     -> Result<(f64, Vec<f32>), Box<dyn std::error::Error>> {
        let (q, k, v) = (&x[..qn], &x[qn..qn + kn], &x[qn + kn..]);
        let (qb, kb, vb) = (up(q)?, up(k)?, up(v)?);
        let exact = dense.run(q, k, v)?.out;
        let loss = 0.5
            * exact
                .iter()
                .zip(&target)
                .map(|(a, b)| f64::from(a - b).powi(2))
                .sum::<f64>();
        let grads = GradOutputs::new(&ctx, &attn)?;
        let mut enc = ctx.encoder("gd");
        match method {
            Method::Dense => {
                let fwd = AttentionOutputs::new(&ctx, &shape)?;
                dense.encode(&mut enc, Qkv::f32(&qb, &kb, &vb), &fwd)?;
                let d_out: Vec<f32> = exact.iter().zip(&target).map(|(a, b)| a - b).collect();
                let db = up(&d_out)?;
                let inputs = DenseBackwardInputs {
                    qkv: Qkv::f32(&qb, &kb, &vb),
                    forward: &fwd,
                    d_out: &db,
                };
                back_dense.encode(&mut enc, inputs, &grads)?;
                ctx.submit_and_wait(enc)?;
            }
            Method::Topk => {
                let f = top16.run(q, k, v)?;
                let d_out: Vec<f32> = f.out.iter().zip(&target).map(|(a, b)| a - b).collect();
                let kept = KeptOutputs {
                    indices: GpuBuffer::from_slice(&ctx, &f.kept, "kept")?,
                    probs: up(&f.probs)?,
                };
                let db = up(&d_out)?;
                back_top.encode(
                    &mut enc,
                    BackwardInputs {
                        qkv: Qkv::f32(&qb, &kb, &vb),
                        d_out: &db,
                        kept: &kept,
                    },
                    &grads,
                )?;
                ctx.submit_and_wait(enc)?;
            }
            Method::RandomWalk => {
                let cfg = SamplingAttentionConfig::new(
                    attn,
                    MomConfig {
                        samples: 16,
                        groups: 1,
                    },
                    step as u64,
                );
                let s = SamplingAttention::new(&ctx, cfg)?.run(q, k, v)?;
                let d_out: Vec<f32> = exact.iter().zip(&target).map(|(a, b)| a - b).collect();
                let (db, ob) = (up(&d_out)?, up(&exact)?);
                let sb = GpuBuffer::from_slice(&ctx, &s.samples, "samples")?;
                let inputs = SampledInputs {
                    qkv: Qkv::f32(&qb, &kb, &vb),
                    d_out: &db,
                    out: &ob,
                    samples: &sb,
                };
                back_rw.encode_sampled(&mut enc, inputs, &grads)?;
                ctx.submit_and_wait(enc)?;
            }
        }
        let AttentionGrads { dq, dk, dv } = grads.read(&ctx)?;
        Ok((loss, [dq, dk, dv].concat()))
    };

    let methods = [
        ("exact dense", Method::Dense),
        ("exact top-16", Method::Topk),
        ("random walk, 16 samples", Method::RandomWalk),
    ];
    let mut curves: Vec<Vec<f64>> = Vec::new();
    for (name, method) in methods {
        let mut x = start.clone();
        let mut adam = Adam {
            m: vec![0.0; x.len()],
            v: vec![0.0; x.len()],
            t: 0,
        };
        let mut curve = Vec::new();
        for step in 0..args.steps {
            let (loss, g) = grads_of(&x, method, step)?;
            curve.push(loss);
            adam.step(&mut x, &g, args.lr);
        }
        curve.push(loss_of(&x)?);
        eprintln!(
            "{name}: loss {:.4} → {:.4}",
            curve[0],
            curve[curve.len() - 1]
        );
        curves.push(curve);
    }
    std::fs::create_dir_all(&args.out)?;
    let mut csv = String::from("step,exact_dense,exact_topk16,random_walk16\n");
    for (s, ((a, b), c)) in curves[0].iter().zip(&curves[1]).zip(&curves[2]).enumerate() {
        writeln!(csv, "{s},{a},{b},{c}")?;
    }
    std::fs::write(args.out.join("gd_experiment.csv"), csv)?;
    println!(
        "| gradient | loss at step 0 | step {} | final / initial |",
        args.steps
    );
    println!("|---|---|---|---|");
    for ((name, _), c) in methods.iter().zip(&curves) {
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} |",
            c[0],
            c[args.steps],
            c[args.steps] / c[0]
        );
    }
    if common::register_font(&args.font) {
        let series: Vec<Series> = methods
            .iter()
            .zip(&curves)
            .enumerate()
            .map(|(i, ((name, _), c))| Series {
                label: Some((*name).into()),
                points: c
                    .iter()
                    .enumerate()
                    .map(|(s, &l)| ((s + 1) as f64, l))
                    .collect(),
                color: i,
                dashed: false,
                markers: false,
            })
            .collect();
        let path = args.out.join("gd_experiment.png");
        common::plot(
            &path,
            "Fitting one MiniLM attention head: loss vs step (Adam)",
            "step + 1",
            "½‖attention − target‖² (exact)",
            &series,
        )?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
