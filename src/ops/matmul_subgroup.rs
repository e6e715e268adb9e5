//! The matmul kernels of CPU adapters: generated, fully unrolled WGSL in which each invocation owns 32 rows by 4
//! columns of C (or several such column blocks) and loads both operands as `vec4`s (B as scalars where its rows
//! are not whole `vec4`s); with subgroups (lavapipe), the lanes of a subgroup load A together and share it by
//! `subgroupBroadcast` ([`kernel_source`]); without (llvmpipe GL), each invocation loads its own A and may own
//! several column blocks, so that each load of A feeds more FMAs ([`private_source`]).
//!
//! Why it looks like this (Mesa 22.3 llvmpipe, where a workgroup runs on one CPU thread and invocations are the
//! lanes of 8-wide AVX2 vectors):
//!
//! - a storage load whose address differs per lane compiles to a loop over the 8 lanes with a bounds test and a
//!   branch per lane and component, tens of instructions per lane, against one instruction for an 8-lane FMA. So
//!   what counts is FMAs per loaded element. A `vec4` load costs one lane loop for four components.
//! - `subgroupBroadcast(v, s)` with a constant `s` is one extract and one splat: the cheapest way for lanes to
//!   share data. Each lane loads a different `vec4` of the shared operand (8 lanes x 4 = 32 values along K for one
//!   row), and the inner loop broadcasts them, so every element of A is loaded once per subgroup.
//! - Loops over private arrays are not unrolled by the driver and the arrays go to memory (a rolled version of
//!   this kernel measured 10x slower), hence the generated, straight-line code with one named accumulator per row.
//! - Those 32 `vec4` accumulators (128 AVX2 registers' worth) live on the stack, and `fma` becomes a multiply and
//!   an add. So each accumulator takes four K steps' FMAs in a row, which load and store it once, where one FMA
//!   per row per K step loaded and stored it for every (mul, add) pair ([`fma_steps`]; 624207d: 1.2-1.4x at
//!   1024^3 on lavapipe, 1.4-1.9x at the MLP shapes, BENCHMARKS.md).
//!
//! Each workgroup is one subgroup of `L` lanes and computes a block of `R` rows of C by `4 L` columns; lane `l`
//! owns columns `j0 .. j0 + 4`, `j0 = 4 (L x + l)`, in one `vec4` accumulator per row:
//!
//! ```text
//! AB   C = X W     A rows contiguous along K: lane l loads A[i, 4(q0 + l) .. +4] for each row i, per L vec4 steps;
//!                  B row p: one vec4 B[p, j0 .. j0 + 4] per lane and K step (four scalars where N % 4 != 0).
//!                                                                                      Needs K % 4 = 0.
//! AtB  C = X^T dZ  A = X [K, M] contiguous along M: lane l loads X[p0 + l, i0 + 4g .. +4] for each group g of 4
//!                  rows, per L K steps; B as in AB.                                    Needs M % 4 = 0.
//! ABt  C = dZ W^T  A as in AB; B = W [N, K] contiguous along K: lane l loads W[j0 + c, 4q .. +4] for its four
//!                  columns c and transposes them in registers (free: a vec4 is four scalar registers).   K % 4 = 0.
//! ```
//!
//! Rows past M and columns past N are clamped to the last one for loading and dropped at the store; a K that is not
//! a multiple of the chunk runs a tail loop in which every lane loads the shared values itself. B's rows start on
//! 16 bytes only where N is a multiple of 4; elsewhere (a classifier's 10 outputs) AB and AtB load each lane's four
//! values of B as four scalars, each column clamped ([`BLoad::Scalar`]): four lane loops where a `vec4` costs one,
//! but the direct kernel, which ran those products before, costs two per FMA. On lavapipe the 256x512x10 output
//! layer of the 784-512-512-10 MLP went from 2.8-2.9 to 0.71-0.74 ms (`X W`) and from 2.7-2.9 to 0.79-0.85 ms
//! (`X^T dZ`): `bench --kernels matmul --matmul-shapes 256x512x10`, against `--matmul direct` (BENCHMARKS.md).
//!
//! Without subgroups every invocation loads A itself (the tail loop over all of K), and a load that every lane
//! makes at the same address still costs the loop over the lanes: with 4 columns, 32 rows and one K step of four
//! that is 32 loads of A and 4 of B for 128 `vec4` FMAs. An invocation of [`private_source`] owns `vecs` blocks
//! of 4 columns (`j0 = 4 vecs (L x + l)`; accumulators, B offsets and B values of block `v > 0` carry the suffix
//! `_v`): with R rows, R + 4 vecs loads for 4 R vecs FMAs. On llvmpipe GL, 16 rows by 2 blocks made 1024^3 1.4x
//! faster than 32 rows by 1, with code of the same size (BENCHMARKS.md).
//!
//! Measured (2-core machine, lavapipe, `examples/bench.rs`, see BENCHMARKS.md): 256x784x512 went from 3.6 to
//! about 17 GFLOP/s (wall clock with other jobs on the machine; 33 GFLOP/s of CPU time) with 32 rows per workgroup;
//! 16 rows measured 7% to 15% slower, 8 rows 1.3x slower, and register blocks without subgroups (8 x 4 per lane, vec4
//! loads of both operands) 2x slower.

