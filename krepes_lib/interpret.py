"""Interpretability: representer landmarks, influence scores, concepts and their evaluation.

Book: *Interpretability* (``book/interpretability.md``), equations (int-representer) ...
(int-entropy); spec §6 (definitions) and §7 (the paper's numbers).

Every function takes a **generic coefficient matrix** ``A`` of shape (m, h): the one-step
GGN-Newton increment ΔÃ when auditing a frozen network (v3), or the trained Ã itself (v1).
The representation the influence explains is f(x) = Ãᵀk_x + γ with k_x = [k(x̃_l, x)]_l.

Streaming
---------
Nothing of size n_test × m (let alone n_test × m × h) is ever held for all test points:
every function walks over **blocks of test rows** whose size is chosen so that the kernel
block K_bm and the per-block work arrays fit ``memory_budget`` bytes
(default :data:`krepes_lib.defaults.BLOCK_BYTES`). Per-landmark quantities (‖A_l,:‖₂, A v,
the landmark representations) are O(m h) and computed once. The dense convenience
functions (:func:`contributions`, :func:`influence_scores`, ...) concatenate the blocks and
refuse (ValueError) an output larger than ``max_bytes``; use the ``*_blocks`` iterators for
large test sets. Results do not depend on the block size (tested).

Backends
--------
"Everything follows X": arrays are computed in the namespace of the inputs
(:func:`krepes_lib.backend.get_xp`, NumPy or CuPy, mixing is an error). scikit-learn
(concept activation vectors) and SciPy (Kendall-τ) run on the host on explicit
:func:`~krepes_lib.backend.to_host` copies. Random landmark sets (the baselines of the
alignment gap and the confidence drop) and bootstrap resamples are drawn on the host from
seeded generators, in fixed chunks of test rows, so a seed gives the same draws on a CPU
and a GPU and for any ``memory_budget``.

Defaults of spec §6 that are the paper's: top-10 removal and k = 50 for the confidence
drop. Defaults that are ours: K = 5 for the top-K lists, K = 10 for the alignment gap,
1000 bootstrap resamples, a 95% percentile interval, cosine similarity for the k-NN and
the Precision@1 baseline, the k-NN's *predicted* class as the confidence target, and
C = 1 for the concept logistic regression.
"""
from __future__ import annotations

import math
from typing import Iterator, NamedTuple

import numpy as np

from .backend import asarray, get_xp, resolve_dtype, to_host
from .defaults import (AG_TOP_K, BLOCK_BYTES, CAV_C, CI_LEVEL, DENSE_MAX_BYTES, DROP_KNN_K,
                       DROP_N_REMOVE, EIGEN_RTOL, N_BOOT, TOP_K)
from .kernels import make_kernel
from .landmarks import Landmarks, class_coverage

__all__ = [
    "contribution_blocks", "contributions", "representer_sum",
    "landmark_norms", "influence_blocks", "influence_scores", "top_influential",
    "concept_activation_vector", "concept_influence", "top_attracting_repelling",
    "feature_agreement", "feature_conditioned_influence", "alignment_gap",
    "precision_at_1", "confidence_drop", "kendall_tau", "spectral_entropy",
    "class_coverage_from_coefficients",
    "TopK", "AttractRepel", "AlignmentGap", "PrecisionAt1", "ConfidenceDrop",
    "TOP_K", "AG_TOP_K", "N_BOOT", "CI_LEVEL", "DROP_N_REMOVE", "DROP_KNN_K", "CAV_C",
    "DENSE_MAX_BYTES",
]

# TOP_K ... DENSE_MAX_BYTES: see krepes_lib.defaults (the one place for defaults).

# Random landmark subsets are drawn per chunk of this many test rows from
# default_rng([seed, stream, chunk]): independent of the block size and of the device.
_RAND_CHUNK = 4096
_STREAM_AG, _STREAM_BOOT, _STREAM_DROP = 0, 1, 2


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def _work_dtype(*arrays):
    floats = [a.dtype for a in arrays
              if hasattr(a, "dtype") and np.issubdtype(np.dtype(a.dtype), np.floating)]
    if not floats:
        return resolve_dtype(None)
    return resolve_dtype(np.result_type(*floats))


