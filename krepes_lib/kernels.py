"""Kernels k(X, Y), evaluated block by block under a memory budget.

Book: *Theory* (``book/theory.md``), section "Kernels", equations (k-linear) ... (k-ntk).

Every kernel is a small object with

* ``kernel(X, Y)`` — the dense block K = [k(x_i, y_j)] (use it for blocks that fit);
* ``kernel.diag(X)`` — [k(x_i, x_i)] without forming K;
* ``kernel.blocks(X, Y, memory_budget=...)`` — yields ``(rows, K_block)`` over row blocks
  of X so that no block exceeds the budget;
* ``kernel.matmul(X, Y, A)`` — K(X, Y) @ A streamed over row blocks of X (this is how
  F = K_nm Ã is formed for n = 10⁶ without an n×m matrix);
* ``kernel.rmatmul(X, Y, G)`` — K(X, Y)ᵀ @ G streamed the same way (K_mn G).

The hot path is one GEMM per block. The distance kernels (RBF, Laplacian) use
‖x − y‖² = ‖x‖² + ‖y‖² − 2 x·y (clipped at 0), as in Falkon and scikit-learn, but on
inputs **centred on the mean μ of Y**, eq. (k-sqdist-centred):

    ‖x − y‖² = ‖x̄‖² + ‖ȳ‖² − 2 x̄·ȳ,   x̄ = x − μ, ȳ = y − μ,

which is the same number in exact arithmetic (the distance is translation invariant) but
does not cancel catastrophically in float32 for data far from the origin: without the
shift, data 1e4 from the origin loses every digit of ‖x − y‖² to the ‖x‖² ≈ 1e8·d terms.
The norm terms travel inside the GEMM as two extra columns,

    −c ‖x − y‖² = [x̄, ‖x̄‖², 1] · [2c ȳ, −c, −c ‖ȳ‖²]ᵀ,

so a block is one GEMM into the output buffer, then an in-place clip and an in-place exp
(RBF: c = 1/(2σ²); Laplacian: the same with c = 1/σ², then an in-place sqrt). The landmark
side (μ, [2c ȳ, −c, −c‖ȳ‖²]) is prepared once per ``blocks``/``matmul``/``rmatmul`` call,
and reused across calls for the same NumPy Y, keyed by its identity: the training loop calls
``kernel(X_batch, landmarks)`` every batch with the same landmarks. A read-only Y
(``Y.flags.writeable = False``) is reused as is; a writeable one only after an exact
comparison with the copy kept when it was prepared (one pass instead of four). All computations follow the namespace of X ("everything follows X",
:func:`krepes_lib.backend.get_xp`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .backend import asarray, dask_pass, get_xp, is_dask_array

__all__ = [
    "Kernel",
    "Linear",
    "RBF",
    "Laplacian",
    "Polynomial",
    "Cosine",
    "ArcCosineNNGP",
    "ReluNTK",
    "make_kernel",
    "KERNELS",
    "block_rows",
]

# How many (rows x cols) temporaries of the block's dtype a kernel evaluation holds at once.
_TEMPORARIES = 3
# matmul/rmatmul consume each block at once with a second GEMM: blocks of a few MiB stay in
# the cache between the two products (and the one reused buffer is small).
_STREAM_BLOCK_BYTES = 16 * 2**20


def _budget(memory_budget: int | None) -> int:
    """``memory_budget`` as given by a caller that read it from its Options, or — when None —
    ``Options().memory_budget``, the one default (:class:`krepes_lib.Options`)."""
    if memory_budget is None:
        from .options import DEFAULT_OPTIONS

        return DEFAULT_OPTIONS.memory_budget
    return memory_budget


def block_rows(n_rows: int, n_cols: int, d: int, itemsize: int, memory_budget: int | None = None) -> int:
    """Rows per block so that one kernel block and its temporaries fit ``memory_budget`` bytes
    (None: ``Options().memory_budget``).

    A block of b rows holds about ``_TEMPORARIES * b * n_cols`` numbers plus the ``b * d``
    input rows.
    """
    memory_budget = _budget(memory_budget)
    if memory_budget <= 0:
        raise ValueError(f"memory_budget={memory_budget} must be a positive number of bytes.")
    per_row = itemsize * (_TEMPORARIES * n_cols + d)
    return int(max(1, min(n_rows, memory_budget // max(per_row, 1))))


def _check_pair(X, Y):
    if X.ndim != 2 or Y.ndim != 2:
        raise ValueError(f"X and Y must be 2-D (n, d) arrays; got shapes {X.shape} and {Y.shape}.")
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"X has {X.shape[1]} features but Y has {Y.shape[1]}; both must have the same d."
        )


def _sqnorms(xp, X):
    return xp.einsum("ij,ij->i", X, X)


def _work_dtype(xp, X, Y):
    dt = np.result_type(X.dtype, Y.dtype)
    return dt if np.issubdtype(dt, np.floating) else np.dtype(np.float64)


class _YSide:
    """The landmark side of a distance kernel, eq. (k-sqdist-centred): μ and [2c ȳ, −c, −c‖ȳ‖²]."""

    __slots__ = ("Y", "mu", "Ya", "dtype", "copy")

    def __init__(self, xp, Y, c, dtype):
        self.Y = Y                                   # strong reference: id(Y) cannot be recycled
        self.copy = None                             # Y's values when cached writeable (see _prepare)
        self.dtype = dtype
        d = Y.shape[1]
        self.mu = Y.mean(axis=0, dtype=xp.float64).astype(dtype)   # the shift, once per call
        Ya = xp.empty((Y.shape[0], d + 2), dtype=dtype)
        Yc = Ya[:, :d]
        xp.subtract(Y, self.mu, out=Yc)                             # ȳ = y − μ
        Ya[:, d + 1] = _sqnorms(xp, Yc)
        Ya[:, d + 1] *= -c                                          # −c ‖ȳ‖²
        Ya[:, d] = -c
        Yc *= 2.0 * c                                               # 2c ȳ
        self.Ya = Ya


# identity-keyed cache of prepared landmark sides (read-only NumPy Y only; a few entries)
_YSIDE_CACHE: dict = {}
_YSIDE_CACHE_SIZE = 4
_YSIDE_CACHE_BYTES = 16 * 2**20  # a larger Y (not a landmark set) is prepared afresh at every call


def _sqdist_scaled(xp, X, ys, out=None):
    """−c ‖x − y‖² for a block of rows X against a prepared Y side, eq. (k-sqdist-centred).

    One (b, d + 2) temporary [x̄, ‖x̄‖², 1] and one GEMM into ``out`` (b, m); clipped at 0
    in place (−c D ≤ 0).
    """
    b, d = X.shape
    Xa = xp.empty((b, d + 2), dtype=ys.dtype)
    Xc = Xa[:, :d]
    xp.subtract(X, ys.mu, out=Xc)                                   # x̄ = x − μ
    Xa[:, d] = _sqnorms(xp, Xc)
    Xa[:, d + 1] = 1.0
    if out is None:
        out = xp.empty((b, ys.Ya.shape[0]), dtype=ys.dtype)
    xp.matmul(Xa, ys.Ya.T, out=out)
    return xp.minimum(out, 0.0, out=out)


def _sqdist(xp, X, Y):
    """‖x − y‖², eq. (k-sqdist-centred) (centred on Y's mean; no cancellation far from 0)."""
    D = _sqdist_scaled(xp, X, _YSide(xp, Y, 1.0, _work_dtype(xp, X, Y)))
    return xp.negative(D, out=D)


def _check_bandwidth(sigma, what):
    try:
        ok = isinstance(sigma, (int, float, np.floating, np.integer)) and not isinstance(sigma, bool) \
            and math.isfinite(float(sigma)) and float(sigma) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"sigma={sigma!r} must be a finite number > 0 (the {what}); "
                         "use krepes_lib.median_sigma(X) for a data-driven value.")


