#!/usr/bin/env python3
"""Compares what actgpu's GPU kernels wrote (examples/torch_cases.rs) with PyTorch, an oracle independent of the
crate's own f64 CPU reference, which is this crate's reading of PyTorch and so cannot catch a misreading of it
(a constant, a parametrisation, which half of a gated unit is the gate, a derivative's value at a kink, the eps
placement of an optimizer, the names a state dict loads under).

  cargo run --release --example torch_cases -- DIR
  python3 scripts/torch_crosscheck.py DIR        (needs torch, numpy, safetensors; prints Markdown)

The reference of every case is PyTorch in float64 on the same inputs (for 16-bit storage, rounded once to the
type); each table also shows PyTorch's own error in the storage type on the CPU, for scale:
- activations, forward and backward, over edge values, [-12, 12) and magnitudes 1e-30..1e30, with a few NaN and
  infinite dy, in f32, f16, bf16: the crate's own tolerance (README, "Accuracy"), |actgpu - ref| <= 1e-6 +
  rtol |ref| with rtol 1e-5 for f32 and one ulp for 16-bit (2^-10 f16, 2^-7 bf16), and no absolute slack for
  f32 at 1e-8 <= |x| <= 1e-3; a forward value of the wrong sign fails at any magnitude. So results below about
  1e-6 are checked for sign, not digits: PyTorch's float64 formulas lose some tails to cancellation themselves
  (GELU's 1 + erf(x / sqrt 2) is 0 from x = -8.5, sigmoid's s (1 - s) from x = 37), and the crate's own f64
  reference proves those digits. Tanhshrink's differences x - tanh(x) and dy - dy (1 - tanh^2) cancel at small
  |x| (every digit of y below 1e-8), inside the no-slack range, and the second is inf - inf for an infinite dy,
  so there (|x| < 1e-2, or dy infinite) its reference is mpmath's at 120 digits (`tanhshrink_exact`). An infinity where the reference has one, NaN exactly where it has one, except
  what the README's numerical policy promises instead, counted and checked, not failed: at x = +-inf, where
  PyTorch forms 0 * inf = NaN, the limit, compared with PyTorch's float64 value at x = +-1e30 (an infinity
  where that value grows with x); and NaN out for a NaN x or dy or an infinite dy times a zero derivative, where
  PyTorch's masked backwards give a number;
- bias + activation, gated units, learnable activations, losses: max |error| / max |ref| <= 1e-5, or within
  twice PyTorch's own f32 error; 2^-8 for the bf16 gated units, with no such allowance;
- softmax and log-softmax over rows, f32 and bf16: the forward against torch.softmax / torch.log_softmax, the
  backward against PyTorch's own backward (aten::_softmax_backward_data, _log_softmax_backward_data) applied to
  actgpu's y and dy, both in float64 (rounded once to bf16 for bf16), within the same bound (2^-7 for bf16: one
  ulp of the largest element, which may lie just below a power of two);
- optimizers (20 updates) and a small MLP (20 Adam steps from the same weights, loaded by nn.Sequential under
  the file's names): the error over the largest move of a parameter, <= 1e-5 (1e-3 for the MLP, whose 20 steps
  amplify rounding) or within twice PyTorch's own f32 error.
Exit status 1 if any case fails.
"""
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open

torch.set_num_threads(2)

TORCH_DTYPE = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
# Activations: |got - ref| <= ATOL + RTOL |ref|, ref = PyTorch in float64 rounded once to the storage type. f32 is
# the crate's own tolerance (README, "Accuracy"); 16-bit allows one unit in the last place of the rounded result.
RTOL = {"f32": 1e-5, "f16": 2.0**-10, "bf16": 2.0**-7}
ATOL = 1e-6


