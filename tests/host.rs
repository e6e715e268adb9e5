//! The host layer: the host app's own device and encoder, wrapped buffers, async readback, typed errors, the
//! pipeline cache and one context shared by threads.

mod common;

use actgpu::verify::{compare, F32_ELEMENTWISE};
use actgpu::{cpu, wgpu, Activation, DType, Error, Gpu, GpuOptions, Tensor};
use common::gpu;

/// A device created the way a host application would, with plain wgpu.
fn host_device() -> (wgpu::Device, wgpu::Queue) {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .unwrap_or_else(|e| panic!("no adapter ({e}); {}", actgpu::NO_ADAPTER_HINT));
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).unwrap()
}

/// The storage-binding size the kernels plan with is capped where their u32 index arithmetic ends, whatever the
/// device reports (Metal reports its whole buffer length), and never above the device's own limit.
#[test]
fn the_binding_limit_is_capped_for_u32_indexing() {
    let g = gpu();
    let planned = g.limits().max_storage_buffer_binding_size;
    assert!(planned <= actgpu::MAX_BINDING_BYTES, "{planned}");
    assert!(planned <= g.device().limits().max_storage_buffer_binding_size);
}

/// `Gpu::host_cpu` names the host processor exactly where the adapter is a CPU adapter, whose speed depends on it.
#[test]
fn a_cpu_adapter_names_its_host_processor() {
    let g = gpu();
    let cpu = g.adapter_info().device_type == wgpu::DeviceType::Cpu;
    match g.host_cpu() {
        Some(line) => {
            assert!(cpu, "host_cpu() is for CPU adapters: {line}");
            assert!(line.contains(std::env::consts::ARCH), "{line}");
            assert!(line.contains(" threads"), "{line}");
        }
        None => assert!(!cpu, "a CPU adapter names its host: {}", g.adapter_line()),
    }
}

#[test]
fn records_into_the_host_apps_own_device_and_encoder() {
    let (device, queue) = host_device();
    let gpu = Gpu::from_device(device.clone(), queue.clone());
    let xs: Vec<f32> = (0..1001).map(|i| i as f32 / 50.0 - 10.0).collect();
    // The host owns the buffers too.
    let make = |label| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: actgpu::padded_bytes(xs.len(), DType::F32),
            usage: actgpu::TENSOR_USAGE,
            mapped_at_creation: false,
        })
    };
    let (xb, yb, gb) = (make("x"), make("y"), make("dx"));
    queue.write_buffer(&xb, 0, bytemuck::cast_slice(&xs));
    let x = Tensor::from_buffer(&gpu, xb, &[xs.len()], DType::F32).unwrap();
    let y = Tensor::from_buffer(&gpu, yb, &[xs.len()], DType::F32).unwrap();
    let dx = Tensor::from_buffer(&gpu, gb, &[xs.len()], DType::F32).unwrap();

    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("host"),
    });
    Activation::Mish
        .record_forward(&mut encoder, &x, &y)
        .unwrap();
    // Backward with y standing in for dy, recorded into the same encoder after the forward.
    Activation::Mish
        .record_backward(&mut encoder, &x, &y, &dx)
        .unwrap();
    queue.submit([encoder.finish()]);

    let fwd: Vec<f64> = xs
        .iter()
        .map(|&v| cpu::activation::forward(Activation::Mish, v.into()))
        .collect();
    let got_y = y.read::<f32>().unwrap();
    assert!(compare(&xs, &got_y, &fwd, F32_ELEMENTWISE, false).ok());
    let bwd: Vec<f64> = xs
        .iter()
        .zip(&got_y)
        .map(|(&v, &d)| cpu::activation::backward(Activation::Mish, v.into(), d.into()))
        .collect();
    let c = compare(
        &xs,
        &dx.read::<f32>().unwrap(),
        &bwd,
        F32_ELEMENTWISE,
        false,
    );
    assert!(c.ok(), "{c:#?}");
}