@dataclass(frozen=True)
class Kernel:
    """Base class: subclasses implement ``_block(xp, X, Y)`` and ``_diag(xp, X)``."""

    name = "kernel"

    # -- to implement -------------------------------------------------------------
    def _block(self, xp, X, Y):  # pragma: no cover - abstract
        raise NotImplementedError

    def _diag(self, xp, X):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- optional: work on Y done once per call (distance kernels) --------------------
    def _prepare(self, xp, X, Y):
        """Per-call preparation of the Y side (default: none, Y itself)."""
        return Y

    def _block_prepared(self, xp, X, prep, out=None):
        """A block from prepared Y (default: ``_block``; ``out`` is a hint, may be ignored)."""
        return self._block(xp, X, prep)

    # -- public -------------------------------------------------------------------
    def __call__(self, X, Y=None, dtype=None):
        """The dense kernel block K(X, Y) (K(X, X) when Y is None)."""
        get_xp(X, Y)  # refuses a host/device mix before any conversion
        X = asarray(X, dtype=dtype, name="X")
        Y = X if Y is None else asarray(Y, xp=get_xp(X), dtype=X.dtype, name="Y")
        _check_pair(X, Y)
        return self._block(get_xp(X, Y), X, Y)

    def diag(self, X, dtype=None):
        """[k(x_i, x_i)]_i, shape (n,), without forming K."""
        X = asarray(X, dtype=dtype, name="X")
        return self._diag(get_xp(X), X)

    def blocks(self, X, Y, memory_budget: int | None = None, rows: int | None = None) -> Iterator:
        """Yield ``(slice, K_block)`` over row blocks of X, each within ``memory_budget`` bytes
        (the caller's ``Options.memory_budget``; None: the default Options)."""
        xp = get_xp(X, Y)
        _check_pair(X, Y)
        n = X.shape[0]
        b = rows or block_rows(n, Y.shape[0], X.shape[1], X.dtype.itemsize, memory_budget)
        prep = self._prepare(xp, X, Y)              # the Y side once per call
        for start in range(0, n, b):
            sl = slice(start, min(n, start + b))
            yield sl, self._block_prepared(xp, X[sl], prep)

    def _stream(self, xp, X, Y, memory_budget, rows):
        """(slice, K_block) over row blocks of X, reusing one block buffer (consumer must not keep K)."""
        if type(self).blocks is not Kernel.blocks:    # a subclass that customises blocks()
            yield from self.blocks(X, Y, memory_budget, rows)
            return
        _check_pair(X, Y)
        n = X.shape[0]
        b = rows or block_rows(n, Y.shape[0], X.shape[1], X.dtype.itemsize,
                               min(_budget(memory_budget), _STREAM_BLOCK_BYTES))
        prep = self._prepare(xp, X, Y)
        buf = None
        for start in range(0, n, b):
            sl = slice(start, min(n, start + b))
            if buf is None:
                buf = xp.empty((sl.stop - sl.start, Y.shape[0]), dtype=_work_dtype(xp, X, Y))
            K = self._block_prepared(xp, X[sl], prep, out=buf[: sl.stop - sl.start])
            yield sl, K

    def matmul(self, X, Y, A, memory_budget: int | None = None, rows: int | None = None):
        """K(X, Y) @ A, shape (n, k), streamed over row blocks of X (no n×m matrix).

        A Dask X gives a Dask array computed chunk by chunk on the workers
        (:mod:`krepes_lib.distributed`; Y and A are sent once)."""
        if is_dask_array(X):
            return dask_pass("kernel_matmul")(self, X, Y, A, memory_budget, rows)
        xp = get_xp(X, Y, A)
        A2 = A[:, None] if A.ndim == 1 else A
        if A2.shape[0] != Y.shape[0]:
            raise ValueError(f"A has {A2.shape[0]} rows but Y has {Y.shape[0]}; they must match.")
        out = xp.empty((X.shape[0], A2.shape[1]), dtype=xp.result_type(X.dtype, A2.dtype))
        for sl, K in self._stream(xp, X, Y, memory_budget, rows):
            if K.dtype == out.dtype and A2.dtype == out.dtype:
                xp.matmul(K, A2, out=out[sl])
            else:
                out[sl] = K @ A2
        return out[:, 0] if A.ndim == 1 else out

    def rmatmul(self, X, Y, G, memory_budget: int | None = None, rows: int | None = None):
        """K(X, Y)ᵀ @ G, shape (m, k), accumulated over row blocks of X (no n×m matrix).

        With a Dask X (and G as Dask or in-memory rows) each chunk's Kᵀ G is computed on the
        workers and the (m, k) partial sums are added here (:mod:`krepes_lib.distributed`)."""
        if is_dask_array(X):
            return dask_pass("kernel_rmatmul")(self, X, Y, G, memory_budget, rows)
        xp = get_xp(X, Y, G)
        G2 = G[:, None] if G.ndim == 1 else G
        if G2.shape[0] != X.shape[0]:
            raise ValueError(f"G has {G2.shape[0]} rows but X has {X.shape[0]}; they must match.")
        out = xp.zeros((Y.shape[0], G2.shape[1]), dtype=xp.result_type(X.dtype, G2.dtype))
        for sl, K in self._stream(xp, X, Y, memory_budget, rows):
            out += K.T @ G2[sl]
        return out[:, 0] if G.ndim == 1 else out