def activation(spec):
    """The torch function of an activation spec (`name` or `name(p0[,p1])`), in any dtype."""
    name, _, rest = spec.partition("(")
    p = [float(v) for v in rest.rstrip(")").split(",")] if rest else []
    return {
        "identity": lambda x: x * 1,
        "relu": F.relu,
        "relu6": F.relu6,
        "leaky_relu": lambda x: F.leaky_relu(x, p[0] if p else 0.01),
        "elu": lambda x: F.elu(x, p[0] if p else 1.0),
        "celu": lambda x: F.celu(x, p[0] if p else 1.0),
        "selu": F.selu,
        "gelu": F.gelu,
        "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
        "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
        "silu": F.silu,
        "swish": lambda x: x * torch.sigmoid((p[0] if p else 1.0) * x),
        "mish": F.mish,
        "softplus": lambda x: F.softplus(x, *(p or [1.0, 20.0])),
        "softsign": F.softsign,
        "sigmoid": torch.sigmoid,
        "log_sigmoid": F.logsigmoid,
        "tanh": torch.tanh,
        "hardtanh": lambda x: F.hardtanh(x, *(p or [-1.0, 1.0])),
        "hardsigmoid": F.hardsigmoid,
        "hardswish": F.hardswish,
        "relu_squared": lambda x: F.relu(x) ** 2,
        "hardshrink": lambda x: F.hardshrink(x, p[0] if p else 0.5),
        "softshrink": lambda x: F.softshrink(x, p[0] if p else 0.5),
        "threshold": lambda x: F.threshold(x, *(p or [0.1, 20.0])),
        "tanhshrink": F.tanhshrink,
    }[name]


def tanhshrink_exact(x64, dy64, torch_out):
    """PyTorch's float64 (y, dx) of tanhshrink, but x - tanh(x) and dy tanh(x)^2 from mpmath (which torch's sympy
    brings) at 120 digits where |x| < 1e-2, and dy tanh(x)^2 wherever dy is infinite and x finite. PyTorch forms
    both as differences, x - tanh(x) and dy - dy (1 - tanh^2(x)): near 0 they cancel in float64 too (every digit of
    y below |x| = 1e-8, 4% of dx at 1e-8), where the README's rule has no absolute slack for
    1e-8 <= |x| <= 1e-3 (120 digits keep x^3 / 3 beside x down to f32's smallest subnormal); and for an infinite
    dy the backward's difference is inf - inf = NaN, where the product is +-inf (NaN at x = 0, inf * 0, as the
    README's policy has it). A zero keeps x's sign (tanhshrink is odd), as mpmath's zeros cannot."""
    import mpmath

    mpmath.mp.dps = 120
    y, dx = (np.array(t, dtype=np.float64) for t in torch_out)
    for i, v in enumerate(x64):
        if not np.isfinite(v):
            continue
        small, infinite_dy = abs(v) < 1e-2, np.isinf(dy64[i])
        if not (small or infinite_dy):
            continue
        t = mpmath.tanh(mpmath.mpf(float(v)))
        if small:
            y[i] = math.copysign(float(mpmath.mpf(float(v)) - t), v) if v != 0 else v
        if np.isfinite(dy64[i]) and small or infinite_dy:
            d = mpmath.mpf(float(dy64[i])) * t * t
            dx[i] = float("nan") if mpmath.isnan(d) else float(d)
    return y, dx


def run_activation(f, x, dy, dtype):
    """(y, dx) of f in `dtype` on the CPU, by autograd, as float64 numpy arrays (16-bit and f32 values widened,
    which is exact; a float64 run's values as they are, so that the reference is rounded once, to the storage
    type)."""
    xt = torch.tensor(x).to(dtype).requires_grad_(True)
    y = f(xt)
    y.backward(torch.tensor(dy).to(dtype))
    return y.detach().double().numpy(), xt.grad.double().numpy()


