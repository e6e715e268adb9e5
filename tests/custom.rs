//! User-defined activations: compiled into the same kernels, checked against their reference and against finite
//! differences, and WGSL mistakes reported as typed errors with the line.

mod common;

use actgpu::nn::checkpoint::{parse_activation_spec, parse_hidden_spec, ACTIVATIONS_KEY};
use actgpu::nn::safetensors::SafeTensors;
use actgpu::verify::survey::survey_activation;
use actgpu::verify::{compare, compare_storage, round_to, Pass, Rng, F32_ELEMENTWISE};
use actgpu::{
    cpu, Activation, CustomActivation, CustomBody, DType, Error, Gated, Hidden, Loss, Mlp,
    Optimizer, Sgd,
};
use common::gpu;

/// ISRU, `x / sqrt(1 + x^2)`: its derivative `(1 + x^2)^(-3/2)`. Written to stay finite at +-inf.
fn isru() -> CustomActivation {
    isru_named("isru")
}

/// [`isru`] registered under another name.
fn isru_named(name: &str) -> CustomActivation {
    CustomActivation::new(
        name,
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

/// A user-defined activation is surveyed over the whole f32 line as a built-in is (ACCURACY.md): its WGSL keeps the
/// reference's classes everywhere (NaN, the limits at +-inf) and every normal result has a small mixed error.
#[test]
fn a_custom_activation_can_be_surveyed_over_the_whole_line() {
    let act = isru().activation();
    for pass in [Pass::Forward, Pass::Backward] {
        let s = survey_activation(gpu(), act, pass, 1 << 16, 5).unwrap();
        assert_eq!(
            (s.inputs, s.class_mismatches, s.unwritten),
            (131_072, 0, 0),
            "{s:?}"
        );
        assert!(s.max_mixed_ulp <= common::max_mixed_ulp(), "{s:?}");
    }
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
    // Its summary says so, part by part (the general backward values pass: the reference's f' is wrong the
    // same way), and where the finite differences disagree.
    let summary = check.to_string();
    let first = summary.lines().next().unwrap();
    assert_eq!(first, "isru_wrong_derivative: FAILED", "{summary}");
    assert!(
        summary.contains("isru_wrong_derivative backward, x f32 dy f32 out f32: "),
        "{summary}"
    );
    assert!(
        summary.contains(&format!(
            "{} mismatches (first at x = ",
            check.fd_mismatches.len()
        )),
        "{summary}"
    );
    let ok = leaky_tenth().check(gpu()).unwrap().to_string();
    assert!(ok.starts_with("leaky_tenth: ok\n"), "{ok}");
    let parts: Vec<&str> = ok.lines().filter(|l| l.starts_with("  ")).collect();
    assert!(
        parts.len() >= 4 && parts.iter().all(|l| l.contains(" values, 0 failed")),
        "{ok}"
    );
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

/// A user-defined activation is named by its own name wherever a built-in is: `name()`, `Display`, a gated
/// unit's and a hidden layer's name, and the `op` of the typed errors its kernels return, so that the errors of
/// two custom activations tell which is which.
#[test]
fn a_custom_activation_is_named_by_its_own_name_everywhere() {
    let g = gpu();
    let (isru, leaky) = (isru(), leaky_tenth());
    let (a, b) = (isru.activation(), leaky.activation());
    assert_eq!(a.name(), "isru");
    assert_eq!(b.to_string(), "leaky_tenth");
    assert_eq!(Gated { gate: a }.name(), "gated_isru");
    assert_eq!(Hidden::Act(b).name(), "leaky_tenth");
    assert_eq!(Hidden::Gated(Gated { gate: a }).name(), "gated_isru");
    // Hidden::from_name finds them by those names while they are registered (train and the study read them).
    assert_eq!(Hidden::from_name("leaky_tenth"), Some(Hidden::Act(b)));
    assert_eq!(
        Hidden::from_name("gated_isru"),
        Some(Hidden::Gated(Gated { gate: a }))
    );
    // One name registered again and again is stored once.
    assert!(std::ptr::eq(a.name(), isru.name()));
    assert!(std::ptr::eq(
        a.name(),
        isru_named("isru").activation().name()
    ));

    let x = g.upload(&[1.0f32, 2.0, 3.0]).unwrap();
    let short = g.upload(&[0.0f32; 2]).unwrap();
    for (act, name) in [(a, "isru"), (b, "leaky_tenth")] {
        let mut encoder = g.device().create_command_encoder(&Default::default());
        let err = act.record_forward(&mut encoder, &x, &short).unwrap_err();
        assert!(
            matches!(&err, Error::ShapeMismatch { op, .. } if *op == name),
            "{err:?}"
        );
        assert!(err.to_string().starts_with(&format!("{name}: ")), "{err}");
    }

    // An id no CustomActivation registered still prints as `custom`.
    let unknown = Activation::Custom { id: u64::MAX };
    assert_eq!(unknown.name(), "custom");
}

fn sgd() -> Optimizer {
    Optimizer::Sgd(Sgd::new(0.1))
}

/// The network's predictions for `x`, as bits.
fn predict(net: &mut Mlp, x: &actgpu::Tensor) -> Vec<u32> {
    let y = net.predict(x).unwrap().read_f32().unwrap();
    y.iter().map(|v| v.to_bits()).collect()
}

/// `bytes` with every `from` replaced by `to`, of the same length (so a file's header keeps its length and
/// offsets).
fn replaced(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let (from, to) = (from.as_bytes(), to.as_bytes());
    let mut out = bytes.to_vec();
    let mut found = false;
    for i in 0..=out.len() - from.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + to.len()].copy_from_slice(to);
            found = true;
        }
    }
    assert!(
        found,
        "{:?} is not in the file",
        String::from_utf8_lossy(from)
    );
    out
}