use std::fmt::Write;

use super::matmul::{BLoad, Form};

/// Rows of C per workgroup (one named `vec4` accumulator each).
pub(crate) const ROWS: u32 = 32;

/// How a product with `params` `[m, n, k, sa_i, sa_p, sb_p, sb_j]` that has the memory layout of `form` loads B
/// in the generated kernel, where it has the sizes the kernel's `vec4` loads of A need (see the module
/// documentation); `None` where it does not.
pub(crate) fn eligible(form: Form, params: [u32; 7]) -> Option<BLoad> {
    let [m, n, k, sa_i, sa_p, sb_p, sb_j] = params;
    let b_rows = |ok: bool| {
        ok.then_some(if n % 4 == 0 {
            BLoad::Vec4
        } else {
            BLoad::Scalar
        })
    };
    match form {
        Form::AB => b_rows(sa_i == k && sa_p == 1 && sb_p == n && sb_j == 1 && k % 4 == 0),
        Form::AtB => b_rows(sa_i == 1 && sa_p == m && sb_p == n && sb_j == 1 && m % 4 == 0),
        Form::ABt => {
            (sa_i == k && sa_p == 1 && sb_p == 1 && sb_j == k && k % 4 == 0).then_some(BLoad::Vec4)
        }
    }
}

/// The form of a product the generated kernel can run, if any, and how it loads B.
pub(crate) fn form_of(params: [u32; 7]) -> Option<(Form, BLoad)> {
    [Form::AB, Form::AtB, Form::ABt]
        .into_iter()
        .find_map(|f| eligible(f, params).map(|b| (f, b)))
}

/// `(x, y)` workgroups for `C [m, n]` with `rows` rows and `cols` columns per workgroup.
pub(crate) fn groups(m: u32, n: u32, rows: u32, cols: u32) -> (u32, u32) {
    (n.div_ceil(cols), m.div_ceil(rows))
}

const COMPONENTS: [&str; 4] = ["x", "y", "z", "w"];

/// AB, ABt: whole chunks of `lanes` `vec4` steps along K, lane `l` loading step `q0 + l` of every row of A.
fn shared_chunks(o: &mut String, form: Form, rows: u32, lanes: u32, b_load: BLoad) {
    emit(
        o,
        1,
        &format!("for (var q0 = 0u; q0 < kfull; q0 += {lanes}u) {{"),
    );
    for r in 0..rows {
        emit(o, 2, &format!("let av{r} = a_v4[ar{r} + q0 + lane];"));
    }
    for l in 0..lanes {
        emit(o, 2, "{");
        for r in 0..rows {
            emit(o, 3, &format!("let a{r} = subgroupBroadcast(av{r}, {l}u);"));
        }
        k4_block(o, 3, form, rows, &format!("q0 + {l}u"), 1, b_load);
        emit(o, 2, "}");
    }
    emit(o, 1, "}");
}

