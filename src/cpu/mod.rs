//! The f64 CPU reference of every GPU op. Tests and the `validate` example compare the kernels against it.
//!
//! The reference follows the same policy as the kernels: at +-inf it returns the mathematical limit, and NaN in
//! gives NaN out.

pub mod activation;
pub mod dense;
pub mod diagnostics;
pub mod fused;
pub mod loss;
pub mod mlp;
pub mod optim;
pub mod rrelu;
pub mod softmax;
