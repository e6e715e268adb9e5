// Matrix products of the dense layer, f32 accumulation, with a bias + activation epilogue. Operands A, B and the
// fused Z are each f32, f16 or bf16 (override codes A_T, B_T, Z_T): bound as u32 words and decoded exactly at the
// load (elem, matmul_common.wgsl), so every product is computed on the operands' exact values.
// Appended by the host to storage.wgsl, activation_lib.wgsl and matmul_common.wgsl (src/shaders.rs), so the
// epilogue (store_c) and the fused operand loads call act_forward / act_backward with the ACT, P0, P1 overrides.
//
// One generic product over strided operands covers every form without materialising a transpose:
//
//   C[i, j] = sum_{p < K} A(i, p) B(p, j),   A(i, p) = a[i sa_i + p sa_p],   B(p, j) = b[p sb_p + j sb_j]
//
//   Y  = X W      X [m,k], W [k,n]:   M = m, N = n, K = k;  sa = (k, 1), sb = (n, 1)
//   dW = X^T dZ   X [m,k], dZ [m,n]:  M = k, N = n, K = m;  sa = (1, k), sb = (n, 1)
//   dX = dZ W^T   dZ [m,n], W [k,n]:  M = m, N = k, K = n;  sa = (n, 1), sb = (1, n)
//   db = 1^T dZ   a = [1.0]:          M = 1, N = n, K = m;  sa = (0, 0), sb = (n, 1)
//
// C is row-major [M, N]. Epilogue: z = C + bias[j] (HAS_BIAS), z stored at binding 5 (STORE_Z), out = f(z).
// Fused derivative (FUSE = 1: operand A, 2: operand B): the operand is read as dY * f'(Z) = act_backward(Z, dY),
// with Z (binding 7) laid out like the operand, so dZ is never written; the epilogue is then the identity.
//
// Two kernels here (the subgroup kernels of CPU adapters are generated: src/ops/matmul_subgroup.rs), each thread
// owning a register block of C:
//   matmul_direct  8 x 4 per thread (rows ty + r TY, columns tx + c TX: neighbouring threads touch neighbouring
//                  columns), operands straight from storage, no workgroup memory and no barrier
//                  (software adapters, where barriers are emulated and cost more than the loads they save)
//   matmul_tiled   4 x 4 per thread (4 neighbouring rows and columns), K in chunks of KT staged through
//                  workgroup memory with the next chunk's loads in flight, two barriers per chunk; TX x TX threads
//                  (16 x 16 or 8 x 8), a 4 TX square of C per workgroup
//   matmul_tiled_split + matmul_split_sum   the same with K split over several workgroups per block of C (the
//                  host picks the splits for products of few blocks), then one pass that adds the splits in order
//                  and applies the epilogue

/// Threads per workgroup along N; WG / TX along M.
override TX: u32 = 8u;

const FUSE_A: u32 = 1u;
const FUSE_B: u32 = 2u;
/// Register block: R x R outputs per thread.
const R: u32 = 4u;

/// Storage types of A, B and the fused Z (T_F32, T_F16, T_BF16 of storage.wgsl).
override A_T: u32 = 0u;
override B_T: u32 = 0u;
override Z_T: u32 = 0u;

fn load_a(idx: u32) -> f32 {
    if (FUSE == FUSE_A) {
        return act_backward(raw_z(idx), raw_a(idx));
    }
    return raw_a(idx);
}

fn load_b(idx: u32) -> f32 {
    if (FUSE == FUSE_B) {
        return act_backward(raw_z(idx), raw_b(idx));
    }
    return raw_b(idx);
}

/// Elements idx .. idx + 3 of A as the product reads them (idx a multiple of 4; see load_a).
fn load4_a(idx: u32) -> vec4<f32> {
    if (FUSE == FUSE_A) {
        return act_backward4(raw4_z(idx), raw4_a(idx));
    }
    return raw4_a(idx);
}

fn load4_b(idx: u32) -> vec4<f32> {
    if (FUSE == FUSE_B) {
        return act_backward4(raw4_z(idx), raw4_b(idx));
    }
    return raw4_b(idx);
}

fn act_backward4(z: vec4<f32>, dy: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(act_backward(z.x, dy.x), act_backward(z.y, dy.y), act_backward(z.z, dy.z),
                     act_backward(z.w, dy.w));
}

fn store_block(i0: u32, di: u32, j0: u32, dj: u32, acc: array<vec4<f32>, 4>) {
    for (var r = 0u; r < R; r++) {
        let i = i0 + r * di;
        store_c(i, j0, acc[r].x);
        store_c(i, j0 + dj, acc[r].y);
        store_c(i, j0 + 2u * dj, acc[r].z);
        store_c(i, j0 + 3u * dj, acc[r].w);
    }
}