@dataclass(frozen=True)
class Linear(Kernel):
    """k(x, y) = x·y — eq. (k-linear)."""

    name = "linear"

    def _block(self, xp, X, Y):
        return X @ Y.T

    def _diag(self, xp, X):
        return _sqnorms(xp, X)


@dataclass(frozen=True)
class _Distance(Kernel):
    """A kernel of ‖x − y‖ evaluated through eq. (k-sqdist-centred); ``sigma`` is its scale."""

    sigma: float = 1.0
    _what = "bandwidth"

    def __post_init__(self):
        _check_bandwidth(self.sigma, self._what)

    def _c(self) -> float:  # the factor c of −c‖x − y‖²
        raise NotImplementedError  # pragma: no cover

    def _prepare(self, xp, X, Y):
        """The landmark side, reused across calls for the same NumPy Y when provably unchanged.

        Key: (kernel, id(Y), dtype); the entry holds Y itself, so the id cannot be recycled.
        Only Y up to ``_YSIDE_CACHE_BYTES`` is cached. A read-only Y is reused by identity; a
        writeable Y only when it equals the copy kept at preparation (one comparison pass instead of the
        preparation's mean, centring, norms and scaling), so an in-place change is never missed.
        """
        dt = _work_dtype(xp, X, Y)
        readonly = xp is np and not Y.flags.writeable
        cacheable = xp is np and Y.nbytes <= _YSIDE_CACHE_BYTES
        key = (self, id(Y), np.dtype(dt).str)
        if cacheable:
            hit = _YSIDE_CACHE.get(key)
            if hit is not None and hit.Y is Y and (readonly or np.array_equal(hit.copy, Y)):
                return hit
        ys = _YSide(xp, Y, self._c(), dt)
        if cacheable:
            ys.copy = None if readonly else Y.copy()
            _YSIDE_CACHE.pop(key, None)
            while len(_YSIDE_CACHE) >= _YSIDE_CACHE_SIZE:
                _YSIDE_CACHE.pop(next(iter(_YSIDE_CACHE)))
            _YSIDE_CACHE[key] = ys
        return ys

    def _block(self, xp, X, Y):
        return self._block_prepared(xp, X, self._prepare(xp, X, Y))

    def _diag(self, xp, X):
        return xp.ones(X.shape[0], dtype=X.dtype)


