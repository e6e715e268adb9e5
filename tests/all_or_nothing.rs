//! A `record_*` call that returns an error has recorded nothing into the caller's encoder, whichever of its steps
//! failed (`actgpu::ops::recording`'s rule): each case below failed, before that rule, after it had recorded
//! passes that write an output. Every case poisons its outputs, is refused, then submits the encoder: the outputs
//! must still hold their poison, bit for bit (one recorded pass would have written some of them).

mod common;

use actgpu::wgpu;
use actgpu::{
    Activation, DType, Dense, DzMode, Error, Gpu, GpuOptions, Learnable, Loss, MatmulKernel,
    Targets, Tensor,
};
use common::{gpu, poisoned};

/// Runs `record` into a fresh encoder, which must return an error, submits the encoder and checks that every
/// tensor of `untouched` kept its bits.
fn assert_refused_and_untouched(
    g: &Gpu,
    what: &str,
    untouched: &[&Tensor],
    record: impl FnOnce(&mut wgpu::CommandEncoder) -> actgpu::Result<()>,
) -> Error {
    let before: Vec<Vec<u32>> = untouched.iter().map(|t| bits(t)).collect();
    let mut encoder = g.device().create_command_encoder(&Default::default());
    let err = match record(&mut encoder) {
        Ok(()) => {
            panic!("{what}: recorded without an error, but the case is one that must be refused")
        }
        Err(e) => e,
    };
    g.submit("after a refusal", encoder)
        .unwrap_or_else(|e| panic!("{what}: submitting the refused call's encoder: {e}"));
    for (i, (t, was)) in untouched.iter().zip(&before).enumerate() {
        let now = bits(t);
        let changed = now.iter().zip(was).filter(|(a, b)| a != b).count();
        assert_eq!(
            changed,
            0,
            "{what}: refused ({err}) but output {i} had {changed} of {} words written",
            now.len()
        );
    }
    err
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

/// A host's buffer wrapped as an f32 tensor of `shape`, with `usage`.
fn host_tensor(g: &Gpu, shape: &[usize], usage: wgpu::BufferUsages) -> (wgpu::Buffer, Tensor) {
    let bytes = (4 * shape.iter().product::<usize>())
        .max(4)
        .next_multiple_of(32) as u64;
    let buffer = g.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("host buffer"),
        size: bytes,
        usage,
        mapped_at_creation: false,
    });
    let t = Tensor::from_buffer(g, buffer.clone(), shape, DType::F32).unwrap();
    (buffer, t)
}

const ALL: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

#[test]
fn a_dense_backward_refused_for_its_bias_gradient_leaves_dw_unwritten() {
    // An empty batch: dW = X^T dZ over 0 rows is zeros, then db (a host buffer without COPY_DST) cannot be
    // cleared. dW was recorded first.
    let g = gpu();
    let (_buffer, db) = host_tensor(
        g,
        &[16],
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    );
    let dw = poisoned(g, &[8, 16], DType::F32);
    let err = assert_refused_and_untouched(g, "dense backward, db without COPY_DST", &[&dw], |e| {
        Dense::new(Activation::Relu).record_backward(
            e,
            &zeros(g, &[0, 8]),
            &zeros(g, &[8, 16]),
            &zeros(g, &[0, 16]),
            &zeros(g, &[0, 16]),
            &dw,
            Some(&db),
            None,
        )
    });
    assert!(matches!(err, Error::MissingUsage { .. }), "{err:?}");
}

#[test]
fn a_loss_refused_for_a_destroyed_loss_buffer_leaves_the_gradient_unwritten() {
    // The gradient pass came first; the mean's reduction binds the destroyed loss buffer.
    let g = gpu();
    let (buffer, loss) = host_tensor(g, &[1], ALL);
    buffer.destroy();
    let grad = poisoned(g, &[1000], DType::F32);
    assert_refused_and_untouched(g, "MSE, destroyed loss buffer", &[&grad], |e| {
        Loss::Mse.record(
            e,
            &zeros(g, &[1000]),
            Targets::Values(&zeros(g, &[1000])),
            &grad,
            &loss,
        )
    });
}

#[test]
fn a_dense_backward_refused_by_the_reduction_grid_leaves_dw_unwritten() {
    // One workgroup per grid dimension: the product and the column sums fit, the sums' reduction over 64 columns
    // (two workgroups of 32) does not. dW was recorded first.
    let g = Gpu::with_options(GpuOptions {
        max_workgroups_per_dimension: Some(1),
        ..GpuOptions::default()
    })
    .unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"));
    let dw = poisoned(&g, &[8, 64], DType::F32);
    let db = poisoned(&g, &[64], DType::F32);
    let err = assert_refused_and_untouched(&g, "dense backward, grid of 1", &[&dw, &db], |e| {
        Dense {
            kernel: Some(MatmulKernel::Tiled),
            ..Dense::new(Activation::Identity)
        }
        .record_backward(
            e,
            &zeros(&g, &[200, 8]),
            &zeros(&g, &[8, 64]),
            &zeros(&g, &[200, 64]),
            &zeros(&g, &[200, 64]),
            &dw,
            Some(&db),
            None,
        )
    });
    assert!(matches!(err, Error::LimitExceeded { .. }), "{err:?}");
}

#[test]
fn bias_and_prelu_backward_refused_by_the_binding_leave_dx_unwritten() {
    // 64 KiB bindings: dx = dy f'(x + b) runs in chunks of rows (odd columns take the two-pass path), then the
    // column reduction needs more rows per block than one binding holds. The dx chunks were recorded first.
    let g = Gpu::with_options(GpuOptions {
        max_storage_binding_bytes: Some(65536),
        ..GpuOptions::default()
    })
    .unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"));
    let (rows, cols) = (272, 1023);
    let x = zeros(&g, &[rows, cols]);
    let dy = zeros(&g, &[rows, cols]);
    let dx = poisoned(&g, &[rows, cols], DType::F32);
    let dv = poisoned(&g, &[cols], DType::F32);
    let err =
        assert_refused_and_untouched(&g, "bias backward, 64 KiB bindings", &[&dx, &dv], |e| {
            Activation::Relu.record_bias_backward(e, &x, &zeros(&g, &[cols]), &dy, &dx, &dv)
        });
    assert!(matches!(err, Error::LimitExceeded { .. }), "{err:?}");
    let err =
        assert_refused_and_untouched(&g, "PReLU backward, 64 KiB bindings", &[&dx, &dv], |e| {
            Learnable::Prelu.record_backward(e, &x, &zeros(&g, &[cols]), &dy, &dx, &dv)
        });
    assert!(matches!(err, Error::LimitExceeded { .. }), "{err:?}");
}

#[test]
fn a_fused_dense_backward_refused_for_a_destroyed_dw_leaves_its_counts_unwritten() {
    // With DzMode::Fused and counts, the counting pass over Z came first; dW's product binds the destroyed buffer.
    let g = gpu();
    let (buffer, dw) = host_tensor(g, &[8, 16], ALL);
    buffer.destroy();
    let stats = poisoned(g, &[2 + 16], DType::F32);
    assert_refused_and_untouched(g, "fused dense backward, destroyed dW", &[&stats], |e| {
        Dense {
            dz: DzMode::Fused,
            ..Dense::new(Activation::Relu)
        }
        .record_backward_with_stats(
            e,
            &zeros(g, &[32, 8]),
            &zeros(g, &[8, 16]),
            &zeros(g, &[32, 16]),
            &zeros(g, &[32, 16]),
            &dw,
            None,
            None,
            Some(&stats),
        )
    });
}
