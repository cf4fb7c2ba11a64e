"""Tests of the eight losses (krepes_lib.losses; book: Derivations).

* every gradient against central finite differences in float64 (relative error < 1e-6),
  on several shapes including B < h and h = 1 where the loss is defined (otherwise the
  error is tested);
* every value against a slow, loop-based reference written straight from spec §3;
* closed-form values (Barlow Twins, VICReg, SimCLR, spectral / simple contrastive, KAE,
  BYOL) and the KPCA optimum against the centred Nyström eigendecomposition;
* float32 against float64 (tolerance table below), input checks, the registry;
* a mutation check: a plausible wrong gradient must fail the finite-difference test.
"""
from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import scipy.optimize

from krepes_lib import losses
from krepes_lib.losses.objective import TwoViewObjective

#: Losses with the two-view interface value_and_grad(Za, Zb) (BYOL takes targets too).
TWO_VIEW = tuple(n for n in losses.NAMES if losses.REGISTRY[n].objective_class is TwoViewObjective)
from krepes_lib.backend import to_host
from krepes_lib.defaults import LOSS_HYPER

# One table of tolerances per dtype.
#   fd        relative error of a gradient against central finite differences
#   naive     relative error of a value against the loop-based reference
#   closed    absolute error of a closed-form value
#   vs64      relative error (value, and gradient in Frobenius norm) against float64
TOL = {
    np.float64: {"fd": 1e-6, "naive": 1e-10, "closed": 1e-10},
    np.float32: {"vs64": 1e-5, "closed": 1e-5},
}
# Fourth-order central differences, f'(x) ~ [f(x-2d) - 8 f(x-d) + 8 f(x+d) - f(x+2d)] / (12 d):
# truncation O(d^4), rounding O(eps_64 |f| / d); resolves the O(eps) Barlow Twins gradients at B = 2.
FD_STEP = 1e-4

# (B, h): general, B < h, h = 1, the smallest batch; the B < 2 case is tested apart.
SHAPES = [(5, 3), (3, 6), (6, 1), (2, 2)]


# ----------------------------------------------------------------------------- helpers
def rel_err(a, b):
    a, b = to_host(a).astype(np.float64), to_host(b).astype(np.float64)
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    if scale < 1e-12:  # both (numerically) zero
        return 0.0
    return float(np.linalg.norm(a - b) / scale)


def fd_grad(f, args, pos, step=FD_STEP):
    """Central finite differences of the scalar f(*args) w.r.t. args[pos], entry by entry."""
    args = [np.array(a, dtype=np.float64, copy=True) for a in args]
    X = args[pos]
    G = np.zeros_like(X)
    for idx in np.ndindex(X.shape):
        x0 = X[idx]
        vals = []
        for k in (-2, -1, 1, 2):
            X[idx] = x0 + k * step
            vals.append(float(f(*args)))
        X[idx] = x0
        G[idx] = (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * step)
    return G


def spd(rng, m, floor=0.1):
    G = rng.standard_normal((m, m))
    return G @ G.T / m + floor * np.eye(m)