@dataclass(frozen=True)
class RBF(_Distance):
    """k(x, y) = exp(−‖x − y‖² / (2σ²)) — eq. (k-rbf). ``sigma`` is the bandwidth σ.

    Distances by eq. (k-sqdist-centred): one GEMM giving −‖x − y‖²/(2σ²) in the output
    buffer, then an in-place clip and an in-place exp.
    """

    sigma: float = 1.0
    name = "rbf"
    _what = "RBF bandwidth"

    def _c(self):
        return 1.0 / (2.0 * float(self.sigma) ** 2)

    def _block_prepared(self, xp, X, prep, out=None):
        E = _sqdist_scaled(xp, X, prep, out)         # −‖x − y‖²/(2σ²) ≤ 0
        return xp.exp(E, out=E)


@dataclass(frozen=True)
class Laplacian(_Distance):
    """k(x, y) = exp(−‖x − y‖₂ / σ) — eq. (k-laplace); Euclidean (not ℓ1) distance, as in Falkon.

    Distances by eq. (k-sqdist-centred): one GEMM giving −‖x − y‖²/σ², then in place:
    negate-and-clip, sqrt, negate, exp.
    """

    sigma: float = 1.0
    name = "laplacian"
    _what = "Laplacian length-scale"

    def _c(self):
        return 1.0 / float(self.sigma) ** 2

    def _block_prepared(self, xp, X, prep, out=None):
        E = _sqdist_scaled(xp, X, prep, out)         # −‖x − y‖²/σ² ≤ 0
        xp.negative(E, out=E)
        xp.sqrt(E, out=E)                            # ‖x − y‖/σ
        xp.negative(E, out=E)
        return xp.exp(E, out=E)


