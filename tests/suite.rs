//! The integration tests, one module per kernel (`tests/NAME.rs`), built as one test binary.
//!
//! One binary links wgpu once instead of once per file, shares one GPU context (and so its
//! pipeline cache) among all tests, and lets the harness run tests from different files side
//! by side instead of one binary after another. `cargo test --release topk::` runs one file.
//! Cargo's per-file test discovery is off (`autotests = false`); `every_test_file_is_a_module`
//! keeps a new file from being silently left out.

#[macro_use]
mod common;

mod context;
mod dense_attention;
mod dense_attention_backward;
mod gather_attention;
mod gumbel_max;
mod gumbel_top_l;
mod hostile_sizes;
mod lazy_gumbel;
mod lev_attention;
mod leverage_scores;
mod rng_fill;
mod sampling_attention;
mod shaders;
mod sparse_attention_backward;
mod topk;
mod topk_attention;
mod topk_baseline;

/// Every `tests/*.rs` other than this one is declared above (a file that is not would never
/// be compiled or run, without a word from cargo).
#[test]
fn every_test_file_is_a_module() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");
    let this = include_str!("suite.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(module) = name.strip_suffix(".rs") else {
            continue;
        };
        if module != "suite" && !this.lines().any(|l| l == format!("mod {module};")) {
            missing.push(name.to_owned());
        }
    }
    assert!(missing.is_empty(), "not in tests/suite.rs: {missing:?}");
}

/// Every GPU test again, in a child run of this binary whose kernels are compiled with every
/// one of wgpu's shader checks off (`KNN_ATTENTION_SHADER_CHECKS=none`; see
/// `GpuContext::with_shader_checks`): it must give the same results, which shows the kernels
/// depend neither on zeroed workgroup memory nor on clamped indices. Not in the child run (or
/// when the variable is set already), nor without a GPU.
#[test]
fn every_gpu_test_passes_with_shader_checks_off() {
    const VAR: &str = "KNN_ATTENTION_SHADER_CHECKS";
    if std::env::var_os(VAR).is_some() || common::gpu().is_none() {
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        // Shader translation and hostile sizes (typed errors) do not depend on the checks.
        .args([
            "--skip",
            "shaders::",
            "--skip",
            "hostile_sizes::",
            "--skip",
            "every_",
        ])
        .args(["--test-threads", "2"])
        .env(VAR, "none")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("FAILED") || l.contains("panicked"))
        .collect();
    assert!(
        out.status.success(),
        "with {VAR}=none: {failed:#?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("test result: ok"), "{stdout}");
}
