"""Kernels against naive per-pair references, Monte-Carlo checks of the infinite-width
ReLU kernels, and the streamed products' memory bound."""
import math
import tracemalloc

import numpy as np
import pytest

from conftest import RTOL
from krepes_lib import kernels as K
from krepes_lib.backend import get_xp, to_host


def naive(kernel, X, Y):
    """Per-pair reference written straight from the book's formulas (float64 loops)."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    d = X.shape[1]

    def relu_rec(x, y, ntk):
        sw, sb = kernel.sigma_w2, kernel.sigma_b2
        sxy = sw * x @ y / d + sb
        sxx = sw * x @ x / d + sb
        syy = sw * y @ y / d + sb
        theta_ntk = sxy
        for _ in range(kernel.depth):
            c = max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))
            t = math.acos(c)
            e_phi = math.sqrt(sxx * syy) * (math.sin(t) + (math.pi - t) * c) / (2 * math.pi)
            e_dphi = (math.pi - t) / (2 * math.pi)
            new = sw * e_phi + sb
            theta_ntk = theta_ntk * sw * e_dphi + new
            sxy = new
            sxx = sw * sxx / 2 + sb
            syy = sw * syy / 2 + sb
        return theta_ntk if ntk else sxy

    def k(x, y):
        if isinstance(kernel, K.Linear):
            return x @ y
        if isinstance(kernel, K.RBF):
            return math.exp(-np.sum((x - y) ** 2) / (2 * kernel.sigma**2))
        if isinstance(kernel, K.Laplacian):
            return math.exp(-np.linalg.norm(x - y) / kernel.sigma)
        if isinstance(kernel, K.Polynomial):
            a = 1.0 / d if kernel.scale is None else kernel.scale
            return (a * x @ y + kernel.coef0) ** kernel.degree
        if isinstance(kernel, K.Cosine):
            return x @ y / (np.linalg.norm(x) * np.linalg.norm(y))
        if isinstance(kernel, K.ReluNTK):
            return relu_rec(x, y, True)
        if isinstance(kernel, K.ArcCosineNNGP):
            return relu_rec(x, y, False)
        raise AssertionError(kernel)

    return np.array([[k(x, y) for y in Y] for x in X])


ALL = [
    K.Linear(), K.RBF(sigma=1.3), K.Laplacian(sigma=2.0), K.Polynomial(degree=3, coef0=0.5),
    K.Cosine(), K.ArcCosineNNGP(depth=1), K.ArcCosineNNGP(depth=3, sigma_b2=0.1),
    K.ReluNTK(depth=1), K.ReluNTK(depth=2, sigma_b2=0.2),
]


@pytest.mark.parametrize("kern", ALL, ids=lambda k: repr(k))
def test_kernel_matches_naive_reference(kern, xp, dtype):
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(13, 4)), rng.normal(size=(7, 4))
    got = kern(xp.asarray(X), xp.asarray(Y), dtype=dtype)
    assert got.dtype == dtype and get_xp(got) is xp
    ref = naive(kern, X, Y)
    np.testing.assert_allclose(to_host(got), ref, rtol=RTOL[dtype] * 10, atol=RTOL[dtype] * 10)
    # the naive reference takes arccos(≈1) on the diagonal, which is only √eps-accurate
    np.testing.assert_allclose(to_host(kern.diag(xp.asarray(X), dtype=dtype)),
                               np.diag(naive(kern, X, X)), rtol=max(RTOL[dtype] * 10, 1e-7))


@pytest.mark.parametrize("kern", ALL, ids=lambda k: repr(k))
def test_streamed_products_equal_dense(kern, xp):
    rng = np.random.default_rng(1)
    X, Y = xp.asarray(rng.normal(size=(101, 5))), xp.asarray(rng.normal(size=(17, 5)))
    A, G = xp.asarray(rng.normal(size=(17, 3))), xp.asarray(rng.normal(size=(101, 3)))
    Kd = kern(X, Y, dtype="float64")
    np.testing.assert_allclose(to_host(kern.matmul(X, Y, A, rows=10)), to_host(Kd @ A), rtol=1e-10)
    np.testing.assert_allclose(to_host(kern.rmatmul(X, Y, G, rows=7)), to_host(Kd.T @ G), rtol=1e-10)


def test_relu_kernels_match_a_wide_random_network():
    """Monte-Carlo: a one-hidden-layer ReLU net of width 20 000 in NTK parametrisation.

    NNGP = E[f(x) f(y)] over the random weights; its NTK is ⟨∇θ f(x), ∇θ f(y)⟩, written out
    for this net: output weights give σ_w²/n Σ φφ, first-layer weights and biases give
    σ_w²/n Σ v_k² φ'φ' (σ_w² x·y/d + σ_b²).
    """
    rng = np.random.default_rng(0)
    d, n_hidden, sw, sb = 3, 20000, 2.0, 0.1
    X = rng.normal(size=(5, d))
    W = rng.normal(size=(n_hidden, d)) * math.sqrt(sw / d)
    b = rng.normal(size=n_hidden) * math.sqrt(sb)
    H = X @ W.T + b
    phi, dphi = np.maximum(H, 0), (H > 0).astype(float)
    nngp_mc = sw * phi @ phi.T / n_hidden + sb       # exact expectation over output weights
    v2 = rng.normal(size=n_hidden) ** 2 * sw        # (readout weight)² with variance σ_w²
    sigma1 = sw * X @ X.T / d + sb
    ntk_mc = nngp_mc + (dphi * v2) @ dphi.T / n_hidden * sigma1
    np.testing.assert_allclose(K.ArcCosineNNGP(1, sw, sb)(X, dtype="float64"), nngp_mc, rtol=0.05, atol=0.02)
    np.testing.assert_allclose(K.ReluNTK(1, sw, sb)(X, dtype="float64"), ntk_mc, rtol=0.05, atol=0.05)


def test_kmm_budget_streaming_never_builds_n_by_m():
    """K_nm Ã for n = 10⁶, m = 100 under an 8 MiB budget: the n×m block (400 MB) never exists."""
    n, m, d, h = 1_000_000, 100, 4, 3
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype(np.float32)
    L = X[:m].copy()
    A = rng.normal(size=(m, h)).astype(np.float32)
    budget = 8 * 2**20
    kern = K.RBF(sigma=1.0)
    tracemalloc.start()
    F = kern.matmul(X, L, A, memory_budget=budget)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert F.shape == (n, h)
    out_bytes = F.nbytes
    assert peak < out_bytes + 2 * budget, f"peak {peak / 2**20:.1f} MiB exceeds the budget"
    assert peak < n * m * 4 / 10  # far below one n×m float32 matrix
    np.testing.assert_allclose(F[-5:], kern(X[-5:], L) @ A, rtol=1e-5, atol=1e-6)


def test_block_rows_respects_budget():
    b = K.block_rows(10**6, 1000, 10, 4, memory_budget=2**20)
    assert b * 4 * (3 * 1000 + 10) <= 2**20 and b >= 1
    with pytest.raises(ValueError, match="memory_budget"):
        K.block_rows(10, 10, 1, 4, memory_budget=0)


def test_errors_name_the_parameter():
    with pytest.raises(ValueError, match="sigma"):
        K.RBF(sigma=0.0)
    with pytest.raises(ValueError, match="kernel='nope'"):
        K.make_kernel("nope")
    with pytest.raises(ValueError, match="features"):
        K.Linear()(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        K.RBF()(np.array([[np.nan, 1.0]]))
    assert isinstance(K.make_kernel("rbf", sigma=2.0), K.RBF)


def test_default_dtype_is_float32():
    assert K.Linear()(np.ones((2, 2))).dtype == np.float32


@pytest.mark.parametrize("shift", [0.0, 1e4])
def test_centred_squared_distance_matches_naive(shift):
    """eq. (k-sqdist-centred): ‖x̄‖² + ‖ȳ‖² − 2x̄·ȳ with x̄ = x − μ_Y equals Σ (x − y)² (float64 loops)."""
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(9, 6)) + shift, rng.normal(size=(5, 6)) + shift
    ref = np.array([[np.sum((x - y) ** 2) for y in Y] for x in X])
    np.testing.assert_allclose(K._sqdist(np, X, Y), ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("cls", [K.RBF, K.Laplacian])
def test_landmark_side_cache_is_never_stale(cls):
    """The prepared landmark side is reused only for a read-only NumPy Y, by identity."""
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(20, 3)).astype(np.float32), rng.normal(size=(7, 3)).astype(np.float32)
    k = cls(sigma=1.5)
    ref = naive(k, X, Y)
    # a writeable Y is reused only while it equals the copy taken at preparation
    np.testing.assert_allclose(k(X, Y), ref, rtol=1e-5, atol=1e-6)
    p0 = k._prepare(np, X, Y)
    assert k._prepare(np, X, Y) is p0                      # unchanged: reused
    Y2 = Y.copy()
    Y2 += 1.0
    Y += 1.0                                               # changed in place: prepared afresh
    assert k._prepare(np, X, Y) is not p0
    np.testing.assert_allclose(k(X, Y), naive(k, X, Y2), rtol=1e-5, atol=1e-6)
    Y[2, 1] = -7.0                                         # a single entry changed: seen too
    Y2[2, 1] = -7.0
    np.testing.assert_allclose(k(X, Y), naive(k, X, Y2), rtol=1e-5, atol=1e-6)
    # a read-only Y is prepared once and reused by identity (same prepared object)
    Y.flags.writeable = False
    p1 = k._prepare(np, X, Y)
    assert k._prepare(np, X, Y) is p1
    assert k._prepare(np, X, Y.copy()) is not p1          # another array, another entry
    np.testing.assert_allclose(k(X, Y), naive(k, X, Y2), rtol=1e-5, atol=1e-6)
    assert len(K._YSIDE_CACHE) <= K._YSIDE_CACHE_SIZE


@pytest.mark.parametrize("cls", [K.RBF, K.Laplacian])
def test_distance_block_holds_one_output_sized_array(cls):
    """One GEMM into the output, in-place elementwise: peak ≈ K + the (b, d+2) and (m, d+2) sides."""
    b, m, d = 600, 400, 30
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(b, d)).astype(np.float32), rng.normal(size=(m, d)).astype(np.float32)
    k = cls(sigma=4.0)
    k(X[:2], Y[:2])  # imports, first-call allocations
    tracemalloc.start()
    out = k(X, Y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    sides = 4 * (b + m) * (d + 2)
    assert peak <= out.nbytes + sides + 64 * 1024, f"peak {peak} vs one block {out.nbytes}"
    assert peak < 1.5 * out.nbytes  # a second b×m temporary would break this