#[test]
fn async_readback_returns_the_same_as_blocking() {
    let x = gpu().upload(&[1.5f32, -2.0, 3.25, 0.0, -0.0]).unwrap();
    let y = Activation::Relu.forward(&x).unwrap();
    let blocking = y.read::<f32>().unwrap();
    let asynchronous = futures::executor::block_on(y.read_async::<f32>()).unwrap();
    assert_eq!(blocking, asynchronous);
    assert_eq!(blocking, vec![1.5, 0.0, 3.25, 0.0, 0.0]);
    let empty = gpu().upload::<f32>(&[]).unwrap();
    assert!(empty.read::<f32>().unwrap().is_empty());
    assert!(futures::executor::block_on(empty.read_async::<f32>())
        .unwrap()
        .is_empty());
}

#[test]
fn caller_mistakes_are_typed_errors() {
    let g = gpu();
    let a = g.upload(&[1.0f32; 10]).unwrap();
    let b = g.upload(&[1.0f32; 11]).unwrap();
    assert!(matches!(
        Activation::Relu.forward_into(&a, &b),
        Err(Error::ShapeMismatch { op: "relu", ref expected, ref got }) if expected == &[10] && got == &[11]
    ));
    assert!(matches!(
        Activation::Relu.backward(&a, &b),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        Activation::Relu.forward_into(&a, &a),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Activation::Celu { alpha: 0.0 }.forward(&a),
        Err(Error::InvalidArgument { op: "celu", .. })
    ));
    assert!(matches!(
        g.upload_shaped(&[1.0f32; 5], &[2, 3]),
        Err(Error::ShapeMismatch { op: "upload", .. })
    ));
    assert!(matches!(
        g.zeros(&[usize::MAX, 2], DType::F32),
        Err(Error::InvalidArgument { .. })
    ));
    let too_big = g.limits().max_buffer_size / 4 + 1;
    assert!(matches!(
        g.zeros(&[too_big as usize], DType::F32),
        Err(Error::LimitExceeded {
            limit: "max_buffer_size",
            ..
        })
    ));
    assert!(matches!(
        a.write(&[1.0f32; 3]),
        Err(Error::ShapeMismatch { .. })
    ));

    // Tensors of two contexts do not mix.
    let other = Gpu::new().unwrap();
    let c = other.upload(&[1.0f32; 10]).unwrap();
    assert!(matches!(
        Activation::Relu.forward_into(&a, &c),
        Err(Error::DeviceMismatch { .. })
    ));
}

#[test]
fn wrapped_buffers_are_checked() {
    let g = gpu();
    let uniform = g.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 64,
        usage: wgpu::BufferUsages::UNIFORM,
        mapped_at_creation: false,
    });
    assert!(matches!(
        Tensor::from_buffer(g, uniform, &[4], DType::F32),
        Err(Error::MissingUsage { .. })
    ));
    let small = g.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 16,
        usage: actgpu::TENSOR_USAGE,
        mapped_at_creation: false,
    });
    assert!(matches!(
        Tensor::from_buffer(g, small, &[5], DType::F32),
        Err(Error::InvalidArgument { .. })
    ));
    // Large enough, but no storage binding may be 34 bytes long.
    let unaligned = g.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 34,
        usage: actgpu::TENSOR_USAGE,
        mapped_at_creation: false,
    });
    match Tensor::from_buffer(g, unaligned, &[8], DType::F32) {
        Err(Error::InvalidArgument { reason, .. }) => {
            assert!(reason.contains("multiple of 4"), "{reason}")
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    let no_copy = g.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 32,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let t = Tensor::from_buffer(g, no_copy, &[4], DType::F32).unwrap();
    assert!(matches!(t.read::<f32>(), Err(Error::MissingUsage { .. })));
    // Writing needs COPY_DST, which wgpu would otherwise report to the device's handler, not to the caller.
    assert!(matches!(
        t.write(&[1.0f32; 4]),
        Err(Error::MissingUsage {
            op: "Tensor::write",
            ..
        })
    ));
    // A shape whose bytes overflow u64 is refused, not wrapped to a tiny buffer.
    let block = g.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 32,
        usage: actgpu::TENSOR_USAGE,
        mapped_at_creation: false,
    });
    assert!(Tensor::from_buffer(g, block, &[1 << 62], DType::F32).is_err());
    assert!(matches!(
        g.zeros(&[usize::MAX], DType::F32),
        Err(Error::LimitExceeded { .. })
    ));
    assert_eq!(actgpu::padded_bytes(usize::MAX, DType::F32), u64::MAX);
}

