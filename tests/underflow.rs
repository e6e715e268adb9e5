//! Results that are normal f32 values although a factor of them leaves f32's normal range, and the sign of zero
//! results against IEEE arithmetic of PyTorch's formulas.
//!
//! `bit_identity_dump` (ignored) is the harness that proves a change to the activation library keeps the bits of
//! every other result: run it before and after the change and it lists every element that differs.

mod common;

use std::path::{Path, PathBuf};
use std::rc::Rc;

use actgpu::verify::OTHER_PARAMETERS;
use actgpu::{cpu, Activation, Learnable};
use common::gpu;

// ---------------------------------------------------------------------------------------------------------------
// The bit-identity harness.

/// Columns of the learnable layers in the dump: a per-channel parameter, every column the same value.
const DUMP_COLS: usize = 8192;
/// Elements per dump: a sweep of [-100, 100] (2^21 points) and random bit patterns with the edge values.
const DUMP_LEN: usize = 3 << 20;

/// The dump's inputs: x, and dy for the backward passes (uniform in [-2, 2] beside the sweep, random bit
/// patterns beside the random x). Generated here, not by `actgpu::verify`, so that a change there between two
/// dumps cannot change them.
fn dump_inputs() -> (Vec<f32>, Vec<f32>) {
    // splitmix64
    let mut state = 0x5eed_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let n = 1usize << 21;
    let mut xs: Vec<f32> = (0..n)
        .map(|i| (-100.0 + 200.0 * i as f64 / (n - 1) as f64) as f32)
        .collect();
    let mut dys: Vec<f32> = (0..n)
        .map(|_| (-2.0 + 4.0 * (next() >> 11) as f64 / (1u64 << 53) as f64) as f32)
        .collect();
    let tiny = f32::from_bits(1);
    for m in [
        0.0,
        tiny,
        1e-40,
        f32::MIN_POSITIVE,
        1e-30,
        1e-8,
        1.0,
        88.7,
        89.0,
        1e4,
        1e30,
        f32::MAX,
        f32::INFINITY,
    ] {
        xs.extend([m, -m]);
        dys.extend([1.0, -1.0]);
    }
    xs.push(f32::NAN);
    dys.push(1.0);
    while xs.len() < DUMP_LEN {
        xs.push(f32::from_bits(next() as u32));
        dys.push(f32::from_bits(next() as u32));
    }
    (xs, dys)
}

/// Every plain activation with its default parameters and with the other parameters the checks use, and the
/// parameters the fixes of this file target.
fn dump_activations() -> Vec<Activation> {
    let mut acts: Vec<Activation> = Activation::ALL
        .into_iter()
        .chain(OTHER_PARAMETERS)
        .collect();
    acts.extend([
        Activation::Elu { alpha: 1e6 },
        Activation::Elu { alpha: 200.0 },
        Activation::Celu { alpha: 1e6 },
        Activation::Softplus {
            beta: 1e-6,
            threshold: 20.0,
        },
        Activation::Softplus {
            beta: 0.5,
            threshold: 20.0,
        },
        Activation::Swish { beta: 1e-6 },
    ]);
    acts
}

/// Learnable activations at PyTorch's initial parameter (what the study starts from), values it may drift to,
/// and the parameters the fixes target.
const DUMP_LEARNABLE: [(Learnable, f32); 10] = [
    (Learnable::Prelu, 0.25),
    (Learnable::Prelu, 0.0),
    (Learnable::Prelu, 1.5),
    (Learnable::Swish, 1.0),
    (Learnable::Swish, 1.5),
    (Learnable::Swish, 1e-6),
    (Learnable::Elu, 1.0),
    (Learnable::Elu, 1.5),
    (Learnable::Elu, 0.5),
    (Learnable::Elu, 1e6),
];

/// One array of results: a name, the results, and the reference of element i (computed only where asked).
struct Dumped {
    name: String,
    got: Vec<f32>,
    reference: Box<dyn Fn(usize) -> f64>,
}

