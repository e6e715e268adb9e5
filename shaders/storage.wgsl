// Storage types: every tensor is bound as array<vec4<u32>> and decoded here. Kernels compute in f32.
//
// A work unit is 8 elements: two vec4<u32> words of f32 data, or one of packed 16-bit data (two halves per u32,
// the lower element in the low 16 bits, as little-endian hosts lay out `[f16]`).
// Conversions are written with integer operations so that they are exact and identical on every backend:
// WGSL's pack2x16float leaves rounding and overflow unspecified; here f32 -> f16 and f32 -> bf16 round to
// nearest even, overflow to +-inf and keep NaN a (quiet) NaN, as the `half` crate does (values and signs alike;
// a NaN's payload differs: f16 stores the canonical quiet NaN 0x7e00 with the sign, where `half` keeps the
// payload's top bits; bf16 keeps them, as `half` does).

const T_F32: u32 = 0u;
const T_F16: u32 = 1u;
const T_BF16: u32 = 2u;

/// Eight f32 values: elements 0..3 in `a`, 4..7 in `b`.
struct Oct {
    a: vec4<f32>,
    b: vec4<f32>,
}

/// f16 bits -> f32, exact, without branches (F. Giesen's half_to_float): shift exponent and mantissa into place,
/// rebias; inf/NaN get the rest of the exponent; zero and subnormals are renormalised by one exact subtraction.
fn f16_to_f32(h: u32) -> f32 {
    let shifted_exp = 0x0f800000u; // 0x7c00 << 13
    var o = (h & 0x7fffu) << 13u;
    let e = o & shifted_exp;
    o += (127u - 15u) << 23u;
    let special = o + ((128u - 16u) << 23u);
    // 2^-14 (113 << 23) is subtracted after adding one to the exponent: exact for every subnormal.
    let sub = bitcast<u32>(bitcast<f32>(o + (1u << 23u)) - bitcast<f32>(113u << 23u));
    o = select(select(o, sub, e == 0u), special, e == shifted_exp);
    return bitcast<f32>(o | ((h & 0x8000u) << 16u));
}

/// f32 -> f16 bits, rounding to nearest even, overflow to inf, NaN to a quiet NaN, without branches
/// (F. Giesen's float_to_half_fast3_rtne): normal results round by adding the rounding bias to the bits; results
/// in the subnormal range round by one floating-point addition of a magic constant (IEEE round to nearest even).
fn f32_to_f16(v: f32) -> u32 {
    return f32_to_f16_bits(v, true);
}

/// `f32_to_f16`, or with `round` false, for a value f16 represents exactly (or inf, or NaN), without the normal
/// results' rounding bias, which could change nothing.
fn f32_to_f16_bits(v: f32, round: bool) -> u32 {
    let x = bitcast<u32>(v);
    let sign = (x & 0x80000000u) >> 16u;
    let a = x & 0x7fffffffu;
    // |v| >= 65520 (143 << 23 is 2^16; RNE takes 65520 and up to inf): inf, or quiet NaN.
    let big = select(0x7c00u, 0x7e00u, a > 0x7f800000u);
    // Subnormal or zero results (|v| < 2^-14): add 0.5 (denorm_magic = (127 - 15 + 23 - 10 + 1) << 23).
    let magic = ((127u - 15u) + (23u - 10u) + 1u) << 23u;
    let small = bitcast<u32>(bitcast<f32>(a) + bitcast<f32>(magic)) - magic;
    // Normal results: rebias the exponent and round to nearest even through the bits.
    let bias = select(0u, 0xfffu + ((a >> 13u) & 1u), round);
    let normal = (a - (112u << 23u) + bias) >> 13u;
    let r = select(select(normal, small, a < (113u << 23u)), big, a >= ((127u + 16u) << 23u));
    return r | sign;
}

fn bf16_to_f32(h: u32) -> f32 {
    return bitcast<f32>(h << 16u);
}

/// f32 -> bf16 bits, rounding to nearest even through the bits (overflow carries into the exponent and gives
/// inf), NaN to a quiet NaN; a select rather than a branch, so SIMD lanes never diverge.
fn f32_to_bf16(v: f32) -> u32 {
    let x = bitcast<u32>(v);
    let rounded = (x + 0x7fffu + ((x >> 16u) & 1u)) >> 16u;
    return select(rounded, (x >> 16u) | 0x0040u, (x & 0x7fffffffu) > 0x7f800000u);
}

fn half_to_f32(t: u32, h: u32) -> f32 {
    if (t == T_F16) {
        return f16_to_f32(h);
    }
    return bf16_to_f32(h);
}

fn f32_to_half(t: u32, v: f32) -> u32 {
    if (t == T_F16) {
        return f32_to_f16(v);
    }
    return f32_to_bf16(v);
}

fn unpack_pair(t: u32, w: u32) -> vec2<f32> {
    if (t == T_F16) {
        // Integer decoding rather than the exact built-in unpack2x16float: on lavapipe the built-in made
        // hardswish and GELU over f16 about twice as slow (32 vs 16 ms for hardswish at 2^24).
        return vec2<f32>(f16_to_f32(w & 0xffffu), f16_to_f32(w >> 16u));
    }
    return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}

/// bf16 rounding kept in the high half of the f32 bits: RNE, NaN quieted; the low 16 bits are garbage.
fn bf16_high(v: f32) -> u32 {
    let x = bitcast<u32>(v);
    let rounded = x + 0x7fffu + ((x >> 16u) & 1u);
    return select(rounded, x | 0x00400000u, (x & 0x7fffffffu) > 0x7f800000u);
}

fn pack_pair(t: u32, a: f32, b: f32) -> u32 {
    return pack_pair_as(t, a, b, false);
}

/// Packs two values as type `t`, rounding to nearest even; with `exact`, values that `t` represents exactly (or
/// infinities, or NaNs whose quiet bit or upper mantissa is set) skip the rounding, which could change nothing:
/// bf16 truncates, f16 rebiases. A NaN stays a NaN, an infinity an infinity.
fn pack_pair_as(t: u32, a: f32, b: f32, exact: bool) -> u32 {
    if (t == T_BF16) {
        if (exact) {
            return (bitcast<u32>(a) >> 16u) | (bitcast<u32>(b) & 0xffff0000u);
        }
        return (bf16_high(a) >> 16u) | (bf16_high(b) & 0xffff0000u);
    }
    return f32_to_f16_bits(a, !exact) | (f32_to_f16_bits(b, !exact) << 16u);
}

/// Decodes one unit of 16-bit data of type `t`.
fn unpack_oct(t: u32, w: vec4<u32>) -> Oct {
    let p0 = unpack_pair(t, w.x);
    let p1 = unpack_pair(t, w.y);
    let p2 = unpack_pair(t, w.z);
    let p3 = unpack_pair(t, w.w);
    return Oct(vec4<f32>(p0, p1), vec4<f32>(p2, p3));
}

/// Encodes one unit as 16-bit data of type `t` (`exact`: see `pack_pair_as`).
fn pack_oct_as(t: u32, v: Oct, exact: bool) -> vec4<u32> {
    return vec4<u32>(pack_pair_as(t, v.a.x, v.a.y, exact), pack_pair_as(t, v.a.z, v.a.w, exact),
                     pack_pair_as(t, v.b.x, v.b.y, exact), pack_pair_as(t, v.b.z, v.b.w, exact));
}

/// Encodes one unit as 16-bit data of type `t`, rounding to nearest even.
fn pack_oct(t: u32, v: Oct) -> vec4<u32> {
    return pack_oct_as(t, v, false);
}
