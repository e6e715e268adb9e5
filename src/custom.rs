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
//! let check = isru.check(&gpu)?;
//! assert!(check.ok(), "{check}"); // the summary says which part failed, and where
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crate::verify::{check_activation, ActivationCheck, Pass};
use crate::{Activation, CustomBody, Error, Gated, Gpu, Learnable, Result};

/// A scalar reference function.
type Reference = Arc<dyn Fn(f64) -> f64 + Send + Sync>;

/// What the registry holds for one user-defined activation.
#[derive(Clone)]
pub(crate) struct Registered {
    /// The activation's name.
    pub name: String,
    /// The same name interned ([`intern`]): what [`Activation::name`] returns for it.
    pub(crate) interned: &'static str,
    /// Why the name cannot be used ([`name_problem`]): found at creation, reported by [`Activation::validate`]
    /// (so by every launcher and by `Mlp::new`).
    pub(crate) name_error: Option<String>,
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

/// The name of the registered activation with this id, as [`Activation::name`] returns it.
pub(crate) fn name_of(id: u64) -> Option<&'static str> {
    registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .map(|r| r.interned)
}

/// `name` as a `&'static str`, so that [`Activation::name`] can return a user-defined activation's name as it
/// returns a built-in's (and the typed errors, whose `op` is a `&'static str`, can carry it). Each distinct name
/// is copied once and kept for the life of the process: registering a name again, however often, reuses the
/// copy, so the memory kept is that of the distinct names a process ever registers.
fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(&interned) = names.get(name) {
        return interned;
    }
    let interned: &'static str = Box::leak(name.into());
    names.insert(interned);
    interned
}

/// The characters a name may hold besides letters and digits (of any script, `char::is_alphanumeric`): none of
/// the checkpoint metadata's separators (`gelu,custom(isru),softplus(1,20)`), no whitespace, and nothing
/// invisible (zero-width or combining characters) that would print like another name.
const NAME_PUNCTUATION: [char; 3] = ['_', '-', '.'];

/// Why `name` cannot name a user-defined activation, if it cannot: it is empty, holds a character other than
/// letters, digits and [`NAME_PUNCTUATION`], is a name the crate gives one of its own kinds (a built-in
/// activation's, a gated unit's, a learnable activation's with or without `_channel`, `rrelu`, `softmax`,
/// `log_softmax`, or `custom`, which an unregistered id prints), or
/// starts with `gated_`, how a gated unit with another gate is named (`gated_tanh`).
fn name_problem(name: &str) -> Option<String> {
    const RULE: &str = "a custom activation's name is printed and saved wherever a built-in's is, so it must \
        be nonempty, of letters, digits, `_`, `-` and `.`, and not a name of the crate's own or `gated_...`";
    if name.is_empty() {
        return Some(format!("the name is empty: {RULE}"));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !c.is_alphanumeric() && !NAME_PUNCTUATION.contains(&c))
    {
        return Some(format!("the name {name:?} holds {c:?}: {RULE}"));
    }
    let taken = if Activation::ALL.iter().any(|a| a.name() == name) {
        "the built-in activation's"
    } else if Gated::ALL.iter().any(|g| g.name() == name) || name.starts_with("gated_") {
        "the built-in gated unit's"
    } else if Learnable::ALL
        .iter()
        .any(|k| k.name() == name || name.strip_suffix("_channel") == Some(k.name()))
    {
        "the learnable activation's"
    } else if name == crate::Rrelu::NAME {
        "the randomized leaky ReLU's"
    } else if crate::SoftmaxKind::ALL.iter().any(|k| k.name() == name) {
        "the softmax's"
    } else if name == "custom" {
        "what an unregistered custom activation prints"
    } else {
        return None;
    };
    Some(format!(
        "the name {name:?} is {taken}, and would be taken for it: {RULE}"
    ))
}

