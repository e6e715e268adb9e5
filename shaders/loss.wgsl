// Losses fused with their gradients, f32. Appended by the host to storage.wgsl and activation_lib.wgsl
// (src/shaders.rs) for exp_c, log1p_unit and nan_f32; the host passes ACT = 0 (unused here).
//
// Each loss kernel writes the gradient of the mean loss and one partial sum per thread; `reduce_mean`, one
// workgroup of WG threads (256, or 128 where the device's workgroups hold fewer), adds the partial sums in a fixed
// order and scales them, so the loss stays on the GPU. For at most WG partial sums (and cross-entropy rows
// narrower than the wide-row kernel's), the `*_small` entry points do both in one dispatch with the same
// arithmetic:
//
//   softmax_cross_entropy  one thread per row r of logits [rows, cols] (one workgroup per row for wide rows:
//                          softmax_cross_entropy_rows), class t = labels[r]:
//                          loss_r = log sum_j e^(x_j) - x_t, computed as (m - x_t) + log1p(sum_{j != a} e^(x_j - m))
//                          with m = x_a the row's maximum (no overflow; exact near 0 for confident rows);
//                          grad_rj = (softmax_rj - [j == t]) / rows. A label t >= cols writes NaN into the row's
//                          loss and gradient, so the mean loss is NaN; so does a NaN logit. One +inf logit gives
//                          the limit as it grows: softmax one-hot at it, loss 0 if it is the label's and +inf
//                          otherwise, grad_rj = ([j == a] - [j == t]) / rows; two or more have no limit (NaN, as
//                          PyTorch gives for any +inf logit, whose e^(inf - inf) is NaN).
//   mse                    grid-stride over n elements: term_i = (y_i - t_i)^2, grad_i = 2 (y_i - t_i) / n
//   bce_with_logits        grid-stride: term_i = max(x, 0) - x t + log1p(e^-|x|) (bce_linear: the limits at
//                          +-inf), grad_i = (sigmoid(x) - t) / n
//                          (NaN for a NaN logit)
//
// `scale` is 1/rows or 1/n, rounded to f32 on the host.
//
// Past the storage-binding limit the host runs the loss kernels in chunks (src/ops/loss.rs): whole rows of
// cross-entropy, or elements of mse and bce, one dispatch each, with pred, grad and target_values bound from the
// chunk's first byte rounded down to the storage offset alignment (`base` elements before the chunk's first),
// the class indices and the partial sums bound whole, each chunk writing its partial sums from `first`; then one
// reduce_mean over all of them, scaled by the whole tensor's 1/n. Within one binding `first` and `base` are 0 and
// every index is the one it always was.

override WG: u32 = 64u;

struct LossParams {
    /// Elements (mse, bce) or rows (cross-entropy).
    n: u32,
    /// Classes (cross-entropy).
    cols: u32,
    /// Threads that write a partial sum, and so partial sums to reduce.
    threads: u32,
    /// 1 / n or 1 / rows of the whole tensor (also in a chunk).
    scale: f32,
    /// This dispatch's first partial sum in `partial`, and for cross-entropy its first row's class index in
    /// `labels` (0 within one binding).
    first: u32,
    /// Elements of pred, grad and target_values bound before this dispatch's first one (0 within one binding).
    base: u32,
}

@group(0) @binding(0) var<storage, read> pred: array<f32>;
@group(0) @binding(1) var<storage, read_write> grad: array<f32>;
@group(0) @binding(2) var<storage, read> target_values: array<f32>;
@group(0) @binding(3) var<uniform> params: LossParams;
@group(0) @binding(4) var<storage, read> labels: array<u32>;
@group(0) @binding(5) var<storage, read_write> partial: array<f32>;
@group(0) @binding(6) var<storage, read_write> loss_out: array<f32>;

fn thread_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

/// log(1 + u) for u >= 0: the series of the activation library on [0, 1], `log` above (no cancellation there).
fn log1p_pos(u: f32) -> f32 {
    if (u <= 1.0) {
        return log1p_unit(u);
    }
    return log(1.0 + u);
}

