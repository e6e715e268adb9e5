//! What a benchmark run measures, and running it: every chosen kernel, pass, storage type and size, one
//! [`Row`] each.

use super::activations::ElementwiseOperands;
use super::compare::{
    measure_comparison, measure_dense_comparison, CompareOperands, Comparison,
    DenseCompareOperands, DENSE_COMPARISON_SHAPES,
};
use super::fused::{FusedOp, FusedOperands};
use super::report::{Bound, Row, Size};
use super::training::{DenseOperands, LossOperands, MatmulOperands, MlpStep};
use super::{
    measure, measure_alternating, measure_submitted, Measurement, RecordFn, Sampling, Timer,
};
use crate::ops::matmul::Form;
use crate::verify::Pass;
use crate::{Activation, Adam, DType, Error, Optimizer, Result, Sgd};

/// An MLP training step to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpSpec {
    /// Layer sizes, input first.
    pub sizes: Vec<usize>,
    /// The activation of every hidden layer.
    pub hidden: Activation,
    /// Rows per batch.
    pub batch: usize,
    /// The optimizer.
    pub optimizer: Optimizer,
}

impl MlpSpec {
    /// `train_step_sgd` or `train_step_adam`.
    pub fn name(&self) -> &'static str {
        match self.optimizer {
            Optimizer::Sgd(_) => "train_step_sgd",
            Optimizer::Adam(_) => "train_step_adam",
        }
    }

    /// The training-step workload (the shape Burn was timed on, in the project's notes on its peers),
    /// 784-512-512-10 with GELU at batch 256, with SGD (lr 0.01) and with Adam (1e-3).
    pub fn reference() -> Vec<MlpSpec> {
        Self::both(vec![784, 512, 512, 10], 256)
    }

    fn both(sizes: Vec<usize>, batch: usize) -> Vec<MlpSpec> {
        [
            Optimizer::Sgd(Sgd::new(0.01)),
            Optimizer::Adam(Adam::new(1e-3)),
        ]
        .map(|optimizer| MlpSpec {
            sizes: sizes.clone(),
            hidden: Activation::Gelu,
            batch,
            optimizer,
        })
        .to_vec()
    }
}

/// The kernels, passes, types and sizes of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Plain activations, measured at every size of `sizes`.
    pub activations: Vec<Activation>,
    /// Fused ops, measured on `x` of shape `shape`.
    pub fused: Vec<FusedOp>,
    /// Passes of every kernel.
    pub passes: Vec<Pass>,
    /// Element counts of the plain activations.
    pub sizes: Vec<usize>,
    /// `[rows, cols]` of the fused ops' input.
    pub shape: [usize; 2],
    /// Matrix products, each a dense layer's `[m, k, n]`: `X W` (the forward pass; f32, and at the largest also
    /// [`Plan::large_only_dtypes`]), `X^T dZ` and `dZ W^T` (the backward pass; f32).
    pub matmuls: Vec<[usize; 3]>,
    /// Which of a dense layer's products the matmul rows measure at each of [`Plan::matmuls`], each where
    /// [`Plan::passes`] has its pass ([`form_pass`]).
    pub matmul_forms: Vec<Form>,
    /// Dense layers: activation and `[m, k, n]` (f32).
    pub dense: Vec<(Activation, [usize; 3])>,
    /// Training steps.
    pub mlps: Vec<MlpSpec>,
    /// Softmax cross-entropy with its gradient on logits `[rows, classes]` (f32; the adapter's kernel for the
    /// width, [`crate::Gpu::cross_entropy_wide_rows`]).
    pub losses: Vec<[usize; 2]>,
    /// Fused-against-unfused comparisons, on f32 operands of shape `shape`.
    pub comparisons: Vec<Comparison>,
    /// `[m, k, n]` of the fused-against-unfused dense GELU forward ([`Comparison::DenseGeluForward`]).
    pub dense_comparisons: Vec<[usize; 3]>,
    /// Storage types measured at every size and on the fused shape.
    pub dtypes: Vec<DType>,
    /// Further storage types measured only at the largest size and on the fused shape.
    pub large_only_dtypes: Vec<DType>,
    /// Samples per measurement.
    pub sampling: Sampling,
}

