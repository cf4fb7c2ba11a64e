"""Nyström approximation, PC initialisation, whitened coordinates and streamed features.

Book: *Theory* (``book/theory.md``), section "Nyström and PC initialisation", equations
(nys-eig), (nys-approx), (nys-pc), (nys-whiten), (nys-features); spec §1.

``Nystrom(kernel, landmarks)`` eigendecomposes K_mm = U Λ Uᵀ (in float64, whatever the
working dtype) and keeps the eigenvalues above a **relative** floor
``rtol · λ_max`` (default :data:`krepes_lib.defaults.EIGEN_RTOL` = 1e-10); r is the number
kept (the numerical rank). Then

* PC initialisation, eq. (nys-pc): Ã₀ = U_h Λ_h^{-1/2}, γ₀ = 0 (``pc_init(h)``);
* whitened coordinates, eq. (nys-whiten): Ã = U_r Λ_r^{-1/2} W (``whitening``), W₀ = [I_h; 0];
* features, eq. (nys-features): F = K_nm Ã + 1γᵀ, streamed over row blocks of X
  (``features``): nothing of size n×m is formed;
* the Nyström kernel, eq. (nys-approx): K̃(X, Y) = K_Xm K_mm⁺ K_mY, and its relative
  Frobenius error against the exact kernel (``relative_error``), streamed as well.
"""
from __future__ import annotations

import numpy as np

from .backend import asarray, dask_pass, get_xp, is_dask_array, resolve_dtype
from .defaults import EIGEN_RTOL, PSD_RTOL
from .kernels import Kernel, make_kernel
from .options import resolve_options

__all__ = ["Nystrom"]