#[test]
fn bad_options_are_typed_errors() {
    let with = |options: GpuOptions| Gpu::with_options(options).map(|_| ());
    // No backend at all (as a misspelt WGPU_BACKEND gives) is said as such, not as "no adapter found".
    let r = with(GpuOptions {
        backends: Some(wgpu::Backends::empty()),
        ..GpuOptions::default()
    });
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    for launch in [(0, 1), (64, 0)] {
        let r = with(GpuOptions {
            launch: Some(actgpu::LaunchConfig {
                workgroup_size: launch.0,
                units_per_thread: launch.1,
            }),
            ..GpuOptions::default()
        });
        assert!(
            matches!(r, Err(Error::InvalidArgument { .. })),
            "{launch:?}: {r:?}"
        );
    }
    let r = with(GpuOptions {
        launch: Some(actgpu::LaunchConfig {
            workgroup_size: 1 << 20,
            units_per_thread: 1,
        }),
        ..GpuOptions::default()
    });
    assert!(matches!(r, Err(Error::LimitExceeded { .. })), "{r:?}");
    let r = with(GpuOptions {
        max_workgroups_per_dimension: Some(0),
        ..GpuOptions::default()
    });
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    // Units per workgroup past what the kernels index in u32, and a binding limit no chunk could fit.
    let r = with(GpuOptions {
        launch: Some(actgpu::LaunchConfig {
            workgroup_size: 64,
            units_per_thread: 1 << 30,
        }),
        ..GpuOptions::default()
    });
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    let r = with(GpuOptions {
        max_storage_binding_bytes: Some(40),
        ..GpuOptions::default()
    });
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    // The same limit reached through cap_limits.
    let r = with(GpuOptions {
        cap_limits: Some(wgpu::Limits {
            max_storage_buffer_binding_size: 40,
            ..Gpu::MINIMUM_LIMITS
        }),
        ..GpuOptions::default()
    });
    assert!(
        matches!(&r, Err(Error::InvalidArgument { reason, .. }) if reason.contains("cap_limits")),
        "{r:?}"
    );
    // A launch too wide for any device, fitted to the limits, saturates rather than overflowing.
    let huge = actgpu::LaunchConfig {
        workgroup_size: u32::MAX,
        units_per_thread: u32::MAX,
    };
    assert_eq!(
        huge.fit(&wgpu::Limits::default()).units_per_thread,
        u32::MAX
    );
    assert!(actgpu::dispatch::grid(5, 0).is_err());
    assert_eq!(actgpu::dispatch::chunks(3, 64, 16, 0).len(), 1);
}

#[test]
fn a_host_device_takes_the_per_context_options() {
    let launch = actgpu::LaunchConfig {
        workgroup_size: 32,
        units_per_thread: 2,
    };
    let (device, queue) = host_device();
    let options = GpuOptions {
        launch: Some(launch),
        f16_storage: actgpu::F16Storage::Packed,
        ..GpuOptions::default()
    };
    let gpu = Gpu::from_device_with_options(device, queue, &options).unwrap();
    assert_eq!(gpu.launch_config(), launch);
    let x = gpu.upload(&[-1.0f32, 2.0, -3.0]).unwrap();
    let y: Vec<f32> = Activation::Relu.forward(&x).unwrap().read().unwrap();
    assert_eq!(y, [0.0, 2.0, 0.0]);
    let (device, queue) = host_device();
    let zero = GpuOptions {
        launch: Some(actgpu::LaunchConfig {
            workgroup_size: 0,
            units_per_thread: 1,
        }),
        ..GpuOptions::default()
    };
    assert!(matches!(
        Gpu::from_device_with_options(device, queue, &zero),
        Err(Error::InvalidArgument { .. })
    ));
}