def normalized_error(got, ref, dtype, x):
    """|got - ref| / (ATOL + RTOL |ref|) where both are finite (1 is the tolerance), else 0. For f32 at
    1e-8 <= |x| <= 1e-3 the README's rule has no absolute slack: |got - ref| / (RTOL |ref|)."""
    got, ref = got.astype(np.float64), ref.astype(np.float64)
    both = np.isfinite(got) & np.isfinite(ref)
    small_x = (np.abs(x) >= 1e-8) & (np.abs(x) <= 1e-3) & (ref != 0) if dtype == "f32" else np.zeros_like(both)
    atol = np.where(small_x, 0.0, ATOL)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        e = np.abs(got - ref) / (atol + RTOL[dtype] * np.abs(ref))
    return np.where(both, e, 0.0)


def rounded(values64, dtype):
    """float64 values rounded once to the storage type, widened back to float64."""
    return torch.tensor(values64).to(TORCH_DTYPE[dtype]).double().numpy()


# Where PyTorch's formula gives NaN at x = +-inf (0 * inf), the limit is PyTorch's float64 value at +-1e30 (past
# every activation's transition; 1e300 would overflow the cube in GELU's tanh form, 1e300^3).
LIMIT_PROXY = 1e30


def activation_rows(st, failures):
    """Per activation, dtype and pass: actgpu's and PyTorch's (same dtype) error against PyTorch in float64, and
    how the non-finite elements compare."""
    rows = []
    names = sorted({k.rsplit("/", 2)[0] for k in st.keys() if k.startswith("act/")})
    for base in names:
        spec = base.split("/", 1)[1]
        f = activation(spec)
        for dtype in ("f32", "f16", "bf16"):
            key = f"{base}/{dtype}"
            if f"{key}/x" not in st.keys():
                continue
            x, dy = st.get_tensor(f"{key}/x").numpy(), st.get_tensor(f"{key}/dy").numpy()
            x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
            exact64 = run_activation(f, x64, dy64, torch.float64)
            if spec == "tanhshrink":
                exact64 = tanhshrink_exact(x64, dy64, exact64)
            proxy = np.where(np.isinf(x64), np.sign(x64) * LIMIT_PROXY, x64)
            limit64 = run_activation(f, proxy, dy64, torch.float64)
            same = run_activation(f, x, dy, TORCH_DTYPE[dtype])
            for i, out in enumerate(("y", "dx")):
                ours = st.get_tensor(f"{key}/{out}").numpy().astype(np.float64)
                ref = rounded(exact64[i], dtype)
                e_ours = normalized_error(ours, ref, dtype, x)
                e_torch = normalized_error(same[i], ref, dtype, x)
                # Where PyTorch gives NaN at an infinite input (0 * inf in its formula), the README promises the
                # limit: PyTorch's value at +-1e30, compared as any other element.
                limit = np.isnan(ref) & np.isinf(x) & ~np.isnan(dy)
                limit_ref = rounded(limit64[i], dtype)
                # A value that grows with the proxy (x / 2 for Swish with beta 0) is an infinite limit.
                grows = np.abs(limit64[i]) >= 1e-3 * LIMIT_PROXY
                limit_ref = np.where(grows, np.copysign(np.inf, limit64[i]), limit_ref)
                limit_bad = limit & (
                    np.isnan(ours)
                    | (np.isinf(limit_ref) & (ours != limit_ref))
                    | (np.isfinite(limit_ref) & np.isinf(ours))
                    | (normalized_error(ours, limit_ref, dtype, x) > 1)
                )
                must_nan = np.isnan(x) | np.isnan(dy) if out == "dx" else np.isnan(x)
                # NaN in x or dy gives NaN out, and so does a zero derivative times an infinite dy (the README);
                # PyTorch's masked backwards (relu, identity, ...) give a number there: counted apart ("NaN
                # kept"), not as a problem.
                may_nan = must_nan | np.isinf(dy) if out == "dx" else must_nan
                nan_lost = int((must_nan & ~np.isnan(ours)).sum())
                nan_kept = int((may_nan & ~np.isnan(ref) & np.isnan(ours)).sum())
                nan_made = int((~may_nan & ~np.isnan(ref) & np.isnan(ours)).sum())
                inf_differs = int((np.isinf(ref) & (ours != ref)).sum() + (np.isfinite(ref) & np.isinf(ours)).sum())
                # A value of the wrong sign is wrong at any magnitude, below the absolute tolerance too. Forward
                # only: PyTorch's float64 autograd loses some tails' derivatives to cancellation, sign and all
                # (softsign's `(1 + |x| - x sign x) / (1 + |x|)^2` past |x| = 1e16).
                opposite = int((np.isfinite(ref) & (ref * ours < 0)).sum()) if out == "y" else 0
                zero = (ref == 0) & (ours == 0)
                sign_differs = int((zero & (np.signbit(ref) != np.signbit(ours))).sum())
                worst = int(np.argmax(e_ours))
                r = {
                    "error": float(e_ours.max(initial=0)),
                    "torch_error": float(e_torch.max(initial=0)),
                    "worst_x": float(x[worst]),
                    "limits": int(limit.sum()),
                    "nan_kept": nan_kept,
                    "problems": int(limit_bad.sum()) + nan_lost + nan_made + inf_differs + opposite,
                    "sign_differs": sign_differs,
                }
                ok = r["error"] <= 1 and r["problems"] == 0
                if not ok:
                    failures.append(f"{key} {out}: {r}")
                rows.append((spec, dtype, "forward" if out == "y" else "backward", r, ok))
    return rows


