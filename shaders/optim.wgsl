// Optimizer updates, one fused kernel per parameter tensor, one thread per element, f32, as torch.optim defines
// them. Every hyperparameter, the learning rate and the step count come in the uniform block, so they change
// between steps without recompiling; the pipeline key names only the entry point and the workgroup size (and the
// `*_norm` entry points' NORM_PER_THREAD).
//
//   sgd           g = grad + wd p;  p -= lr g
//   sgd_momentum  g = grad + wd p;  b = g at step 1, else momentum b + (1 - dampening) g;
//                 g = g + momentum b (Nesterov) or b;  p -= lr g
//   adam          g = grad + wd p (Adam) or p *= 1 - lr wd (AdamW, decoupled);
//                 m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
//                 p -= step_size m / (sqrt(v) inv_sqrt_bc2 + eps)
//                 with step_size = lr / (1 - beta1^t), inv_sqrt_bc2 = 1 / sqrt(1 - beta2^t), computed on the host
//                 in f64 (PyTorch's eps placement: denom = sqrt(v_hat) + eps).
//   accumulate    param = lr grad at step 1, else param + lr grad: a training step's gradient summed over
//                 the passes it runs in, each pass's weighted by its share of the batch (not an optimizer)
//
// The `*_norm` entry points do the same update and also write, per thread, the sum of the squares of the
// NORM_PER_THREAD gradients it read (`grad`, before weight decay) into partials: the gradient norm's partial sums,
// at no extra pass over memory (the host adds the partials in f64).

override WG: u32 = 64u;
/// Elements per thread of the `*_norm` entry points.
override NORM_PER_THREAD: u32 = 16u;

struct OptimParams {
    n: u32,
    step: u32,
    lr: f32,
    weight_decay: f32,
    momentum: f32,
    dampening: f32,
    nesterov: u32,
    decoupled: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    step_size: f32,
    inv_sqrt_bc2: f32,
    /// The `*_norm` entry points: where this dispatch's first partial sum goes in `partials` (past 0 for a
    /// dispatch over a later chunk of a tensor larger than one storage binding).
    partial_base: u32,
}

@group(0) @binding(0) var<storage, read> grad: array<f32>;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<uniform> params: OptimParams;
@group(0) @binding(5) var<storage, read_write> state_m: array<f32>;
@group(0) @binding(6) var<storage, read_write> state_v: array<f32>;
@group(0) @binding(7) var<storage, read_write> partials: array<f32>;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

/// g + weight_decay p, the L2 decay in the gradient; skipped where the decay is 0, as PyTorch skips it, so that an
/// infinite parameter does not turn NaN through 0 * inf.
fn l2(g: f32, p: f32) -> f32 {
    return select(g, fma(params.weight_decay, p, g), params.weight_decay != 0.0);
}

fn sgd_update(i: u32) {
    let p = param[i];
    let g = l2(grad[i], p);
    param[i] = p - params.lr * g;
}

fn sgd_momentum_update(i: u32) {
    let p = param[i];
    var g = l2(grad[i], p);
    var b = g;
    if (params.step > 1u) {
        b = params.momentum * state_m[i] + (1.0 - params.dampening) * g;
    }
    state_m[i] = b;
    if (params.nesterov != 0u) {
        g = fma(params.momentum, b, g);
    } else {
        g = b;
    }
    param[i] = p - params.lr * g;
}

fn adam_update(i: u32) {
    var p = param[i];
    var g = grad[i];
    if (params.decoupled != 0u) {
        p = p * (1.0 - params.lr * params.weight_decay);
    } else {
        g = l2(g, p);
    }
    let m = params.beta1 * state_m[i] + (1.0 - params.beta1) * g;
    // (1 - beta2) g^2: g^2 overflows from |g| = 1.8e19, where PyTorch's order, ((1 - beta2) g) g, holds to
    // 5.8e20 (see `Adam` in src/ops/optim.rs for why this order stays).
    let v = params.beta2 * state_v[i] + (1.0 - params.beta2) * (g * g);
    state_m[i] = m;
    state_v[i] = v;
    let denom = sqrt(v) * params.inv_sqrt_bc2 + params.eps;
    param[i] = p - params.step_size * (m / denom);
}

@compute @workgroup_size(WG)
fn accumulate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element(wid, nwg, lid);
    if (i < params.n) {
        let sum = select(param[i], 0.0, params.step == 1u);
        param[i] = sum + params.lr * grad[i];
    }
}

@compute @workgroup_size(WG)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element(wid, nwg, lid);
    if (i < params.n) {
        sgd_update(i);
    }
}

@compute @workgroup_size(WG)
fn sgd_momentum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element(wid, nwg, lid);
    if (i < params.n) {
        sgd_momentum_update(i);
    }
}

@compute @workgroup_size(WG)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element(wid, nwg, lid);
    if (i < params.n) {
        adam_update(i);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// With the gradient's sums of squares. One entry point per rule rather than one selected by an override: a
// pipeline's bind group layout holds every binding its entry point could touch, so a shared entry point would
// make plain SGD bind Adam's moment buffers. Each thread updates NORM_PER_THREAD elements strided by WG, adds their
// squares in a register in that order, and writes one partial sum: no workgroup memory and no barriers (the
// tree reduction they would need made the update 9x slower on lavapipe).

/// The partial sum written by thread `lid` of workgroup `wid`, and where its first element is.
fn norm_slot(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

fn norm_first(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG * NORM_PER_THREAD + lid.x;
}

fn store_partial(slot: u32, sq: f32) {
    let at = params.partial_base + slot;
    if (at < arrayLength(&partials)) {
        partials[at] = sq;
    }
}

@compute @workgroup_size(WG)
fn sgd_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let first = norm_first(wid, nwg, lid);
    var sq = 0.0;
    for (var k = 0u; k < NORM_PER_THREAD; k++) {
        let i = first + k * WG;
        if (i < params.n) {
            let g = grad[i];
            sq += g * g;
            sgd_update(i);
        }
    }
    store_partial(norm_slot(wid, nwg, lid), sq);
}

@compute @workgroup_size(WG)
fn sgd_momentum_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let first = norm_first(wid, nwg, lid);
    var sq = 0.0;
    for (var k = 0u; k < NORM_PER_THREAD; k++) {
        let i = first + k * WG;
        if (i < params.n) {
            let g = grad[i];
            sq += g * g;
            sgd_momentum_update(i);
        }
    }
    store_partial(norm_slot(wid, nwg, lid), sq);
}

@compute @workgroup_size(WG)
fn adam_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let first = norm_first(wid, nwg, lid);
    var sq = 0.0;
    for (var k = 0u; k < NORM_PER_THREAD; k++) {
        let i = first + k * WG;
        if (i < params.n) {
            let g = grad[i];
            sq += g * g;
            adam_update(i);
        }
    }
    store_partial(norm_slot(wid, nwg, lid), sq);
}
