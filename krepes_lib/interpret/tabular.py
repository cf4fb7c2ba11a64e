"""Feature-conditioned influence and the Feature Alignment Gap (tables).

Book: *Interpretability*, eqs. (int-feature), (int-gap); spec §6.
"""
from __future__ import annotations

import math
from typing import Iterator, NamedTuple

import numpy as np

from ..backend import asarray, get_xp, resolve_dtype, to_host
from ..defaults import (AG_TOP_K, CAV_C, CI_LEVEL, DENSE_MAX_BYTES, DROP_KNN_K,
                        DROP_N_REMOVE, EIGEN_RTOL, N_BOOT, TOP_K)
from ..kernels import make_kernel
from ..landmarks import Landmarks, class_coverage
from ._common import (_budget, _RandomSubsets, _STREAM_AG, _STREAM_BOOT, _blocks, _check_K, _check_dense,
                      _influence_weights, _rows, _setup, _topk)
from .influence import influence_blocks

# ---------------------------------------------------------------------------------------
# (int-feature) and (int-gap)
# ---------------------------------------------------------------------------------------
def feature_agreement(x_t, x_l, delta: float, categorical: bool = False):
    """v_ξ(x_t, x_l) for a block, eq. (int-feature).

    Numeric: 1 − min(|x_t,ξ − x_l,ξ| / Δξ, 1); with Δξ = 0 (a constant feature) every pair
    agrees (v = 1). Categorical: 1 if the codes are equal, else 0.

    Parameters
    ----------
    x_t : array (b,)
        Raw values of feature ξ for test points.
    x_l : array (m,)
        Raw values of feature ξ for the landmarks.
    delta : float
        Δξ, the feature's range (ignored when categorical).
    categorical : bool

    Returns
    -------
    V : array (b, m) in [0, 1]
    """
    xp = get_xp(x_t, x_l)
    if categorical:
        return (x_t[:, None] == x_l[None, :]).astype(xp.float64)
    diff = xp.abs(x_t[:, None] - x_l[None, :])
    if not delta > 0:
        return (diff == 0).astype(diff.dtype)
    return 1.0 - xp.minimum(diff / delta, 1.0)


def _feature_columns(xp, X_t_raw, L_raw, feature, n, m, categorical, feature_range):
    def col(R, rows, name):
        R = R if hasattr(R, "shape") else np.asarray(R)
        if R.ndim == 2:
            R = R[:, feature]
        elif R.ndim != 1:
            raise ValueError(f"{name} must be (rows, d_raw) or one column (rows,); got {R.shape}.")
        if R.shape[0] != rows:
            raise ValueError(f"{name} has {R.shape[0]} rows; expected {rows}.")
        return asarray(R, xp=xp, dtype="float64", name=name)

    xt, xl = col(X_t_raw, n, "X_t_raw"), col(L_raw, m, "L_raw")
    if categorical:
        delta = 1.0
    elif feature_range is None:
        delta = max(float(xt.max()), float(xl.max())) - min(float(xt.min()), float(xl.min()))
    else:
        delta = float(feature_range)
        if delta < 0:
            raise ValueError(f"feature_range={feature_range} must be >= 0.")
    return xt, xl, delta


def feature_conditioned_influence(kernel, landmarks, X_t, A, X_t_raw, L_raw, feature: int = 0,
                                  categorical: bool = False, feature_range=None,
                                  options=None, K_tm=None, max_bytes: int = DENSE_MAX_BYTES):
    """IS(x̃_l, x_t; v_ξ) = IS(x̃_l, x_t)·v_ξ(x_t, x̃_l), shape (n_t, m), eq. (int-feature).

    Small test sets only (raises ValueError beyond ``max_bytes``); :func:`alignment_gap`
    streams the same quantity.

    Parameters
    ----------
    kernel, landmarks, X_t, A, options
        As in :func:`contribution_blocks` (X_t and landmarks: the kernel's inputs).
    X_t_raw : array (n_t, d_raw) or (n_t,)
        Raw (interpretable) table rows of the test points, or just column ξ.
    L_raw : array (m, d_raw) or (m,)
        Raw table rows of the landmarks, or just column ξ.
    feature : int
        Column ξ of the raw tables.
    categorical : bool
        Equality agreement instead of the range-normalised distance.
    feature_range : float, optional
        Δξ; default max − min of feature ξ over the test points and the landmarks together.
    """
    kernel, xp, X_t, L, A = _setup(kernel, landmarks, X_t, A)
    n, m = X_t.shape[0], A.shape[0]
    _check_dense(n * m * X_t.dtype.itemsize, max_bytes, "feature_conditioned_influence",
                 "alignment_gap or influence_blocks")
    xt, xl, delta = _feature_columns(xp, X_t_raw, L_raw, feature, n, m, categorical, feature_range)
    out = xp.empty((n, m), dtype=X_t.dtype)
    for sl, S in influence_blocks(kernel, L, X_t, A, None, options, K_tm=K_tm):
        out[sl] = S * feature_agreement(xt[sl], xl, delta, categorical)
    return out