fn dump_all() -> Vec<Dumped> {
    let (xs, dys) = dump_inputs();
    let g = gpu();
    let (xs, dys) = (Rc::new(xs), Rc::new(dys));
    let x = g.upload(&xs).unwrap();
    let dy = g.upload(&dys).unwrap();
    let mut out = Vec::new();
    for act in dump_activations() {
        let [p0, p1] = act.params();
        let tag = format!("{}_{:08x}_{:08x}", act.name(), p0.to_bits(), p1.to_bits());
        // (A pipeline that fails to build is reported, and its results are not in the dump.)
        let y: Vec<f32> = match act.forward(&x) {
            Ok(y) => y.read().unwrap(),
            Err(e) => {
                println!("{act:?}: {e}");
                continue;
            }
        };
        let xr = Rc::clone(&xs);
        out.push(Dumped {
            name: format!("{tag}_forward"),
            got: y,
            reference: Box::new(move |i| cpu::activation::forward(act, xr[i].into())),
        });
        let dx: Vec<f32> = act.backward(&x, &dy).unwrap().read().unwrap();
        let (xr, dr) = (Rc::clone(&xs), Rc::clone(&dys));
        out.push(Dumped {
            name: format!("{tag}_backward"),
            got: dx,
            reference: Box::new(move |i| {
                cpu::activation::backward(act, xr[i].into(), dr[i].into())
            }),
        });
    }
    let rows = DUMP_LEN / DUMP_COLS;
    let xl = g.upload_shaped(&xs, &[rows, DUMP_COLS]).unwrap();
    let dyl = g.upload_shaped(&dys, &[rows, DUMP_COLS]).unwrap();
    for (kind, pv) in DUMP_LEARNABLE {
        let tag = format!("{}_{:08x}", kind.name(), pv.to_bits());
        let p = g.upload(&[pv; DUMP_COLS]).unwrap();
        let y: Vec<f32> = kind.forward(&xl, &p).unwrap().read().unwrap();
        let xr = Rc::clone(&xs);
        out.push(Dumped {
            name: format!("{tag}_forward"),
            got: y,
            reference: Box::new(move |i| cpu::fused::learnable_f(kind, xr[i].into(), pv.into())),
        });
        let (dx, dp) = kind.backward(&xl, &p, &dyl).unwrap();
        let (xr, dr) = (Rc::clone(&xs), Rc::clone(&dys));
        out.push(Dumped {
            name: format!("{tag}_dx"),
            got: dx.read().unwrap(),
            reference: Box::new(move |i| {
                let (dfdx, _) = cpu::fused::learnable_grads(kind, xr[i].into(), pv.into());
                if xr[i].is_nan() || dr[i].is_nan() {
                    f64::NAN
                } else {
                    dfdx * f64::from(dr[i])
                }
            }),
        });
        // Column sums over 384 rows: no per-element reference (NaN: reported as unclassified).
        out.push(Dumped {
            name: format!("{tag}_dp"),
            got: dp.read().unwrap(),
            reference: Box::new(|_| f64::NAN),
        });
    }
    out
}

fn read_bits(path: &Path) -> Vec<u32> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// How one differing element moved.
#[derive(Default, Debug)]
struct Differences {
    total: usize,
    /// Both zeros, of opposite signs.
    zero_sign: usize,
    /// The old result was 0, subnormal, infinite or NaN.
    old_not_normal: usize,
    /// The old result was normal and nonzero: counted, with the old and new relative errors.
    old_normal: usize,
    old_normal_max_old_err: f64,
    old_normal_max_new_err: f64,
    /// Of those, the old one within 1e-5 relative of the reference.
    old_normal_accurate: usize,
    first: Vec<String>,
}

