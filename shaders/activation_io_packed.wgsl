// Operand access of the activation kernels for any mix of storage types: every operand is bound as
// array<vec4<u32>> and decoded by its type (X_T, DY_T, OUT_T: T_F32, T_F16 or T_BF16; see storage.wgsl).
// Works on every adapter, with or without SHADER_F16.

override X_T: u32 = T_F32;
override DY_T: u32 = T_F32;
override OUT_T: u32 = T_F32;
/// 1 when the host knows that every value this pipeline stores is exactly representable in OUT_T (identity,
/// relu, relu6, hardtanh, hardshrink and threshold, and softshrink's backward, over operands of the output's
/// type: each result is an input, 0 or a representable constant, `Activation::stores_exactly`): rounding
/// would change nothing, so 16-bit stores skip it (`pack_oct_as`), and identity and relu may skip decoding too
/// (`forward_in_bits`, `backward_in_bits`).
override EXACT: u32 = 0u;

@group(0) @binding(0) var<storage, read> x_in: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> dy_in: array<vec4<u32>>;

fn load_x(u: u32) -> Oct {
    if (X_T == T_F32) {
        return Oct(bitcast<vec4<f32>>(x_in[2u * u]), bitcast<vec4<f32>>(x_in[2u * u + 1u]));
    }
    return unpack_oct(X_T, x_in[u]);
}

fn load_dy(u: u32) -> Oct {
    if (DY_T == T_F32) {
        return Oct(bitcast<vec4<f32>>(dy_in[2u * u]), bitcast<vec4<f32>>(dy_in[2u * u + 1u]));
    }
    return unpack_oct(DY_T, dy_in[u]);
}

fn load_out(u: u32) -> Oct {
    if (OUT_T == T_F32) {
        return Oct(bitcast<vec4<f32>>(out[2u * u]), bitcast<vec4<f32>>(out[2u * u + 1u]));
    }
    return unpack_oct(OUT_T, out[u]);
}

fn store_out(u: u32, v: Oct) {
    if (OUT_T == T_F32) {
        out[2u * u] = bitcast<vec4<u32>>(v.a);
        out[2u * u + 1u] = bitcast<vec4<u32>>(v.b);
    } else {
        out[u] = pack_oct_as(OUT_T, v, EXACT == 1u);
    }
}

/// relu over a word of packed 16-bit values of type `t`, without decoding: each half that is negative and not
/// NaN becomes +0. Read as a signed 16-bit integer, such a half is at most -inf's bits (0xfc00 = -1024 for f16,
/// 0xff80 = -128 for bf16; the negative NaNs lie above, up to -1). So the high half is one exactly when the word,
/// read as i32, is below (-inf + 1) << 16, whatever the low half holds; the low half is tested the same way after
/// a shift up. Each half is cleared by a select between the word and the word masked, not by building a mask
/// from the two tests and clearing once: the same bits, but on lavapipe and llvmpipe GL the relu forward of 2^24
/// 16-bit elements took 6.6-8.2 ms this way against 8.0-9.1 ms (A/B in alternation, 2026-11-30).
fn relu_bits(t: u32, w: vec4<u32>) -> vec4<u32> {
    let limit = vec4<i32>(select(-1023, -127, t == T_BF16) << 16u);
    let high_cleared = select(w, w & vec4<u32>(0xffffu), bitcast<vec4<i32>>(w) < limit);
    let low_negative = bitcast<vec4<i32>>(w << vec4<u32>(16u)) < limit;
    return select(high_cleared, high_cleared & vec4<u32>(0xffff0000u), low_negative);
}

/// The forward of a word of 16-bit values in the pipelines that `forward_in_bits` admits: identity copies it,
/// relu works on its bits.
fn forward_bits(w: vec4<u32>) -> vec4<u32> {
    if (ACT == ACT_RELU) {
        return relu_bits(OUT_T, w);
    }
    return w;
}