/// A saved network's metadata names its user-defined activations (`custom(<name>)`, as a layer and as a gate),
/// in a weights file and a training checkpoint, and the file loads back onto the activation registered under
/// that name: the same kinds and predictions. With the same name and code registered again, the most recent is
/// taken.
#[test]
fn a_saved_network_names_its_custom_activations_and_loads_them_back() {
    let g = gpu();
    let act = isru_named("isru_saved").activation();
    let hidden = [
        Hidden::Act(act),
        Hidden::Gated(Gated { gate: act }),
        Hidden::Act(Activation::Gelu),
    ];
    let loss = Loss::SoftmaxCrossEntropy;
    let mut net = Mlp::with_layers(g, &[2, 4, 3, 3, 2], &hidden, loss, sgd(), 7).unwrap();
    let expected = "custom(isru_saved),gated(custom(isru_saved)),gelu";
    let bytes = net.to_safetensors_bytes().unwrap();
    let file = SafeTensors::parse(&bytes).unwrap();
    assert_eq!(file.metadata(ACTIVATIONS_KEY), Some(expected));
    let checkpoint = net.to_training_checkpoint_bytes().unwrap();
    let file = SafeTensors::parse(&checkpoint).unwrap();
    assert_eq!(file.metadata(ACTIVATIONS_KEY), Some(expected));
    assert_eq!(parse_activation_spec("custom(isru_saved)"), Some(act));
    assert_eq!(
        parse_hidden_spec("gated(custom(isru_saved))"),
        Some(Hidden::Gated(Gated { gate: act }))
    );

    let x = g
        .upload_shaped(&[0.5f32, -1.0, 2.0, 0.25, -3.0, 1.5], &[3, 2])
        .unwrap();
    let y = predict(&mut net, &x);
    for bytes in [&bytes, &checkpoint] {
        let mut back = Mlp::from_safetensors(g, bytes, loss, sgd()).unwrap();
        assert_eq!(back.hidden(), hidden);
        assert_eq!(predict(&mut back, &x), y);
    }
    let again = isru_named("isru_saved").activation();
    let back = Mlp::from_safetensors(g, &bytes, loss, sgd()).unwrap();
    assert_eq!(back.hidden()[0], Hidden::Act(again));
    assert_eq!(back.hidden()[1], Hidden::Gated(Gated { gate: again }));
}

/// A file naming a user-defined activation that no CustomActivation of this process has, or several with
/// different WGSL have, is a typed error naming it, before any network is built; a file that says only `custom`
/// (written before the names were recorded) is refused as before. Loading the weights into a network built
/// with the activation reads no metadata, and works throughout.
#[test]
fn a_file_naming_an_unresolved_custom_activation_is_a_typed_error_naming_it() {
    let g = gpu();
    let act = isru_named("isru_file_a").activation();
    let loss = Loss::SoftmaxCrossEntropy;
    let net = Mlp::with_layers(
        g,
        &[2, 3, 3, 2],
        &[Hidden::Act(act), Hidden::Gated(Gated { gate: act })],
        loss,
        sgd(),
        3,
    )
    .unwrap();
    let bytes = net.to_safetensors_bytes().unwrap();
    let unknown = replaced(&bytes, "custom(isru_file_a)", "custom(isru_file_z)");
    let err = Mlp::from_safetensors(g, &unknown, loss, sgd()).unwrap_err();
    assert_eq!(
        err,
        Error::UnresolvedCustomActivation {
            name: "isru_file_z".into(),
            candidates: 0
        }
    );
    assert!(
        err.to_string()
            .contains("\"isru_file_z\" is not registered"),
        "{err}"
    );
    assert_eq!(parse_activation_spec("custom(isru_file_z)"), None);

    // As a gate only.
    let gate_only = replaced(
        &bytes,
        "gated(custom(isru_file_a))",
        "gated(custom(isru_file_z))",
    );
    let err = Mlp::from_safetensors(g, &gate_only, loss, sgd()).unwrap_err();
    assert!(
        matches!(&err, Error::UnresolvedCustomActivation { name, candidates: 0 } if name == "isru_file_z"),
        "{err:?}"
    );

    // Two activations of different code under the name the file gives.
    let _one = CustomActivation::new("isru_file_y", "return x;", "return 1.0;", |x| x, |_| 1.0);
    let _two = CustomActivation::new(
        "isru_file_y",
        "return 2.0 * x;",
        "return 2.0;",
        |x| 2.0 * x,
        |_| 2.0,
    );
    let ambiguous = replaced(&bytes, "custom(isru_file_a)", "custom(isru_file_y)");
    let err = Mlp::from_safetensors(g, &ambiguous, loss, sgd()).unwrap_err();
    assert_eq!(
        err,
        Error::UnresolvedCustomActivation {
            name: "isru_file_y".into(),
            candidates: 2
        }
    );
    assert!(
        err.to_string().contains("\"isru_file_y\" is ambiguous"),
        "{err}"
    );

    // A file of an older actgpu, which wrote `custom` without the name.
    let nameless = replaced(&bytes, "custom(isru_file_a)", "custom             ");
    let err = Mlp::from_safetensors(g, &nameless, loss, sgd()).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { reason, .. } if reason.contains("without its name")),
        "{err:?}"
    );

    for file in [&unknown, &ambiguous, &nameless] {
        let mut into = Mlp::with_layers(
            g,
            &[2, 3, 3, 2],
            &[Hidden::Act(act), Hidden::Gated(Gated { gate: act })],
            loss,
            sgd(),
            9,
        )
        .unwrap();
        into.load_weights(file).unwrap();
        assert_eq!(into.params().unwrap(), net.params().unwrap());
    }
}

