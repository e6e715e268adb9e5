//! Every activation, forward and backward, against the f64 reference: random inputs at several scales, a dense
//! sweep of [-20, 20], the edge values, tiny magnitudes under a relative-only tolerance, and the tails' small
//! results under a relative-only tolerance too.

mod common;

use actgpu::verify::{
    check_activation, compare, compare_flushing, random_inputs, run_activation,
    run_activation_with, tail_inputs, Criterion, Dtypes, Pass, Tolerance, F32_ELEMENTWISE,
    F32_TAIL, OTHER_PARAMETERS, POISON,
};
use actgpu::{cpu, Activation, DType};
use common::{describe, gpu};

fn check_all(acts: &[Activation], seed: u64) {
    let (mut failures, mut tails) = (Vec::new(), 0);
    for &act in acts {
        for pass in [Pass::Forward, Pass::Backward] {
            let r = check_activation(gpu(), act, pass, seed + u64::from(act.id()))
                .unwrap_or_else(|e| panic!("{act} {pass:?}: {e}"));
            // The small inputs compare nonzero results only; hardshrink and softshrink (lambd >= 1e-3) map every
            // one of them to 0, forward and backward.
            let zero_near_zero = [-1e-3, 1e-3].into_iter().all(|x| {
                cpu::activation::forward(act, x) == 0.0
                    && cpu::activation::derivative(act, x) == 0.0
            });
            assert!(
                r.general.count >= 300_000
                    && r.small
                        .as_ref()
                        .is_some_and(|s| s.count > 0 || zero_near_zero)
                    && r.tail.is_some(),
                "{act} {pass:?}: too few compared"
            );
            // (A tail may be empty: hardtanh' is 0 at every |x| >= 2.)
            tails += r.tail.as_ref().map_or(0, |t| t.count);
            if !r.ok() {
                failures.push(r);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "out of tolerance:\n{}",
        describe(&failures)
    );
    assert!(
        tails > 10_000 * acts.len(),
        "only {tails} tail results compared"
    );
}

#[test]
fn every_activation_with_default_parameters_matches_the_reference() {
    check_all(&Activation::ALL, 1);
}

#[test]
fn parameterised_activations_match_the_reference_with_other_parameters() {
    check_all(&OTHER_PARAMETERS, 2);
}

/// Softshrink with `lambd = 0` (PyTorch allows it): the identity, with PyTorch's mask still closed at 0, so
/// `f'(0) = 0` where both sides have slope 1 (which is why it is not among `OTHER_PARAMETERS`, whose derivatives
/// the finite-difference check also takes). Every check of the other activations, and the identity itself.
#[test]
fn softshrink_with_lambd_zero_is_the_identity_but_at_zero() {
    let act = Activation::Softshrink { lambd: 0.0 };
    for pass in [Pass::Forward, Pass::Backward] {
        let r = check_activation(gpu(), act, pass, 5).unwrap();
        assert!(r.ok() && r.general.count >= 300_000, "{}", describe(&[r]));
    }
    let xs = [-3.5f32, -1e-30, -0.0, 0.0, 1e-30, 2.0, f32::INFINITY];
    let f32s = Dtypes::all(DType::F32);
    let r = run_activation(gpu(), act, Pass::Forward, &xs, 1, f32s).unwrap();
    for (&x, &y) in xs.iter().zip(&r.got) {
        assert_eq!(y.to_bits(), x.to_bits(), "softshrink(0) at {x:e}");
    }
    let dy = [0.5f32; 7];
    let r = run_activation_with(gpu(), act, Pass::Backward, &xs, &dy, f32s).unwrap();
    for (&x, &dx) in xs.iter().zip(&r.got) {
        let want = if x == 0.0 { 0.0 } else { 0.5 };
        assert_eq!(dx, want, "softshrink(0)' at {x:e}");
    }
}

/// Relative accuracy of the tails: results from f32's smallest normal to 1e-2 in magnitude (sigmoid(-20) = 2e-9,
/// gelu(-6) = -6e-9, softplus(-14) = 8e-7, and their derivatives) for |x| in [2, 130], where the absolute floor
/// of `F32_ELEMENTWISE` (1e-6) would accept 0 or a wrong sign, under `F32_TAIL` for every activation (1e-4
/// relative: `exp` alone may be 3 + 2|x| ULP off, 2e-5 at |x| = 88; |x| >= 2 stays clear of every default
/// derivative's root, hardswish' at -1.5 the nearest, and of the parameterised ones tested here).
/// `check_activation` runs the same inputs under `tail_tolerance`, stricter for the activations with no `exp`,
/// leaving out inputs next to a root (`TAIL_ROOT_MARGIN`), which a parameter can move past 2.
#[test]
fn tails_are_relatively_accurate() {
    const TAIL: Tolerance = F32_TAIL;
    let xs = tail_inputs();
    let (mut failures, mut compared) = (Vec::new(), 0);
    for act in Activation::ALL.into_iter().chain(OTHER_PARAMETERS) {
        for pass in [Pass::Forward, Pass::Backward] {
            let r =
                run_activation(gpu(), act, pass, &xs, 9, Dtypes::all(actgpu::DType::F32)).unwrap();
            let tail: Vec<usize> = (0..xs.len())
                .filter(|&i| (f64::from(f32::MIN_POSITIVE)..=1e-2).contains(&r.reference[i].abs()))
                .collect();
            let pick = |v: &[f32]| tail.iter().map(|&i| v[i]).collect::<Vec<_>>();
            let reference: Vec<f64> = tail.iter().map(|&i| r.reference[i]).collect();
            // On a device that flushes subnormals, a result whose computation passes through one (silu at
            // -87.5) may be 0 where the flushed reference is.
            let flushed: Option<Vec<f64>> = r
                .flushed
                .as_ref()
                .map(|f| tail.iter().map(|&i| f[i]).collect());
            let c = compare_flushing(
                Criterion::Tolerance(TAIL),
                &pick(&r.x),
                &pick(&r.got),
                &reference,
                flushed.as_deref(),
            );
            compared += c.count;
            if !c.ok() {
                failures.push(format!("{act} {pass:?}: {c:#?}"));
            }
        }
    }
    assert!(compared > 20_000, "only {compared} tail results compared");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn in_place_variants_match_the_reference() {
    let xs = random_inputs(3, 2_000);
    let mut rng = actgpu::verify::Rng::new(4);
    let dys: Vec<f32> = xs.iter().map(|_| rng.uniform(-2.0, 2.0)).collect();
    for act in Activation::ALL {
        let x = gpu().upload(&xs).unwrap();
        act.forward_inplace(&x).unwrap();
        let reference: Vec<f64> = xs
            .iter()
            .map(|&v| cpu::activation::forward(act, v.into()))
            .collect();
        let c = compare(&xs, &x.read().unwrap(), &reference, F32_ELEMENTWISE, false);
        assert!(c.ok(), "{act} forward_inplace: {c:#?}");

        let x = gpu().upload(&xs).unwrap();
        let dy = gpu().upload(&dys).unwrap();
        act.backward_inplace(&x, &dy).unwrap();
        let reference: Vec<f64> = xs
            .iter()
            .zip(&dys)
            .map(|(&v, &d)| cpu::activation::backward(act, v.into(), d.into()))
            .collect();
        let c = compare(&xs, &dy.read().unwrap(), &reference, F32_ELEMENTWISE, false);
        assert!(c.ok(), "{act} backward_inplace: {c:#?}");
    }
}

#[test]
fn a_poisoned_output_that_the_kernel_skips_fails_the_comparison() {
    // The harness itself: an output left at POISON must not pass.
    let xs = [1.0f32, -2.0, 0.5];
    let reference: Vec<f64> = xs
        .iter()
        .map(|&v| cpu::activation::forward(Activation::Relu, v.into()))
        .collect();
    let c = compare(&xs, &[1.0, 0.0, POISON], &reference, F32_ELEMENTWISE, false);
    assert_eq!(c.failures, 1);
    assert_eq!(c.first_failures[0].index, 2);
    let c = compare(&[f32::NAN], &[POISON], &[f64::NAN], F32_ELEMENTWISE, false);
    assert_eq!(c.failures, 1, "a NaN reference needs a NaN result");
}

/// The backward with dy and x one buffer, dx = x f'(x) (both are only read), against the reference; dx over
/// either is refused.
#[test]
fn backward_takes_one_buffer_as_x_and_dy() {
    let g = gpu();
    let v = [-2.0f32, -0.5, 0.0, 0.75, 3.0];
    let x = g.upload(&v).unwrap();
    for act in [Activation::Gelu, Activation::Tanh] {
        let dx: Vec<f32> = act.backward(&x, &x).unwrap().read().unwrap();
        for (i, &xi) in v.iter().enumerate() {
            let want = f64::from(xi) * cpu::activation::derivative(act, xi.into());
            assert!(
                (f64::from(dx[i]) - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "{act} at {xi}: {}",
                dx[i]
            );
        }
    }
    let mut enc = g.device().create_command_encoder(&Default::default());
    assert!(matches!(
        Activation::Relu.record_backward(&mut enc, &x, &x, &x),
        Err(actgpu::Error::InvalidArgument { .. })
    ));
}

/// A root of f' past |x| = 2 (Swish with beta 0.5: f'(-2.557) = 0, where f' is small by cancellation, not by
/// decay) is left out of the relative tails check rather than failing a correct kernel; the rest of its tails
/// are still checked.
#[test]
fn a_root_past_two_is_not_a_tail() {
    let act = Activation::Swish { beta: 0.5 };
    let c = check_activation(gpu(), act, Pass::Backward, 5).unwrap();
    let tail = c.tail.as_ref().unwrap();
    assert!(c.ok() && tail.count > 1_000, "{c:#?}");
}

/// The backward's tails check sees nearly all of its tail: its gradient has one sign, so the root rule leaves
/// out only the roots of f'. With a random dy it checked 3,906 elements of GELU, 172 of sigmoid, 4,009 of SiLU
/// and 40 of tanh (now 4,356, 5,342, 6,812 and 2,650 on lavapipe).
#[test]
fn the_backward_tails_check_covers_the_tail() {
    for (act, at_least) in [
        (Activation::Gelu, 4_000),
        (Activation::Sigmoid, 5_000),
        (Activation::Silu, 6_000),
        (Activation::Tanh, 2_400),
    ] {
        let c = check_activation(gpu(), act, Pass::Backward, 5).unwrap();
        let tail = c.tail.as_ref().unwrap();
        assert!(
            c.ok() && tail.count >= at_least,
            "{act}: {} tail elements checked, want {at_least}: {c:#?}",
            tail.count
        );
    }
}

/// CELU with alpha < 0 past e^v's overflow (v = x / alpha > 88.73), where dy e^v is finite only for a small dy:
/// for a subnormal dy the product must not be rounded while still subnormal and then scaled up (it was 2% off
/// at v = 89, dy = 3 2^-149), nor overflow or turn NaN (dy = 0 gives 0). Relative error within 1e-4.
#[test]
fn celu_with_negative_alpha_scales_a_subnormal_gradient_once() {
    let act = Activation::Celu { alpha: -0.5 };
    let mut x = Vec::new();
    let mut dy = Vec::new();
    let tiny = f32::from_bits(1);
    for v in [88.02f32, 89.0, 92.0, 100.0, 150.0, 177.0, 190.0, 300.0] {
        for d in [0.0, tiny, 3.0 * tiny, -1e-40, 1e-39, 1e-30, 1.0] {
            x.push(v * -0.5);
            dy.push(d);
        }
    }
    let run =
        run_activation_with(gpu(), act, Pass::Backward, &x, &dy, Dtypes::all(DType::F32)).unwrap();
    assert_eq!(run.unwritten, 0);
    let close = |g: f32, r: f64| {
        if (r as f32).is_finite() {
            (f64::from(g) - r).abs() <= 1e-4 * r.abs() + f64::from(tiny)
        } else {
            f64::from(g) == f64::from(r as f32)
        }
    };
    // A device that flushes subnormals reads a subnormal dy as 0: its reference is then the flushed one.
    let bad: Vec<String> = (0..x.len())
        .filter(|&i| {
            let flushed = run
                .flushed
                .as_ref()
                .is_some_and(|f| close(run.got[i], f[i]));
            !close(run.got[i], run.reference[i]) && !flushed
        })
        .map(|i| {
            format!(
                "x {} dy {:e}: got {:e}, want {:e}",
                x[i], dy[i], run.got[i], run.reference[i]
            )
        })
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Derivatives that never exceed a bound their value near 0 reaches never pass it in f32: tanh' <= 1,
/// sigmoid' <= 1/4, softsign' <= 1, and softplus' and log_sigmoid' (both a sigmoid) <= 1, on 0, -0, two
/// subnormals and 64 points in each binade from 1e-2 down to 1e-12, where the rounding of e.g. 4 e / (1 + e)^2
/// with e = exp(-2|x|) just below 1 could otherwise give 1 + 2^-23: a gradient outside f''s range, which a
/// caller may rely on (a clip, a bound in a proof, a test of their own).
#[test]
fn derivatives_never_pass_their_maximum_near_zero() {
    let mut v = vec![
        0.0f32,
        -0.0,
        f32::from_bits(1),
        -f32::from_bits(0x007f_ffff),
    ];
    let mut m = 1e-2f32;
    while m > 1e-12 {
        for k in 0..64 {
            let x = m * (1.0 - k as f32 / 128.0);
            v.extend([x, -x]);
        }
        m *= 0.5;
    }
    let g = gpu();
    let x = g.upload(&v).unwrap();
    let dy = g.upload(&vec![1.0f32; v.len()]).unwrap();
    for (act, max) in [
        (Activation::Tanh, 1.0f32),
        (Activation::Sigmoid, 0.25),
        (Activation::Softsign, 1.0),
        (Activation::softplus(), 1.0),
        (Activation::LogSigmoid, 1.0),
    ] {
        let dx: Vec<f32> = act.backward(&x, &dy).unwrap().read().unwrap();
        let over: Vec<(f32, f32)> = v
            .iter()
            .zip(&dx)
            .filter(|&(_, &d)| d > max || d.is_nan())
            .map(|(&x, &d)| (x, d))
            .take(5)
            .collect();
        assert!(
            over.is_empty(),
            "{act}' passes {max} at (x, f'(x)) {over:?}"
        );
    }
}
