//! User-defined activations: WGSL for `f(x)` and `f'(x)` plus an f64 reference, compiled into the same kernels
//! as the built-in activations (plain, in place, bias, gated; forward and backward; every storage type).
//!
//! ```
//! use actgpu::{CustomActivation, Gpu};
//! # fn main() -> actgpu::Result<()> {
//! // ISRU, x / (1 + x^2)^(1/2), written as WGSL function bodies over `x: f32`. The clamp keeps c * c finite
//! // (without it x = 1e30 gives 0 instead of 1, which `check` reports); past |x| = 1e12 the derivative is
//! // (1/|x|)^3, which stays accurate in every storage type where 1 + x * x would overflow.
//! let isru = CustomActivation::new(
//!     "isru",
//!     "let c = clamp(x, -1e18, 1e18);\nreturn c * inverseSqrt(1.0 + c * c);",
//!     "let a = abs(x);\nlet r = select(inverseSqrt(1.0 + x * x), 1.0 / a, a > 1e12);\nreturn r * r * r;",
//!     |x| if x.is_infinite() { x.signum() } else { x / (1.0 + x * x).sqrt() },
//!     |x| (1.0 + x * x).powf(-1.5),
//! );
//! let gpu = Gpu::new()?;
//! isru.compile(&gpu)?; // a WGSL mistake is Error::CustomShader with the body and line in your code
//! let act = isru.activation();
//! let y = act.forward(&gpu.upload(&[1.0f32, -2.0])?)?;
//! assert!(isru.check(&gpu)?.ok());
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use crate::verify::{check_activation, ActivationCheck, Pass};
use crate::{Activation, CustomBody, Gpu, Result};

/// A scalar reference function.
type Reference = Arc<dyn Fn(f64) -> f64 + Send + Sync>;

/// What the registry holds for one user-defined activation.
#[derive(Clone)]
pub(crate) struct Registered {
    /// The activation's name.
    pub name: String,
    /// WGSL defining `custom_forward` and `custom_derivative`.
    pub wgsl: String,
    /// f64 reference of f.
    pub forward: Reference,
    /// f64 reference of f'.
    pub derivative: Reference,
    /// Lines of the forward body as written into `wgsl` (a trailing newline makes one more, empty).
    forward_lines: usize,
    /// A body whose braces do not balance: which, the line, and what is wrong. Found at creation, reported by
    /// every compilation (the compiler itself would see the wrapper's own braces close or open the body, and
    /// point elsewhere, or accept a body that ends its function and declares items of its own).
    pub(crate) braces: Option<(CustomBody, usize, String)>,
}

/// Characters that end a `//` comment in WGSL besides `\n` (naga's lexer takes every one of them as a line
/// break): a body's check must stop skipping there too, or code after one would pass unseen.
const WGSL_LINE_BREAKS: [char; 6] = ['\r', '\u{0B}', '\u{0C}', '\u{85}', '\u{2028}', '\u{2029}'];

/// The first line of `body` where its braces stop balancing: a `}` that closes more than the body opened (it
/// would end the wrapper's function), or at the end a `{` left open or a `/*` comment left open (it would hide
/// the wrapper's code). `//` comments (to the next line break, any of WGSL's) and nested `/* */` comments are
/// skipped. Lines are counted at `\n`, as the error locations are.
fn unbalanced_braces(body: &str) -> Option<(usize, String)> {
    let mut depth = 0usize;
    let mut opened = Vec::new();
    let mut comment = 0usize;
    let mut comment_line = 0;
    for (i, line) in body.split('\n').enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let mut j = 0;
        while j < chars.len() {
            let pair = (chars[j], chars.get(j + 1).copied());
            match pair {
                ('/', Some('*')) => {
                    if comment == 0 {
                        comment_line = i + 1;
                    }
                    comment += 1;
                    j += 2;
                    continue;
                }
                ('*', Some('/')) if comment > 0 => {
                    comment -= 1;
                    j += 2;
                    continue;
                }
                ('/', Some('/')) if comment == 0 => {
                    match chars[j..].iter().position(|c| WGSL_LINE_BREAKS.contains(c)) {
                        Some(k) => {
                            j += k + 1;
                            continue;
                        }
                        None => break,
                    }
                }
                _ if comment > 0 => {}
                ('{', _) => {
                    depth += 1;
                    opened.push(i + 1);
                }
                ('}', _) => {
                    if depth == 0 {
                        return Some((
                            i + 1,
                            "this `}` closes more than the body opened: a body is the inside of one function \
                             and may not end it or declare anything outside it"
                                .into(),
                        ));
                    }
                    depth -= 1;
                    opened.pop();
                }
                _ => {}
            }
            j += 1;
        }
    }
    let last = body.split('\n').count();
    if comment > 0 {
        return Some((
            last,
            format!("the `/*` comment opened at line {comment_line} is never closed"),
        ));
    }
    opened.last().map(|&line| {
        (
            last,
            format!("the `{{` opened at line {line} is never closed"),
        )
    })
}

