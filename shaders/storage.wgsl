// Storage types: every tensor is bound as array<vec4<u32>> and decoded here. Kernels compute in f32.
//
// A work unit is 8 elements: two vec4<u32> words of f32 data, or one of packed 16-bit data (two halves per u32,
// the lower element in the low 16 bits, as little-endian hosts lay out `[f16]`).
// Conversions are written with integer operations so that they are exact and identical on every backend:
// WGSL's pack2x16float leaves rounding and overflow unspecified; here f32 -> f16 and f32 -> bf16 round to
// nearest even, overflow to +-inf and keep NaN a (quiet) NaN, as the `half` crate does.

const T_F32: u32 = 0u;
const T_F16: u32 = 1u;
const T_BF16: u32 = 2u;

/// Eight f32 values: elements 0..3 in `a`, 4..7 in `b`.
struct Oct {
    a: vec4<f32>,
    b: vec4<f32>,
}

fn f16_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0x1fu) {
        return bitcast<f32>(sign | 0x7f800000u | (m << 13u));
    }
    if (e == 0u) {
        // Zero or subnormal: m * 2^-24, exact in f32.
        return bitcast<f32>(sign | bitcast<u32>(f32(m) * 5.9604644775390625e-8));
    }
    return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}

fn f32_to_f16(v: f32) -> u32 {
    let x = bitcast<u32>(v);
    let sign = (x & 0x80000000u) >> 16u;
    let e = x & 0x7f800000u;
    let m = x & 0x007fffffu;
    if (e == 0x7f800000u) {
        // inf stays inf; NaN stays a quiet NaN with the top payload bits.
        return sign | 0x7c00u | select(0u, 0x0200u | (m >> 13u), m != 0u);
    }
    let he = i32(e >> 23u) - 127 + 15;
    if (he >= 0x1f) {
        return sign | 0x7c00u;
    }
    if (he <= 0) {
        if (14 - he > 24) {
            return sign;
        }
        let mm = m | 0x00800000u;
        var hm = mm >> u32(14 - he);
        let round_bit = 1u << u32(13 - he);
        if ((mm & round_bit) != 0u && (mm & (3u * round_bit - 1u)) != 0u) {
            hm += 1u;
        }
        return sign | hm;
    }
    let bits = sign | (u32(he) << 10u) | (m >> 13u);
    let round_bit = 0x00001000u;
    // A carry out of the mantissa correctly bumps the exponent, up to inf.
    return select(bits, bits + 1u, (m & round_bit) != 0u && (m & (3u * round_bit - 1u)) != 0u);
}

fn bf16_to_f32(h: u32) -> f32 {
    return bitcast<f32>(h << 16u);
}

fn f32_to_bf16(v: f32) -> u32 {
    let x = bitcast<u32>(v);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (x >> 16u) | 0x0040u;
    }
    return (x + 0x7fffu + ((x >> 16u) & 1u)) >> 16u;
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
    return vec2<f32>(half_to_f32(t, w & 0xffffu), half_to_f32(t, w >> 16u));
}

fn pack_pair(t: u32, a: f32, b: f32) -> u32 {
    return f32_to_half(t, a) | (f32_to_half(t, b) << 16u);
}

/// Decodes one unit of 16-bit data of type `t`.
fn unpack_oct(t: u32, w: vec4<u32>) -> Oct {
    let p0 = unpack_pair(t, w.x);
    let p1 = unpack_pair(t, w.y);
    let p2 = unpack_pair(t, w.z);
    let p3 = unpack_pair(t, w.w);
    return Oct(vec4<f32>(p0, p1), vec4<f32>(p2, p3));
}

/// Encodes one unit as 16-bit data of type `t`.
fn pack_oct(t: u32, v: Oct) -> vec4<u32> {
    return vec4<u32>(pack_pair(t, v.a.x, v.a.y), pack_pair(t, v.a.z, v.a.w),
                     pack_pair(t, v.b.x, v.b.y), pack_pair(t, v.b.z, v.b.w));
}
