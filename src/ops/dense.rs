//! The dense layer `Y = f(X W + b)`, forward and backward, on the matmul kernels (`shaders/matmul.wgsl`).
//!
//! Forward is one product whose epilogue adds the bias and applies the activation, and also stores the
//! pre-activation `Z = X W + b` when training (one dispatch, or two where the product splits K over workgroups,
//! the second adding the splits and running the epilogue; a 16-bit output adds a conversion pass). Backward, from X, W, Z and dY:
//!
//! ```text
//! dZ = dY * f'(Z)      dW = X^T dZ      db = column sums of dZ = 1^T dZ      dX = dZ W^T
//! ```
//!
//! By default ([`DzMode::Separate`]) an elementwise pass writes dZ ([`Activation::record_backward`]), the products
//! read it and [`crate::ops::bias::record_column_sums`] sums its columns into db. [`DzMode::Fused`] never writes
//! dZ: the gradient products read their dZ operand as `dY * f'(Z)`, and db is one more product, `1^T dZ`. Fused
//! was measured slower on lavapipe and llvmpipe (examples/zz_matmul_probe.rs, m = 256, k = 784, n = 512: relu
//! 187 vs 130 ms, gelu 277 vs 134 ms on lavapipe), because each dZ element is read, with its Z, and
//! differentiated once per 32-column or 64-row block of the product that reads it instead of once.
//!
//! # Storage types
//!
//! Every tensor is f32, f16 or bf16, in any mix, with f32 arithmetic throughout (16-bit inputs are decoded
//! exactly; each 16-bit output is the f32 result rounded once, to nearest even):
//!
//! | pass | inputs of any type | outputs of any type |
//! |---|---|---|
//! | forward | X, W, b | Y, Z |
//! | backward, [`DzMode::Separate`] | X, W, Z, dY | dW, db, dX (dZ itself is an internal f32 buffer) |
//! | backward, [`DzMode::Fused`] | X, W, Z, dY | dW, db, dX |
//!
//! The one exception: with the dead / saturated counts ([`Dense::record_backward_with_stats`]), Z and dY must be
//! f32 (the counting pass, `shaders/dz_stats.wgsl`, reads f32); others are [`crate::Error::DTypeMismatch`]. The
//! usual mixed-precision layer keeps X and W in f16 or bf16 and the gradients in f32.
//!
//! # Past the storage-binding limit
//!
//! The forward and `dX = dZ W^T` run in chunks of the batch's rows where X, Y, Z, dY or dX passes a binding (see
//! [`crate::ops::matmul`]), each chunk's rows bit for bit what the whole product gives; W and the bias are bound
//! whole and must each fit one. `dW = X^T dZ` (and, with [`DzMode::Fused`], `db = 1^T dZ`) sums over the batch
//! and binds X, dY and Z whole: past the limit the backward is [`crate::Error::LimitExceeded`] (`Mlp::train_step`
//! runs such a batch in passes of rows instead).

use super::matmul::{
    check_distinct, expect_shape, expect_shape_any, form_params, matrix, record_gemm, Form, Gemm,
    MatmulKernel,
};
use super::recording::Recording;
use crate::ops::bias::{plan_column_sums, record_backward_column_sums_direct};
use crate::ops::dz_stats;
use crate::{Activation, DType, Gpu, Result, Tensor};

/// How the backward pass forms `dZ = dY * f'(Z)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DzMode {
    /// An elementwise pass writes dZ, then the products read it: a dZ pass, the dW and dX products and the column
    /// sums of db (each product one dispatch, or two where it splits K), and an `[m, n]` f32 buffer; with the
    /// identity, dY is dZ and no pass forms it. The default: measured 1.4x (relu) to 2x (gelu) faster than
    /// [`DzMode::Fused`] on lavapipe.
    Separate,
    /// Inside the gradient products' operand loads: three products (dW, dX, db), no dZ buffer, but
    /// `f'(Z)` evaluated once per block of the product that reads each element. A user-defined activation on a
    /// loop-limited adapter ([`crate::Gpu::loop_limited`]) runs [`DzMode::Separate`] instead: its derivative may
    /// loop, and called that often in one invocation it could pass the driver's limit on loop iterations.
    Fused,
}

