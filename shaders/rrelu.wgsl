// Randomized leaky ReLU in training mode (PyTorch's `rrelu(x, lower, upper, training=True)`), forward and
// backward. Appended by the host to storage.wgsl, activation_lib.wgsl (times_gate, is_nan, nan_f32) and
// activation_io_packed.wgsl (operands 0: x, 1: out, 2: dy, each f32, f16 or bf16); the host passes ACT = 0.
//
//   forward    y_e  = x_e if x_e > 0 else a_e x_e
//   backward   dx_e = dy_e if x_e > 0 else a_e dy_e
//
// Element e's slope a_e = lower + (upper - lower) u_e is drawn from a counter-based hash of (e, seed): u_e =
// (pcg3d(e, seed_lo, seed_hi).x >> 8) 2^-24, uniform on the 2^24 multiples of 2^-24 in [0, 1) (a_e in f32 may
// round to upper). Nothing is stored
// between the passes: the backward draws the same a_e from the same seed. `e` counts elements from the tensor's
// start plus `index_base` (the host refuses draws past 2^32 indices), so a chunked launch draws what one launch
// would.
//
// Edge values follow the crate's leaky ReLU (`ACT_LEAKY_RELU` with P0 = a_e): NaN gives NaN both ways; a slope
// of 0 gives a zero of x's sign (at x = -inf too, the limit); the backward is NaN where x or dy is.

override WG: u32;
override PER_THREAD: u32 = 1u;

struct RreluParams {
    /// 8-element units in this dispatch.
    units: u32,
    /// This dispatch's first unit in the whole tensor.
    first_unit: u32,
    /// The seed's low and high words.
    seed_lo: u32,
    seed_hi: u32,
    /// The slopes' range [lower, upper].
    lower: f32,
    upper: f32,
    /// The index of the tensor's first element in the draw (an MLP step in passes counts over the batch).
    index_base: u32,
}

@group(0) @binding(3) var<uniform> params: RreluParams;

/// pcg3d of Jarzynski and Olano, "Hash Functions for GPU Rendering" (JCGT 9(3), 2020): a permutation of 96-bit
/// states, u32 arithmetic wrapping. `cpu::rrelu::pcg3d` is the same function.
fn pcg3d(v0: vec3<u32>) -> vec3<u32> {
    var v = v0 * 1664525u + vec3<u32>(1013904223u);
    v.x += v.y * v.z;
    v.y += v.z * v.x;
    v.z += v.x * v.y;
    v ^= v >> vec3<u32>(16u);
    v.x += v.y * v.z;
    v.y += v.z * v.x;
    v.z += v.x * v.y;
    return v;
}

/// a_e for element e of the whole tensor.
fn slope(e: u32) -> f32 {
    let u = f32(pcg3d(vec3<u32>(e, params.seed_lo, params.seed_hi)).x >> 8u) * 5.9604644775390625e-8;
    return params.lower + (params.upper - params.lower) * u;
}

fn rrelu_f(x: f32, e: u32) -> f32 {
    return select(select(times_gate(x, slope(e)), x, x > 0.0), x, is_nan(x));
}

fn rrelu_dx(x: f32, dy: f32, e: u32) -> f32 {
    let dx = dy * select(slope(e), 1.0, x > 0.0);
    return select(dx, nan_f32(), is_nan(x) || is_nan(dy));
}

fn rrelu_f4(x: vec4<f32>, e: u32) -> vec4<f32> {
    return vec4<f32>(rrelu_f(x.x, e), rrelu_f(x.y, e + 1u), rrelu_f(x.z, e + 2u), rrelu_f(x.w, e + 3u));
}

fn rrelu_dx4(x: vec4<f32>, dy: vec4<f32>, e: u32) -> vec4<f32> {
    return vec4<f32>(rrelu_dx(x.x, dy.x, e), rrelu_dx(x.y, dy.y, e + 1u), rrelu_dx(x.z, dy.z, e + 2u),
                     rrelu_dx(x.w, dy.w, e + 3u));
}

fn first_unit(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG * PER_THREAD + lid.x;
}

@compute @workgroup_size(WG)
fn rrelu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = first_unit(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let u = base + k * WG;
        if (u < params.units) {
            let e = params.index_base + 8u * (params.first_unit + u);
            let x = load_x(u);
            store_out(u, Oct(rrelu_f4(x.a, e), rrelu_f4(x.b, e + 4u)));
        }
    }
}

@compute @workgroup_size(WG)
fn rrelu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = first_unit(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let u = base + k * WG;
        if (u < params.units) {
            let e = params.index_base + 8u * (params.first_unit + u);
            let x = load_x(u);
            let dy = load_dy(u);
            store_out(u, Oct(rrelu_dx4(x.a, dy.a, e), rrelu_dx4(x.b, dy.b, e + 4u)));
        }
    }
}
