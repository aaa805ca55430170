//! Loader for the real attention captures in `../shared/data` (see its README.md).

use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};

/// One capture: per-head Q, K, V (f16 widened to f32) and the exact f64-computed output.
pub struct Capture {
    pub heads: usize,
    pub tokens: usize,
    pub head_dim: usize,
    pub scale: f32,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    pub out: Vec<f32>,
    pub lse: Vec<f32>,
}

/// `../shared/data` next to the repository (as laid out for developers and CI), or
/// `KNN_ATTENTION_DATA`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("KNN_ATTENTION_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data")))
}

/// True in CI or with `KNN_ATTENTION_REQUIRE_GPU=1`: a missing GPU or data folder is then a
/// failure, not a skip.
pub fn strict() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
        || std::env::var("KNN_ATTENTION_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// Loads `file` (e.g. `gpl3-layer3.safetensors`). `None` with a printed reason when the data
/// folder is absent outside CI; a panic in CI, where it must be present.
pub fn load(file: &str) -> Option<Capture> {
    let path = data_dir().join(file);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if strict() => panic!("{}: {e}", path.display()),
        Err(e) => {
            eprintln!("skipping real-data test: {}: {e}", path.display());
            return None;
        }
    };
    let st = SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let read = |name: &str| -> (Vec<usize>, Vec<f32>) {
        let t = st.tensor(name).unwrap();
        let data = match t.dtype() {
            Dtype::F16 => t
                .data()
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::F32 => t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            other => panic!("{name}: unexpected dtype {other:?}"),
        };
        (t.shape().to_vec(), data)
    };
    let (shape, q) = read("q");
    let (heads, tokens, head_dim) = (shape[0], shape[1], shape[2]);
    Some(Capture {
        heads,
        tokens,
        head_dim,
        scale: 1.0 / (head_dim as f32).sqrt(),
        q,
        k: read("k").1,
        v: read("v").1,
        out: read("out").1,
        lse: read("lse").1,
    })
}
