//! f16 and bf16 storage: every one of the 65,536 bit patterns through every activation, forward and backward,
//! within 1 ULP of the f64 reference rounded to the storage type; mixed storage types; conversions bit-exact with
//! the `half` crate (round to nearest even, overflow to inf, NaN kept); odd and long lengths.

mod common;

use actgpu::verify::{
    check_activation_exhaustive, compare_flushing, compare_storage, edge_values, flushed_reference,
    random_inputs, round_to, run_activation, Criterion, Dtypes, Pass, Rng,
};
use actgpu::{Activation, DType, F16Storage, Gpu, GpuOptions};
use common::{describe, gpu};

fn exhaustive(gpu: &Gpu, dtype: DType) {
    let mut failures = Vec::new();
    for act in Activation::ALL {
        for pass in [Pass::Forward, Pass::Backward] {
            let r = check_activation_exhaustive(gpu, act, pass, Dtypes::all(dtype), 1, 7)
                .unwrap_or_else(|e| panic!("{act} {pass:?}: {e}"));
            assert_eq!(r.general.count, 65_536);
            if !r.ok() {
                failures.push(r);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{dtype:?} out of tolerance:\n{}",
        describe(&failures)
    );
}

#[test]
fn f16_every_bit_pattern_every_activation_within_one_ulp() {
    exhaustive(gpu(), DType::F16);
}

/// The probe behind `F16Storage::Auto`'s use of native f16 (`Gpu::native_f16_rounds_to_nearest_even`): true on
/// the adapters tested that have `SHADER_F16` (lavapipe; the test below compares its conversions with `half` bit
/// for bit), false without it (GL here).
#[test]
fn the_native_f16_rounding_probe_answers_for_this_adapter() {
    let probed = gpu().native_f16_rounds_to_nearest_even().unwrap();
    assert_eq!(probed, common::has_shader_f16());
}

#[test]
fn f16_both_storage_paths_are_exact_where_they_exist() {
    let has_f16 = common::has_shader_f16();
    for path in [F16Storage::Packed, F16Storage::Native] {
        let g = Gpu::with_options(GpuOptions {
            f16_storage: path,
            ..GpuOptions::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        // Without SHADER_F16 (GL here) a request for the native path runs the packed one.
        assert_eq!(
            g.f16_native(),
            path == F16Storage::Native && has_f16,
            "{path:?}"
        );
        exhaustive(&g, DType::F16);
        let bits: Vec<f32> = actgpu::verify::every_bit_pattern(DType::F16);
        let t = g.upload_f32_as(&bits, DType::F16).unwrap();
        Activation::Identity.forward_inplace(&t).unwrap();
        let back: Vec<half::f16> = t.read().unwrap();
        for (a, b) in bits.iter().zip(&back) {
            assert!(
                a.is_nan() && b.is_nan() || a.to_bits() == b.to_f32().to_bits(),
                "{path:?}: {a:e} -> {b}"
            );
        }
    }
}

#[test]
fn bf16_every_bit_pattern_every_activation_within_one_ulp() {
    exhaustive(gpu(), DType::BF16);
}

#[test]
fn mixed_storage_types_round_once_on_store() {
    let inputs = random_inputs(21, 4_000);
    let combos = [
        // f16 activations with an f32 gradient, and the reverse.
        Dtypes {
            x: DType::F16,
            dy: DType::F32,
            out: DType::F32,
        },
        Dtypes {
            x: DType::F32,
            dy: DType::F16,
            out: DType::F16,
        },
        Dtypes {
            x: DType::BF16,
            dy: DType::F32,
            out: DType::BF16,
        },
        Dtypes {
            x: DType::F32,
            dy: DType::BF16,
            out: DType::F16,
        },
    ];
    for act in [
        Activation::Gelu,
        Activation::Silu,
        Activation::Tanh,
        Activation::Hardswish,
        // Relu stores 16-bit results without rounding only when input and output share a type.
        Activation::Relu,
    ] {
        for dtypes in combos {
            for pass in [Pass::Forward, Pass::Backward] {
                let r = run_activation(gpu(), act, pass, &inputs, 5, dtypes).unwrap();
                assert_eq!(r.unwritten, 0);
                // An f32 output of 16-bit inputs is held to 1 ULP of f32 where the f32 tolerance does not apply:
                // check the f32 outputs against the elementwise tolerance instead.
                let criterion = if dtypes.out == DType::F32 {
                    Criterion::Tolerance(actgpu::verify::F32_ELEMENTWISE)
                } else {
                    Criterion::Ulp {
                        dtype: dtypes.out,
                        max: 1,
                    }
                };
                let c =
                    compare_flushing(criterion, &r.x, &r.got, &r.reference, r.flushed.as_deref());
                assert!(c.ok(), "{act} {pass:?} {dtypes:?}: {c:#?}");
            }
        }
    }
}

/// Every 16-bit pattern as raw bits (signalling NaNs too, which an f32 upload would quieten), twice: in order, so
/// that the two halves of a packed word are neighbouring patterns of one sign, then in
/// [`actgpu::verify::every_pattern_bits`]'s order, so that every word also pairs halves of opposite signs. The
/// kernels that work on packed words without decoding treat each half on its own only if both orders come out right.
fn every_pattern_in_two_orders() -> Vec<u16> {
    (0..=u16::MAX)
        .chain(actgpu::verify::every_pattern_bits())
        .collect()
}

/// Raw 16-bit patterns as a tensor of `dtype`, and their values as f32 (exact; NaN payloads aside).
fn upload_bits(dtype: DType, bits: &[u16]) -> (actgpu::Tensor, Vec<f32>) {
    match dtype {
        DType::F16 => {
            let h: Vec<half::f16> = bits.iter().map(|&b| half::f16::from_bits(b)).collect();
            let values = h.iter().map(|v| v.to_f32()).collect();
            (gpu().upload(&h).unwrap(), values)
        }
        _ => {
            let h: Vec<half::bf16> = bits.iter().map(|&b| half::bf16::from_bits(b)).collect();
            let values = h.iter().map(|v| v.to_f32()).collect();
            (gpu().upload(&h).unwrap(), values)
        }
    }
}

/// Identity, relu, relu6 and hardtanh store 16-bit results without rounding, and identity and relu forward work on
/// the packed bits: every bit pattern ([`every_pattern_in_two_orders`]), through the allocating and the in-place
/// kernels, must still equal the f64 reference exactly (0 ULP). Hardtanh bounds that the type cannot represent
/// turn the shortcut off: those results round, within 1 ULP.
#[test]
fn exact_sixteen_bit_stores_equal_the_reference_in_place_and_not() {
    let acts = [
        (Activation::Identity, 0),
        (Activation::Relu, 0),
        (Activation::Relu6, 0),
        (Activation::hardtanh(), 0),
        (
            Activation::Hardtanh {
                min_val: -2.0,
                max_val: 0.5,
            },
            0,
        ),
        (
            Activation::Hardtanh {
                min_val: -0.3,
                max_val: 0.7,
            },
            1,
        ),
    ];
    let bits = every_pattern_in_two_orders();
    // Every pattern meets a gradient of every class: dy runs through the patterns in reverse.
    let dy_bits: Vec<u16> = bits.iter().rev().copied().collect();
    for dtype in [DType::F16, DType::BF16] {
        for (act, max_ulp) in acts {
            let (x, xs) = upload_bits(dtype, &bits);
            let (dy, dys) = upload_bits(dtype, &dy_bits);
            let criterion = Criterion::Ulp {
                dtype,
                max: max_ulp,
            };
            let check = |what: &str, got: &[f32], reference: &[f64], flushed: &Option<Vec<f64>>| {
                let c = compare_flushing(criterion, &xs, got, reference, flushed.as_deref());
                assert!(c.ok(), "{act} {what} {dtype:?}: {c:#?}");
            };
            let f = |v: f32, _: f32| actgpu::cpu::activation::forward(act, v.into());
            let b = |v: f32, d: f32| actgpu::cpu::activation::backward(act, v.into(), d.into());
            let forward: Vec<f64> = xs.iter().map(|&v| f(v, 0.0)).collect();
            let backward: Vec<f64> = xs.iter().zip(&dys).map(|(&v, &d)| b(v, d)).collect();
            // On a device that flushes subnormals, the results at the inputs as it reads them pass too.
            let flushes = gpu().flushes_subnormals().unwrap();
            let forward_flushed = flushed_reference(flushes, &xs, &[], f);
            let backward_flushed = flushed_reference(flushes, &xs, &dys, b);

            let y = act.forward(&x).unwrap();
            check(
                "forward",
                &y.read_f32().unwrap(),
                &forward,
                &forward_flushed,
            );
            check(
                "backward",
                &act.backward(&x, &dy).unwrap().read_f32().unwrap(),
                &backward,
                &backward_flushed,
            );

            act.backward_inplace(&x, &dy).unwrap();
            check(
                "backward_inplace",
                &dy.read_f32().unwrap(),
                &backward,
                &backward_flushed,
            );
            act.forward_inplace(&x).unwrap();
            check(
                "forward_inplace",
                &x.read_f32().unwrap(),
                &forward,
                &forward_flushed,
            );
        }
    }
}

#[test]
fn conversions_match_the_half_crate_bit_for_bit() {
    let mut rng = Rng::new(9);
    let mut values: Vec<f32> = (0..100_000)
        .map(|_| f32::from_bits(rng.next_u64() as u32))
        .collect();
    values.extend(edge_values());
    // Around the f16 overflow threshold (65520 rounds to inf) and the subnormal/normal boundary.
    values.extend([
        65504.0,
        65519.0,
        65519.996,
        65520.0,
        65536.0,
        -65520.0,
        6.1035156e-5,
        6.097555e-5,
        2.9802322e-8,
    ]);
    values.extend([
        5.9604645e-8,
        8.940697e-8,
        1.1920929e-7,
        f32::from_bits(0x7f7f_ffff),
        f32::from_bits(0x7fc0_0001),
    ]);
    let x = gpu().upload(&values).unwrap();
    let h: Vec<half::f16> = x.to_dtype(DType::F16).unwrap().read().unwrap();
    let b: Vec<half::bf16> = x.to_dtype(DType::BF16).unwrap().read().unwrap();
    for (i, &v) in values.iter().enumerate() {
        let (eh, eb) = (half::f16::from_f32(v), half::bf16::from_f32(v));
        if v.is_nan() {
            assert!(h[i].is_nan() && b[i].is_nan(), "{v:e}");
        } else {
            assert_eq!(
                h[i].to_bits(),
                eh.to_bits(),
                "f16 of {v:e} ({:#x})",
                v.to_bits()
            );
            assert_eq!(
                b[i].to_bits(),
                eb.to_bits(),
                "bf16 of {v:e} ({:#x})",
                v.to_bits()
            );
        }
    }
    // And back: every 16-bit pattern widens exactly.
    for dtype in [DType::F16, DType::BF16] {
        let all = actgpu::verify::every_bit_pattern(dtype);
        let t = gpu().upload_f32_as(&all, dtype).unwrap();
        let back: Vec<f32> = t.to_dtype(DType::F32).unwrap().read().unwrap();
        for (a, b) in all.iter().zip(&back) {
            assert!(
                a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan(),
                "{dtype:?} {a:e} -> {b:e}"
            );
        }
    }
}

#[test]
fn sixteen_bit_lengths_are_computed_in_full() {
    for dtype in [DType::F16, DType::BF16] {
        for n in [0usize, 1, 2, 3, 7, 9, 255, 257, 100_001, 65_535 * 256 + 1] {
            let mut rng = Rng::new(n as u64);
            let xs: Vec<f32> = (0..n)
                .map(|_| round_to(dtype, rng.uniform(-6.0, 6.0)))
                .collect();
            // GELU decodes and rounds; identity and relu forward (and relu backward in f16) work on the bits.
            for (act, pass) in [
                (Activation::Gelu, Pass::Backward),
                (Activation::Relu, Pass::Forward),
                (Activation::Relu, Pass::Backward),
                (Activation::Identity, Pass::Forward),
            ] {
                let r = run_activation(gpu(), act, pass, &xs, 3, Dtypes::all(dtype)).unwrap();
                assert_eq!(r.got.len(), n);
                assert_eq!(r.unwritten, 0, "{act} {dtype:?} n = {n}");
                let c = compare_storage(dtype, &r.x, &r.got, &r.reference, 1);
                assert!(c.ok(), "{act} {dtype:?} n = {n}: {c:#?}");
            }
        }
    }
}