# ------------------------------------------------------------- problems, one per loss
def make_args(name, B, h, rng, m=4):
    """Random float64 arguments of the loss's value_and_grad; returns (args, grad positions)."""
    if name in TWO_VIEW:
        Za = rng.standard_normal((B, h))
        Zb = Za + 0.7 * rng.standard_normal((B, h))
        if name == "vicreg":  # columns with std on both sides of the hinge
            scales = np.linspace(0.3, 2.0, h) if h > 1 else np.array([0.4])
            Za, Zb = Za * scales, Zb * scales
        return (Za, Zb), (0, 1)
    if name == "kpca":
        K_mm = spd(rng, m)
        A = 0.5 * rng.standard_normal((m, h))
        F = rng.standard_normal((B, m)) @ A + rng.standard_normal(h)
        return (F, A, K_mm), (0, 1)
    if name == "kae":
        X = rng.standard_normal((B + m, 3))
        K = np.exp(-0.5 * ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
        K_bm, K_mm, k_diag = K[:B, B:], K[B:, B:], np.diag(K)[:B].copy()
        Z = rng.standard_normal((B, h))
        B_dec = 0.5 * rng.standard_normal((m, h))
        return (Z, K_bm, k_diag, B_dec, K_mm), (0, 3)
    if name == "byol":
        Za, Zb = rng.standard_normal((2, B, h))
        Ta = Za + 0.5 * rng.standard_normal((B, h))
        Tb = Zb + 0.5 * rng.standard_normal((B, h))
        P = np.eye(h) + 0.5 * rng.standard_normal((h, h))
        return (Za, Zb, Ta, Tb, P), (0, 1, 4)
    raise AssertionError(name)


MIN_BATCH = {
    "kpca": 2, "kae": 1, "simple_contrastive": 2, "spectral_contrastive": 2,
    "simclr": 2, "barlow_twins": 2, "vicreg": 2, "byol": 1,
}


# -------------------------------------------------------------------- the registry
def test_registry_names_and_defaults():
    assert set(losses.NAMES) == set(LOSS_HYPER) and len(losses.NAMES) == 8
    for name in losses.NAMES:
        loss = losses.get(name)
        assert loss.name == name
        for key, default in LOSS_HYPER[name].items():
            assert getattr(loss, key) == default
    assert losses.get("simclr", tau=0.2).tau == 0.2
    assert losses.get("simple_contrastive").rkhs_penalty == LOSS_HYPER["simple_contrastive"]["rkhs_penalty"]


def test_registry_errors():
    with pytest.raises(TypeError, match="lambda_off, eps"):
        losses.get("barlow_twins", lambda_of=1.0)
    with pytest.raises(TypeError, match=r"\(none\)"):
        losses.get("kae", beta=1.0)
    with pytest.raises(ValueError, match="barlow_twins"):
        losses.get("barlow")
    with pytest.raises(ValueError, match="tau"):
        losses.get("simclr", tau=0.0)
    with pytest.raises(ValueError, match="ema"):
        losses.get("byol", ema=1.5)


# ------------------------------------------------------- gradients vs finite differences
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"B{s[0]}h{s[1]}")
@pytest.mark.parametrize("name", losses.NAMES)
def test_gradient_matches_finite_differences(name, shape):
    B, h = shape
    rng = np.random.default_rng(zlib.crc32(f"{name}{B}x{h}".encode()))
    loss = losses.get(name)
    args, positions = make_args(name, B, h, rng)
    val, grads = loss.value_and_grad(*args)
    assert len(grads) == len(positions)
    assert float(val) == pytest.approx(float(loss.value(*args)), rel=1e-14, abs=1e-14)
    for g, pos in zip(grads, positions):
        assert g.shape == args[pos].shape
        g_fd = fd_grad(loss.value, args, pos)
        if h == 1 and name in ("simclr", "byol"):
            # Row-normalised 1-D vectors are sign(z): the loss is locally constant, the
            # gradient 0, and finite differences are rounding noise. Test that instead.
            assert np.abs(g).max() < 1e-12 and np.abs(g_fd).max() < 1e-9
            continue
        assert rel_err(g, g_fd) < TOL[np.float64]["fd"], (name, shape, pos, rel_err(g, g_fd))


@pytest.mark.parametrize("name", [n for n in losses.NAMES if MIN_BATCH[n] == 2])
def test_batch_of_one_is_refused(name):
    """B = 1 is not allowed where a variance, a centring, B - 1 or a negative needs B >= 2."""
    args, _ = make_args(name, 2, 3, np.random.default_rng(0))
    args = tuple(a[:1] if i == 0 or (name in TWO_VIEW and i == 1) else a
                 for i, a in enumerate(args))
    with pytest.raises(ValueError, match="B >= 2"):
        losses.get(name).value_and_grad(*args)


def test_gradient_check_can_fail(monkeypatch):
    """A plausible wrong gradient (batch-norm backward without its variance term) fails."""
    from krepes_lib.losses import barlow_twins

    def wrong_jac(Zbar, s, V):
        return (V - V.mean(axis=0, keepdims=True)) / s

    rng = np.random.default_rng(1)
    args, _ = make_args("barlow_twins", 6, 3, rng)
    loss = losses.get("barlow_twins")
    g_fd = fd_grad(loss.value, args, 0)
    assert rel_err(loss.value_and_grad(*args)[1][0], g_fd) < TOL[np.float64]["fd"]
    monkeypatch.setattr(barlow_twins, "standardise_jac", wrong_jac)
    assert rel_err(loss.value_and_grad(*args)[1][0], g_fd) > 1e-3


# ---------------------------------------------------------- loop-based references
def _naive_standardise(Z, eps, ddof):
    B, h = Z.shape
    out = np.empty_like(Z)
    for j in range(h):
        mu = sum(Z[:, j]) / B
        var = sum((z - mu) ** 2 for z in Z[:, j]) / (B - ddof)
        out[:, j] = (Z[:, j] - mu) / math.sqrt(var + eps)
    return out


def naive_barlow_twins(Za, Zb, lambda_off, eps):
    B, h = Za.shape
    A, Bn = _naive_standardise(Za, eps, 0), _naive_standardise(Zb, eps, 0)
    L = 0.0
    for i in range(h):
        for j in range(h):
            c = sum(A[k, i] * Bn[k, j] for k in range(B)) / B
            L += (1 - c) ** 2 if i == j else lambda_off * c**2
    return L


