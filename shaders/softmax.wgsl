// Softmax and log-softmax over the last dimension of a row-major [rows, cols] tensor, forward and backward.
// Appended by the host to storage.wgsl, activation_lib.wgsl (exp_c, log1p_unit, is_nan, nan_f32) and
// activation_io_packed.wgsl (operands 0: x or y, 1: out, 2: dy, each f32, f16 or bf16); the host passes ACT = 0.
//
// Each direction is two passes, so that every element is stored by the one thread that owns its 8-element unit:
// a 16-bit row of odd width shares its last u32 with the next row, and two threads writing single halves of one
// word would race.
//
//   row_stats, row_stats_wide     per row r of x: m = max_j x_j (a = the first column holding it) and
//                                 rest = sum_{j != a} e^(x_j - m), stored as stats[2r] = m and
//                                 stats[2r + 1] = 1 / (1 + rest) (softmax) or log1p(rest) (log-softmax)
//   forward                       y_j = e^(x_j - m) / (1 + rest)   or   y_j = (x_j - m) - log1p(rest)
//                                 (softmax multiplies by the stored reciprocal: on lavapipe the 4096 x 4096
//                                 forward took 162 ms with a division per element, 101 without)
//   grad_stats, grad_stats_wide   per row r: D = sum_j y_j dy_j (softmax) or S = sum_j dy_j (log-softmax),
//                                 stored as stats[r]
//   backward                      dx_j = y_j (dy_j - D)            or   dx_j = dy_j - e^(y_j) S
//
// The thread-per-row kernels walk a row by whole 8-element units (load_x, load_dy), masking the elements of the
// rows beside it: one 16- or 32-byte load per 8 elements rather than one per element, where neighbouring
// threads' rows lie far apart. The elementwise kernels read the stats of the (at most two) rows a workgroup's
// block spans once, as uniform loads, and pick between them per element (`block_rows`); a block over more rows
// (rows narrower than a block) reads each element's row stats by its own index.
//
// The `_wide` kernels take one workgroup per row (thread li walking columns li, li + WG, ...) and combine in
// workgroup memory by a fixed tree; the others one thread per row. Special rows, found on the bits (comparisons
// with NaN and infinities are not reliable under every driver's fast math): a NaN, or two or more +inf, make the
// row NaN (m = NaN); exactly one +inf gives the limit as it grows (m = +inf): softmax one-hot at it, log-softmax
// 0 there and -inf elsewhere. A row of -inf only is NaN (e^(-inf - -inf)), as in PyTorch.
//
// Past the storage-binding limit the host runs the stats kernels on chunks of whole rows bound from their first
// row, and a chunk past one dispatch grid in several dispatches (`first_row` gives the stats' index, `lead_rows`
// the rows bound before the dispatch's first); the elementwise kernels run on chunks of units (`first_unit`).
// The stats are bound whole.

override WG: u32;
override PER_THREAD: u32 = 1u;
/// 0: softmax, 1: log-softmax.
override KIND: u32 = 0u;

const KIND_LOG: u32 = 1u;
const POS_INF: u32 = 0x7f800000u;

struct SoftmaxParams {
    /// Elementwise kernels: 8-element units in this dispatch.
    units: u32,
    /// Elementwise kernels: this dispatch's first unit in the whole tensor.
    first_unit: u32,
    /// Row length.
    cols: u32,
    /// Stats kernels: rows in this dispatch; elementwise kernels: rows of the whole tensor.
    rows: u32,
    /// Stats kernels: this dispatch's first row in the whole tensor.
    first_row: u32,
    /// Stats kernels: rows bound before this dispatch's first (a chunk's rows past one dispatch grid).
    lead_rows: u32,
}

@group(0) @binding(3) var<uniform> params: SoftmaxParams;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;

