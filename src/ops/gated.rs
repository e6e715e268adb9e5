//! Gated units `out = a * f(g)` (`shaders/gated.wgsl`): GLU, ReGLU, GeGLU (exact and tanh), SwiGLU, or any
//! activation as the gate. PyTorch's convention: the last dimension of `x` splits into halves `a | g`; the
//! `_pair` forms take `a` and `g` as two tensors. Backward computes both halves' gradients in one pass:
//! `da = dout * f(g)`, `dg = dout * a * f'(g)`.

use super::activation::activation_constants;
use super::bias::aligned_row_chunks;
use super::elementwise::{check_inputs_outputs, check_u32_elements, record, run, Slot};
use super::matmul::{check_distinct, expect_shape_any};
use super::recording::Recording;
use crate::dispatch::{grid, UNIT_ELEMENTS};
use crate::pipeline::PipelineKey;
use crate::shaders::ShaderId;
use crate::{Activation, DType, Error, Result, Tensor};

/// A gated unit: `out = a * gate(g)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gated {
    /// The activation applied to the gate half.
    pub gate: Activation,
}

/// The name a hidden layer of the unit has ([`crate::Hidden::name`]): [`Gated::name`] (`swiglu`, `gated_tanh`),
/// or `gated(leaky_relu(0.1))` for a gate with constants other than its defaults.
impl std::fmt::Display for Gated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::Hidden::Gated(*self).name())
    }
}

impl Gated {
    /// GLU: `a * sigmoid(g)`.
    pub const GLU: Gated = Gated {
        gate: Activation::Sigmoid,
    };
    /// ReGLU: `a * relu(g)`.
    pub const REGLU: Gated = Gated {
        gate: Activation::Relu,
    };
    /// GeGLU: `a * gelu(g)` (exact erf GELU).
    pub const GEGLU: Gated = Gated {
        gate: Activation::Gelu,
    };
    /// GeGLU with the tanh GELU.
    pub const GEGLU_TANH: Gated = Gated {
        gate: Activation::GeluTanh,
    };
    /// SwiGLU: `a * silu(g)`.
    pub const SWIGLU: Gated = Gated {
        gate: Activation::Silu,
    };

    /// The named variants.
    pub const ALL: [Gated; 5] = [
        Gated::GLU,
        Gated::REGLU,
        Gated::GEGLU,
        Gated::GEGLU_TANH,
        Gated::SWIGLU,
    ];

    /// `glu`, `reglu`, `geglu`, `geglu_tanh`, `swiglu`, or `gated_<gate>` for other gates.
    pub fn name(self) -> String {
        match self.gate {
            Activation::Sigmoid => "glu".into(),
            Activation::Relu => "reglu".into(),
            Activation::Gelu => "geglu".into(),
            Activation::GeluTanh => "geglu_tanh".into(),
            Activation::Silu => "swiglu".into(),
            other => format!("gated_{other}"),
        }
    }

    fn key(self, entry: &'static str, types: [&Tensor; 5]) -> PipelineKey {
        let launch = types[0].gpu().launch_config();
        let code = |t: &Tensor| f64::from(t.dtype().storage_code());
        let mut constants = activation_constants(self.gate, launch);
        constants.extend([
            ("X_T", code(types[0])),
            ("DY_T", code(types[1])),
            ("OUT_T", code(types[2])),
            ("G2_T", code(types[3])),
            ("DO_T", code(types[4])),
        ]);
        PipelineKey::new(ShaderId::Gated, entry, launch.workgroup_size, &constants)
            .with_custom(self.gate.custom_id())
    }