/// AtB: whole chunks of `lanes` K steps, lane `l` loading row `p0 + l` of X for every group of four rows of C.
fn shared_chunks_at_b(o: &mut String, rows: u32, lanes: u32, b_load: BLoad) {
    emit(
        o,
        1,
        &format!("for (var p0 = 0u; p0 < kfull; p0 += {lanes}u) {{"),
    );
    emit(o, 2, "let row = (p0 + lane) * m4;");
    for g in 0..rows / 4 {
        emit(o, 2, &format!("let av{g} = a_v4[row + ag{g}];"));
    }
    // Up to four K steps at a time (lanes l0 ..), so that each accumulator takes that many FMAs in a row.
    for l0 in (0..lanes).step_by(4) {
        let steps = (lanes - l0).min(4);
        emit(o, 2, "{");
        for e in 0..steps {
            load_b_row(o, 3, &format!("b{e}"), b_load, 0, 1);
        }
        for g in 0..rows / 4 {
            for e in 0..steps {
                emit(
                    o,
                    3,
                    &format!("let a{g}_{e} = subgroupBroadcast(av{g}, {}u);", l0 + e),
                );
            }
            for (c, comp) in COMPONENTS.iter().enumerate() {
                fma_steps(o, 3, 4 * g + c as u32, 0, steps, |e| {
                    format!("a{g}_{e}.{comp}")
                });
            }
        }
        emit(o, 2, "}");
    }
    emit(o, 1, "}");
}

/// The suffix of the names that belong to column block `v` of an invocation (accumulators, B offsets and
/// values): none for the first, so that one-block kernels read as before.
fn block(v: u32) -> String {
    if v == 0 {
        String::new()
    } else {
        format!("_{v}")
    }
}

/// `let {name} = ` column block `v`'s four values of the current row of B (AB, AtB), and the step to the next
/// row: `b_v4[bp_v]` and that block's own `vec4` offset; or four scalar loads at the row's offset `bp` and the
/// block's clamped columns `bc{4v} .. bc{4v + 3}`, with `bp`, which every block shares, stepped after the last
/// of the `vecs` blocks.
fn load_b_row(out: &mut String, depth: usize, name: &str, b_load: BLoad, v: u32, vecs: u32) {
    match b_load {
        BLoad::Vec4 => {
            let sfx = block(v);
            emit(out, depth, &format!("let {name} = b_v4[bp{sfx}];"));
            emit(out, depth, &format!("bp{sfx} += n4;"));
        }
        BLoad::Scalar => {
            let c = |i: u32| format!("b_s[bp + bc{}]", 4 * v + i);
            let row = format!("vec4<f32>({}, {}, {}, {})", c(0), c(1), c(2), c(3));
            emit(out, depth, &format!("let {name} = {row};"));
            if v + 1 == vecs {
                emit(out, depth, "bp += params.n;");
            }
        }
    }
}

/// Appends `line` indented by `depth` levels.
fn emit(out: &mut String, depth: usize, line: &str) {
    let _ = writeln!(out, "{:w$}{line}", "", w = 4 * depth);
}

/// `acc_r += a * b` for every row `r` given its broadcast scalar expression, into the accumulators of column
/// block `v`.
fn fma_rows(out: &mut String, depth: usize, rows: u32, a: impl Fn(u32) -> String, b: &str, v: u32) {
    let sfx = block(v);
    for r in 0..rows {
        emit(
            out,
            depth,
            &format!("acc{r}{sfx} = fma(vec4<f32>({}), {b}, acc{r}{sfx});", a(r)),
        );
    }
}

/// Row `r`'s value in the `vec4` of its group of four rows (AtB): `a{r / 4}.{x|y|z|w}`.
fn row_of_group(r: u32) -> String {
    format!("a{}.{}", r / 4, COMPONENTS[r as usize % 4])
}

