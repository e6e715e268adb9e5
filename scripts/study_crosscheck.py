#!/usr/bin/env python3
"""An independent check of the activation study's input-scale result, in plain numpy (no actgpu code).

The study (STUDY.md) finds that on the built-in spirals, whose points lie within radius 1, a tanh network stays at
chance, like the linear network, and that it learns once the features are scaled up (`--input-scale`). This
script trains the same setup from scratch with its own data draws, initialisation and training loop, so that an
error shared by actgpu's GPU kernels and its f64 CPU reference could not produce the same numbers:

  spirals, 3 arms of 300 training and 100 test points (radius r in (0, 1], angle 2.5 pi r + 2 pi k / 3, noise),
  a 2-64-64-64-3 MLP, Xavier-uniform weights (He for ReLU), zero biases, softmax cross-entropy, Adam at lr 0.005
  (PyTorch's betas and eps), batch 64, 30 epochs; final test accuracy for seeds 1, 2, 3.

Usage: python3 scripts/study_crosscheck.py [ACT,ACT,...] [SCALE,SCALE,...]   (needs numpy; defaults:
tanh,identity,relu and 1,2,4). A run of all nine settings takes seconds.
"""
import sys

import numpy as np

ACTIVATIONS = {
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0.0).astype(z.dtype)),
    "identity": (lambda z: z, np.ones_like),
    "sigmoid": (lambda z: 1.0 / (1.0 + np.exp(-z)), lambda z: np.exp(-z) / (1.0 + np.exp(-z)) ** 2),
}


def spirals(n, rng):
    """n points per class on three spiral arms, radius at most 1 (as actgpu::datasets::spirals)."""
    i = np.repeat(np.arange(n), 3)
    k = np.tile(np.arange(3), n)
    r = (i + 1.0) / n
    noise = (rng.random(3 * n) + rng.random(3 * n) + rng.random(3 * n) - 1.5) * 0.3
    t = 2.5 * np.pi * r + 2.0 * np.pi * k / 3.0 + noise
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1), k


def train(act, seed, scale, sizes=(2, 64, 64, 64, 3), epochs=30, lr=0.005, batch=64):
    """Final test accuracy of one run."""
    rng = np.random.default_rng(seed)
    x_train, y_train = spirals(300, rng)
    x_test, y_test = spirals(100, rng)
    x_train, x_test = x_train * scale, x_test * scale
    f, df = ACTIVATIONS[act]
    weights, biases = [], []
    for l, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        hidden = l < len(sizes) - 2
        bound = np.sqrt(6.0 / fan_in) if (act == "relu" and hidden) else np.sqrt(6.0 / (fan_in + fan_out))
        weights.append(rng.uniform(-bound, bound, (fan_in, fan_out)))
        biases.append(np.zeros(fan_out))
    params = weights + biases
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    layers = len(weights)

    def forward(x):
        hs, zs = [x], []
        for l in range(layers):
            z = hs[-1] @ weights[l] + biases[l]
            zs.append(z)
            hs.append(f(z) if l < layers - 1 else z)
        return hs, zs

    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(y_train))
        for s in range(0, len(order), batch):
            rows = order[s : s + batch]
            hs, zs = forward(x_train[rows])
            logits = hs[-1] - hs[-1].max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            d = p
            d[np.arange(len(rows)), y_train[rows]] -= 1.0
            d /= len(rows)
            grad_w, grad_b = [None] * layers, [None] * layers
            for l in reversed(range(layers)):
                grad_w[l] = hs[l].T @ d
                grad_b[l] = d.sum(axis=0)
                if l > 0:
                    d = (d @ weights[l].T) * df(zs[l - 1])
            step += 1
            for j, (p_, g) in enumerate(zip(params, grad_w + grad_b)):
                m[j] = 0.9 * m[j] + 0.1 * g
                v[j] = 0.999 * v[j] + 0.001 * g * g
                p_ -= lr / (1 - 0.9**step) * m[j] / (np.sqrt(v[j]) / np.sqrt(1 - 0.999**step) + 1e-8)
    hs, _ = forward(x_test)
    return float((hs[-1].argmax(axis=1) == y_test).mean())


def main():
    acts = (sys.argv[1] if len(sys.argv) > 1 else "tanh,identity,relu").split(",")
    scales = [float(s) for s in (sys.argv[2] if len(sys.argv) > 2 else "1,2,4").split(",")]
    print("activation  scale  test accuracy, seeds 1 2 3")
    for act in acts:
        for scale in scales:
            accs = [train(act, seed, scale) for seed in (1, 2, 3)]
            print(f"{act:<10} {scale:>6g}  " + "  ".join(f"{a:.3f}" for a in accs))


if __name__ == "__main__":
    main()
