//! GpuContext and GpuBuffer: round trips, limits, borrowed devices, device loss, the
//! pipeline cache.

use crate::common;

use knn_attention::kernels::rng_fill::{RngFill, RngKey};
use knn_attention::kernels::topk::{Strategy, Topk, TopkConfig, TopkInput};
use knn_attention::reference::rng_fill::rng_fill_bits;
use knn_attention::reference::topk::topk as topk_ref;
use knn_attention::{Error, GpuBuffer, GpuContext, ShaderChecks};

#[test]
fn buffers_round_trip_any_pod_type_and_length() {
    let ctx = gpu_or_skip!();
    let f: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5 - 7.0).collect();
    assert_eq!(
        GpuBuffer::from_slice(&ctx, &f, "f")
            .unwrap()
            .read(&ctx)
            .unwrap(),
        f
    );
    // 2-byte elements with an odd count exercise the 4-byte copy padding.
    let h: Vec<u16> = vec![1, 2, 65535];
    let b = GpuBuffer::from_slice(&ctx, &h, "h").unwrap();
    assert_eq!(b.len(), 3);
    assert_eq!(b.read(&ctx).unwrap(), h);
    let e = GpuBuffer::<u32>::zeroed(&ctx, 0, "empty").unwrap();
    assert!(e.is_empty() && e.read(&ctx).unwrap().is_empty());
    // Partial writes land where asked.
    let w = GpuBuffer::<u32>::zeroed(&ctx, 8, "w").unwrap();
    w.write(&ctx, 4, &[9, 8]).unwrap();
    assert_eq!(w.read(&ctx).unwrap(), vec![0, 0, 0, 0, 9, 8, 0, 0]);
}

#[test]
fn oversized_buffers_and_writes_are_typed_errors() {
    let ctx = gpu_or_skip!();
    let max = ctx.limits().max_buffer_size;
    let too_many = usize::try_from(max / 4 + 1).unwrap_or(usize::MAX);
    match GpuBuffer::<f32>::zeroed(&ctx, too_many, "huge") {
        Err(Error::BufferTooLarge { limit, max: m, .. }) => {
            assert_eq!(limit, "max_buffer_size");
            assert_eq!(m, max);
        }
        other => panic!("expected BufferTooLarge, got {other:?}"),
    }
    assert!(matches!(
        GpuBuffer::<u64>::zeroed(&ctx, usize::MAX, "overflow"),
        Err(Error::BufferTooLarge { .. })
    ));
    let b = GpuBuffer::<u32>::zeroed(&ctx, 4, "small").unwrap();
    assert!(matches!(
        b.write(&ctx, 2, &[1, 2, 3]),
        Err(Error::InvalidShape { arg: "data", .. })
    ));
}