/// The K steps of one `vec4` of A per row (AB, ABt), with `a{r}` the row's four values along K, for `vecs`
/// column blocks of four: the four rows of B (`b{e}` for K step `e`, per block) first, then each accumulator's
/// four FMAs in a row ([`fma_steps`]).
fn k4_block(
    out: &mut String,
    depth: usize,
    form: Form,
    rows: u32,
    q: &str,
    vecs: u32,
    b_load: BLoad,
) {
    if form == Form::ABt {
        for c in 0..4 * vecs {
            emit(out, depth, &format!("let w{c} = b_v4[bw{c} + {q}];"));
        }
    }
    for (e, comp) in COMPONENTS.iter().enumerate() {
        for v in 0..vecs {
            let name = format!("b{e}{}", block(v));
            if form == Form::ABt {
                let w = |c: u32| format!("w{}.{comp}", 4 * v + c);
                let row = format!("vec4<f32>({}, {}, {}, {})", w(0), w(1), w(2), w(3));
                emit(out, depth, &format!("let {name} = {row};"));
            } else {
                load_b_row(out, depth, &name, b_load, v, vecs);
            }
        }
    }
    for r in 0..rows {
        for v in 0..vecs {
            fma_steps(out, depth, r, v, 4, |e| {
                format!("a{r}.{}", COMPONENTS[e as usize])
            });
        }
    }
}

/// `steps` FMAs in a row into row `r`'s accumulator of column block `v`: `acc += a(e) * b{e}` for each K step
/// `e`. One accumulator at a time, because the 32 rows' accumulators cannot all live in registers: llvmpipe's
/// code (`perf` and `gdb` on lavapipe, 2026-12-02) keeps them on the stack, and an FMA per accumulator per K step
/// loaded and stored one there for each (mul, add) pair, where four in a row load and store it once.
fn fma_steps(
    out: &mut String,
    depth: usize,
    r: u32,
    v: u32,
    steps: u32,
    a: impl Fn(u32) -> String,
) {
    let acc = format!("acc{r}{}", block(v));
    for e in 0..steps {
        let b = format!("b{e}{}", block(v));
        emit(
            out,
            depth,
            &format!("{acc} = fma(vec4<f32>({}), {b}, {acc});", a(e)),
        );
    }
}

/// The WGSL of `matmul_subgroup` for `form` with `rows` rows per workgroup and `lanes` lanes per subgroup, loading
/// B as `b_load` says: bindings 0 (A) and 2 (B) as `vec4` arrays (B as `f32` for [`BLoad::Scalar`]), the rest from
/// `shaders/matmul_common.wgsl`, which the module includes first. `rows` is a multiple of 4.
pub(crate) fn kernel_source(form: Form, rows: u32, lanes: u32, b_load: BLoad) -> String {
    generate(form, rows, lanes, true, 1, b_load)
}

/// The WGSL of `matmul_vec4`: the same blocks and loads without subgroups, each invocation loading its own
/// A (the tail loop of [`kernel_source`] over all of K) and owning `vecs` blocks of 4 columns, `lanes`
/// invocations per workgroup. For adapters without subgroups (llvmpipe GL).
pub(crate) fn private_source(
    form: Form,
    rows: u32,
    lanes: u32,
    vecs: u32,
    b_load: BLoad,
) -> String {
    generate(form, rows, lanes, false, vecs, b_load)
}

