"""Evaluation metrics of an audit: Precision@1, confidence drop, Kendall-τ, spectral entropy, κ.

Book: *Interpretability*, eqs. (int-p1), (int-drop), (int-entropy), (lm-kappa); spec §6.
"""
from __future__ import annotations

import math
from typing import Iterator, NamedTuple

import numpy as np

from ..backend import asarray, dask_pass, get_xp, is_dask_array, resolve_dtype, to_host
from ..defaults import (AG_TOP_K, CAV_C, CI_LEVEL, DENSE_MAX_BYTES, DROP_KNN_K,
                        DROP_N_REMOVE, EIGEN_RTOL, N_BOOT, TOP_K)
from ..kernels import make_kernel
from ..landmarks import Landmarks, class_coverage
from ._common import (_budget, _RandomSubsets, _STREAM_DROP, _blocks, _check_K, _encode_labels,
                      _influence_weights, _representation_setup, _rows, _setup, _topk, _unit_rows)
from .influence import landmark_norms

# ---------------------------------------------------------------------------------------
# (int-p1), (int-drop)
# ---------------------------------------------------------------------------------------
class PrecisionAt1(NamedTuple):
    """Precision@1 of the top-1 landmark, eq. (int-p1).

    Attributes
    ----------
    krepes : float
        Share of test points whose top-1 landmark by IS has the test point's class.
    cosine : float
        The same for the top-1 landmark by cosine similarity of representations (baseline).
    """

    krepes: float
    cosine: float


def precision_at_1(kernel, landmarks, X_t, A, y_t, y_landmarks, A_repr=None, gamma=None,
                   options=None, K_tm=None, K_mm=None) -> PrecisionAt1:
    """Precision@1 of KREPES' top-1 landmark and of the cosine baseline, eq. (int-p1), streamed.

    KREPES: l*(t) = argmax_l IS(x̃_l, x_t) with A. Baseline: l°(t) = argmax_l
    cos(f(x_t), f(x̃_l)) with f(x) = A_reprᵀk_x + γ, the representation of the (audited)
    model. Ties go to the lowest landmark index. Uses labels: evaluation only.

    Parameters
    ----------
    kernel, landmarks, X_t, A, options
        As in :func:`contribution_blocks`; A is ΔÃ (audit) or Ã.
    y_t : array (n_t,)
        Test labels.
    y_landmarks : array (m,)
        Landmark labels.
    A_repr : array (m, h), optional
        Coefficients of the representation for the baseline (audit: Ã₀ + ΔÃ); default A.
    gamma : array (h,), optional
        Bias of that representation.

    Returns
    -------
    PrecisionAt1
    """
    memory_budget = _budget(options)
    kernel, xp, X_t, L, A = _setup(kernel, landmarks, X_t, A, extra=(A_repr, gamma))
    n, m = X_t.shape[0], A.shape[0]
    _, (c_t, c_l) = _encode_labels(y_t, y_landmarks)
    if c_t.shape[0] != n or c_l.shape[0] != m:
        raise ValueError(f"y_t must have n_t={n} and y_landmarks m={m} entries; got "
                         f"{c_t.shape[0]} and {c_l.shape[0]}.")
    A_r, g, Z_L = _representation_setup(xp, kernel, L, A, A_repr, gamma, X_t.dtype, K_mm)
    Z_Lu = _unit_rows(xp, Z_L)
    w = _influence_weights(xp, A, None)
    c_l = xp.asarray(c_l)
    hits_is = hits_cos = 0
    b = _rows(n, 6 * m + X_t.shape[1] + 2 * A_r.shape[1], X_t.dtype.itemsize, memory_budget)
    for sl, K_bm in _blocks(kernel, X_t, L, b, K_tm):
        ct = xp.asarray(c_t[sl])
        top_is = xp.argmax(xp.abs(K_bm) * w[None, :], axis=1)
        Z = K_bm @ A_r
        if g is not None:
            Z = Z + g
        top_cos = xp.argmax(_unit_rows(xp, Z) @ Z_Lu.T, axis=1)
        hits_is += int((c_l[top_is] == ct).sum())
        hits_cos += int((c_l[top_cos] == ct).sum())
    return PrecisionAt1(hits_is / n, hits_cos / n)


