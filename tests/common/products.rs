//! Shared by the matmul and dense tests: the product forms' shapes, their f64 reference, the f32 dot-product
//! bound, and the kernels to run.

use actgpu::cpu;
use actgpu::ops::matmul::{Form, MatmulKernel};
use actgpu::verify::Check;

/// Unit roundoff of f32, 2^-24.
pub const U: f64 = 1.0 / 16_777_216.0;

/// `DOT_F32`, the bound on an f32 dot product of `k` terms, `|got - ref| <= 1e-6 + (k + 2) u sum_i |a_i b_i|`
/// with `u = 2^-24`. Justification: summing k products in f32 in any order, fused or not, is within
/// `gamma_k sum |a_i b_i|` of the exact sum (`gamma_k = k u / (1 - k u)`, Higham, Accuracy and Stability, 3.1);
/// the bias add and the final store add at most two more roundings; `1e-6` absorbs subnormals flushed to zero.
/// It is the worst case, not a statistical estimate, so it holds for every summation order either kernel uses,
/// and it is tight enough that a term dropped or counted twice (about `sum / k` for random data) fails.
pub fn dot_bound(k: usize, abs_sum: f64) -> f64 {
    let g = (k + 2) as f64 * U;
    1e-6 + g / (1.0 - g) * abs_sum
}

/// Largest `|f'|` of the activations tested here (GELU's 1.129 is the largest), with a margin: an error `e` in
/// the pre-activation moves `f(z)` by at most `LIPSCHITZ e`.
pub const LIPSCHITZ: f64 = 1.2;

/// Every kernel; [`MatmulKernel::Subgroup`] runs the direct kernel where the device has no subgroups (GL).
pub const KERNELS: [MatmulKernel; 4] = [
    MatmulKernel::Direct,
    MatmulKernel::Tiled,
    MatmulKernel::Subgroup,
    MatmulKernel::Vec4,
];

/// `(a shape, b shape, out shape, inner size)` of a form over the dense layer's `(m, k, n)`.
pub fn dims(
    form: Form,
    (m, k, n): (usize, usize, usize),
) -> ([usize; 2], [usize; 2], [usize; 2], usize) {
    match form {
        Form::AB => ([m, k], [k, n], [m, n], k),
        Form::AtB => ([m, k], [m, n], [k, n], m),
        Form::ABt => ([m, n], [k, n], [m, k], n),
    }
}

/// The f64 reference of a form.
pub fn reference(form: Form, a: &[f64], b: &[f64], (m, k, n): (usize, usize, usize)) -> Vec<f64> {
    match form {
        Form::AB => cpu::dense::matmul(a, b, m, k, n),
        Form::AtB => cpu::dense::matmul_at_b(a, b, m, k, n),
        Form::ABt => cpu::dense::matmul_a_bt(a, b, m, k, n),
    }
}

/// Fails with the check's details unless it passed.
pub fn assert_ok(what: &str, check: Check) {
    assert!(check.ok(), "{what}: {check:#?}");
}
