//! `topk_baseline` (the bench's yardstick) follows the top-k rules exactly: equal to the CPU
//! reference on random rows, ties, NaN, ±0 and ±∞, k = 1 and k = n.

use crate::common;

use knn_attention::Error;
use knn_attention::kernels::topk::{Order, TopkConfig};
use knn_attention::kernels::topk_baseline::TopkBaseline;
use knn_attention::reference::topk::topk;

#[test]
fn equals_the_reference() {
    let ctx = gpu_or_skip!();
    let (rows, n) = (70, 300);
    let mut scores: Vec<f32> = common::normal_data(rows * n, 3)
        .iter()
        .map(|x| (x * 4.0).round() / 4.0)
        .collect();
    for (i, s) in scores.iter_mut().enumerate().step_by(37) {
        *s = [f32::NAN, -0.0, 0.0, f32::INFINITY, f32::NEG_INFINITY][i % 5];
    }
    let other = common::normal_data(rows * n, 4);
    for k in [1, 17, 64, n] {
        let cfg = TopkConfig {
            rows,
            n,
            k,
            ..Default::default()
        };
        // One kernel on two inputs: its remembered bind group must follow the new buffer.
        let kernel = TopkBaseline::new(&ctx, cfg).unwrap();
        for (i, data) in [&scores, &other].into_iter().enumerate() {
            let got = kernel.run(data).unwrap();
            let want = topk(data, &cfg, 0, None).unwrap();
            assert_eq!(got.indices, want.indices, "k = {k}, input {i}");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got.values), bits(&want.values), "k = {k}, input {i}");
        }
    }
}

#[test]
fn unsupported_options_are_typed_errors() {
    let ctx = gpu_or_skip!();
    let cfg = TopkConfig {
        rows: 2,
        n: 8,
        k: 2,
        order: Order::Smallest,
        ..Default::default()
    };
    assert!(matches!(
        TopkBaseline::new(&ctx, cfg),
        Err(Error::Unsupported { .. })
    ));
    let cfg = TopkConfig {
        rows: 2,
        n: 8,
        k: 9,
        ..Default::default()
    };
    assert!(matches!(
        TopkBaseline::new(&ctx, cfg),
        Err(Error::InvalidShape { arg: "k", .. })
    ));
}