class ConfidenceDrop(NamedTuple):
    """Confidence drop after removing landmarks, eq. (int-drop).

    Attributes
    ----------
    top : float
        Mean drop when the ``n_remove`` landmarks of largest IS are removed.
    random : float
        Mean drop when ``n_remove`` random landmarks are removed.
    ratio : float
        top / random, reported only when both drops are positive (NaN otherwise: with a
        zero or negative random drop, or a negative top drop, the ratio's sign and size
        carry no meaning).
    confidence : float
        Mean k-NN confidence before any removal.
    per_point_top, per_point_random : numpy.ndarray (n_t,)
        Per-test-point drops (host, float64).
    """

    top: float
    random: float
    ratio: float
    confidence: float
    per_point_top: np.ndarray
    per_point_random: np.ndarray


#: The k-NN over m landmarks degenerates when m is close to k + n_remove (the neighbour set is
#: then most of the landmarks): a reported drop needs m >= MIN_M_FACTOR * (k + n_remove)
#: (120 for the paper's k = 50, n_remove = 10; ours).
MIN_M_FACTOR = 2


def confidence_drop(kernel, landmarks, X_t, A, y_landmarks, y_t=None, target: str = "true",
                    n_remove: int = DROP_N_REMOVE, k: int = DROP_KNN_K, metric: str = "cosine",
                    A_repr=None, gamma=None, seed: int = 0,
                    options=None, K_tm=None, K_mm=None,
                    allow_small_m: bool = False, _row_offset: int = 0) -> ConfidenceDrop:
    """k-NN confidence drop when a test point's most influential landmarks are removed, eq. (int-drop).

    Definition (spec §6; the choices marked *ours* are the project's):

    * The k-NN classifies a test point by its k nearest **landmarks** in representation
      space: z_t = f(x_t) and z_l = f(x̃_l) with f(x) = A_reprᵀk_x + γ (audit: Ã₀ + ΔÃ),
      labels y_l of the landmarks. Nearness is cosine similarity (*ours*; ``metric=
      "euclidean"`` is the alternative). Test points are assumed not to be landmarks
      themselves (no self-exclusion).
    * The target class c_t is, by default, the test point's **true** class y_t (spec §6:
      "the k-NN confidence of the test point's class"); ``target="predicted"`` uses the
      k-NN's predicted class before any removal instead (majority of the k neighbours, ties
      to the smallest label; needs no test label: how much support for the k-NN's own
      decision the removed landmarks carried).
    * Confidence conf(x_t; 𝓛) = share of the k nearest landmarks in the set 𝓛 whose label
      is c_t. Removing a set R means excluding it from the neighbour set: 𝓛 \\ R; c_t is
      kept fixed.
    * drop(x_t; R) = conf(x_t; 𝓛) − conf(x_t; 𝓛 \\ R), with R_top = the ``n_remove``
      landmarks of largest IS(x̃_l, x_t) (eq. int-is, with A) and R_rand = ``n_remove``
      landmarks drawn uniformly without replacement (host RNG, ``seed``).
    * Reported: the means over test points of both drops and their ratio (only when both
      are positive).
    * Minimum m: the metric degenerates when m is close to k + n_remove; m must be at least
      ``MIN_M_FACTOR * (k + n_remove)`` (120 at the paper's k = 50, n_remove = 10) unless
      ``allow_small_m=True``.

    Parameters
    ----------
    kernel, landmarks, X_t, A, options
        As in :func:`contribution_blocks`.
    y_landmarks : array (m,)
        Landmark labels.
    y_t : array (n_t,), optional
        Test labels; required for ``target="true"``.
    target : {"true", "predicted"}, default "true"
    n_remove : int, default 10 (paper)
    k : int, default 50 (paper); requires m ≥ k + n_remove.
    metric : {"cosine", "euclidean"}
    A_repr : array (m, h), optional
        Coefficients of the representation used by the k-NN; default A.
    gamma : array (h,), optional
    seed : int, default 0

    Returns
    -------
    ConfidenceDrop

    A Dask X_t runs chunk by chunk on the workers (:mod:`krepes_lib.distributed`); the random
    subsets are drawn by global row (``_row_offset``: the global index of X_t's first row).
    """
    if is_dask_array(X_t):
        return dask_pass("confidence_drop")(
            kernel, landmarks, X_t, A, y_landmarks, y_t=y_t, target=target, n_remove=n_remove, k=k,
            metric=metric, A_repr=A_repr, gamma=gamma, seed=seed, options=options,
            K_mm=K_mm, allow_small_m=allow_small_m)
    memory_budget = _budget(options)
    kernel, xp, X_t, L, A = _setup(kernel, landmarks, X_t, A, extra=(A_repr, gamma))
    n, m = X_t.shape[0], A.shape[0]
    if target not in ("predicted", "true"):
        raise ValueError(f"target={target!r}: use 'predicted' (the k-NN's class) or 'true' (y_t).")
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric={metric!r}: use 'cosine' or 'euclidean'.")
    n_remove = _check_K(n_remove, m, "n_remove")
    k = _check_K(k, m, "k")
    if m < k + n_remove:
        raise ValueError(f"m={m} landmarks cannot leave k={k} neighbours after removing "
                         f"n_remove={n_remove}; need m >= k + n_remove.")
    if m < MIN_M_FACTOR * (k + n_remove) and not allow_small_m:
        raise ValueError(f"m={m} landmarks is too close to k + n_remove = {k + n_remove}: the k-NN's "
                         f"neighbour set is most of the landmarks and the drop degenerates. Use "
                         f"m >= {MIN_M_FACTOR * (k + n_remove)}, a smaller k, or allow_small_m=True.")
    if target == "true":
        if y_t is None:
            raise ValueError("target='true' needs y_t (the test labels).")
        classes, (c_l, c_t_all) = _encode_labels(y_landmarks, y_t)
        if c_t_all.shape[0] != n:
            raise ValueError(f"y_t must have n_t={n} entries; got {c_t_all.shape[0]}.")
    else:
        classes, (c_l,) = _encode_labels(y_landmarks)
    if c_l.shape[0] != m:
        raise ValueError(f"y_landmarks must have m={m} entries; got {c_l.shape[0]}.")
    C = int(classes.shape[0])
    c_l = xp.asarray(c_l)
    A_r, g, Z_L = _representation_setup(xp, kernel, L, A, A_repr, gamma, X_t.dtype, K_mm)
    if metric == "cosine":
        Z_L = _unit_rows(xp, Z_L)
    else:
        zl2 = xp.einsum("ij,ij->i", Z_L, Z_L)
    w = _influence_weights(xp, A, None)
    draw = _RandomSubsets(seed, _STREAM_DROP, m, n_remove)
    conf0 = np.empty(n)
    drop_top = np.empty(n)
    drop_rand = np.empty(n)
    per_row = 12 * m + C + X_t.shape[1] + 2 * A_r.shape[1]
    b = _rows(n, per_row, X_t.dtype.itemsize, memory_budget)

    def conf(S, c):
        nn = _topk(xp, S, k, sort=False)[0]
        return (c_l[nn] == c[:, None]).mean(axis=1)

    for sl, K_bm in _blocks(kernel, X_t, L, b, K_tm):
        rows = sl.stop - sl.start
        Z = K_bm @ A_r
        if g is not None:
            Z = Z + g
        if metric == "cosine":
            S = _unit_rows(xp, Z) @ Z_L.T
        else:
            S = 2.0 * (Z @ Z_L.T) - zl2[None, :]  # −‖z − z_l‖² + ‖z‖² (row constant)
        if target == "true":
            c = xp.asarray(c_t_all[sl])
        else:
            nn = _topk(xp, S, k, sort=False)[0]
            flat = (xp.arange(rows)[:, None] * C + c_l[nn]).ravel()
            counts = xp.bincount(flat, minlength=rows * C).reshape(rows, C)
            c = xp.argmax(counts, axis=1)
        c0 = conf(S, c)
        conf0[sl] = to_host(c0)
        IS = xp.abs(K_bm) * w[None, :]
        ridx = xp.arange(rows)[:, None]
        for R, out in ((_topk(xp, IS, n_remove, sort=False)[0], drop_top),
                       (xp.asarray(draw(sl.start + _row_offset, sl.stop + _row_offset)), drop_rand)):
            S2 = S.copy()
            S2[ridx, R] = -xp.inf
            out[sl] = to_host(c0 - conf(S2, c))
    top, rnd = float(drop_top.mean()), float(drop_rand.mean())
    ratio = top / rnd if (top > 0 and rnd > 0) else math.nan
    return ConfidenceDrop(top, rnd, ratio, float(conf0.mean()), drop_top, drop_rand)


