// Elementwise activation kernels, forward and backward, over f32 storage read and written as vec4 (16 bytes per
// access). Appended to activation_lib.wgsl by the host.
//
// Bindings (one numbering for every entry point; each entry point uses the subset it needs):
//   0: x (read), 1: out (read_write: y, dx, or the in-place operand), 2: dy (read), 3: params (uniform).
// Dispatch: a 2D grid of workgroups (x up to 65,535); each thread handles PER_THREAD vec4s strided by WG so that
// neighbouring threads touch neighbouring addresses. Buffers are padded to whole vec4s by the host.

override WG: u32;
override PER_THREAD: u32 = 1u;

struct Params {
    /// Number of vec4 elements to process in this dispatch.
    len4: u32,
}

@group(0) @binding(0) var<storage, read> x_in: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> dy_in: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> params: Params;

fn first_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    let group = wid.x + wid.y * nwg.x;
    return group * WG * PER_THREAD + lid.x;
}

fn fwd4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(act_forward(v.x), act_forward(v.y), act_forward(v.z), act_forward(v.w));
}

fn bwd4(v: vec4<f32>, g: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(act_backward(v.x, g.x), act_backward(v.y, g.y), act_backward(v.z, g.z), act_backward(v.w, g.w));
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = first_index(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let i = base + k * WG;
        if (i < params.len4) {
            out[i] = fwd4(x_in[i]);
        }
    }
}

@compute @workgroup_size(WG)
fn forward_inplace(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = first_index(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let i = base + k * WG;
        if (i < params.len4) {
            out[i] = fwd4(out[i]);
        }
    }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = first_index(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let i = base + k * WG;
        if (i < params.len4) {
            out[i] = bwd4(x_in[i], dy_in[i]);
        }
    }
}

/// dy is overwritten with dx (binding 1 holds dy on entry).
@compute @workgroup_size(WG)
fn backward_inplace(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = first_index(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let i = base + k * WG;
        if (i < params.len4) {
            out[i] = bwd4(x_in[i], out[i]);
        }
    }
}