def _setup(kernel, landmarks, X_t, A, extra=()):
    """Validate (kernel, x̃, X_t, A): one namespace, one floating dtype, matching shapes."""
    kernel = make_kernel(kernel)
    L = landmarks.points if isinstance(landmarks, Landmarks) else landmarks
    xp = get_xp(L, X_t, A, *extra)  # raises on a host/device mix
    dt = _work_dtype(L, X_t, A, *extra)
    X_t = asarray(X_t, xp=xp, dtype=dt, name="X_t")
    L = asarray(L, xp=xp, dtype=dt, name="landmarks")
    A = asarray(A, xp=xp, dtype=dt, name="A")
    if X_t.ndim != 2 or L.ndim != 2:
        raise ValueError(f"X_t and landmarks must be 2-D (n, d) arrays; got shapes "
                         f"{X_t.shape} and {L.shape}.")
    if X_t.shape[1] != L.shape[1]:
        raise ValueError(f"X_t has {X_t.shape[1]} features but the landmarks have {L.shape[1]}.")
    if A.ndim == 1:
        A = A[:, None]
    if A.ndim != 2 or A.shape[0] != L.shape[0]:
        raise ValueError(f"A must have shape (m={L.shape[0]}, h) (one row per landmark); "
                         f"got {A.shape}.")
    return kernel, xp, X_t, L, A


