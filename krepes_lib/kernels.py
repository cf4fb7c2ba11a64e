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

The hot path is GEMM: squared distances use ‖x‖² + ‖y‖² − 2 x·y (clipped at 0), as in
Falkon and scikit-learn. All computations follow the namespace of X ("everything follows
X", :func:`krepes_lib.backend.get_xp`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .backend import asarray, get_xp
from .defaults import BLOCK_BYTES

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


def block_rows(n_rows: int, n_cols: int, d: int, itemsize: int, memory_budget: int = BLOCK_BYTES) -> int:
    """Rows per block so that one kernel block and its temporaries fit ``memory_budget`` bytes.

    A block of b rows holds about ``_TEMPORARIES * b * n_cols`` numbers plus the ``b * d``
    input rows.
    """
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


def _sqdist(xp, X, Y):
    D = _sqnorms(xp, X)[:, None] + _sqnorms(xp, Y)[None, :] - 2.0 * (X @ Y.T)
    return xp.maximum(D, 0.0, out=D)


@dataclass(frozen=True)
class Kernel:
    """Base class: subclasses implement ``_block(xp, X, Y)`` and ``_diag(xp, X)``."""

    name = "kernel"

    # -- to implement -------------------------------------------------------------
    def _block(self, xp, X, Y):  # pragma: no cover - abstract
        raise NotImplementedError

    def _diag(self, xp, X):  # pragma: no cover - abstract
        raise NotImplementedError

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

    def blocks(self, X, Y, memory_budget: int = BLOCK_BYTES, rows: int | None = None) -> Iterator:
        """Yield ``(slice, K_block)`` over row blocks of X, each within ``memory_budget`` bytes."""
        xp = get_xp(X, Y)
        _check_pair(X, Y)
        n = X.shape[0]
        b = rows or block_rows(n, Y.shape[0], X.shape[1], X.dtype.itemsize, memory_budget)
        for start in range(0, n, b):
            sl = slice(start, min(n, start + b))
            yield sl, self._block(xp, X[sl], Y)

    def matmul(self, X, Y, A, memory_budget: int = BLOCK_BYTES, rows: int | None = None):
        """K(X, Y) @ A, shape (n, k), streamed over row blocks of X (no n×m matrix)."""
        xp = get_xp(X, Y, A)
        A2 = A[:, None] if A.ndim == 1 else A
        if A2.shape[0] != Y.shape[0]:
            raise ValueError(f"A has {A2.shape[0]} rows but Y has {Y.shape[0]}; they must match.")
        out = xp.empty((X.shape[0], A2.shape[1]), dtype=xp.result_type(X.dtype, A2.dtype))
        for sl, K in self.blocks(X, Y, memory_budget, rows):
            out[sl] = K @ A2
        return out[:, 0] if A.ndim == 1 else out

    def rmatmul(self, X, Y, G, memory_budget: int = BLOCK_BYTES, rows: int | None = None):
        """K(X, Y)ᵀ @ G, shape (m, k), accumulated over row blocks of X (no n×m matrix)."""
        xp = get_xp(X, Y, G)
        G2 = G[:, None] if G.ndim == 1 else G
        if G2.shape[0] != X.shape[0]:
            raise ValueError(f"G has {G2.shape[0]} rows but X has {X.shape[0]}; they must match.")
        out = xp.zeros((Y.shape[0], G2.shape[1]), dtype=xp.result_type(X.dtype, G2.dtype))
        for sl, K in self.blocks(X, Y, memory_budget, rows):
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
class RBF(Kernel):
    """k(x, y) = exp(−‖x − y‖² / (2σ²)) — eq. (k-rbf). ``sigma`` is the bandwidth σ."""

    sigma: float = 1.0
    name = "rbf"

    def __post_init__(self):
        if not self.sigma > 0:
            raise ValueError(f"sigma={self.sigma} must be > 0 (the RBF bandwidth).")

    def _block(self, xp, X, Y):
        D = _sqdist(xp, X, Y)
        D *= -1.0 / (2.0 * self.sigma**2)
        return xp.exp(D, out=D)

    def _diag(self, xp, X):
        return xp.ones(X.shape[0], dtype=X.dtype)


@dataclass(frozen=True)
class Laplacian(Kernel):
    """k(x, y) = exp(−‖x − y‖₂ / σ) — eq. (k-laplace); Euclidean (not ℓ1) distance, as in Falkon."""

    sigma: float = 1.0
    name = "laplacian"

    def __post_init__(self):
        if not self.sigma > 0:
            raise ValueError(f"sigma={self.sigma} must be > 0 (the Laplacian length-scale).")

    def _block(self, xp, X, Y):
        D = xp.sqrt(_sqdist(xp, X, Y))
        D *= -1.0 / self.sigma
        return xp.exp(D, out=D)

    def _diag(self, xp, X):
        return xp.ones(X.shape[0], dtype=X.dtype)


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
    """Median heuristic for RBF/Laplacian bandwidths: median ‖x_i − x_j‖ over random pairs."""
    Xh = np.asarray(X if not hasattr(X, "get") else X.get(), dtype=np.float64)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, Xh.shape[0], n_pairs)
    j = rng.integers(0, Xh.shape[0], n_pairs)
    dist = np.linalg.norm(Xh[i] - Xh[j], axis=1)
    dist = dist[dist > 0]
    if dist.size == 0:
        raise ValueError("median_sigma: all sampled pairs of X are identical; X has no spread.")
    return float(np.median(dist))


__all__.append("median_sigma")