/// A read whose copy wgpu refuses (the wrapped buffer was destroyed) is an error, not the staging buffer's
/// zeros, and the error does not wait in the uncaptured list for the next operation.
#[test]
fn a_refused_readback_is_an_error() {
    let g = gpu();
    let buffer = g.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 32,
        usage: actgpu::TENSOR_USAGE,
        mapped_at_creation: false,
    });
    let t = Tensor::from_buffer(g, buffer.clone(), &[8], DType::F32).unwrap();
    buffer.destroy();
    let r = t.read::<f32>();
    assert!(
        matches!(
            r,
            Err(Error::Wgpu {
                op: "Tensor::read",
                ..
            })
        ),
        "{r:?}"
    );
    let ok = g.upload(&[1.0f32, -1.0]).unwrap();
    assert_eq!(
        Activation::Relu
            .forward(&ok)
            .unwrap()
            .read::<f32>()
            .unwrap(),
        [1.0, 0.0]
    );
}

#[test]
fn wgpu_validation_errors_are_captured_not_panicked() {
    let g = gpu();
    let a = g.upload(&[1.0f32; 8]).unwrap();
    let b = g.upload(&[1.0f32; 8]).unwrap();
    // A copy of 3 bytes violates wgpu's 4-byte alignment rule.
    let r = g.submit_and_wait("bad_copy", |enc| {
        enc.copy_buffer_to_buffer(a.buffer(), 0, b.buffer(), 0, 3);
        Ok(())
    });
    assert!(
        matches!(r, Err(Error::Wgpu { op: "bad_copy", .. })),
        "{r:?}"
    );
    // The context stays usable.
    assert_eq!(
        Activation::Relu.forward(&a).unwrap().read::<f32>().unwrap(),
        vec![1.0; 8]
    );
}

#[test]
fn a_lost_device_is_an_error_on_every_later_call() {
    let g = Gpu::new().unwrap();
    let x = g.upload(&[1.0f32; 4]).unwrap();
    g.device().destroy();
    let _ = g.wait();
    assert!(matches!(g.check_lost(), Err(Error::DeviceLost { .. })));
    assert!(matches!(
        Activation::Relu.forward(&x),
        Err(Error::DeviceLost { .. })
    ));
    assert!(matches!(x.read::<f32>(), Err(Error::DeviceLost { .. })));
}

/// The same before anything has polled the device: wgpu runs its lost callback only at a poll, and until then
/// the lost device's buffers are merely invalid, which wgpu's `create_buffer_init` (once used for every kernel's
/// parameters) answered with a panic. Every call is an error, and DeviceLost on a device actgpu made.
#[test]
fn a_device_destroyed_without_a_poll_is_an_error_not_a_panic() {
    let g = Gpu::new().unwrap();
    let x = g.upload_shaped(&[0.5f32, -1.0], &[1, 2]).unwrap();
    let mut net = actgpu::Mlp::new(
        &g,
        &[2, 4, 2],
        &[Activation::Gelu],
        actgpu::Loss::SoftmaxCrossEntropy,
        actgpu::Optimizer::Adam(actgpu::Adam::new(0.01)),
        1,
    )
    .unwrap();
    let labels = actgpu::Labels::upload(&g, &[1], 2).unwrap();
    g.device().destroy();
    let lost = |what: &str, r: Result<(), Error>| {
        assert!(
            matches!(r, Err(Error::DeviceLost { .. })),
            "{what} after destroy: {r:?}"
        )
    };
    lost("forward", Activation::Gelu.forward(&x).map(drop));
    lost("upload", g.upload(&[1.0f32]).map(drop));
    lost(
        "matmul",
        actgpu::matmul(&x, &x.reshape(&[2, 1]).unwrap()).map(drop),
    );
    lost(
        "train_step",
        net.train_step(&x, actgpu::Targets::Classes(&labels)),
    );
    lost("predict", net.predict(&x).map(drop));

    // A host's device: actgpu has no lost callback there, so the errors are whatever wgpu reports, typed. A read
    // is one too: the staging buffer's map, refused on the destroyed device, used to reach wgpu's default
    // handler (a panic) from outside the read's error scopes.
    let (device, queue) = host_device();
    let host = Gpu::from_device(device.clone(), queue);
    let x = host.upload(&[1.0f32, 2.0]).unwrap();
    device.destroy();
    assert!(Activation::Gelu.forward(&x).is_err());
    assert!(host.upload(&[1.0f32]).is_err());
    let r = x.read::<f32>();
    assert!(
        r.is_err(),
        "read after the host destroyed its device: {r:?}"
    );
    let r = pollster::block_on(x.read_async::<f32>());
    assert!(
        r.is_err(),
        "read_async after the host destroyed its device: {r:?}"
    );
}

