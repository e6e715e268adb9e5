// Operand access of the activation kernels with native f16 storage, for adapters with SHADER_F16 (the host
// prepends `enable f16;`). Every operand is f16; a unit of 8 elements is two vec4<f16>.

@group(0) @binding(0) var<storage, read> x_in: array<vec4<f16>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read> dy_in: array<vec4<f16>>;

fn widen(a: vec4<f16>, b: vec4<f16>) -> Oct {
    return Oct(vec4<f32>(a), vec4<f32>(b));
}

fn load_x(u: u32) -> Oct {
    return widen(x_in[2u * u], x_in[2u * u + 1u]);
}

fn load_dy(u: u32) -> Oct {
    return widen(dy_in[2u * u], dy_in[2u * u + 1u]);
}

fn load_out(u: u32) -> Oct {
    return widen(out[2u * u], out[2u * u + 1u]);
}

/// f32 -> f16 with the crate's policy made explicit. WGSL leaves the conversion of finite values beyond the f16
/// range indeterminate, so those are mapped first: |v| >= 65520 (which rounds to +-inf) to +-inf, and the values
/// in (65504, 65520) to +-65504 (where they round); inf and NaN convert as themselves. In range the built-in
/// conversion rounds (to nearest even on the adapters tested: the tests compare it bit for bit with `half`).
fn narrow(v: vec4<f32>) -> vec4<f16> {
    let inf = vec4<f32>(bitcast<f32>(0x7f800000u));
    let finite = (bitcast<vec4<u32>>(v) & vec4<u32>(0x7f800000u)) != vec4<u32>(0x7f800000u);
    let overflow = finite & (abs(v) >= vec4<f32>(65520.0));
    let in_range = clamp(v, vec4<f32>(-65504.0), vec4<f32>(65504.0));
    let mapped = select(v, select(in_range, select(inf, -inf, v < vec4<f32>(0.0)), overflow), finite);
    return vec4<f16>(mapped);
}

fn store_out(u: u32, v: Oct) {
    out[2u * u] = narrow(v.a);
    out[2u * u + 1u] = narrow(v.b);
}

// Word access (WORDS = 1): word `w` is one vec4<f16>, elements 4w..4w+3.

fn load_x4(w: u32) -> vec4<f32> {
    return vec4<f32>(x_in[w]);
}

fn load_dy4(w: u32) -> vec4<f32> {
    return vec4<f32>(dy_in[w]);
}

fn load_out4(w: u32) -> vec4<f32> {
    return vec4<f32>(out[w]);
}

fn store_out4(w: u32, v: vec4<f32>) {
    out[w] = narrow(v);
}

/// y = f(x) for unit `u`, x read from `x_in`.
fn forward_unit(u: u32) {
    store_out(u, fwd8(load_x(u)));
}

/// y = f(x) for unit `u` in place.
fn forward_unit_in_place(u: u32) {
    store_out(u, fwd8(load_out(u)));
}

/// dx = dy * f'(x) for unit `u`, dy read from `dy_in`.
fn backward_unit(u: u32) {
    store_out(u, bwd8(load_x(u), load_dy(u)));
}

/// dx = dy * f'(x) for unit `u` in place.
fn backward_unit_in_place(u: u32) {
    store_out(u, bwd8(load_x(u), load_out(u)));
}
