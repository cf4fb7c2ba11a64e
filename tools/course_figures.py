"""Figures of the theory chapters, made by code (deterministic: fixed seeds, no data files).

    python tools/course_figures.py [OUTDIR]        # default: book/figures

Writes
  representer.png  — a kernel ridge fit as a sum of kernel bumps at all n points (representer
                     theorem, eq. (rep-thm)) and its Nyström restriction to m landmarks (eq. (model));
  ggn_convex.png   — a least-squares loss, its second-order Taylor model and its Gauss–Newton
                     model at a point where the Hessian is negative (eq. (ggn-local));
  entk.png         — the empirical NTK k(x₀, x(θ)) of ReLU MLPs at initialisation along a circle,
                     for several seeds at two widths: the kernel becomes deterministic as the
                     width grows (eq. (entk)).

Each figure is small (a few hundred ms on one core). tests/test_exercises.py runs this script
into a temporary directory and checks that the three files are written.
"""
from __future__ import annotations

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from krepes_lib.backend import host_rng  # noqa: E402
from krepes_lib.kernels import RBF  # noqa: E402
from krepes_lib.files import atomic_path  # noqa: E402

SEED = 0


def _save(fig, outdir, name):
    path = os.path.join(outdir, name)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight",
                    metadata={"Software": None})  # no version string: the same bytes every run
    plt.close(fig)
    return path


def representer(outdir):
    """Kernel ridge regression: f = Σ_i α_i k(x_i, ·) (all n points) vs f = Σ_l ã_l k(x̃_l, ·)."""
    rng = np.random.default_rng(SEED)
    n, m, lam = 40, 8, 1e-2
    x = np.sort(rng.uniform(-3, 3, n))[:, None]
    y = np.sin(1.5 * x[:, 0]) + 0.15 * rng.standard_normal(n)
    grid = np.linspace(-3.2, 3.2, 400)[:, None]
    k = RBF(sigma=0.6)
    K, Kg = k(x, x), k(grid, x)
    alpha = np.linalg.solve(K + n * lam * np.eye(n), y)  # eq. (rep-krr)
    land = x[np.linspace(0, n - 1, m).astype(int)]
    Knm, Kmm, Kgm = k(x, land), k(land, land), k(grid, land)
    a = np.linalg.solve(Knm.T @ Knm + n * lam * Kmm + 1e-10 * np.eye(m), Knm.T @ y)  # eq. (rep-nys)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.3), sharey=True)
    for ax, bumps, f, title in ((axes[0], Kg * alpha, Kg @ alpha, f"representer: n = {n} bumps α_i k(x_i, ·)"),
                                (axes[1], Kgm * a, Kgm @ a, f"Nyström: m = {m} bumps ã_l k(x̃_l, ·)")):
        ax.plot(grid, bumps, color="0.7", lw=0.8)
        ax.plot(x, y, "k.", ms=4)
        ax.plot(grid, f, "C0", lw=2, label="f = sum of bumps")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("x")
    axes[1].plot(land, np.zeros(m) - 1.6, "C3^", label="landmarks")
    axes[1].legend(fontsize=8, loc="upper left")
    return _save(fig, outdir, "representer.png")


def ggn_convex(outdir):
    """L(θ) = r(θ)², r = θ² − 1, at θ₀ = 0.3: Hessian 2r'² + 2r r'' < 0, GGN 2r'² > 0."""
    t0 = 0.3
    r, dr, d2r = t0**2 - 1, 2 * t0, 2.0
    L0, g = r**2, 2 * r * dr
    H, G = 2 * dr**2 + 2 * r * d2r, 2 * dr**2  # eq. (ggn-local)
    t = np.linspace(-1.6, 1.6, 400)
    d = t - t0
    fig, ax = plt.subplots(figsize=(5.5, 3.3))
    ax.plot(t, (t**2 - 1) ** 2, "k", lw=2, label=r"$L(\theta) = (\theta^2-1)^2$")
    ax.plot(t, L0 + g * d + 0.5 * H * d**2, "C3--", label=f"Taylor (Hessian {H:.2f} < 0)")
    ax.plot(t, L0 + g * d + 0.5 * G * d**2, "C0", label=f"Gauss–Newton (GGN {G:.2f} ≥ 0)")
    ax.plot(t, (r + dr * d) ** 2, "C0:", label=r"$(r + J\,\Delta)^2$ = GGN model + const")
    ax.plot([t0], [L0], "ko")
    ax.set_ylim(-1.0, 3.0)
    ax.set_xlabel(r"$\theta$")
    ax.legend(fontsize=8)
    ax.set_title(r"local models at $\theta_0 = 0.3$", fontsize=10)
    return _save(fig, outdir, "ggn_convex.png")


def he_mlp(width: int, seed: int):
    """A 2 → width → 1 ReLU MLP in torch, He-initialised from the host RNG (weights N(0, 2/fan_in),
    biases N(0, 0.01)): the same draw for the same seed on every machine."""
    import torch

    rng = host_rng(seed)
    net = torch.nn.Sequential(torch.nn.Linear(2, width), torch.nn.ReLU(), torch.nn.Linear(width, 1)).double()
    with torch.no_grad():
        for layer, fan_in in ((net[0], 2), (net[2], width)):
            layer.weight.copy_(torch.from_numpy(rng.normal(size=tuple(layer.weight.shape)) * np.sqrt(2.0 / fan_in)))
            layer.bias.copy_(torch.from_numpy(0.1 * rng.normal(size=layer.bias.shape[0])))
    return net


def entk(outdir):
    """eNTK (``TorchNTK``) of 1-hidden-layer ReLU MLPs (He init) along the unit circle, 5 seeds × 2 widths."""
    from krepes_lib.neural import TorchNTK

    theta = np.linspace(-np.pi, np.pi, 121)
    X = np.c_[np.cos(theta), np.sin(theta)]
    x0 = X[60:61]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.3), sharey=True)
    for ax, width in zip(axes, (16, 4096)):
        for s in range(5):
            kx = TorchNTK(he_mlp(width, s), dtype="float64")(x0, X)[0]
            ax.plot(theta, kx / width, lw=1.2)
        ax.set_title(f"width {width}: k(x₀, x(θ)) / width, 5 seeds", fontsize=10)
        ax.set_xlabel("angle θ between x₀ and x")
    return _save(fig, outdir, "entk.png")


def main(outdir=None):
    outdir = outdir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "book", "figures")
    os.makedirs(outdir, exist_ok=True)
    return [representer(outdir), ggn_convex(outdir), entk(outdir)]


if __name__ == "__main__":
    for p in main(sys.argv[1] if len(sys.argv) > 1 else None):
        print(p)