/// Rows of C per thread in matmul_direct (columns: R).
const RM: u32 = 8u;

/// Grid: x over column blocks of 4 TX, y over row blocks of 8 (WG / TX). Rows and columns past the end are
/// clamped to the last one for loading (their results are dropped), so the inner loop has no bounds test.
@compute @workgroup_size(WG)
fn matmul_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let ty_n = WG / TX;
    let tx = lid.x % TX;
    let ty = lid.x / TX;
    let i0 = row_block(wid, nwg) * ty_n * RM + ty;
    let j0 = wid.x * TX * R + tx;
    var ai: array<u32, 8>;
    var bj: array<u32, 4>;
    for (var r = 0u; r < RM; r++) {
        ai[r] = min(i0 + r * ty_n, params.m - 1u) * params.sa_i;
    }
    for (var c = 0u; c < R; c++) {
        bj[c] = min(j0 + c * TX, params.n - 1u) * params.sb_j;
    }
    var acc: array<vec4<f32>, 8>;
    var pa = 0u;
    var pb = 0u;
    for (var p = 0u; p < params.k; p++) {
        let b = vec4<f32>(load_b(bj[0] + pb), load_b(bj[1] + pb), load_b(bj[2] + pb), load_b(bj[3] + pb));
        for (var r = 0u; r < RM; r++) {
            acc[r] = fma(vec4<f32>(load_a(ai[r] + pa)), b, acc[r]);
        }
        pa += params.sa_p;
        pb += params.sb_p;
    }
    for (var r = 0u; r < RM; r++) {
        let i = i0 + r * ty_n;
        store_c(i, j0, acc[r].x);
        store_c(i, j0 + TX, acc[r].y);
        store_c(i, j0 + 2u * TX, acc[r].z);
        store_c(i, j0 + 3u * TX, acc[r].w);
    }
}

/// K-chunk of the tiled kernel. 32 (16 elements staged per thread) ran 1024^3 4.5x slower on an NVIDIA H200.
const KT: u32 = 16u;
/// Largest tile side: 4 x 16 threads (the tiled kernel runs WG = TX x TX, TX = 16 or 8).
const TILE: u32 = 64u;
/// Row stride of the staged tiles in vec4s: the largest tile side / 4, plus one, so that the threads staging one
/// row's 16 values of K (stride 1 in storage) write to different banks.
const TILE_STRIDE: u32 = TILE / 4u + 1u;
/// Elements of each operand one thread stages per chunk, at most: KT x TILE / (TX x TX) is 4 for TX = 16 and 8 for
/// TX = 8; held in registers as vec4s.
const MAX_STAGED: u32 = 8u;
const MAX_STAGED4: u32 = MAX_STAGED / 4u;

/// Staging by 16-byte loads (MatmulKernel::TiledWide, shaders/matmul_operands_wide.wgsl): each thread stages
/// whole runs of 4 contiguous elements of the operand. The host sets it where the run fits: the operand's stride
/// along K or along its other dimension is 1, the other stride and the contiguous size are multiples of 4.
override VEC_A: bool = false;
override VEC_B: bool = false;

/// vec4s of one operand's staged chunk: KT rows of TILE_STRIDE.
const TILE_VECS: u32 = KT * TILE_STRIDE;
/// Where B's chunk starts in `tiles`.
const B_TILE: u32 = TILE_VECS;

// A's chunk, then B's, each [KT][tile / 4] vec4s: tiles[p * TILE_STRIDE + r / 4][r % 4] holds A(ti0 + r, p0 + p),
// tiles[B_TILE + p * TILE_STRIDE + c / 4][c % 4] holds B(p0 + p, tj0 + c).
var<workgroup> tiles: array<vec4<f32>, 2u * TILE_VECS>;

/// The (row or column within the tile, p within the chunk) of staged element `e` of an operand whose stride along
/// K is `stride_p`: where that stride is 1, 16 neighbouring threads read one row's 16 contiguous values of K;
/// otherwise neighbouring threads read neighbouring rows (contiguous in X^T, dZ and W). Either way the loads of a
/// warp are whole cache lines.
fn staged_at(e: u32, tile: u32, stride_p: u32) -> vec2<u32> {
    if (stride_p == 1u) {
        return vec2<u32>(e / KT, e % KT);
    }
    return vec2<u32>(e % tile, e / tile);
}