def naive_vicreg(Za, Zb, lambda_inv, mu, nu, eps):
    B, h = Za.shape
    inv = sum((Za[i, j] - Zb[i, j]) ** 2 for i in range(B) for j in range(h)) / (B * h)

    def v_and_c(Z):
        Zc = Z - Z.mean(axis=0)
        var = [sum(Zc[:, j] ** 2) / (B - 1) for j in range(h)]
        v = sum(max(0.0, 1 - math.sqrt(x + eps)) for x in var) / h
        c = sum((sum(Zc[:, i] * Zc[:, j]) / (B - 1)) ** 2
                for i in range(h) for j in range(h) if i != j) / h
        return v, c

    (va, ca), (vb, cb) = v_and_c(Za), v_and_c(Zb)
    return lambda_inv * inv + mu * (va + vb) / 2 + nu * (ca + cb)


def naive_simclr(Za, Zb, tau):
    B = Za.shape[0]
    Z = np.concatenate([Za, Zb])
    Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    N, L = 2 * B, 0.0
    for k in range(N):
        pos = k + B if k < B else k - B
        logits = {j: float(Z[k] @ Z[j]) / tau for j in range(N) if j != k}
        L += -logits[pos] + math.log(sum(math.exp(s) for s in logits.values()))
    return L / N


def naive_spectral(Za, Zb):
    B = Za.shape[0]
    pos = sum(Za[i] @ Zb[i] for i in range(B))
    neg = sum((Za[i] @ Zb[j]) ** 2 for i in range(B) for j in range(B) if i != j)
    return -2 / B * pos + neg / (B * (B - 1))


def naive_simple(Za, Zb):
    B = Za.shape[0]
    return -sum(Za[i] @ (Zb[i] - Zb[(i + 1) % B]) for i in range(B)) / B


def naive_kpca(F, A, K_mm, beta):
    B, h = F.shape
    H = np.eye(B) - np.ones((B, B)) / B
    return -np.sum((H @ F) ** 2) / B + beta / 2 * np.sum((A.T @ K_mm @ A - np.eye(h)) ** 2)


def naive_kae(Z, K_bm, k_diag, B_dec, K_mm):
    B = Z.shape[0]
    return sum(k_diag[i] - 2 * K_bm[i] @ B_dec @ Z[i] + Z[i] @ B_dec.T @ K_mm @ B_dec @ Z[i]
               for i in range(B)) / B


def naive_byol(Za, Zb, Ta, Tb, P):
    unit = lambda x: x / np.linalg.norm(x)  # noqa: E731
    B = Za.shape[0]
    return sum(np.sum((unit(Za[i] @ P) - unit(Tb[i])) ** 2)
               + np.sum((unit(Zb[i] @ P) - unit(Ta[i])) ** 2) for i in range(B)) / B


NAIVE = {
    "barlow_twins": naive_barlow_twins, "vicreg": naive_vicreg, "simclr": naive_simclr,
    "spectral_contrastive": naive_spectral, "simple_contrastive": naive_simple,
    "kpca": naive_kpca, "kae": naive_kae, "byol": naive_byol,
}


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"B{s[0]}h{s[1]}")
@pytest.mark.parametrize("name", losses.NAMES)
def test_value_matches_loop_reference(name, shape):
    B, h = shape
    rng = np.random.default_rng(7 + B * 10 + h)
    args, _ = make_args(name, B, h, rng)
    loss = losses.get(name, **{k: 1.7 * v for k, v in LOSS_HYPER[name].items() if k != "ema"})
    hyper = {k: getattr(loss, k) for k in LOSS_HYPER[name] if k not in ("ema", "rkhs_penalty")}
    ref = NAIVE[name](*args, **hyper)
    assert rel_err(loss.value(*args), ref) < TOL[np.float64]["naive"]


# ------------------------------------------------------------------ closed forms
def white(rng, B, h, var_divisor):
    """Centred columns, mutually orthogonal, with variance 1 for the divisor B or B - 1."""
    X = rng.standard_normal((B, h))
    Q, _ = np.linalg.qr(X - X.mean(axis=0))
    return Q * math.sqrt(var_divisor)