def max_rel(got, exact, scale):
    got, exact = np.asarray(got, np.float64).ravel(), np.asarray(exact, np.float64).ravel()
    return float(np.max(np.abs(got - exact)) / scale) if got.size else 0.0


def fused_rows(st, failures):
    """Bias + activation, gated units, learnable activations, losses and softmax: relative errors against
    float64."""
    rows = []

    def check(name, got, exact64, torch_same, tol, escape=True):
        """`escape`: PyTorch's own error (f32) widens the tolerance; not for 16-bit, where PyTorch rounds its
        intermediates to the storage type and actgpu does not."""
        exact = exact64.numpy().ravel()
        scale = max(float(np.max(np.abs(exact))), 1e-30)
        ours_err = max_rel(got, exact, scale)
        torch_err = max_rel(torch_same, exact, scale)
        ok = ours_err <= (max(tol, 2 * torch_err) if escape else tol)
        if not ok:
            failures.append(f"{name}: actgpu {ours_err:.3g}, torch {torch_err:.3g}, tolerance {tol:g}")
        rows.append((name, ours_err, torch_err, ok))

    for key in sorted({k.rsplit("/", 1)[0] for k in st.keys() if k.startswith("bias/")}):
        f = activation(key.split("/")[1])
        t = {n: st.get_tensor(f"{key}/{n}") for n in ("x", "b", "dy", "y", "dx", "db")}
        for dt in (torch.float64, torch.float32):
            x, b = t["x"].to(dt).requires_grad_(True), t["b"].to(dt).requires_grad_(True)
            y = f(x + b)
            y.backward(t["dy"].to(dt))
            if dt == torch.float64:
                exact = (y.detach(), x.grad, b.grad)
            else:
                same = (y.detach(), x.grad, b.grad)
        for i, n in enumerate(("y", "dx", "db")):
            check(f"{key} {n}", t[n], exact[i], same[i], 1e-5)

    for key in sorted({k.rsplit("/", 1)[0] for k in st.keys() if k.startswith("gated/")}):
        _, name, dtype = key.split("/")
        gate = {"glu": "sigmoid", "reglu": "relu", "geglu": "gelu", "geglu_tanh": "gelu_tanh", "swiglu": "silu"}[name]
        f = activation(gate)
        t = {n: st.get_tensor(f"{key}/{n}") for n in ("x", "dy", "y", "dx")}
        results = {}
        for dt in (torch.float64, TORCH_DTYPE[dtype]):
            x = t["x"].to(dt).requires_grad_(True)
            a, g = x.chunk(2, dim=-1)
            y = F.glu(x, dim=-1) if name == "glu" else a * f(g)
            y.backward(t["dy"].to(dt))
            results[dt] = (y.detach(), x.grad)
        tol = 1e-5 if dtype == "f32" else 2.0**-8
        for i, n in enumerate(("y", "dx")):
            same = results[TORCH_DTYPE[dtype]][i].float()
            exact = results[torch.float64][i].to(TORCH_DTYPE[dtype]).double()
            check(f"{key} {n}", t[n], exact, same, tol, escape=dtype == "f32")

    for key in sorted({k.rsplit("/", 1)[0] for k in st.keys() if k.startswith("learn/")}):
        name = key.split("/")[1]
        t = {n: st.get_tensor(f"{key}/{n}") for n in ("x", "p", "dy", "y", "dx", "dp")}
        for dt in (torch.float64, torch.float32):
            x, p = t["x"].to(dt).requires_grad_(True), t["p"].to(dt).requires_grad_(True)
            if name == "prelu":
                y = F.prelu(x, p)
            elif name == "swish_learnable":
                y = x * torch.sigmoid(p * x)
            else:
                y = torch.where(x > 0, x, p * torch.expm1(x))
            y.backward(t["dy"].to(dt))
            if dt == torch.float64:
                exact = (y.detach(), x.grad, p.grad)
            else:
                same = (y.detach(), x.grad, p.grad)
        for i, n in enumerate(("y", "dx", "dp")):
            check(f"{key} {n}", t[n], exact[i], same[i], 1e-5)

    for key in sorted({k.rsplit("/", 1)[0] for k in st.keys() if k.startswith("loss/")}):
        name = key.split("/")[1]
        t = {n: st.get_tensor(f"{key}/{n}") for n in ("pred", "target", "loss", "grad")}
        for dt in (torch.float64, torch.float32):
            pred = t["pred"].to(dt).requires_grad_(True)
            if name == "softmax_cross_entropy":
                loss = F.cross_entropy(pred, t["target"].long())
            elif name == "mse":
                loss = F.mse_loss(pred, t["target"].to(dt))
            else:
                loss = F.binary_cross_entropy_with_logits(pred, t["target"].to(dt))
            loss.backward()
            if dt == torch.float64:
                exact = (loss.detach().reshape(1), pred.grad)
            else:
                same = (loss.detach().reshape(1), pred.grad)
        check(f"{key} loss", t["loss"], exact[0], same[0], 1e-5)
        check(f"{key} grad", t["grad"], exact[1], same[1], 1e-5)

    for key in sorted({k.rsplit("/", 1)[0] for k in st.keys() if k.startswith("softmax/")}):
        _, name, dtype = key.split("/")
        t = {n: st.get_tensor(f"{key}/{n}") for n in ("x", "dy", "y", "dx")}
        if name == "softmax":
            forward, backward = torch.softmax, torch.ops.aten._softmax_backward_data
        else:
            forward, backward = torch.log_softmax, torch.ops.aten._log_softmax_backward_data
        results = {}
        for dt in (torch.float64, TORCH_DTYPE[dtype]):
            y = forward(t["x"].to(dt), dim=-1)
            # PyTorch's backward takes the forward's output: here actgpu's own y, as actgpu's backward did.
            dx = backward(t["dy"].to(dt), t["y"].to(dt), -1, dt)
            results[dt] = (y, dx)
        tol = 1e-5 if dtype == "f32" else 2.0**-7
        for i, n in enumerate(("y", "dx")):
            same = results[TORCH_DTYPE[dtype]][i].float()
            exact = results[torch.float64][i].to(TORCH_DTYPE[dtype]).double()
            # The first row (+-1e30) apart: its log-softmax of -2e30 would set the scale of every other row.
            for part, label in ((slice(1, None), ""), (slice(0, 1), " (row of +-1e30)")):
                check(f"{key} {n}{label}", t[n][part], exact[part], same[part], tol, escape=dtype == "f32")
    return rows