def _rows(n, per_row_numbers, itemsize, memory_budget):
    """Test rows per block so that ``per_row_numbers`` numbers per row fit the budget."""
    if memory_budget <= 0:
        raise ValueError(f"memory_budget={memory_budget} must be a positive number of bytes.")
    return int(max(1, min(max(n, 1), memory_budget // max(1, itemsize * per_row_numbers))))


def _check_K(K, m, what="K"):
    if int(K) != K or K < 1 or K > m:
        raise ValueError(f"{what}={K} must be an integer in [1, m={m}].")
    return int(K)


def _check_dense(nbytes, max_bytes, name, stream_with):
    if nbytes > max_bytes:
        raise ValueError(
            f"{name} would need {nbytes / 2**20:.1f} MiB (> max_bytes = {max_bytes / 2**20:.1f} MiB); "
            f"stream it with {stream_with} instead, or raise max_bytes.")


def _argsort_desc(xp, a):
    if xp is np:
        return np.argsort(-a, axis=1, kind="stable")
    return xp.argsort(-a, axis=1)


def _topk(xp, S, K, sort=True):
    """Indices and values of the K largest entries per row of S (b, m), descending."""
    m = S.shape[1]
    if K < m:
        idx = xp.argpartition(-S, K - 1, axis=1)[:, :K]
    else:
        idx = xp.broadcast_to(xp.arange(m)[None, :], S.shape).copy()
    vals = xp.take_along_axis(S, idx, axis=1)
    if sort:
        order = _argsort_desc(xp, vals)
        idx = xp.take_along_axis(idx, order, axis=1)
        vals = xp.take_along_axis(vals, order, axis=1)
    return idx, vals


def _unit_vector(xp, v, h, dtype):
    v = asarray(v, xp=xp, dtype=dtype, name="v").ravel()
    if v.shape[0] != h:
        raise ValueError(f"v has {v.shape[0]} entries but the representation has h={h}.")
    nrm = float(xp.linalg.norm(v))
    if not nrm > 0:
        raise ValueError("v is the zero vector; a concept activation vector must be non-zero.")
    return v / nrm


def _floyd(rng, b, m, K):
    """b independent uniform K-subsets of range(m) (Floyd's algorithm, vectorised over rows)."""
    out = np.empty((b, K), dtype=np.int64)
    for i, j in enumerate(range(m - K, m)):
        t = rng.integers(0, j + 1, size=b)
        if i:
            t = np.where((out[:, :i] == t[:, None]).any(axis=1), j, t)
        out[:, i] = t
    return out


class _RandomSubsets:
    """Random K-subsets of the m landmarks for test rows [start, stop), host-side and
    independent of how the rows are blocked (chunks of ``_RAND_CHUNK`` rows, each from
    ``default_rng([seed, stream, chunk])``)."""

    def __init__(self, seed, stream, m, K):
        if isinstance(seed, np.random.Generator) or int(seed) != seed or seed < 0:
            raise ValueError(f"seed={seed!r} must be a non-negative integer.")
        self.seed, self.stream, self.m, self.K = int(seed), int(stream), int(m), int(K)
        self._cache = {}

    def _chunk(self, c):
        if c not in self._cache:
            self._cache.clear()
            rng = np.random.default_rng([self.seed, self.stream, c])
            self._cache[c] = _floyd(rng, _RAND_CHUNK, self.m, self.K)
        return self._cache[c]

    def __call__(self, start, stop):
        out = np.empty((stop - start, self.K), dtype=np.int64)
        for c in range(start // _RAND_CHUNK, (stop - 1) // _RAND_CHUNK + 1):
            lo, hi = max(start, c * _RAND_CHUNK), min(stop, (c + 1) * _RAND_CHUNK)
            out[lo - start:hi - start] = self._chunk(c)[lo - c * _RAND_CHUNK:hi - c * _RAND_CHUNK]
        return out


def _encode_labels(*label_arrays):
    """Integer codes 0..C−1 for the union of the given label arrays (host)."""
    hosts = [np.asarray(to_host(y)).ravel() for y in label_arrays]
    classes = np.unique(np.concatenate(hosts))
    return classes, [np.searchsorted(classes, y).astype(np.int64) for y in hosts]


# ---------------------------------------------------------------------------------------
# (int-representer)
# ---------------------------------------------------------------------------------------
def contribution_blocks(kernel, landmarks, X_t, A, memory_budget: int = BLOCK_BYTES) -> Iterator:
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
    memory_budget : int
        Bytes for one block; a block of b rows holds the (b, m, h) contribution tensor and
        the (b, m) kernel block with its temporaries.

    Yields
    ------
    rows : slice
        The test rows of the block.
    C_block : array (b, m, h)
        ``C_block[t, l, :] = k(x̃_l, x_t) A[l, :]``.
    """
    kernel, xp, X_t, L, A = _setup(kernel, landmarks, X_t, A)
    m, h = A.shape
    b = _rows(X_t.shape[0], 3 * m + m * h + X_t.shape[1] + h, X_t.dtype.itemsize, memory_budget)
    for sl, K_bm in kernel.blocks(X_t, L, rows=b):
        yield sl, K_bm[:, :, None] * A[None, :, :]


def contributions(kernel, landmarks, X_t, A, memory_budget: int = BLOCK_BYTES,
                  max_bytes: int = DENSE_MAX_BYTES):
    """All contributions, shape (n_t, m, h), eq. (int-representer) — for small test sets only.

    Raises ValueError when the result exceeds ``max_bytes``; use :func:`contribution_blocks`.
    See :func:`contribution_blocks` for the parameters.
    """
    kernel, xp, X_t, L, A = _setup(kernel, landmarks, X_t, A)
    n, (m, h) = X_t.shape[0], A.shape
    _check_dense(n * m * h * X_t.dtype.itemsize, max_bytes, "contributions", "contribution_blocks")
    out = xp.empty((n, m, h), dtype=X_t.dtype)
    for sl, C in contribution_blocks(kernel, L, X_t, A, memory_budget):
        out[sl] = C
    return out


def representer_sum(kernel, landmarks, X_t, A, gamma=None, memory_budget: int = BLOCK_BYTES):
    """f(x_t) = Σ_l k(x̃_l, x_t) A_l,: + γ, the representer decomposition summed back, eq. (int-representer).

    Sums the contributions of :func:`contribution_blocks` over l, block by block; equals
    K_tm A + 1γᵀ (:meth:`Kernel.matmul`) to rounding.

    Parameters
    ----------
    kernel, landmarks, X_t, A, memory_budget
        As in :func:`contribution_blocks`.
    gamma : array (h,), optional
        The bias γ (omit for ΔÃ, whose model has no bias increment).

    Returns
    -------
    F_t : array (n_t, h)
    """
    kernel, xp, X_t, L, A = _setup(kernel, landmarks, X_t, A, extra=(gamma,))
    out = xp.empty((X_t.shape[0], A.shape[1]), dtype=X_t.dtype)
    for sl, C in contribution_blocks(kernel, L, X_t, A, memory_budget):
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


def _influence_weights(xp, A, v):
    """w_l with IS = |K| w (v None, eq. int-is) or IS(·; v) = K w (signed, eq. int-concept)."""
    if v is None:
        return xp.sqrt(xp.einsum("lj,lj->l", A, A))
    return A @ _unit_vector(xp, v, A.shape[1], A.dtype)


def influence_blocks(kernel, landmarks, X_t, A, v=None, memory_budget: int = BLOCK_BYTES) -> Iterator:
    """Influence scores over blocks of test rows, eqs. (int-is) and (int-concept).

    Without ``v``: IS(x̃_l, x_t) = ‖k(x̃_l, x_t) A_l,:‖₂ = |k(x̃_l, x_t)|·‖A_l,:‖₂ (≥ 0).
    With a concept vector ``v`` (normalised to unit length here):
    IS(x̃_l, x_t; v) = ⟨k(x̃_l, x_t) A_l,:, v⟩ = k(x̃_l, x_t)·(A v)_l, signed — negative
    values are repulsive landmarks. Neither forms the (b, m, h) contributions.

    Parameters
    ----------
    kernel, landmarks, X_t, A, memory_budget
        As in :func:`contribution_blocks`.
    v : array (h,), optional
        Concept activation vector (:func:`concept_activation_vector`).

    Yields
    ------
    rows : slice
    IS_block : array (b, m)
    """
    kernel, xp, X_t, L, A = _setup(kernel, landmarks, X_t, A, extra=(v,))
    w = _influence_weights(xp, A, v)
    m = A.shape[0]
    b = _rows(X_t.shape[0], 8 * m + X_t.shape[1], X_t.dtype.itemsize, memory_budget)
    for sl, K_bm in kernel.blocks(X_t, L, rows=b):
        if v is None:
            K_bm = xp.abs(K_bm, out=K_bm)
        K_bm *= w[None, :]
        yield sl, K_bm


def influence_scores(kernel, landmarks, X_t, A, v=None, memory_budget: int = BLOCK_BYTES,
                     max_bytes: int = DENSE_MAX_BYTES):
    """All influence scores, shape (n_t, m), eqs. (int-is) / (int-concept) — small test sets only.

    See :func:`influence_blocks`; raises ValueError beyond ``max_bytes``.
    """
    kernel, xp, X_t, L, A = _setup(kernel, landmarks, X_t, A, extra=(v,))
    n, m = X_t.shape[0], A.shape[0]
    _check_dense(n * m * X_t.dtype.itemsize, max_bytes, "influence_scores", "influence_blocks")
    out = xp.empty((n, m), dtype=X_t.dtype)
    for sl, S in influence_blocks(kernel, L, X_t, A, v, memory_budget):
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
                    memory_budget: int = BLOCK_BYTES) -> TopK:
    """The K most influential landmarks of every test point, eq. (int-is), streamed.

    Per block of test rows: IS = |K_bm|·‖A_l,:‖₂, then ``argpartition`` for the top K and a
    sort of those K. With a concept vector ``v`` the signed concept-conditioned scores
    ⟨k(x̃_l, x_t) A_l,:, v⟩ of the same landmarks are returned too, eq. (int-concept).

    Parameters
    ----------
    kernel, landmarks, X_t, A, memory_budget
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
    """
    kernel, xp, X_t, L, A = _setup(kernel, landmarks, X_t, A, extra=(v,))
    n, m = X_t.shape[0], A.shape[0]
    K = _check_K(K, m)
    w = _influence_weights(xp, A, None)
    wv = None if v is None else _influence_weights(xp, A, v)
    idx_out = xp.empty((n, K), dtype=xp.int64)
    sc_out = xp.empty((n, K), dtype=X_t.dtype)
    cs_out = None if v is None else xp.empty((n, K), dtype=X_t.dtype)
    b = _rows(n, 6 * m + X_t.shape[1], X_t.dtype.itemsize, memory_budget)
    for sl, K_bm in kernel.blocks(X_t, L, rows=b):
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


def concept_influence(kernel, landmarks, X_t, A, v, memory_budget: int = BLOCK_BYTES,
                      max_bytes: int = DENSE_MAX_BYTES):
    """IS(x̃_l, x_t; v) = ⟨k(x̃_l, x_t) A_l,:, v⟩ for all pairs, shape (n_t, m), eq. (int-concept).

    Signed; small test sets only (stream with ``influence_blocks(..., v=v)``).
    """
    return influence_scores(kernel, landmarks, X_t, A, v=v, memory_budget=memory_budget,
                            max_bytes=max_bytes)


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
                             memory_budget: int = BLOCK_BYTES) -> AttractRepel:
    """K most attracting and K most repelling landmarks along a concept, eq. (int-concept), streamed.

    Parameters
    ----------
    kernel, landmarks, X_t, A, memory_budget
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
    for sl, S in influence_blocks(kernel, L, X_t, A, v=v, memory_budget=memory_budget):
        ai[sl], as_[sl] = _topk(xp, S, K)
        idx, vals = _topk(xp, -S, K)
        ri[sl], rs[sl] = idx, -vals
    return AttractRepel(ai, as_, ri, rs)


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
                                  memory_budget: int = BLOCK_BYTES, max_bytes: int = DENSE_MAX_BYTES):
    """IS(x̃_l, x_t; v_ξ) = IS(x̃_l, x_t)·v_ξ(x_t, x̃_l), shape (n_t, m), eq. (int-feature).

    Small test sets only (raises ValueError beyond ``max_bytes``); :func:`alignment_gap`
    streams the same quantity.

    Parameters
    ----------
    kernel, landmarks, X_t, A, memory_budget
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
    for sl, S in influence_blocks(kernel, L, X_t, A, None, memory_budget):
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
                  memory_budget: int = BLOCK_BYTES) -> AlignmentGap:
    """Feature Alignment Gap AG_ξ with a bootstrap interval, eqs. (int-feature), (int-gap).

    For each test point x_t, with IS from eq. (int-is) and v_ξ from eq. (int-feature),

    Ψ(x_t; v_ξ) = Σ_{l ∈ top-K} IS_l v_ξ,l / Σ_{l ∈ top-K} IS_l  (top-K landmarks by IS),

    Ψ_rand is the same ratio over K landmarks drawn uniformly without replacement (host RNG,
    ``seed``; the random set may overlap the top-K), and AG_ξ = E_t[Ψ − Ψ_rand]. Points where
    either denominator is 0 are left out. The interval resamples the per-point differences
    with replacement ``n_boot`` times (percentile method). Streamed over test blocks.

    Parameters
    ----------
    kernel, landmarks, X_t, A, memory_budget
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
    for sl, K_bm in kernel.blocks(X_t, L, rows=b):
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


# ---------------------------------------------------------------------------------------
# (int-p1), (int-drop)
# ---------------------------------------------------------------------------------------
def _representation_setup(xp, kernel, L, A, A_repr, gamma, dtype):
    A_r = A if A_repr is None else asarray(A_repr, xp=xp, dtype=dtype, name="A_repr")
    if A_r.ndim == 1:
        A_r = A_r[:, None]
    if A_r.shape[0] != L.shape[0]:
        raise ValueError(f"A_repr must have m={L.shape[0]} rows; got {A_r.shape}.")
    g = None if gamma is None else asarray(gamma, xp=xp, dtype=dtype, name="gamma").reshape(1, -1)
    Z_L = kernel(L, L, dtype=dtype) @ A_r  # landmark representations f(x̃_l), (m, h)
    if g is not None:
        Z_L = Z_L + g
    return A_r, g, Z_L


def _unit_rows(xp, Z):
    nrm = xp.sqrt(xp.einsum("ij,ij->i", Z, Z))
    return Z / xp.where(nrm > 0, nrm, 1.0)[:, None]


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
                   memory_budget: int = BLOCK_BYTES) -> PrecisionAt1:
    """Precision@1 of KREPES' top-1 landmark and of the cosine baseline, eq. (int-p1), streamed.

    KREPES: l*(t) = argmax_l IS(x̃_l, x_t) with A. Baseline: l°(t) = argmax_l
    cos(f(x_t), f(x̃_l)) with f(x) = A_reprᵀk_x + γ, the representation of the (audited)
    model. Ties go to the lowest landmark index. Uses labels: evaluation only.

    Parameters
    ----------
    kernel, landmarks, X_t, A, memory_budget
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
    kernel, xp, X_t, L, A = _setup(kernel, landmarks, X_t, A, extra=(A_repr, gamma))
    n, m = X_t.shape[0], A.shape[0]
    _, (c_t, c_l) = _encode_labels(y_t, y_landmarks)
    if c_t.shape[0] != n or c_l.shape[0] != m:
        raise ValueError(f"y_t must have n_t={n} and y_landmarks m={m} entries; got "
                         f"{c_t.shape[0]} and {c_l.shape[0]}.")
    A_r, g, Z_L = _representation_setup(xp, kernel, L, A, A_repr, gamma, X_t.dtype)
    Z_Lu = _unit_rows(xp, Z_L)
    w = _influence_weights(xp, A, None)
    c_l = xp.asarray(c_l)
    hits_is = hits_cos = 0
    b = _rows(n, 6 * m + X_t.shape[1] + 2 * A_r.shape[1], X_t.dtype.itemsize, memory_budget)
    for sl, K_bm in kernel.blocks(X_t, L, rows=b):
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
        top / random (inf when random = 0 < top, NaN when both are 0).
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


def confidence_drop(kernel, landmarks, X_t, A, y_landmarks, y_t=None, target: str = "predicted",
                    n_remove: int = DROP_N_REMOVE, k: int = DROP_KNN_K, metric: str = "cosine",
                    A_repr=None, gamma=None, seed: int = 0,
                    memory_budget: int = BLOCK_BYTES) -> ConfidenceDrop:
    """k-NN confidence drop when a test point's most influential landmarks are removed, eq. (int-drop).

    Definition (spec §6; the choices marked *ours* are the project's):

    * The k-NN classifies a test point by its k nearest **landmarks** in representation
      space: z_t = f(x_t) and z_l = f(x̃_l) with f(x) = A_reprᵀk_x + γ (audit: Ã₀ + ΔÃ),
      labels y_l of the landmarks. Nearness is cosine similarity (*ours*; ``metric=
      "euclidean"`` is the alternative). Test points are assumed not to be landmarks
      themselves (no self-exclusion).
    * The target class c_t is, by default, the k-NN's **predicted** class before any
      removal (majority of the k neighbours, ties to the smallest label; *ours*: it needs
      no test label and measures how much support for the k-NN's own decision the removed
      landmarks carried); ``target="true"`` uses y_t instead.
    * Confidence conf(x_t; 𝓛) = share of the k nearest landmarks in the set 𝓛 whose label
      is c_t. Removing a set R means excluding it from the neighbour set: 𝓛 \\ R; c_t is
      kept fixed.
    * drop(x_t; R) = conf(x_t; 𝓛) − conf(x_t; 𝓛 \\ R), with R_top = the ``n_remove``
      landmarks of largest IS(x̃_l, x_t) (eq. int-is, with A) and R_rand = ``n_remove``
      landmarks drawn uniformly without replacement (host RNG, ``seed``).
    * Reported: the means over test points of both drops and their ratio.

    Parameters
    ----------
    kernel, landmarks, X_t, A, memory_budget
        As in :func:`contribution_blocks`.
    y_landmarks : array (m,)
        Landmark labels.
    y_t : array (n_t,), optional
        Test labels; required for ``target="true"``.
    target : {"predicted", "true"}
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
    """
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
    A_r, g, Z_L = _representation_setup(xp, kernel, L, A, A_repr, gamma, X_t.dtype)
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

    for sl, K_bm in kernel.blocks(X_t, L, rows=b):
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
                       (xp.asarray(draw(sl.start, sl.stop)), drop_rand)):
            S2 = S.copy()
            S2[ridx, R] = -xp.inf
            out[sl] = to_host(c0 - conf(S2, c))
    top, rnd = float(drop_top.mean()), float(drop_rand.mean())
    ratio = top / rnd if rnd != 0 else (math.inf if top > 0 else (math.nan if top == 0 else -math.inf))
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