def test_barlow_twins_closed_forms():
    rng = np.random.default_rng(2)
    B, h = 16, 4
    eps = LOSS_HYPER["barlow_twins"]["eps"]
    Z = rng.standard_normal((B, h)) * np.array([0.5, 1.0, 2.0, 3.0])
    # Identical views: with eps = 0 the standardised columns have unit variance and the
    # diagonal term (lambda_off = 0 isolates it) vanishes; with eps it is
    # sum_j (eps / (var_j + eps))^2.
    diag_only = losses.get("barlow_twins", lambda_off=0.0, eps=0.0)
    assert abs(float(diag_only.value(Z, Z))) < TOL[np.float64]["closed"]
    var = Z.var(axis=0)
    expected = np.sum((eps / (var + eps)) ** 2)
    got = float(losses.get("barlow_twins", lambda_off=0.0).value(Z, Z))
    assert got == pytest.approx(expected, rel=1e-8)
    # White views: zero off-diagonal term; identical -> h (eps/(1+eps))^2, and views
    # whose columns are mutually orthogonal across views -> C = 0 -> L = h.
    W = white(rng, B, 2 * h, B)
    Wa, Wb = W[:, :h], W[:, h:]
    bt = losses.get("barlow_twins")
    assert float(bt.value(Wa, Wa)) == pytest.approx(h * (eps / (1 + eps)) ** 2, rel=1e-8)
    assert float(bt.value(Wa, Wb)) == pytest.approx(h, rel=1e-12)


def test_vicreg_closed_forms():
    rng = np.random.default_rng(3)
    B, h = 12, 5
    hp = LOSS_HYPER["vicreg"]
    vic = losses.get("vicreg")
    # Decorrelated unit-variance (unbiased) embeddings: zero variance and covariance terms;
    # identical views give L = 0.
    W = white(rng, B, 2 * h, B - 1)
    Wa, Wb = W[:, :h], W[:, h:]
    t = vic.terms(Wa, Wb)
    assert abs(float(t["variance"])) < TOL[np.float64]["closed"]
    assert abs(float(t["covariance"])) < TOL[np.float64]["closed"]
    assert float(vic.value(Wa, Wb)) == pytest.approx(hp["lambda_inv"] * np.sum((Wa - Wb) ** 2) / (B * h))
    assert abs(float(vic.value(Wa, Wa))) < TOL[np.float64]["closed"]
    # Collapsed embeddings (every row the same): only the hinge is active, 1 - sqrt(eps).
    C = np.tile(rng.standard_normal(h), (B, 1))
    assert float(vic.value(C, C)) == pytest.approx(hp["mu"] * (1 - math.sqrt(hp["eps"])), rel=1e-12)


def test_simclr_closed_forms():
    rng = np.random.default_rng(4)
    simclr = losses.get("simclr")
    # B = 1: each of the 2 anchors has a single non-self logit, its positive: the loss would
    # be identically 0 with a zero gradient, so it is refused (issue 12) with the reason.
    za, zb = rng.standard_normal((2, 1, 5))
    with pytest.raises(ValueError, match="identically 0"):
        simclr.value_and_grad(za, zb)
    # All 2B embeddings parallel: uniform softmax over 2B - 1 logits -> L = log(2B - 1),
    # and the gradient vanishes (a stationary point).
    B, h = 5, 3
    Z = np.outer(rng.uniform(0.5, 2.0, B), rng.standard_normal(h))
    L, (ga, gb) = simclr.value_and_grad(Z, 3.0 * Z)
    assert float(L) == pytest.approx(math.log(2 * B - 1), rel=1e-12)
    assert np.abs(ga).max() < 1e-12 and np.abs(gb).max() < 1e-12


def test_contrastive_closed_forms():
    B = 4
    I = np.eye(B)
    # Orthonormal, identical views: positives 1, negatives 0.
    assert float(losses.get("spectral_contrastive").value(I, I)) == pytest.approx(-2.0)
    assert float(losses.get("simple_contrastive").value(I, I)) == pytest.approx(-1.0)


def test_kae_closed_forms():
    rng = np.random.default_rng(5)
    m = 5
    X = rng.standard_normal((m, 2))
    K_mm = np.exp(-((X[:, None] - X[None]) ** 2).sum(-1))
    kae = losses.get("kae")
    # The batch is the landmarks, codes = identity, decoder = identity: exact reconstruction.
    assert abs(float(kae.value(np.eye(m), K_mm, np.diag(K_mm).copy(), np.eye(m), K_mm))) < 1e-12
    # A zero decoder reconstructs nothing: L = mean k(x, x).
    Z = rng.standard_normal((m, 3))
    assert float(kae.value(Z, K_mm, np.diag(K_mm).copy(), np.zeros((m, 3)), K_mm)) == pytest.approx(1.0)


