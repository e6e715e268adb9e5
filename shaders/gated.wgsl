// Gated units out = a * f(g), PyTorch's convention: the last dimension of x splits into halves a | g (or a and g
// come as two tensors). f is the activation library's ACT: sigmoid for GLU, relu for ReGLU, gelu / gelu_tanh for
// GeGLU, silu for SwiGLU. Backward gives both halves' gradients in one pass:
//   da = dout * f(g),   dg = dout * a * f'(g).
// Appended by the host to storage.wgsl, activation_lib.wgsl and activation_io_packed.wgsl.
//
// Bindings: 0 x or a (read, X_T), 1 out or da / dx (read_write, OUT_T), 2 g (read, DY_T), 3 params,
// 6 dg (read_write, G2_T), 7 dout (read, DO_T). Split-layout entry points: with a half width that is a multiple of
// 8, a unit per load and store (gated_*_units on a flat grid, gated_*_rows on a grid of rows); otherwise they read x
// element by element and write dx element by element (f32) or in aligned pairs (16-bit; an odd half width takes
// gated_backward_split_odd).

override WG: u32;
override PER_THREAD: u32 = 1u;
override G2_T: u32 = T_F32;
override DO_T: u32 = T_F32;

struct GatedParams {
    /// 8-element units of the output in this dispatch.
    units: u32,
    /// Index of this dispatch's first unit.
    first_unit: u32,
    /// Half width C: out is [rows, C], x is [rows, 2C].
    half: u32,
    /// Output elements (rows * C), to stop at the end of the last unit.
    len: u32,
}

@group(0) @binding(3) var<uniform> params: GatedParams;
@group(0) @binding(6) var<storage, read_write> dg_out: array<vec4<u32>>;
@group(0) @binding(7) var<storage, read> dout_in: array<vec4<u32>>;

fn load_dout(u: u32) -> Oct {
    if (DO_T == T_F32) {
        return Oct(bitcast<vec4<f32>>(dout_in[2u * u]), bitcast<vec4<f32>>(dout_in[2u * u + 1u]));
    }
    return unpack_oct(DO_T, dout_in[u]);
}

fn store_dg(u: u32, v: Oct) {
    if (G2_T == T_F32) {
        dg_out[2u * u] = bitcast<vec4<u32>>(v.a);
        dg_out[2u * u + 1u] = bitcast<vec4<u32>>(v.b);
    } else {
        dg_out[u] = pack_oct(G2_T, v);
    }
}

/// Element i of x (binding 0), widened to f32.
fn load_x_elem(i: u32) -> f32 {
    if (X_T == T_F32) {
        return bitcast<f32>(x_in[i >> 2u][i & 3u]);
    }
    let w = x_in[i >> 3u][(i >> 1u) & 3u];
    return half_to_f32(X_T, (w >> ((i & 1u) * 16u)) & 0xffffu);
}

/// Element i of dout (binding 7), widened to f32.
fn load_dout_elem(i: u32) -> f32 {
    if (DO_T == T_F32) {
        return bitcast<f32>(dout_in[i >> 2u][i & 3u]);
    }
    let w = dout_in[i >> 3u][(i >> 1u) & 3u];
    return half_to_f32(DO_T, (w >> ((i & 1u) * 16u)) & 0xffffu);
}

/// Stores dx[i] (f32 only).
fn store_out_f32(i: u32, v: f32) {
    out[i >> 2u][i & 3u] = bitcast<u32>(v);
}

/// Stores dx[i], dx[i + 1] (16-bit, i even).
fn store_out_pair(i: u32, v0: f32, v1: f32) {
    let w = i >> 1u;
    out[w >> 2u][w & 3u] = pack_pair(OUT_T, v0, v1);
}

fn gate4(a: vec4<f32>, g: vec4<f32>) -> vec4<f32> {
    return a * fwd4(g);
}

/// out = a f(g) for a unit of 8 elements.
fn gated_out(a: Oct, g: Oct) -> Oct {
    return Oct(gate4(a.a, g.a), gate4(a.b, g.b));
}

/// da = dout f(g) for a unit.
fn gated_da(g: Oct, d: Oct) -> Oct {
    return Oct(d.a * fwd4(g.a), d.b * fwd4(g.b));
}

