"""Representer decomposition, influence scores, top-K landmarks and concepts.

Book: *Interpretability*, eqs. (int-representer), (int-is), (int-concept); spec §6.
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
from ._common import (_budget, _blocks, _check_K, _check_dense, _influence_weights, _rows, _setup, _topk,
                      _unit_vector, _work_dtype)

# ---------------------------------------------------------------------------------------
# (int-representer)
# ---------------------------------------------------------------------------------------
def contribution_blocks(kernel, landmarks, X_t, A, options=None, K_tm=None) -> Iterator:
    """Per-landmark contributions k(x̃_l, x_t) A_l,: over blocks of test rows, eq. (int-representer).

    Parameters
    ----------
    kernel : Kernel or str
        The kernel k.
    landmarks : array (m, d) or Landmarks
        x̃_1..x̃_m.
    X_t : array (n_t, d)
        Test points.
    A : array (m, h)
        Coefficients: ΔÃ (audit) or Ã (trained model).
    options : krepes_lib.Options, optional
        Its ``memory_budget``: bytes for one block; a block of b rows holds the (b, m, h)
        contribution tensor and the (b, m) kernel block with its temporaries.

    Yields
    ------
    rows : slice
        The test rows of the block.
    C_block : array (b, m, h)
        ``C_block[t, l, :] = k(x̃_l, x_t) A[l, :]``.
    """
    memory_budget = _budget(options)
    kernel, xp, X_t, L, A = _setup(kernel, landmarks, X_t, A)
    m, h = A.shape
    b = _rows(X_t.shape[0], 3 * m + m * h + X_t.shape[1] + h, X_t.dtype.itemsize, memory_budget)
    for sl, K_bm in _blocks(kernel, X_t, L, b, K_tm):
        yield sl, K_bm[:, :, None] * A[None, :, :]


def contributions(kernel, landmarks, X_t, A, options=None, K_tm=None,
                  max_bytes: int = DENSE_MAX_BYTES):
    """All contributions, shape (n_t, m, h), eq. (int-representer) — for small test sets only.

    Raises ValueError when the result exceeds ``max_bytes``; use :func:`contribution_blocks`.
    See :func:`contribution_blocks` for the parameters.
    """
    kernel, xp, X_t, L, A = _setup(kernel, landmarks, X_t, A)
    n, (m, h) = X_t.shape[0], A.shape
    _check_dense(n * m * h * X_t.dtype.itemsize, max_bytes, "contributions", "contribution_blocks")
    out = xp.empty((n, m, h), dtype=X_t.dtype)
    for sl, C in contribution_blocks(kernel, L, X_t, A, options, K_tm=K_tm):
        out[sl] = C
    return out


def representer_sum(kernel, landmarks, X_t, A, gamma=None, options=None, K_tm=None):
    """f(x_t) = Σ_l k(x̃_l, x_t) A_l,: + γ, the representer decomposition summed back, eq. (int-representer).

    Sums the contributions of :func:`contribution_blocks` over l, block by block; equals
    K_tm A + 1γᵀ (:meth:`Kernel.matmul`) to rounding.

    Parameters
    ----------
    kernel, landmarks, X_t, A, options
        As in :func:`contribution_blocks`.
    gamma : array (h,), optional
        The bias γ (omit for ΔÃ, whose model has no bias increment).

    Returns
    -------
    F_t : array (n_t, h)
    """
    kernel, xp, X_t, L, A = _setup(kernel, landmarks, X_t, A, extra=(gamma,))
    out = xp.empty((X_t.shape[0], A.shape[1]), dtype=X_t.dtype)
    for sl, C in contribution_blocks(kernel, L, X_t, A, options, K_tm=K_tm):
        out[sl] = C.sum(axis=1)
    if gamma is not None:
        out += asarray(gamma, xp=xp, dtype=X_t.dtype, name="gamma").reshape(1, -1)
    return out


# ---------------------------------------------------------------------------------------
# (int-is) and (int-concept)
# ---------------------------------------------------------------------------------------
def landmark_norms(A):
    """‖A_l,:‖₂ per landmark, shape (m,), in A's namespace (the ranking behind κ)."""
    xp = get_xp(A)
    A = asarray(A, xp=xp, dtype=_work_dtype(A), name="A")
    return xp.sqrt(xp.einsum("lj,lj->l", A, A)) if A.ndim == 2 else xp.abs(A)