def test_byol_closed_forms():
    rng = np.random.default_rng(6)
    B, h = 4, 3
    byol = losses.get("byol")
    Za, Zb = rng.standard_normal((2, B, h))
    P = np.eye(h) + 0.3 * rng.standard_normal((h, h))
    # Targets parallel to the predictions of the other view: L = 0.
    assert abs(float(byol.value(Za, Zb, 2.0 * (Zb @ P), 0.5 * (Za @ P), P))) < 1e-12
    # Targets orthogonal to the predictions: each of the two terms is 2 -> L = 4.
    e1, e2 = np.eye(h)[0], np.eye(h)[1]
    Za1 = np.tile(e1, (B, 1)) @ np.linalg.inv(P)  # predicts e1
    assert float(byol.value(Za1, Za1, np.tile(e2, (B, 1)), np.tile(e2, (B, 1)), P)) == pytest.approx(4.0)


def _rbf(X, Y, ell):
    return np.exp(-((X[:, None] - Y[None]) ** 2).sum(-1) / (2 * ell**2))


def test_kpca_optimum_is_the_centred_nystrom_eigendecomposition():
    """Minimisers span the top-h eigenvectors of H K_nm K_mm^-1 K_mn H (eq. kpca-opt).

    With A = K_mm^{-1/2} W, the loss is -tr(W^T Sigma W) + beta/2 ||W^T W - I||^2,
    Sigma = K_mm^{-1/2} K_mn H K_nm K_mm^{-1/2} / n, minimised by W = U_h diag(sqrt(1 +
    lambda/beta)) with value -sum_i (lambda_i + lambda_i^2 / (2 beta)). We check (i) this
    point is stationary with that value, (ii) L-BFGS on A from a random start, driven by our
    gradient, reaches the same value and the same feature subspace.
    """
    rng = np.random.default_rng(12)
    n, m, h = 40, 8, 3
    X = rng.standard_normal((n, 3))
    Xl = X[rng.choice(n, m, replace=False)]
    K_nm, K_mm = _rbf(X, Xl, 1.5), _rbf(Xl, Xl, 1.5)
    kpca = losses.get("kpca")
    beta = kpca.beta
    w, V = np.linalg.eigh(K_mm)
    K_isqrt = V @ np.diag(w**-0.5) @ V.T
    H = np.eye(n) - 1.0 / n
    Sigma = K_isqrt @ K_nm.T @ H @ K_nm @ K_isqrt / n
    lam, U = np.linalg.eigh(Sigma)
    lam, U = lam[::-1], U[:, ::-1]
    assert lam[h - 1] > 1.5 * lam[h]  # a clear gap, so the subspace is well defined
    A_star = K_isqrt @ U[:, :h] * np.sqrt(1 + lam[:h] / beta)
    L_star = -np.sum(lam[:h] + lam[:h] ** 2 / (2 * beta))

    def f_and_grad(a):
        A = a.reshape(m, h)
        L, (dF, dA) = kpca.value_and_grad(K_nm @ A, A, K_mm)
        return float(L), (K_nm.T @ dF + dA).ravel()  # eq. (der-chain)

    L0, g0 = f_and_grad(A_star.ravel())
    assert L0 == pytest.approx(L_star, rel=1e-10)
    assert np.linalg.norm(g0) < 1e-8

    res = scipy.optimize.minimize(f_and_grad, 0.1 * rng.standard_normal(m * h), jac=True,
                                  method="L-BFGS-B", options={"maxiter": 5000, "gtol": 1e-12,
                                                               "ftol": 1e-15})
    assert res.fun == pytest.approx(L_star, rel=1e-7)
    A = res.x.reshape(m, h)
    # Feature subspace vs the top-h centred Nyström KPCA eigenvectors (sample space).
    Qf, _ = np.linalg.qr(H @ K_nm @ A)
    Kc = H @ K_nm @ np.linalg.solve(K_mm, K_nm.T) @ H
    _, E = np.linalg.eigh(Kc)
    Qe = E[:, ::-1][:, :h]
    assert np.linalg.norm(Qf @ Qf.T - Qe @ Qe.T, 2) < 1e-5


# --------------------------------------------------------------- float32 vs float64
@pytest.mark.parametrize("name", losses.NAMES)
def test_float32_close_to_float64(name, xp):
    rng = np.random.default_rng(9)
    args64, positions = make_args(name, 8, 4, rng)
    loss = losses.get(name)
    v64, g64 = loss.value_and_grad(*args64)
    args32 = tuple(xp.asarray(a, dtype=np.float32) for a in args64)
    v32, g32 = loss.value_and_grad(*args32)
    assert v32.dtype == np.float32 and all(g.dtype == np.float32 for g in g32)
    tol = TOL[np.float32]["vs64"]
    assert rel_err(v32, v64) < tol
    for a, b in zip(g32, g64):
        assert rel_err(a, b) < tol


def test_float32_closed_form():
    Z = np.eye(4, dtype=np.float32)
    assert abs(float(losses.get("spectral_contrastive").value(Z, Z)) + 2) < TOL[np.float32]["closed"]
    W = white(np.random.default_rng(10), 12, 3, 11).astype(np.float32)
    assert abs(float(losses.get("vicreg").value(W, W))) < TOL[np.float32]["closed"]


