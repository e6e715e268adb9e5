//! The backends CI cannot run: every pipeline a broad workload creates on this adapter (every activation in every
//! storage type, the fused families, every matmul kernel with and without a fused derivative, the dense layer,
//! losses, optimizers, softmax, the randomized leaky ReLU, an MLP step with diagnostics, a user-defined activation) is translated by naga, with the
//! pipeline's own override constants, to Metal Shading Language and to HLSL (shader model 6.2, what DXC
//! compiles, for every pipeline; 5.1, FXC's, for those without 16-bit types or subgroups), as wgpu would
//! translate it on a Mac or on DX12. A translation error here
//! would be a pipeline creation error there. What the platform compilers then make of the text is not tested.
//! The same workload also runs on a device capped at [`Gpu::MINIMUM_LIMITS`], and the storage buffers the entry
//! points bind are counted against the minimum the crate states.

mod common;

use actgpu::verify::fused::{check_bias, check_gated, check_learnable, FusedInputs};
use actgpu::verify::training::{check_dense_layer, check_losses, check_optimizers, check_products};
use actgpu::verify::OTHER_PARAMETERS;
use actgpu::{
    Activation, CustomActivation, DType, Dense, DzMode, F16Storage, Gated, Gpu, GpuOptions, Hidden,
    Learnable, Loss, MatmulKernel, Mlp, Optimizer, Rrelu, Sgd, SoftmaxKind, Tensor,
};
use naga::back::{hlsl, msl, PipelineConstants};
use naga::valid::{Capabilities, ValidationFlags, Validator};
use naga::ShaderStage;

fn tensor(g: &Gpu, n: usize, shape: &[usize], dtype: DType) -> Tensor {
    let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
    let t = g.upload_f32_as(&v, dtype).unwrap();
    Tensor::from_buffer(g, t.buffer().clone(), shape, dtype).unwrap()
}

/// Runs a workload that creates the crate's pipelines of every family on `g`.
fn build_pipelines(g: &Gpu) {
    for act in Activation::ALL.into_iter().chain(OTHER_PARAMETERS) {
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let (x, dy) = (tensor(g, 37, &[37], dtype), tensor(g, 37, &[37], dtype));
            act.forward(&x).unwrap();
            act.backward(&x, &dy).unwrap();
        }
        let x = tensor(g, 37, &[37], DType::F32);
        act.forward_inplace(&x).unwrap();
    }
    let random = FusedInputs::Random(1);
    for dtype in [DType::F32, DType::F16] {
        for act in [Activation::Gelu, Activation::Relu] {
            for cols in [24, 13] {
                check_bias(g, act, 33, cols, dtype, dtype, random).unwrap();
            }
        }
        for unit in Gated::ALL {
            check_gated(g, unit, 9, 12, dtype, random).unwrap();
        }
        for kind in Learnable::ALL {
            for shared in [true, false] {
                check_learnable(g, kind, 9, 13, shared, dtype, dtype, random).unwrap();
            }
        }
        check_products(g, dtype).unwrap();
    }
    for kernel in MatmulKernel::ALL {
        for dz in [DzMode::Fused, DzMode::Separate] {
            let dense = Dense {
                activation: Activation::Gelu,
                kernel: Some(kernel),
                dz,
            };
            check_dense_layer(g, dense).unwrap();
        }
    }
    check_losses(g).unwrap();
    check_optimizers(g).unwrap();
    // Softmax's statistics by a thread per row (7 columns) and by a workgroup per row (20,000, past every
    // adapter type's default threshold), and its elementwise passes.
    for kind in SoftmaxKind::ALL {
        for dtype in [DType::F32, DType::F16] {
            for cols in [7, 20_000] {
                let x = tensor(g, 2 * cols, &[2, cols], dtype);
                let y = kind.forward(&x).unwrap();
                kind.backward(&y, &x).unwrap();
            }
        }
    }
    // The randomized leaky ReLU's training mode, both directions.
    for dtype in [DType::F32, DType::F16] {
        let x = tensor(g, 24, &[24], dtype);
        let y = Rrelu::DEFAULT.forward(&x, 5).unwrap();
        Rrelu::DEFAULT.backward(&x, &y, 5).unwrap();
    }
    let hidden = [
        Hidden::Act(Activation::Silu),
        Hidden::Gated(Gated::SWIGLU),
        Hidden::learnable(Learnable::Prelu, true),
    ];
    let opt = Optimizer::Sgd(Sgd::new(0.1));
    let ce = Loss::SoftmaxCrossEntropy;
    let mut net = Mlp::with_layers(g, &[4, 6, 5, 6, 3], &hidden, ce, opt, 1).unwrap();
    net.set_diagnostics(true).unwrap();
    net.train_step_classes(&[0.5; 8], &[0, 2]).unwrap();
    net.diagnostics().unwrap();
    let isru = CustomActivation::new(
        "isru_portability",
        "return x * inverseSqrt(1.0 + x * x);",
        "let r = inverseSqrt(1.0 + x * x);\nreturn r * r * r;",
        |x| x / (1.0 + x * x).sqrt(),
        |x| (1.0 + x * x).powf(-1.5),
    );
    let act = isru.activation();
    let (x, dy) = (
        tensor(g, 64, &[8, 8], DType::F32),
        tensor(g, 64, &[8, 8], DType::F32),
    );
    act.forward(&x).unwrap();
    act.backward(&x, &dy).unwrap();
    let b = tensor(g, 8, &[8], DType::F32);
    act.bias_backward(&x, &b, &dy).unwrap();
}

