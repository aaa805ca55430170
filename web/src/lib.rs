//! knn-attention in a browser: builds kernels on the page's WebGPU device, runs them with
//! `encode` and `read_async` (nothing may block there), and compares each result with the
//! CPU reference: top-k bit for bit, lazy Gumbel samples exactly, leverage scores within
//! the bound of tests/leverage_scores.rs, attention within `tolerance::ATTENTION`.

use knn_attention::attention::{AttentionConfig, AttentionOutputs, QkvTensors};
use knn_attention::buffer::{ElemType, GpuBuffer};
use knn_attention::kernels::dense_attention::DenseAttention;
use knn_attention::kernels::gumbel_max::SamplerConfig;
use knn_attention::kernels::lazy_gumbel::{LazyGumbel, LazySamples};
use knn_attention::kernels::leverage_scores::{LeverageConfig, LeverageScores};
use knn_attention::kernels::topk::{Strategy, Topk, TopkConfig, TopkInput, TopkResult};
use knn_attention::kernels::topk_attention::{KPolicy, TopkAttention, TopkAttentionConfig};
use knn_attention::reference;
use knn_attention::tolerance::ATTENTION;
use knn_attention::{AttentionShape, GpuContext, Mask};
use wasm_bindgen::prelude::*;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// One line per check, then `failures N`; or `FAIL` and the error.
#[wasm_bindgen]
pub async fn run() -> String {
    match checks().await {
        Ok(log) => log.join("\n"),
        Err(e) => format!("FAIL {e}"),
    }
}

/// xorshift64 words from `seed`.
fn words(seed: u64) -> impl Iterator<Item = u64> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x >> 40
    })
}

/// Scores with ties (1000 distinct values); every 97th entry is NaN, −inf, −0.0 or +0.0.
fn scores(len: usize, seed: u64) -> Vec<f32> {
    words(seed)
        .take(len)
        .enumerate()
        .map(|(i, w)| match i % 97 {
            0 => f32::NAN,
            1 => f32::NEG_INFINITY,
            2 => -0.0,
            3 => 0.0,
            _ => (w % 1000) as f32 / 7.0 - 70.0,
        })
        .collect()
}

async fn checks() -> Result<Vec<String>> {
    let ctx = GpuContext::new().await?;
    let mut log = vec![format!(
        "adapter {:?} ({:?})",
        ctx.adapter_info.name, ctx.adapter_info.backend
    )];
    let mut failures = 0;
    for (rows, n, k, strategy, sorted, wide_tiles) in [
        (3, 5000, 37, Strategy::Radix, true, true),
        (3, 5000, 37, Strategy::OnePass, true, false),
        (3, 5000, 37, Strategy::OnePass, true, true),
        (3, 5000, 300, Strategy::OnePass, true, true),
        (3, 5000, 37, Strategy::Radix, false, true),
        (1, 131072, 2048, Strategy::Radix, true, true),
        (64, 4096, 32, Strategy::Auto, true, true),
        (2, 70000, 4096, Strategy::Radix, true, true),
        (3, 5000, 300, Strategy::RowSelect, true, true),
        (3, 5000, 300, Strategy::RowSelect, false, true),
        (1, 131072, 512, Strategy::RowSelect, true, true),
    ] {
        let cfg = TopkConfig {
            rows,
            n,
            k,
            strategy,
            sorted,
            wide_tiles,
            ..Default::default()
        };
        let ok = topk_matches(&ctx, cfg).await?;
        failures += !ok as usize;
        let verdict = if ok {
            "same bits as the CPU reference"
        } else {
            "MISMATCH"
        };
        // The one pass reads wide tiles (vec4 loads here: n is a multiple of 4) by default.
        let path = cfg.strategy_on(&ctx);
        let tiles = if path == Strategy::OnePass && !wide_tiles {
            " 512-entry tiles"
        } else {
            ""
        };
        log.push(format!(
            "topk {rows}x{n} k={k} {strategy:?} ({path:?}){tiles} sorted={sorted}: {verdict}"
        ));
    }
    let differ = lazy_samples_differ(&ctx).await?;
    failures += (differ != 0) as usize;
    log.push(format!(
        "lazy_gumbel 48x1500 k=24 L=16, ragged rows: {}",
        if differ == 0 {
            "same samples and tail counts as the CPU reference".into()
        } else {
            format!("MISMATCH in {differ} samples or counts")
        }
    ));
    let worst = leverage_worst(&ctx).await?;
    failures += (worst > LEVERAGE_REL) as usize;
    log.push(format!(
        "leverage_scores 2 heads x 1000 keys, d = 64: worst relative error {worst:.1e} ({})",
        if worst <= LEVERAGE_REL {
            "within tests/leverage_scores.rs' bound"
        } else {
            "MISMATCH"
        }
    ));
    for (what, bad) in attention(&ctx).await? {
        failures += bad.is_some() as usize;
        let verdict = bad.unwrap_or_else(|| "within tolerance::ATTENTION".into());
        log.push(format!("{what}: {verdict}"));
    }
    log.push(format!("failures {failures}"));
    Ok(log)
}

