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

from krepes_lib.backend import limit_host_threads
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


# --- notebook 01 (lecture 1) ---------------------------------------------------------------
def _nb01_points(ds):
    from krepes_lib.studies import v1 as studies
    return studies.load_rows(ds, 800, seed=0)


def test_notebook01_ex1_laplacian_needs_most_landmarks():
    import krepes_lib as kr
    X, _, _ = _nb01_points("mnist_test")
    err = {}
    for name in ("rbf", "laplacian", "ntk"):
        k = kr.default_kernel(X, name)
        err[name] = [kr.Nystrom(k, kr.select_landmarks(X, m, method="kmeans++", kernel=k, seed=0),
                                dtype="float64").relative_error(X.astype(np.float64)) for m in (20, 160)]
    # solution: m = 20 / 160 → RBF 5.3 % / 1.1 %, NTK 11.3 % / 2.7 %, Laplacian 11.1 % / 5.0 %
    assert [round(100 * e, 1) for e in err["rbf"]] == [5.3, 1.1]
    assert [round(100 * e, 1) for e in err["ntk"]] == [11.3, 2.7]
    assert [round(100 * e, 1) for e in err["laplacian"]] == [11.1, 5.0]
    assert err["laplacian"][1] > err["ntk"][1] > err["rbf"][1]


def test_notebook01_ex2_absolute_floor_depends_on_the_kernel_scale():
    import krepes_lib as kr
    X0, _, _ = _nb01_points("digits")
    L = 1e-6 * X0[:160].astype(np.float64)
    rel = kr.Nystrom(kr.Linear(), L, dtype="float64")
    ab = kr.Nystrom(kr.Linear(), L, dtype="float64", rtol=0.0, atol=1e-10)
    assert (rel.rank, ab.rank) == (54, 3) and round(rel.eigvals[0] * 1e9, 1) == 1.7
    assert rel.rank == kr.Nystrom(kr.Linear(), X0[:160].astype(np.float64), dtype="float64").rank
    with pytest.raises(ValueError, match="rank r=3"):
        ab.pc_init(10)
    with pytest.raises(ValueError, match="atol"):
        kr.Nystrom(kr.Linear(), L, atol=-1.0)


def test_notebook01_ex3_float32_does_not_change_the_error_curve():
    import krepes_lib as kr
    X, _, _ = _nb01_points("digits")
    k = kr.default_kernel(X, "rbf")
    quoted = [5.96e-2, 2.82e-2, 1.13e-2, 4.68e-3, 1.87e-3]
    for m, q in zip((20, 40, 80, 160, 320), quoted):
        lm = kr.select_landmarks(X, m, method="uniform", seed=0)
        e64 = kr.Nystrom(k, lm, dtype="float64").relative_error(X.astype("float64"))
        e32 = kr.Nystrom(k, lm, dtype="float32").relative_error(X.astype("float32"))
        assert float(f"{e64:.2e}") == q and abs(e32 - e64) < 1e-3 * e64


# --- notebook 02 (lecture 2 homework) ---------------------------------------------------------
@pytest.fixture(scope="module")
def nb02_runs():
    import krepes_lib as kr
    from krepes_lib.studies import v1 as studies
    split = kr.data.load_split("digits", 1000, 400, seed=0, shrink=True)
    losses = ["kpca", "barlow_twins", "simclr", "vicreg"]
    runs = {k: studies.main_results(split, losses, 60, 16, 2, 128, [0, 1, 2], kernel=k, lr=1e-3, progress=False)
            for k in ("rbf", "ntk")}
    return studies, split, losses, runs


def _delta(studies, R, loss):
    return 100 * (studies.column(R, "probe", method=loss) - studies.column(R, "probe", method="PC init"))