impl Registered {
    /// Where line `line` of `wgsl` (1 = `fn custom_forward`) lies: in which body, and on which line of it. The
    /// wrapper's own lines count as the nearest line of their body (a function's first line, or its last).
    pub(crate) fn locate(&self, line: usize) -> (CustomBody, usize) {
        let f = self.forward_lines;
        // wgsl: 1 `fn custom_forward`, 2 ..= f + 1 the forward body, f + 2 `}`, f + 3 `fn custom_derivative`,
        // f + 4 .. the derivative body, then `}`.
        if line <= f + 2 {
            (CustomBody::Forward, line.saturating_sub(1).clamp(1, f))
        } else {
            let d = self.wgsl.split('\n').count() - f - 5;
            (
                CustomBody::Derivative,
                line.saturating_sub(f + 3).clamp(1, d),
            )
        }
    }
}

fn registry() -> &'static RwLock<HashMap<u64, Arc<Registered>>> {
    static REGISTRY: OnceLock<RwLock<HashMap<u64, Arc<Registered>>>> = OnceLock::new();
    REGISTRY.get_or_init(RwLock::default)
}

/// The registered activation with this id.
pub(crate) fn lookup(id: u64) -> Option<Arc<Registered>> {
    registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .cloned()
}

/// A user-defined activation. Creating one registers it for the life of the process under an id of its own (two
/// created from the same name and WGSL are two activations, each with its own reference functions, compiled
/// separately); [`CustomActivation::activation`] gives the [`Activation`] value that every launcher takes.
#[derive(Clone)]
pub struct CustomActivation {
    id: u64,
    name: String,
}

impl CustomActivation {
    /// An activation from WGSL function bodies over `x: f32` (they may call the activation library's helpers,
    /// such as `sigmoid_f`, `exp_c`, `expm1_f`, `tanh_f`) and its f64 reference `f`, `f'`. A body is the inside
    /// of one function: braces that close it early or stay open are [`crate::Error::CustomShader`] at the first
    /// compilation, naming the line. The kernels' own bindings, constants and overrides differ between kernel
    /// families and are not part of the interface: a body that names one may compile in one family and not in
    /// another (`compile` builds the elementwise one; the dense and matmul kernels are separate modules). A body
    /// may loop, but on a loop-limited adapter ([`crate::Gpu::loop_limited`]: Mesa's llvmpipe) its iterations
    /// count toward the 65,535 that the driver lets one invocation run in all loops together. The elementwise
    /// kernels and a product's epilogue call a body for up to a few dozen elements per invocation, which leaves
    /// room for short loops; a fused dense backward ([`crate::DzMode::Fused`]) calls the derivative 4 or 8 times
    /// per element of K, tens of thousands of times per invocation, where a loop that runs at all can pass the
    /// limit: keep loops out of bodies meant for it, or use the default [`crate::DzMode::Separate`].
    pub fn new(
        name: &str,
        forward_wgsl: &str,
        derivative_wgsl: &str,
        reference_forward: impl Fn(f64) -> f64 + Send + Sync + 'static,
        reference_derivative: impl Fn(f64) -> f64 + Send + Sync + 'static,
    ) -> Self {
        let wgsl = format!(
            "fn custom_forward(x: f32) -> f32 {{\n{forward_wgsl}\n}}\nfn custom_derivative(x: f32) -> f32 {{\n{derivative_wgsl}\n}}\n"
        );
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let braces = unbalanced_braces(forward_wgsl)
            .map(|(line, why)| (CustomBody::Forward, line, why))
            .or_else(|| {
                unbalanced_braces(derivative_wgsl)
                    .map(|(line, why)| (CustomBody::Derivative, line, why))
            });
        let registered = Registered {
            name: name.to_string(),
            wgsl,
            forward: Arc::new(reference_forward),
            derivative: Arc::new(reference_derivative),
            forward_lines: forward_wgsl.split('\n').count(),
            braces,
        };
        registry()
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::new(registered));
        CustomActivation {
            id,
            name: name.to_string(),
        }
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value to pass wherever an [`Activation`] is taken (plain, bias, gated kernels).
    pub fn activation(&self) -> Activation {
        Activation::Custom { id: self.id }
    }