async fn topk_matches(ctx: &GpuContext, cfg: TopkConfig) -> Result<bool> {
    let TopkConfig {
        rows, n, k, sorted, ..
    } = cfg;
    let host = scores(rows * n, (rows * n + k) as u64);
    let topk = Topk::new(ctx, cfg)?;
    let input = GpuBuffer::from_slice(ctx, &host, "scores")?;
    let out = topk.outputs()?;
    let mut encoder = ctx.encoder("topk");
    topk.encode(&mut encoder, TopkInput::new(&input), &out)?;
    ctx.queue.submit([encoder.finish()]);
    let mut got = TopkResult {
        values: out.values.read_async(ctx).await?,
        indices: out.indices.read_async(ctx).await?,
        counts: out.counts.read_async(ctx).await?,
    };
    if !sorted {
        // The reference is always sorted; an unsorted row must hold the same entries.
        got = reference::topk::best_first(&got, &cfg);
    }
    let want = reference::topk::topk(&host, &cfg, 0, None)?;
    Ok(got.indices == want.indices
        && got.counts == want.counts
        && got
            .values
            .iter()
            .map(|v| v.to_bits())
            .eq(want.values.iter().map(|v| v.to_bits())))
}

/// Samples (and tail keys touched) that differ from the reference's, which draws the same
/// Philox numbers through the same formulas.
async fn lazy_samples_differ(ctx: &GpuContext) -> Result<usize> {
    let (rows, n, k) = (48, 1500, 24);
    let host: Vec<f32> = words(12)
        .take(rows * n)
        .map(|w| (w % 4001) as f32 / 1000.0 - 2.0)
        .collect();
    let lengths: Vec<u32> = (0..rows as u32).map(|r| r * 61 % 1501).collect();
    let cfg = SamplerConfig::new(rows, n, 16, 5);
    let sampler = LazyGumbel::new(ctx, cfg, k)?;
    let scores = GpuBuffer::from_slice(ctx, &host, "scores")?;
    let lens = GpuBuffer::from_slice(ctx, &lengths, "lengths")?;
    let out = LazySamples::new(ctx, rows, cfg.samples)?;
    let mut encoder = ctx.encoder("lazy_gumbel");
    sampler.encode(&mut encoder, &scores, Some(&lens), &out)?;
    ctx.queue.submit([encoder.finish()]);
    let samples = out.samples.read_async(ctx).await?;
    let touched = out.touched.read_async(ctx).await?;
    let want = reference::lazy_gumbel::lazy_gumbel(&host, &cfg, k, Some(&lengths))?;
    let differ = |a: &[u32], b: &[u32]| {
        a.iter().zip(b).filter(|(x, y)| x != y).count() + a.len().abs_diff(b.len())
    };
    Ok(differ(&samples, &want.samples) + differ(&touched, &want.touched))
}