/// Read-only operands may share a buffer (dy = x), as the plain activation backward allows; an output that
/// shares one is refused with a message that does not send the caller to an in-place variant these ops lack.
#[test]
fn fused_ops_take_aliased_inputs_and_refuse_aliased_outputs() {
    let g = gpu();
    let xs = [-1.5f32, -0.25, 0.5, 2.0, 0.75, -3.0];
    let x = g.upload_shaped(&xs, &[3, 2]).unwrap();
    let b = g.upload(&[0.25f32, -0.5]).unwrap();
    let (dx, db) = Activation::Gelu.bias_backward(&x, &b, &x).unwrap();
    let wide: Vec<f64> = xs.iter().map(|&v| f64::from(v)).collect();
    let (want_dx, want_db) =
        cpu::fused::bias_backward(Activation::Gelu, &wide, &[0.25, -0.5], &wide);
    let c = compare(
        &xs,
        &dx.read::<f32>().unwrap(),
        &want_dx,
        F32_ELEMENTWISE,
        false,
    );
    assert!(c.ok(), "bias backward with dy = x: {c:?}");
    let c = compare(
        &[0.0; 2],
        &db.read::<f32>().unwrap(),
        &want_db,
        F32_ELEMENTWISE,
        false,
    );
    assert!(c.ok(), "db with dy = x: {c:?}");
    let p = g.upload(&[0.25f32, 0.5]).unwrap();
    let (dx, _) = actgpu::Learnable::Prelu.backward(&x, &p, &x).unwrap();
    let want: Vec<f32> = xs
        .iter()
        .enumerate()
        .map(|(i, &v)| if v > 0.0 { v } else { [0.25, 0.5][i % 2] * v })
        .collect();
    assert_eq!(
        dx.read::<f32>().unwrap(),
        want,
        "PReLU backward with dy = x"
    );
    let mut enc = g.device().create_command_encoder(&Default::default());
    for r in [
        Activation::Gelu.record_bias_forward(&mut enc, &x, &b, &x),
        actgpu::Learnable::Prelu.record_forward(&mut enc, &x, &p, &x),
    ] {
        match r {
            Err(Error::InvalidArgument { reason, .. }) => {
                assert!(!reason.contains("in-place"), "{reason}")
            }
            other => panic!("an output aliasing x: {other:?}"),
        }
    }
}

#[test]
fn pipeline_cache_reuses_keys_and_compiles_new_constants() {
    let g = Gpu::with_options(GpuOptions::default()).unwrap();
    let x = g.upload(&[-1.0f32, 2.0]).unwrap();
    assert!(g.pipelines().is_empty());
    assert!(g.pipelines().compile_time().is_zero());
    Activation::leaky_relu().forward(&x).unwrap();
    assert_eq!(g.pipelines().len(), 1);
    let compiled = g.pipelines().compile_time();
    assert!(!compiled.is_zero(), "creating a pipeline takes time");
    Activation::leaky_relu().forward(&x).unwrap();
    assert_eq!(g.pipelines().len(), 1, "the same key is reused");
    assert_eq!(
        g.pipelines().compile_time(),
        compiled,
        "and costs no compilation"
    );
    let y = Activation::LeakyRelu {
        negative_slope: 0.25,
    }
    .forward(&x)
    .unwrap();
    assert_eq!(
        g.pipelines().len(),
        2,
        "a new constant compiles a new pipeline"
    );
    assert_eq!(y.read::<f32>().unwrap(), vec![-0.25, 2.0]);
    Activation::leaky_relu()
        .backward(&x, &x.zeros_like().unwrap())
        .unwrap();
    assert_eq!(
        g.pipelines().len(),
        3,
        "another entry point is another pipeline"
    );
}

