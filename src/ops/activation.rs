//! Activation forward and backward launchers (`shaders/activation.wgsl`).
//!
//! `record_*` methods encode into the caller's `CommandEncoder` and submit nothing of it; the others allocate
//! the output where there is one, submit, and wait. One exception to "nothing": under [`crate::F16Storage::Auto`]
//! (the default) the first all-f16 kernel of each intensity on an adapter with `SHADER_F16` decides between the
//! packed and the native path by probing and timing both, which submits work of its own and waits for it (about
//! 0.2 s on lavapipe). Call [`Gpu::f16_native_for`] for both intensities at start-up to have that happen then,
//! or choose [`crate::F16Storage::Packed`] or `Native` in [`crate::GpuOptions`].
//!
//! Storage types: every operand may be f32, f16 or bf16, independently (for example f16 activations with an f32
//! gradient); kernels compute in f32 and round once on store, to nearest even. Where rounding cannot change a
//! result (identity, relu, relu6 and hardtanh over operands of the output's 16-bit type: every result is an
//! input, 0 or a representable bound) the store skips it; identity and relu forward, and their f16 backward, work
//! on the packed bits without decoding them. `tests/precision.rs` holds those paths to 0 ULP over every bit
//! pattern. In-place variants read and write
//! one buffer in its own type. Allocating variants give the output the type of `x`.

use super::elementwise::{check_inputs_outputs, check_operands, record, Slot};
use super::recording::Recording;
use crate::pipeline::PipelineKey;
use crate::shaders::ShaderId;

use crate::bench::Timer;
use crate::{Activation, DType, Gpu, Intensity, LaunchConfig, Result, Tensor};

/// Entry points of `shaders/activation.wgsl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Forward,
    ForwardInplace,
    Backward,
    BackwardInplace,
}

impl Entry {
    const fn name(self) -> &'static str {
        match self {
            Entry::Forward => "forward",
            Entry::ForwardInplace => "forward_inplace",
            Entry::Backward => "backward",
            Entry::BackwardInplace => "backward_inplace",
        }
    }
}

/// The override constants that choose the activation and the launch shape, shared by every kernel family built
/// on the activation library.
pub(crate) fn activation_constants(
    act: Activation,
    launch: LaunchConfig,
) -> Vec<(&'static str, f64)> {
    let [p0, p1] = act.params();
    vec![
        ("ACT", f64::from(act.id())),
        ("P0", f64::from(p0)),
        ("P1", f64::from(p1)),
        ("PER_THREAD", f64::from(launch.units_per_thread)),
    ]
}

/// The kernel variant: the packed path for any storage types, or native f16 where every operand is f16 and the
/// context prefers it (`force_native` overrides the choice, for timing both).
fn shader_for(
    act: Activation,
    x: &Tensor,
    dy: Option<&Tensor>,
    out: &Tensor,
    force_native: Option<bool>,
) -> ShaderId {
    let all_f16 = [Some(x), dy, Some(out)]
        .into_iter()
        .flatten()
        .all(|t| t.dtype() == DType::F16);
    let native = all_f16 && force_native.unwrap_or_else(|| x.gpu().f16_native_for(act.intensity()));
    if native {
        ShaderId::ActivationNativeF16
    } else {
        ShaderId::Activation
    }
}

