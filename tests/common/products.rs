//! Shared by the matmul and dense tests: the kernels to run, and (from `actgpu::verify::training`, which
//! `validate` uses too) the product forms' shapes, their f64 reference, the f32 dot-product bound and the dense
//! backward's bounds.

// Every test binary compiles this module and uses a different part of it.
#![allow(unused_imports)]

use actgpu::ops::matmul::MatmulKernel;
use actgpu::verify::Check;

pub use actgpu::verify::training::{
    dense_backward_bounds, dot_bound, form_dims as dims, form_reference as reference, LIPSCHITZ, U,
};

/// Every kernel; [`MatmulKernel::Subgroup`] runs the direct kernel where the device has no subgroups (GL).
pub const KERNELS: [MatmulKernel; 6] = MatmulKernel::ALL;

/// Fails with the check's details unless it passed.
pub fn assert_ok(what: &str, check: Check) {
    assert!(check.ok(), "{what}: {check:#?}");
}