/// The pipeline's module after naga's override processing, ready for a backend writer.
fn processed(
    source: &str,
    entry: &str,
    constants: &[(&str, f64)],
) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{entry}: {e}"));
    let mut validator = Validator::new(ValidationFlags::all(), Capabilities::all());
    let info = validator
        .validate(&module)
        .unwrap_or_else(|e| panic!("{entry}: {e:?}"));
    let mut values = PipelineConstants::default();
    for &(name, value) in constants {
        values.insert(name.to_string(), value);
    }
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        Some((ShaderStage::Compute, entry)),
        &values,
    )
    .unwrap_or_else(|e| panic!("{entry}: overrides: {e:?}"));
    (module.into_owned(), info.into_owned())
}

#[test]
fn every_pipeline_translates_to_msl_and_hlsl() {
    let mut gpus = vec![Gpu::new().unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"))];
    if common::has_shader_f16() {
        // The native-f16 activation kernels, which the default may not choose.
        let native = GpuOptions {
            f16_storage: F16Storage::Native,
            ..GpuOptions::default()
        };
        gpus.push(Gpu::with_options(native).unwrap());
    }
    // Every kernel within the smallest limits actgpu supports (wgpu enforces a device's limits on its pipelines).
    gpus.push(common::minimum_limits_gpu());
    let mut failures = Vec::new();
    let mut translated = 0;
    let mut most_storage = (0, String::new());
    for g in &gpus {
        build_pipelines(g);
        for key in g.pipelines().keys() {
            let source = key.source().unwrap();
            let (module, info) = processed(&source, key.entry, &key.override_constants());
            let entry = Some((ShaderStage::Compute, key.entry.to_string()));
            let what = format!("{} / {} {:?}", key.shader.label(), key.entry, key.constants);
            let msl_options = msl::Options {
                lang_version: (2, 4),
                ..msl::Options::default()
            };
            let msl_pipeline = msl::PipelineOptions {
                entry_point: entry.clone(),
                ..msl::PipelineOptions::default()
            };
            match msl::write_string(&module, &info, &msl_options, &msl_pipeline) {
                Ok((text, _)) if text.contains("kernel void") => {}
                Ok(_) => failures.push(format!("MSL {what}: no kernel function written")),
                Err(e) => failures.push(format!("MSL {what}: {e:?}")),
            }
            // DXC's shader model 6.2 for every pipeline; FXC's 5.1 (what DX12 falls back to without
            // dxcompiler.dll) too for those that need neither 16-bit types nor subgroups, which FXC lacks.
            let mut models = vec![hlsl::ShaderModel::V6_2];
            if !source.contains("enable f16") && !source.contains("subgroup") {
                models.push(hlsl::ShaderModel::V5_1);
            }
            for shader_model in models {
                let hlsl_options = hlsl::Options {
                    shader_model,
                    ..hlsl::Options::default()
                };
                let hlsl_pipeline = hlsl::PipelineOptions {
                    entry_point: entry.clone(),
                };
                let mut text = String::new();
                let mut writer = hlsl::Writer::new(&mut text, &hlsl_options, &hlsl_pipeline);
                match writer.write(&module, &info, None) {
                    Ok(_) if text.contains("[numthreads(") => {}
                    Ok(_) => failures.push(format!("HLSL {shader_model:?} {what}: no entry point")),
                    Err(e) => failures.push(format!("HLSL {shader_model:?} {what}: {e:?}")),
                }
            }
            let ep = module
                .entry_points
                .iter()
                .position(|e| e.name == key.entry)
                .unwrap();
            // The pipeline cache checks `key.workgroup_size` against the device's limits, as wgpu cannot for a
            // size set by an override: it must be the entry point's size.
            let size = module.entry_points[ep].workgroup_size;
            if size != [key.workgroup_size, 1, 1] {
                failures.push(format!(
                    "{what}: workgroup size {size:?}, key {}",
                    key.workgroup_size
                ));
            }
            let used = info.get_entry_point(ep);
            let storage = module
                .global_variables
                .iter()
                .filter(|(h, v)| {
                    matches!(v.space, naga::AddressSpace::Storage { .. }) && !used[*h].is_empty()
                })
                .count();
            if storage > most_storage.0 {
                most_storage = (storage, what.clone());
            }
            translated += 1;
        }
    }
    // The minimum the crate states is what its kernels need: no kernel binds more, one binds that many.
    assert_eq!(
        most_storage.0,
        Gpu::MINIMUM_LIMITS.max_storage_buffers_per_shader_stage as usize,
        "the most storage buffers one entry point binds ({})",
        most_storage.1
    );
    assert!(translated > 300, "only {translated} pipelines built");
    assert!(
        failures.is_empty(),
        "{} of {translated} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{translated} pipelines translated to MSL and HLSL");
}