def influence_blocks(kernel, landmarks, X_t, A, v=None, options=None, K_tm=None) -> Iterator:
    """Influence scores over blocks of test rows, eqs. (int-is) and (int-concept).

    Without ``v``: IS(x̃_l, x_t) = ‖k(x̃_l, x_t) A_l,:‖₂ = |k(x̃_l, x_t)|·‖A_l,:‖₂ (≥ 0).
    With a concept vector ``v`` (normalised to unit length here):
    IS(x̃_l, x_t; v) = ⟨k(x̃_l, x_t) A_l,:, v⟩ = k(x̃_l, x_t)·(A v)_l, signed — negative
    values are repulsive landmarks. Neither forms the (b, m, h) contributions.

    Parameters
    ----------
    kernel, landmarks, X_t, A, options
        As in :func:`contribution_blocks`.
    v : array (h,), optional
        Concept activation vector (:func:`concept_activation_vector`).

    Yields
    ------
    rows : slice
    IS_block : array (b, m)
    """
    memory_budget = _budget(options)
    kernel, xp, X_t, L, A = _setup(kernel, landmarks, X_t, A, extra=(v,))
    w = _influence_weights(xp, A, v)
    m = A.shape[0]
    b = _rows(X_t.shape[0], 8 * m + X_t.shape[1], X_t.dtype.itemsize, memory_budget)
    for sl, K_bm in _blocks(kernel, X_t, L, b, K_tm):
        if v is None:
            K_bm = xp.abs(K_bm, out=K_bm)
        K_bm *= w[None, :]
        yield sl, K_bm


def influence_scores(kernel, landmarks, X_t, A, v=None, options=None, K_tm=None,
                     max_bytes: int = DENSE_MAX_BYTES):
    """All influence scores, shape (n_t, m), eqs. (int-is) / (int-concept) — small test sets only.

    See :func:`influence_blocks`; raises ValueError beyond ``max_bytes``. A Dask X_t gives a
    Dask array, chunk by chunk on the workers (:mod:`krepes_lib.distributed`).
    """
    if is_dask_array(X_t):
        return dask_pass("influence_scores")(make_kernel(kernel), landmarks, X_t, A, v=v,
                                             options=options)
    kernel, xp, X_t, L, A = _setup(kernel, landmarks, X_t, A, extra=(v,))
    n, m = X_t.shape[0], A.shape[0]
    _check_dense(n * m * X_t.dtype.itemsize, max_bytes, "influence_scores", "influence_blocks")
    out = xp.empty((n, m), dtype=X_t.dtype)
    for sl, S in influence_blocks(kernel, L, X_t, A, v, options, K_tm=K_tm):
        out[sl] = S
    return out


class TopK(NamedTuple):
    """Top-K landmarks per test point by IS, eq. (int-is).

    Attributes
    ----------
    indices : array (n_t, K) of int64
        Landmark indices, by decreasing IS.
    scores : array (n_t, K)
        Their IS(x̃_l, x_t) ≥ 0.
    concept_scores : array (n_t, K) or None
        Their signed IS(x̃_l, x_t; v), eq. (int-concept), when a concept vector was given.
    """

    indices: object
    scores: object
    concept_scores: object = None