/// Element `e` of binding 0 (x or y), in X_T.
fn x_elem(e: u32) -> f32 {
    if (X_T == T_F32) {
        return bitcast<f32>(x_in[e >> 2u][e & 3u]);
    }
    let w = x_in[e >> 3u][(e >> 1u) & 3u];
    return half_to_f32(X_T, (w >> ((e & 1u) * 16u)) & 0xffffu);
}

/// Element `e` of binding 2 (dy), in DY_T.
fn dy_elem(e: u32) -> f32 {
    if (DY_T == T_F32) {
        return bitcast<f32>(dy_in[e >> 2u][e & 3u]);
    }
    let w = dy_in[e >> 3u][(e >> 1u) & 3u];
    return half_to_f32(DY_T, (w >> ((e & 1u) * 16u)) & 0xffffu);
}

fn pos_inf() -> f32 {
    return bitcast<f32>(POS_INF);
}

/// e^v that keeps a NaN argument (exp_c clamps first, and WGSL leaves clamp(NaN) to the driver).
fn exp_n(v: f32) -> f32 {
    return select(exp_c(v), v, is_nan(v));
}

/// log(1 + u) for u >= 0: the activation library's series on [0, 1], `log` above (no cancellation there).
fn log1p_pos(u: f32) -> f32 {
    if (u <= 1.0) {
        return log1p_unit(u);
    }
    return log(1.0 + u);
}

/// e^v over the whole line for log-softmax's backward: NaN kept, subnormal results kept (exp_c), and above 88
/// as e^(v - 88) e^88, which overflows to +inf past f32's range as e^v does (exp_c stops at e^88).
fn exp_full(v: f32) -> f32 {
    let big = v > 88.0 || bitcast<u32>(v) == POS_INF;
    let e = exp_c(select(v, min(v - 88.0, 1.0), big));
    return select(select(e, e * 1.6516363e38, big), v, is_nan(v));
}

/// The two stats of a row: (m, 1 / (1 + rest)) or (m, log1p(rest)); NaN for a row with a NaN or two or more
/// +inf, (+inf, 0) for exactly one.
fn row_stat_pair(m: f32, rest: f32, nan_seen: bool, infs: u32) -> vec2<f32> {
    if (nan_seen || infs > 1u) {
        return vec2<f32>(nan_f32(), nan_f32());
    }
    if (infs == 1u) {
        return vec2<f32>(pos_inf(), 0.0);
    }
    return vec2<f32>(m, select(1.0 / (1.0 + rest), log1p_pos(rest), KIND == KIND_LOG));
}

fn row_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

/// One thread per row of x.
@compute @workgroup_size(WG)
fn row_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = row_index(wid, nwg, lid);
    if (r >= params.rows) {
        return;
    }
    let base = (params.lead_rows + r) * params.cols;
    let end = base + params.cols;
    let last = (end + 7u) / 8u;
    // a: the element index of the first maximum.
    var m = x_elem(base);
    var a = base;
    var nan_seen = false;
    var infs = 0u;
    for (var u = base / 8u; u < last; u++) {
        let o = load_x(u);
        for (var k = 0u; k < 8u; k++) {
            let e = 8u * u + k;
            let v = oct_get(o, k);
            let inside = e >= base && e < end;
            nan_seen = nan_seen || (inside && is_nan(v));
            infs += u32(inside && bitcast<u32>(v) == POS_INF);
            if (inside && v > m) {
                m = v;
                a = e;
            }
        }
    }
    var rest = 0.0;
    if (!nan_seen && infs == 0u) {
        for (var u = base / 8u; u < last; u++) {
            let o = load_x(u);
            for (var k = 0u; k < 8u; k++) {
                let e = 8u * u + k;
                let t = exp_n(oct_get(o, k) - m);
                rest += select(0.0, t, e >= base && e < end && e != a);
            }
        }
    }
    let s = row_stat_pair(m, rest, nan_seen, infs);
    let o = 2u * (params.first_row + r);
    stats[o] = s.x;
    stats[o + 1u] = s.y;
}