/// The (row or column, p) of the first element of staged run `u` (4 contiguous elements) when staging by 16-byte
/// loads: 4 neighbouring threads read one row's 16 values of K where the stride along K is 1; otherwise 16
/// neighbouring threads read 64 neighbouring rows at one p.
fn staged4_at(u: u32, tile: u32, stride_p: u32) -> vec2<u32> {
    if (stride_p == 1u) {
        return vec2<u32>(u / (KT / 4u), 4u * (u % (KT / 4u)));
    }
    return vec2<u32>(4u * (u % (tile / 4u)), u / (tile / 4u));
}

fn stage_a(e: u32, tile: u32, ti0: u32, p0: u32, k_end: u32) -> f32 {
    let at = staged_at(e, tile, params.sa_p);
    let i = ti0 + at.x;
    let p = p0 + at.y;
    if (i < params.m && p < k_end) {
        return load_a(i * params.sa_i + p * params.sa_p);
    }
    return 0.0;
}

fn stage_b(e: u32, tile: u32, tj0: u32, p0: u32, k_end: u32) -> f32 {
    let at = staged_at(e, tile, params.sb_p);
    let j = tj0 + at.x;
    let p = p0 + at.y;
    if (j < params.n && p < k_end) {
        return load_b(p * params.sb_p + j * params.sb_j);
    }
    return 0.0;
}

/// Slot `s` of thread `t`'s staged elements of A for the chunk at p0: its run t + s WG (VEC_A; the run lies
/// wholly inside or wholly outside the operand, as the host checked), or elements t + (4 s + c) WG, c < 4.
fn fetch_a(s: u32, t: u32, tile: u32, ti0: u32, p0: u32, k_end: u32) -> vec4<f32> {
    if (VEC_A) {
        let at = staged4_at(t + s * WG, tile, params.sa_p);
        let i = ti0 + at.x;
        let p = p0 + at.y;
        if (i < params.m && p < k_end) {
            return load4_a(i * params.sa_i + p * params.sa_p);
        }
        return vec4<f32>();
    }
    let e = t + 4u * s * WG;
    return vec4<f32>(stage_a(e, tile, ti0, p0, k_end), stage_a(e + WG, tile, ti0, p0, k_end),
                     stage_a(e + 2u * WG, tile, ti0, p0, k_end), stage_a(e + 3u * WG, tile, ti0, p0, k_end));
}

fn fetch_b(s: u32, t: u32, tile: u32, tj0: u32, p0: u32, k_end: u32) -> vec4<f32> {
    if (VEC_B) {
        let at = staged4_at(t + s * WG, tile, params.sb_p);
        let j = tj0 + at.x;
        let p = p0 + at.y;
        if (j < params.n && p < k_end) {
            return load4_b(p * params.sb_p + j * params.sb_j);
        }
        return vec4<f32>();
    }
    let e = t + 4u * s * WG;
    return vec4<f32>(stage_b(e, tile, tj0, p0, k_end), stage_b(e + WG, tile, tj0, p0, k_end),
                     stage_b(e + 2u * WG, tile, tj0, p0, k_end), stage_b(e + 3u * WG, tile, tj0, p0, k_end));
}

/// Writes slot `s` of thread `t` (`fetch_a`, `fetch_b`) into the staged chunk at `base` of `tiles` (0 for A,
/// B_TILE for B) for an operand whose stride along K is `stride_p`: a run along K is four values of one row, a run
/// across rows one vec4 of the chunk.
fn put(base: u32, runs: bool, s: u32, t: u32, tile: u32, stride_p: u32, v: vec4<f32>) {
    if (runs) {
        let at = staged4_at(t + s * WG, tile, stride_p);
        if (stride_p == 1u) {
            for (var c = 0u; c < 4u; c++) {
                tiles[base + (at.y + c) * TILE_STRIDE + at.x / 4u][at.x % 4u] = v[c];
            }
        } else {
            tiles[base + at.y * TILE_STRIDE + at.x / 4u] = v;
        }
        return;
    }
    for (var c = 0u; c < 4u; c++) {
        let at = staged_at(t + (4u * s + c) * WG, tile, stride_p);
        tiles[base + at.y * TILE_STRIDE + at.x / 4u][at.x % 4u] = v[c];
    }
}