/// exp_c that keeps a NaN argument: exp_c clamps first, and WGSL leaves clamp(NaN) to the driver (it may give
/// -120, so e^NaN would read as 0). A NaN logit, and a row with +inf logits, are dealt with before
/// (cross_entropy_row's scan); what reaches here is x_j - m that is NaN from -inf - -inf in a row of -inf.
fn exp_n(x: f32) -> f32 {
    return select(exp_c(x), x, is_nan(x));
}

/// Row `row` of the dispatch's softmax cross-entropy: writes the row's gradient and returns its loss term.
fn cross_entropy_row(row: u32) -> f32 {
    let cols = params.cols;
    let base = params.base + row * cols;
    let t = labels[params.first + row];
    var a = 0u;
    var m = pred[base];
    // NaN and +inf are tested on the stored logits' bits: comparisons and arithmetic on NaN are not reliable
    // across drivers (llvmpipe GL took 3 > NaN for true), nor are comparisons with infinities under some
    // drivers' fast math, which could leave a +inf out of the maximum.
    let pos_inf = 0x7f800000u;
    var nan_seen = is_nan(m);
    var infs = u32(bitcast<u32>(m) == pos_inf);
    var inf_at = 0u;
    for (var j = 1u; j < cols; j++) {
        let v = pred[base + j];
        nan_seen = nan_seen || is_nan(v);
        let is_inf = bitcast<u32>(v) == pos_inf;
        inf_at = select(inf_at, j, is_inf && infs == 0u);
        infs += u32(is_inf);
        if (v > m) {
            m = v;
            a = j;
        }
    }
    if (infs == 1u) {
        a = inf_at;
    }
    if (t >= cols || nan_seen || infs > 1u) {
        for (var j = 0u; j < cols; j++) {
            grad[base + j] = nan_f32();
        }
        return nan_f32();
    }
    if (infs == 1u) {
        for (var j = 0u; j < cols; j++) {
            grad[base + j] = select(0.0, params.scale, j == a) - select(0.0, params.scale, j == t);
        }
        return select(bitcast<f32>(pos_inf), 0.0, t == a);
    }
    var rest = 0.0;
    for (var j = 0u; j < cols; j++) {
        if (j != a) {
            rest += exp_n(pred[base + j] - m);
        }
    }
    // softmax_j = e_j / s with s = 1 + rest; the gradient carries the 1/rows of the mean.
    let inv = params.scale / (1.0 + rest);
    for (var j = 0u; j < cols; j++) {
        let p = exp_n(pred[base + j] - m) * inv;
        grad[base + j] = select(p, p - params.scale, j == t);
    }
    return (m - pred[base + t]) + log1p_pos(rest);
}