def test_notebook02_ex1_ntk_training_beats_pc_init_more_often(nb02_runs):
    studies, _, losses, runs = nb02_runs
    means = {k: [round(_delta(studies, R, loss).mean(), 2) for loss in losses] for k, R in runs.items()}
    assert means == {"rbf": [-0.17, 0.25, 0.17, 0.25], "ntk": [0.5, 0.58, 0.42, 0.58]}
    assert all((_delta(studies, runs["ntk"], loss) >= 0).all() for loss in losses)
    pc = {k: round(100 * studies.column(R, "probe", method="PC init").mean(), 2) for k, R in runs.items()}
    assert pc == {"rbf": 89.67, "ntk": 89.08}


def test_notebook02_ex2_long_fast_training_degrades_the_probe(nb02_runs):
    studies, split, _, _ = nb02_runs
    R = studies.main_results(split, ["barlow_twins", "vicreg"], 60, 16, 10, 128, [0], kernel="rbf", lr=1e-2,
                             progress=False)
    got = {r["method"]: (round(100 * r["probe"], 2), round(100 * r["knn"], 2)) for r in R}
    assert got["PC init"] == (90.25, 95.5)
    assert got["barlow_twins"] == (81.5, 85.75) and got["vicreg"] == (86.25, 90.0)


def test_notebook02_ex3_seeds_needed(nb02_runs):
    from scipy import stats as st
    studies, _, _, runs = nb02_runs
    d = _delta(studies, runs["rbf"], "barlow_twins")
    assert np.allclose(d, [0.25, 0.5, 0.0]) and np.isclose(d.std(ddof=1), 0.25)
    need = lambda effect: next(n for n in range(2, 100)  # noqa: E731
                               if st.t.ppf(0.95, n - 1) * d.std(ddof=1) / np.sqrt(n) < effect)
    assert need(d.mean()) == 5 and need(1.0) == 3


# --- notebook 11 and stepwise.md exercise 3 (lecture 2) --------------------------------------------
@pytest.fixture(scope="module")
def nb11_setup():
    from krepes_lib import data
    from krepes_lib.augment import TableAugmenter
    from krepes_lib.kernels import median_sigma
    from krepes_lib.landmarks import select_landmarks
    from krepes_lib.model import NystromModel
    from krepes_lib.nystrom import Nystrom

    X = data.load("digits", n=300, seed=0).X.astype(np.float64)

    def gamma(sigma_scale):
        kernel = RBF(sigma=sigma_scale * median_sigma(X))
        nys = Nystrom(kernel, select_landmarks(X, m=48, method="kmeans++", kernel=kernel, seed=0), dtype=np.float64)
        G = sw.contrastive_operator(nys, X, TableAugmenter(), n_draws=10, seed=1001)
        return nys, G

    def model(nys, init_scale, seed=0):
        return sw.scale_init(NystromModel(nys, h=5, coords="raw", init="random", seed=seed), init_scale)
    return gamma, model


def test_notebook11_ex2_stretch():
    assert round(np.log(1.25) / np.log(1.05), 2) == 4.57


def test_notebook11_ex3_narrow_kernel_separates_modes_2_and_3(nb11_setup):
    gamma, _ = nb11_setup
    for sigma_scale, quoted in ((1.0, [1.43, 1.03, 1.71, 1.39, 2.07]), (0.5, [1.32, 1.36, 1.55, 1.24, 1.73])):
        lam = np.linalg.eigvalsh(gamma(sigma_scale)[1])[::-1]
        gaps = lam[:5] / lam[1:6]
        assert list(np.round(gaps, 2)) == quoted
        assert [k + 1 for k in range(5) if gaps[k] >= 1.15] == ([1, 3, 4, 5] if sigma_scale == 1.0 else [1, 2, 3, 4, 5])