/// The tiled kernels' block of C: the square of side tile = 4 TX at row block `row_block` and column block
/// `col_block`, summed over p in [k_begin, k_end), with WG = TX x TX threads; thread (tx, ty) owns rows 4 ty .. 4 ty
/// + 3 and columns 4 tx .. 4 tx + 3 of it. K runs in chunks of KT: every thread stages KT tile / WG elements of A
/// and as many of B (zero past the ends) into workgroup memory, then reads one vec4 of each per step. The next
/// chunk's elements are loaded from storage into registers while the current chunk is multiplied, so the loads'
/// latency overlaps the arithmetic. Called from uniform control flow (it has barriers).
fn tiled_block(col_block: u32, row_block: u32, t: u32, k_begin: u32, k_end: u32) -> array<vec4<f32>, 4> {
    let tile = 4u * TX;
    let slots = KT * tile / WG / 4u;
    let tx = t % TX;
    let ty = t / TX;
    let ti0 = row_block * tile;
    let tj0 = col_block * tile;
    var ra: array<vec4<f32>, MAX_STAGED4>;
    var rb: array<vec4<f32>, MAX_STAGED4>;
    for (var s = 0u; s < slots; s++) {
        ra[s] = fetch_a(s, t, tile, ti0, k_begin, k_end);
        rb[s] = fetch_b(s, t, tile, tj0, k_begin, k_end);
    }
    var acc: array<vec4<f32>, 4>;
    for (var p0 = k_begin; p0 < k_end; p0 += KT) {
        for (var s = 0u; s < slots; s++) {
            put(0u, VEC_A, s, t, tile, params.sa_p, ra[s]);
            put(B_TILE, VEC_B, s, t, tile, params.sb_p, rb[s]);
        }
        workgroupBarrier();
        let next = p0 + KT;
        if (next < k_end) {
            for (var s = 0u; s < slots; s++) {
                ra[s] = fetch_a(s, t, tile, ti0, next, k_end);
                rb[s] = fetch_b(s, t, tile, tj0, next, k_end);
            }
        }
        for (var p = 0u; p < KT; p++) {
            let a = tiles[p * TILE_STRIDE + ty];
            let b = tiles[B_TILE + p * TILE_STRIDE + tx];
            acc[0] = fma(vec4<f32>(a.x), b, acc[0]);
            acc[1] = fma(vec4<f32>(a.y), b, acc[1]);
            acc[2] = fma(vec4<f32>(a.z), b, acc[2]);
            acc[3] = fma(vec4<f32>(a.w), b, acc[3]);
        }
        workgroupBarrier();
    }
    return acc;
}

/// Grid: x over column blocks of 4 TX, y over row blocks of 4 TX, one `tiled_block` over all of K each, stored
/// through the epilogue.
@compute @workgroup_size(WG)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) t: u32) {
    let rb = row_block(wid, nwg);
    let acc = tiled_block(wid.x, rb, t, 0u, params.k);
    let tile = 4u * TX;
    store_block(rb * tile + 4u * (t / TX), 1u, wid.x * tile + 4u * (t % TX), 1u, acc);
}

/// Raw partial products of the split kernel, [splits][M][N] f32 (no epilogue).
@group(0) @binding(6) var<storage, read_write> c_part: array<f32>;

/// K in chunks of this many elements per split: the chunks of KT split evenly over params.splits (the host
/// chooses splits so that none is empty).
fn split_len() -> u32 {
    let chunks = (params.k + KT - 1u) / KT;
    return (chunks + params.splits - 1u) / params.splits * KT;
}

/// The tiled kernel with K split over params.splits workgroups per block of C, for products with few blocks.
/// Grid: x over column blocks, y over (split, row block) pairs, the split major. Writes each split's raw block to
/// c_part; `matmul_split_sum` adds them and applies the epilogue.
@compute @workgroup_size(WG)
fn matmul_tiled_split(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let tile = 4u * TX;
    let row_blocks = (params.m + tile - 1u) / tile;
    let split = wid.y / row_blocks;
    let k_begin = split * split_len();
    let k_end = min(params.k, k_begin + split_len());
    let acc = tiled_block(wid.x, wid.y % row_blocks, t, k_begin, k_end);
    let i0 = (wid.y % row_blocks) * tile + 4u * (t / TX);
    let j0 = wid.x * tile + 4u * (t % TX);
    for (var r = 0u; r < R; r++) {
        let i = i0 + r;
        for (var c = 0u; c < R; c++) {
            let j = j0 + c;
            if (i < params.m && j < params.n) {
                c_part[(split * params.m + i) * params.n + j] = acc[r][c];
            }
        }
    }
}

/// C = the sum of the splits' partial products, in split order, through the epilogue. Grid: 2D, flattened, WG
/// elements of C per workgroup.
@compute @workgroup_size(WG)
fn matmul_split_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) t: u32) {
    let e = (wid.x + wid.y * nwg.x) * WG + t;
    let size = params.m * params.n;
    if (e >= size) {
        return;
    }
    var c = 0.0;
    for (var s = 0u; s < params.splits; s++) {
        c += c_part[s * size + e];
    }
    store_c(e / params.n, e % params.n, c);
}