/// Per-thread state of the wide row's scan, then the tree's slots: maximum, its column (`NO_COLUMN` for a thread
/// that saw none), +inf count, NaN seen. The sums go through `sums`.
var<workgroup> scan_max: array<f32, 256>;
var<workgroup> scan_arg: array<u32, 256>;
var<workgroup> scan_infs: array<u32, 256>;
var<workgroup> scan_nan: array<u32, 256>;
var<workgroup> sums: array<f32, 256>;

const NO_COLUMN: u32 = 0xffffffffu;

/// Adds slot `o` into slot `li`: the larger maximum (the lower column on ties; a slot with no column loses), the
/// +inf counts, NaN seen in either.
fn combine_scan(li: u32, o: u32) {
    let take = scan_arg[o] != NO_COLUMN
        && (scan_arg[li] == NO_COLUMN || scan_max[o] > scan_max[li]
            || (scan_max[o] == scan_max[li] && scan_arg[o] < scan_arg[li]));
    if (take) {
        scan_max[li] = scan_max[o];
        scan_arg[li] = scan_arg[o];
    }
    scan_infs[li] += scan_infs[o];
    scan_nan[li] = scan_nan[li] | scan_nan[o];
}

/// The sum of the workgroup's `v` by a fixed pairwise tree (the same bits every run), returned to every thread.
/// Every thread calls it, once per dispatch.
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

/// One workgroup per row of x.
@compute @workgroup_size(WG)
fn row_stats_wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    let r = wid.x + wid.y * nwg.x;
    // Every thread of a workgroup takes part in every barrier: one past the last row walks no columns.
    let cols = select(0u, params.cols, r < params.rows);
    let base = (params.lead_rows + r) * params.cols;
    var m = 0.0;
    var a = NO_COLUMN;
    var infs = 0u;
    var nan_seen = 0u;
    for (var j = li; j < cols; j += WG) {
        let v = x_elem(base + j);
        nan_seen = nan_seen | u32(is_nan(v));
        infs += u32(bitcast<u32>(v) == POS_INF);
        if (a == NO_COLUMN || v > m) {
            m = v;
            a = j;
        }
    }
    scan_max[li] = m;
    scan_arg[li] = a;
    scan_infs[li] = infs;
    scan_nan[li] = nan_seen;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (li < s) {
            combine_scan(li, li + s);
        }
        workgroupBarrier();
    }
    m = scan_max[0];
    a = scan_arg[0];
    infs = scan_infs[0];
    let special = scan_nan[0] != 0u || infs > 0u;
    var rest = 0.0;
    if (!special) {
        for (var j = li; j < cols; j += WG) {
            if (j != a) {
                rest += exp_n(x_elem(base + j) - m);
            }
        }
    }
    rest = tree_sum(li, rest);
    if (li == 0u && r < params.rows) {
        let s = row_stat_pair(m, rest, scan_nan[0] != 0u, infs);
        let o = 2u * (params.first_row + r);
        stats[o] = s.x;
        stats[o + 1u] = s.y;
    }
}

/// The term of row sums of the backward: y dy (softmax) or dy (log-softmax).
fn grad_term(e: u32) -> f32 {
    if (KIND == KIND_LOG) {
        return dy_elem(e);
    }
    return x_elem(e) * dy_elem(e);
}

/// One thread per row of y and dy.
@compute @workgroup_size(WG)
fn grad_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = row_index(wid, nwg, lid);
    if (r >= params.rows) {
        return;
    }
    let base = (params.lead_rows + r) * params.cols;
    let end = base + params.cols;
    var acc = 0.0;
    for (var u = base / 8u; u < (end + 7u) / 8u; u++) {
        let dy = load_dy(u);
        var term = dy;
        if (KIND != KIND_LOG) {
            let y = load_x(u);
            term = Oct(y.a * dy.a, y.b * dy.b);
        }
        for (var k = 0u; k < 8u; k++) {
            let e = 8u * u + k;
            acc += select(0.0, oct_get(term, k), e >= base && e < end);
        }
    }
    stats[params.first_row + r] = acc;
}

