"""Numeric answers of the book's exercises, recomputed by solution code.

Each test names the page and exercise whose folded solution states the number; the numbers
below are the ones printed there (with the digits the solution gives), and the code derives
them independently (simulation, optimisation or the library). Also: tools/course_figures.py
runs and is deterministic.
"""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import minimize

from krepes_lib.studies import kpca_gradient as kg
from krepes_lib.studies import stepwise as sw
from entk_reference import MLP, EmpiricalNTK
from krepes_lib.kernels import RBF

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- theory.md ------------------------------------------------------------------------
def test_theory_ex3_nystrom_ridge_with_all_points_is_kernel_ridge():
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, (30, 1))
    y = np.sin(X[:, 0]) + 0.1 * rng.standard_normal(30)
    k, lam, n = RBF(sigma=0.7), 1e-2, 30
    K = k(X, X)
    alpha = np.linalg.solve(K + n * lam * np.eye(n), y)  # eq. (rep-krr)
    A = np.linalg.solve(K @ K + n * lam * K, K @ y)  # eq. (rep-nys) with m = n
    grid = np.linspace(-3, 3, 50)[:, None]
    # K² + nλK squares the condition number of K: agreement to ~1e-4, not to rounding
    np.testing.assert_allclose(k(grid, X) @ A, k(grid, X) @ alpha, atol=1e-4)


def _gn_step(theta, delta):
    L = lambda t: (t**2 - 1) ** 2  # noqa: E731
    r = lambda t: t**2 - 1  # noqa: E731
    eps = 1e-6
    J = (r(theta + eps) - r(theta - eps)) / (2 * eps)  # residual Jacobian by finite differences
    g = 2 * r(theta) * J
    t1 = theta - g / (2 * J * J + delta)
    return t1, L(t1), L(theta)


def test_theory_ex4_gauss_newton_step_can_raise_the_loss():
    t1, L1, L0 = _gn_step(0.3, 0.0)
    assert round(t1, 3) == 1.817 and round(L1, 2) == 5.29 and round(L0, 3) == 0.828 and L1 > L0
    t1, L1, _ = _gn_step(0.3, 1.0)
    assert round(t1, 3) == 0.935 and round(L1, 3) == 0.016


def test_theory_ex5_entk_spread_shrinks_like_one_over_sqrt_width():
    x0 = np.array([[1.0, 0.0]])
    spread = {}
    for width in (256, 4096):
        vals = [EmpiricalNTK(mlp=MLP.init([2, width, 1], seed=s))(x0, x0)[0, 0] / width for s in range(24)]
        spread[width] = np.std(vals)
    ratio = spread[256] / spread[4096]
    assert 2.5 < ratio < 6.5  # solution: sqrt(4096 / 256) = 4


# --- interpretability.md ------------------------------------------------------------------
def _knn_drop(k, n_c, n_other=200):
    """Simulate the k-NN confidence drop: n_c class-c landmarks nearest, then the others;
    remove the 10 nearest class-c landmarks (the top-10 by IS in the exercise)."""
    labels = np.r_[np.ones(n_c, int), np.zeros(n_other, int)]  # ordered by distance
    conf = lambda lab: np.mean(lab[:k] == 1)  # noqa: E731
    return conf(labels) - conf(labels[10:])


@pytest.mark.parametrize("n_c,expected", [(55, 0.1), (50, 0.2), (70, 0.0)])
def test_interpretability_ex4_confidence_drop(n_c, expected):
    k = 50
    formula = min(10, max(0, k + 10 - n_c)) / k
    assert np.isclose(_knn_drop(k, n_c), formula) and np.isclose(formula, expected)


def _entropy(sig):
    p = sig / sig.sum()
    return float(-(p * np.log(p)).sum() / np.log(len(sig)))