def test_stepwise_ex3_larger_init_moves_ratios_away_and_shrinks_gaps(nb11_setup):
    """stepwise.md exercise 3 with notebook 11's setting (seed 0): predicted step times at
    init_scale 1e-3 and 1e-2, their ratios against ρ_j/ρ_{j+1}, and the separation of the steps."""
    gamma, model = nb11_setup
    nys, G = gamma(1.0)
    lam = np.linalg.eigvalsh(G)[::-1]
    lr = 0.5 / (8 * lam[0])
    t = {s: sw.predict(G, 5, lr, A0=model(nys, s).A_tilde).step_times for s in (1e-3, 1e-2)}
    assert list(np.round(t[1e-3], 1)) == [43.1, 60.5, 60.3, 106.1, 177.5]
    assert list(np.round(t[1e-2], 1)) == [32.8, 46.2, 45.6, 81.8, 144.1]
    rho = 2 * np.log1p(4 * lr * lam[:5])
    target = rho[:-1] / rho[1:]
    r3, r2 = t[1e-3][1:] / t[1e-3][:-1], t[1e-2][1:] / t[1e-2][:-1]
    assert list(np.round(target, 3)) == [1.388, 1.023, 1.66, 1.372]
    assert list(np.round(r3, 3)) == [1.404, 0.996, 1.762, 1.672]
    assert list(np.round(r2, 3)) == [1.409, 0.987, 1.794, 1.761]
    assert np.all(np.abs(np.log(r2 / target)) > np.abs(np.log(r3 / target)))  # away, every j
    # every step time drops by about ln(100)/ρ_j: the last one most
    drop = t[1e-3] - t[1e-2]
    assert np.argmax(drop) == 4 and np.allclose(drop, np.log(100) / rho, rtol=0.02)
    # separation: gap between resolvable neighbours in units of the 10–90 % rise time 2 ln 9/ρ
    width = 2 * np.log(9) / rho
    sep = {s: (t[s][[2, 3, 4]] - t[s][[0, 2, 3]]) / width[[2, 3, 4]] for s in t}
    assert list(np.round(sep[1e-3], 2)) == [1.23, 1.98, 2.24] and list(np.round(sep[1e-2], 2)) == [0.92, 1.56, 1.96]


# --- notebook 12 (lecture 3 homework) -----------------------------------------------------------
def test_notebook12_ex1_rbf_outliers_far_or_near_look_the_same():
    from krepes_lib import data
    from krepes_lib.kernels import median_sigma
    from krepes_lib.landmarks import select_landmarks
    from krepes_lib.nystrom import Nystrom

    X0 = data.load("mnist_test", n=400, seed=0).X.astype(np.float64)
    got = {}
    with limit_host_threads(1):  # as the notebook does (cpu_threads = 1)
        for noise in (3.0, 30.0):
            for s in (0, 1, 2):
                X_all, out = kg.plant_outliers(X0, 0.05, noise, seed=s)
                nys = Nystrom(RBF(sigma=median_sigma(X_all)), select_landmarks(X_all, m=100, method="uniform", seed=s),
                              dtype=np.float64)
                Phi = nys.feature_map(X_all)
                ref = kg.nystrom_kpca(nys, X_all[~out], 3)
                delta = np.median(np.linalg.norm(Phi - np.median(Phi, 0), axis=1))
                plain = kg.fit_robust(Phi, 3, np.inf, steps=200, seed=s)
                huber = kg.fit_robust(Phi, 3, delta, steps=200, seed=s)
                dist = np.linalg.norm(Phi - Phi.mean(0), axis=1)
                got[noise, s] = (round(kg.subspace_angle(Phi[~out] @ huber.W, ref), 1),
                                 round(kg.subspace_angle(Phi[~out] @ plain.W, ref), 1),
                                 round(float(huber.weights[out].mean()), 2), round(dist[out].mean() / dist[~out].mean(), 2))
    # The numbers the solution quotes, to the digits it prints, at the notebook's settings — one BLAS
    # thread included (its `cpu_threads = 1`): 200 steps of these fits are not converged, and with
    # two threads the plain fit of seed 1 ends at 46.5° instead of 56.9° (converged, 1000 steps:
    # 61.6° either way). 0.5° on angles and 0.01 on weights and ratios absorb the BLAS build.
    quoted = {30.0: [(32.8, 45.1, 0.84, 1.8), (31.1, 69.4, 0.71, 2.08), (25.7, 42.6, 0.79, 1.93)],
              3.0: [(32.8, 46.4, 0.84, 1.8), (5.7, 56.9, 0.55, 2.08), (18.3, 58.4, 0.78, 1.93)]}
    for noise, rows in quoted.items():
        have = np.array([got[noise, s] for s in range(3)], dtype=float)
        want = np.array(rows, dtype=float)
        np.testing.assert_allclose(have[:, :2], want[:, :2], atol=0.5, err_msg=f"angles at noise {noise}")
        np.testing.assert_allclose(have[:, 2:], want[:, 2:], atol=0.011, err_msg=f"weights/ratios at noise {noise}")
    # the solution's claims themselves: Huber beats plain KPCA in every seed at both noise levels, and
    # the outliers' distance ratios are the same at noise 3 and 30 (a bounded kernel caps the norm)
    assert all(got[nz, s][0] < got[nz, s][1] for nz in quoted for s in range(3))
    assert [got[3.0, s][3] for s in range(3)] == [got[30.0, s][3] for s in range(3)]