@dataclass(frozen=True)
class Polynomial(Kernel):
    """k(x, y) = (a x·y + c)^q — eq. (k-poly); a = ``scale`` (default 1/d), c = ``coef0``, q = ``degree``."""

    degree: int = 2
    scale: float | None = None
    coef0: float = 1.0
    name = "polynomial"

    def __post_init__(self):
        if int(self.degree) != self.degree or self.degree < 1:
            raise ValueError(f"degree={self.degree} must be a positive integer.")

    def _a(self, d):
        return 1.0 / d if self.scale is None else self.scale

    def _block(self, xp, X, Y):
        return (self._a(X.shape[1]) * (X @ Y.T) + self.coef0) ** int(self.degree)

    def _diag(self, xp, X):
        return (self._a(X.shape[1]) * _sqnorms(xp, X) + self.coef0) ** int(self.degree)


@dataclass(frozen=True)
class Cosine(Kernel):
    """k(x, y) = x·y / (‖x‖ ‖y‖) — eq. (k-cos). A zero row has k = 0 with everything but itself (k(0,0) = 1)."""

    name = "cosine"

    @staticmethod
    def _unit(xp, X):
        nrm = xp.sqrt(_sqnorms(xp, X))
        return X / xp.where(nrm > 0, nrm, 1.0)[:, None], nrm > 0

    def _block(self, xp, X, Y):
        Xu, _ = self._unit(xp, X)
        Yu, _ = self._unit(xp, Y)
        return Xu @ Yu.T

    def _diag(self, xp, X):
        return xp.ones(X.shape[0], dtype=X.dtype)


def _arccos_terms(xp, S_xy, s_x, s_y):
    """J1 and J0 of Cho & Saul: E[relu(u)relu(v)] and E[relu'(u)relu'(v)] for (u, v) ~ N(0, Σ).

    Returns (E_phi, E_dphi) with Σ = [[s_x, S_xy], [S_xy, s_y]] broadcast over the block.
    """
    norm = xp.sqrt(s_x[:, None] * s_y[None, :])
    safe = xp.where(norm > 0, norm, 1.0)
    cos = xp.clip(S_xy / safe, -1.0, 1.0)
    theta = xp.arccos(cos)
    sin = xp.sqrt(xp.maximum(1.0 - cos * cos, 0.0))
    E_phi = norm * (sin + (math.pi - theta) * cos) / (2.0 * math.pi)
    E_dphi = (math.pi - theta) / (2.0 * math.pi)
    return E_phi, E_dphi


@dataclass(frozen=True)
class _ReluNetwork(Kernel):
    """Infinite-width ReLU MLP with ``depth`` hidden layers (NTK parametrisation).

    Pre-activation covariances, eq. (k-nngp):
    Σ¹(x, y) = σ_w² x·y / d + σ_b²,
    Σˡ⁺¹(x, y) = σ_w² E[φ(u)φ(v)] + σ_b²,  Σ̇ˡ⁺¹ = σ_w² E[φ'(u)φ'(v)],  (u, v) ~ N(0, Σˡ),
    NTK, eq. (k-ntk): Θ¹ = Σ¹, Θˡ⁺¹ = Θˡ Σ̇ˡ⁺¹ + Σˡ⁺¹. The scalar output is layer depth + 1.
    """

    depth: int = 1
    sigma_w2: float = 2.0
    sigma_b2: float = 0.0

    def __post_init__(self):
        if int(self.depth) != self.depth or self.depth < 1:
            raise ValueError(f"depth={self.depth} must be a positive integer (hidden layers).")
        if not self.sigma_w2 > 0 or self.sigma_b2 < 0:
            raise ValueError("sigma_w2 must be > 0 and sigma_b2 >= 0.")

    def _recursion(self, xp, X, Y, want_ntk):
        d = X.shape[1]
        S = self.sigma_w2 * (X @ Y.T) / d + self.sigma_b2
        s_x = self.sigma_w2 * _sqnorms(xp, X) / d + self.sigma_b2
        s_y = self.sigma_w2 * _sqnorms(xp, Y) / d + self.sigma_b2
        T = S
        for _ in range(int(self.depth)):
            E_phi, E_dphi = _arccos_terms(xp, S, s_x, s_y)
            S_new = self.sigma_w2 * E_phi + self.sigma_b2
            if want_ntk:
                T = T * (self.sigma_w2 * E_dphi) + S_new
            S = S_new
            # diagonal: E[φ(u)²] = s/2 for ReLU
            s_x = self.sigma_w2 * s_x / 2.0 + self.sigma_b2
            s_y = self.sigma_w2 * s_y / 2.0 + self.sigma_b2
        return T if want_ntk else S

    def _diag_recursion(self, xp, X, want_ntk):
        d = X.shape[1]
        s = self.sigma_w2 * _sqnorms(xp, X) / d + self.sigma_b2
        t = s
        for _ in range(int(self.depth)):
            s_new = self.sigma_w2 * s / 2.0 + self.sigma_b2
            t = t * (self.sigma_w2 / 2.0) + s_new  # θ = 0: E[φ'φ'] = 1/2
            s = s_new
        return t if want_ntk else s


