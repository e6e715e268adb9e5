// The operands of shaders/matmul.wgsl bound as vec4<u32> (MatmulKernel::TiledWide): four elements of an f32
// operand, or eight of a 16-bit one, per 16-byte load. Buffers are whole bindings padded to 32 bytes
// (tensor::padded_bytes), so every vec4 lies inside its buffer. The same functions as
// shaders/matmul_operands.wgsl; a single element is one component of its vec4.

@group(0) @binding(0) var<storage, read> a_in: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> b_in: array<vec4<u32>>;
@group(0) @binding(7) var<storage, read> z_in: array<vec4<u32>>;

/// Word `w` of an operand bound as vec4s.
fn word_a(w: u32) -> u32 {
    return a_in[w >> 2u][w & 3u];
}

fn word_b(w: u32) -> u32 {
    return b_in[w >> 2u][w & 3u];
}

fn word_z(w: u32) -> u32 {
    return z_in[w >> 2u][w & 3u];
}

fn raw_a(idx: u32) -> f32 {
    return elem(A_T, word_a(word_of(A_T, idx)), idx);
}

fn raw_b(idx: u32) -> f32 {
    return elem(B_T, word_b(word_of(B_T, idx)), idx);
}

fn raw_z(idx: u32) -> f32 {
    return elem(Z_T, word_z(word_of(Z_T, idx)), idx);
}

/// Elements idx .. idx + 3 (idx a multiple of 4) of a tensor of storage type `t`, from the vec4 `v` that holds
/// them: all of it for f32; for 16-bit, the half of it (two packed words) that idx selects.
fn decode4(t: u32, v: vec4<u32>, idx: u32) -> vec4<f32> {
    if (t == T_F32) {
        return bitcast<vec4<f32>>(v);
    }
    let w = select(v.xy, v.zw, (idx & 4u) != 0u);
    return vec4<f32>(half_to_f32(t, w.x & 0xffffu), half_to_f32(t, w.x >> 16u), half_to_f32(t, w.y & 0xffffu),
                     half_to_f32(t, w.y >> 16u));
}

/// The vec4 index of element idx: idx / 4 for f32, idx / 8 for 16-bit.
fn vec_of(t: u32, idx: u32) -> u32 {
    return select(idx >> 3u, idx >> 2u, t == T_F32);
}

/// Elements idx .. idx + 3 of A (idx a multiple of 4), one 16-byte load.
fn raw4_a(idx: u32) -> vec4<f32> {
    return decode4(A_T, a_in[vec_of(A_T, idx)], idx);
}

fn raw4_b(idx: u32) -> vec4<f32> {
    return decode4(B_T, b_in[vec_of(B_T, idx)], idx);
}

fn raw4_z(idx: u32) -> vec4<f32> {
    return decode4(Z_T, z_in[vec_of(Z_T, idx)], idx);
}