    /// Compiles the forward kernel now (its module holds both bodies), so that a WGSL mistake surfaces as
    /// [`crate::Error::CustomShader`] naming the body and its line.
    pub fn compile(&self, gpu: &Gpu) -> Result<()> {
        let x = gpu.upload(&[0.0f32])?;
        self.activation().forward(&x).map(|_| ())
    }

    /// Checks the activation on `gpu`: the GPU results against the f64 reference (forward and backward, on the
    /// inputs and tolerances of the built-in activations), and the WGSL derivative against finite differences
    /// of the WGSL forward at 1,601 points over [-8, 8] ([`crate::verify::finite_difference`]: central and
    /// one-sided Richardson estimates at two step sizes, so that kinks and high curvature pass when the
    /// derivative is right, within [`crate::verify::finite_difference::FD_TOLERANCE`] `(1 + |estimate|)`, the estimate being the finite difference). The
    /// estimates difference f32 values of `f`, so a function far larger than its derivative over [-8, 8] (a
    /// large constant offset, say `x^2 + 1e5`) fails them through rounding alone: check it without the offset.
    pub fn check(&self, gpu: &Gpu) -> Result<CustomCheck> {
        let act = self.activation();
        // The random inputs' seed: the name's bytes, so that a check draws the same inputs in any process.
        let seed = self.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let forward = check_activation(gpu, act, Pass::Forward, seed)?;
        let backward = check_activation(gpu, act, Pass::Backward, seed)?;
        let (max_fd_err, fd_mismatches) =
            crate::verify::finite_difference::check_derivative(gpu, act, 1601)?;
        Ok(CustomCheck {
            forward,
            backward,
            max_fd_err,
            fd_mismatches,
        })
    }
}

impl std::fmt::Debug for CustomActivation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomActivation")
            .field("name", &self.name)
            .field("id", &format_args!("{:#x}", self.id))
            .finish()
    }
}

/// The result of [`CustomActivation::check`].
#[derive(Debug, Clone)]
pub struct CustomCheck {
    /// GPU forward against the f64 reference.
    pub forward: ActivationCheck,
    /// GPU backward against the f64 reference.
    pub backward: ActivationCheck,
    /// Largest distance from the WGSL derivative to the nearest finite-difference estimate over [-8, 8]
    /// (infinite where either is NaN).
    pub max_fd_err: f64,
    /// Inputs where the derivative matched no estimate within `FD_TOLERANCE (1 + |estimate|)` (2.5e-4).
    pub fd_mismatches: Vec<f32>,
}

impl CustomCheck {
    /// True when every part passed.
    pub fn ok(&self) -> bool {
        self.forward.ok() && self.backward.ok() && self.fd_mismatches.is_empty()
    }
}