/// The pipeline key: the activation and its parameters, the kernel variant and, for the packed one, the storage
/// type of each operand (`dy` is `None` where the entry point has no separate gradient input), and the launch
/// shape.
fn key(
    act: Activation,
    entry: Entry,
    x: &Tensor,
    dy: Option<&Tensor>,
    out: &Tensor,
    force_native: Option<bool>,
) -> PipelineKey {
    let launch = x.gpu().launch_for(act.intensity());
    let shader = shader_for(act, x, dy, out, force_native);
    let code = |t: &Tensor| f64::from(t.dtype().storage_code());
    let mut constants = activation_constants(act, launch);
    let all_f32 = [Some(x), dy, Some(out)]
        .into_iter()
        .flatten()
        .all(|t| t.dtype() == DType::F32);
    // The word layout needs one word type for every operand: all f32, or all native f16.
    let words = all_f32 || shader == ShaderId::ActivationNativeF16;
    constants.push(("WORDS", if words { 1.0 } else { 0.0 }));
    if shader == ShaderId::Activation {
        // The operand whose value reaches the output: dy backward (binding 1 in place), x forward.
        let backward = matches!(entry, Entry::Backward | Entry::BackwardInplace);
        let value = if backward { dy.unwrap_or(out) } else { x };
        let exact = act.stores_exactly(backward, value.dtype(), out.dtype());
        constants.extend([
            ("X_T", code(x)),
            ("DY_T", dy.map_or(0.0, code)),
            ("OUT_T", code(out)),
            ("EXACT", if exact { 1.0 } else { 0.0 }),
        ]);
    }
    PipelineKey::new(shader, entry.name(), launch.workgroup_size, &constants)
        .with_custom(act.custom_id())
}

/// Times the f16 forward of one activation of `intensity` (leaky relu for [`Intensity::Streaming`], GELU for
/// [`Intensity::Arithmetic`]) over 2^21 elements on both paths, alternating between them for seven rounds after
/// a warm-up so that a burst of other load on the machine hits both alike, and says whether the native one's best
/// time is lower. Any failure counts as "no". Timed on GPU timestamps where the device has them (else the wall
/// clock), each sample repeating the kernel for about 2 ms, so that a fast GPU times the kernels and not the
/// submission. Leaky relu rather than relu: the packed path runs relu on the bits without converting, which would
/// say nothing about the conversions every other streaming activation pays for.
///
/// Measured on an NVIDIA H200 (Vulkan, BENCHMARKS.md) at 2^24 f16: native is faster for GELU (41 against 50 us)
/// and SiLU (33 against 42 us), packed for relu (25 against 28 us); a single choice timed on the wall clock
/// flipped between runs there. On lavapipe packed is faster for every activation, 1.8-2.9x.
pub(crate) fn native_f16_is_faster(gpu: &Gpu, intensity: Intensity) -> bool {
    let act = match intensity {
        Intensity::Streaming => Activation::leaky_relu(),
        Intensity::Arithmetic => Activation::Gelu,
    };
    let best_times = || -> Result<[f64; 2]> {
        let n = 1 << 21;
        let x = gpu.upload_f32_as(&vec![0.5; n], DType::F16)?;
        let y = x.zeros_like()?;
        let keys = [true, false].map(|native| key(act, Entry::Forward, &x, None, &y, Some(native)));
        let timer = Timer::new(gpu);
        let run = |k: &PipelineKey, reps: u32| {
            timer.sample(reps, 0, &mut |enc, _| {
                Recording::atomic(enc, |rec| {
                    record(gpu, rec, k, &[(Slot::X, &x), (Slot::Out, &y)], n, &[], &[])
                })
            })
        };
        // One repetition of each compiles both pipelines; a second, on the timer's clock, sizes the samples.
        for k in &keys {
            run(k, 1)?;
        }
        let first = run(&keys[0], 1)?.seconds.max(run(&keys[1], 1)?.seconds);
        let reps = (2e-3 / first.max(1e-7)).clamp(1.0, 256.0) as u32;
        let mut best = [f64::MAX; 2];
        for round in 0..8 {
            for (k, b) in keys.iter().zip(&mut best) {
                let t = run(k, reps)?.seconds;
                if round > 0 {
                    *b = b.min(t);
                }
            }
        }
        Ok(best)
    };
    matches!(best_times(), Ok([native, packed]) if native < packed)
}