/// One workgroup per row of y and dy.
@compute @workgroup_size(WG)
fn grad_stats_wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let r = wid.x + wid.y * nwg.x;
    let cols = select(0u, params.cols, r < params.rows);
    let base = (params.lead_rows + r) * params.cols;
    var acc = 0.0;
    for (var j = li; j < cols; j += WG) {
        acc += grad_term(base + j);
    }
    acc = tree_sum(li, acc);
    if (li == 0u && r < params.rows) {
        stats[params.first_row + r] = acc;
    }
}

/// y_j from x_j and its row's stats (m, second).
/// Without a branch: a row's special case (one +inf, m = +inf) is selected, not branched to.
fn forward_value(x: f32, m: f32, second: f32) -> f32 {
    let at = bitcast<u32>(x) == POS_INF;
    let d = x - m;
    var y: f32;
    var limit: f32;
    if (KIND == KIND_LOG) {
        y = d - second;
        limit = select(-pos_inf(), 0.0, at);
    } else {
        y = exp_n(d) * second;
        limit = select(0.0, 1.0, at);
    }
    return select(y, limit, bitcast<u32>(m) == POS_INF);
}

/// dx_j from y_j, dy_j and its row's sum.
fn backward_value(y: f32, dy: f32, sum: f32) -> f32 {
    if (KIND == KIND_LOG) {
        return dy - exp_full(y) * sum;
    }
    return y * (dy - sum);
}

/// The first element of unit `u` of this dispatch, in the whole tensor, and the number of elements.
fn unit_start(u: u32) -> u32 {
    return (params.first_unit + u) * 8u;
}

fn unit_of(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG * PER_THREAD + lid.x;
}

fn oct_get(v: Oct, k: u32) -> f32 {
    if (k < 4u) {
        return v.a[k];
    }
    return v.b[k - 4u];
}

/// The rows a workgroup's block of units spans, when they are at most two: `lo`, the first, and `bound`, the
/// first element of the next (`two` false where the block spans more, or would read a row past the last).
/// Uniform across the workgroup, so the stats it reads for them are uniform loads: on lavapipe, reading each
/// unit's row stats by its own index (a gather across the SIMD lanes) took log-softmax's elementwise pass over
/// 4096 x 4096 f32 from about 22 to 55 ms.
struct BlockRows {
    lo: u32,
    bound: u32,
    two: bool,
}

fn block_rows(wid: vec3<u32>, nwg: vec3<u32>) -> BlockRows {
    let len = params.rows * params.cols;
    let first = params.first_unit + (wid.x + wid.y * nwg.x) * WG * PER_THREAD;
    let e_lo = first * 8u;
    let lo = e_lo / params.cols;
    let bound = (lo + 1u) * params.cols;
    // The block's last element, within the tensor (at least e_lo: a block past the end has no units to do).
    let e_hi = max(min(e_lo + WG * PER_THREAD * 8u, len), e_lo + 1u) - 1u;
    return BlockRows(lo, bound, e_hi < bound + params.cols && lo + 1u < params.rows);
}

/// The four elements from e (of a unit in a two-row block) take the second row's value where they lie past
/// `bound`, and 0 past the tensor's end.
fn in_second_row(e: u32, b: BlockRows) -> vec4<bool> {
    return vec4<u32>(e) + vec4<u32>(0u, 1u, 2u, 3u) >= vec4<u32>(b.bound);
}

fn before_end(e: u32) -> vec4<bool> {
    return vec4<u32>(e) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(params.rows * params.cols);
}

fn forward4(x: vec4<f32>, e: u32, b: BlockRows, lo: vec2<f32>, hi: vec2<f32>) -> vec4<f32> {
    let second = in_second_row(e, b);
    let m = select(vec4<f32>(lo.x), vec4<f32>(hi.x), second);
    let s = select(vec4<f32>(lo.y), vec4<f32>(hi.y), second);
    let y = vec4<f32>(forward_value(x.x, m.x, s.x), forward_value(x.y, m.y, s.y),
                      forward_value(x.z, m.z, s.z), forward_value(x.w, m.w, s.w));
    return select(vec4<f32>(0.0), y, before_end(e));
}