# -------------------------------------------------------------------- input checks
def test_two_view_shape_and_dtype_errors():
    rng = np.random.default_rng(11)
    Za = rng.standard_normal((4, 3))
    for name in TWO_VIEW:
        loss = losses.get(name)
        with pytest.raises(ValueError, match="same shape"):
            loss.value(Za, Za[:, :2])
        with pytest.raises(ValueError, match="same shape"):
            loss.value(Za, Za[:3])
        with pytest.raises(ValueError, match="2-D"):
            loss.value(Za[0], Za[0])
        with pytest.raises(TypeError, match="float32 or float64"):
            loss.value(Za.astype(int), Za.astype(int))
        with pytest.raises(TypeError, match="share one dtype"):
            loss.value(Za, Za.astype(np.float32))
        with pytest.raises(TypeError, match="array"):
            loss.value(Za.tolist(), Za.tolist())


def test_other_interfaces_shape_errors():
    rng = np.random.default_rng(12)
    F, A, K = make_args("kpca", 5, 3, rng)[0]
    with pytest.raises(ValueError, match="same h"):
        losses.get("kpca").value(F, A[:, :2], K)
    with pytest.raises(ValueError, match="K_mm"):
        losses.get("kpca").value(F, A, K[:3, :3])
    Z, K_bm, kd, Bd, K_mm = make_args("kae", 5, 3, rng)[0]
    with pytest.raises(ValueError, match="K_bm"):
        losses.get("kae").value(Z, K_bm[:4], kd, Bd, K_mm)
    with pytest.raises(ValueError, match="k_diag"):
        losses.get("kae").value(Z, K_bm, kd[:4], Bd, K_mm)
    with pytest.raises(ValueError, match="B_dec"):
        losses.get("kae").value(Z, K_bm, kd, Bd[:, :2], K_mm)
    Za, Zb, Ta, Tb, P = make_args("byol", 5, 3, rng)[0]
    with pytest.raises(ValueError, match="predictor"):
        losses.get("byol").value(Za, Zb, Ta, Tb, P[:2])
    with pytest.raises(ValueError, match="target"):
        losses.get("byol").value(Za, Zb, Ta[:, :2], Tb[:, :2], P)


# ============================================================ Gauss–Newton products
# For each loss, the residual (or logit) form of spec §4 written independently here:
# a function r(*args) -> flat vector, and the PSD (or, for the KPCA variance term, the
# signed) Hessian Q of the outer function at the point. The reference product is
# J^T Q J v with J built column by column from central finite differences of r.
def _offdiag(X):
    return X[~np.eye(X.shape[0], dtype=bool)]


def _std_biased(Z, eps):
    return (Z - Z.mean(0)) / np.sqrt(Z.var(0) + eps)