/// dg = dout a f'(g) for one element, without an intermediate overflow where dg is finite: (dout a) f'(g), as
/// the activation backward takes it, unless dout a overflows with both finite (then |a| > 1, so dout f'(g)
/// overflows only where dg does, and (dout f'(g)) a is taken; likewise where dout a underflows). Neither order alone is safe: dout a overflows for
/// dout = a = 2^66 where f'(g) is 0 (ReGLU at g < 0: NaN) or tiny (GLU at -30), dout f'(g) for dout near the
/// largest f32 where f'(g) > 1 (GeGLU at 1.5, f' = 1.13) or for any gate with a large f' (squared ReLU, a custom
/// gate). Selects, not a branch: one act_backward either way, and the lanes stay in step.
fn gated_dg1(a: f32, g: f32, d: f32) -> f32 {
    let u = d * a;
    // Also where dout a leaves the normal range with both nonzero (1e-25 x 1e-25): a gate whose f'(g) is large
    // (squared ReLU at g = 1e20) can bring the product back (2e-30), which dout a, flushed or subnormal, loses.
    // (a normal: with a subnormal a, |dout| can be large enough for dout f'(g) to overflow where dout a did not.)
    let small = abs(u) < 1.1754944e-38 && d != 0.0 && abs(a) >= 1.1754944e-38;
    let later = (is_inf(u) || small) && !is_inf(d) && !is_inf(a);
    let q = act_backward(g, select(u, d, later));
    return select(q, q * a, later);
}

fn gated_dg4(a: vec4<f32>, g: vec4<f32>, d: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(gated_dg1(a.x, g.x, d.x), gated_dg1(a.y, g.y, d.y), gated_dg1(a.z, g.z, d.z),
                     gated_dg1(a.w, g.w, d.w));
}

/// dg = dout a f'(g) for a unit ([`gated_dg1`] per element).
fn gated_dg(a: Oct, g: Oct, d: Oct) -> Oct {
    return Oct(gated_dg4(a.a, g.a, d.a), gated_dg4(a.b, g.b, d.b));
}

fn first_unit(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG * PER_THREAD + lid.x;
}

/// x-index of the a element of output element e (g is half further on).
fn a_index(e: u32) -> u32 {
    let r = e / params.half;
    return e + r * params.half;
}

@compute @workgroup_size(WG)
fn gated_forward_pair(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = first_unit(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let u = base + k * WG;
        if (u < params.units) {
            let a = load_x(u);
            let g = load_dy(u);
            store_out(u, gated_out(a, g));
        }
    }
}

@compute @workgroup_size(WG)
fn gated_backward_pair(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = first_unit(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let u = base + k * WG;
        if (u < params.units) {
            let a = load_x(u);
            let g = load_dy(u);
            let d = load_dout(u);
            store_out(u, gated_da(g, d));
            store_dg(u, gated_dg(a, g, d));
        }
    }
}

// Split layout with a half width C that is a multiple of 8: every unit of out lies in one row, and its a and g
// elements are whole units of x, so the split layout runs as the two-tensor one does, a unit (two vec4 of f32,
// one vec4<u32> of a 16-bit type) per load and store. (Element by element, an f32 dx took 175 us at 4096 x 4096 on
// an NVIDIA H200, against 59 us for bf16: every thread stored 16 scattered words.)

/// Unit of x holding the a elements of out's unit u (C a multiple of 8); its g elements are C / 8 units further.
/// (Dividing in f32 instead, with a correction, measured the same on lavapipe: the loads, not the division, bound
/// it.)
fn a_unit(u: u32) -> u32 {
    let half_units = params.half / 8u;
    return u + (u / half_units) * half_units;
}

@compute @workgroup_size(WG)
fn gated_forward_units(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = first_unit(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let u = base + k * WG;
        if (u < params.units) {
            let au = a_unit(u);
            let a = load_x(au);
            let g = load_x(au + params.half / 8u);
            store_out(u, gated_out(a, g));
        }
    }
}

@compute @workgroup_size(WG)
fn gated_backward_units(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = first_unit(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let u = base + k * WG;
        if (u < params.units) {
            let au = a_unit(u);
            let gu = au + params.half / 8u;
            let a = load_x(au);
            let g = load_x(gu);
            let d = load_dout(u);
            store_out(au, gated_da(g, d));
            store_out(gu, gated_dg(a, g, d));
        }
    }
}

// The same on a grid of rows (y, continued along z) by column threads (x), for rows of at least a workgroup's
// units: the addresses are then affine in the thread index, which llvmpipe turns into vector loads (lavapipe,
// 4096 x 4096: SwiGLU forward f32 13.1 -> 11.9 ms, bf16 11.3-12.1 -> 9.2-10.1 ms, backward f32 21.6-22.0 ->
// 20.2-20.3 ms, bf16 19.4-19.9 -> 15.7-17.1 ms). Narrower rows keep the flat grid, whose workgroups span rows.

/// Row of a `*_rows` kernel's workgroup: the grid's y, continued along z past the per-dimension limit.
fn units_row(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y + wid.z * nwg.y;
}