class AlignmentGap(NamedTuple):
    """Feature Alignment Gap of one feature, eq. (int-gap).

    Attributes
    ----------
    gap : float
        AG_ξ = mean over test points of Ψ − Ψ_rand.
    ci_low, ci_high : float
        Percentile bootstrap interval of the mean (resampling test points).
    psi, psi_rand : float
        Mean Ψ and mean Ψ_rand.
    n_valid : int
        Test points used (those with zero influence mass in the top-K or random set, where
        Ψ is 0/0, are left out).
    per_point : numpy.ndarray (n_t,)
        Ψ(x_t) − Ψ_rand(x_t), NaN where undefined (host, float64).
    """

    gap: float
    ci_low: float
    ci_high: float
    psi: float
    psi_rand: float
    n_valid: int
    per_point: np.ndarray


def alignment_gap(kernel, landmarks, X_t, A, X_t_raw, L_raw, feature: int = 0,
                  categorical: bool = False, K: int = AG_TOP_K, n_boot: int = N_BOOT,
                  seed: int = 0, ci: float = CI_LEVEL, feature_range=None,
                  options=None, K_tm=None) -> AlignmentGap:
    """Feature Alignment Gap AG_ξ with a bootstrap interval, eqs. (int-feature), (int-gap).

    For each test point x_t, with IS from eq. (int-is) and v_ξ from eq. (int-feature),

    Ψ(x_t; v_ξ) = Σ_{l ∈ top-K} IS_l v_ξ,l / Σ_{l ∈ top-K} IS_l  (top-K landmarks by IS),

    Ψ_rand is the same ratio over K landmarks drawn uniformly without replacement (host RNG,
    ``seed``; the random set may overlap the top-K), and AG_ξ = E_t[Ψ − Ψ_rand]. Points where
    either denominator is 0 are left out. The interval resamples the per-point differences
    with replacement ``n_boot`` times (percentile method). Streamed over test blocks.

    Parameters
    ----------
    kernel, landmarks, X_t, A, options
        As in :func:`contribution_blocks`.
    X_t_raw, L_raw, feature, categorical, feature_range
        As in :func:`feature_conditioned_influence`.
    K : int, default 10
    n_boot : int, default 1000
        Bootstrap resamples (0: no interval, NaN bounds).
    seed : int, default 0
        Seeds the random landmark sets and the bootstrap (independent streams).
    ci : float, default 0.95
        Coverage of the interval.

    Returns
    -------
    AlignmentGap
    """
    memory_budget = _budget(options)
    kernel, xp, X_t, L, A = _setup(kernel, landmarks, X_t, A)
    n, m = X_t.shape[0], A.shape[0]
    K = _check_K(K, m)
    if not 0 < ci < 1:
        raise ValueError(f"ci={ci} must be in (0, 1).")
    xt, xl, delta = _feature_columns(xp, X_t_raw, L_raw, feature, n, m, categorical, feature_range)
    draw = _RandomSubsets(seed, _STREAM_AG, m, K)
    w = _influence_weights(xp, A, None)
    psi = np.empty(n)
    psi_r = np.empty(n)
    b = _rows(n, 8 * m + X_t.shape[1], 8, memory_budget)
    for sl, K_bm in _blocks(kernel, X_t, L, b, K_tm):
        S = xp.abs(K_bm) * w[None, :]
        V = feature_agreement(xt[sl], xl, delta, categorical)
        for R, out in ((_topk(xp, S, K, sort=False)[0], psi),
                       (xp.asarray(draw(sl.start, sl.stop)), psi_r)):
            s = xp.take_along_axis(S, R, axis=1).astype(xp.float64)
            mass = s.sum(axis=1)
            aligned = (s * xp.take_along_axis(V, R, axis=1)).sum(axis=1)
            out[sl] = to_host(xp.where(mass > 0, aligned / xp.where(mass > 0, mass, 1.0), xp.nan))
    d = psi - psi_r
    valid = np.isfinite(d)
    dv = d[valid]
    if dv.size == 0:
        raise ValueError("alignment_gap: every test point has zero influence mass; "
                         "check the kernel bandwidth and A.")
    lo = hi = math.nan
    if n_boot > 0:
        rng = np.random.default_rng([int(seed), _STREAM_BOOT])
        means = np.empty(int(n_boot))
        per = max(1, 10**7 // dv.size)
        for s0 in range(0, int(n_boot), per):
            r = min(per, int(n_boot) - s0)
            means[s0:s0 + r] = dv[rng.integers(0, dv.size, size=(r, dv.size))].mean(axis=1)
        lo, hi = np.percentile(means, [50 * (1 - ci), 50 * (1 + ci)])
    return AlignmentGap(float(dv.mean()), float(lo), float(hi), float(psi[valid].mean()),
                        float(psi_r[valid].mean()), int(dv.size), d)