    /// The output shape of the split form: x's shape with the last dimension halved.
    fn split_shape(op: &'static str, x: &Tensor) -> Result<(Vec<usize>, usize)> {
        check_u32_elements(x.len())?;
        let Some(&last) = x.shape().last() else {
            return Err(Error::InvalidArgument {
                op,
                reason: "a 0-d tensor has no last dimension to split into a | g".into(),
            });
        };
        if !last.is_multiple_of(2) {
            return Err(Error::InvalidArgument {
                op,
                reason: format!("the last dimension ({last}) must be even to split into a | g"),
            });
        }
        let mut shape = x.shape().to_vec();
        if let Some(l) = shape.last_mut() {
            *l = last / 2;
        }
        Ok((shape, last / 2))
    }

    /// Records `out = a * gate(g)` for `x = [.., 2C]` split into `a | g`, `out = [.., C]`.
    pub fn record_forward(
        self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        out: &Tensor,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| self.plan_forward(rec, x, out))
    }

    /// The commands of [`Self::record_forward`], planned into `encoder`.
    fn plan_forward(self, encoder: &mut Recording, x: &Tensor, out: &Tensor) -> Result<()> {
        const OP: &str = "gated_forward";
        self.gate.validate()?;
        let (shape, half) = Self::split_shape(OP, x)?;
        expect_shape_any(OP, out.gpu(), out, &shape)?;
        if !out.gpu().same_context(x.gpu()) {
            return Err(Error::DeviceMismatch { op: OP });
        }
        check_distinct(OP, &[out], &[x.buffer()])?;
        let entry = split_entry(
            x,
            half,
            [
                "gated_forward_rows",
                "gated_forward_units",
                "gated_forward_split",
            ],
        );
        self.record_split(encoder, entry, x, out, None, half, x.len() / 2)
    }

    /// Records `dx = [da | dg]` for the split form, from x and `dout = [.., C]`.
    pub fn record_backward(
        self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        dout: &Tensor,
        dx: &Tensor,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| self.plan_backward(rec, x, dout, dx))
    }

    /// The commands of [`Self::record_backward`], planned into `encoder`.
    fn plan_backward(
        self,
        encoder: &mut Recording,
        x: &Tensor,
        dout: &Tensor,
        dx: &Tensor,
    ) -> Result<()> {
        const OP: &str = "gated_backward";
        self.gate.validate()?;
        let (shape, half) = Self::split_shape(OP, x)?;
        expect_shape_any(OP, dout.gpu(), dout, &shape)?;
        check_inputs_outputs(OP, &[x], &[dx])?;
        if !dout.gpu().same_context(x.gpu()) {
            return Err(Error::DeviceMismatch { op: OP });
        }
        check_distinct(OP, &[dx], &[x.buffer(), dout.buffer()])?;
        // A 16-bit dx packs two elements a word; with an odd half width da and dg share the word at each row's
        // middle, so each word is computed element by element over dx's length.
        if dx.dtype() != DType::F32 && !half.is_multiple_of(2) {
            let entry = "gated_backward_split_odd";
            return self.record_split(encoder, entry, x, dx, Some(dout), half, x.len());
        }
        let entry = split_entry(
            x,
            half,
            [
                "gated_backward_rows",
                "gated_backward_units",
                "gated_backward_split",
            ],
        );
        self.record_split(encoder, entry, x, dx, Some(dout), half, x.len() / 2)
    }

    /// One dispatch over `len` elements (in units of 8) with x, out (and dout) bound whole; past the
    /// storage-binding limit, one per chunk of whole rows, each bound at its rows' offsets.
    #[allow(clippy::too_many_arguments)]
    fn record_split(
        self,
        encoder: &mut Recording,
        entry: &'static str,
        x: &Tensor,
        out: &Tensor,
        dout: Option<&Tensor>,
        half: usize,
        len: usize,
    ) -> Result<()> {
        let gpu = x.gpu();
        gpu.check_lost()?;
        if len == 0 {
            return Ok(());
        }
        let key = self.key(entry, [x, x, out, out, dout.unwrap_or(out)]);
        // Past the binding limit, in chunks of whole rows whose every operand starts at an aligned offset; the
        // kernels index within their bindings, so a chunk is the same problem on fewer rows.
        let rows = x.len() / (2 * half);
        let per_row = |t: &Tensor| t.len() / rows;
        let tensors: Vec<&Tensor> = [Some(x), Some(out), dout].into_iter().flatten().collect();
        let row_bytes: Vec<u64> = tensors
            .iter()
            .map(|t| (per_row(t) * t.dtype().size_bytes()) as u64)
            .collect();
        let len_per_row = len / rows;
        for chunk in aligned_row_chunks(gpu, rows, 1, &row_bytes, None, &tensors)? {
            let len = chunk.rows * len_per_row;
            let units = len.div_ceil(UNIT_ELEMENTS) as u64;
            let max = gpu.limits().max_compute_workgroups_per_dimension;
            let g: (u32, u32, u32) =
                if entry.ends_with("_rows") {
                    // Column threads along x, rows along y (continued along z).
                    let half_units = (half / UNIT_ELEMENTS) as u64;
                    let gx = half_units.div_ceil(key.units_per_workgroup());
                    let (ry, rz) = grid(units / half_units, max)?;
                    let gx = u32::try_from(gx).ok().filter(|&g| g <= max).ok_or(
                        Error::LimitExceeded {
                            limit: "max_compute_workgroups_per_dimension",
                            max: u64::from(max),
                            requested: gx,
                        },
                    )?;
                    (gx, ry, rz)
                } else {
                    let (a, b) = grid(units.div_ceil(key.units_per_workgroup()), max)?;
                    (a, b, 1)
                };
            let mut entries = vec![
                chunk.binding(Slot::X, x, per_row(x)),
                chunk.binding(Slot::Out, out, per_row(out)),
            ];
            if let Some(d) = dout {
                entries.push(chunk.binding(Slot::Dout, d, per_row(d)));
            }
            let params = [units as u32, 0, half as u32, len as u32];
            run(gpu, encoder, &key, entries, &params, g)?;
        }
        Ok(())
    }

    /// Records `out = a * gate(g)` for two tensors of one shape.
    pub fn record_forward_pair(
        self,
        encoder: &mut wgpu::CommandEncoder,
        a: &Tensor,
        g: &Tensor,
        out: &Tensor,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| self.plan_forward_pair(rec, a, g, out))
    }

    /// The commands of [`Self::record_forward_pair`], planned into `encoder`.
    fn plan_forward_pair(
        self,
        encoder: &mut Recording,
        a: &Tensor,
        g: &Tensor,
        out: &Tensor,
    ) -> Result<()> {
        self.gate.validate()?;
        check_inputs_outputs("gated_forward_pair", &[a, g], &[out])?;
        record(
            a.gpu(),
            encoder,
            &self.key("gated_forward_pair", [a, g, out, out, out]),
            &[(Slot::X, a), (Slot::Dy, g), (Slot::Out, out)],
            a.len(),
            &[],
            &[],
        )
    }

    /// Records `da = dout * gate(g)` and `dg = dout * a * gate'(g)` in one pass, for tensors of one shape.
    #[allow(clippy::too_many_arguments)]
    pub fn record_backward_pair(
        self,
        encoder: &mut wgpu::CommandEncoder,
        a: &Tensor,
        g: &Tensor,
        dout: &Tensor,
        da: &Tensor,
        dg: &Tensor,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| {
            self.plan_backward_pair(rec, a, g, dout, da, dg)
        })
    }

    /// The commands of [`Self::record_backward_pair`], planned into `encoder`.
    fn plan_backward_pair(
        self,
        encoder: &mut Recording,
        a: &Tensor,
        g: &Tensor,
        dout: &Tensor,
        da: &Tensor,
        dg: &Tensor,
    ) -> Result<()> {
        self.gate.validate()?;
        check_inputs_outputs("gated_backward_pair", &[a, g, dout], &[da, dg])?;
        record(
            a.gpu(),
            encoder,
            &self.key("gated_backward_pair", [a, g, da, dg, dout]),
            &[
                (Slot::X, a),
                (Slot::Dy, g),
                (Slot::Dout, dout),
                (Slot::Out, da),
                (Slot::Out2, dg),
            ],
            a.len(),
            &[],
            &[],
        )
    }

    /// `a * gate(g)` for the split form, into a new tensor of x's type; submits and waits.
    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        let (shape, _) = Self::split_shape("gated_forward", x)?;
        let out = x.gpu().zeros(&shape, x.dtype())?;
        self.forward_into(x, &out)?;
        Ok(out)
    }

    /// `a * gate(g)` for the split form, into an existing `out = [.., C]` of any storage type; submits and waits.
    pub fn forward_into(self, x: &Tensor, out: &Tensor) -> Result<()> {
        x.gpu()
            .submit_and_wait("gated_forward", |enc| self.record_forward(enc, x, out))
    }

    /// `dx = [da | dg]` for the split form, in x's type; submits and waits.
    pub fn backward(self, x: &Tensor, dout: &Tensor) -> Result<Tensor> {
        let dx = x.zeros_like()?;
        self.backward_into(x, dout, &dx)?;
        Ok(dx)
    }

    /// `dx = [da | dg]` for the split form, into an existing tensor of x's shape; submits and waits.
    pub fn backward_into(self, x: &Tensor, dout: &Tensor, dx: &Tensor) -> Result<()> {
        x.gpu().submit_and_wait("gated_backward", |enc| {
            self.record_backward(enc, x, dout, dx)
        })
    }

    /// `a * gate(g)` into a new tensor of a's type; submits and waits.
    pub fn forward_pair(self, a: &Tensor, g: &Tensor) -> Result<Tensor> {
        let out = a.zeros_like()?;
        self.forward_pair_into(a, g, &out)?;
        Ok(out)
    }

    /// `a * gate(g)` into an existing tensor of a's shape; submits and waits.
    pub fn forward_pair_into(self, a: &Tensor, g: &Tensor, out: &Tensor) -> Result<()> {
        a.gpu().submit_and_wait("gated_forward_pair", |enc| {
            self.record_forward_pair(enc, a, g, out)
        })
    }

    /// `(da, dg)` in a's and g's types; submits and waits.
    pub fn backward_pair(self, a: &Tensor, g: &Tensor, dout: &Tensor) -> Result<(Tensor, Tensor)> {
        let da = a.zeros_like()?;
        let dg = g.zeros_like()?;
        self.backward_pair_into(a, g, dout, &da, &dg)?;
        Ok((da, dg))
    }

    /// `da` and `dg` into existing tensors of a's and g's shapes; submits and waits.
    pub fn backward_pair_into(
        self,
        a: &Tensor,
        g: &Tensor,
        dout: &Tensor,
        da: &Tensor,
        dg: &Tensor,
    ) -> Result<()> {
        a.gpu().submit_and_wait("gated_backward_pair", |enc| {
            self.record_backward_pair(enc, a, g, dout, da, dg)
        })
    }
}

/// The split layout's entry point of `[rows, units, split]` for `x` with half width `half`: a half width of whole
/// 8-element units runs a unit per load and store, on a grid of rows where a row holds at least one workgroup's
/// units and its workgroups fit the grid's x (`*_rows`), else on a flat grid, which folds into two dimensions
/// (`*_units`); other half widths run element by element (`*_split`).
fn split_entry(x: &Tensor, half: usize, [rows, units, split]: [&'static str; 3]) -> &'static str {
    if !half.is_multiple_of(UNIT_ELEMENTS) {
        return split;
    }
    let gpu = x.gpu();
    let per_workgroup = gpu.launch_config().units_per_workgroup();
    let half_units = (half / UNIT_ELEMENTS) as u64;
    let across = half_units.div_ceil(per_workgroup);
    if half_units >= per_workgroup
        && across <= u64::from(gpu.limits().max_compute_workgroups_per_dimension)
    {
        rows
    } else {
        units
    }
}