/// `[rows, classes]` of the cross-entropy rows: a small classifier's batch, 1,000 classes, and 32,000 (a language
/// model's vocabulary), at a batch of 256. Which kernel each takes depends on the adapter
/// ([`crate::GpuOptions::cross_entropy_wide_rows`]); `bench --ce-wide-rows N` sets it, so that one adapter's two
/// kernels can be compared run against run.
pub const LOSS_SHAPES: [[usize; 2]; 3] = [[256, 10], [256, 1000], [256, 32_000]];

impl Plan {
    /// The default run: every activation at 2^16, 2^20 and 2^24 elements in f32 and at 2^24 in f16 and bf16;
    /// [`FusedOp::defaults`] on 4096 x 4096 in all three types; the products of 1024^3 (`X W` in all three
    /// types), 256x784x512 and 256x512x512; a GELU dense layer 256x784x512; the fused-against-unfused dense
    /// forward at [`DENSE_COMPARISON_SHAPES`]; cross-entropy at [`LOSS_SHAPES`]; [`MlpSpec::reference`]; forward and backward; [`Sampling::DEFAULT`].
    pub fn default_run() -> Plan {
        Plan {
            activations: Activation::ALL.to_vec(),
            fused: FusedOp::defaults(),
            comparisons: Comparison::ALL.to_vec(),
            dense_comparisons: DENSE_COMPARISON_SHAPES.to_vec(),
            matmuls: vec![[1024, 1024, 1024], [256, 784, 512], [256, 512, 512]],
            matmul_forms: vec![Form::AB, Form::AtB, Form::ABt],
            dense: vec![(Activation::Gelu, [256, 784, 512])],
            mlps: MlpSpec::reference(),
            losses: LOSS_SHAPES.to_vec(),
            passes: vec![Pass::Forward, Pass::Backward],
            sizes: vec![1 << 16, 1 << 20, 1 << 24],
            shape: [4096, 4096],
            dtypes: vec![DType::F32],
            large_only_dtypes: vec![DType::F16, DType::BF16],
            sampling: Sampling::DEFAULT,
        }
    }

    /// A run of seconds that still runs every kernel: 2^16 elements, fused ops on 256 x 256, every type, small
    /// products and a 64-64-32-10 MLP at batch 32, [`Sampling::QUICK`].
    pub fn quick() -> Plan {
        Plan {
            sizes: vec![1 << 16],
            shape: [256, 256],
            matmuls: vec![[64, 64, 64]],
            dense: vec![(Activation::Gelu, [32, 64, 48])],
            dense_comparisons: vec![[32, 64, 48]],
            mlps: MlpSpec::both(vec![64, 64, 32, 10], 32),
            losses: vec![[32, 10], [8, 300]],
            sampling: Sampling::QUICK,
            ..Plan::default_run()
        }
    }