/// A dense layer's computation: its activation and how it runs. The weights live in the caller's tensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dense {
    /// `f` in `Y = f(X W + b)`.
    pub activation: Activation,
    /// The matmul kernel; `None` picks [`MatmulKernel::for_gpu`].
    pub kernel: Option<MatmulKernel>,
    /// How backward forms dZ.
    pub dz: DzMode,
}

/// The gradients of a dense layer, as [`Dense::backward`] returns them.
#[derive(Debug, Clone)]
pub struct DenseGrads {
    /// `dX = dZ W^T`, `[m, k]`.
    pub dx: Tensor,
    /// `dW = X^T dZ`, `[k, n]`.
    pub dw: Tensor,
    /// `db = sum over rows of dZ`, `[n]`.
    pub db: Tensor,
}

/// A product of the backward pass, with dZ = act_backward(Z, operand) fused into operand `fuse.0` when given
/// (the epilogue is the identity: `act` only shapes the fused loads).
fn product<'a>(
    kernel: MatmulKernel,
    act: Activation,
    a: &'a Tensor,
    form: Form,
    b: &'a Tensor,
    c: &'a Tensor,
    fuse: Option<(u32, &'a Tensor)>,
) -> Result<Gemm<'a>> {
    Ok(Gemm {
        kernel,
        op: "dense_backward",
        a,
        b,
        c,
        params: form_params(form, a, b)?,
        act,
        bias: None,
        z_out: None,
        fuse,
    })
}

/// `(m, k, n)` of `x [m, k]` and `w [k, n]`, checked.
fn sizes(op: &'static str, x: &Tensor, w: &Tensor) -> Result<(usize, usize, usize)> {
    let [m, n, k, ..] = form_params(Form::AB, x, w)?;
    expect_shape_any(op, x.gpu(), w, w.shape())?;
    matrix(op, w)?;
    Ok((m as usize, k as usize, n as usize))
}

impl Dense {
    /// A layer with activation `f`, the adapter's matmul kernel and [`DzMode::Separate`].
    pub const fn new(activation: Activation) -> Self {
        Dense {
            activation,
            kernel: None,
            dz: DzMode::Separate,
        }
    }

    fn kernel_for(&self, gpu: &Gpu) -> MatmulKernel {
        self.kernel.unwrap_or_else(|| MatmulKernel::for_gpu(gpu))
    }

