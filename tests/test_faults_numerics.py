"""Fault table of issue 12, numerics rows owned by the kernels: data far from the origin or
scaled by 1e±8 in float32 give the float64 result within float32's tolerance; σ = ±inf, NaN
or 0 and median_sigma on NaN / empty data are clear errors.

On main before the centred distances (eq. (k-sqdist-centred), commit of this file) the
float32 RBF/Laplacian blocks of data shifted by +300 / +1e3 / +1e4 differed from float64 by
up to 1e-2 / 0.15 / 0.89, the Nyström relative error of standardised digits shifted by 1e4
was 221 instead of 0.011, the features 188 % off and the probe 0.28 instead of 0.81; the
float32 kernel rows of the landmarks disagreed with the float64 K_mm by up to 1.0.
"""
import numpy as np
import pytest

from krepes_lib import kernels as K
from krepes_lib.evaluate import linear_probe
from krepes_lib.nystrom import Nystrom

EPS32 = float(np.finfo(np.float32).eps)
# A kernel value in [0, 1] computed in float32 from float32 inputs: a few hundred ulps of 1
# cover the GEMM's rounding over d terms (measured ≈ 1.4e-7 after the fix, ≥ 7.8e-3 before).
KTOL = 100 * EPS32


def _pair(shift, scale, n=80, d=30, seed=0):
    Z = np.random.default_rng(seed).standard_normal((n, d))
    X32 = ((Z + shift) * scale).astype(np.float32)
    return X32, X32.astype(np.float64)  # the same numbers in both dtypes: only the kernel's rounding differs


@pytest.mark.parametrize("cls", [K.RBF, K.Laplacian], ids=lambda c: c.__name__)
@pytest.mark.parametrize("scale", [1e-8, 1.0, 1e8])
@pytest.mark.parametrize("shift", [0.0, 300.0, 1e3, 1e4])
def test_distance_kernels_far_from_origin_float32_matches_float64(cls, scale, shift):
    X32, X64 = _pair(shift, scale)
    k = cls(sigma=K.median_sigma(X64))
    K32 = k(X32[:40], X32[40:])
    K64 = k(X64[:40], X64[40:], dtype="float64")
    assert K32.dtype == np.float32
    np.testing.assert_allclose(K32.astype(np.float64), K64, rtol=0, atol=KTOL)
    # the streamed paths (prepared landmark side, reused block buffer) give the same numbers
    A = np.random.default_rng(1).standard_normal((40, 3)).astype(np.float32)
    np.testing.assert_allclose(k.matmul(X32[:40], X32[40:], A, rows=7), K32 @ A, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(k.rmatmul(X32[:40], X32[40:], A, rows=9), K32.T @ A, rtol=1e-5, atol=1e-5)
    for sl, Kb in k.blocks(X32[:40], X32[40:], rows=11):
        np.testing.assert_allclose(Kb, K32[sl], rtol=0, atol=KTOL)


@pytest.mark.parametrize("cls", [K.RBF, K.Laplacian], ids=lambda c: c.__name__)
def test_distance_kernels_translation_invariant(cls):
    """k(x + t, y + t) = k(x, y) in float32 for t up to 1e4 (inputs exactly representable)."""
    X = np.round(np.random.default_rng(2).standard_normal((50, 12)) * 64) / 64  # 1/64 grid: exact at +1e4
    k = cls(sigma=3.0)
    ref = k(X, dtype="float64")
    tol = KTOL
    if cls is K.Laplacian:
        # sqrt amplifies the rounding of D = ‖x̄‖² + ‖ȳ‖² − 2x̄·ȳ near D = 0 (pairs of equal
        # points): |δD| ≤ (d + 2)·eps·(‖x̄‖² + ‖ȳ‖²), so |δk| ≤ sqrt(|δD|)/σ (GEMM bound).
        Xc = X - X.mean(0)
        tol = np.sqrt((X.shape[1] + 2) * EPS32 * 2 * (Xc**2).sum(1).max()) / k.sigma
    for t in (0.0, 300.0, 1e3, 1e4):
        np.testing.assert_allclose(k((X + t).astype(np.float32)), ref, rtol=0, atol=tol)


def _digits(shift):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    sd = X.std(0)
    X = (X - X.mean(0)) / np.where(sd > 0, sd, 1.0) + shift
    X32 = X.astype(np.float32)
    return X32[:900], y[:900], X32[900:1300], y[900:1300]


@pytest.mark.parametrize("shift", [0.0, 300.0, 1e3, 1e4])
def test_nystrom_features_and_probe_far_from_origin(shift):
    """Standardised digits + shift: float32 Nyström (K_mm float64, rows float32) = float64."""
    Xtr, ytr, Xte, yte = _digits(shift)
    k = K.RBF(sigma=K.median_sigma(Xtr))
    n32 = Nystrom(k, Xtr[:120], dtype="float32")
    n64 = Nystrom(k, Xtr[:120].astype(np.float64), dtype="float64")
    # K_mm is built in float64, the batch rows in float32: they agree
    np.testing.assert_allclose(n32.kernel_rows(n32.landmarks), n64.K_mm, rtol=0, atol=KTOL)
    e32 = n32.relative_error(Xtr[:300])
    e64 = n64.relative_error(Xtr[:300].astype(np.float64))
    assert abs(e32 - e64) <= 1e-3 * e64 and e64 < 0.05
    A32, A64 = n32.pc_init(16), n64.pc_init(16)
    F32 = n32.features(Xtr, A32)
    F64 = n64.features(Xtr.astype(np.float64), A64)
    assert np.linalg.norm(F32 - F64) <= 1e-4 * np.linalg.norm(F64)
    p32 = linear_probe(F32, ytr, n32.features(Xte, A32), yte)
    p64 = linear_probe(F64, ytr, n64.features(Xte.astype(np.float64), A64), yte)
    assert abs(p32 - p64) <= 0.01 and p64 > 0.6


@pytest.mark.parametrize("cls", [K.RBF, K.Laplacian], ids=lambda c: c.__name__)
@pytest.mark.parametrize("sigma", [np.inf, -np.inf, np.nan, 0.0, -1.0, "1.0", None, True])
def test_bad_bandwidth_is_a_clear_error(cls, sigma):
    with pytest.raises(ValueError, match=r"sigma=.* must be a finite number > 0.*median_sigma"):
        cls(sigma=sigma)


def test_median_sigma_on_nan_names_nan():
    X = np.random.default_rng(0).standard_normal((20, 3))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN"):
        K.median_sigma(X)
    X[3, 1] = np.inf
    with pytest.raises(ValueError, match=r"1 infinite"):
        K.median_sigma(X)


@pytest.mark.parametrize("shape", [(0, 3), (1, 3), (5, 0), (4,)])
def test_median_sigma_on_empty_is_a_clear_error(shape):
    with pytest.raises(ValueError, match=r"median_sigma: X must be a 2-D \(n, d\) array with n >= 2"):
        K.median_sigma(np.zeros(shape))