    /// Of the options `given` (as `bench` spells them), those that set something no kernel of this plan uses,
    /// each with what it sets: `--sizes` (the plain activations' element counts), `--shape` (the fused ops' and
    /// comparisons' input), `--matmul` (the kernel of the products, dense layers and training steps),
    /// `--matmul-shapes` (the matmul rows' layer shapes) and `--ce-wide-rows` (cross-entropy's kernel choice, in
    /// the loss rows and the training steps' loss). `bench` notes them on stderr, since they change nothing in the
    /// run (`bench --kernels relu --shape 64x64` measured relu as if the shape had not been given).
    pub fn ignored_options<'a>(&self, given: &[&'a str]) -> Vec<(&'a str, &'static str)> {
        let products = !((self.matmuls.is_empty() || self.matmul_forms.is_empty())
            && self.dense.is_empty()
            && self.mlps.is_empty()
            && self.dense_comparisons.is_empty());
        given
            .iter()
            .filter_map(|&flag| {
                let (used, what) = match flag {
                    "--sizes" => (
                        !self.activations.is_empty(),
                        "the plain activations' element counts",
                    ),
                    "--shape" => (
                        !(self.fused.is_empty() && self.comparisons.is_empty()),
                        "the fused ops' and comparisons' input",
                    ),
                    "--matmul" => (
                        products,
                        "the kernel of the products, dense layers and training steps",
                    ),
                    "--matmul-shapes" => (
                        !(self.matmuls.is_empty() || self.matmul_forms.is_empty()),
                        "the matmul rows' layer shapes",
                    ),
                    "--ce-wide-rows" => (
                        !(self.losses.is_empty() && self.mlps.is_empty()),
                        "cross-entropy's kernel choice",
                    ),
                    _ => return None,
                };
                (!used).then_some((flag, what))
            })
            .collect()
    }

    /// Measures every row of the plan on `timer`, calling `on_row` as each is done.
    pub fn run(&self, timer: &Timer, on_row: &mut dyn FnMut(Row)) -> Result<()> {
        let gpu = timer.gpu();
        let largest = self.sizes.iter().copied().max();
        let mut seed = 0xbe_4c00;
        // The types of one kernel are measured in alternation, so that their ratios (`dtype_ratios`) compare
        // samples taken side by side.
        for &elements in &self.sizes {
            let dtypes = self.dtypes_at(Some(elements) == largest);
            let mut sets = Vec::with_capacity(dtypes.len());
            for &dtype in &dtypes {
                seed += 1;
                sets.push(ElementwiseOperands::new(gpu, elements, dtype, seed)?);
            }
            for &act in &self.activations {
                for &pass in &self.passes {
                    let ms = measure_each(timer, &self.sampling, &sets, |ops, enc, rep| {
                        ops.record(enc, act, pass, rep)
                    })?;
                    for (ops, m) in sets.iter().zip(ms) {
                        on_row(Row {
                            kernel: act.name().into(),
                            pass: pass.name(),
                            dtype: ops.dtype().name(),
                            size: Size::Elements(elements),
                            measurement: m,
                            bytes: Some(ops.bytes_moved(pass)),
                            flops: Some(ops.flops(act, pass)),
                            bound: Bound::Bandwidth,
                            variant: None,
                            round_ratios: None,
                        });
                    }
                }
            }
        }
        let [rows, cols] = self.shape;
        for &op in &self.fused {
            let mut sets = Vec::new();
            for dtype in self.dtypes_at(true) {
                seed += 1;
                sets.push((dtype, FusedOperands::new(gpu, op, rows, cols, dtype, seed)?));
            }
            for &pass in &self.passes {
                // Fewer repetitions per submission where a run allocates (see `Timer::allocating`).
                let alloc = sets.iter().map(|(_, ops)| ops.alloc_bytes_per_rep(pass));
                let timer = &timer.allocating(alloc.max().unwrap_or(0));
                let ms = measure_each(timer, &self.sampling, &sets, |(_, ops), enc, rep| {
                    ops.record(enc, pass, rep)
                })?;
                for ((dtype, ops), m) in sets.iter().zip(ms) {
                    on_row(Row {
                        kernel: op.name(),
                        pass: pass.name(),
                        dtype: dtype.name(),
                        size: Size::Shape(vec![rows, cols]),
                        measurement: m,
                        bytes: Some(ops.bytes_moved(pass)),
                        flops: Some(ops.flops(pass)),
                        bound: Bound::Bandwidth,
                        variant: None,
                        round_ratios: None,
                    });
                }
            }
        }
        let comparisons: Vec<Comparison> = self
            .comparisons
            .iter()
            .copied()
            .filter(|c| c.passes().iter().all(|p| self.passes.contains(p)))
            .collect();
        if !comparisons.is_empty() {
            let ops = CompareOperands::new(gpu, rows, cols, seed + 1)?;
            for &c in &comparisons {
                let both = measure_comparison(timer, &self.sampling, &ops, c)?;
                let (kernel, pass) = c.name();
                // Each side's own traffic, so that its rate and fraction of the copy ceiling say how close to
                // memory-bound it ran (the speed-up is the ratio of the times).
                let unfused_bytes = c.unfused_bytes(rows, cols);
                for (variant, m, bytes) in [
                    ("fused", both.fused, c.useful_bytes(rows, cols)),
                    ("unfused", both.unfused, unfused_bytes.unwrap_or(f64::NAN)),
                ] {
                    on_row(Row {
                        kernel: kernel.into(),
                        pass,
                        dtype: DType::F32.name(),
                        size: Size::Shape(vec![rows, cols]),
                        measurement: m,
                        bytes: Some(bytes),
                        flops: None,
                        bound: Bound::Bandwidth,
                        variant: Some(variant),
                        round_ratios: both.round_ratios,
                    });
                }
            }
        }
        self.run_training(timer, on_row)
    }

    /// The compute-bound rows, judged against the FMA ceiling: the products of [`Plan::matmuls`] (`X W` when the
    /// passes include forward, `X^T dZ` and `dZ W^T` in f32 when they include backward; of those, the ones in
    /// [`Plan::matmul_forms`]), dense layers and training steps (f32).
    fn run_training(&self, timer: &Timer, on_row: &mut dyn FnMut(Row)) -> Result<()> {
        let gpu = timer.gpu();
        let row =
            |kernel: String, pass: &'static str, shape: Vec<usize>, m: Measurement, flops| Row {
                kernel,
                pass,
                dtype: DType::F32.name(),
                size: Size::Shape(shape),
                measurement: m,
                bytes: None,
                flops: Some(flops),
                bound: Bound::Arithmetic,
                variant: None,
                round_ratios: None,
            };
        let largest = self
            .matmuls
            .iter()
            .map(|s| s.iter().product::<usize>())
            .max();
        // `X W` in every type at the largest product (16-bit X and W, f32 Y) and in f32 elsewhere, the backward's
        // `X^T dZ` and `dZ W^T` in f32; a shape's rows sampled in turn, so that the forms' rates compare side by
        // side.
        for (i, &shape) in self.matmuls.iter().enumerate() {
            let volume = Some(shape.iter().product::<usize>());
            let seed = 0x3a7 + i as u64;
            let wanted =
                |f: Form| self.matmul_forms.contains(&f) && self.passes.contains(&form_pass(f));
            let mut sets = Vec::new();
            if wanted(Form::AB) {
                for dtype in self.dtypes_at(volume == largest) {
                    sets.push(MatmulOperands::with_dtype(gpu, shape, dtype, seed)?);
                }
            }
            for form in [Form::AtB, Form::ABt].into_iter().filter(|&f| wanted(f)) {
                sets.push(MatmulOperands::of_form(gpu, shape, form, DType::F32, seed)?);
            }
            let alloc = sets.iter().map(|ops| ops.alloc_bytes_per_rep());
            let timer = &timer.allocating(alloc.max().unwrap_or(0));
            let ms = measure_each(timer, &self.sampling, &sets, |ops, enc, rep| {
                ops.record(enc, rep)
            })?;
            for (ops, m) in sets.iter().zip(ms) {
                let pass = form_pass(ops.form()).name();
                on_row(Row {
                    dtype: ops.dtype().name(),
                    ..row(
                        ops.form().name().into(),
                        pass,
                        shape.to_vec(),
                        m,
                        ops.flops(),
                    )
                });
            }
        }
        for (i, &(act, shape)) in self.dense.iter().enumerate() {
            let ops = DenseOperands::new(gpu, act, shape, 0xde5 + i as u64)?;
            for &pass in &self.passes {
                let m = measure(timer, &self.sampling, &mut |enc, rep| {
                    ops.record(enc, pass, rep)
                })?;
                let name = format!("dense_{act}");
                on_row(row(name, pass.name(), shape.to_vec(), m, ops.flops(pass)));
            }
        }
        let forward = self.passes.contains(&Pass::Forward);
        for (i, &shape) in self
            .dense_comparisons
            .iter()
            .enumerate()
            .filter(|_| forward)
        {
            let ops = DenseCompareOperands::new(gpu, shape, 0xdc0 + i as u64)?;
            let both = measure_dense_comparison(timer, &self.sampling, &ops)?;
            let (kernel, pass) = Comparison::DenseGeluForward.name();
            for (variant, m) in [("fused", both.fused), ("unfused", both.unfused)] {
                on_row(Row {
                    variant: Some(variant),
                    round_ratios: both.round_ratios,
                    pass,
                    ..row(kernel.into(), pass, shape.to_vec(), m, ops.flops())
                });
            }
        }
        for (i, &[rows, classes]) in self.losses.iter().enumerate() {
            let ops = LossOperands::new(gpu, rows, classes, 0x1055 + i as u64)?;
            // A width the adapter cannot take with the kernel asked for (a thread per row past a loop-limited
            // driver's walk, `--ce-wide-rows`) is skipped, not the end of the run.
            let timer = &timer.allocating(ops.alloc_bytes_per_rep());
            let m = match measure(timer, &self.sampling, &mut |enc, rep| ops.record(enc, rep)) {
                Err(Error::LimitExceeded { limit, .. }) => {
                    eprintln!("cross_entropy {rows}x{classes}: skipped ({limit})");
                    continue;
                }
                m => m?,
            };
            on_row(Row {
                kernel: "cross_entropy".into(),
                pass: "forward+backward",
                dtype: DType::F32.name(),
                size: Size::Shape(vec![rows, classes]),
                measurement: m,
                bytes: Some(ops.bytes()),
                flops: None,
                bound: Bound::Bandwidth,
                variant: Some(if classes >= gpu.cross_entropy_wide_rows() {
                    "workgroup per row"
                } else {
                    "thread per row"
                }),
                round_ratios: None,
            });
        }
        for (i, spec) in self.mlps.iter().enumerate() {
            let mut step = MlpStep::new(
                gpu,
                &spec.sizes,
                spec.hidden,
                spec.batch,
                spec.optimizer,
                0x31c + i as u64,
            )?;
            let m = measure_submitted(timer, &self.sampling, &mut |rep| step.step(rep))?;
            on_row(row(
                spec.name().into(),
                "step",
                step.shape(),
                m,
                step.flops(),
            ));
        }
        Ok(())
    }

    fn dtypes_at(&self, largest: bool) -> Vec<DType> {
        let mut d = self.dtypes.clone();
        if largest {
            d.extend(
                self.large_only_dtypes
                    .iter()
                    .filter(|t| !self.dtypes.contains(t)),
            );
        }
        d
    }
}

