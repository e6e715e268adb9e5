//! User-defined activations: compiled into the same kernels, checked against their reference and against finite
//! differences, and WGSL mistakes reported as typed errors with the line.

mod common;

use actgpu::verify::{compare, compare_storage, round_to, Rng, F32_ELEMENTWISE};
use actgpu::{cpu, CustomActivation, CustomBody, DType, Error, Gated};
use common::gpu;

/// ISRU, `x / sqrt(1 + x^2)`: its derivative `(1 + x^2)^(-3/2)`. Written to stay finite at +-inf.
fn isru() -> CustomActivation {
    CustomActivation::new(
        "isru",
        "let c = clamp(x, -1e18, 1e18);\nreturn c * inverseSqrt(1.0 + c * c);",
        "let a = abs(x);\nlet r = select(inverseSqrt(1.0 + x * x), 1.0 / a, a > 1e12);\nreturn r * r * r;",
        |x| {
            if x.is_infinite() {
                x.signum()
            } else {
                x / (1.0 + x * x).sqrt()
            }
        },
        |x| (1.0 + x * x).powf(-1.5),
    )
}

#[test]
fn a_custom_activation_passes_its_own_check() {
    let c = isru();
    c.compile(gpu()).unwrap();
    let check = c.check(gpu()).unwrap();
    assert!(check.ok(), "{check:#?}");
    assert!(check.max_fd_err < 1e-3);
}

/// A leaky relu of slope 0.1 (PyTorch's derivative 0.1 at 0) as a custom activation.
fn leaky_tenth() -> CustomActivation {
    CustomActivation::new(
        "leaky_tenth",
        "return select(0.1 * x, x, x > 0.0);",
        "return select(0.1, 1.0, x > 0.0);",
        |x| if x > 0.0 { x } else { 0.1 * x },
        |x| if x > 0.0 { 1.0 } else { 0.1 },
    )
}

/// A kink at 0 (a leaky relu of slope 0.1, with PyTorch's derivative 0.1 at 0): the sweep hits x = 0 and its
/// neighbours, where central differences straddle the kink; the one-sided estimates still confirm f'.
#[test]
fn a_kinked_activation_passes_its_own_check() {
    let check = leaky_tenth().check(gpu()).unwrap();
    assert!(check.ok(), "{check:#?}");
    // A derivative wrong only on one side of the kink is still caught there.
    let wrong = CustomActivation::new(
        "leaky_tenth_wrong_left",
        "return select(0.1 * x, x, x > 0.0);",
        "return select(0.2, 1.0, x > 0.0);",
        |x| if x > 0.0 { x } else { 0.1 * x },
        |x| if x > 0.0 { 1.0 } else { 0.2 },
    );
    let check = wrong.check(gpu()).unwrap();
    assert!(check.fd_mismatches.iter().all(|&x| x <= 0.0));
    assert!(
        check.fd_mismatches.len() > 700,
        "{}",
        check.fd_mismatches.len()
    );
}

#[test]
fn a_wrong_derivative_is_caught_by_finite_differences() {
    let wrong = CustomActivation::new(
        "isru_wrong_derivative",
        "return x * inverseSqrt(1.0 + x * x);",
        "return inverseSqrt(1.0 + x * x);",
        |x| x / (1.0 + x * x).sqrt(),
        |x| 1.0 / (1.0 + x * x).sqrt(),
    );
    let check = wrong.check(gpu()).unwrap();
    assert!(
        !check.fd_mismatches.is_empty(),
        "the check must flag a derivative that is not f'"
    );
    assert!(!check.ok());
}

/// The mistake NUMERICS.md warns of: exact GELU with the tanh approximation's derivative (in f64 as well, so
/// only the finite differences can see it). They differ by at most 8.7e-4 (near x = 2), which the tolerance
/// must not absorb.
#[test]
fn the_tanh_gelu_derivative_of_exact_gelu_is_caught() {
    let tanh_derivative = |x: f64| {
        let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
        let t = u.tanh();
        let du = (2.0 / std::f64::consts::PI).sqrt() * (1.0 + 3.0 * 0.044715 * x * x);
        0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
    };
    let wrong = CustomActivation::new(
        "gelu_with_tanh_derivative",
        // gelu_f: the crate's exact GELU, which a custom body can call.
        "return gelu_f(x);",
        "let c = clamp(x, -10.0, 10.0);\nlet u = 0.7978845608 * (c + 0.044715 * c * c * c);\nlet t = tanh(u);\n\
         return 0.5 * (1.0 + t) + 0.5 * c * (1.0 - t * t) * 0.7978845608 * (1.0 + 0.134145 * c * c);",
        |x| cpu::activation::forward(actgpu::Activation::Gelu, x),
        tanh_derivative,
    );
    let check = wrong.check(gpu()).unwrap();
    assert!(
        !check.fd_mismatches.is_empty(),
        "max FD error {}: the check must flag the tanh derivative of exact GELU",
        check.max_fd_err
    );
}