def test_notebook12_ex2_eigen_gaps():
    from krepes_lib import data
    from krepes_lib.kernels import median_sigma

    X = data.load("mnist_test", n=1200, seed=0).X.astype(np.float32)
    K = RBF(sigma=median_sigma(X))(X, X, dtype="float64")
    K = K - K.mean(0) - K.mean(1)[:, None] + K.mean()
    w = np.linalg.eigvalsh(K)[::-1]
    gaps = w[:5] / w[1:6]
    assert [round(g, 2) for g in gaps[1:4]] == [1.29, 1.08, 1.13]  # λ₂/λ₃, λ₃/λ₄, λ₄/λ₅


def test_kpca_gradient_penalty_is_not_convex_at_zero():
    """kpca_gradient.md: (β/2)‖WᵀW − I‖² has Hessian −2βI at W = 0 (finite differences, float64)."""
    beta, r, h, eps = 1.5, 3, 2, 1e-4
    f = lambda w: 0.5 * beta * np.sum((w.reshape(r, h).T @ w.reshape(r, h) - np.eye(h)) ** 2)  # noqa: E731
    n = r * h
    H = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            ei, ej = np.eye(n)[i] * eps, np.eye(n)[j] * eps
            H[i, j] = (f(ei + ej) - f(ei - ej) - f(-ei + ej) + f(-ei - ej)) / (4 * eps**2)
    np.testing.assert_allclose(H, -2 * beta * np.eye(n), atol=1e-5)


# --- the exercises reviewed in the second pass ----------------------------------------------------
def test_derivations_ex1_covariance_bt_gradient_by_finite_differences():
    """∇_{Z_a} L = Z̄_b G / B with G = 2(C − I), C = (Z̄_aᵀZ̄_b + Z̄_bᵀZ̄_a)/(2B)."""
    rng = np.random.default_rng(0)
    B, h = 7, 3
    Za, Zb = rng.standard_normal((B, h)), rng.standard_normal((B, h))
    Hc = np.eye(B) - 1.0 / B

    def L(Za):
        C = ((Hc @ Za).T @ (Hc @ Zb) + (Hc @ Zb).T @ (Hc @ Za)) / (2 * B)
        return np.sum((C - np.eye(h)) ** 2)

    C = ((Hc @ Za).T @ (Hc @ Zb) + (Hc @ Zb).T @ (Hc @ Za)) / (2 * B)
    grad = (Hc @ Zb) @ (2 * (C - np.eye(h))) / B  # the solution's formula
    eps, fd = 1e-6, np.zeros_like(Za)
    for i in range(B):
        for j in range(h):
            E = np.zeros_like(Za)
            E[i, j] = eps
            fd[i, j] = (L(Za + E) - L(Za - E)) / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(sw.CovarianceBarlowTwins().value_and_grad(Za, Zb)[1][0], grad, rtol=1e-12)


