//! Every composed kernel translates to SPIR-V, MSL, HLSL and GLSL with naga, so Metal, DX12
//! and GL problems show up on Linux. Each backend validates with its own capability set. Two
//! other compilers check what naga cannot: glslang compiles the GLSL a GL driver would get,
//! and Tint (Chrome's) compiles the WGSL a browser would get.

use knn_attention::shader::sources::ALL;
use knn_attention::shader::{Tier, source_for};
use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn module(name: &str, src: &str) -> naga::Module {
    naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)))
}

/// Validates `m` and resolves its `override` constants as a pipeline would: `HEAD_DIM = 80`
/// (five 16-wide chunks, not a power of two), defaults for the rest.
fn validate(
    name: &str,
    m: &naga::Module,
    caps: Capabilities,
) -> (naga::Module, naga::valid::ModuleInfo) {
    let info = Validator::new(ValidationFlags::all(), caps)
        .validate(m)
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let mut constants = naga::back::PipelineConstants::default();
    if m.overrides
        .iter()
        .any(|(_, o)| o.name.as_deref() == Some("HEAD_DIM"))
    {
        constants.insert("HEAD_DIM".into(), 80.0);
    }
    let (m, info) = naga::back::pipeline_constants::process_overrides(m, &info, None, &constants)
        .unwrap_or_else(|e| panic!("{name}: overrides: {e}"));
    (m.into_owned(), info.into_owned())
}

#[test]
fn every_kernel_is_listed() {
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "wgsl")
        })
        .count();
    assert_eq!(files, ALL.len());
    assert!(!ALL.is_empty());
}

#[test]
fn translates_to_spirv() {
    for (name, src) in ALL {
        let (m, info) = validate(name, &module(name, src), spv::supported_capabilities());
        let words = spv::write_vec(&m, &info, &spv::Options::default(), None)
            .unwrap_or_else(|e| panic!("{name}: SPIR-V: {e}"));
        assert_eq!(words[0], 0x0723_0203, "{name}: SPIR-V magic");
    }
}

#[test]
fn translates_to_msl() {
    for (name, src) in ALL {
        let (m, info) = validate(name, &module(name, src), msl::supported_capabilities());
        let (out, _) = msl::write_string(&m, &info, &msl::Options::default(), &Default::default())
            .unwrap_or_else(|e| panic!("{name}: MSL: {e}"));
        assert!(out.contains("kernel"), "{name}: no MSL kernel");
    }
}

#[test]
fn translates_to_hlsl() {
    for (name, src) in ALL {
        let (m, info) = validate(name, &module(name, src), hlsl::supported_capabilities());
        let options = hlsl::Options::default();
        let pipeline = hlsl::PipelineOptions::default();
        let mut out = String::new();
        hlsl::Writer::new(&mut out, &options, &pipeline)
            .write(&m, &info, None)
            .unwrap_or_else(|e| panic!("{name}: HLSL: {e}"));
        assert!(out.contains("numthreads"), "{name}: no HLSL compute entry");
    }
}

/// Compiles GLSL ES with Khronos' reference front end (`glslangValidator`, Debian's
/// glslang-tools), which is what a GL driver would be handed. `None` without the tool, unless
/// CI is set: `.ci/run` installs it, so there its absence fails.
fn glslang(name: &str, source: &str) -> Option<Result<(), String>> {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("glsl");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.comp"));
    std::fs::write(&path, source).unwrap();
    match std::process::Command::new("glslangValidator")
        .arg(&path)
        .output()
    {
        Ok(out) if out.status.success() => Some(Ok(())),
        Ok(out) => Some(Err(String::from_utf8_lossy(&out.stdout).into_owned())),
        Err(e) if std::env::var_os("CI").is_some() => panic!("CI: glslangValidator: {e}"),
        Err(_) => None,
    }
}