/// The other side of the tolerance: every built-in activation's WGSL derivative, at its default and other
/// parameters, passes the finite differences of its WGSL forward (kinks included), so the tightened tolerance
/// does not reject a correct derivative.
#[test]
fn every_builtin_derivative_passes_the_finite_difference_check() {
    use actgpu::verify::finite_difference::{check_derivative, FD_TOLERANCE};
    for act in actgpu::Activation::ALL
        .into_iter()
        .chain(actgpu::verify::OTHER_PARAMETERS)
    {
        let (max_err, mismatches) = check_derivative(gpu(), act, 1601).unwrap();
        assert!(
            mismatches.is_empty(),
            "{act}: {} points beyond {FD_TOLERANCE} (1 + |R|), the first at {:?}; largest distance {max_err}",
            mismatches.len(),
            &mismatches[..mismatches.len().min(5)]
        );
    }
}

#[test]
fn wgsl_errors_name_the_line_of_the_users_code() {
    let broken = CustomActivation::new(
        "broken",
        "let y = x;\nreturn y +;",
        "return 1.0;",
        |x| x,
        |_| 1.0,
    );
    match broken.compile(gpu()) {
        Err(Error::CustomShader {
            name,
            body,
            line,
            message,
        }) => {
            assert_eq!(name, "broken");
            assert_eq!(
                (body, line),
                (Some(CustomBody::Forward), Some(2)),
                "{message}"
            );
        }
        other => panic!("expected a CustomShader error, got {other:?}"),
    }
    // Errors in the derivative count its lines from its own first line; errors naga's validator finds (no
    // `return`, a value of the wrong type) point at the function's first line, in the body they belong to.
    let cases = [
        ("return nope(x);", "return 1.0;", CustomBody::Forward, 1),
        (
            "let a = x;\nreturn a;",
            "let b = 2.0;\n\nreturn b +;",
            CustomBody::Derivative,
            3,
        ),
        ("let y = x * 2.0;", "return 1.0;", CustomBody::Forward, 1),
        (
            "return x;\n",
            "let t = x;\nreturn t > 0.0;",
            CustomBody::Derivative,
            1,
        ),
        // Braces that do not balance within a body: one that ends the function (and would let the body declare
        // bindings or entry points of its own, which compiled before), and one left open (which the wrapper's
        // own `}` closed, so the compiler pointed at the derivative's first line).
        (
            "return x;\n}\n@group(0) @binding(9) var<storage, read_write> t: array<f32>;\nfn pad(x: f32) -> f32 {\nreturn t[0];",
            "return 1.0;",
            CustomBody::Forward,
            2,
        ),
        (
            "if (x > 0.0) {\nreturn x;",
            "return 1.0;",
            CustomBody::Forward,
            2,
        ),
        ("return x;", "/* } */ // }\nreturn 1.0; }", CustomBody::Derivative, 2),
        // A `//` comment ends at any of WGSL's line breaks, not only at \n: a `}` after a \r is code (it ends
        // the function, and what follows was a binding of the body's own).
        (
            "return x; //\r}\n@group(0) @binding(9) var<storage, read_write> t: array<f32>;\nfn pad() {\n//\r",
            "return 1.0;",
            CustomBody::Forward,
            1,
        ),
        ("return x; //\u{2028}}", "return 1.0;", CustomBody::Forward, 1),
        // A `/*` left open would hide the wrapper's code (the derivative's whole function vanished).
        ("return x; /*", "*/ return 1.0;", CustomBody::Forward, 1),
    ];
    // Balanced braces, and braces inside comments, are fine.
    // Old Mac line endings too: each \r ends the `//` comment before it, so the braces after it count.
    for relu in [
        "// relu, with a { in a comment\nif (x > 0.0) {\n    return x; /* } */\n}\nreturn 0.0;",
        "if (x > 0.0) { // positive\rreturn x;\r}\rreturn 0.0;",
    ] {
        let fine = CustomActivation::new(
            "braces",
            relu,
            "return select(0.0, 1.0, x > 0.0);",
            |x| x.max(0.0),
            |x| if x > 0.0 { 1.0 } else { 0.0 },
        );
        fine.compile(gpu()).unwrap();
    }
    for (forward, derivative, body, line) in cases {
        let c = CustomActivation::new("wrong", forward, derivative, |x| x, |_| 1.0);
        match c.compile(gpu()) {
            Err(e @ Error::CustomShader { .. }) => {
                let Error::CustomShader {
                    body: b, line: l, ..
                } = &e
                else {
                    unreachable!()
                };
                assert_eq!(
                    (*b, *l),
                    (Some(body), Some(line)),
                    "{forward:?} / {derivative:?}: {e}"
                );
                let text = e.to_string();
                assert!(
                    text.contains(&format!("line {line} of its {} code", body.name())),
                    "{text}"
                );
            }
            other => panic!("{forward:?} / {derivative:?}: expected CustomShader, got {other:?}"),
        }
    }
}