def test_derivations_ex3_kpca_ignores_gamma_kae_does_not():
    from krepes_lib.losses import kae, kpca

    rng = np.random.default_rng(1)
    B, m, h = 9, 5, 2
    A = rng.standard_normal((m, h))
    M = rng.standard_normal((m, m))
    K_mm = M @ M.T + m * np.eye(m)
    F, gamma = rng.standard_normal((B, h)), rng.standard_normal(h)
    v0 = kpca.value(F, A, K_mm, beta=1.0)
    assert np.isclose(kpca.value(F + gamma, A, K_mm, beta=1.0), v0, rtol=1e-12)
    _, (gF, _) = kpca.value_and_grad(F, A, K_mm, beta=1.0)
    np.testing.assert_allclose(gF.sum(0), 0.0, atol=1e-12)  # ∇_γ L = (∇_F L)ᵀ1 = 0
    K_bm, k_diag, B_dec = rng.standard_normal((B, m)), rng.uniform(1, 2, B), rng.standard_normal((m, h))
    Z = K_bm @ A
    _, (gZ, _) = kae.value_and_grad(Z, K_bm, k_diag, B_dec, K_mm)
    assert abs(kae.value(Z + gamma, K_bm, k_diag, B_dec, K_mm) - kae.value(Z, K_bm, k_diag, B_dec, K_mm)) > 1e-3
    assert np.linalg.norm(gZ.sum(0)) > 1e-3  # KAE: a genuine ∇_γ


def test_derivations_ex4_standardised_bt_has_no_small_init_regime(nb11_setup):
    """Notebook 11 (seed 0) with "barlow_twins" instead of the covariance form."""
    from krepes_lib.augment import TableAugmenter

    gamma, model = nb11_setup
    nys, G = gamma(1.0)
    from krepes_lib import data
    X = data.load("digits", n=300, seed=0).X.astype(np.float64)
    G_eval = sw.contrastive_operator(nys, X, TableAugmenter(), n_draws=10, seed=2002)
    lr = 0.5 / (8 * np.linalg.eigvalsh(G)[-1])
    assert round(lr, 2) == 1.14
    run = {loss: sw.track_spectrum(model(nys, 1e-3), X, loss, epochs=100, lr=lr, Gamma_eval=G_eval,
                                   optimizer="sgd", augment=TableAugmenter(), seed=0, record_every=1)
           for loss in ("barlow_twins", sw.CovarianceBarlowTwins())}
    bt, cov = run["barlow_twins"], run[next(k for k in run if k != "barlow_twins")]
    assert np.all(bt.eig[0] < 2e-8)
    assert [float(f"{e:.2g}") for e in bt.eig[1]] == [4.2, 2.3, 0.68, 0.10, 0.0018]
    assert [float(f"{e:.2g}") for e in bt.eig[100]] == [4.1, 2.4, 0.79, 0.061, 0.0018]
    assert np.all(cov.eig[1] / cov.eig[0] < 1.4)
    assert round(cov.eig[50][0], 2) == 0.98 and cov.eig[50][3] < 1e-4


def test_stepwise_ex2_logistic_solution_of_the_aligned_flow():
    from scipy.integrate import solve_ivp

    lam, s0 = 0.7, 1e-3
    sol = solve_ivp(lambda t, s: -4 * lam * s * (lam * s**2 - 1), (0, 6), [s0], rtol=1e-11, atol=1e-14,
                    dense_output=True)
    t = np.linspace(0, 6, 61)
    c = lam * sol.sol(t)[0] ** 2
    c0, rho = lam * s0**2, 8 * lam  # eq. (sw-logistic) with η = 1 (continuous time)
    np.testing.assert_allclose(c, c0 * np.exp(rho * t) / (1 + c0 * (np.exp(rho * t) - 1)), rtol=1e-7)