/// Each invocation owns `rows` rows by `4 vecs` columns of C (`vecs` is 1 with `shared`).
fn generate(form: Form, rows: u32, lanes: u32, shared: bool, vecs: u32, b_load: BLoad) -> String {
    let mut s = String::new();
    let o = &mut s;
    let (entry, lane) = if shared {
        ("matmul_subgroup", "subgroup_invocation_id")
    } else {
        ("matmul_vec4", "local_invocation_index")
    };
    let b_binding = match b_load {
        BLoad::Vec4 => "b_v4: array<vec4<f32>>",
        BLoad::Scalar => "b_s: array<f32>",
    };
    let _ = writeln!(
        o,
        "// Generated by src/ops/matmul_subgroup.rs: {form:?}, {rows} rows x {} columns per workgroup of {lanes} \
         invocations, B loaded as {b_load:?}.\n@group(0) @binding(0) var<storage, read> a_v4: array<vec4<f32>>;\n\
         @group(0) @binding(2) var<storage, read> {b_binding};\n\n\
         @compute @workgroup_size(WG)\n\
         fn {entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,\n    \
         @builtin({lane}) lane: u32) {{",
        4 * vecs * lanes
    );
    emit(o, 1, &format!("let i0 = row_block(wid, nwg) * {rows}u;"));
    emit(
        o,
        1,
        &format!("let j0 = (wid.x * {lanes}u + lane) * {}u;", 4 * vecs),
    );
    match form {
        Form::AB | Form::ABt => {
            emit(o, 1, "let k4 = params.k / 4u;");
            for r in 0..rows {
                emit(
                    o,
                    1,
                    &format!("let ar{r} = min(i0 + {r}u, params.m - 1u) * k4;"),
                );
            }
        }
        Form::AtB => {
            emit(o, 1, "let m4 = params.m / 4u;");
            for g in 0..rows / 4 {
                emit(o, 1, &format!("let ag{g} = min(i0 / 4u + {g}u, m4 - 1u);"));
            }
        }
    }
    if form == Form::ABt {
        for c in 0..4 * vecs {
            emit(
                o,
                1,
                &format!("let bw{c} = min(j0 + {c}u, params.n - 1u) * k4;"),
            );
        }
    } else if b_load == BLoad::Scalar {
        // The row offset of B, and each column clamped to the last (its loads feed only columns not stored).
        emit(o, 1, "var bp = 0u;");
        for c in 0..4 * vecs {
            emit(o, 1, &format!("let bc{c} = min(j0 + {c}u, params.n - 1u);"));
        }
    } else {
        emit(o, 1, "let n4 = params.n / 4u;");
        emit(o, 1, "var bp = min(j0 / 4u, n4 - 1u);");
        for v in 1..vecs {
            emit(o, 1, &format!("var bp_{v} = min(j0 / 4u + {v}u, n4 - 1u);"));
        }
    }
    for v in 0..vecs {
        for r in 0..rows {
            emit(o, 1, &format!("var acc{r}{} = vec4<f32>();", block(v)));
        }
    }
    match (form, shared) {
        (Form::AtB, true) => {
            emit(
                o,
                1,
                &format!("let kfull = params.k - params.k % {lanes}u;"),
            );
            shared_chunks_at_b(o, rows, lanes, b_load);
        }
        (Form::AtB, false) => emit(o, 1, "let kfull = 0u;"),
        (_, true) => {
            emit(o, 1, &format!("let kfull = k4 - k4 % {lanes}u;"));
            shared_chunks(o, form, rows, lanes, b_load);
        }
        (_, false) => emit(o, 1, "let kfull = 0u;"),
    }
    if form == Form::AtB {
        emit(o, 1, "for (var p = kfull; p < params.k; p++) {");
        emit(o, 2, "let row = p * m4;");
        for v in 0..vecs {
            load_b_row(o, 2, &format!("b{}", block(v)), b_load, v, vecs);
        }
        for g in 0..rows / 4 {
            emit(o, 2, &format!("let a{g} = a_v4[row + ag{g}];"));
        }
        for v in 0..vecs {
            fma_rows(o, 2, rows, row_of_group, &format!("b{}", block(v)), v);
        }
    } else {
        emit(o, 1, "for (var q = kfull; q < k4; q++) {");
        for r in 0..rows {
            emit(o, 2, &format!("let a{r} = a_v4[ar{r} + q];"));
        }
        k4_block(o, 2, form, rows, "q", vecs, b_load);
    }
    emit(o, 1, "}");
    for r in 0..rows {
        for v in 0..vecs {
            for (c, comp) in COMPONENTS.iter().enumerate() {
                emit(
                    o,
                    1,
                    &format!(
                        "store_c(i0 + {r}u, j0 + {}u, acc{r}{}.{comp});",
                        4 * v + c as u32,
                        block(v)
                    ),
                );
            }
        }
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_told_apart_by_strides_and_sizes() {
        // [m, n, k, sa_i, sa_p, sb_p, sb_j] and the kernel's form and B loads.
        let cases = [
            // Y = X W, X [8, 12], W [12, 16].
            ([8, 16, 12, 12, 1, 16, 1], Some((Form::AB, BLoad::Vec4))),
            // dW = X^T dZ, X [6, 8], dZ [6, 16]: M = 8, K = 6.
            ([8, 16, 6, 1, 8, 16, 1], Some((Form::AtB, BLoad::Vec4))),
            // dX = dZ W^T, dZ [5, 12], W [10, 12]: N = 10 need not be a multiple of 4.
            ([5, 10, 12, 12, 1, 1, 12], Some((Form::ABt, BLoad::Vec4))),
            // Ten outputs: W [12, 10] and dZ [6, 10] are loaded as scalars.
            ([8, 10, 12, 12, 1, 10, 1], Some((Form::AB, BLoad::Scalar))),
            ([8, 10, 6, 1, 8, 10, 1], Some((Form::AtB, BLoad::Scalar))),
            // K = 10 is not a multiple of 4: no vec4 rows of A.
            ([8, 16, 10, 10, 1, 16, 1], None),
            // The constant-1 operand of a fused bias gradient (strides 0).
            ([1, 16, 6, 0, 0, 16, 1], None),
        ];
        for (params, want) in cases {
            assert_eq!(form_of(params), want, "{params:?}");
        }
    }

    #[test]
    fn source_has_one_accumulator_per_row_and_a_tail() {
        for form in [Form::AB, Form::AtB, Form::ABt] {
            let s = kernel_source(form, 8, 8, BLoad::Vec4);
            assert!(s.contains("var acc7 = vec4<f32>();") && !s.contains("acc8"));
            assert!(s.contains("subgroupBroadcast(av0, 7u)"));
            assert!(s.contains("kfull"));
        }
    }

    #[test]
    fn scalar_b_loads_clamp_each_column_and_step_one_row_offset() {
        for form in [Form::AB, Form::AtB] {
            let s = kernel_source(form, 8, 8, BLoad::Scalar);
            assert!(s.contains("var<storage, read> b_s: array<f32>;") && !s.contains("b_v4"));
            assert!(s.contains("let bc3 = min(j0 + 3u, params.n - 1u);"));
            assert!(
                s.contains("vec4<f32>(b_s[bp + bc0], b_s[bp + bc1], b_s[bp + bc2], b_s[bp + bc3])")
            );
            assert!(s.contains("bp += params.n;") && !s.contains("n4"));
            // Two column blocks share the row offset, stepped once per row after the second block's load.
            let p = private_source(form, 8, 8, 2, BLoad::Scalar);
            assert!(p.contains("b_s[bp + bc7]") && !p.contains("bp_1"));
            let loads = p.matches("b_s[bp + bc0]").count();
            assert_eq!(p.matches("bp += params.n;").count(), loads);
        }
    }

    #[test]
    fn private_source_has_accumulators_and_stores_per_column_block() {
        for form in [Form::AB, Form::AtB, Form::ABt] {
            let s = private_source(form, 8, 8, 2, BLoad::Vec4);
            assert!(s.contains("var acc7_1 = vec4<f32>();") && !s.contains("acc7_2"));
            assert!(s.contains("let j0 = (wid.x * 8u + lane) * 8u;"));
            assert!(s.contains("store_c(i0 + 7u, j0 + 7u, acc7_1.w);"));
            assert!(!s.contains("subgroupBroadcast"));
            // One block is the plain layout, names and all.
            assert!(!private_source(form, 8, 8, 1, BLoad::Vec4).contains("_1"));
        }
    }

    #[test]
    fn each_accumulator_takes_four_k_steps_in_a_row() {
        let run = |a: [&str; 4]| {
            (0..4)
                .map(|e| format!("acc0 = fma(vec4<f32>({}), b{e}, acc0);", a[e]))
                .collect::<Vec<_>>()
                .join("\n            ")
        };
        for form in [Form::AB, Form::ABt] {
            let s = kernel_source(form, 8, 8, BLoad::Vec4);
            assert!(
                s.contains(&run(["a0.x", "a0.y", "a0.z", "a0.w"])),
                "{form:?}"
            );
        }
        // AtB: four lanes' broadcasts, then row 4 g + c takes component c of each.
        let s = kernel_source(Form::AtB, 8, 8, BLoad::Vec4);
        assert!(s.contains("let a0_3 = subgroupBroadcast(av0, 7u);"));
        assert!(s.contains(&run(["a0_0.x", "a0_1.x", "a0_2.x", "a0_3.x"])));
    }
}