/// tests/leverage_scores.rs' bound on f32 scores against the f64 reference (relative to the
/// largest score), which its comment derives from the ridge's condition number.
const LEVERAGE_REL: f64 = 2e-3;

/// Largest |GPU − reference| leverage score, relative to the largest score.
async fn leverage_worst(ctx: &GpuContext) -> Result<f64> {
    let cfg = LeverageConfig::new(2, 1000, 64);
    let keys: Vec<f32> = words(7)
        .take(2 * 1000 * 64)
        .map(|w| (w % 20001) as f32 / 10000.0 - 1.0)
        .collect();
    let kernel = LeverageScores::new(ctx, cfg)?;
    let k = GpuBuffer::from_slice(ctx, &keys, "k")?;
    let sigma = GpuBuffer::zeroed(ctx, 2 * 1000, "sigma")?;
    let mut encoder = ctx.encoder("leverage_scores");
    kernel.encode(&mut encoder, &k, 1000, &sigma)?;
    ctx.queue.submit([encoder.finish()]);
    let got = sigma.read_async(ctx).await?;
    let want = reference::leverage_scores::leverage_scores(&keys, &cfg, 1000)?;
    let scale = want.iter().fold(0f64, |m, x| m.max(x.abs()));
    Ok(got
        .iter()
        .zip(&want)
        .map(|(&g, &w)| (f64::from(g) - w).abs() / scale)
        .fold(0.0, f64::max))
}

/// Dense and top-k attention (2 heads, n = 300, d = 64, causal) against the f64 reference.
async fn attention(ctx: &GpuContext) -> Result<Vec<(&'static str, Option<String>)>> {
    let shape = AttentionShape::new(2, 300, 300, 64);
    let attn = AttentionConfig::new(shape).with_mask(Mask::Causal { offset: 0 });
    let noise = |seed: u64| -> Vec<f32> {
        words(seed)
            .take(shape.kv_len())
            .map(|w| (w % 20001) as f32 / 10000.0 - 1.0)
            .collect()
    };
    let (q, k, v) = (noise(1), noise(2), noise(3));
    let qkv = QkvTensors::upload(ctx, ElemType::F32, (&q, &k, &v))?;
    let out = AttentionOutputs::new(ctx, &shape)?;
    let compare = |got: (&[f32], &[f32]), want: (&[f32], &[f32])| {
        ATTENTION
            .first_mismatch(got.0, want.0)
            .or(ATTENTION.first_mismatch(got.1, want.1))
            .map(|m| format!("MISMATCH {m:?}"))
    };

    let dense = DenseAttention::new(ctx, attn)?;
    let mut encoder = ctx.encoder("dense_attention");
    dense.encode(&mut encoder, qkv.view(), &out)?;
    ctx.queue.submit([encoder.finish()]);
    let (o, l) = (
        out.out.read_async(ctx).await?,
        out.lse.read_async(ctx).await?,
    );
    let want =
        reference::dense_attention::dense_attention(&shape, &q, &k, &v, attn.scale, attn.mask)?;
    let dense_bad = compare((&o, &l), (&want.out, &want.lse));

    let cfg = TopkAttentionConfig::new(attn, KPolicy::Fixed(16));
    let topk = TopkAttention::new(ctx, cfg)?;
    let mut encoder = ctx.encoder("topk_attention");
    topk.encode(&mut encoder, qkv.view(), &out, None)?;
    ctx.queue.submit([encoder.finish()]);
    let (o, l) = (
        out.out.read_async(ctx).await?,
        out.lse.read_async(ctx).await?,
    );
    let want = reference::topk_attention::topk_attention(&cfg, (&q, &k, &v))?;
    let topk_bad = compare((&o, &l), (&want.out, &want.lse));

    Ok(vec![
        (
            "dense_attention 2 heads, n = 300, d = 64, causal",
            dense_bad,
        ),
        ("topk_attention, same shape, k = 16", topk_bad),
    ])
}