#[test]
fn async_readback_completes_while_the_device_is_polled() {
    let ctx = gpu_or_skip!();
    let data: Vec<u32> = (0..4096).collect();
    let b = GpuBuffer::from_slice(&ctx, &data, "async").unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (device, done) = (ctx.device.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = device.poll(wgpu::PollType::Poll);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let got = pollster::block_on(b.read_async(&ctx)).unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    poller.join().unwrap();
    assert_eq!(got, data);
}

#[test]
fn borrowed_device_runs_kernels() {
    if common::gpu().is_none() {
        return;
    }
    // An application creates its own device; the library borrows it.
    let ctx = common::borrowed_context(wgpu::Limits::default());
    assert_eq!(*ctx.limits(), wgpu::Limits::default());
    assert!(!ctx.capabilities().subgroups && !ctx.capabilities().timestamps);
    let key = RngKey {
        seed: 5,
        stream: 6,
        counter: 7,
    };
    let got = RngFill::new(&ctx).unwrap().run_bits(999, key).unwrap();
    assert_eq!(got, rng_fill_bits(999, key));
}

#[test]
fn owned_context_reports_its_adapter_and_limits() {
    let ctx = gpu_or_skip!();
    assert!(!ctx.adapter_info.name.is_empty());
    // The context asks for the adapter's limits, which are at least WebGPU's defaults.
    assert!(ctx.limits().max_storage_buffer_binding_size >= 128 << 20);
}

#[test]
fn device_loss_becomes_an_error_on_the_next_call() {
    if common::gpu().is_none() {
        return;
    }
    let ctx = GpuContext::new_blocking().unwrap();
    let fill = RngFill::new(&ctx).unwrap();
    ctx.device.destroy();
    let _ = ctx.wait(None);
    assert!(matches!(ctx.check(), Err(Error::DeviceLost(_))));
    assert!(matches!(
        fill.run_bits(16, RngKey::default()),
        Err(Error::DeviceLost(_))
    ));
}

/// Kernels built again (another shape, on a clone of the context) reuse the compiled
/// pipelines; a new pipeline constant is a new pipeline; and kernels sharing pipelines run
/// side by side in one encoder with correct results (their bind groups fit the shared
/// layouts).
#[test]
fn kernels_built_again_reuse_compiled_pipelines() {
    let _shared = gpu_or_skip!();
    // A context of its own, so that no other test adds to its cache meanwhile.
    let ctx = GpuContext::new_blocking().unwrap();
    let cfg = |n| TopkConfig {
        rows: 2,
        n,
        k: 5,
        strategy: Strategy::Radix,
        ..Default::default()
    };
    assert_eq!(ctx.pipelines_compiled(), 0);
    let a = Topk::new(&ctx, cfg(3000)).unwrap();
    let first = ctx.pipelines_compiled();
    // histogram, compaction, and the two sort steps
    assert_eq!(first, 4);
    let b = Topk::new(&ctx.clone(), cfg(3100)).unwrap();
    assert_eq!(
        ctx.pipelines_compiled(),
        first,
        "same kernels, another shape"
    );
    // One chunk for both rows: another COMPACT_RUN, so one more compaction pipeline.
    let c = Topk::new(
        &ctx,
        TopkConfig {
            radix_groups: Some(1),
            ..cfg(40000)
        },
    )
    .unwrap();
    assert_eq!(
        ctx.pipelines_compiled(),
        first + 1,
        "a new pipeline constant"
    );

    let mut enc = ctx.encoder("three top-k");
    let mut runs = Vec::new();
    for (i, topk) in [&a, &b, &c].into_iter().enumerate() {
        let cfg = *topk.config();
        let data = common::normal_data(cfg.rows * cfg.n, i as u64);
        let scores = GpuBuffer::from_slice(&ctx, &data, "scores").unwrap();
        let out = topk.outputs().unwrap();
        topk.encode(&mut enc, TopkInput::new(&scores), &out)
            .unwrap();
        runs.push((cfg, data, scores, out));
    }
    ctx.submit_and_wait(enc).unwrap();
    for (cfg, data, _scores, out) in &runs {
        let want = topk_ref(data, cfg, 0, None).unwrap();
        assert_eq!(out.read(&ctx).unwrap(), want, "n = {}", cfg.n);
    }
}

/// Shader-check specs read back as written, every field by name, and bad names are typed
/// errors.
#[test]
fn shader_checks_parse_and_print() {
    assert_eq!("all".parse::<ShaderChecks>().unwrap(), ShaderChecks::ALL);
    assert_eq!("none".parse::<ShaderChecks>().unwrap(), ShaderChecks::NONE);
    assert_eq!(
        "default".parse::<ShaderChecks>().unwrap(),
        ShaderChecks::DEFAULT
    );
    // The crate's default drops loop bounding only (README: it costs up to 2.7× on an H200).
    assert_eq!(ShaderChecks::default(), ShaderChecks::DEFAULT);
    assert_eq!(
        ShaderChecks::DEFAULT,
        ShaderChecks {
            loop_bounding: false,
            ..ShaderChecks::ALL
        }
    );
    let kept: ShaderChecks = " bounds, zero-workgroup-memory".parse().unwrap();
    assert_eq!(
        kept,
        ShaderChecks {
            bounds: true,
            zero_workgroup_memory: true,
            ..ShaderChecks::NONE
        }
    );
    for name in ShaderChecks::NAMES {
        let one: ShaderChecks = name.parse().unwrap();
        assert_eq!(one.to_string(), name);
        assert_ne!(one, ShaderChecks::NONE, "{name} sets a field");
    }
    let all = ShaderChecks::NAMES.join(",");
    assert_eq!(all.parse::<ShaderChecks>().unwrap(), ShaderChecks::ALL);
    for c in [
        ShaderChecks::ALL,
        ShaderChecks::NONE,
        ShaderChecks::DEFAULT,
        kept,
    ] {
        assert_eq!(c.to_string().parse::<ShaderChecks>().unwrap(), c);
    }
    for bad in ["", "bound", "bounds,,loop-bounding", "ALL"] {
        assert!(
            matches!(bad.parse::<ShaderChecks>(), Err(Error::InvalidShape { .. })),
            "{bad:?}"
        );
    }
}

/// A context with other shader checks compiles its own pipelines (the two never share one)
/// and leaves the context it came from as it was; its kernels give the reference's results,
/// with every check off and with all of wgpu's (the default has all but loop bounding).
#[test]
fn contexts_with_other_shader_checks_compile_their_own_pipelines() {
    let _shared = gpu_or_skip!();
    let ctx = GpuContext::new_blocking().unwrap();
    assert_eq!(ctx.shader_checks(), ShaderChecks::DEFAULT);
    let cfg = TopkConfig {
        rows: 3,
        n: 700,
        k: 9,
        strategy: Strategy::OnePass,
        ..Default::default()
    };
    let _checked = Topk::new(&ctx, cfg).unwrap();
    let compiled = ctx.pipelines_compiled();
    // SAFETY: the test suite runs every kernel with the checks off (suite.rs).
    let bare = unsafe { ctx.with_shader_checks(ShaderChecks::NONE) };
    assert_eq!(bare.shader_checks(), ShaderChecks::NONE);
    assert_eq!(ctx.shader_checks(), ShaderChecks::DEFAULT);
    assert_eq!(bare.pipelines_compiled(), 0);
    let topk = Topk::new(&bare, cfg).unwrap();
    assert_eq!(bare.pipelines_compiled(), compiled);
    assert_eq!(
        ctx.pipelines_compiled(),
        compiled,
        "the first cache is untouched"
    );
    let data = common::normal_data(cfg.rows * cfg.n, 7);
    let want = topk_ref(&data, &cfg, 0, None).unwrap();
    assert_eq!(topk.run(&data, None).unwrap(), want);
    let all = ctx.with_all_shader_checks();
    assert_eq!(all.shader_checks(), ShaderChecks::ALL);
    assert_eq!(all.pipelines_compiled(), 0);
    assert_eq!(
        Topk::new(&all, cfg).unwrap().run(&data, None).unwrap(),
        want
    );
}

/// A kernel's bind groups are reused only when everything in them is identical (layout,
/// uniform bytes, each buffer binding), and only from its last call.
#[test]
fn bind_groups_are_reused_only_when_identical() {
    use knn_attention::shader::{BindGroupMemo, BindingKind, bind_group_layout};
    let ctx = gpu_or_skip!();
    let layout = bind_group_layout(&ctx, "memo", &[BindingKind::Uniform, BindingKind::Read]);
    let other = bind_group_layout(
        &ctx,
        "memo",
        &[BindingKind::Uniform, BindingKind::ReadWrite],
    );
    let (a, b) = (
        GpuBuffer::<f32>::zeroed(&ctx, 256, "a").unwrap(),
        GpuBuffer::<f32>::zeroed(&ctx, 256, "b").unwrap(),
    );
    fn half(buf: &GpuBuffer<f32>, offset: u64) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: buf.buffer(),
            offset,
            size: std::num::NonZeroU64::new(512),
        })
    }
    let memo = BindGroupMemo::default();
    let p = [1u32, 2, 3, 4];
    let first = memo.call().group(&ctx, &layout, &p, &[a.binding()]);
    let mut call = memo.call();
    assert_eq!(call.group(&ctx, &layout, &p, &[a.binding()]), first);
    let variants = [
        call.group(&ctx, &layout, &[1u32, 2, 3, 5], &[a.binding()]),
        call.group(&ctx, &layout, &p, &[b.binding()]),
        call.group(&ctx, &layout, &p, &[half(&a, 0)]),
        call.group(&ctx, &layout, &p, &[half(&a, 512)]),
        call.group(&ctx, &other, &p, &[a.binding()]),
    ];
    for (i, g) in variants.iter().enumerate() {
        assert_ne!(*g, first, "variant {i} reused the first group");
        for h in &variants[..i] {
            assert_ne!(g, h, "variant {i} reused an earlier variant");
        }
    }
    // Within a call, an identical group is the same one.
    assert_eq!(call.group(&ctx, &layout, &p, &[b.binding()]), variants[1]);
    drop(call);
    // The memo keeps the last call's groups only.
    assert_eq!(
        memo.call().group(&ctx, &layout, &p, &[b.binding()]),
        variants[1]
    );
    assert_ne!(memo.call().group(&ctx, &layout, &p, &[a.binding()]), first);
    // Explicit binding numbers are part of the group: the same buffers, swapped.
    let two = bind_group_layout(
        &ctx,
        "memo2",
        &[BindingKind::Uniform, BindingKind::Read, BindingKind::Read],
    );
    let mut call = memo.call();
    let ab = call.group_at(&ctx, &two, &p, &[(1, a.binding()), (2, b.binding())]);
    assert_eq!(call.group(&ctx, &two, &p, &[a.binding(), b.binding()]), ab);
    assert_ne!(
        call.group_at(&ctx, &two, &p, &[(2, a.binding()), (1, b.binding())]),
        ab
    );
    drop(call);
    // Groups without a uniform are keyed by layout and buffers alike.
    let plain = bind_group_layout(&ctx, "memo-plain", &[BindingKind::Read]);
    let mut call = memo.call();
    let pa = call.group_without_uniform(&ctx, &plain, &[a.binding()]);
    assert_ne!(call.group_without_uniform(&ctx, &plain, &[b.binding()]), pa);
    drop(call);
    assert_eq!(
        memo.call()
            .group_without_uniform(&ctx, &plain, &[a.binding()]),
        pa
    );
    let kept = memo.call().group(&ctx, &layout, &p, &[a.binding()]);
    assert_eq!(memo.call().group(&ctx, &layout, &p, &[a.binding()]), kept);
    memo.forget();
    assert_ne!(memo.call().group(&ctx, &layout, &p, &[a.binding()]), kept);
}
