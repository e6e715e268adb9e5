// What every matmul kernel shares (shaders/matmul.wgsl, and the generated subgroup kernels of
// src/ops/matmul_subgroup.rs): the product's sizes and operand strides, the output bindings, the epilogue and the
// decoding of an element of any storage type.
// Appended by the host to storage.wgsl and activation_lib.wgsl (src/shaders.rs), so the epilogue calls act_forward
// with the ACT, P0, P1 overrides.
//
//   C[i, j] = sum_{p < K} A(i, p) B(p, j),   A(i, p) = a[i sa_i + p sa_p],   B(p, j) = b[p sb_p + j sb_j]
//
// C is row-major [M, N]. Epilogue: z = C + bias[j] (HAS_BIAS), z stored at binding 5 (STORE_Z), out = f(z); with a
// fused derivative in the operand loads (FUSE != 0, shaders/matmul.wgsl only) the epilogue is the identity.

override WG: u32;
override HAS_BIAS: bool = false;
override STORE_Z: bool = false;
override FUSE: u32 = 0u;
/// Storage type of the bias (T_F32, T_F16, T_BF16 of storage.wgsl).
override BIAS_T: u32 = 0u;

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    sa_i: u32,
    sa_p: u32,
    sb_p: u32,
    sb_j: u32,
    /// Splits of K (`matmul_tiled_split`, `matmul_split_sum`); 1 elsewhere.
    splits: u32,
}

@group(0) @binding(1) var<storage, read_write> c_out: array<f32>;
@group(0) @binding(3) var<uniform> params: MatmulParams;
// Read-only operands are bound as words and decoded by their type code (elem): f32 bits, or packed 16-bit pairs.
@group(0) @binding(4) var<storage, read> bias: array<u32>;
@group(0) @binding(5) var<storage, read_write> z_out: array<f32>;

/// Word of element `idx` in a tensor of storage type `t`: the element itself (f32) or its packed pair.
fn word_of(t: u32, idx: u32) -> u32 {
    return select(idx >> 1u, idx, t == T_F32);
}

/// Element `idx` of a tensor of storage type `t`, given its word (`word_of`): exact (16-bit values are f32 values).
fn elem(t: u32, word: u32, idx: u32) -> f32 {
    if (t == T_F32) {
        return bitcast<f32>(word);
    }
    return half_to_f32(t, (word >> ((idx & 1u) << 4u)) & 0xffffu);
}

/// The row block of C a workgroup owns: grid y, continued along z where the blocks pass the device's
/// per-dimension limit (a batch of millions of rows). Blocks past the last row only load clamped or zeroed
/// operands and store nothing.
fn row_block(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y + wid.z * nwg.y;
}

/// z = c + bias[j], out[i, j] = f(z) (z itself in the gradient products, where ACT names the fused derivative);
/// elements outside [M, N] are dropped.
fn store_c(i: u32, j: u32, c: f32) {
    if (i >= params.m || j >= params.n) {
        return;
    }
    var z = c;
    if (HAS_BIAS) {
        z += elem(BIAS_T, bias[word_of(BIAS_T, j)], j);
    }
    let o = i * params.n + j;
    if (STORE_Z) {
        z_out[o] = z;
    }
    if (FUSE == 0u) {
        c_out[o] = act_forward(z);
    } else {
        c_out[o] = z;
    }
}