def top_influential(kernel, landmarks, X_t, A, K: int = TOP_K, v=None,
                    options=None, K_tm=None) -> TopK:
    """The K most influential landmarks of every test point, eq. (int-is), streamed.

    Per block of test rows: IS = |K_bm|·‖A_l,:‖₂, then ``argpartition`` for the top K and a
    sort of those K. With a concept vector ``v`` the signed concept-conditioned scores
    ⟨k(x̃_l, x_t) A_l,:, v⟩ of the same landmarks are returned too, eq. (int-concept).

    Parameters
    ----------
    kernel, landmarks, X_t, A, options
        As in :func:`contribution_blocks`.
    K : int, default 5
        Landmarks per test point (1 ≤ K ≤ m).
    v : array (h,), optional
        Concept activation vector (normalised here).

    Returns
    -------
    TopK
        ``indices`` (n_t, K), ``scores`` (n_t, K), ``concept_scores`` (n_t, K) or None;
        arrays in X_t's namespace.

    Examples
    --------
    >>> import numpy as np
    >>> from krepes_lib.kernels import RBF
    >>> L = np.array([[0.0], [1.0], [5.0]])          # three landmarks
    >>> A = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]])
    >>> top = top_influential(RBF(sigma=1.0), L, np.array([[0.9]]), A, K=2)
    >>> top.indices                                  # near beats far, despite ‖A_2,:‖ = 5
    array([[1, 0]])

    A Dask X_t gives a TopK of Dask arrays, chunk by chunk on the workers
    (:mod:`krepes_lib.distributed`).
    """
    if is_dask_array(X_t):
        return dask_pass("top_influential")(make_kernel(kernel), landmarks, X_t, A, K=K, v=v,
                                            options=options)
    memory_budget = _budget(options)
    kernel, xp, X_t, L, A = _setup(kernel, landmarks, X_t, A, extra=(v,))
    n, m = X_t.shape[0], A.shape[0]
    K = _check_K(K, m)
    w = _influence_weights(xp, A, None)
    if not bool((w > 0).any()):
        raise ValueError(
            "top_influential: A (the audit's ΔÃ) is all zero, so every influence score is 0 and "
            "any ranking of the landmarks would be arbitrary. The audit step did nothing: check "
            "audit.summary() (CG iterations and convergence) and the damping (Options.damping "
            "must be finite and not so large that it swamps H_GN).")
    wv = None if v is None else _influence_weights(xp, A, v)
    idx_out = xp.empty((n, K), dtype=xp.int64)
    sc_out = xp.empty((n, K), dtype=X_t.dtype)
    cs_out = None if v is None else xp.empty((n, K), dtype=X_t.dtype)
    b = _rows(n, 6 * m + X_t.shape[1], X_t.dtype.itemsize, memory_budget)
    for sl, K_bm in _blocks(kernel, X_t, L, b, K_tm):
        S = xp.abs(K_bm) * w[None, :]
        idx, vals = _topk(xp, S, K)
        idx_out[sl], sc_out[sl] = idx, vals
        if v is not None:
            cs_out[sl] = xp.take_along_axis(K_bm, idx, axis=1) * wv[idx]
    return TopK(idx_out, sc_out, cs_out)