def test_stepwise_ex4_gamma_untrained_and_the_uncentred_operator(nb11_setup):
    from krepes_lib import data
    from krepes_lib.augment import TableAugmenter

    rng = np.random.default_rng(2)
    Za, Zb = rng.standard_normal((10, 3)), rng.standard_normal((10, 3))
    _, (ga, gb) = sw.CovarianceBarlowTwins().value_and_grad(Za, Zb)
    np.testing.assert_allclose(ga.sum(0), 0.0, atol=1e-12)  # ∇_γ L = 0 under centring
    np.testing.assert_allclose(gb.sum(0), 0.0, atol=1e-12)
    gamma, _ = nb11_setup
    nys, G = gamma(1.0)
    X = data.load("digits", n=300, seed=0).X.astype(np.float64)
    aug, draws = TableAugmenter(), np.random.default_rng(1001)
    Gu, mu = np.zeros_like(G), np.zeros(G.shape[0])
    for _ in range(10):  # the same views as stepwise.contrastive_operator(seed=1001), without centring
        Ka, Kb = nys.kernel(aug(X, draws), nys.landmarks), nys.kernel(aug(X, draws), nys.landmarks)
        S = Ka.T @ Kb / X.shape[0]
        Gu += 0.5 * (S + S.T) / 10
        mu += 0.5 * (Ka.mean(0) + Kb.mean(0)) / 10
    lc = np.linalg.eigvalsh(G)[::-1]
    lu, Uu = np.linalg.eigh(Gu)
    lu, u1 = lu[::-1], Uu[:, -1]
    assert round(lu[0], 1) == 17.4 and round(lu[0] / lc[0]) == 317 and round(lc[0], 4) == 0.0548
    assert round(abs(u1 @ mu) / np.linalg.norm(mu), 4) == 1.0
    assert list(np.round(lu[1:3], 4)) == [0.0547, 0.038] and list(np.round(lc[:2], 4)) == [0.0548, 0.0382]
    t_u = sw.predict(np.diag(lu[:4]), 3, 1 / (16 * lu[0]), c0=1e-6).step_times
    t_c = sw.predict(np.diag(lc[:4]), 3, 1 / (16 * lc[0]), c0=1e-6).step_times
    assert [round(t_u[0]), round(t_u[1])] == [31, 8776] and [round(t_c[0]), round(t_c[1])] == [31, 43]


def test_kpca_gradient_ex2_small_delta_moves_the_huber_subspace_away():
    from krepes_lib import data
    from krepes_lib.kernels import Linear
    from krepes_lib.landmarks import select_landmarks
    from krepes_lib.nystrom import Nystrom

    X0 = data.load("mnist_test", n=400, seed=0).X.astype(np.float64)
    got = []
    for s in (0, 1, 2):
        X_all, out = kg.plant_outliers(X0, 0.05, 3.0, seed=s)
        nys = Nystrom(Linear(), select_landmarks(X_all, m=100, method="uniform", seed=s), dtype=np.float64)
        Phi = nys.feature_map(X_all)
        ref = kg.nystrom_kpca(nys, X_all[~out], 3)
        med = np.median(np.linalg.norm(Phi - np.median(Phi, 0), axis=1))
        plain = kg.fit_robust(Phi, 3, np.inf, steps=200, seed=s)
        row = [round(kg.subspace_angle(Phi[~out] @ plain.W, ref), 1)]
        for scale in (1.0, 0.25):
            hub = kg.fit_robust(Phi, 3, scale * med, steps=200, seed=s)
            row += [round(kg.subspace_angle(Phi[~out] @ hub.W, ref), 1), round(float(hub.weights[~out].mean()), 2),
                    round(float(hub.weights[out].mean()), 2)]
        got.append(row)
    assert [r[0] for r in got] == [82.6, 75.6, 76.9]
    assert [r[1] for r in got] == [2.4, 2.7, 1.8] and [r[4] for r in got] == [4.9, 5.6, 5.6]
    assert all(r[2] == 0.99 and r[5] == 0.31 and 0.14 <= r[3] <= 0.18 for r in got)


def test_kpca_gradient_ex3_mean_is_stationary_for_every_orthonormal_W():
    rng = np.random.default_rng(3)
    Phi = rng.standard_normal((40, 6)) @ rng.standard_normal((6, 6))
    mean = Phi.mean(0)
    for _ in range(3):
        W, _ = np.linalg.qr(rng.standard_normal((6, 2)))
        eps = 1e-6
        fd = np.array([(kg.huber_value(Phi, W, mean + eps * e, np.inf) - kg.huber_value(Phi, W, mean - eps * e, np.inf))
                       / (2 * eps) for e in np.eye(6)])
        np.testing.assert_allclose(fd, 0.0, atol=1e-8)
        np.testing.assert_allclose(kg.huber_value_and_grad(Phi, W, mean, np.inf)[2], 0.0, atol=1e-12)
        off = mean + rng.standard_normal(6)
        assert np.linalg.norm(kg.huber_value_and_grad(Phi, W, off, np.inf)[2]) > 1e-3