def torch_optimizer(spec, params):
    kind = spec["kind"]
    if kind == "sgd":
        return torch.optim.SGD(
            params,
            lr=spec["lr"],
            momentum=spec["momentum"],
            dampening=spec["dampening"],
            weight_decay=spec["weight_decay"],
            nesterov=spec["nesterov"],
        )
    cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    return cls(params, lr=spec["lr"], betas=(spec["beta1"], spec["beta2"]), eps=spec["eps"], weight_decay=spec["weight_decay"])


def optimizer_rows(st, failures):
    """Each optimizer's 20 updates: the parameters' error against float64, over how far they moved."""
    rows = []
    meta = st.metadata()
    for key in sorted({k.rsplit("/", 1)[0] for k in st.keys() if k.startswith("optim/")}):
        spec = json.loads(meta[key])
        p0, grads, ours = (st.get_tensor(f"{key}/{n}") for n in ("p0", "grads", "p"))
        result = {}
        for dt in (torch.float64, torch.float32):
            p = torch.nn.Parameter(p0.to(dt).clone())
            opt = torch_optimizer(spec, [p])
            for g in grads:
                p.grad = g.to(dt).clone()
                opt.step()
            result[dt] = p.detach()
        exact = result[torch.float64].numpy()
        moved = float(np.max(np.abs(exact - p0.double().numpy())))
        ours_err = max_rel(ours, exact, moved)
        torch_err = max_rel(result[torch.float32], exact, moved)
        ok = ours_err <= max(1e-5, 2 * torch_err)
        if not ok:
            failures.append(f"{key}: actgpu {ours_err:.3g}, torch {torch_err:.3g} of the largest move")
        rows.append((key, spec, ours_err, torch_err, ok))
    return rows