#[test]
fn translates_to_glsl() {
    let mut compiled = 0;
    for (name, src) in ALL {
        let (m, info) = validate(name, &module(name, src), glsl::supported_capabilities());
        for ep in &m.entry_points {
            let options = glsl::Options::default(); // GLSL ES 3.10, the compute baseline
            let pipeline = glsl::PipelineOptions {
                shader_stage: ep.stage,
                entry_point: ep.name.clone(),
                multiview: None,
            };
            let mut out = String::new();
            let written =
                glsl::Writer::new(&mut out, &m, &info, &options, &pipeline, Default::default())
                    .and_then(|mut w| w.write());
            // wgpu's GL backend never offers SHADER_F16, so the f16 tier is never built for
            // GL; naga's GLSL writer refuses entry points that touch f16, and that refusal is
            // the only one allowed.
            if let Err(e) = &written
                && src.contains("enable f16;")
            {
                let e = e.to_string();
                assert!(
                    e.contains("unsupported width"),
                    "{name}::{}: GLSL: {e}",
                    ep.name
                );
                continue;
            }
            written.unwrap_or_else(|e| panic!("{name}::{}: GLSL: {e}", ep.name));
            assert!(
                out.contains("local_size_x"),
                "{name}: no GLSL compute layout"
            );
            if let Some(result) = glslang(&format!("{name}.{}", ep.name), &out) {
                result.unwrap_or_else(|e| panic!("{name}::{}: glslang: {e}", ep.name));
                compiled += 1;
            }
        }
    }
    if compiled == 0 {
        eprintln!("glslangValidator not found: GLSL translated but not compiled");
    }
}