/// The largest element count [`parse_size`] takes, 2^47 (512 TiB of f32; any adapter refuses far less, as a
/// typed error), or `usize::MAX` where that is less.
pub const MAX_SIZE: u64 = 1 << 47;

/// An element count as `bench --sizes` and the criterion benches' `ACTGPU_BENCH_ELEMENTS` take it: a positive
/// integer (`65536`) or a power of two `2^k` (`2^16`), at most [`MAX_SIZE`] either way. 0 is refused: it would
/// time an empty dispatch.
pub fn parse_size(s: &str) -> std::result::Result<usize, String> {
    let bad = || format!("bad size {s:?}: give a positive element count, e.g. 65536 or 2^16");
    let largest = MAX_SIZE.min(usize::MAX as u64);
    let too_large = || format!("size {s:?} is past the largest, {largest} elements");
    let n: u64 = match s.trim().split_once('^') {
        Some(("2", k)) => {
            let k: u32 = k.parse().map_err(|_| bad())?;
            1u64.checked_shl(k).unwrap_or(u64::MAX)
        }
        Some(_) => return Err(bad()),
        None => {
            let digits = s.trim();
            match digits.parse::<u64>() {
                Ok(0) => return Err(bad()),
                Ok(n) => n,
                // All digits but past u64: a count, only too large.
                Err(_) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                    u64::MAX
                }
                Err(_) => return Err(bad()),
            }
        }
    };
    usize::try_from(n)
        .ok()
        .filter(|_| n <= MAX_SIZE)
        .ok_or_else(too_large)
}

