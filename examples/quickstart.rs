//! Quickstart: kNN attention in a few lines. Each query keeps its k = √n best keys (found by
//! the GPU top-k kernel), softmax runs over those only, and the result is compared with exact
//! attention from the CPU reference.
//!
//! cargo run --release --example quickstart

use knn_attention::kernels::rng_fill::{Distribution, RngKey};
use knn_attention::kernels::topk::{Topk, TopkConfig, TopkResult};
use knn_attention::reference::dense_attention::{dense_attention, scores_row, softmax};
use knn_attention::reference::rng_fill::rng_fill_f32;
use knn_attention::reference::topk::topk as topk_cpu;
use knn_attention::{AttentionShape, GpuContext, Mask};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (n, d) = (2048, 64);
    let k = (n as f64).sqrt().ceil() as usize; // kNN Attention Demystified: k ≈ √n
    let shape = AttentionShape::new(1, n, n, d);
    let scale = 1.0 / (d as f32).sqrt();
    let draw = |stream, len| {
        rng_fill_f32(
            len,
            RngKey {
                seed: 42,
                stream,
                counter: 0,
            },
            Distribution::Normal,
        )
    };
    // Keys drawn around a few cluster centres, queries near keys: attention is peaked, as
    // in trained models.
    let centres = draw(0, 16 * d);
    let noise = draw(1, n * d);
    let k_mat: Vec<f32> = (0..n * d)
        .map(|i| centres[(i / d % 16) * d + i % d] + noise[i])
        .collect();
    let q_mat: Vec<f32> = k_mat
        .iter()
        .zip(draw(2, n * d))
        .map(|(k, e)| k + 0.7 * e)
        .collect();
    let v_mat = draw(3, n * d);

    // Scores for every query row (the fused GPU attention kernels avoid materialising these).
    let scores: Vec<f32> = (0..n)
        .flat_map(|i| scores_row(&shape, &q_mat, &k_mat, scale, Mask::None, (0, 0, i)))
        .map(|s| s as f32)
        .collect();

    let cfg = TopkConfig {
        rows: n,
        n,
        k,
        ..Default::default()
    };
    let (where_, top): (String, TopkResult) = match GpuContext::new_blocking() {
        Ok(ctx) => {
            let info = &ctx.adapter_info;
            let name = format!("GPU: {} ({:?})", info.name, info.backend);
            let t = std::time::Instant::now();
            let r = Topk::new(&ctx, cfg)?.run(&scores, None)?;
            println!(
                "{name}: top-{k} of {n} rows × {n} scores in {:?} (incl. compile + copies)",
                t.elapsed()
            );
            assert_eq!(
                r,
                topk_cpu(&scores, &cfg, 0, None)?,
                "GPU and CPU reference disagree"
            );
            (name, r)
        }
        Err(e) => {
            println!("No GPU adapter ({e}).");
            println!(
                "Install a Vulkan driver (without a GPU: `apt-get install mesa-vulkan-drivers libvulkan1`)."
            );
            println!("Falling back to the CPU reference.");
            ("CPU reference".into(), topk_cpu(&scores, &cfg, 0, None)?)
        }
    };

    // Softmax over the kept scores only, then the weighted sum of their value rows.
    let exact = dense_attention(&shape, &q_mat, &k_mat, &v_mat, scale, Mask::None)?;
    let (mut err2, mut ref2, mut mass) = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..n {
        let kept = &top.indices[i * k..][..k];
        let s: Vec<f64> = top.values[i * k..][..k]
            .iter()
            .map(|&x| f64::from(x))
            .collect();
        let (p, _) = softmax(&s);
        let full = softmax(&scores_row(
            &shape,
            &q_mat,
            &k_mat,
            scale,
            Mask::None,
            (0, 0, i),
        ))
        .0;
        mass += kept.iter().map(|&j| full[j as usize]).sum::<f64>();
        for c in 0..d {
            let o: f64 = kept
                .iter()
                .zip(&p)
                .map(|(&j, pj)| pj * f64::from(v_mat[j as usize * d + c]))
                .sum();
            let e = f64::from(exact.out[i * d + c]);
            err2 += (o - e).powi(2);
            ref2 += e * e;
        }
    }
    println!("kNN attention with k = {k} (= ⌈√{n}⌉) on {where_}:");
    println!(
        "  softmax mass captured by the kept keys: {:.4}",
        mass / n as f64
    );
    println!(
        "  relative L2 error of the output vs exact attention: {:.4}",
        (err2 / ref2).sqrt()
    );
    Ok(())
}
