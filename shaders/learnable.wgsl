// Activations with a learnable parameter p, read from a tensor (binding 4, type B_T) rather than compiled in:
// one value for the whole tensor (SCALAR_PARAM) or one per column (channel). Appended by the host after
// bias_activation.wgsl, whose parameter loading (load_bias, bias_oct), partial sums and reductions it reuses.
//
//   LEARN_PRELU  f = x if x > 0 else p x              df/dx = 1 or p          df/dp = 0 or x
//   LEARN_SWISH  f = x sigmoid(p x)                   df/dx = s + p x s(1-s)  df/dp = x^2 s(1-s)
//   LEARN_ELU    f = x if x > 0 else p (e^x - 1)      df/dx = 1 or p e^x      df/dp = 0 or e^x - 1
//
// Backward writes dx = dy df/dx and reduces dp = sum of dy df/dp on the GPU: per column, or over everything.

const LEARN_PRELU: u32 = 0u;
const LEARN_SWISH: u32 = 1u;
const LEARN_ELU: u32 = 2u;

override LEARN: u32 = LEARN_PRELU;
override SCALAR_PARAM: bool = true;

@group(0) @binding(8) var<storage, read_write> tmp: array<vec4<f32>>;

// Swish's argument p x is NaN for a NaN p (or an infinite p at x = 0); the sigmoid helpers clamp it, and a clamp
// may return either bound for NaN, so each Swish function tests it first and returns NaN.

fn learn_f(x: f32, p: f32) -> f32 {
    var y: f32;
    switch LEARN {
        // times_gate: a slope of 0 gives a zero of x's sign, and at x = -inf its limit -0, not 0 * -inf = NaN.
        case LEARN_PRELU: { y = select(times_gate(x, p), x, x > 0.0); }
        case LEARN_SWISH: {
            let v = swish_arg(p, x);
            y = select(swish_f(p, x), nan_f32(), is_nan(v));
        }
        default: { y = select(p * expm1_f(x), x, x > 0.0); }
    }
    return select(y, x, is_nan(x));
}

fn learn_dfdx(x: f32, p: f32) -> f32 {
    switch LEARN {
        case LEARN_PRELU: { return select(p, 1.0, x > 0.0); }
        case LEARN_SWISH: {
            let v = swish_arg(p, x);
            return select(swish_grad(v), nan_f32(), is_nan(v));
        }
        default: { return select(alpha_exp(p, x), 1.0, x > 0.0); }
    }
}

/// d/dp [x sigmoid(p x)] = x^2 sigmoid'(v), v = p x, as t^2 with t = x h r (this returns t), h = e^(-|v|/2), r = 1 / (1 + h^2)
/// (sigmoid'(v) = h^2 r^2): sigmoid'(v) itself is subnormal past |v| = 87 and 0 past 104 while x^2 sigmoid'(v)
/// can still be large (x = -1e30, p = 1.2e-28: 7.7e7). Past |v| = 160, h is formed as e^(64 ln 2 - |v|/2) and x
/// as x 2^-64 (exact for any |x| large enough to matter), so both stay in the normal range up to |v| = 263 (past
/// it h is subnormal, where the result is below 5e-38 anyway); r is 1 there. The result is 0 past |v| = 282,
/// where it rounds to 0 for every finite x (and x = +-inf, p != 0 has the limit 0).
fn swish_dfdp_root(x: f32, p: f32) -> f32 {
    let v = swish_arg(p, x);
    let a = 0.5 * abs(v);
    let tiny = a > 80.0;
    let h = exp(select(-a, 44.3614195558365 - min(a, 150.0), tiny));
    let r = select(1.0 / (1.0 + h * h), 1.0, tiny);
    let t = select(x, x * 5.421010862427522e-20, tiny) * h * r;
    return select(select(t, 0.0, a > 141.0), nan_f32(), is_nan(v));
}

/// df/dp of PReLU and ELU (Swish's is `swish_dfdp_root` squared, see `learn_dp1`).
fn learn_dfdp(x: f32, p: f32) -> f32 {
    switch LEARN {
        case LEARN_PRELU: { return select(x, 0.0, x > 0.0); }
        default: { return select(expm1_f(x), 0.0, x > 0.0); }
    }
}

/// dy * g, NaN when x or dy is NaN (the crate's policy).
fn learn_times(x: f32, dy: f32, g: f32) -> f32 {
    return select(dy * g, nan_f32(), is_nan(x) || is_nan(dy));
}

fn param_oct(e0: u32) -> Oct {
    if (SCALAR_PARAM) {
        let p = load_bias(0u);
        return Oct(vec4<f32>(p), vec4<f32>(p));
    }
    return bias_oct(e0);
}

fn learn_f4(x: vec4<f32>, p: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(learn_f(x.x, p.x), learn_f(x.y, p.y), learn_f(x.z, p.z), learn_f(x.w, p.w));
}

fn learn_dx4(x: vec4<f32>, p: vec4<f32>, dy: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(learn_times(x.x, dy.x, learn_dfdx(x.x, p.x)), learn_times(x.y, dy.y, learn_dfdx(x.y, p.y)),
                     learn_times(x.z, dy.z, learn_dfdx(x.z, p.z)), learn_times(x.w, dy.w, learn_dfdx(x.w, p.w)));
}