def mlp_rows(directory, failures):
    """The saved MLP loads into nn.Sequential under PyTorch's own names; 20 Adam steps there match actgpu's."""
    init = safe_open(f"{directory}/mlp_init.safetensors", "pt")
    trained = safe_open(f"{directory}/mlp_trained.safetensors", "pt")
    batch = safe_open(f"{directory}/mlp_batch.safetensors", "pt")
    x, labels, losses = batch.get_tensor("x"), batch.get_tensor("labels").long(), batch.get_tensor("losses")
    sizes = [int(n) for n in init.metadata()["actgpu.sizes"].split(",")]
    rows = []
    final = {}
    for dt in (torch.float64, torch.float32):
        net = torch.nn.Sequential(
            torch.nn.Linear(sizes[0], sizes[1]),
            torch.nn.GELU(),
            torch.nn.Linear(sizes[1], sizes[2]),
            torch.nn.PReLU(sizes[2]),
            torch.nn.Linear(sizes[2], sizes[3]),
        ).to(dt)
        # strict: every name in the file is one nn.Sequential has, and none is missing.
        net.load_state_dict({k: init.get_tensor(k).to(dt) for k in init.keys()}, strict=True)
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        step_losses = []
        for _ in range(len(losses)):
            opt.zero_grad()
            loss = F.cross_entropy(net(x.to(dt)), labels)
            loss.backward()
            opt.step()
            step_losses.append(loss.item())
        final[dt] = ({k: v.detach() for k, v in net.state_dict().items()}, step_losses)
    names_ok = set(init.keys()) == set(final[torch.float32][0].keys())
    if not names_ok:
        failures.append(f"mlp: file names {sorted(init.keys())} against nn.Sequential's {sorted(final[torch.float32][0])}")
    exact_params, exact_losses = final[torch.float64]
    for name in sorted(exact_params):
        exact = exact_params[name].numpy()
        moved = max(float(np.max(np.abs(exact - init.get_tensor(name).double().numpy()))), 1e-12)
        ours_err = max_rel(trained.get_tensor(name), exact, moved)
        torch_err = max_rel(final[torch.float32][0][name], exact, moved)
        ok = ours_err <= max(1e-3, 2 * torch_err)
        if not ok:
            failures.append(f"mlp {name}: actgpu {ours_err:.3g}, torch {torch_err:.3g} of the largest move")
        rows.append((f"mlp {name}", ours_err, torch_err, ok))
    loss_err = max(abs(a - b) / abs(b) for a, b in zip(losses.tolist(), exact_losses))
    torch_loss_err = max(abs(a - b) / abs(b) for a, b in zip(final[torch.float32][1], exact_losses))
    ok = loss_err <= max(1e-4, 2 * torch_loss_err)
    if not ok:
        failures.append(f"mlp losses: actgpu {loss_err:.3g}, torch {torch_loss_err:.3g}")
    rows.append(("mlp losses (per step, relative)", loss_err, torch_loss_err, ok))
    return rows, names_ok