    /// Records `Y = f(X W + b)` in one kernel: `x [m, k]`, `w [k, n]`, `bias [n]` (optional), `y [m, n]`, and,
    /// when `z` is given, the pre-activation `Z = X W + b` into it (`[m, n]`), for the backward pass. With
    /// `k = 0`, `Y = f(b)` (or `f(0)`). Every tensor may be f32, f16 or bf16 (a 16-bit Y or Z adds one
    /// conversion pass each, see the module documentation). Past the storage-binding limit the batch runs in
    /// chunks of rows; W or the bias past it is [`crate::Error::LimitExceeded`].
    pub fn record_forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        y: &Tensor,
        z: Option<&Tensor>,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| self.plan_forward(rec, x, w, bias, y, z))
    }

    /// The commands of [`Self::record_forward`], planned into `encoder`.
    fn plan_forward(
        &self,
        encoder: &mut Recording,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        y: &Tensor,
        z: Option<&Tensor>,
    ) -> Result<()> {
        const OP: &str = "dense_forward";
        let (m, _, n) = sizes(OP, x, w)?;
        let gpu = x.gpu();
        if let Some(b) = bias {
            expect_shape_any(OP, gpu, b, &[n])?;
        }
        expect_shape_any(OP, gpu, y, &[m, n])?;
        let mut outs = vec![y];
        if let Some(z) = z {
            expect_shape_any(OP, gpu, z, &[m, n])?;
            outs.push(z);
        }
        let mut ins = vec![x.buffer(), w.buffer()];
        ins.extend(bias.map(Tensor::buffer));
        check_distinct(OP, &outs, &ins)?;
        record_gemm(
            encoder,
            Gemm {
                kernel: self.kernel_for(gpu),
                op: OP,
                a: x,
                b: w,
                c: y,
                params: form_params(Form::AB, x, w)?,
                act: self.activation,
                bias,
                z_out: z,
                fuse: None,
            },
        )
    }

    /// Records the gradients from `x [m, k]`, `w [k, n]`, the pre-activation `z [m, n]` and `dy [m, n]`:
    /// `dW = X^T dZ` into `dw [k, n]`, and where given `db [n]` (column sums of dZ) and `dX = dZ W^T` into
    /// `dx [m, k]`, with `dZ = dY * f'(Z)` formed as [`Dense::dz`] says. Every tensor may be f32, f16 or bf16
    /// (see the module documentation). With [`DzMode::Separate`] (the default, and what [`DzMode::Fused`] runs
    /// for a user-defined activation on a loop-limited adapter) and an activation other than identity, each call
    /// allocates an `[m, n]` f32 buffer for dZ: a training loop passes one that lives across steps to
    /// [`Dense::record_backward_using`]. Past the storage-binding limit dX runs in chunks of rows, while dW (and
    /// the fused db) is [`crate::Error::LimitExceeded`] where X, dY or Z passes it (module documentation).
    #[allow(clippy::too_many_arguments)]
    pub fn record_backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        w: &Tensor,
        z: &Tensor,
        dy: &Tensor,
        dw: &Tensor,
        db: Option<&Tensor>,
        dx: Option<&Tensor>,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| {
            self.plan_backward_using(rec, x, w, z, dy, dw, db, dx, None, None)
        })
    }

    /// [`Dense::record_backward`], and where `stats` is given (a `[2 + n]` counter tensor, see
    /// [`crate::ops::dz_stats`]) adds to it the number of elements of Z whose activation derivative is zero
    /// (dead) and whose `|f'(z)|` is below [`crate::ops::dz_stats::SATURATION_THRESHOLD`] (saturated), and
    /// marks the units (columns) with a nonzero derivative in some row. With
    /// [`DzMode::Separate`] the pass that writes dZ counts them (no extra pass over memory); with
    /// [`DzMode::Fused`], which never forms dZ, one extra pass reads Z to count them. With `stats`, Z and dY
    /// must be f32 ([`crate::Error::DTypeMismatch`] otherwise).
    #[allow(clippy::too_many_arguments)]
    pub fn record_backward_with_stats(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        w: &Tensor,
        z: &Tensor,
        dy: &Tensor,
        dw: &Tensor,
        db: Option<&Tensor>,
        dx: Option<&Tensor>,
        stats: Option<&Tensor>,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| {
            self.plan_backward_using(rec, x, w, z, dy, dw, db, dx, stats, None)
        })
    }

    /// [`Dense::record_backward_with_stats`], writing dZ ([`DzMode::Separate`]) into `scratch` (`[m, n]` f32, a
    /// buffer of its own) where given rather than into a buffer allocated per call: a training loop passes one
    /// that lives across steps. `stats` and `scratch` may each be `None`; `scratch` is left alone where no pass
    /// forms dZ (the identity, an empty batch, [`DzMode::Fused`] but for a user-defined activation on a
    /// loop-limited adapter, which runs the separate pass).
    #[allow(clippy::too_many_arguments)]
    pub fn record_backward_using(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        w: &Tensor,
        z: &Tensor,
        dy: &Tensor,
        dw: &Tensor,
        db: Option<&Tensor>,
        dx: Option<&Tensor>,
        stats: Option<&Tensor>,
        scratch: Option<&Tensor>,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| {
            self.plan_backward_using(rec, x, w, z, dy, dw, db, dx, stats, scratch)
        })
    }

    /// The commands of [`Self::record_backward_using`], planned into `encoder`.
    #[allow(clippy::too_many_arguments)]
    fn plan_backward_using(
        &self,
        encoder: &mut Recording,
        x: &Tensor,
        w: &Tensor,
        z: &Tensor,
        dy: &Tensor,
        dw: &Tensor,
        db: Option<&Tensor>,
        dx: Option<&Tensor>,
        stats: Option<&Tensor>,
        scratch: Option<&Tensor>,
    ) -> Result<()> {
        const OP: &str = "dense_backward";
        let (m, k, n) = sizes(OP, x, w)?;
        let gpu = x.gpu();
        for t in [z, dy] {
            expect_shape_any(OP, gpu, t, &[m, n])?;
        }
        let mut outs = gradient_outputs(OP, gpu, (m, k, n), dw, db, dx)?;
        if let Some(stats) = stats {
            expect_shape(OP, gpu, stats, &[2 + n])?;
            // The counts need f32 Z and dY in every mode (only the separate pass reads dY for them, but one rule
            // for both modes).
            expect_shape(OP, gpu, z, &[m, n])?;
            expect_shape(OP, gpu, dy, &[m, n])?;
            outs.push(stats);
        }
        if let Some(scratch) = scratch {
            expect_shape(OP, gpu, scratch, &[m, n])?;
            outs.push(scratch);
        }
        check_distinct(
            OP,
            &outs,
            &[x.buffer(), w.buffer(), z.buffer(), dy.buffer()],
        )?;
        self.activation.validate()?;
        let kernel = self.kernel_for(gpu);
        let act = self.activation;
        let fused = |a, form, b, c, z| product(kernel, act, a, form, b, c, Some(z));
        // A user-defined derivative may loop, and the fused products call it several times per element of K: on a
        // driver that stops an invocation's loops after 65,535 iterations in all, a deep product would lose the
        // rest of K without a word. The separate pass calls it once per element of dZ.
        let mode = match self.dz {
            DzMode::Fused if act.custom_id().is_some() && gpu.loop_limited() => DzMode::Separate,
            mode => mode,
        };
        match mode {
            DzMode::Fused => {
                let one = db.map(|_| gpu.one_f32()).transpose()?;
                let mut gemms = vec![fused(x, Form::AtB, dy, dw, (2, z))?];
                if let Some(dx) = dx {
                    gemms.push(fused(dy, Form::ABt, w, dx, (1, z))?);
                }
                if let (Some(db), Some(one)) = (db, &one) {
                    // db = 1^T dZ: a one-row product whose A operand is the constant 1 (strides 0).
                    let mut g = fused(x, Form::AtB, dy, db, (2, z))?;
                    g.a = one;
                    g.params = [1, n as u32, m as u32, 0, 0, n as u32, 1];
                    gemms.push(g);
                }
                if let Some(stats) = stats {
                    dz_stats::plan_record(encoder, act, z, None, stats)?;
                }
                for g in gemms {
                    record_gemm(encoder, g)?;
                }
            }
            DzMode::Separate => {
                if m * n == 0 || act == Activation::Identity {
                    // dZ is empty (every gradient is a sum over no terms, or has no elements), or f' = 1 and dZ
                    // is dY itself: no pass forms it. The counts still come from the same pass as in the fused
                    // mode (every unit live, none saturated, for f' = 1), and it checks their dtypes too.
                    if let Some(stats) = stats {
                        dz_stats::plan_record(encoder, act, z, None, stats)?;
                    }
                    return self.record_products_from_dz(encoder, x, w, dy, dw, db, dx);
                }
                let owned;
                let dz = match scratch {
                    Some(dz) => dz,
                    None => {
                        owned = gpu.zeros(&[m, n], DType::F32)?;
                        &owned
                    }
                };
                match (stats, db) {
                    (Some(stats), _) => {
                        dz_stats::plan_record(encoder, act, z, Some((dy, dz)), stats)?
                    }
                    // Few rows: dZ and db in one dispatch, the same bits as the two below.
                    (None, Some(db))
                        if record_backward_column_sums_direct(encoder, act, z, dy, dz, db)? =>
                    {
                        return self.record_products_from_dz(encoder, x, w, dz, dw, None, dx);
                    }
                    (None, _) => self.activation.plan_backward(encoder, z, dy, dz)?,
                }
                self.record_products_from_dz(encoder, x, w, dz, dw, db, dx)?;
            }
        }
        Ok(())
    }

    /// The products of [`Dense::record_products_from_dz`]: `dW = X^T dZ`, and `dX = dZ W^T` where given.
    fn products_from_dz<'a>(
        &self,
        x: &'a Tensor,
        w: &'a Tensor,
        dz: &'a Tensor,
        dw: &'a Tensor,
        dx: Option<&'a Tensor>,
    ) -> Result<Vec<Gemm<'a>>> {
        let kernel = self.kernel_for(x.gpu());
        let plain = |a, form, b, c| product(kernel, Activation::Identity, a, form, b, c, None);
        let mut gemms = vec![plain(x, Form::AtB, dz, dw)?];
        if let Some(dx) = dx {
            gemms.push(plain(dz, Form::ABt, w, dx)?);
        }
        Ok(gemms)
    }

    /// `dW = X^T dZ`, and where given `dX = dZ W^T` and `db` = column sums of dZ, on this layer's matmul kernel;
    /// shapes already checked.
    #[allow(clippy::too_many_arguments)]
    fn record_products_from_dz(
        &self,
        encoder: &mut Recording,
        x: &Tensor,
        w: &Tensor,
        dz: &Tensor,
        dw: &Tensor,
        db: Option<&Tensor>,
        dx: Option<&Tensor>,
    ) -> Result<()> {
        for g in self.products_from_dz(x, w, dz, dw, dx)? {
            record_gemm(encoder, g)?;
        }
        if let Some(db) = db {
            plan_column_sums(encoder, dz, db)?;
        }
        Ok(())
    }

    /// The gradient products of a linear map from a dZ formed elsewhere (a gated unit's or a learnable
    /// activation's fused backward): `dW = X^T dZ` into `dw`, `db` = column sums of dZ and `dX = dZ W^T` where
    /// given. `x [m, k]`, `w [k, n]`, `dz [m, n]`; the activation plays no part.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_backward_from_dz(
        &self,
        encoder: &mut Recording,
        x: &Tensor,
        w: &Tensor,
        dz: &Tensor,
        dw: &Tensor,
        db: Option<&Tensor>,
        dx: Option<&Tensor>,
    ) -> Result<()> {
        const OP: &str = "dense_backward";
        let (m, k, n) = sizes(OP, x, w)?;
        let gpu = x.gpu();
        expect_shape_any(OP, gpu, dz, &[m, n])?;
        let outs = gradient_outputs(OP, gpu, (m, k, n), dw, db, dx)?;
        check_distinct(OP, &outs, &[x.buffer(), w.buffer(), dz.buffer()])?;
        self.record_products_from_dz(encoder, x, w, dz, dw, db, dx)
    }

    /// `Y = f(X W + b)` into a new f32 tensor (inputs of any storage type); submits and waits.
    pub fn forward(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let (m, _, n) = sizes("dense_forward", x, w)?;
        let y = x.gpu().zeros(&[m, n], DType::F32)?;
        x.gpu().submit_and_wait("dense_forward", |enc| {
            self.record_forward(enc, x, w, bias, &y, None)
        })?;
        Ok(y)
    }

    /// `(Y, Z)`: the output and the pre-activation the backward pass needs, both f32; submits and waits.
    pub fn forward_train(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let (m, _, n) = sizes("dense_forward", x, w)?;
        let y = x.gpu().zeros(&[m, n], DType::F32)?;
        let z = x.gpu().zeros(&[m, n], DType::F32)?;
        x.gpu().submit_and_wait("dense_forward", |enc| {
            self.record_forward(enc, x, w, bias, &y, Some(&z))
        })?;
        Ok((y, z))
    }

    /// dX, dW and db into new f32 tensors; submits and waits.
    pub fn backward(&self, x: &Tensor, w: &Tensor, z: &Tensor, dy: &Tensor) -> Result<DenseGrads> {
        let (m, k, n) = sizes("dense_backward", x, w)?;
        let gpu = x.gpu();
        let grads = DenseGrads {
            dx: gpu.zeros(&[m, k], DType::F32)?,
            dw: gpu.zeros(&[k, n], DType::F32)?,
            db: gpu.zeros(&[n], DType::F32)?,
        };
        gpu.submit_and_wait("dense_backward", |enc| {
            self.record_backward(
                enc,
                x,
                w,
                z,
                dy,
                &grads.dw,
                Some(&grads.db),
                Some(&grads.dx),
            )
        })?;
        Ok(grads)
    }
}

/// Checks the backward's outputs against `(m, k, n)`: `dw [k, n]`, and where given `db [n]` and `dx [m, k]`, any
/// storage type; returns them, for the aliasing check.
fn gradient_outputs<'a>(
    op: &'static str,
    gpu: &Gpu,
    (m, k, n): (usize, usize, usize),
    dw: &'a Tensor,
    db: Option<&'a Tensor>,
    dx: Option<&'a Tensor>,
) -> Result<Vec<&'a Tensor>> {
    expect_shape_any(op, gpu, dw, &[k, n])?;
    if let Some(db) = db {
        expect_shape_any(op, gpu, db, &[n])?;
    }
    if let Some(dx) = dx {
        expect_shape_any(op, gpu, dx, &[m, k])?;
    }
    Ok([Some(dw), db, dx].into_iter().flatten().collect())
}
