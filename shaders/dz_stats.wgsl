// The dense backward's dZ = dY * f'(Z) pass with activation-derivative statistics counted on the way: how many
// elements of Z have f'(z) == 0 ("dead") and how many 0 < |f'(z)| < threshold ("saturated"). Appended by the
// host to storage.wgsl and activation_lib.wgsl (act_backward and act_derivative, specialised by ACT, P0, P1).
//
// Bindings: 0: z (read), 1: dz (read_write), 2: dy (read), 3: params (uniform), 4: counts (atomic u32, added
// to: [dead, saturated, flags of column 0, of column 1, ...]). `dz_stats` writes dz exactly as the
// elementwise backward kernel does (the same act_backward) and counts; `stats_only` only counts (bindings 0, 3,
// 4), for the fused backward that never forms dZ. Each thread handles PER_THREAD elements strided by WG; a
// workgroup adds its counts in workgroup atomics, then one thread adds them to the global counters. NaN in z
// counts as neither, and does not mark its column. A column's flags are set (atomicOr, after a load that skips
// them once set): bit 0 by an element with f'(z) != 0, bit 1 by one with |f'(z)| >= threshold. A unit without
// bit 0 was dead for every row; one with bit 0 but not bit 1 was saturated in every row it was not dead in.

override WG: u32;
const PER_THREAD: u32 = 8u;

struct StatsParams {
    /// Elements in this dispatch.
    n: u32,
    /// |f'(z)| below this (and not 0) counts as saturated.
    threshold: f32,
    /// Z's last dimension (its units).
    cols: u32,
    /// The column of this dispatch's first element.
    first_col: u32,
}

@group(0) @binding(0) var<storage, read> z: array<f32>;
@group(0) @binding(1) var<storage, read_write> dz: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<uniform> params: StatsParams;
@group(0) @binding(4) var<storage, read_write> counts: array<atomic<u32>>;

var<workgroup> group_counts: array<atomic<u32>, 2>;

/// f'(x), including the activation whose backward is not a product with act_derivative.
fn stat_derivative(x: f32) -> f32 {
    if (ACT == ACT_RELU_SQUARED) {
        return 2.0 * max(x, 0.0);
    }
    return act_derivative(x);
}

/// (dead, saturated) for pre-activation `x`, element `i` of the dispatch; marks its column active where
/// f'(x) != 0.
fn classify(x: f32, i: u32) -> vec2<u32> {
    let d = abs(stat_derivative(x));
    if (is_nan(x) || is_nan(d)) {
        return vec2<u32>(0u, 0u);
    }
    // Bit 0: some row of the column has f' != 0 (not dead); bit 1: some row has |f'| >= threshold (not
    // saturated).
    let seen = select(0u, 1u, d != 0.0) | select(0u, 2u, d >= params.threshold);
    if (seen != 0u) {
        let flag = 2u + (params.first_col + i % params.cols) % params.cols;
        if ((atomicLoad(&counts[flag]) & seen) != seen) {
            atomicOr(&counts[flag], seen);
        }
    }
    return vec2<u32>(select(0u, 1u, d == 0.0), select(0u, 1u, d > 0.0 && d < params.threshold));
}

fn first_element(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG * PER_THREAD + lid.x;
}

fn clear_group_counts(t: u32) {
    if (t == 0u) {
        atomicStore(&group_counts[0], 0u);
        atomicStore(&group_counts[1], 0u);
    }
    workgroupBarrier();
}

/// Adds a thread's counts to the workgroup's, then the workgroup's to the global counters. Called by every
/// thread (it holds a barrier).
fn add_counts(c: vec2<u32>, t: u32) {
    if (c.x != 0u) {
        atomicAdd(&group_counts[0], c.x);
    }
    if (c.y != 0u) {
        atomicAdd(&group_counts[1], c.y);
    }
    workgroupBarrier();
    if (t == 0u) {
        let dead = atomicLoad(&group_counts[0]);
        let saturated = atomicLoad(&group_counts[1]);
        if (dead != 0u) {
            atomicAdd(&counts[0], dead);
        }
        if (saturated != 0u) {
            atomicAdd(&counts[1], saturated);
        }
    }
}

@compute @workgroup_size(WG)
fn dz_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    clear_group_counts(lid.x);
    let base = first_element(wid, nwg, lid);
    var c = vec2<u32>(0u, 0u);
    for (var k = 0u; k < PER_THREAD; k++) {
        let i = base + k * WG;
        if (i < params.n) {
            let x = z[i];
            dz[i] = act_backward(x, dy[i]);
            c += classify(x, i);
        }
    }
    add_counts(c, lid.x);
}

@compute @workgroup_size(WG)
fn stats_only(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    clear_group_counts(lid.x);
    let base = first_element(wid, nwg, lid);
    var c = vec2<u32>(0u, 0u);
    for (var k = 0u; k < PER_THREAD; k++) {
        let i = base + k * WG;
        if (i < params.n) {
            c += classify(z[i], i);
        }
    }
    add_counts(c, lid.x);
}