@compute @workgroup_size(WG)
fn gated_forward_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_id) lid: vec3<u32>) {
    let hu = params.half / 8u;
    let row = units_row(wid, nwg);
    if (row * hu >= params.units) {
        return;
    }
    let base = wid.x * WG * PER_THREAD + lid.x;
    for (var k = 0u; k < PER_THREAD; k++) {
        let c = base + k * WG;
        if (c < hu) {
            let au = 2u * row * hu + c;
            let a = load_x(au);
            let g = load_x(au + hu);
            store_out(row * hu + c, gated_out(a, g));
        }
    }
}

@compute @workgroup_size(WG)
fn gated_backward_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_id) lid: vec3<u32>) {
    let hu = params.half / 8u;
    let row = units_row(wid, nwg);
    if (row * hu >= params.units) {
        return;
    }
    let base = wid.x * WG * PER_THREAD + lid.x;
    for (var k = 0u; k < PER_THREAD; k++) {
        let c = base + k * WG;
        if (c < hu) {
            let au = 2u * row * hu + c;
            let gu = au + hu;
            let a = load_x(au);
            let g = load_x(gu);
            let d = load_dout(row * hu + c);
            store_out(au, gated_da(g, d));
            store_out(gu, gated_dg(a, g, d));
        }
    }
}

@compute @workgroup_size(WG)
fn gated_forward_split(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = first_unit(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let u = base + k * WG;
        if (u < params.units) {
            var v: array<f32, 8>;
            let e0 = 8u * (params.first_unit + u);
            for (var j = 0u; j < 8u; j++) {
                let e = min(e0 + j, params.len - 1u);
                let i = a_index(e);
                v[j] = load_x_elem(i) * act_forward(load_x_elem(i + params.half));
            }
            store_out(u, Oct(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7])));
        }
    }
}

/// One thread per 8 output elements; dx is written element by element (f32) or in word-aligned pairs (16-bit).
@compute @workgroup_size(WG)
fn gated_backward_split(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = first_unit(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let u = base + k * WG;
        if (u < params.units) {
            let d = load_dout(u);
            let ds = array<f32, 8>(d.a.x, d.a.y, d.a.z, d.a.w, d.b.x, d.b.y, d.b.z, d.b.w);
            let e0 = 8u * (params.first_unit + u);
            for (var j = 0u; j < 8u; j += 2u) {
                let e = e0 + j;
                if (e >= params.len) {
                    break;
                }
                let i0 = a_index(e);
                let a0 = load_x_elem(i0);
                let g0 = load_x_elem(i0 + params.half);
                let da0 = ds[j] * act_forward(g0);
                let dg0 = gated_dg1(a0, g0, ds[j]);
                if (OUT_T == T_F32) {
                    store_out_f32(i0, da0);
                    store_out_f32(i0 + params.half, dg0);
                    if (e + 1u < params.len) {
                        let i1 = a_index(e + 1u);
                        let a1 = load_x_elem(i1);
                        let g1 = load_x_elem(i1 + params.half);
                        store_out_f32(i1, ds[j + 1u] * act_forward(g1));
                        store_out_f32(i1 + params.half, gated_dg1(a1, g1, ds[j + 1u]));
                    }
                } else {
                    // half is even, so e and e + 1 share a row and i0 is even: whole words.
                    let a1 = load_x_elem(i0 + 1u);
                    let g1 = load_x_elem(i0 + 1u + params.half);
                    store_out_pair(i0, da0, ds[j + 1u] * act_forward(g1));
                    store_out_pair(i0 + params.half, dg0, gated_dg1(a1, g1, ds[j + 1u]));
                }
            }
        }
    }
}

/// Element f of the split layout's dx = [da | dg] ([rows, 2C]): da = dout f(g) in a column below C, dg = dout a
/// f'(g) past it, each from its own loads.
fn split_grad(f: u32) -> f32 {
    let width = 2u * params.half;
    let c = f % width;
    let in_a = c < params.half;
    let k = select(c - params.half, c, in_a);
    let row = f / width;
    let a = load_x_elem(row * width + k);
    let g = load_x_elem(row * width + params.half + k);
    let d = load_dout_elem(row * params.half + k);
    return select(gated_dg1(a, g, d), d * act_forward(g), in_a);
}

/// `gated_backward_split` for a 16-bit dx whose half width C is odd, where da and dg share the word at every
/// row's middle: one thread per 8 elements of dx (params.units and params.len count dx), each aligned pair
/// computed element by element and stored as one word (dx has 2C elements per row: whole words).
@compute @workgroup_size(WG)
fn gated_backward_split_odd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = first_unit(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let u = base + k * WG;
        if (u < params.units) {
            let e0 = 8u * (params.first_unit + u);
            for (var j = 0u; j < 8u; j += 2u) {
                let e = e0 + j;
                if (e >= params.len) {
                    break;
                }
                store_out_pair(e, split_grad(e), split_grad(e + 1u));
            }
        }
    }
}