impl Activation {
    /// Records `y = f(x)`.
    pub fn record_forward(
        self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        y: &Tensor,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| self.plan_forward(rec, x, y))
    }

    /// The commands of [`Self::record_forward`], planned into `encoder`.
    pub(crate) fn plan_forward(
        self,
        encoder: &mut Recording,
        x: &Tensor,
        y: &Tensor,
    ) -> Result<()> {
        self.validate()?;
        check_operands(self.name(), &[x, y])?;
        record(
            x.gpu(),
            encoder,
            &key(self, Entry::Forward, x, None, y, None),
            &[(Slot::X, x), (Slot::Out, y)],
            x.len(),
            &[],
            &[],
        )
    }

    /// Records `x = f(x)` in place.
    pub fn record_forward_inplace(
        self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| self.plan_forward_inplace(rec, x))
    }

    /// The commands of [`Self::record_forward_inplace`], planned into `encoder`.
    fn plan_forward_inplace(self, encoder: &mut Recording, x: &Tensor) -> Result<()> {
        self.validate()?;
        check_operands(self.name(), &[x])?;
        record(
            x.gpu(),
            encoder,
            &key(self, Entry::ForwardInplace, x, None, x, None),
            &[(Slot::Out, x)],
            x.len(),
            &[],
            &[],
        )
    }

    /// Records `dx = dy * f'(x)`.
    pub fn record_backward(
        self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        dy: &Tensor,
        dx: &Tensor,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| self.plan_backward(rec, x, dy, dx))
    }

    /// The commands of [`Self::record_backward`], planned into `encoder`.
    pub(crate) fn plan_backward(
        self,
        encoder: &mut Recording,
        x: &Tensor,
        dy: &Tensor,
        dx: &Tensor,
    ) -> Result<()> {
        self.validate()?;
        // x and dy are both read: they may be one buffer (dx = x f'(x)).
        check_inputs_outputs(self.name(), &[x, dy], &[dx])?;
        record(
            x.gpu(),
            encoder,
            &key(self, Entry::Backward, x, Some(dy), dx, None),
            &[(Slot::X, x), (Slot::Dy, dy), (Slot::Out, dx)],
            x.len(),
            &[],
            &[],
        )
    }

    /// Records `dy = dy * f'(x)`: the gradient buffer is overwritten with dx.
    pub fn record_backward_inplace(
        self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        dy: &Tensor,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| self.plan_backward_inplace(rec, x, dy))
    }

    /// The commands of [`Self::record_backward_inplace`], planned into `encoder`.
    fn plan_backward_inplace(self, encoder: &mut Recording, x: &Tensor, dy: &Tensor) -> Result<()> {
        self.validate()?;
        check_operands(self.name(), &[x, dy])?;
        record(
            x.gpu(),
            encoder,
            &key(self, Entry::BackwardInplace, x, None, dy, None),
            &[(Slot::X, x), (Slot::Out, dy)],
            x.len(),
            &[],
            &[],
        )
    }

    /// `y = f(x)` into a new tensor; submits and waits.
    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        let y = x.zeros_like()?;
        self.forward_into(x, &y)?;
        Ok(y)
    }

    /// `y = f(x)` into an existing tensor; submits and waits.
    pub fn forward_into(self, x: &Tensor, y: &Tensor) -> Result<()> {
        x.gpu()
            .submit_and_wait(self.name(), |enc| self.record_forward(enc, x, y))
    }

    /// `x = f(x)` in place; submits and waits.
    pub fn forward_inplace(self, x: &Tensor) -> Result<()> {
        x.gpu()
            .submit_and_wait(self.name(), |enc| self.record_forward_inplace(enc, x))
    }

    /// `dx = dy * f'(x)` into a new tensor; submits and waits.
    pub fn backward(self, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
        let dx = x.zeros_like()?;
        self.backward_into(x, dy, &dx)?;
        Ok(dx)
    }

    /// `dx = dy * f'(x)` into an existing tensor; submits and waits.
    pub fn backward_into(self, x: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<()> {
        x.gpu()
            .submit_and_wait(self.name(), |enc| self.record_backward(enc, x, dy, dx))
    }

    /// `dy = dy * f'(x)` in place; submits and waits.
    pub fn backward_inplace(self, x: &Tensor, dy: &Tensor) -> Result<()> {
        x.gpu()
            .submit_and_wait(self.name(), |enc| self.record_backward_inplace(enc, x, dy))
    }
}