def gn_form(name, loss, args, variance_curvature=False):
    """(r, Q, check) with check(r_value) = the part of the loss the form must reproduce."""
    if name == "barlow_twins":
        def r(Za, Zb):
            B, h = Za.shape
            C = _std_biased(Za, loss.eps).T @ _std_biased(Zb, loss.eps) / B
            W = np.sqrt(loss.lambda_off) + (1 - np.sqrt(loss.lambda_off)) * np.eye(h)
            return (W * (C - np.eye(h))).ravel()
        rv = r(*args)
        return r, 2 * np.eye(rv.size), lambda: np.sum(rv**2)
    if name == "vicreg":
        def r(Za, Zb):
            B, h = Za.shape
            cov = lambda Z: np.atleast_2d(np.cov(Z, rowvar=False, ddof=1))  # noqa: E731
            return np.concatenate([np.sqrt(loss.lambda_inv / (B * h)) * (Za - Zb).ravel(),
                                   np.sqrt(loss.nu / h) * _offdiag(cov(Za)),
                                   np.sqrt(loss.nu / h) * _offdiag(cov(Zb))])
        rv = r(*args)
        var = float(loss.terms(*args)["variance"])
        return r, 2 * np.eye(rv.size), lambda: np.sum(rv**2) + loss.mu * var
    if name == "spectral_contrastive":
        def r(Za, Zb):
            return _offdiag(Za @ Zb.T)
        B = args[0].shape[0]
        rv = r(*args)
        tr = np.trace(args[0] @ args[1].T)
        return (r, 2 / (B * (B - 1)) * np.eye(rv.size),
                lambda: -2 / B * tr + np.sum(rv**2) / (B * (B - 1)))
    if name == "simple_contrastive":
        def r(Za, Zb):
            return np.sum(Za * (Zb - np.roll(Zb, -1, axis=0)), axis=1)
        rv = r(*args)
        return r, np.zeros((rv.size, rv.size)), lambda: -np.mean(rv)
    if name == "simclr":
        def r(Za, Zb):  # the N (N - 1) logits, row by row, self-similarity excluded
            Z = np.concatenate([Za, Zb])
            Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
            return _offdiag(Z @ Z.T / loss.tau)
        N = 2 * args[0].shape[0]
        S = r(*args).reshape(N, N - 1)
        p = np.exp(S - S.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        Q = np.zeros((N * (N - 1),) * 2)
        for k in range(N):
            sl = slice(k * (N - 1), (k + 1) * (N - 1))
            Q[sl, sl] = (np.diag(p[k]) - np.outer(p[k], p[k])) / N
        # the positive of anchor k is column k + B (k < B) or k - B, shifted past the diagonal
        B = N // 2
        cols = [k + B - 1 if k < B else k - B for k in range(N)]
        return r, Q, lambda: -np.mean(np.log(p[np.arange(N), cols]))
    if name == "byol":
        def r(Za, Zb, Ta, Tb, P):
            unit = lambda X: X / np.linalg.norm(X, axis=1, keepdims=True)  # noqa: E731
            return np.concatenate([(unit(Za @ P) - unit(Tb)).ravel(),
                                   (unit(Zb @ P) - unit(Ta)).ravel()])
        B = args[0].shape[0]
        rv = r(*args)
        return r, 2 / B * np.eye(rv.size), lambda: np.sum(rv**2) / B
    if name == "kpca":
        def r(F, A, K_mm):
            h = A.shape[1]
            return np.concatenate([(F - F.mean(0)).ravel(), (A.T @ K_mm @ A - np.eye(h)).ravel()])
        F, A, _ = args
        n1 = F.size
        rv = r(*args)
        q = np.full(rv.size, loss.beta)
        q[:n1] = -2 / F.shape[0] if variance_curvature else 0.0
        return (r, np.diag(q),
                lambda: -np.sum(rv[:n1] ** 2) / F.shape[0] + loss.beta / 2 * np.sum(rv[n1:] ** 2))
    if name == "kae":
        def r(Z, K_bm, k_diag, B_dec, K_mm):  # RKHS residual in the coordinates K_mm = L L^T,
            return (Z @ B_dec.T @ np.linalg.cholesky(K_mm)).ravel()  # up to the constant phi(x)
        B = args[0].shape[0]
        rv = r(*args)
        return r, 2 / B * np.eye(rv.size), None  # value: see test_kae_residual_form
    raise AssertionError(name)


def fd_jacobian(r, args, positions, step=FD_STEP):
    """J of the flat vector r(*args) w.r.t. the entries of args[positions], by columns."""
    args = [np.array(a, dtype=np.float64, copy=True) for a in args]
    cols = []
    for pos in positions:
        X = args[pos]
        for idx in np.ndindex(X.shape):
            x0 = X[idx]
            vals = []
            for k in (-2, -1, 1, 2):
                X[idx] = x0 + k * step
                vals.append(r(*args))
            X[idx] = x0
            cols.append((vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * step))
    return np.stack(cols, axis=1)


def _flat(arrays):
    return np.concatenate([to_host(a).ravel() for a in arrays])


def _directions(args, positions, rng):
    return [rng.standard_normal(args[p].shape) for p in positions]


GGN_SHAPES = [(4, 3), (3, 5), (5, 1)]


@pytest.mark.parametrize("shape", GGN_SHAPES, ids=lambda s: f"B{s[0]}h{s[1]}")
@pytest.mark.parametrize("name", losses.NAMES)
def test_ggn_matches_JtQJ_from_finite_differences(name, shape):
    B, h = shape
    rng = np.random.default_rng(zlib.crc32(f"ggn{name}{B}x{h}".encode()))
    loss = losses.get(name)
    args, positions = make_args(name, B, h, rng)
    modes = [False, True] if name == "kpca" else [False]
    for mode in modes:
        kw = {"variance_curvature": True} if mode else {}
        r, Q, check = gn_form(name, loss, args, variance_curvature=mode)
        if check is not None:  # the residual form reproduces the loss
            assert rel_err(check(), float(loss.value(*args))) < 1e-12
        J = fd_jacobian(r, args, positions)
        G_ref = J.T @ Q @ J
        for _ in range(3):
            V = _directions(args, positions, rng)
            U = loss.ggn_matvec(*args, *V, **kw)
            assert len(U) == len(V) and all(u.shape == v.shape for u, v in zip(U, V))
            assert rel_err(_flat(U), G_ref @ _flat(V)) < TOL[np.float64]["fd"], (name, mode)


@pytest.mark.parametrize("name", losses.NAMES)
def test_ggn_is_symmetric_psd(name):
    rng = np.random.default_rng(zlib.crc32(f"psd{name}".encode()))
    loss = losses.get(name)
    args, positions = make_args(name, 6, 4, rng)
    for _ in range(5):
        u, v = _directions(args, positions, rng), _directions(args, positions, rng)
        Gu, Gv = _flat(loss.ggn_matvec(*args, *u)), _flat(loss.ggn_matvec(*args, *v))
        fu, fv = _flat(u), _flat(v)
        scale = np.linalg.norm(Gu) * np.linalg.norm(fv) + np.linalg.norm(Gv) * np.linalg.norm(fu)
        assert abs(fu @ Gv - Gu @ fv) <= 1e-12 * scale
        assert fv @ Gv >= -1e-12 * np.linalg.norm(Gv) * np.linalg.norm(fv)
    if name == "simple_contrastive":  # linear outer function: the GGN vanishes
        assert not np.any(Gv)
    else:
        assert fv @ Gv > 0


def test_ggn_equals_hessian_where_residuals_are_affine():
    """KAE in Z (B_dec fixed) and KPCA in F are exactly quadratic: GGN = Hessian there."""
    rng = np.random.default_rng(13)
    kae = losses.get("kae")
    args, _ = make_args("kae", 5, 3, rng)
    VZ, VB = rng.standard_normal(args[0].shape), np.zeros_like(args[3])
    g = lambda *a: kae.value_and_grad(*a)[1][0]  # noqa: E731
    t = 1e-4
    hvp = (g(args[0] + t * VZ, *args[1:]) - g(args[0] - t * VZ, *args[1:])) / (2 * t)
    assert rel_err(kae.ggn_matvec(*args, VZ, VB)[0], hvp) < 1e-9
    kpca = losses.get("kpca")
    F, A, K = make_args("kpca", 5, 3, rng)[0]
    VF = rng.standard_normal(F.shape)
    UF, _ = kpca.ggn_matvec(F, A, K, VF, np.zeros_like(A), variance_curvature=True)
    dF = lambda F_: kpca.value_and_grad(F_, A, K)[1][0]  # noqa: E731
    assert rel_err(UF, (dF(F + t * VF) - dF(F - t * VF)) / (2 * t)) < 1e-9
    # the default drops the concave variance term: only the PSD penalty part remains
    UF0, UA0 = kpca.ggn_matvec(F, A, K, VF, np.zeros_like(A))
    assert not np.any(UF0) and not np.any(UA0)


def test_kae_residual_form():
    """With the linear kernel phi(x) = x, the RKHS residual is explicit and ||r||^2/B = L."""
    rng = np.random.default_rng(14)
    B, m, d, h = 5, 4, 3, 2
    X, Xl = rng.standard_normal((B, d)), rng.standard_normal((m, d))
    Z, B_dec = rng.standard_normal((B, h)), rng.standard_normal((m, h))
    resid = X - Z @ B_dec.T @ Xl  # phi(x_i) - sum_l phi(x_l) (B_dec z_i)_l
    L = losses.get("kae").value(Z, X @ Xl.T, np.sum(X**2, 1), B_dec, Xl @ Xl.T)
    assert rel_err(L, np.sum(resid**2) / B) < 1e-12


@pytest.mark.parametrize("name", losses.NAMES)
def test_ggn_float32_close_to_float64(name, xp):
    rng = np.random.default_rng(15)
    args64, positions = make_args(name, 8, 4, rng)
    V64 = _directions(args64, positions, rng)
    loss = losses.get(name)
    U64 = loss.ggn_matvec(*args64, *V64)
    to32 = lambda arrs: tuple(xp.asarray(a, dtype=np.float32) for a in arrs)  # noqa: E731
    U32 = loss.ggn_matvec(*to32(args64), *to32(V64))
    assert all(u.dtype == np.float32 for u in U32)
    assert rel_err(_flat(U32), _flat(U64)) < TOL[np.float32]["vs64"]


def test_ggn_direction_errors():
    rng = np.random.default_rng(16)
    Za, Zb = rng.standard_normal((2, 4, 3))
    for name in TWO_VIEW:
        loss = losses.get(name)
        with pytest.raises(ValueError, match="shape of its point"):
            loss.ggn_matvec(Za, Zb, Za[:, :2], Zb)
        with pytest.raises(TypeError, match="dtype"):
            loss.ggn_matvec(Za, Zb, Za.astype(np.float32), Zb)
    args, _ = make_args("byol", 4, 3, rng)
    with pytest.raises(ValueError, match="VP"):
        losses.get("byol").ggn_matvec(*args, Za, Zb, np.zeros((2, 2)))