/// The pass a dense layer's product belongs to: `X W` ([`Form::AB`]) the forward, `X^T dZ` and `dZ W^T` the
/// backward.
pub fn form_pass(form: Form) -> Pass {
    match form {
        Form::AB => Pass::Forward,
        Form::AtB | Form::ABt => Pass::Backward,
    }
}

/// [`measure_alternating`] over one piece of work per item of `items`, recorded by `record(item, encoder, rep)`.
fn measure_each<T>(
    timer: &Timer,
    sampling: &Sampling,
    items: &[T],
    record: impl Fn(&T, &mut wgpu::CommandEncoder, u64) -> Result<()>,
) -> Result<Vec<Measurement>> {
    let record = &record;
    let mut works: Vec<_> = items
        .iter()
        .map(|item| move |enc: &mut wgpu::CommandEncoder, rep| record(item, enc, rep))
        .collect();
    let mut refs: Vec<&mut RecordFn<'_>> = works.iter_mut().map(|w| w as _).collect();
    measure_alternating(timer, sampling, &mut refs)
}

#[cfg(test)]
mod tests {
    use super::{parse_size, Plan, MAX_SIZE};

    #[test]
    fn options_no_chosen_kernel_uses_are_named() {
        let only_relu = Plan {
            activations: vec![crate::Activation::Relu],
            fused: Vec::new(),
            comparisons: Vec::new(),
            dense_comparisons: Vec::new(),
            matmuls: Vec::new(),
            dense: Vec::new(),
            mlps: Vec::new(),
            losses: Vec::new(),
            ..Plan::quick()
        };
        let given = [
            "--sizes",
            "--shape",
            "--matmul",
            "--matmul-shapes",
            "--ce-wide-rows",
            "--samples",
        ];
        let ignored: Vec<&str> = only_relu
            .ignored_options(&given)
            .iter()
            .map(|i| i.0)
            .collect();
        assert_eq!(
            ignored,
            ["--shape", "--matmul", "--matmul-shapes", "--ce-wide-rows"]
        );
        // The whole default run uses every one of them.
        assert!(Plan::default_run().ignored_options(&given).is_empty());
    }

    #[test]
    fn sizes_parse_as_the_cli_and_the_criterion_benches_take_them() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("2^24"), Ok(1 << 24));
        assert_eq!(parse_size("2^0"), Ok(1));
        // (u64: a 32-bit usize holds neither.)
        assert_eq!(parse_size("2^47").map(|n| n as u64), Ok(MAX_SIZE));
        assert_eq!(
            parse_size("140737488355328").map(|n| n as u64),
            Ok(MAX_SIZE)
        );
        for bad in ["0", "2^48", "3^4", "-1", "", "2^", "1e6", "140737488355329"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        // A count past the largest says so, rather than asking for a positive count.
        for large in ["2^48", "2^99", "140737488355329", "99999999999999999999999"] {
            let why = parse_size(large).unwrap_err();
            assert!(why.contains("past the largest"), "{large}: {why}");
        }
    }
}