/// Two activations made from the same name and WGSL keep their own reference functions.
#[test]
fn twins_keep_their_own_references() {
    let one = CustomActivation::new("twin", "return x;", "return 1.0;", |x| x, |_| 1.0);
    let two = CustomActivation::new("twin", "return x;", "return 1.0;", |x| 2.0 * x, |_| 2.0);
    assert_ne!(one.activation(), two.activation());
    assert_eq!(cpu::activation::forward(one.activation(), 3.0), 3.0);
    assert_eq!(cpu::activation::forward(two.activation(), 3.0), 6.0);
    assert!(one.check(gpu()).unwrap().ok());
    assert!(!two.check(gpu()).unwrap().ok());
}

#[test]
fn custom_activations_run_in_every_kernel_family_and_type() {
    let act = isru().activation();
    let g = gpu();
    let mut rng = Rng::new(5);
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        let xs: Vec<f32> = (0..999)
            .map(|_| round_to(dtype, rng.uniform(-6.0, 6.0)))
            .collect();
        let x = g.upload_f32_as(&xs, dtype).unwrap();
        let y = act.forward(&x).unwrap().read_f32().unwrap();
        let reference: Vec<f64> = xs
            .iter()
            .map(|&v| cpu::activation::forward(act, v.into()))
            .collect();
        let c = match dtype {
            DType::F32 => compare(&xs, &y, &reference, F32_ELEMENTWISE, false),
            _ => compare_storage(dtype, &xs, &y, &reference, 1),
        };
        assert!(c.ok(), "{dtype:?}: {c:#?}");
    }
    // As the gate of a gated unit, and with a bias.
    let a: Vec<f32> = (0..64).map(|_| rng.uniform(-2.0, 2.0)).collect();
    let gate: Vec<f32> = (0..64).map(|_| rng.uniform(-4.0, 4.0)).collect();
    let out = Gated { gate: act }
        .forward_pair(&g.upload(&a).unwrap(), &g.upload(&gate).unwrap())
        .unwrap()
        .read::<f32>()
        .unwrap();
    let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    let reference = cpu::fused::gated_forward(act, &widen(&a), &widen(&gate));
    assert!(compare(&gate, &out, &reference, F32_ELEMENTWISE, false).ok());
    let x = g.upload_shaped(&a, &[8, 8]).unwrap();
    let bias = g.upload(&gate[..8]).unwrap();
    let y = act.bias_forward(&x, &bias).unwrap().read::<f32>().unwrap();
    let reference = cpu::fused::bias_forward(act, &widen(&a), &widen(&gate[..8]));
    assert!(compare(&a, &y, &reference, F32_ELEMENTWISE, false).ok());
}