/// Whether the forward of this pipeline works on 16-bit words directly (`forward_bits`): identity and relu with
/// input and output of one 16-bit type.
fn forward_in_bits() -> bool {
    return EXACT == 1u && OUT_T != T_F32 && (ACT == ACT_IDENTITY || ACT == ACT_RELU);
}

/// y = f(x) for unit `u`, x read from `x_in`.
fn forward_unit(u: u32) {
    if (forward_in_bits()) {
        out[u] = forward_bits(x_in[u]);
    } else {
        store_out(u, fwd8(load_x(u)));
    }
}

/// y = f(x) for unit `u` in place (in a function of its own: the in-place kernels must not refer to `x_in`).
fn forward_unit_in_place(u: u32) {
    if (forward_in_bits()) {
        out[u] = forward_bits(out[u]);
    } else {
        store_out(u, fwd8(load_out(u)));
    }
}

/// dy * f'(x) for identity and relu over the f16 bits of four elements (one per component, in the low 16 bits):
/// dy where f'(x) = 1 (relu: x > 0, that is sign clear and not zero); elsewhere dy * 0, a zero with dy's sign,
/// or NaN where dy is inf or NaN; NaN wherever x is NaN. The same values as the decoding path, bit for bit
/// (NaNs as NaNs), without decoding.
fn backward_f16_halves(x: vec4<u32>, dy: vec4<u32>) -> vec4<u32> {
    let qnan = vec4<u32>(0x7e00u);
    let xm = x & vec4<u32>(0x7fffu);
    var through = vec4<bool>(true);
    if (ACT == ACT_RELU) {
        through = (x < vec4<u32>(0x8000u)) & (xm != vec4<u32>(0u));
    }
    let dy_special = (dy & vec4<u32>(0x7fffu)) >= vec4<u32>(0x7c00u);
    let blocked = select(dy & vec4<u32>(0x8000u), qnan, dy_special);
    return select(select(blocked, dy, through), qnan, xm > vec4<u32>(0x7c00u));
}

/// Whether this pipeline's backward works on the f16 bits directly (`backward_f16_halves`): identity and relu
/// with every operand f16. (bf16 decodes in two operations per element, which the bit tests would not beat.)
fn backward_in_bits(dy_t: u32) -> bool {
    return EXACT == 1u && OUT_T == T_F16 && X_T == T_F16 && dy_t == T_F16
        && (ACT == ACT_IDENTITY || ACT == ACT_RELU);
}

fn backward_bits(x: vec4<u32>, dy: vec4<u32>) -> vec4<u32> {
    let mask = vec4<u32>(0xffffu);
    let low = backward_f16_halves(x & mask, dy & mask);
    let high = backward_f16_halves(x >> vec4<u32>(16u), dy >> vec4<u32>(16u));
    return low | (high << vec4<u32>(16u));
}

/// dx = dy * f'(x) for unit `u`, dy read from `dy_in`.
fn backward_unit(u: u32) {
    if (backward_in_bits(DY_T)) {
        out[u] = backward_bits(x_in[u], dy_in[u]);
    } else {
        store_out(u, bwd8(load_x(u), load_dy(u)));
    }
}

/// dx = dy * f'(x) for unit `u` in place: dy read from `out`, in OUT_T.
fn backward_unit_in_place(u: u32) {
    if (backward_in_bits(OUT_T)) {
        out[u] = backward_bits(x_in[u], out[u]);
    } else {
        store_out(u, bwd8(load_x(u), load_out(u)));
    }
}

// Word access for kernels whose operands are all f32 (the host sets WORDS = 1 only then): word `w` holds
// elements 4w..4w+3.

fn load_x4(w: u32) -> vec4<f32> {
    return bitcast<vec4<f32>>(x_in[w]);
}

fn load_dy4(w: u32) -> vec4<f32> {
    return bitcast<vec4<f32>>(dy_in[w]);
}

fn load_out4(w: u32) -> vec4<f32> {
    return bitcast<vec4<f32>>(out[w]);
}

fn store_out4(w: u32, v: vec4<f32>) {
    out[w] = bitcast<vec4<u32>>(v);
}
