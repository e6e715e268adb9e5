// Elementwise activation kernels, forward and backward. Appended by the host to storage.wgsl,
// activation_lib.wgsl and one of the activation_io_*.wgsl files.
//
// Bindings (one numbering for every entry point; each entry point uses the subset it needs):
//   0: x (read), 1: out (read_write: y, dx, or the in-place operand), 2: dy (read), 3: params (uniform).
// Operand access (bindings 0-2 and load_x, load_dy, load_out, store_out) comes from activation_io_packed.wgsl
// (any storage types) or activation_io_f16.wgsl (native f16 where the adapter has SHADER_F16).
// Work is counted in units of 8 elements (see storage.wgsl): 32 bytes of f32 or 16 bytes of 16-bit data per
// access pair. Dispatch: a 2D grid of workgroups (x up to 65,535), each covering WG * PER_THREAD units. The host
// pads every buffer to whole units. Two layouts of a workgroup's block:
//   WORDS = 0 (any storage types): thread t handles units t, t + WG, ... (PER_THREAD of them);
//   WORDS = 1 (every operand f32, or every operand native f16): the block is 2 * WG * PER_THREAD words of 4
//     elements and thread t handles words t, t + WG, ..., so that in every access neighbouring threads touch
//     neighbouring 16-byte words, as the copy ceiling's kernel does (on lavapipe, 2 consecutive words per thread
//     cost about 15% of copy bandwidth).

override WG: u32;
override PER_THREAD: u32 = 1u;
override WORDS: u32 = 0u;
struct Params {
    /// Number of 8-element units to process in this dispatch.
    units: u32,
    /// Index of this dispatch's first unit in the whole tensor (unused here).
    first_unit: u32,
}

@group(0) @binding(3) var<uniform> params: Params;

fn first_unit(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    let group = wid.x + wid.y * nwg.x;
    return group * WG * PER_THREAD + lid.x;
}

/// The first word of this thread in the WORDS = 1 layout; its others follow WG apart.
fn first_word(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    let group = wid.x + wid.y * nwg.x;
    return group * WG * PER_THREAD * 2u + lid.x;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    if (WORDS == 1u) {
        let first = first_word(wid, nwg, lid);
        for (var k = 0u; k < 2u * PER_THREAD; k++) {
            let w = first + k * WG;
            if (w < 2u * params.units) {
                store_out4(w, fwd4(load_x4(w)));
            }
        }
        return;
    }
    let base = first_unit(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let u = base + k * WG;
        if (u < params.units) {
            forward_unit(u);
        }
    }
}

@compute @workgroup_size(WG)
fn forward_inplace(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    if (WORDS == 1u) {
        let first = first_word(wid, nwg, lid);
        for (var k = 0u; k < 2u * PER_THREAD; k++) {
            let w = first + k * WG;
            if (w < 2u * params.units) {
                store_out4(w, fwd4(load_out4(w)));
            }
        }
        return;
    }
    let base = first_unit(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let u = base + k * WG;
        if (u < params.units) {
            forward_unit_in_place(u);
        }
    }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    if (WORDS == 1u) {
        let first = first_word(wid, nwg, lid);
        for (var k = 0u; k < 2u * PER_THREAD; k++) {
            let w = first + k * WG;
            if (w < 2u * params.units) {
                store_out4(w, bwd4(load_x4(w), load_dy4(w)));
            }
        }
        return;
    }
    let base = first_unit(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let u = base + k * WG;
        if (u < params.units) {
            backward_unit(u);
        }
    }
}

/// dy is overwritten with dx (binding 1 holds dy on entry, in type OUT_T).
@compute @workgroup_size(WG)
fn backward_inplace(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    if (WORDS == 1u) {
        let first = first_word(wid, nwg, lid);
        for (var k = 0u; k < 2u * PER_THREAD; k++) {
            let w = first + k * WG;
            if (w < 2u * params.units) {
                store_out4(w, bwd4(load_x4(w), load_out4(w)));
            }
        }
        return;
    }
    let base = first_unit(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let u = base + k * WG;
        if (u < params.units) {
            backward_unit_in_place(u);
        }
    }
}