/// dy df/dp, 0 where df/dp is exactly 0 however large dy (PyTorch's PReLU: `x > 0 ? 0 : x dy`, so an infinite
/// dy beside x > 0 adds 0, not NaN), NaN when x or dy is NaN.
fn learn_dp_term(x: f32, dy: f32, g: f32) -> f32 {
    return select(select(dy * g, 0.0, g == 0.0), nan_f32(), is_nan(x) || is_nan(dy));
}

/// dy df/dp for one element ([`learn_dp_term`]). Swish's df/dp = t^2 is taken as dy (t t), or as (dy t) t where
/// t t overflows with t finite, while dy t^2 need not (x = 1e20, p = 1e-25, dy = 1e-10: 2.5e29, not inf); dy t
/// overflows only where the result does.
fn learn_dp1(x: f32, p: f32, dy: f32) -> f32 {
    if (LEARN == LEARN_SWISH) {
        let t = swish_dfdp_root(x, p);
        let g = t * t;
        let term = select(dy * g, (dy * t) * t, is_inf(g) && !is_inf(t));
        // As learn_dp_term with g = t^2: 0 where g is 0 (t^2 underflowed too) whatever dy.
        return select(select(term, 0.0, g == 0.0), nan_f32(), is_nan(x) || is_nan(dy) || is_nan(t));
    }
    return learn_dp_term(x, dy, learn_dfdp(x, p));
}

/// dy df/dp for the four elements starting at e0, 0 past the end of the tensor.
fn learn_dp4(x: vec4<f32>, p: vec4<f32>, dy: vec4<f32>, e0: u32) -> vec4<f32> {
    let live = vec4<u32>(e0, e0 + 1u, e0 + 2u, e0 + 3u) < vec4<u32>(params.len);
    let g = vec4<f32>(learn_dp1(x.x, p.x, dy.x), learn_dp1(x.y, p.y, dy.y), learn_dp1(x.z, p.z, dy.z),
                      learn_dp1(x.w, p.w, dy.w));
    return select(vec4<f32>(0.0), g, live);
}

@compute @workgroup_size(WG)
fn learn_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = first_unit(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let u = base + k * WG;
        if (u < params.units) {
            let x = load_x(u);
            let p = param_oct(8u * (params.first_unit + u));
            store_out(u, Oct(learn_f4(x.a, p.a), learn_f4(x.b, p.b)));
        }
    }
}

/// dx, and the elementwise dp contributions into tmp (f32) for a separate column reduction.
@compute @workgroup_size(WG)
fn learn_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = first_unit(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let u = base + k * WG;
        if (u < params.units) {
            let x = load_x(u);
            let dy = load_dy(u);
            let e0 = 8u * (params.first_unit + u);
            let p = param_oct(e0);
            store_out(u, Oct(learn_dx4(x.a, p.a, dy.a), learn_dx4(x.b, p.b, dy.b)));
            tmp[2u * u] = learn_dp4(x.a, p.a, dy.a, e0);
            tmp[2u * u + 1u] = learn_dp4(x.b, p.b, dy.b, e0 + 4u);
        }
    }
}

/// dx and per-block partial sums of dp in one pass. Grid as bias_backward_fused; in SCALAR_PARAM mode the tensor
/// is walked as [units, 8] (cols = 8) and the eight lanes are added at the end.
@compute @workgroup_size(WG)
fn learn_backward_fused(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_id) lid: vec3<u32>) {
    let col_units = params.cols / 8u;
    let cu = column_thread(wid, nwg, lid);
    if (cu >= col_units) {
        return;
    }
    let p = param_oct(8u * cu);
    let rows = block_rows(wid.y);
    var acc = Oct(vec4<f32>(0.0), vec4<f32>(0.0));
    for (var r = rows.x; r < rows.y; r++) {
        let u = r * col_units + cu;
        // A shared parameter's rows are a reshaping of the whole tensor, whose last row may be short.
        if (SCALAR_PARAM && 8u * u >= params.len) {
            break;
        }
        let x = load_x(u);
        let dy = load_dy(u);
        store_out(u, Oct(learn_dx4(x.a, p.a, dy.a), learn_dx4(x.b, p.b, dy.b)));
        acc = add8(acc, Oct(learn_dp4(x.a, p.a, dy.a, 8u * u), learn_dp4(x.b, p.b, dy.b, 8u * u + 4u)));
    }
    store_partial(wid.y * params.cols + 8u * cu, acc);
}

/// dp = the sum of every partial (blocks x cols8) for a single shared parameter, by one workgroup of WG threads
/// (256, or 128 where the device's workgroups hold fewer): thread t adds partials t, t + WG, ... in order, then a
/// fixed pairwise tree adds the WG sums (the same order on every run).
@compute @workgroup_size(WG)
fn learn_reduce_scalar(@builtin(local_invocation_index) li: u32) {
    let n = params.blocks * partial_stride();
    var acc = 0.0;
    for (var i = li; i < n; i += WG) {
        acc += partial[i];
    }
    lane_sums[li] = acc;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half >>= 1u) {
        if (li < half) {
            lane_sums[li] += lane_sums[li + half];
        }
        workgroupBarrier();
    }
    if (li == 0u) {
        store_db(0u, Oct(vec4<f32>(lane_sums[0], 0.0, 0.0, 0.0), vec4<f32>(0.0)));
    }
}