/// Dumps every result's bits under `$ACTGPU_BITS_DIR` (one file per activation and pass, f32 bits in little
/// endian), and, where `$ACTGPU_BITS_BASELINE` names an earlier dump, lists the elements that differ from it:
/// zeros whose sign changed, old results that were not normal, and old normal results with their errors against
/// the f64 reference. Run on one backend at a time (`WGPU_BACKEND`), before and after a change to the library:
///
/// ```text
/// ACTGPU_BITS_DIR=/tmp/actbits/old-vulkan cargo test --test underflow -- --ignored bit_identity_dump
/// (change the library)
/// ACTGPU_BITS_DIR=/tmp/actbits/new-vulkan ACTGPU_BITS_BASELINE=/tmp/actbits/old-vulkan cargo test ...
/// ```
#[test]
#[ignore = "a harness for changes to the library: writes ~1.5 GB, run by hand"]
fn bit_identity_dump() {
    let dir = PathBuf::from(std::env::var("ACTGPU_BITS_DIR").expect("set ACTGPU_BITS_DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    let baseline = std::env::var("ACTGPU_BITS_BASELINE")
        .ok()
        .map(PathBuf::from);
    let (xs, dys) = dump_inputs();
    let (mut elements, mut differing) = (0usize, 0usize);
    for d in dump_all() {
        let bytes: Vec<u8> = d
            .got
            .iter()
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect();
        std::fs::write(dir.join(format!("{}.bin", d.name)), bytes).unwrap();
        elements += d.got.len();
        let Some(base) = &baseline else { continue };
        let old_path = base.join(format!("{}.bin", d.name));
        if !old_path.exists() {
            println!("{}: not in the baseline", d.name);
            continue;
        }
        let old = read_bits(&old_path);
        assert_eq!(old.len(), d.got.len(), "{}", d.name);
        let mut diff = Differences::default();
        for (i, (&o, n)) in old.iter().zip(&d.got).enumerate() {
            let n = n.to_bits();
            if o == n {
                continue;
            }
            diff.total += 1;
            let (of, nf) = (f32::from_bits(o), f32::from_bits(n));
            if of == 0.0 && nf == 0.0 {
                diff.zero_sign += 1;
                continue;
            }
            let want = (d.reference)(i);
            let rel = |v: f32| (f64::from(v) - want).abs() / want.abs();
            if of.is_normal() {
                diff.old_normal += 1;
                diff.old_normal_max_old_err = diff.old_normal_max_old_err.max(rel(of));
                diff.old_normal_max_new_err = diff.old_normal_max_new_err.max(rel(nf));
                diff.old_normal_accurate += usize::from(rel(of) <= 1e-5);
            } else {
                diff.old_not_normal += 1;
            }
            if diff.first.len() < 4 {
                let dy = dys.get(i).copied().unwrap_or(f32::NAN);
                diff.first.push(format!(
                    "[{i}] x {:e} dy {dy:e}: {of:e} -> {nf:e} (reference {want:e})",
                    xs.get(i).copied().unwrap_or(f32::NAN)
                ));
            }
        }
        differing += diff.total;
        if diff.total > 0 {
            println!("{}: {diff:?}", d.name);
        }
    }
    println!("{elements} elements dumped, {differing} differ from the baseline");
}

// ---------------------------------------------------------------------------------------------------------------
// Results past the normal range of one of their factors.

/// Edge inputs every check here adds: 0, -0, subnormals, small and large magnitudes, the largest f32, +-inf, NaN.
fn edges() -> Vec<f32> {
    let mut v = Vec::new();
    for m in [
        0.0,
        f32::from_bits(1),
        1e-40,
        f32::MIN_POSITIVE,
        1e-8,
        1.0,
        88.7,
        1e30,
        f32::MAX,
        f32::INFINITY,
    ] {
        v.extend([m, -m]);
    }
    v.push(f32::NAN);
    v
}

/// `act` forward and backward (dy = `dy`) at `xs` and the edge inputs: within `rel` relative of the f64 reference
/// wherever it is a normal f32, and within the elementwise tolerance everywhere (NaN and +-inf in class; on a
/// device that flushes subnormals, by its rules).
fn check_far(act: Activation, xs: &[f32], dy: f32, rel: f64) {
    use actgpu::verify::{compare_flushing, flushed_reference, Criterion, F32_ELEMENTWISE};
    let g = gpu();
    let mut inputs = xs.to_vec();
    inputs.extend(edges());
    let dys = vec![dy; inputs.len()];
    let x = g.upload(&inputs).unwrap();
    let flushes = g.flushes_subnormals().unwrap();
    let forward = |v: f32, _: f32| cpu::activation::forward(act, v.into());
    let backward = |v: f32, d: f32| cpu::activation::backward(act, v.into(), d.into());
    let y: Vec<f32> = act.forward(&x).unwrap().read().unwrap();
    let dx: Vec<f32> = act
        .backward(&x, &g.upload(&dys).unwrap())
        .unwrap()
        .read()
        .unwrap();
    for (pass, got, f) in [
        ("forward", y, &forward as &dyn Fn(f32, f32) -> f64),
        ("backward", dx, &backward),
    ] {
        let reference: Vec<f64> = inputs.iter().zip(&dys).map(|(&v, &d)| f(v, d)).collect();
        let flushed = flushed_reference(flushes, &inputs, &dys, f);
        let c = compare_flushing(
            Criterion::Tolerance(F32_ELEMENTWISE),
            &inputs,
            &got,
            &reference,
            flushed.as_deref(),
        );
        assert!(c.ok(), "{act:?} {pass}: {c:#?}");
        for (i, &want) in reference.iter().enumerate() {
            if (want as f32).is_normal() {
                let err = (f64::from(got[i]) - want).abs() / want.abs();
                assert!(
                    err <= rel,
                    "{act:?} {pass} at x = {:e}, dy = {dy}: got {:e}, want {want:e} (relative error {err:.2e})",
                    inputs[i],
                    got[i]
                );
            }
        }
    }
}

/// The x where `scale x` takes each value of `v`.
fn at(scale: f32, v: &[f32]) -> Vec<f32> {
    v.iter().map(|&v| v / scale).collect()
}

/// Softplus with a small beta: for beta x < -87, e^(beta x) is subnormal or 0 in f32 while
/// softplus(beta x) / beta = e^(beta x) / beta can be a normal f32 (beta = 1e-6, x = -1e8: 3.7e-38).
#[test]
fn softplus_with_a_small_beta_keeps_normal_results() {
    let v = [
        -80.0, -86.5, -87.5, -90.0, -95.0, -100.0, -103.5, -110.0, -120.0, -150.0,
    ];
    // Betas within [2^-126, 2^126], where a device that divides through a reciprocal and flushes subnormals
    // (NVIDIA) still has a normal 1 / beta and a normal beta (see `Activation::params`).
    for beta in [1e-6f32, 1e-3, 2e-3, 1e-20, 1e-30, 1e-37] {
        let act = Activation::Softplus {
            beta,
            threshold: 20.0,
        };
        let mut xs = at(beta, &v);
        xs.extend(at(beta, &[-1.0, 0.5, 19.0, 21.0]));
        check_far(act, &xs, 1.0, 1e-5);
    }
}

/// ELU with a large alpha: ELU'(x) = alpha e^x for x <= 0 is normal although e^x is subnormal or 0 (alpha 1e6 at
/// x = -100: 3.7e-38), down to x = -176 for the largest alpha; ELU itself is alpha (e^x - 1), -alpha to f32's
/// precision there.
#[test]
fn elu_with_a_large_alpha_keeps_normal_derivatives() {
    let xs = [
        -1.0, -20.0, -80.0, -87.0, -87.5, -88.0, -90.0, -100.0, -103.5, -110.0, -120.0, -130.0,
        -150.0, -170.0, -175.0,
    ];
    for alpha in [1e6f32, 200.0, 129.0, 1e30, 3e38, -1e6] {
        for dy in [1.0, 0.5] {
            check_far(Activation::Elu { alpha }, &xs, dy, 1e-5);
        }
    }
}

/// CELU with |alpha| > 2.06, any sign (PyTorch allows every nonzero alpha): its pipelines failed to build, naga
/// evaluating alpha e^88 to an infinite constant; forward and backward against the reference, and through the
/// fused bias kernel, which compiles the same library.
#[test]
fn celu_with_a_large_alpha_builds_and_matches_the_reference() {
    let xs = [
        -1.0, -10.0, -1e3, -1e6, -1e8, -1e30, -3e38, 0.5, 100.0, 3e38,
    ];
    // |alpha| up to 2^126 (8.5e37): past it NVIDIA's division through a reciprocal flushes 1 / alpha to 0.
    for alpha in [2.1f32, 3.0, -3.0, 1e6, -1e6, 8e37, -8e37] {
        let act = Activation::Celu { alpha };
        check_far(act, &xs, 1.0, 1e-5);
        let g = gpu();
        let x = g.upload_shaped(&[-1.0f32, 2.0], &[1, 2]).unwrap();
        let bias = g.upload(&[0.5f32, -0.5]).unwrap();
        let y: Vec<f32> = act.bias_forward(&x, &bias).unwrap().read().unwrap();
        for (i, (&xi, &bi)) in [-1.0f32, 2.0].iter().zip(&[0.5f32, -0.5]).enumerate() {
            let want = cpu::activation::forward(act, f64::from(xi + bi));
            assert!(
                (f64::from(y[i]) - want).abs() <= 1e-6 + 1e-5 * want.abs(),
                "{act:?} bias forward at {}: got {}, want {want}",
                xi + bi,
                y[i]
            );
        }
    }
}

/// A learnable ELU whose alpha has drifted large: df/dx = alpha e^x as for the fixed ELU, one alpha per column.
#[test]
fn learnable_elu_with_a_large_alpha_keeps_normal_derivatives() {
    use actgpu::verify::{compare_flushing, flushed_reference, Criterion, F32_ELEMENTWISE};
    let g = gpu();
    let ps = [1e6f32, 200.0, 1e30, 3e38, -1e6, 1.0, 0.5];
    let mut rows = vec![
        -1.0f32, -87.0, -88.0, -90.0, -100.0, -110.0, -120.0, -150.0, -175.0, 2.0,
    ];
    rows.extend(edges());
    let xs: Vec<f32> = rows
        .iter()
        .flat_map(|&x| ps.iter().map(move |_| x))
        .collect();
    let dys = vec![1.0f32; xs.len()];
    let x = g.upload_shaped(&xs, &[rows.len(), ps.len()]).unwrap();
    let dy = g.upload_shaped(&dys, &[rows.len(), ps.len()]).unwrap();
    let (dx, _) = Learnable::Elu
        .backward(&x, &g.upload(&ps).unwrap(), &dy)
        .unwrap();
    let got: Vec<f32> = dx.read().unwrap();
    let reference = |v: f32, i: usize| {
        let (dfdx, _) =
            cpu::fused::learnable_grads(Learnable::Elu, v.into(), ps[i % ps.len()].into());
        if v.is_nan() {
            f64::NAN
        } else {
            dfdx
        }
    };
    let want: Vec<f64> = xs
        .iter()
        .enumerate()
        .map(|(i, &v)| reference(v, i))
        .collect();
    let flushes = g.flushes_subnormals().unwrap();
    let indices: Vec<f32> = (0..xs.len()).map(|i| i as f32).collect();
    let flushed = flushed_reference(flushes, &xs, &[], |v, _| v.into()).map(|f| {
        f.iter()
            .enumerate()
            .map(|(i, &v)| reference(v as f32, i))
            .collect::<Vec<_>>()
    });
    let c = compare_flushing(
        Criterion::Tolerance(F32_ELEMENTWISE),
        &indices,
        &got,
        &want,
        flushed.as_deref(),
    );
    assert!(c.ok(), "{c:#?}");
    for (i, &w) in want.iter().enumerate() {
        if (w as f32).is_normal() {
            let err = (f64::from(got[i]) - w).abs() / w.abs();
            assert!(
                err <= 1e-5,
                "x = {:e}, alpha = {:e}: got {:e}, want {w:e} (relative error {err:.2e})",
                xs[i],
                ps[i % ps.len()],
                got[i]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The sign of zero results.

/// Zero results carry the sign IEEE arithmetic of PyTorch's formula gives in f32: x * g = -0 for x < 0 where a
/// gate g underflows to 0 (GELU, SiLU, ..., and a slope of 0), tanh(-0) = -0, hardswish = x * 0 / 6 = -0 for
/// x <= -3, softshrink = x * 0 inside [-lambd, lambd] (PyTorch's scalar code; its vectorised CPU code gives +0);
/// a zero of x's sign at -inf too, where PyTorch forms NaN and the kernels give the limit; and tanhshrink, odd,
/// -0 at -0 (x^3 p, where PyTorch's x - tanh(x) gives +0). The zeros of the positive activations (softplus, sigmoid,
/// log-sigmoid of a large x, hardsigmoid, relu of x < 0) are +0, and hardshrink's, PyTorch's constant 0.
/// `relu(-0)` is left out: max(-0, 0) is either zero in WGSL, and PyTorch itself gives -0 on the CPU and +0 on
/// CUDA.
#[test]
fn zero_results_have_the_sign_of_ieee_arithmetic() {
    let g = gpu();
    let xs = [
        -0.0f32,
        0.0,
        -200.0,
        -1e4,
        -1e30,
        -f32::MAX,
        f32::NEG_INFINITY,
        200.0,
        1e4,
        f32::INFINITY,
        -3.0,
        -2.0,
        -0.25,
        0.25,
    ];
    let acts = [
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::QuickGelu,
        Activation::Silu,
        Activation::Swish { beta: 1.5 },
        Activation::Swish { beta: 1e-6 },
        Activation::Swish { beta: -1.0 },
        Activation::Mish,
        Activation::LeakyRelu {
            negative_slope: 0.0,
        },
        Activation::leaky_relu(),
        Activation::Tanh,
        Activation::Hardswish,
        Activation::Hardsigmoid,
        Activation::Softplus {
            beta: 1.0,
            threshold: 20.0,
        },
        Activation::Sigmoid,
        Activation::LogSigmoid,
        Activation::Relu,
        Activation::Softsign,
        Activation::elu(),
        Activation::Selu,
        Activation::Identity,
        Activation::hardshrink(),
        Activation::softshrink(),
        Activation::Tanhshrink,
    ];
    let positive = [
        Activation::Hardsigmoid,
        Activation::Softplus {
            beta: 1.0,
            threshold: 20.0,
        },
        Activation::Sigmoid,
        Activation::LogSigmoid,
        Activation::Relu,
        Activation::hardshrink(),
    ];
    let x = g.upload(&xs).unwrap();
    let mut zeros = 0;
    let mut check = |what: &str, xi: f32, yi: f32, want: f64, negative: bool| {
        // Every zero of the reference is a zero here, and every zero has the sign of the rule.
        if want as f32 == 0.0 {
            assert_eq!(yi, 0.0, "{what} at {xi:e}: got {yi:e}, want 0");
        }
        if yi == 0.0 && !(what.starts_with("Relu") && xi == 0.0) {
            zeros += 1;
            assert_eq!(
                yi.is_sign_negative(),
                negative,
                "{what} at {xi:e}: got {yi:e}"
            );
        }
    };
    for act in acts {
        let y: Vec<f32> = act.forward(&x).unwrap().read().unwrap();
        for (&xi, &yi) in xs.iter().zip(&y) {
            let want = cpu::activation::forward(act, xi.into());
            let negative = !positive.contains(&act) && xi.is_sign_negative();
            check(&format!("{act:?}"), xi, yi, want, negative);
            if want == 0.0 {
                assert_eq!(
                    want.is_sign_negative(),
                    negative,
                    "reference {act:?} at {xi:e}"
                );
            }
        }
    }
    // A learnable slope of 0 as a leaky ReLU of slope 0.
    let p = g.upload(&[0.0f32]).unwrap();
    let y: Vec<f32> = Learnable::Prelu.forward(&x, &p).unwrap().read().unwrap();
    for (&xi, &yi) in xs.iter().zip(&y) {
        let want = cpu::fused::learnable_f(Learnable::Prelu, xi.into(), 0.0);
        check("prelu(p = 0)", xi, yi, want, xi.is_sign_negative());
    }
    assert!(zeros >= 80, "only {zeros} zero results");
}
