"""Landmark selection x̃_1..x̃_m and class coverage κ.

Book: *Theory* (``book/theory.md``), section "Landmark selection", equations
(lm-kmeanspp), (lm-rls), (lm-rls-nys) and (lm-kappa); spec §2.

Each strategy returns a :class:`Landmarks` record holding the points *and* their indices
into X (Falkon's ``center_selection`` habit). All random draws happen on the host with a
seeded :class:`numpy.random.Generator`, so the same seed selects the same landmarks on a
CPU and on a GPU; only the distance / kernel arithmetic runs in X's namespace.

``m`` is an integer or ``"sqrt"`` (m = ⌈√n⌉, the paper's m ≈ √n and the O(√n) of Rudi et
al. 2015 for kernel ridge regression with uniform Nyström sampling).

Scale (n = 10⁶, m = 1000, d = 100, float32): no strategy holds an n×m or n×n array.
k-means++ keeps the n running minima D_min (one float per row) and, per landmark, one
matrix-vector product X·c (or one n×1 kernel column, streamed), one cumulative sum over
D_min and one binary search — O(n d) work and O(n) memory per landmark, one scalar back to
the host. Leverage scores stream K_bS over row blocks (O(s² + b·s) memory for a sketch of s
rows). ``benchmarks/bench_scale.py`` measures both.
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np

from .backend import asarray, dask_pass, get_xp, host_rng, is_dask_array, scipy_linalg, to_host
from .kernels import RBF, Kernel, Laplacian, block_rows, make_kernel
from .options import resolve_options

__all__ = ["Landmarks", "select_landmarks", "uniform", "kmeans_pp", "ridge_leverage", "given",
           "approximate_leverage_scores", "class_coverage", "METHODS"]


@dataclass(frozen=True)
class Landmarks:
    """Selected landmarks.

    Attributes
    ----------
    points : array, shape (m, d)
        x̃_1..x̃_m, in X's namespace and dtype.
    indices : numpy.ndarray of int64, shape (m,)
        Rows of X they were taken from.
    method : str
        The strategy that chose them.
    """

    points: object
    indices: np.ndarray
    method: str

    @property
    def m(self) -> int:
        return int(self.indices.shape[0])


def _check_m(m, n) -> int:
    """m as an int: an integer, or ``"sqrt"`` → ⌈√n⌉ (at most n); clear errors otherwise."""
    if isinstance(m, str):
        if m != "sqrt":
            raise ValueError(f"m={m!r}: pass a positive integer or 'sqrt' (m = ceil(sqrt(n))).")
        return min(int(n), int(math.ceil(math.sqrt(n))))
    if isinstance(m, bool) or not isinstance(m, (int, np.integer, float, np.floating)):
        raise ValueError(f"m={m!r} must be a positive integer number of landmarks or 'sqrt'.")
    if int(m) != m or m < 1:
        raise ValueError(f"m={m} must be a positive integer number of landmarks.")
    if m > n:
        raise ValueError(
            f"m={m} landmarks requested but X has only n={n} rows; choose m <= n "
            "(the paper uses m ≈ √n; m='sqrt' gives ceil(sqrt(n)))."
        )
    return int(m)


def _take(X, idx, method):
    xp = get_xp(X)
    idx = np.asarray(idx, dtype=np.int64)
    return Landmarks(points=X[xp.asarray(idx)], indices=idx, method=method)


def uniform(X, m: int | str, seed=0) -> Landmarks:
    """m rows of X uniformly without replacement (spec §2)."""
    m = _check_m(m, X.shape[0])
    idx = host_rng(seed).choice(X.shape[0], size=int(m), replace=False)
    return _take(X, np.sort(idx), "uniform")


def kmeans_pp(X, m: int | str, seed=0, kernel: Kernel | None = None, options=None) -> Landmarks:
    """k-means++ seeding, eq. (lm-kmeanspp): the next landmark is drawn with P(x_j) ∝ min_c D(x_j, c).

    D is the squared Euclidean distance in input space by default, or the kernel-space
    distance k(x,x) − 2k(x,c) + k(c,c) when ``kernel`` is given (for the RBF and Laplacian
    kernels computed from cached squared norms, one matrix-vector product per landmark; any
    other kernel through one streamed n×1 kernel column). The running minimum D_min
    is updated with one new centre at a time (O(n d) per landmark, nothing of size n×m kept).

    Sampling (inverse CDF, in X's namespace): with C = cumsum(D_min) in float64 and one
    uniform u drawn on the host, the next landmark is the first j with C_j > u·C_n (a binary
    search). Chosen rows have D_min = 0 and are never drawn again. Only u (host → device)
    and j (device → host) cross between host and device, so the seed decides the landmarks
    on a CPU and a GPU alike (up to float rounding of the cumulative sum at a boundary).
    When fewer than m distinct points remain (all D_min zero), the rest is drawn uniformly
    among the unchosen rows. ``options``: its ``memory_budget`` bounds the streamed kernel column.
    """
    n = X.shape[0]
    m = _check_m(m, n)
    memory_budget = resolve_options(options).memory_budget
    if kernel is not None and getattr(kernel, "features_fit", None) is not None \
            and kernel.features_fit(X, memory_budget):
        # a feature-map kernel k(x, y) = φ(x)·φ(y) (the eNTK): the kernel distance is
        # ‖φ(x) − φ(y)‖², so k-means++ runs on φ(X), each row's features computed once
        # (and kept for the Nyström basis, the audit and influence) instead of one kernel
        # column over all rows per landmark.
        return _take(X, kmeans_pp(kernel.features(X), m, seed).indices, "kmeans++")
    xp = get_xp(X)
    rng = host_rng(seed)
    if kernel is None or isinstance(kernel, (RBF, Laplacian)):
        # Squared distances by ‖x‖² + ‖c‖² − 2x·c are translation-sensitive in float32 (data far
        # from the origin cancel catastrophically): compute them on X centred once on its mean,
        # eq. (k-sqdist-centred). One copy of X; the distances themselves are unchanged.
        Xc = X - X.mean(axis=0, keepdims=True)
    else:
        Xc = X
    if kernel is None:
        sq = xp.einsum("ij,ij->i", Xc, Xc)

        def dist_to(j):
            c = Xc[j]
            return xp.maximum(sq - 2.0 * (Xc @ c) + sq[j], 0.0)
    elif isinstance(kernel, (RBF, Laplacian)):
        # Stationary kernels of ‖x − c‖: the kernel column from cached squared norms, one
        # matrix-vector product per landmark (the generic path below recomputes ‖x‖² per block).
        sq = xp.einsum("ij,ij->i", Xc, Xc)

        def dist_to(j):
            D2 = xp.maximum(sq - 2.0 * (Xc @ Xc[j]) + sq[j], 0.0)
            if isinstance(kernel, RBF):   # eq. (k-rbf)
                kc = xp.exp(D2 * (-1.0 / (2.0 * kernel.sigma ** 2)))
            else:                         # eq. (k-laplace)
                kc = xp.exp(xp.sqrt(D2) * (-1.0 / kernel.sigma))
            return xp.maximum(2.0 - 2.0 * kc, 0.0)   # k(x,x) = k(c,c) = 1
    else:
        kdiag = kernel.diag(X)

        def dist_to(j):
            kc = kernel.matmul(X, X[j:j + 1], xp.ones((1, 1), dtype=X.dtype),
                               memory_budget=memory_budget)[:, 0]
            return xp.maximum(kdiag - 2.0 * kc + kdiag[j], 0.0)

    chosen = [int(rng.integers(n))]
    d_min = dist_to(chosen[0])
    d_min[chosen[0]] = 0.0
    for _ in range(1, m):
        cum = xp.cumsum(d_min, dtype=xp.float64)
        total = float(cum[-1])
        if not total > 0:
            rest = np.setdiff1d(np.arange(n), chosen)
            chosen.extend(rng.choice(rest, size=m - len(chosen), replace=False).tolist())
            break
        u = rng.random() * total
        j = min(int(xp.searchsorted(cum, u, side="right")), n - 1)
        del cum
        chosen.append(j)
        d_min = xp.minimum(d_min, dist_to(j), out=d_min)
        d_min[j] = 0.0
    return _take(X, np.asarray(chosen), "kmeans++")


def approximate_leverage_scores(X, kernel: Kernel, lam: float = 1e-3, sketch_size: int | None = None,
                                seed=0, options=None):
    """Ridge leverage scores ℓ_j(λ) = [K(K + nλI)⁻¹]_jj from a Nyström pre-sketch, eq. (lm-rls-nys).

    With a uniform sketch S of s rows:
    ℓ̃_j = (k(x_j, x_j) − k_jSᵀ (K_SS + nλ I)⁻¹ k_jS) / (nλ).
    With S = all rows this equals eq. (lm-rls) exactly (tested). Streamed over row blocks;
    memory O(s² + block·s) (X is cast to float64 one block at a time). Returns a host
    float64 array of shape (n,). Cost O(n s (s + d)): the triangular solve dominates.
    Blocks fit ``options.memory_budget``.
    """
    n = X.shape[0]
    if not lam > 0:
        raise ValueError(f"lam={lam} must be > 0 (the ridge λ of the leverage scores).")
    xp = get_xp(X)
    s = n if sketch_size is None else min(int(sketch_size), n)
    S_idx = np.sort(host_rng(seed).choice(n, size=s, replace=False))
    XS = X[xp.asarray(S_idx)].astype(xp.float64)
    c = n * lam
    K_SS = kernel(XS, XS, dtype="float64")
    L = xp.linalg.cholesky(K_SS + c * xp.eye(s, dtype=xp.float64))
    scores = xp.empty(n, dtype=xp.float64)
    b = block_rows(n, s, X.shape[1], 8, resolve_options(options).memory_budget)
    sla = scipy_linalg(xp)
    for start in range(0, n, b):
        sl = slice(start, min(n, start + b))
        Xb = X[sl].astype(xp.float64)
        K_bS = kernel(Xb, XS, dtype="float64")
        V = sla.solve_triangular(L, K_bS.T, lower=True)  # L⁻¹ k_jS
        scores[sl] = (kernel.diag(Xb, dtype="float64") - xp.einsum("ij,ij->j", V, V)) / c
    return np.clip(to_host(scores), 0.0, None)


def ridge_leverage(X, m: int | str, kernel: Kernel, seed=0, lam: float = 1e-3,
                   sketch_size: int | None = None, options=None) -> Landmarks:
    """m rows sampled without replacement with P(x_j) ∝ ℓ̃_j(λ) (spec §2).

    ``sketch_size`` defaults to min(n, max(4m, 500)); no n×n matrix is ever formed.
    """
    n = X.shape[0]
    m = _check_m(m, n)
    rng = host_rng(seed)
    s = min(n, max(4 * int(m), 500)) if sketch_size is None else sketch_size
    ell = approximate_leverage_scores(X, kernel, lam=lam, sketch_size=s, seed=rng, options=options)
    p = ell + 1e-12 * ell.max() if ell.max() > 0 else np.ones(n)
    idx = rng.choice(n, size=int(m), replace=False, p=p / p.sum())
    return _take(X, np.sort(idx), "leverage")


def given(X, indices) -> Landmarks:
    """User-given landmarks: rows ``indices`` of X."""
    idx = np.asarray(to_host(indices), dtype=np.int64).ravel()
    n = X.shape[0]
    if idx.size == 0 or idx.min() < 0 or idx.max() >= n:
        raise ValueError(f"indices must be non-empty row numbers in [0, {n}); got {idx.min() if idx.size else 'none'}..")
    if np.unique(idx).size != idx.size:
        raise ValueError("indices contains duplicates; each landmark must be a distinct row of X.")
    return _take(X, idx, "given")


METHODS = ("uniform", "kmeans++", "leverage", "given")


def select_landmarks(X, m: int | str | None = None, method: str = "uniform", kernel=None, seed=0,
                     indices=None, **options) -> Landmarks:
    """Dispatch to a strategy by name (``uniform``, ``kmeans++``, ``leverage``, ``given``).

    ``m`` is a positive integer or ``"sqrt"`` (⌈√n⌉).

    X is validated (2-D, finite). ``kernel`` is required for ``leverage`` and optional for
    ``kmeans++`` (kernel-space distances; pass ``kernel_space=True``).
    """
    if is_dask_array(X):  # rows on a cluster: the passes run there (krepes_lib.distributed)
        return dask_pass("select_landmarks")(X, m, method=method, kernel=kernel, seed=seed,
                                             indices=indices, **options)
    dt = getattr(X, "dtype", None)
    X = asarray(X, dtype=dt if dt in (np.float32, np.float64) else None, name="X")
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D (n, d) array; got shape {X.shape}.")
    if method == "given":
        if indices is None:
            raise ValueError("method='given' needs indices=[...] (rows of X to use as landmarks).")
        return given(X, indices)
    if m is None:
        raise ValueError(f"method={method!r} needs m (the number of landmarks).")
    if kernel is not None and not isinstance(kernel, Kernel):
        kernel = make_kernel(kernel)
    if method == "uniform":
        return uniform(X, m, seed)
    if method in ("kmeans++", "kmeanspp"):
        kspace = options.pop("kernel_space", False)
        return kmeans_pp(X, m, seed, kernel=kernel if kspace else None, **options)
    if method == "leverage":
        if kernel is None:
            raise ValueError("method='leverage' needs kernel=... (ridge leverage scores depend on it).")
        return ridge_leverage(X, m, kernel, seed=seed, **options)
    raise ValueError(f"method={method!r} is unknown; choose one of {METHODS}.")


def class_coverage(scores, landmark_labels, n_classes: int | None = None) -> int:
    """Class coverage κ, eq. (lm-kappa): the smallest k such that the k landmarks with the
    largest ``scores`` (e.g. ‖Ã_l,:‖₂ or ‖ΔÃ_l,:‖₂) include every one of the C classes.

    Returns ``m + 1`` (an impossible value, documented) if the landmarks do not cover all
    ``n_classes`` classes at all. Uses labels: evaluation only.
    """
    s = np.asarray(to_host(scores), dtype=np.float64).ravel()
    lab = np.asarray(to_host(landmark_labels)).ravel()
    if s.shape != lab.shape:
        raise ValueError(f"scores has {s.size} entries but landmark_labels has {lab.size}; one per landmark.")
    C = int(np.unique(lab).size if n_classes is None else n_classes)
    order = np.argsort(-s, kind="stable")
    seen = set()
    for k, l in enumerate(order, start=1):
        seen.add(lab[l].item())
        if len(seen) >= C:
            return k
    return s.size + 1
