"""The Nyström reference (seed App. B, eq. (nef-nys-oos)) and the bridge from NeuralEF to KREPES
(eq. (nef-bridge)): a Nyström model whose PC initialisation is the NeuralEF eigenbasis, folded into
k network passes per test point.

Book: *NeuralEF vs Nyström* (``book/neuralef.md``), eqs. (nef-nys-oos), (nef-bridge); *Theory* eq. (nys-pc).
"""
from __future__ import annotations

import math

import numpy as np

from ...backend import to_host
from ...kernels import Kernel, Linear
from ...timing import Timer
from .kernels import RandomFeatureKernel
from .objective import NeuralEF

__all__ = ["nystrom_eigenfunctions", "neuralef_pc_model", "CollapsedModel"]


def nystrom_eigenfunctions(kernel: Kernel, X_train, k: int, solver: str = "eigh"):
    """Top-k Nyström eigenpairs (seed App. B: scipy ``eigh`` with ``subset_by_index``).

    ``solver="lanczos"`` uses ``scipy.sparse.linalg.eigsh`` (ARPACK, a few dozen products
    with K instead of an O(N³) tridiagonalisation; same eigenpairs up to its tolerance) —
    for large N where only the result, not the seed's timing, matters.

    Returns (mu (k,), psi_fn, seconds): μ̂_j = λ_j / N and ψ̂_j(x) = κ(x, X)u_j √N / λ_j,
    eq. (nef-nys-oos) = seed eq. (8), so that ψ̂_j(x_n) = √N u_nj on the training points.
    ``seconds`` times the kernel matrix and the eigendecomposition.
    """
    import scipy.linalg

    Xh = np.asarray(to_host(X_train), dtype=np.float64)
    N = Xh.shape[0]
    if not 1 <= k <= N:
        raise ValueError(f"k={k} must be in [1, N={N}].")
    if solver not in ("eigh", "lanczos"):
        raise ValueError(f"solver={solver!r}: use 'eigh' (seed App. B) or 'lanczos'.")
    timer = Timer()
    with timer("kernel + eigenpairs"):
        if isinstance(kernel, RandomFeatureKernel):  # features of the training set once
            # the caller's array (not its float64 copy): the features cache then serves NeuralEF too
            F = kernel.features(np.asarray(to_host(X_train))).astype(np.float64)
            K = F @ F.T / kernel.n_samples + kernel.const
        else:
            K = kernel(Xh, dtype="float64")
        if solver == "eigh":
            lam, U = scipy.linalg.eigh(K, subset_by_index=[N - k, N - 1])
        elif solver == "lanczos":
            import scipy.sparse.linalg

            v0 = np.full(N, 1.0 / math.sqrt(N))  # deterministic start vector
            lam, U = scipy.sparse.linalg.eigsh(K, k=k, which="LA", v0=v0, tol=1e-10)
            order = np.argsort(lam)
            lam, U = lam[order], U[:, order]
    seconds = timer.total
    del K
    lam, U = lam[::-1], U[:, ::-1]
    coef = U * (math.sqrt(N) / lam)[None, :]

    on_train = np.ascontiguousarray(U * math.sqrt(N))  # ψ̂_j(x_n) = √N u_nj: eq. (8) at x_n, K u = λ u
    if isinstance(kernel, RandomFeatureKernel):
        Fc = F.T @ coef / kernel.n_samples
        c0 = kernel.const * coef.sum(0)

        def extend(X):
            return kernel.features(np.asarray(to_host(X))).astype(np.float64) @ Fc + c0[None, :]
    else:
        def extend(X):
            return kernel.matmul(np.asarray(to_host(X), dtype=np.float64), Xh, coef)

    def psi(X):
        """ψ̂(X), eq. (8); the training array itself (``X is X_train``) is not recomputed."""
        return on_train.copy() if X is X_train else extend(X)
    return lam / N, psi, seconds


def neuralef_pc_model(nef: NeuralEF, X, m: int, h: int, seed: int = 0, dtype=None):
    """A KREPES model whose PC initialisation is the NeuralEF eigenbasis, eq. (nef-bridge).

    Z = φ(X) (n, k) are the NeuralEF features; landmarks are m uniform rows of Z; the kernel
    is linear on Z, so K_mm = Z_m Z_mᵀ and the PC init f₀(x) = Λ_h^{-1/2}U_hᵀ Z_m φ(x) (eq.
    (nys-pc)) is the top-h principal directions of φ on the landmarks — ≈ [√μ̂_j ψ̂_j(x)]_{j≤h}
    when the ψ̂_j are orthonormal under q. Needs h ≤ k. Returns (model, Z) — train the model
    on Z with :func:`krepes_lib.train.fit` like any other.
    """
    from ...backend import resolve_dtype
    from ...recipe import build_model

    if h > nef.k:
        raise ValueError(f"h={h} exceeds k={nef.k} eigenfunctions; train NeuralEF with k >= h.")
    Z = nef.features(X)
    return build_model(Z, h, m=m, kernel=Linear(), landmarks="uniform", seed=seed, dtype=resolve_dtype(dtype)), Z


class CollapsedModel:
    """f(x) = Bᵀ φ(x) + γ with B = Z_mᵀ Ã (k × h): a model of :func:`neuralef_pc_model` whose
    test cost is k network passes + k·h flops (eq. (nef-bridge)), not m kernel evaluations."""

    def __init__(self, model, nef: NeuralEF):
        Zm = np.asarray(to_host(model.nystrom.landmarks), dtype=np.float64)
        A = np.asarray(to_host(model.A_tilde), dtype=np.float64)
        self.B = (Zm.T @ A).astype(np.float32)
        self.gamma = np.asarray(to_host(model.gamma), dtype=np.float32)
        self.nef = nef

    def embed(self, X):
        return self.nef.features(X) @ self.B + self.gamma[None, :]