/// A user-defined activation may not take a name the crate gives one of its own kinds (a built-in activation, a
/// gated unit, a learnable activation, `custom`) nor one the metadata cannot hold: it is refused, as a typed
/// error, wherever it is used. A built-in's name read back is always the built-in.
#[test]
fn a_custom_activation_may_not_take_a_builtin_name() {
    let g = gpu();
    let fake = CustomActivation::new(
        "relu",
        "return max(x, 0.0);",
        "return select(0.0, 1.0, x > 0.0);",
        |x| x.max(0.0),
        |x| if x > 0.0 { 1.0 } else { 0.0 },
    );
    assert_eq!(Activation::from_name("relu"), Some(Activation::Relu));
    assert_eq!(parse_activation_spec("relu"), Some(Activation::Relu));
    assert_eq!(
        parse_hidden_spec("relu"),
        Some(Hidden::Act(Activation::Relu))
    );
    assert_eq!(
        Hidden::from_name("relu"),
        Some(Hidden::Act(Activation::Relu))
    );
    assert_eq!(
        Hidden::from_name("gated_relu"),
        Some(Hidden::Gated(Gated::REGLU))
    );
    let refused = |r: actgpu::Result<()>| match r {
        Err(Error::InvalidArgument {
            op: "CustomActivation::new",
            reason,
        }) => reason.contains("\"relu\" is the built-in activation's"),
        _ => false,
    };
    let x = g.upload(&[1.0f32, -1.0]).unwrap();
    assert!(refused(fake.activation().validate()));
    assert!(refused(fake.compile(g)));
    assert!(refused(fake.activation().forward(&x).map(|_| ())));
    assert!(refused(fake.check(g).map(|_| ())));
    // Mlp::new refuses it too (its `op` may name the call, with the reason kept).
    let net = Mlp::new(g, &[2, 3, 2], &[fake.activation()], Loss::Mse, sgd(), 1);
    assert!(
        matches!(&net, Err(Error::InvalidArgument { reason, .. })
            if reason.contains("\"relu\" is the built-in activation's")),
        "{:?}",
        net.err()
    );

    for name in [
        "swiglu",
        "prelu",
        "custom",
        "",
        "a,b",
        "f(x)",
        "two words",
        "tab\t",
        // Invisible or look-alike: a zero-width space, a combining accent; and a gated unit's name.
        "relu\u{200B}",
        "e\u{301}lu",
        "gated_tanh",
        // The other names the crate prints for its own kinds.
        "rrelu",
        "prelu_channel",
        "elu_learnable_channel",
        "log_softmax",
    ] {
        let c = CustomActivation::new(name, "return x;", "return 1.0;", |x| x, |_| 1.0);
        let err = c.activation().validate().unwrap_err();
        assert!(
            matches!(
                &err,
                Error::InvalidArgument {
                    op: "CustomActivation::new",
                    ..
                }
            ),
            "{name:?}: {err:?}"
        );
        assert_eq!(c.name(), name);
    }
    // Names compare exactly, and a user-defined name is never a built-in's.
    let upper = CustomActivation::new("ReLU", "return x;", "return 1.0;", |x| x, |_| 1.0);
    assert!(upper.activation().validate().is_ok());
    for name in ["isru-v2", "my.act_3", "ρelu"] {
        let c = CustomActivation::new(name, "return x;", "return 1.0;", |x| x, |_| 1.0);
        assert!(c.activation().validate().is_ok(), "{name:?}");
    }
    assert_eq!(Activation::from_name("ReLU"), None);
    assert_eq!(Activation::from_name("isru"), None);
}