def concept_activation_vector(Z_pos, Z_neg, C: float = CAV_C, max_iter: int = 1000,
                              fit_intercept: bool = True):
    """Unit concept activation vector v_c, eq. (int-concept) (Kim et al., 2018).

    A logistic regression (scikit-learn, lbfgs, L2 penalty with inverse strength ``C``, on
    the host) separates concept positives from negatives in representation space, without
    standardising the features (standardising would change the direction). v_c is its
    weight vector divided by its norm, oriented from the negatives to the positives.

    Parameters
    ----------
    Z_pos : array (n_pos, h)
        Representations of the concept's positives 𝒫_c.
    Z_neg : array (n_neg, h)
        Representations of negatives 𝒩_c (e.g. random samples).
    C : float, default 1.0
        Inverse L2 regularisation of the logistic regression (ours).
    max_iter : int
    fit_intercept : bool

    Returns
    -------
    v_c : array (h,)
        Unit vector in Z_pos's namespace and floating dtype.
    """
    from sklearn.linear_model import LogisticRegression

    xp = get_xp(Z_pos, Z_neg)
    dt = _work_dtype(Z_pos, Z_neg)
    P = np.asarray(to_host(Z_pos), dtype=np.float64)
    N = np.asarray(to_host(Z_neg), dtype=np.float64)
    if P.ndim != 2 or N.ndim != 2 or P.shape[1] != N.shape[1]:
        raise ValueError(f"Z_pos and Z_neg must be 2-D with the same h; got {P.shape} and {N.shape}.")
    if P.shape[0] < 1 or N.shape[0] < 1:
        raise ValueError("concept_activation_vector needs at least one positive and one negative.")
    Z = np.concatenate([P, N])
    y = np.concatenate([np.ones(P.shape[0]), np.zeros(N.shape[0])])
    clf = LogisticRegression(C=C, max_iter=max_iter, fit_intercept=fit_intercept)
    clf.fit(Z, y)
    w = clf.coef_.ravel()
    nrm = np.linalg.norm(w)
    if not nrm > 0:
        raise ValueError("the concept logistic regression returned a zero weight vector; "
                         "positives and negatives are not separable in any direction.")
    return xp.asarray(w / nrm).astype(dt)


def concept_influence(kernel, landmarks, X_t, A, v, options=None, K_tm=None,
                      max_bytes: int = DENSE_MAX_BYTES):
    """IS(x̃_l, x_t; v) = ⟨k(x̃_l, x_t) A_l,:, v⟩ for all pairs, shape (n_t, m), eq. (int-concept).

    Signed; small test sets only (stream with ``influence_blocks(..., v=v)``).
    """
    return influence_scores(kernel, landmarks, X_t, A, v=v, options=options,
                            max_bytes=max_bytes, K_tm=K_tm)


class AttractRepel(NamedTuple):
    """Most attracting and most repelling landmarks per test point, eq. (int-concept).

    Attributes
    ----------
    attract_indices, attract_scores : arrays (n_t, K)
        The K largest IS(x̃_l, x_t; v), decreasing.
    repel_indices, repel_scores : arrays (n_t, K)
        The K smallest (most negative) IS(x̃_l, x_t; v), increasing. When fewer than K
        landmarks have a negative (positive) score, the lists are completed with scores of
        the other sign: read the sign, not the list.
    """

    attract_indices: object
    attract_scores: object
    repel_indices: object
    repel_scores: object


def top_attracting_repelling(kernel, landmarks, X_t, A, v, K: int = TOP_K,
                             options=None, K_tm=None) -> AttractRepel:
    """K most attracting and K most repelling landmarks along a concept, eq. (int-concept), streamed.

    Parameters
    ----------
    kernel, landmarks, X_t, A, options
        As in :func:`contribution_blocks`.
    v : array (h,)
        Concept activation vector (normalised here).
    K : int, default 5

    Returns
    -------
    AttractRepel
    """
    kernel, xp, X_t, L, A = _setup(kernel, landmarks, X_t, A, extra=(v,))
    n, m = X_t.shape[0], A.shape[0]
    K = _check_K(K, m)
    ai, ri = xp.empty((n, K), dtype=xp.int64), xp.empty((n, K), dtype=xp.int64)
    as_, rs = xp.empty((n, K), dtype=X_t.dtype), xp.empty((n, K), dtype=X_t.dtype)
    for sl, S in influence_blocks(kernel, L, X_t, A, v=v, options=options, K_tm=K_tm):
        ai[sl], as_[sl] = _topk(xp, S, K)
        idx, vals = _topk(xp, -S, K)
        ri[sl], rs[sl] = idx, -vals
    return AttractRepel(ai, as_, ri, rs)


