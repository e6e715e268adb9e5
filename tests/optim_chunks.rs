//! Optimizer updates of tensors larger than one storage binding run in chunks bound at aligned offsets
//! (`src/ops/optim.rs`): against the f64 reference, and bit for bit the update, the state and the gradient norm's
//! partial sums of one dispatch over the whole tensor.

mod common;

use actgpu::ops::optim::{norm_partials, sum_partials, Adam, Optimizer};
use actgpu::verify::training::{check_optimizers_over, optimizer_settings};
use actgpu::verify::Rng;
use actgpu::{DType, Error, Gpu, GpuOptions, Tensor};
use common::{bits, capped_binding_gpu, gpu};

/// A context on the same adapter whose storage bindings hold `bytes`.
fn binding_gpu(bytes: u64) -> Gpu {
    capped_binding_gpu(bytes, GpuOptions::default())
}

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

#[test]
fn updates_past_the_binding_limit_match_the_reference() {
    // 100,003 parameters are 400 KB: seven chunks under a 64 KiB binding, the last one ragged.
    let small = binding_gpu(64 * 1024);
    for c in check_optimizers_over(&small, 100_003).unwrap() {
        assert!(c.ok(), "{}: {:#?}", c.op, c.check);
    }
}

/// What three steps of `opt` over `n` parameters leave on `gpu`: the parameter, the state and the last step's
/// gradient-norm partial sums (the buffer poisoned with NaN first, and longer than needed), as bits.
fn three_steps(gpu: &Gpu, opt: &Optimizer, n: usize, norm: bool) -> Vec<Vec<u32>> {
    let param = gpu.upload(&random(n, 1)).unwrap();
    let grad = gpu.zeros(&[n], DType::F32).unwrap();
    let state = opt.init_state(&param).unwrap();
    let partials = gpu
        .upload(&vec![f32::NAN; norm_partials(gpu, n).unwrap() + 37])
        .unwrap();
    for step in 1..=3 {
        grad.write(&random(n, 10 + step)).unwrap();
        gpu.submit_and_wait("test", |enc| {
            if norm {
                opt.record_update_with_norm(enc, &param, &grad, &state, step, Some(&partials))
            } else {
                opt.record_update(enc, &param, &grad, &state, step)
            }
        })
        .unwrap();
    }
    let read = |t: &Tensor| bits(&t.read::<f32>().unwrap());
    let mut out = vec![read(&param)];
    out.extend(state.m.iter().chain(&state.v).map(read));
    if norm {
        let got: Vec<f32> = partials.read().unwrap();
        let want: f64 = random(n, 13)
            .iter()
            .map(|&g| f64::from(g) * f64::from(g))
            .sum();
        let sum = sum_partials(&got);
        assert!(
            (sum - want).abs() <= 1e-5 * want,
            "{opt:?} n {n}: norm^2 {sum} against {want}"
        );
        out.push(bits(&got));
    }
    out
}

#[test]
fn chunked_updates_are_the_bits_of_one_dispatch() {
    // Under a 64 KiB binding: a ragged last chunk (100,003), exactly two chunks (32,768: 16,384 f32 fill a
    // binding), one element past one chunk (16,385), and a tensor that fits (16,384), on every optimizer, with and
    // without the gradient norm. The default context updates each in one dispatch.
    let small = binding_gpu(64 * 1024);
    let whole = gpu();
    for n in [100_003, 32_768, 16_385, 16_384] {
        assert_eq!(
            norm_partials(&small, n).unwrap(),
            norm_partials(whole, n).unwrap()
        );
        for (_, opt) in optimizer_settings() {
            for norm in [false, true] {
                assert!(
                    three_steps(&small, &opt, n, norm) == three_steps(whole, &opt, n, norm),
                    "{opt:?} n {n} norm {norm}: the chunked update differs"
                );
            }
        }
    }
}

#[test]
fn a_binding_below_one_block_of_the_norm_is_a_typed_error() {
    // The `*_norm` entry points chunk in whole blocks of a workgroup's WG x 16 elements (at least 1,024 f32 =
    // 4 KiB); a binding smaller than that cannot hold one, while the plain update still runs in chunks.
    let g = binding_gpu(512);
    let n = 5_000;
    let opt = Optimizer::Adam(Adam::new(0.01));
    let param = g.upload(&random(n, 1)).unwrap();
    let grad = g.upload(&random(n, 2)).unwrap();
    let state = opt.init_state(&param).unwrap();
    let partials = g
        .zeros(&[norm_partials(&g, n).unwrap()], DType::F32)
        .unwrap();
    let err = g.submit_and_wait("test", |enc| {
        opt.record_update_with_norm(enc, &param, &grad, &state, 1, Some(&partials))
    });
    assert!(matches!(err, Err(Error::LimitExceeded { .. })), "{err:?}");
    let want = three_steps(gpu(), &opt, n, false);
    assert!(three_steps(&g, &opt, n, false) == want);
}