@compute @workgroup_size(WG)
fn softmax_cross_entropy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = thread_index(wid, nwg, lid);
    if (row < params.n) {
        partial[params.first + row] = cross_entropy_row(row);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Cross-entropy over wide rows: one workgroup of WG threads per row (`softmax_cross_entropy_rows`), thread li
// taking the columns li, li + WG, ... of each pass, so that a row of many classes is not one thread's walk. The
// row's maximum (the first on ties, as the one-thread scan finds it), its NaN and +inf counts (from the bits), and
// the sum of e^(x_j - m) are combined in workgroup memory in a fixed order; the values are those of
// `cross_entropy_row`, the sum in another order.

/// Per-thread state of the wide row's scan, then the tree's slots: maximum, its column (`NO_COLUMN` for a thread
/// that saw none), +inf count, first +inf column, NaN seen. (The row's sum goes through `tree_sum`.)
var<workgroup> row_max: array<f32, 256>;
var<workgroup> row_arg: array<u32, 256>;
var<workgroup> row_infs: array<u32, 256>;
var<workgroup> row_inf_at: array<u32, 256>;
var<workgroup> row_nan: array<u32, 256>;

const NO_COLUMN: u32 = 0xffffffffu;

/// Adds slot `o` into slot `li` of the scan's tree: the larger maximum (the lower column on ties; a slot with no
/// column loses), the +inf counts, the first +inf column, NaN seen in either.
fn combine_scan(li: u32, o: u32) {
    let take = row_arg[o] != NO_COLUMN
        && (row_arg[li] == NO_COLUMN || row_max[o] > row_max[li]
            || (row_max[o] == row_max[li] && row_arg[o] < row_arg[li]));
    if (take) {
        row_max[li] = row_max[o];
        row_arg[li] = row_arg[o];
    }
    row_infs[li] += row_infs[o];
    row_inf_at[li] = min(row_inf_at[li], row_inf_at[o]);
    row_nan[li] = row_nan[li] | row_nan[o];
}

@compute @workgroup_size(WG)
fn softmax_cross_entropy_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                              @builtin(local_invocation_index) li: u32) {
    let row = wid.x + wid.y * nwg.x;
    // Every thread of a workgroup takes part in every barrier: a workgroup past the last row does its loops
    // over no columns.
    let cols = select(0u, params.cols, row < params.n);
    let base = params.base + row * params.cols;
    let pos_inf = 0x7f800000u;
    var m = 0.0;
    var a = NO_COLUMN;
    var infs = 0u;
    var inf_at = NO_COLUMN;
    var nan_seen = 0u;
    for (var j = li; j < cols; j += WG) {
        let v = pred[base + j];
        nan_seen = nan_seen | u32(is_nan(v));
        let is_inf = bitcast<u32>(v) == pos_inf;
        inf_at = select(inf_at, j, is_inf && infs == 0u);
        infs += u32(is_inf);
        if (a == NO_COLUMN || v > m) {
            m = v;
            a = j;
        }
    }
    row_max[li] = m;
    row_arg[li] = a;
    row_infs[li] = infs;
    row_inf_at[li] = inf_at;
    row_nan[li] = nan_seen;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (li < s) {
            combine_scan(li, li + s);
        }
        workgroupBarrier();
    }
    m = row_max[0];
    a = row_arg[0];
    infs = row_infs[0];
    if (infs == 1u) {
        a = row_inf_at[0];
        m = bitcast<f32>(pos_inf);
    }
    let t = select(0u, labels[params.first + min(row, params.n - 1u)], row < params.n);
    let invalid = t >= params.cols || row_nan[0] != 0u || infs > 1u;
    var rest = 0.0;
    if (!invalid && infs == 0u) {
        for (var j = li; j < cols; j += WG) {
            if (j != a) {
                rest += exp_n(pred[base + j] - m);
            }
        }
    }
    rest = tree_sum(li, rest);
    let scale = params.scale;
    let inv = scale / (1.0 + rest);
    for (var j = li; j < cols; j += WG) {
        var g: f32;
        if (invalid) {
            g = nan_f32();
        } else if (infs == 1u) {
            g = select(0.0, scale, j == a) - select(0.0, scale, j == t);
        } else {
            let p = exp_n(pred[base + j] - m) * inv;
            g = select(p, p - scale, j == t);
        }
        grad[base + j] = g;
    }
    if (li == 0u && row < params.n) {
        var term: f32;
        if (invalid) {
            term = nan_f32();
        } else if (infs == 1u) {
            term = select(bitcast<f32>(pos_inf), 0.0, t == a);
        } else {
            term = (m - pred[base + t]) + log1p_pos(rest);
        }
        partial[params.first + row] = term;
    }
}

/// v / 2 exactly for a normal |v| >= 2^-125, on the bits, so that no compiler can fold it into a neighbouring
/// product. MSE's gradient 2 (p - y) / n is finite where p - y overflows (p = 3e38, y = -3e38, n = 5: 2.4e38);
/// there both are normal and at least 1e31 in magnitude, and (4 / n) (p/2 - y/2) gives it. As
/// (2 / n) p - (2 / n) y it would be factored back into the overflowing form.
fn halved(v: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(v) - 0x00800000u);
}

/// Thread `t`'s elements of MSE in this dispatch (t, t + threads, ...): writes their gradients and returns their
/// sum of squares.
fn mse_slice(t: u32) -> f32 {
    let two_scale = 2.0 * params.scale;
    let b = params.base;
    var acc = 0.0;
    for (var i = t; i < params.n; i += params.threads) {
        let p = pred[b + i];
        let y = target_values[b + i];
        let d = p - y;
        grad[b + i] = select(two_scale * d, 2.0 * two_scale * (halved(p) - halved(y)),
                             is_inf(d) && !is_inf(p) && !is_inf(y));
        acc = fma(d, d, acc);
    }
    return acc;
}