/// The results of bias + activation forward and backward (dx, db) over `[200, 24]` (more than the one-dispatch
/// reduction's 128 rows, so db goes through the context's shared scratch buffer), as bits.
fn bias_round_trip(g: &Gpu, act: Activation) -> [Vec<u32>; 3] {
    let (rows, cols) = (200, 24);
    let xs: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 8.0)
        .collect();
    let x = g.upload_shaped(&xs, &[rows, cols]).unwrap();
    let bias: Vec<f32> = (0..cols).map(|c| c as f32 / 10.0 - 1.0).collect();
    let b = g.upload(&bias).unwrap();
    let y = act.bias_forward(&x, &b).unwrap();
    let (dx, db) = act.bias_backward(&x, &b, &y).unwrap();
    let bits = |t: &Tensor| {
        t.read::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    };
    [bits(&y), bits(&dx), bits(&db)]
}

#[test]
fn one_context_serves_many_threads() {
    // Each thread records and submits on its own; they share the device, the pipeline cache (empty at the start,
    // so they race to create the same pipelines) and the scratch buffer of the two-pass column sums.
    let acts = [
        Activation::Gelu,
        Activation::Relu,
        Activation::Tanh,
        Activation::Silu,
    ];
    let g = Gpu::with_options(GpuOptions::default()).unwrap();
    let threaded: Vec<Vec<[Vec<u32>; 3]>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let g = g.clone();
                // Every thread runs every activation, each starting at a different one.
                s.spawn(move || {
                    (0..acts.len())
                        .map(|k| bias_round_trip(&g, acts[(t + k) % acts.len()]))
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let fresh = Gpu::with_options(GpuOptions::default()).unwrap();
    let alone: Vec<[Vec<u32>; 3]> = acts.iter().map(|&a| bias_round_trip(&fresh, a)).collect();
    for (t, results) in threaded.iter().enumerate() {
        for (k, got) in results.iter().enumerate() {
            let a = (t + k) % acts.len();
            assert!(
                got == &alone[a],
                "thread {t}: {:?} differs from the single-threaded run",
                acts[a]
            );
        }
    }
    assert_eq!(
        g.pipelines().len(),
        fresh.pipelines().len(),
        "one cache entry per pipeline, however many threads asked for it"
    );
}

/// The subnormal probe agrees with what the kernels do: relu' of the smallest subnormal is 1 where the device
/// keeps subnormals and 0 where it flushes them (WGSL allows either).
#[test]
fn the_subnormal_probe_agrees_with_the_kernels() {
    let g = gpu();
    let flushes = g.flushes_subnormals().unwrap();
    let x = g.upload(&[f32::from_bits(1), 1.0]).unwrap();
    let dy = g.upload(&[1.0f32, 1.0]).unwrap();
    let dx: Vec<f32> = Activation::Relu.backward(&x, &dy).unwrap().read().unwrap();
    assert_eq!(
        dx,
        [if flushes { 0.0 } else { 1.0 }, 1.0],
        "flushes: {flushes}"
    );
    assert_eq!(g.flushes_subnormals().unwrap(), flushes, "probed once");
}

/// An explicit f16 path applies to the kernels of both intensities; without SHADER_F16 (GL here) it is packed.
#[test]
fn an_explicit_f16_path_applies_to_every_intensity() {
    let has_f16 = common::has_shader_f16();
    for (path, native) in [
        (actgpu::F16Storage::Packed, false),
        (actgpu::F16Storage::Native, has_f16),
    ] {
        let g = Gpu::with_options(GpuOptions {
            f16_storage: path,
            ..GpuOptions::default()
        })
        .unwrap();
        for intensity in [actgpu::Intensity::Streaming, actgpu::Intensity::Arithmetic] {
            assert_eq!(
                g.f16_native_for(intensity),
                native,
                "{path:?} {intensity:?}"
            );
        }
    }
}

/// `GpuOptions::matmul_kernel` is the kernel every product takes, and a network trained with it matches one on
/// the adapter's own kernel to f32 rounding.
#[test]
fn a_chosen_matmul_kernel_runs_every_product() {
    use actgpu::{Labels, Loss, MatmulKernel, Mlp, Optimizer, Sgd, Targets};
    let train = |kernel: Option<MatmulKernel>| -> Vec<f32> {
        let g = Gpu::with_options(GpuOptions {
            matmul_kernel: kernel,
            ..GpuOptions::default()
        })
        .unwrap();
        assert_eq!(
            MatmulKernel::for_gpu(&g),
            kernel.unwrap_or(MatmulKernel::for_gpu(gpu()))
        );
        let mut net = Mlp::new(
            &g,
            &[3, 20, 4],
            &[Activation::Gelu],
            Loss::SoftmaxCrossEntropy,
            Optimizer::Sgd(Sgd::new(0.1)),
            5,
        )
        .unwrap();
        let xs: Vec<f32> = (0..3 * 9)
            .map(|i| ((i * 7) % 11) as f32 / 11.0 - 0.5)
            .collect();
        let x = g.upload_shaped(&xs, &[9, 3]).unwrap();
        let y = Labels::upload(&g, &[0, 1, 2, 3, 0, 1, 2, 3, 0], 4).unwrap();
        for _ in 0..3 {
            net.train_step(&x, Targets::Classes(&y)).unwrap();
        }
        net.predict(&x).unwrap().read().unwrap()
    };
    let default = train(None);
    for kernel in [MatmulKernel::Tiled32, MatmulKernel::Direct] {
        let got = train(Some(kernel));
        for (a, b) in got.iter().zip(&default) {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "{kernel:?}: {a} vs {b}"
            );
        }
    }
}

/// Work recorded into the caller's own encoder: `Gpu::submit` returns its validation errors as typed errors, and
/// on a device `Gpu::new` made, a plain `queue.submit` has them reported by the next wait or read, once, as "an
/// earlier submission" (the crate's own probes, which read too, leave them for it).
#[test]
fn errors_in_the_callers_own_submissions_are_reported() {
    let g = Gpu::new().unwrap();
    let a = g.upload(&[1.0f32; 8]).unwrap();
    let b = g.upload(&[0.0f32; 8]).unwrap();
    let bad = || {
        let mut enc = g.device().create_command_encoder(&Default::default());
        // Past the end of both buffers.
        enc.copy_buffer_to_buffer(a.buffer(), 0, b.buffer(), 0, Some(1 << 20));
        enc
    };
    // The op a result's wgpu error names, if it is one.
    let op = |r: actgpu::Result<()>| match r {
        Err(Error::Wgpu { op, .. }) => Some(op),
        _ => None,
    };
    assert_eq!(op(g.submit("test copy", bad())), Some("test copy"));
    g.wait().unwrap();
    g.queue().submit([bad().finish()]);
    // The crate's own probes (the native-f16 choice probes and times both paths on an adapter with SHADER_F16)
    // neither fail on that error nor swallow it: it stays for the caller's wait.
    let _ = g.f16_native_for(actgpu::Intensity::Arithmetic);
    assert_eq!(op(g.wait()), Some("an earlier submission"));
    g.wait().unwrap();
    // A read reports one the same way, then reads.
    g.queue().submit([bad().finish()]);
    assert_eq!(op(a.read::<f32>().map(drop)), Some("an earlier submission"));
    assert_eq!(a.read::<f32>().unwrap(), vec![1.0; 8]);
    // And good work through submit is Ok, and its result is there.
    let mut enc = g.device().create_command_encoder(&Default::default());
    Activation::Relu.record_forward(&mut enc, &a, &b).unwrap();
    g.submit("relu", enc).unwrap();
    assert_eq!(b.read::<f32>().unwrap(), vec![1.0; 8]);
}

#[test]
fn reshape_shares_the_buffer_and_checks_the_count() {
    let g = gpu();
    let t = g.upload(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let m = t.reshape(&[2, 3]).unwrap();
    assert_eq!((m.shape(), m.dtype()), (&[2, 3][..], DType::F32));
    assert_eq!(m.buffer(), t.buffer());
    assert_eq!(m.read::<f32>().unwrap(), t.read::<f32>().unwrap());
    assert!(matches!(
        t.reshape(&[4, 2]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        t.reshape(&[usize::MAX, 2]),
        Err(Error::LimitExceeded { .. } | Error::InvalidArgument { .. })
    ));
}

/// A buffer the host destroyed, bound by a `record_*` call into the host's encoder or written with
/// `Tensor::write`, is a typed error from that call: the bind group and the write happen inside error scopes,
/// so nothing reaches the host device's handler (wgpu's default one panics).
#[test]
fn a_destroyed_host_buffer_is_an_error_where_it_is_used() {
    let (device, queue) = host_device();
    let g = Gpu::from_device(device.clone(), queue);
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 32,
        usage: actgpu::TENSOR_USAGE,
        mapped_at_creation: false,
    });
    let x = Tensor::from_buffer(&g, buffer.clone(), &[8], DType::F32).unwrap();
    let y = g.zeros(&[8], DType::F32).unwrap();
    buffer.destroy();
    let mut enc = device.create_command_encoder(&Default::default());
    let r = Activation::Relu.record_forward(&mut enc, &x, &y);
    assert!(
        matches!(
            r,
            Err(Error::Wgpu {
                op: "create_bind_group",
                ..
            })
        ),
        "{r:?}"
    );
    let w = x.write(&[0.0f32; 8]);
    assert!(
        matches!(
            w,
            Err(Error::Wgpu {
                op: "Tensor::write",
                ..
            })
        ),
        "{w:?}"
    );
}

/// A pipeline cache serves the device it was first asked with: another device is refused, not handed pipelines
/// it cannot use.
#[test]
fn a_pipeline_cache_refuses_another_device() {
    use actgpu::pipeline::{PipelineCache, PipelineKey};
    use actgpu::shaders::ShaderId;
    // Two devices of one instance: wgpu tells devices apart by an id that is unique within an instance.
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .unwrap_or_else(|e| panic!("no adapter ({e}); {}", actgpu::NO_ADAPTER_HINT));
    let device = || {
        pollster::block_on(adapter.request_device(&Default::default()))
            .unwrap()
            .0
    };
    let (a, b) = (device(), device());
    let cache = PipelineCache::default();
    let key = PipelineKey::new(ShaderId::Optim, "sgd", 64, &[]);
    cache.get_or_create(&a, &key).unwrap();
    assert!(matches!(
        cache.get_or_create(&b, &key),
        Err(Error::DeviceMismatch { .. })
    ));
    cache.get_or_create(&a, &key).unwrap();
}

/// `Tensor::write` of 16-bit data of every parity: the whole 4-byte words straight from the caller's slice, then
/// an odd length's last element in a word of its own whose other half (the buffer's padding) is written as 0.
#[test]
fn sixteen_bit_writes_of_any_length_read_back() {
    use actgpu::half::{bf16, f16};
    let g = gpu();
    for len in [1usize, 2, 3, 5, 17] {
        let values: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 - 3.25).collect();
        // Start from ones in every element and in the padding after them, so that a word not written shows.
        let halves: Vec<f16> = vec![f16::ONE; len + 1];
        let whole = g.upload(&halves).unwrap();
        let t = Tensor::from_buffer(g, whole.buffer().clone(), &[len], DType::F16).unwrap();
        t.write(&values.iter().map(|&v| f16::from_f32(v)).collect::<Vec<_>>())
            .unwrap();
        let back: Vec<f32> = t
            .read::<f16>()
            .unwrap()
            .iter()
            .map(|v| v.to_f32())
            .collect();
        assert_eq!(back, values, "f16, {len} elements");
        let after = whole.read::<f16>().unwrap()[len];
        let want = if len % 2 == 1 { f16::ZERO } else { f16::ONE };
        assert_eq!(after, want, "f16, {len} elements: the half after the data");

        let b = g.upload(&vec![bf16::ONE; len]).unwrap();
        b.write(
            &values
                .iter()
                .map(|&v| bf16::from_f32(v))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let back: Vec<f32> = b
            .read::<bf16>()
            .unwrap()
            .iter()
            .map(|v| v.to_f32())
            .collect();
        assert_eq!(back, values, "bf16, {len} elements");
    }
}