@dataclass(frozen=True)
class ArcCosineNNGP(_ReluNetwork):
    """NNGP (arc-cosine, order 1) kernel of an infinite-width ReLU MLP — eq. (k-nngp)."""

    name = "nngp"

    def _block(self, xp, X, Y):
        return self._recursion(xp, X, Y, want_ntk=False)

    def _diag(self, xp, X):
        return self._diag_recursion(xp, X, want_ntk=False)


@dataclass(frozen=True)
class ReluNTK(_ReluNetwork):
    """Neural tangent kernel of an infinite-width ReLU MLP — eq. (k-ntk)."""

    name = "ntk"

    def _block(self, xp, X, Y):
        return self._recursion(xp, X, Y, want_ntk=True)

    def _diag(self, xp, X):
        return self._diag_recursion(xp, X, want_ntk=True)


KERNELS = {
    cls.name: cls
    for cls in (Linear, RBF, Laplacian, Polynomial, Cosine, ArcCosineNNGP, ReluNTK)
}


def make_kernel(name: str | Kernel, **params) -> Kernel:
    """A kernel by name (``linear``, ``rbf``, ``laplacian``, ``polynomial``, ``cosine``, ``nngp``, ``ntk``)."""
    if isinstance(name, Kernel):
        if params:
            raise TypeError("make_kernel: pass parameters only with a kernel name, not an instance.")
        return name
    try:
        cls = KERNELS[name]
    except KeyError:
        raise ValueError(f"kernel={name!r} is unknown; choose one of {sorted(KERNELS)}.") from None
    try:
        return cls(**params)
    except TypeError as err:
        raise TypeError(f"kernel {name!r}: {err}") from None


def median_sigma(X, n_pairs: int = 2000, seed: int = 0) -> float:
    """Median heuristic for RBF/Laplacian bandwidths: median ‖x_i − x_j‖ over random pairs.

    Raises a ValueError naming the problem for an empty X, an X with NaN or inf, or an X
    whose sampled pairs are all identical.
    """
    from .backend import is_device_array, to_host

    if is_dask_array(X):  # rows on a cluster: one pass checks them, only the sampled rows come back
        return dask_pass("median_sigma")(X, n_pairs, seed)
    if not hasattr(X, "shape"):
        X = np.asarray(X, dtype=np.float64)
    elif not (isinstance(X, np.ndarray) or is_device_array(X)):  # pandas and other array-likes
        X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        raise ValueError(f"median_sigma: X must be a 2-D (n, d) array with n >= 2 rows and d >= 1 "
                         f"columns; got shape {X.shape}. Pass the (non-empty) training inputs.")
    if int(n_pairs) < 1:
        raise ValueError(f"median_sigma: n_pairs={n_pairs} must be a positive integer.")
    xp = get_xp(X)
    if not bool(xp.isfinite(X).all()):  # checked in X's own dtype: no float64 copy of X
        n_nan = int(xp.isnan(X).sum())
        n_inf = int((~xp.isfinite(X)).sum()) - n_nan
        raise ValueError(f"median_sigma: X contains {n_nan} NaN and {n_inf} infinite value(s); "
                         "clean or impute them (e.g. numpy.nan_to_num) before choosing a bandwidth.")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, X.shape[0], n_pairs)
    j = rng.integers(0, X.shape[0], n_pairs)
    # only the sampled rows are copied to the host in float64
    Xi = np.asarray(to_host(X[xp.asarray(i)]), dtype=np.float64)
    Xj = np.asarray(to_host(X[xp.asarray(j)]), dtype=np.float64)
    dist = np.linalg.norm(Xi - Xj, axis=1)
    dist = dist[dist > 0]
    if dist.size == 0:
        raise ValueError("median_sigma: all sampled pairs of X are identical; X has no spread.")
    return float(np.median(dist))


__all__.append("median_sigma")