def main():
    args = sys.argv[1:]
    if len(args) != 1 or args[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    directory = args[0]
    st = safe_open(f"{directory}/cases.safetensors", "pt")
    meta = st.metadata()
    failures = []
    act = activation_rows(st, failures)
    fused = fused_rows(st, failures)
    optim = optimizer_rows(st, failures)
    mlp, names_ok = mlp_rows(directory, failures)

    print(f"actgpu {meta.get('version')} on {meta.get('adapter')}; torch {torch.__version__} (CPU), numpy {np.__version__}\n")
    print("Activations: the largest |actgpu - ref| / (1e-6 + rtol |ref|), ref = PyTorch in float64 rounded once to")
    print("the storage type, rtol 1e-5 for f32 (the crate's own tolerance; no 1e-6 for 1e-8 <= |x| <= 1e-3) and")
    print("one ulp for f16 (2^-10) and bf16 (2^-7); 1 is the tolerance. `torch`: the same for PyTorch on the CPU in")
    print("the storage type. `limits`: elements at x = +-inf where PyTorch gives NaN, checked against its value at")
    print("+-1e30; `NaN kept`: a NaN x or dy, or an infinite dy times a zero derivative, whose NaN actgpu passes on")
    print("where PyTorch's masked backward gives a number (both the README's policy). `problems`: NaN lost or made,")
    print("an infinity that differs, a wrong limit, a forward value of the wrong sign; `+-0`: zeros whose sign")
    print("differs (not part of the policy).\n")
    print("| activation | dtype | pass | actgpu | torch | worst x | limits | NaN kept | problems | +-0 | ok |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for spec, dtype, which, r, ok in act:
        print(
            f"| {spec} | {dtype} | {which} | {r['error']:.3f} | {r['torch_error']:.3g} | {r['worst_x']:.4g} |"
            f" {r['limits']} | {r['nan_kept']} | {r['problems']} | {r['sign_differs']} | {'yes' if ok else '**no**'} |"
        )
    print("\nFused ops, losses, softmax (max |error| over max |exact|) against float64:\n")
    print("| case | actgpu | torch f32/16-bit | ok |")
    print("|---|---:|---:|---|")
    for name, ours, theirs, ok in fused:
        print(f"| {name} | {ours:.2e} | {theirs:.2e} | {'yes' if ok else '**no**'} |")
    print("\nOptimizers, 20 updates (max |error| over the largest move) against float64:\n")
    print("| case | hyperparameters | actgpu | torch f32 | ok |")
    print("|---|---|---:|---:|---|")
    for name, spec, ours, theirs, ok in optim:
        print(f"| {name} | `{json.dumps(spec)}` | {ours:.2e} | {theirs:.2e} | {'yes' if ok else '**no**'} |")
    print(f"\nMLP 10-24-24-5 (GELU, PReLU per unit), 20 Adam steps; state dict names load strictly: {names_ok}\n")
    print("| tensor | actgpu | torch f32 | ok |")
    print("|---|---:|---:|---|")
    for name, ours, theirs, ok in mlp:
        print(f"| {name} | {ours:.2e} | {theirs:.2e} | {'yes' if ok else '**no**'} |")
    print()
    if failures:
        print(f"{len(failures)} failing:")
        for f in failures:
            print(" ", f)
        return 1
    print("all cases agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