@compute @workgroup_size(WG)
fn mse(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = thread_index(wid, nwg, lid);
    if (t < params.threads) {
        partial[params.first + t] = mse_slice(t);
    }
}

/// max(x, 0) - x t, the linear part of BCE's term, as x (1 - t) for x >= 0 and -x t below: a zero coefficient
/// gives 0 at x = +-inf (the limit; max(inf, 0) - inf would be NaN for t = 1). A NaN x or t gives NaN, tested
/// on the bits: `c == 0.0` is not reliably false for a NaN c on every driver.
fn bce_linear(x: f32, t: f32) -> f32 {
    let c = select(-t, 1.0 - t, x >= 0.0);
    return select(select(x * c, 0.0, c == 0.0), nan_f32(), is_nan(x) || is_nan(t));
}

/// Thread `t`'s elements of BCE with logits in this dispatch: writes their gradients and returns the sum of their
/// terms.
fn bce_slice(t: u32) -> f32 {
    let b = params.base;
    var acc = 0.0;
    for (var i = t; i < params.n; i += params.threads) {
        let x = pred[b + i];
        let y = target_values[b + i];
        let e = exp_c(-abs(x));
        let r = 1.0 / (1.0 + e);
        let s = select(select(e * r, r, x >= 0.0), x, is_nan(x));
        grad[b + i] = (s - y) * params.scale;
        acc += bce_linear(x, y) + log1p_unit(e);
    }
    return acc;
}

@compute @workgroup_size(WG)
fn bce_with_logits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = thread_index(wid, nwg, lid);
    if (t < params.threads) {
        partial[params.first + t] = bce_slice(t);
    }
}

/// The tree of the reduction's single workgroup, whose `WG` threads (a power of two, at most 256: the host's
/// `Gpu::reduction_workgroup_size`) fill the first `WG` slots.
var<workgroup> sums: array<f32, 256>;

/// loss_out[0] = scale * sum of the `threads` partial sums: each thread adds a strided slice, then a tree in
/// workgroup memory. The order is fixed, so the result is the same bits every run.
@compute @workgroup_size(WG)
fn reduce_mean(@builtin(local_invocation_index) li: u32) {
    var acc = 0.0;
    for (var i = li; i < params.threads; i += WG) {
        acc += partial[i];
    }
    store_mean(li, acc);
}

/// The sum of the workgroup's `v` values by a fixed pairwise tree in `sums` (the same bits every run), returned
/// to every thread. Every thread of the workgroup calls it, once per dispatch (a second call's writes would race
/// with the first's reads of slot 0).
fn tree_sum(li: u32, v: f32) -> f32 {
    sums[li] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (li < s) {
            sums[li] += sums[li + s];
        }
        workgroupBarrier();
    }
    return sums[0];
}

/// The tree of `reduce_mean` over the workgroup's `acc` values, scaled into loss_out[0].
fn store_mean(li: u32, acc: f32) {
    let total = tree_sum(li, acc);
    if (li == 0u) {
        loss_out[0] = total * params.scale;
    }
}

// The `*_small` entry points: the loss and its mean in one dispatch of one workgroup, for at most WG partial sums
// (threads <= WG). Thread li computes the term the loss kernel would store in partial[li] and adds it to 0.0 as
// `reduce_mean` does, then the same tree: the same bits as the two dispatches. (Three entry points, not one with
// a switch on the loss: each binds only its own targets, class indices or values.)

@compute @workgroup_size(WG)
fn softmax_cross_entropy_small(@builtin(local_invocation_index) li: u32) {
    var acc = 0.0;
    if (li < params.threads) {
        acc += cross_entropy_row(li);
    }
    store_mean(li, acc);
}

@compute @workgroup_size(WG)
fn mse_small(@builtin(local_invocation_index) li: u32) {
    var acc = 0.0;
    if (li < params.threads) {
        acc += mse_slice(li);
    }
    store_mean(li, acc);
}

@compute @workgroup_size(WG)
fn bce_with_logits_small(@builtin(local_invocation_index) li: u32) {
    var acc = 0.0;
    if (li < params.threads) {
        acc += bce_slice(li);
    }
    store_mean(li, acc);
}