/// The user-defined activation registered under `name`, for a file that names it ([`Mlp::from_safetensors`]):
/// the most recent registration of that name, when every registration of it has the same WGSL (the kernels are
/// then the same; the f64 references, which the file cannot tell apart, may differ).
/// [`Error::UnresolvedCustomActivation`] when none is registered, or several with different WGSL are.
///
/// [`Mlp::from_safetensors`]: crate::Mlp::from_safetensors
pub(crate) fn by_name(name: &str) -> Result<Activation> {
    let registry = registry().read().unwrap_or_else(|e| e.into_inner());
    let named: Vec<(u64, &str)> = registry
        .iter()
        .filter(|(_, r)| r.name == name)
        .map(|(&id, r)| (id, r.wgsl.as_str()))
        .collect();
    let codes: HashSet<&str> = named.iter().map(|&(_, wgsl)| wgsl).collect();
    match named.iter().map(|&(id, _)| id).max() {
        Some(id) if codes.len() == 1 => Ok(Activation::Custom { id }),
        _ => Err(Error::UnresolvedCustomActivation {
            name: name.into(),
            candidates: codes.len(),
        }),
    }
}

/// A user-defined activation. Creating one registers it for the life of the process under an id of its own (two
/// created from the same name and WGSL are two activations, each with its own reference functions, compiled
/// separately); [`CustomActivation::activation`] gives the [`Activation`] value that every launcher takes.
///
/// Its name is the activation's wherever the crate names one: [`Activation::name`] and `Display`, the `op` of
/// the typed errors its kernels return, a gated unit's name (`gated_<name>`), and the `actgpu.activations`
/// metadata of a saved [`crate::Mlp`] (as `custom(<name>)`, from which [`crate::Mlp::from_safetensors`] finds
/// the registered activation again).
#[derive(Clone)]
pub struct CustomActivation {
    id: u64,
    name: &'static str,
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
    ///
    /// The name is printed and saved wherever a built-in activation's is, so it must be nonempty, of letters,
    /// digits (of any script), `_`, `-` and `.` (nothing the metadata separates with, nothing invisible), and
    /// differ from the names of the crate's own kinds: the built-in activations' ([`Activation::ALL`]: a custom
    /// `relu` would read as [`Activation::Relu`] in an error, a table or a file), the gated units'
    /// ([`crate::Gated::ALL`], and any `gated_...`, as a gated unit with another gate is named), the learnable
    /// activations' ([`crate::Learnable::ALL`]) and `custom`. A name that breaks these rules is
    /// refused as a braces mistake is, when the activation is first used rather than here: [`Activation::validate`], which every
    /// launcher, [`CustomActivation::compile`] and [`crate::Mlp::new`] call, returns
    /// [`crate::Error::InvalidArgument`] with `op` `"CustomActivation::new"`, saying why. Names compare exactly
    /// (`ReLU` is not `relu`). Two activations may share a name (they stay two activations); a file naming it
    /// is then ambiguous unless their WGSL is the same ([`crate::Mlp::from_safetensors`]).
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
        let interned = intern(name);
        let registered = Registered {
            name: name.to_string(),
            interned,
            name_error: name_problem(name),
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
        CustomActivation { id, name: interned }
    }

    /// The name given at creation (the same string [`Activation::name`] returns for
    /// [`CustomActivation::activation`]).
    pub fn name(&self) -> &'static str {
        self.name
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

/// A summary: a verdict line, the forward and backward checks part by part, and the finite-difference check
/// (`assert!(check.ok(), "{check}")` says what failed).
impl std::fmt::Display for CustomCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {}",
            self.forward.activation,
            if self.ok() { "ok" } else { "FAILED" }
        )?;
        writeln!(f, "{}", self.forward)?;
        writeln!(f, "{}", self.backward)?;
        write!(
            f,
            "f' against finite differences of f over [-8, 8]: largest distance {:.3e}, {} mismatches",
            self.max_fd_err,
            self.fd_mismatches.len()
        )?;
        if let Some(x) = self.fd_mismatches.first() {
            write!(f, " (first at x = {x:?})")?;
        }
        Ok(())
    }
}