class Nystrom:
    """Nyström basis of a kernel on m landmarks.

    Parameters
    ----------
    kernel : Kernel or str
        The kernel k (see :mod:`krepes_lib.kernels`).
    landmarks : Landmarks or array, shape (m, d)
        x̃_1..x̃_m: a :class:`krepes_lib.landmarks.Landmarks` (``select_landmarks(...)``; its
        row indices are kept as ``landmark_indices``) or the points. Their namespace decides
        the device.
    rtol : float, default 1e-10
        Relative eigenvalue floor: eigenvalues ≤ rtol·λ_max are dropped.
    atol : float, default 0
        Absolute eigenvalue floor: eigenvalues ≤ atol are dropped too (the floor is
        max(rtol·λ_max, atol)). Unlike ``rtol`` it is not invariant to the kernel's scale.
    dtype : {"float32", "float64"}, optional
        Working dtype of the returned arrays (default float32, see
        :func:`krepes_lib.backend.resolve_dtype`). The eigendecomposition is always float64.
    options : krepes_lib.Options, optional
        Its ``memory_budget``: bytes allowed for one streamed kernel block (kept as the
        attribute ``memory_budget``).

    Attributes
    ----------
    K_mm : array (m, m)
        Landmark kernel matrix (working dtype).
    eigvals : array (r,)
        Kept eigenvalues λ_1 ≥ … ≥ λ_r > rtol·λ_max (float64).
    U : array (m, r)
        Matching eigenvectors (float64).
    rank : int
        r, the numerical rank.

    Raises
    ------
    ValueError
        When the landmarks hold NaN/inf, K_mm has an eigenvalue below −1e-5·λ_max (the
        kernel is not positive semi-definite on them), or K_mm is zero.

    Examples
    --------
    >>> import numpy as np
    >>> from krepes_lib.kernels import RBF
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> nys = Nystrom(RBF(sigma=1.0), X[:50])
    >>> A0 = nys.pc_init(h=5)
    >>> nys.features(X, A0).shape
    (200, 5)
    """

    def __init__(self, kernel, landmarks, rtol: float = EIGEN_RTOL, dtype=None, options=None,
                 atol: float = 0.0):
        self.kernel: Kernel = make_kernel(kernel)
        self.dtype = resolve_dtype(dtype)
        self.landmark_indices = getattr(landmarks, "indices", None)
        points = getattr(landmarks, "points", landmarks)
        self.landmarks = asarray(points, dtype=self.dtype, name="landmarks")
        if self.landmarks.ndim != 2 or self.landmarks.shape[0] < 1 or self.landmarks.shape[1] < 1:
            raise ValueError(f"landmarks must be a non-empty 2-D (m, d) array with m >= 1 and d >= 1; "
                             f"got shape {self.landmarks.shape}. Select them with "
                             "krepes_lib.select_landmarks(X, m, ...) from a non-empty X.")
        if not 0 <= rtol < 1:
            raise ValueError(f"rtol={rtol} must be in [0, 1) (relative eigenvalue floor).")
        if not atol >= 0:
            raise ValueError(f"atol={atol} must be >= 0 (absolute eigenvalue floor; 0 switches it off).")
        self.rtol, self.atol = float(rtol), float(atol)
        self.memory_budget = int(resolve_options(options).memory_budget)
        xp = self.xp = get_xp(self.landmarks)
        L64 = self.landmarks.astype(xp.float64)
        K64 = self.kernel(L64, L64, dtype="float64")
        if not bool(xp.isfinite(K64).all()):
            bad = int((~xp.isfinite(K64)).sum())
            raise ValueError(
                f"the kernel returned NaN or inf on the landmarks ({bad} of {K64.size} entries of "
                f"K_mm); check the kernel ({self.kernel!r}): its parameters, or for a network its "
                "weights and inputs.")
        K64 = 0.5 * (K64 + K64.T)
        w, V = xp.linalg.eigh(K64)  # eq. (nys-eig), ascending
        w, V = w[::-1], V[:, ::-1]
        lam_max = float(w[0])
        if not lam_max > 0:
            raise ValueError("K_mm has no positive eigenvalue (all landmarks map to zero); "
                             "check the kernel and its parameters, or choose other landmarks.")
        lam_min = float(w[-1])
        if lam_min < -PSD_RTOL * lam_max:
            raise ValueError(
                f"the kernel is not positive semi-definite on these landmarks: K_mm has eigenvalue "
                f"{lam_min:.3g} (λ_max = {lam_max:.3g}); use a PSD kernel or fix its parameters."
            )
        keep = w > max(self.rtol * lam_max, self.atol)
        self.eigvals = w[keep]
        self.U = V[:, keep]
        self.rank = int(self.eigvals.shape[0])
        self.K_mm = K64.astype(self.dtype)

    # ----------------------------------------------------------------------------
    @property
    def m(self) -> int:
        return int(self.landmarks.shape[0])

    def _check_h(self, h):
        if int(h) != h or h < 1:
            raise ValueError(f"h={h} must be a positive integer (representation dimensions).")
        if h > self.rank:
            raise ValueError(
                f"h={h} exceeds the numerical rank r={self.rank} of K_mm (eigenvalues above "
                f"max(rtol·λ_max, atol) with rtol = {self.rtol:g}, atol = {self.atol:g}); lower h, add landmarks, or use a kernel "
                "with a fuller spectrum."
            )

    def pc_init(self, h: int):
        """Ã₀ = U_h Λ_h^{-1/2}, eq. (nys-pc); shape (m, h), working dtype. γ₀ = 0."""
        self._check_h(h)
        return (self.U[:, :h] / self.xp.sqrt(self.eigvals[:h])[None, :]).astype(self.dtype)

    def whitening(self):
        """T = U_r Λ_r^{-1/2}, shape (m, r): Ã = T W maps whitened coordinates W to Ã, eq. (nys-whiten)."""
        return (self.U / self.xp.sqrt(self.eigvals)[None, :]).astype(self.dtype)

    def pc_init_whitened(self, h: int):
        """W₀ = [I_h; 0], shape (r, h): the PC initialisation in whitened coordinates."""
        self._check_h(h)
        return self.xp.eye(self.rank, h, dtype=self.dtype)

    def kernel_rows(self, X):
        """K_Xm for a block X that fits in memory, shape (b, m), working dtype."""
        X = self._check_X(X)
        return self.kernel(X, self.landmarks)

    def features(self, X, A_tilde, gamma=None):
        """F = K_Xm Ã + 1γᵀ, eq. (nys-features), streamed over row blocks of X.

        Parameters
        ----------
        X : array (n, d)
        A_tilde : array (m, h)
        gamma : array (h,), optional

        A Dask X gives a Dask array (n, h), computed chunk by chunk on the workers with this
        basis, Ã and γ sent once (:mod:`krepes_lib.distributed`).
        """
        if is_dask_array(X):
            return dask_pass("features")(self, X, A_tilde, gamma)
        X = self._check_X(X)
        if A_tilde.ndim != 2 or A_tilde.shape[0] != self.m:
            raise ValueError(f"A_tilde must have shape (m={self.m}, h); got {A_tilde.shape}.")
        F = self.kernel.matmul(X, self.landmarks, A_tilde.astype(self.dtype, copy=False),
                               memory_budget=self.memory_budget)
        if gamma is not None:
            if gamma.shape != (A_tilde.shape[1],):
                raise ValueError(f"gamma must have shape (h={A_tilde.shape[1]},); got {gamma.shape}.")
            F += gamma[None, :]
        return F

    def feature_map(self, X):
        """Φ = K_Xm U_r Λ_r^{-1/2}, shape (n, r): Φ Φᵀ is the Nyström kernel K̃ (eq. nys-approx)."""
        return self.features(X, self.whitening())

    def approx_kernel(self, X, Y=None):
        """K̃(X, Y) = K_Xm K_mm⁺ K_mY (pseudo-inverse with the relative floor), eq. (nys-approx)."""
        PX = self.feature_map(X)
        PY = PX if Y is None else self.feature_map(Y)
        return PX @ PY.T

    def relative_error(self, X, rows: int | None = None) -> float:
        """‖K − K̃‖_F / ‖K‖_F on the points X, accumulated over row blocks (no n×n matrix)."""
        X = self._check_X(X)
        xp = self.xp
        Phi = self.feature_map(X).astype(xp.float64)
        X64 = X.astype(xp.float64)
        num = den = 0.0
        for sl, K in self.kernel.blocks(X64, X64, memory_budget=self.memory_budget, rows=rows):
            E = K - Phi[sl] @ Phi.T
            num += float((E * E).sum())
            den += float((K * K).sum())
        return float(np.sqrt(num / den))

    def _check_X(self, X):
        get_xp(X, self.landmarks)  # a host/device mix is an error, not a silent copy
        X = asarray(X, xp=self.xp, dtype=self.dtype, name="X")
        if X.ndim != 2 or X.shape[1] != self.landmarks.shape[1]:
            raise ValueError(
                f"X must have shape (n, d={self.landmarks.shape[1]}) like the landmarks; got {X.shape}."
            )
        return X

    def __repr__(self):
        return (f"Nystrom(kernel={self.kernel!r}, m={self.m}, rank={self.rank}, "
                f"rtol={self.rtol:g}, dtype={self.dtype.name})")