@pytest.mark.parametrize("power,expected", [(2, 0.86), (4, 0.72)])
def test_interpretability_ex6_entropy_of_pc_init(power, expected):
    m, h = 40, 16
    lam = np.arange(1, m + 1, dtype=float) ** (-power)
    Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((m, m)))
    K_mm = Q @ np.diag(lam) @ Q.T
    w, U = np.linalg.eigh(K_mm)
    A0 = U[:, ::-1][:, :h] / np.sqrt(w[::-1][:h])  # eq. (nys-pc)
    H = _entropy(np.linalg.eigvalsh(A0.T @ A0))
    assert round(H, 2) == expected


# --- derivations.md ---------------------------------------------------------------------
def test_derivations_ex2_kpca_optimum():
    Sigma, beta = np.diag([3.0, 1.0]), 1.0
    f = lambda w: -w @ Sigma @ w + 0.5 * beta * (w @ w - 1) ** 2  # noqa: E731  eq. (kpca-opt), h = 1
    best = min((minimize(f, x0, method="BFGS") for x0 in np.random.default_rng(0).standard_normal((8, 2))),
               key=lambda r: r.fun)
    assert np.isclose(best.fun, -7.5, atol=1e-6) and np.isclose(best.x @ best.x, 4.0, atol=1e-5)


# --- stepwise.md, notebook 11, teaching.md --------------------------------------------------
def test_stepwise_ex1_step_times():
    lam1 = 0.3
    pred = sw.predict(np.diag([lam1, lam1 / 2, 0.01]), 2, 1 / (16 * lam1), c0=1e-8)
    t1, t2 = pred.step_times
    assert round(t1, 1) == 41.3 and round(t2 / t1, 2) == 1.89


def test_notebook11_ex1_halving_init_shifts_steps():
    lam1 = 0.3
    G = np.diag([lam1, 0.5 * lam1, 0.01])
    lr = 0.5 / (8 * lam1)  # lr_scale = 0.5
    t_big = sw.predict(G, 2, lr, c0=1e-8).step_times
    t_small = sw.predict(G, 2, lr, c0=1e-8 / 4).step_times  # c0 ∝ init_scale²
    assert round(t_small[0] - t_big[0], 1) == 3.1
    rho = 2 * np.log1p(4 * lr * np.array([lam1, 0.5 * lam1]))
    np.testing.assert_allclose(t_small - t_big, 3.1 * rho[0] / rho, rtol=0.01)


def test_teaching_ex1_halving_lr():
    lam1 = 0.3
    G = np.diag([lam1, 0.01])
    t_a = sw.predict(G, 1, 0.5 / (8 * lam1), c0=1e-8).step_times[0]
    t_b = sw.predict(G, 1, 0.25 / (8 * lam1), c0=1e-8).step_times[0]
    assert round(t_b / t_a, 2) == 1.89


# --- kpca_gradient.md ------------------------------------------------------------------------
def test_kpca_gradient_ex1_huber_values():
    W, mu = np.zeros((1, 1)), np.zeros(1)
    assert np.isclose(kg.huber_value(np.array([[3.0]]), W, mu, 1.0), 2.5)
    assert np.isclose(kg.huber_value(np.array([[0.5]]), W, mu, 1.0), 0.125)
    # δ·Moreau envelope of |·| with parameter δ, by brute-force minimisation over u
    u = np.linspace(-5, 5, 200001)
    for s in (3.0, 0.5):
        env = np.min(np.abs(u) + (s - u) ** 2 / 2.0)
        assert np.isclose(env, kg.huber_value(np.array([[s]]), W, mu, 1.0), atol=1e-8)


# --- tools/course_figures.py ------------------------------------------------------------------
def test_course_figures_script_runs_and_is_deterministic(tmp_path):
    digests = []
    for run in ("a", "b"):
        out = tmp_path / run
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "course_figures.py"), str(out)],
                       check=True, capture_output=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
        files = sorted(os.listdir(out))
        assert files == ["entk.png", "ggn_convex.png", "representer.png"]
        digests.append([hashlib.sha256((out / f).read_bytes()).hexdigest() for f in files])
    assert digests[0] == digests[1]