/// Dawn's compiler, Tint (Chrome's), accepts every kernel exactly as a browser would receive
/// it ([`knn_attention::shader::source_for`] on the web backend), and builds a pipeline for
/// every entry point and pipeline-constant extreme: naga alone let through non-finite
/// constants and barriers it could not prove uniform. Runs `scripts/tint_check.mjs` with
/// node and the `webgpu` npm package in `target/tint` (`KNN_ATTENTION_TINT_MODULES`
/// overrides); without them it says so and passes, unless `KNN_ATTENTION_REQUIRE_TINT` is set
/// (CI sets it where npm exists).
#[test]
fn tint_accepts_every_kernel_as_a_browser_gets_it() {
    let root = env!("CARGO_MANIFEST_DIR");
    let modules = std::env::var("KNN_ATTENTION_TINT_MODULES")
        .unwrap_or_else(|_| format!("{root}/target/tint/node_modules"));
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("tint_wgsl");
    let _ = std::fs::remove_dir_all(&dir); // no stale kernels from an earlier build
    std::fs::create_dir_all(&dir).unwrap();
    for (name, src) in ALL {
        let tier = if name.ends_with("_subgroup") {
            Tier::Subgroup
        } else if src.contains("enable f16;") {
            Tier::F16
        } else {
            Tier::Core
        };
        let web = source_for(src, tier, wgpu::Backend::BrowserWebGpu);
        std::fs::write(dir.join(format!("{name}.wgsl")), web.as_bytes()).unwrap();
    }
    let run = std::process::Command::new("node")
        .arg(format!("{root}/scripts/tint_check.mjs"))
        .arg(&dir)
        .arg(&modules)
        .output();
    let required = std::env::var_os("KNN_ATTENTION_REQUIRE_TINT").is_some();
    let out = match run {
        Ok(out) => out,
        Err(e) if !required => return eprintln!("skipped: no node ({e})"),
        Err(e) => panic!("KNN_ATTENTION_REQUIRE_TINT: node: {e}"),
    };
    let log = String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(0) => assert!(log.contains(" 0 rejected"), "{log}"),
        Some(2) if !required => eprintln!("skipped: {log}"),
        _ => panic!(
            "Tint rejected kernels:\n{log}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Arrays in a function's own memory (`var` arrays, or array values) that `f` indexes with a
/// non-constant index, named by the function that does it.
fn dynamic_private_arrays(
    m: &naga::Module,
    f: &naga::Function,
    info: &naga::valid::FunctionInfo,
    fname: &str,
) -> Vec<String> {
    use naga::{AddressSpace, Expression, TypeInner};
    let mut found = Vec::new();
    for (_, e) in f.expressions.iter() {
        let Expression::Access { base, index } = *e else {
            continue;
        };
        if matches!(
            f.expressions[index],
            Expression::Literal(_) | Expression::Constant(_) | Expression::ZeroValue(_)
        ) {
            continue; // a constant index: a register, whatever the driver unrolls
        }
        let private = match info[base].ty.inner_with(&m.types) {
            TypeInner::Array { .. } => true,
            TypeInner::Pointer { base, space } => {
                matches!(m.types[*base].inner, TypeInner::Array { .. })
                    && matches!(space, AddressSpace::Function | AddressSpace::Private)
            }
            _ => false,
        };
        if private {
            found.push(fname.to_string());
        }
    }
    found
}

/// The functions `block` calls, recursively through nested blocks.
fn callees(block: &naga::Block, out: &mut Vec<naga::Handle<naga::Function>>) {
    use naga::Statement as S;
    for st in block.iter() {
        match st {
            S::Call { function, .. } => out.push(*function),
            S::Block(b) => callees(b, out),
            S::If { accept, reject, .. } => {
                callees(accept, out);
                callees(reject, out);
            }
            S::Loop {
                body, continuing, ..
            } => {
                callees(body, out);
                callees(continuing, out);
            }
            S::Switch { cases, .. } => cases.iter().for_each(|c| callees(&c.body, out)),
            _ => {}
        }
    }
}

/// Entry points allowed a private array indexed at run time (in them or anything they
/// call), each with its reason. A driver that does not unroll the loop over such an array
/// keeps it in local memory (NVIDIA reported 64 to 256 bytes per thread for several of
/// these), where a load stored into it waits for its data at once. Every other entry point
/// keeps its per-thread data in registers by construction, as `topk_one_pass_wide` does.
const PRIVATE_ARRAYS: &[(&str, &str)] = &[
    // One accumulator per 16-wide slice of the head dimension (an override).
    (
        "dense_attention",
        "per-thread output accumulators over head-dim chunks",
    ),
    (
        "dense_backward_dq",
        "per-thread dq accumulators over head-dim chunks",
    ),
    (
        "dense_backward_dkv",
        "per-thread dk, dv accumulators over head-dim chunks",
    ),
    (
        "sampling_attention",
        "per-thread sample and accumulator lists",
    ),
    ("leverage_gram", "per-thread Gram row"),
    // Loads held across a pipeline-constant loop; NVIDIA unrolls these (no local memory).
    ("topk_histogram", "KEY_LOADS keys in flight"),
    ("topk_compact", "COMPACT_RUN keys per thread"),
];

#[test]
fn private_arrays_only_where_allowed() {
    for (name, src) in ALL {
        let (m, info) = validate(name, &module(name, src), spv::supported_capabilities());
        for (i, ep) in m.entry_points.iter().enumerate() {
            let entry = ep.name.as_str();
            let mut found =
                dynamic_private_arrays(&m, &ep.function, info.get_entry_point(i), entry);
            let mut todo = Vec::new();
            callees(&ep.function.body, &mut todo);
            let mut seen = Vec::new();
            while let Some(h) = todo.pop() {
                if seen.contains(&h) {
                    continue;
                }
                seen.push(h);
                let f = &m.functions[h];
                found.extend(dynamic_private_arrays(
                    &m,
                    f,
                    &info[h],
                    f.name.as_deref().unwrap_or("?"),
                ));
                callees(&f.body, &mut todo);
            }
            found.sort();
            found.dedup();
            let allowed = PRIVATE_ARRAYS.iter().any(|&(e, _)| e == entry);
            // An allowance that is no longer needed goes, so the list stays true.
            assert_eq!(
                !found.is_empty(),
                allowed,
                "{name}::{entry}: private arrays indexed at run time in {found:?}"
            );
        }
    }
}