def test_interpretability_ex1_ex2_ex5_identities():
    from krepes_lib.interpret import influence as I
    from krepes_lib.interpret.metrics import spectral_entropy

    rng = np.random.default_rng(4)
    X, L, A = rng.standard_normal((20, 3)), rng.standard_normal((8, 3)), rng.standard_normal((8, 4))
    k, j = RBF(sigma=1.5), 2
    # ex1: a duplicated landmark with halved rows: same f, half the IS, concept scores split
    L2, A2 = np.vstack([L, L[j:j + 1]]), np.vstack([A, A[j:j + 1] / 2])
    A2[j] /= 2
    np.testing.assert_allclose(I.representer_sum(k, L2, X, A2), I.representer_sum(k, L, X, A), rtol=1e-12)
    IS, IS2 = I.influence_scores(k, L, X, A), I.influence_scores(k, L2, X, A2)
    np.testing.assert_allclose(IS2[:, [j, -1]], np.column_stack([IS[:, j], IS[:, j]]) / 2, rtol=1e-12)
    v = rng.standard_normal(4)
    v /= np.linalg.norm(v)
    c, c2 = I.concept_influence(k, L, X, A, v), I.concept_influence(k, L2, X, A2, v)
    np.testing.assert_allclose(c2[:, j] + c2[:, -1], c[:, j], rtol=1e-12)
    # ex2: IS ≥ |IS(·; v)|, equality for v ∥ A_l
    assert np.all(IS + 1e-12 >= np.abs(c))
    v_l = A[j] / np.linalg.norm(A[j])
    np.testing.assert_allclose(np.abs(I.concept_influence(k, L, X, A, v_l)[:, j]), IS[:, j], rtol=1e-12)
    # ex5: H invariant to scale and to A → AQ
    Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    H = spectral_entropy(A)
    assert np.isclose(spectral_entropy(7.5 * A), H, atol=1e-12) and np.isclose(spectral_entropy(A @ Q), H, atol=1e-12)


def test_interpretability_ex3_alignment_gap_stays_small_as_the_bandwidth_shrinks():
    from krepes_lib.interpret.tabular import alignment_gap

    rng = np.random.default_rng(0)
    L, Xt, A = rng.uniform(0, 1, (200, 1)), rng.uniform(0, 1, (300, 1)), rng.standard_normal((200, 4))
    wide, narrow = (alignment_gap(RBF(sigma=s), L, Xt, A, Xt, L, feature=0, K=10, n_boot=0, seed=0) for s in (0.3, 0.003))
    assert (round(wide.psi, 3), round(wide.gap, 3)) == (0.914, 0.117)
    assert (round(narrow.psi, 3), round(narrow.psi_rand, 3), round(narrow.gap, 3)) == (0.997, 0.963, 0.034)


def test_interpretability_ex7_entropy_of_the_step_settles_at_large_damping():
    import krepes_lib as kr
    from krepes_lib.studies import audits as AS

    split = kr.data.load_split("mnist_test", n_train=1500, n_test=500, seed=0, shrink=True)
    rows = {r["value"]: r for r in AS.entropy_sweep(split, "barlow_twins", [10.0, 100.0, 1000.0, 1e4], 0, n_batches=2,
                                                     batch_size=128, cg_max_iter=100, dtype="float64")}
    assert [round(rows[d]["H_delta"], 3) for d in (10.0, 100.0, 1000.0, 1e4)] == [0.292, 0.2, 0.187, 0.185]
    assert round(rows[100.0]["H"], 4) == round(rows[None]["H"], 4) == 0.9507  # the PC initialisation's H