# ---------------------------------------------------------------------------------------
# Kendall-τ, (int-entropy), κ
# ---------------------------------------------------------------------------------------
def kendall_tau(a, b) -> float:
    """Kendall's τ-b between two models' per-sample scores (SciPy, on the host).

    In the paper: the linear-probe predicted-class probabilities of the network and of the
    KREPES model on the test set. NaN when one of the score vectors is constant.

    Parameters
    ----------
    a, b : array (n,)
    """
    from scipy.stats import kendalltau

    a = np.asarray(to_host(a), dtype=np.float64).ravel()
    b = np.asarray(to_host(b), dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same length; got {a.size} and {b.size}.")
    return float(kendalltau(a, b)[0])


def spectral_entropy(A, rtol: float = EIGEN_RTOL) -> float:
    """Normalised spectral entropy of ÃᵀÃ, eq. (int-entropy).

    H = −Σ_i p_i log p_i / log h with p_i = σ_i / Σ_j σ_j and σ_i the eigenvalues of the
    h×h matrix ÃᵀÃ (computed in float64). Eigenvalues ≤ ``rtol``·σ_max (relative floor,
    default 1e-10, and negative round-off) count as zero, and 0 log 0 = 0. H = 1 for
    ÃᵀÃ ∝ I, H = 0 for rank one.

    Parameters
    ----------
    A : array (m, h), h ≥ 2
    rtol : float

    Raises
    ------
    ValueError
        For h < 2 (log h = 0) or A = 0.
    """
    xp = get_xp(A)
    A = asarray(A, xp=xp, dtype="float64", name="A")
    if A.ndim != 2 or A.shape[1] < 2:
        raise ValueError(f"A must be (m, h) with h >= 2 (H is normalised by log h); got {A.shape}.")
    h = A.shape[1]
    sig = np.asarray(to_host(xp.linalg.eigvalsh(A.T @ A)), dtype=np.float64)
    smax = sig.max()
    if not smax > 0:
        raise ValueError("A is zero: the spectral entropy of ÃᵀÃ = 0 is undefined.")
    sig = np.where(sig > rtol * smax, sig, 0.0)
    p = sig / sig.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / math.log(h))


def class_coverage_from_coefficients(A, landmark_labels, n_classes: int | None = None) -> int:
    """Class coverage κ of the landmarks ranked by ‖A_l,:‖₂, eq. (lm-kappa).

    A thin wrapper around :func:`krepes_lib.landmarks.class_coverage` with the scores
    ‖Ã_l,:‖₂ (trained model) or ‖ΔÃ_l,:‖₂ (audit). Returns m + 1 when the landmarks do not
    contain all classes. Uses labels: evaluation only.

    Parameters
    ----------
    A : array (m, h)
    landmark_labels : array (m,)
    n_classes : int, optional
        C; default the number of distinct landmark labels.
    """
    return class_coverage(to_host(landmark_norms(A)), landmark_labels, n_classes=n_classes)