fn backward4(y: vec4<f32>, dy: vec4<f32>, e: u32, b: BlockRows, lo: f32, hi: f32) -> vec4<f32> {
    let sum = select(vec4<f32>(lo), vec4<f32>(hi), in_second_row(e, b));
    let dx = vec4<f32>(backward_value(y.x, dy.x, sum.x), backward_value(y.y, dy.y, sum.y),
                       backward_value(y.z, dy.z, sum.z), backward_value(y.w, dy.w, sum.w));
    return select(vec4<f32>(0.0), dx, before_end(e));
}

/// The padding past the last row (the host pads buffers to whole units) is written as 0.
@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let len = params.rows * params.cols;
    let first = unit_of(wid, nwg, lid);
    let b = block_rows(wid, nwg);
    if (b.two) {
        let lo = vec2<f32>(stats[2u * b.lo], stats[2u * b.lo + 1u]);
        let hi = vec2<f32>(stats[2u * b.lo + 2u], stats[2u * b.lo + 3u]);
        for (var t = 0u; t < PER_THREAD; t++) {
            let u = first + t * WG;
            if (u >= params.units) {
                return;
            }
            let x = load_x(u);
            let e0 = unit_start(u);
            store_out(u, Oct(forward4(x.a, e0, b, lo, hi), forward4(x.b, e0 + 4u, b, lo, hi)));
        }
        return;
    }
    for (var t = 0u; t < PER_THREAD; t++) {
        let u = first + t * WG;
        if (u >= params.units) {
            return;
        }
        let x = load_x(u);
        let e0 = unit_start(u);
        var row = e0 / params.cols;
        var c = e0 - row * params.cols;
        var y: array<f32, 8>;
        for (var k = 0u; k < 8u; k++) {
            var v = 0.0;
            if (k < len - e0) {
                v = forward_value(oct_get(x, k), stats[2u * row], stats[2u * row + 1u]);
            }
            y[k] = v;
            c += 1u;
            if (c == params.cols) {
                c = 0u;
                row += 1u;
            }
        }
        store_out(u, Oct(vec4<f32>(y[0], y[1], y[2], y[3]), vec4<f32>(y[4], y[5], y[6], y[7])));
    }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let len = params.rows * params.cols;
    let first = unit_of(wid, nwg, lid);
    let b = block_rows(wid, nwg);
    if (b.two) {
        let lo = stats[b.lo];
        let hi = stats[b.lo + 1u];
        for (var t = 0u; t < PER_THREAD; t++) {
            let u = first + t * WG;
            if (u >= params.units) {
                return;
            }
            let y = load_x(u);
            let dy = load_dy(u);
            let e0 = unit_start(u);
            store_out(u, Oct(backward4(y.a, dy.a, e0, b, lo, hi),
                             backward4(y.b, dy.b, e0 + 4u, b, lo, hi)));
        }
        return;
    }
    for (var t = 0u; t < PER_THREAD; t++) {
        let u = first + t * WG;
        if (u >= params.units) {
            return;
        }
        let y = load_x(u);
        let dy = load_dy(u);
        let e0 = unit_start(u);
        var row = e0 / params.cols;
        var c = e0 - row * params.cols;
        var dx: array<f32, 8>;
        for (var k = 0u; k < 8u; k++) {
            var v = 0.0;
            if (k < len - e0) {
                v = backward_value(oct_get(y, k), oct_get(dy, k), stats[row]);
            }
            dx[k] = v;
            c += 1u;
            if (c == params.cols) {
                c = 0u;
                row += 1u;
            }
        }
        store_out(u, Oct(vec4<f32>(dx[0], dx[1], dx[2], dx[3]), vec4<f32>(dx[4], dx[5], dx[6], dx[7])));
    }
}
