// Operand access of the activation kernels for any mix of storage types: every operand is bound as
// array<vec4<u32>> and decoded by its type (X_T, DY_T, OUT_T: T_F32, T_F16 or T_BF16; see storage.wgsl).
// Works on every adapter, with or without SHADER_F16.

override X_T: u32 = T_F32;
override DY_T: u32 = T_F32;
override OUT_T: u32 = T_F32;

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
        out[u] = pack_oct(OUT_T, v);
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
