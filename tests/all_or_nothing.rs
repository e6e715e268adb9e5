//! A `record_*` call that returns an error has recorded nothing into the caller's encoder, whichever of its steps
//! failed (`actgpu::ops::recording`'s rule): each case below failed, before that rule, after it had recorded
//! passes that write an output. Every case poisons its outputs, is refused, then submits the encoder: the outputs
//! must still hold their poison, bit for bit (one recorded pass would have written some of them). Each case's
//! control runs the same call where nothing refuses it (a device with the usual limits, a live buffer with every
//! usage) and checks that it writes every one of those outputs, so a refusal that moved ahead of every pass
//! (which these cases would then no longer exercise) shows as a failing control, not a silent pass.

mod common;

use actgpu::wgpu;
use actgpu::{
    Activation, DType, Dense, DzMode, Error, Gpu, GpuOptions, Learnable, Loss, MatmulKernel,
    Targets, Tensor,
};
use common::{capped_binding_gpu, gpu, poisoned};

/// One case: `record` on `g` with its outputs (made by `outputs`, then poisoned) is refused and leaves them
/// untouched; on `control` (where it is not refused) the same call writes every one of them. Returns the
/// refusal.
fn refused_then_control(
    what: &str,
    (g, control): (&Gpu, &Gpu),
    out_shapes: &[&[usize]],
    refused_inputs: impl Fn(&Gpu) -> Inputs,
    control_inputs: impl Fn(&Gpu) -> Inputs,
    record: impl Fn(&mut wgpu::CommandEncoder, &Gpu, &Inputs, &[Tensor]) -> actgpu::Result<()>,
) -> Error {
    let poisoned_outputs = |on: &Gpu| -> Vec<Tensor> {
        out_shapes
            .iter()
            .map(|s| poisoned(on, s, DType::F32))
            .collect()
    };

    let outputs = poisoned_outputs(g);
    let inputs = refused_inputs(g);
    let before: Vec<Vec<u32>> = outputs.iter().map(bits).collect();
    let mut encoder = g.device().create_command_encoder(&Default::default());
    let err = match record(&mut encoder, g, &inputs, &outputs) {
        Ok(()) => {
            panic!("{what}: recorded without an error, but the case is one that must be refused")
        }
        Err(e) => e,
    };
    g.submit("after a refusal", encoder)
        .unwrap_or_else(|e| panic!("{what}: submitting the refused call's encoder: {e}"));
    for (i, (t, was)) in outputs.iter().zip(&before).enumerate() {
        let now = bits(t);
        let changed = now.iter().zip(was).filter(|(a, b)| a != b).count();
        assert_eq!(
            changed,
            0,
            "{what}: refused ({err}) but output {i} had {changed} of {} words written",
            now.len()
        );
    }

    let outputs = poisoned_outputs(control);
    let inputs = control_inputs(control);
    let before: Vec<Vec<u32>> = outputs.iter().map(bits).collect();
    let mut encoder = control.device().create_command_encoder(&Default::default());
    record(&mut encoder, control, &inputs, &outputs)
        .unwrap_or_else(|e| panic!("{what}, control: {e}"));
    control
        .submit("control", encoder)
        .unwrap_or_else(|e| panic!("{what}, control: {e}"));
    for (i, (t, was)) in outputs.iter().zip(&before).enumerate() {
        assert_ne!(&bits(t), was, "{what}, control: output {i} was not written");
    }
    err
}

/// The tensors a case takes besides its poisoned outputs; `_host` keeps a host buffer alive (or destroyed).
struct Inputs {
    tensors: Vec<Tensor>,
    _host: Option<wgpu::Buffer>,
}

impl Inputs {
    fn plain(g: &Gpu, shapes: &[&[usize]]) -> Inputs {
        Inputs {
            tensors: shapes.iter().map(|s| zeros(g, s)).collect(),
            _host: None,
        }
    }

    /// `shapes` as zeros, then a host's buffer as an f32 tensor of `host_shape` with `usage`, destroyed if
    /// `destroy`.
    fn with_host(
        g: &Gpu,
        shapes: &[&[usize]],
        host_shape: &[usize],
        usage: wgpu::BufferUsages,
        destroy: bool,
    ) -> Inputs {
        let mut inputs = Inputs::plain(g, shapes);
        let bytes = (4 * host_shape.iter().product::<usize>())
            .max(4)
            .next_multiple_of(32) as u64;
        let buffer = g.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("host buffer"),
            size: bytes,
            usage,
            mapped_at_creation: false,
        });
        inputs
            .tensors
            .push(Tensor::from_buffer(g, buffer.clone(), host_shape, DType::F32).unwrap());
        if destroy {
            buffer.destroy();
        }
        inputs._host = Some(buffer);
        inputs
    }
}

