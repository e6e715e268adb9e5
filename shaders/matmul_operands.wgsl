// The operands of shaders/matmul.wgsl bound as u32 words (MatmulKernel::Direct, Tiled, Tiled32): element idx of
// A, B or the fused Z, decoded from its storage type (A_T, B_T, Z_T; elem, matmul_common.wgsl). The four-element
// reads are four word loads. shaders/matmul_operands_wide.wgsl binds the same operands as vec4<u32>.

@group(0) @binding(0) var<storage, read> a_in: array<u32>;
@group(0) @binding(2) var<storage, read> b_in: array<u32>;
@group(0) @binding(7) var<storage, read> z_in: array<u32>;

fn raw_a(idx: u32) -> f32 {
    return elem(A_T, a_in[word_of(A_T, idx)], idx);
}

fn raw_b(idx: u32) -> f32 {
    return elem(B_T, b_in[word_of(B_T, idx)], idx);
}

fn raw_z(idx: u32) -> f32 {
    return elem(Z_T, z_in[word_of(Z_T, idx)], idx);
}

/// Elements idx .. idx + 3 of A (idx a multiple of 4).
fn raw4_a(idx: u32) -> vec4<f32> {
    return vec4<f32>(raw_a(idx), raw_a(idx + 1u), raw_a(idx + 2u), raw_a(idx + 3u));
}

fn raw4_b(idx: u32) -> vec4<f32> {
    return vec4<f32>(raw_b(idx), raw_b(idx + 1u), raw_b(idx + 2u), raw_b(idx + 3u));
}

fn raw4_z(idx: u32) -> vec4<f32> {
    return vec4<f32>(raw_z(idx), raw_z(idx + 1u), raw_z(idx + 2u), raw_z(idx + 3u));
}
