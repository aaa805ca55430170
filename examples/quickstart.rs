//! Quickstart: kNN attention in a few lines. Each query keeps its k = ⌈√n⌉ best keys (exact
//! search on the GPU), softmax runs over those only, and the result is compared with exact
//! attention, also computed on the GPU. The CPU reference stands in when there is no adapter.
//!
//! cargo run --release --example quickstart

use knn_attention::attention::{AttentionConfig, SparseAttentionOutput};
use knn_attention::kernels::dense_attention::DenseAttention;
use knn_attention::kernels::rng_fill::{Distribution, RngKey};
use knn_attention::kernels::topk_attention::{KPolicy, TopkAttention, TopkAttentionConfig};
use knn_attention::reference::dense_attention::{AttentionOutput, dense_attention};
use knn_attention::reference::rng_fill::rng_fill_f32;
use knn_attention::reference::topk_attention::topk_attention;
use knn_attention::{AttentionShape, GpuContext, Mask};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (heads, n, d) = (4, 2048, 64);
    let shape = AttentionShape::new(heads, n, n, d);
    // Causal self-attention; each row keeps ⌈√(its visible keys)⌉ keys.
    let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 0 });
    let cfg = TopkAttentionConfig::new(attn, KPolicy::Sqrt);

    // Keys around a few cluster centres and queries near keys: peaked attention, as in
    // trained models.
    let draw = |stream, len| {
        let key = RngKey {
            seed: 42,
            stream,
            counter: 0,
        };
        rng_fill_f32(len, key, Distribution::Normal)
    };
    let centres = draw(0, 16 * d);
    let k: Vec<f32> = draw(1, shape.kv_len())
        .iter()
        .enumerate()
        .map(|(i, e)| centres[(i / d % 16) * d + i % d] + e)
        .collect();
    let q: Vec<f32> = k
        .iter()
        .zip(draw(2, shape.q_len()))
        .map(|(k, e)| k + 0.7 * e)
        .collect();
    let v = draw(3, shape.kv_len());

    let (device, knn, exact): (String, SparseAttentionOutput, AttentionOutput) =
        match GpuContext::new_blocking() {
            Ok(ctx) => {
                let info = &ctx.adapter_info;
                let t = std::time::Instant::now();
                let knn = TopkAttention::new(&ctx, cfg)?.run(&q, &k, &v)?;
                let t_knn = t.elapsed();
                let exact = DenseAttention::new(&ctx, attn)?.run(&q, &k, &v)?;
                println!(
                    "GPU {} ({:?}): kNN attention in {t_knn:.2?}, exact in {:.2?} (incl. compile and copies)",
                    info.name,
                    info.backend,
                    t.elapsed() - t_knn
                );
                (format!("{} ({:?})", info.name, info.backend), knn, exact)
            }
            Err(e) => {
                println!("No GPU adapter ({e}).");
                println!(
                    "Install a Vulkan driver (without a GPU: `apt-get install mesa-vulkan-drivers libvulkan1`)."
                );
                println!("Falling back to the CPU reference.");
                let knn = topk_attention(&cfg, (&q, &k, &v))?;
                let exact = dense_attention(&shape, &q, &k, &v, attn.scale, attn.mask)?;
                ("the CPU reference".into(), knn, exact)
            }
        };

    // Softmax mass of the kept keys: exp(lse over kept − lse over all).
    let mass: f64 = knn
        .lse
        .iter()
        .zip(&exact.lse)
        .map(|(a, b)| f64::from(a - b).exp())
        .sum::<f64>()
        / shape.rows() as f64;
    let (err2, ref2) = knn
        .out
        .iter()
        .zip(&exact.out)
        .fold((0.0, 0.0), |(e, r), (&a, &b)| {
            (e + f64::from(a - b).powi(2), r + f64::from(b).powi(2))
        });
    println!(
        "kNN attention, {heads} heads × {n} causal queries, k = ⌈√n⌉ per row (up to {}), on {device}:",
        KPolicy::Sqrt.k_for(n)
    );
    println!("  softmax mass captured by the kept keys: {mass:.4}");
    println!(
        "  relative L2 error of the output vs exact attention: {:.4}",
        (err2 / ref2).sqrt()
    );
    Ok(())
}
