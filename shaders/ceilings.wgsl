// Ceiling kernels for the benchmark (src/bench/ceilings.rs): what this adapter can do at best, measured with the
// same tools as the kernels it is compared with.
//
// copy_*: dst[i] = src[i] over vec4<f32> (16 bytes per access), PER_THREAD vec4 per thread, in two layouts:
//   copy_strided: a thread's vec4s are WG apart (neighbouring threads touch neighbouring addresses; the layout of
//                 the activation kernels),
//   copy_blocked: a thread's vec4s are consecutive.
// fma_peak: 8 independent chains of vec4 fused multiply-adds per thread, 4 per chain and loop iteration, for
//   `params.n` iterations (a uniform, so the loop cannot be folded): 8 x 4 x 4 lanes x 2 = 256 FLOP per thread and
//   iteration. The result is stored so the work cannot be removed.
//
// Bindings: 0: src (read), 1: dst (read_write), 3: params (uniform). Dispatch: a 2D grid of workgroups flattened as
// wid.x + wid.y * num_workgroups.x; threads past len4 do nothing.

override WG: u32;
override PER_THREAD: u32 = 4u;

struct Params {
    /// copy: vec4 elements in this dispatch. fma_peak: loop iterations.
    n: u32,
    /// fma_peak: the multiplier, a uniform so the chains cannot be folded.
    m: f32,
    /// fma_peak: the addend.
    c: f32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> params: Params;

fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

@compute @workgroup_size(WG)
fn copy_strided(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = group_index(wid, nwg) * WG * PER_THREAD + lid.x;
    for (var k = 0u; k < PER_THREAD; k++) {
        let i = base + k * WG;
        if (i < params.n) {
            dst[i] = src[i];
        }
    }
}

@compute @workgroup_size(WG)
fn copy_blocked(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = (group_index(wid, nwg) * WG + lid.x) * PER_THREAD;
    for (var k = 0u; k < PER_THREAD; k++) {
        let i = base + k;
        if (i < params.n) {
            dst[i] = src[i];
        }
    }
}

/// Four dependent fused multiply-adds: `a m + c`, four times (the loop body is unrolled to keep loop overhead
/// out of the measurement; llvmpipe measured twice the rate with it).
fn fma4(a: vec4<f32>, m: vec4<f32>, c: vec4<f32>) -> vec4<f32> {
    return fma(fma(fma(fma(a, m, c), m, c), m, c), m, c);
}

@compute @workgroup_size(WG)
fn fma_peak(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let id = group_index(wid, nwg) * WG + lid.x;
    let m = vec4<f32>(params.m);
    let c = vec4<f32>(params.c);
    let s = vec4<f32>(f32(id) * 1e-7) + vec4<f32>(0.0, 0.25, 0.5, 0.75);
    // 8 independent chains (32 lanes of FMA per thread): enough to hide FMA latency on GPUs and on llvmpipe's SIMD.
    var a0 = s;
    var a1 = s + 1.0;
    var a2 = s + 2.0;
    var a3 = s + 3.0;
    var a4 = s + 4.0;
    var a5 = s + 5.0;
    var a6 = s + 6.0;
    var a7 = s + 7.0;
    for (var k = 0u; k < params.n; k++) {
        a0 = fma4(a0, m, c);
        a1 = fma4(a1, m, c);
        a2 = fma4(a2, m, c);
        a3 = fma4(a3, m, c);
        a4 = fma4(a4, m, c);
        a5 = fma4(a5, m, c);
        a6 = fma4(a6, m, c);
        a7 = fma4(a7, m, c);
    }
    dst[id] = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
}