/// The fused families a custom activation compiles into, through the same checks as the built-ins
/// (`verify::fused`, outputs poisoned): bias forward and backward with db (fused and two-pass widths), the gated
/// unit in both layouts, forward and backward, in every storage type; ISRU on random inputs, the leaky relu on
/// edge inputs too (ISRU's derivative, about |x|^-3, underflows in f32 at the edge values, where an infinite dy
/// times it has no common answer with f64). A dense layer with ISRU in the matmul's epilogue, forward and
/// backward, through validate's dense check.
#[test]
fn custom_activations_in_the_fused_kernels() {
    use actgpu::verify::fused::{check_bias, check_gated, FusedInputs};
    let isru = isru().activation();
    let leaky = leaky_tenth().activation();
    let g = gpu();
    let mut checks = Vec::new();
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        for (act, inputs) in [
            (isru, FusedInputs::Random(3)),
            (leaky, FusedInputs::Random(5)),
            (leaky, FusedInputs::Edges(4)),
        ] {
            for (rows, cols) in [(33, 24), (9, 13), (6, 26)] {
                checks.extend(check_bias(g, act, rows, cols, dtype, DType::F32, inputs).unwrap());
            }
            for (rows, half) in [(5, 8), (7, 13)] {
                checks.extend(
                    check_gated(g, Gated { gate: act }, rows, half, dtype, inputs).unwrap(),
                );
            }
        }
    }

    // The dense layer with ISRU in the matmul's epilogue, forward and backward, dZ fused and separate.
    for dz in [actgpu::DzMode::Separate, actgpu::DzMode::Fused] {
        let dense = actgpu::Dense {
            dz,
            ..actgpu::Dense::new(isru)
        };
        checks.extend(actgpu::verify::training::check_dense_layer(g, dense).unwrap());
    }
    let failed: Vec<_> = checks.iter().filter(|c| !c.ok()).collect();
    assert!(failed.is_empty(), "{}", common::describe(&failed));
}

/// A user-defined derivative that loops (once per call, with a bound the compiler cannot see), in a fused dense
/// backward whose dX product is 8,000 deep: the direct kernel applies the derivative several times per element
/// of K, which on a software driver that stops an invocation's loops after 65,535 iterations in all
/// (`Gpu::loop_limited`) would cut the product short without a word. There the fused mode gives way to the
/// separate dZ pass; everywhere dX must be exact (operands 1/4 and 1/2 sum exactly in f32).
#[test]
fn a_looping_custom_derivative_in_a_deep_fused_backward_is_not_cut_short() {
    let looping = CustomActivation::new(
        "looping_identity",
        "return x;",
        "var d = 0.0;\nvar i = 0.0;\nloop {\n    if !(i <= abs(x)) { break; }\n    d = 1.0;\n    i = abs(x) + 1.0;\n}\nreturn d;",
        |x| x,
        |_| 1.0,
    );
    let g = gpu();
    let (m, k, n) = (2, 3, 8000);
    let x = g.upload_shaped(&vec![0.5f32; m * k], &[m, k]).unwrap();
    let w = g.upload_shaped(&vec![0.25f32; k * n], &[k, n]).unwrap();
    let z = g.upload_shaped(&vec![1.0f32; m * n], &[m, n]).unwrap();
    let dy = g.upload_shaped(&vec![0.5f32; m * n], &[m, n]).unwrap();
    let dense = actgpu::Dense {
        dz: actgpu::DzMode::Fused,
        ..actgpu::Dense::new(looping.activation())
    };
    let grads = dense.backward(&x, &w, &z, &dy).unwrap();
    // dX = dZ W^T: 8,000 terms of 0.5 x 0.25 in every element.
    assert_eq!(grads.dx.read_f32().unwrap(), vec![1000.0f32; m * k]);
    assert_eq!(grads.dw.read_f32().unwrap(), vec![0.5f32; k * n]);
    assert_eq!(grads.db.read_f32().unwrap(), vec![1.0f32; n]);
}

/// An id no `CustomActivation` registered is refused where the network is built, not at its first step, and by
/// every launcher before any compilation.
#[test]
fn an_unregistered_custom_id_is_refused_up_front() {
    let g = gpu();
    let unknown = actgpu::Activation::Custom { id: u64::MAX };
    let net = actgpu::Mlp::new(
        g,
        &[2, 3, 2],
        &[unknown],
        actgpu::Loss::SoftmaxCrossEntropy,
        actgpu::Optimizer::Sgd(actgpu::Sgd::new(0.1)),
        1,
    );
    assert!(
        matches!(&net, Err(Error::InvalidArgument { reason, .. }) if reason.contains("not registered")),
        "{:?}",
        net.err()
    );
    let x = g.upload(&[1.0f32, -1.0]).unwrap();
    assert!(matches!(
        unknown.forward(&x),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(isru().activation().validate().is_ok());
}