/// An f32 tensor's bits (the counts of a dz_stats tensor are u32 words in an F32 tensor).
fn bits(t: &Tensor) -> Vec<u32> {
    t.read::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn zeros(g: &Gpu, shape: &[usize]) -> Tensor {
    g.zeros(shape, DType::F32).unwrap()
}

const ALL: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

#[test]
fn a_dense_backward_refused_for_its_bias_gradient_leaves_dw_unwritten() {
    // An empty batch: dW = X^T dZ over 0 rows is zeros, then db (a host buffer without COPY_DST) cannot be
    // cleared. dW was recorded first.
    let inputs = |usage| {
        move |g: &Gpu| {
            let shapes: [&[usize]; 4] = [&[0, 8], &[8, 16], &[0, 16], &[0, 16]];
            Inputs::with_host(g, &shapes, &[16], usage, false)
        }
    };
    let err = refused_then_control(
        "dense backward, db without COPY_DST",
        (gpu(), gpu()),
        &[&[8, 16]],
        inputs(wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC),
        inputs(ALL),
        |e, _, i, out| {
            let [x, w, z, dy, db] = &i.tensors[..] else {
                unreachable!()
            };
            Dense::new(Activation::Relu).record_backward(e, x, w, z, dy, &out[0], Some(db), None)
        },
    );
    assert!(matches!(err, Error::MissingUsage { .. }), "{err:?}");
}

#[test]
fn a_loss_refused_for_a_destroyed_loss_buffer_leaves_the_gradient_unwritten() {
    // The gradient pass came first; the mean's reduction binds the destroyed loss buffer.
    let inputs =
        |destroy| move |g: &Gpu| Inputs::with_host(g, &[&[1000], &[1000]], &[1], ALL, destroy);
    let err = refused_then_control(
        "MSE, destroyed loss buffer",
        (gpu(), gpu()),
        &[&[1000]],
        inputs(true),
        inputs(false),
        |e, _, i, out| {
            let [pred, target, loss] = &i.tensors[..] else {
                unreachable!()
            };
            Loss::Mse.record(e, pred, Targets::Values(target), &out[0], loss)
        },
    );
    assert!(matches!(err, Error::Wgpu { .. }), "{err:?}");
}

#[test]
fn a_dense_backward_refused_by_the_reduction_grid_leaves_dw_unwritten() {
    // One workgroup per grid dimension: the product and the column sums fit, the sums' reduction over 64 columns
    // (two workgroups of 32) does not. dW was recorded first.
    let one = Gpu::with_options(GpuOptions {
        max_workgroups_per_dimension: Some(1),
        ..GpuOptions::default()
    })
    .unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"));
    let err = refused_then_control(
        "dense backward, grid of 1",
        (&one, gpu()),
        &[&[8, 64], &[64]],
        |g| Inputs::plain(g, &[&[200, 8], &[8, 64], &[200, 64], &[200, 64]]),
        |g| Inputs::plain(g, &[&[200, 8], &[8, 64], &[200, 64], &[200, 64]]),
        |e, _, i, out| {
            let [x, w, z, dy] = &i.tensors[..] else {
                unreachable!()
            };
            Dense {
                kernel: Some(MatmulKernel::Tiled),
                ..Dense::new(Activation::Identity)
            }
            .record_backward(e, x, w, z, dy, &out[0], Some(&out[1]), None)
        },
    );
    assert!(matches!(err, Error::LimitExceeded { .. }), "{err:?}");
}

#[test]
fn bias_and_prelu_backward_refused_by_the_binding_leave_dx_unwritten() {
    // 64 KiB bindings: dx = dy f'(x + b) runs in chunks of rows (odd columns take the two-pass path), then the
    // column reduction needs more rows per block than one binding holds. The dx chunks were recorded first.
    let small = capped_binding_gpu(65536, GpuOptions::default());
    let (rows, cols) = (272, 1023);
    let inputs = |g: &Gpu| Inputs::plain(g, &[&[rows, cols], &[cols], &[rows, cols]]);
    for (what, learnable) in [
        ("bias backward, 64 KiB bindings", false),
        ("PReLU backward, 64 KiB bindings", true),
    ] {
        let err = refused_then_control(
            what,
            (&small, gpu()),
            &[&[rows, cols], &[cols]],
            inputs,
            inputs,
            |e, _, i, out| {
                let [x, v, dy] = &i.tensors[..] else {
                    unreachable!()
                };
                if learnable {
                    Learnable::Prelu.record_backward(e, x, v, dy, &out[0], &out[1])
                } else {
                    Activation::Relu.record_bias_backward(e, x, v, dy, &out[0], &out[1])
                }
            },
        );
        assert!(
            matches!(err, Error::LimitExceeded { .. }),
            "{what}: {err:?}"
        );
    }
}

#[test]
fn a_fused_dense_backward_refused_for_a_destroyed_dw_leaves_its_counts_unwritten() {
    // With DzMode::Fused and counts, the counting pass over Z came first; dW's product binds the destroyed buffer.
    let inputs = |destroy| {
        move |g: &Gpu| {
            let shapes: [&[usize]; 4] = [&[32, 8], &[8, 16], &[32, 16], &[32, 16]];
            Inputs::with_host(g, &shapes, &[8, 16], ALL, destroy)
        }
    };
    let err = refused_then_control(
        "fused dense backward, destroyed dW",
        (gpu(), gpu()),
        &[&[2 + 16]],
        inputs(true),
        inputs(false),
        |e, _, i, out| {
            let [x, w, z, dy, dw] = &i.tensors[..] else {
                unreachable!()
            };
            Dense {
                dz: DzMode::Fused,
                ..Dense::new(Activation::Relu)
            }
            .record_backward_with_stats(e, x, w, z, dy, dw, None, None, Some(&out[0]))
        },
    );
    assert!(matches!(err, Error::Wgpu { .. }), "{err:?}");
}
