"""The loss-agnostic (FALKON-like) preconditioner P = (K_mn K_nm / n + λ K_mm)⁻¹.

Book: *Theory* (``book/theory.md``), section "Optimisation", equation (precond); spec §4
("General (loss-agnostic) preconditioner ... shared by the h columns, O(m²) memory").

For the least-squares model F = K_nm Ã with L(Ã) = ‖K_nm Ã − Y‖²_F / n + λ tr(Ãᵀ K_mm Ã),
the Hessian is 2 (K_mn K_nm / n + λ K_mm) ⊗ I_h, so

    P = M⁻¹,   M = K_mn K_nm / n + λ K_mm  (+ δ I, see *jitter*),            eq. (precond)

is its exact inverse up to the factor 2 and a cheap, loss-agnostic approximation of
(H_GN + λI)⁻¹ for the other losses (:mod:`krepes_lib.cg`, eq. (cg)). The same m×m
matrix acts on every one of the h columns of Ã: ``apply(G)`` = P G for G of shape (m, h).

Memory is O(m²): K_mn K_nm = Σ_b K_bmᵀ K_bm is accumulated over row blocks of X with
``kernel.blocks(X, landmarks, memory_budget)``; no n×m matrix is ever formed. The sum,
M and its Cholesky factor M = L Lᵀ are float64 whatever the working dtype (as the
K_mm eigendecomposition in :mod:`krepes_lib.nystrom`); ``apply`` returns G's dtype.

Jitter
------
K_mm is only positive *semi*-definite (duplicate landmarks, a linear kernel with m > d),
and then M is singular. By default (``jitter=None``) the Cholesky factorisation is tried
on M itself and accepted when it succeeds with every pivot L_ii² ≥ ρ · max_i M_ii, where
ρ = m · eps(working dtype) (the level the working dtype can resolve, the ``eps·m`` of
Falkon). Otherwise δ = t · mean_i M_ii is added to the diagonal for t = ρ, 10ρ, …, up to
``MAX_JITTER_RTOL`` (the first t that passes the same test is kept; the attribute
``jitter`` holds δ, 0.0 when none was added). Past ``MAX_JITTER_RTOL`` the matrix is
reported as not positive definite. ``jitter=t`` (a float) always adds t · mean_i M_ii,
skipping the search (the pivot test still applies).
"""
from __future__ import annotations

import math

import numpy as np

from .backend import asarray, eps, get_xp, resolve_dtype, scipy_linalg
from .kernels import make_kernel
from .options import resolve_options

__all__ = ["FalkonPreconditioner", "MAX_JITTER_RTOL"]

#: Largest relative jitter δ / mean diag(M) the automatic search tries before giving up.
MAX_JITTER_RTOL = 1e-2

def _cholesky(xp, M):
    """Lower Cholesky factor of M, or None when it fails (NumPy raises, CuPy may return NaN)."""
    try:
        L = xp.linalg.cholesky(M)
    except Exception:  # numpy.linalg.LinAlgError, cupy's LinAlgError under errstate
        return None
    if not bool(xp.isfinite(L).all()):
        return None
    return L


class FalkonPreconditioner:
    """P = (K_mn K_nm / n + λ K_mm)⁻¹ via a Cholesky factor, eq. (precond).

    Parameters
    ----------
    kernel : Kernel or str
        The kernel k (see :mod:`krepes_lib.kernels`).
    landmarks : array, shape (m, d)
        x̃_1..x̃_m; their namespace (NumPy or CuPy) decides the device.
    X : array, shape (n, d)
        The training points; streamed over row blocks, never held as K_nm.
    lam : float
        λ > 0, the regularisation (and CG damping) of spec §4.
    options : krepes_lib.Options, optional
        Its ``memory_budget``: bytes for one streamed kernel block K_bm (its float64 copy for
        the accumulation is included: the block iterator is given a proportionally smaller
        budget).
    jitter : float, optional
        Relative diagonal jitter; ``None`` (default) adds one only when needed (module
        docstring).
    dtype : {"float32", "float64"}, optional
        Working dtype of X and the kernel blocks (default: that of the landmarks when
        they are float32/float64, else :func:`krepes_lib.backend.resolve_dtype`).

    Attributes
    ----------
    L : array, shape (m, m), float64
        Lower Cholesky factor: L Lᵀ = M = K_mn K_nm / n + λ K_mm + δ I.
    lam : float
        λ.
    n, m : int
        Number of training points and of landmarks.
    jitter : float
        δ, the absolute value added to the diagonal of M (0.0 when none was needed).

    Raises
    ------
    ValueError
        When ``lam`` ≤ 0 or is not finite, X and the landmarks disagree in d, or M is
        not positive definite even with the largest jitter.

    Examples
    --------
    >>> import numpy as np
    >>> from krepes_lib.kernels import RBF
    >>> X = np.random.default_rng(0).normal(size=(300, 3))
    >>> P = FalkonPreconditioner(RBF(sigma=1.0), X[:40], X, lam=1e-3, dtype="float64")
    >>> G = np.ones((40, 2))
    >>> bool(np.allclose(P.matvec(P.apply(G)), G))
    True
    """

    def __init__(self, kernel, landmarks, X, lam: float, options=None, jitter: float | None = None,
                 dtype=None):
        try:
            lam_f = float(lam)
        except (TypeError, ValueError):
            raise ValueError(f"lam={lam!r} must be a positive number (λ of spec §4).") from None
        if not (math.isfinite(lam_f) and lam_f > 0):
            raise ValueError(
                f"lam={lam!r} must be > 0: P = (K_mn K_nm / n + lam·K_mm)⁻¹ needs lam > 0 "
                "for K_mm positive semi-definite (spec §4)."
            )
        if jitter is not None and not (math.isfinite(jitter) and jitter >= 0):
            raise ValueError(f"jitter={jitter!r} must be None or a finite number >= 0.")
        get_xp(landmarks, X)  # a host/device mix is an error, not a silent copy
        if dtype is None and getattr(landmarks, "dtype", None) in (np.float32, np.float64):
            dtype = landmarks.dtype
        self.dtype = resolve_dtype(dtype)
        self.kernel = make_kernel(kernel)
        self.landmarks = asarray(landmarks, dtype=self.dtype, name="landmarks")
        xp = self.xp = get_xp(self.landmarks)
        X = asarray(X, xp=xp, dtype=self.dtype, name="X")
        if self.landmarks.ndim != 2 or X.ndim != 2 or X.shape[1] != self.landmarks.shape[1]:
            raise ValueError(
                f"X (shape {X.shape}) and landmarks (shape {self.landmarks.shape}) must be 2-D "
                "with the same number of features d."
            )
        if X.shape[0] < 1:
            raise ValueError("X has no rows; the preconditioner needs n >= 1 training points.")
        self.lam = lam_f
        self.n = int(X.shape[0])
        self.m = int(self.landmarks.shape[0])

        # K_mn K_nm = Σ_b K_bmᵀ K_bm over row blocks (eq. precond), accumulated in float64.
        # The block iterator sizes for 3 working-dtype temporaries; the float64 copy adds
        # 8/itemsize of one, so it gets that share less.
        memory_budget = resolve_options(options).memory_budget
        item = self.dtype.itemsize
        budget = max(1, int(memory_budget * 3 * item / (3 * item + 8))) if item < 8 else int(memory_budget)
        KtK = xp.zeros((self.m, self.m), dtype=xp.float64)
        for _, K_bm in self.kernel.blocks(X, self.landmarks, memory_budget=budget):
            K64 = K_bm.astype(xp.float64, copy=False)
            KtK += K64.T @ K64
        L64 = self.landmarks.astype(xp.float64)
        K_mm = self.kernel(L64, L64, dtype="float64")
        M = KtK / self.n + self.lam * K_mm
        del KtK, K_mm
        M = 0.5 * (M + M.T)
        self.L, self.jitter = self._factor(xp, M, jitter)

    # ----------------------------------------------------------------------------------
    def _factor(self, xp, M, jitter):
        diag = xp.diag(M)
        mean_diag = float(diag.mean())
        max_diag = float(diag.max())
        if not (math.isfinite(mean_diag) and max_diag > 0):
            raise ValueError("K_mn K_nm / n + lam·K_mm is not positive definite: its diagonal is "
                             "non-positive or non-finite; check the kernel, the landmarks and X.")
        rho = self.m * eps(self.dtype)  # relative level the working dtype resolves
        floor = rho * max_diag
        eye = xp.eye(self.m, dtype=xp.float64)

        def attempt(delta):
            L = _cholesky(xp, M + delta * eye if delta else M)
            if L is None or float(xp.diag(L).min()) ** 2 < floor:
                return None
            return L

        if jitter is not None:
            delta = float(jitter) * mean_diag
            L = attempt(delta)
            if L is None:
                raise ValueError(
                    f"K_mn K_nm / n + lam·K_mm + δI (lam={self.lam:g}, δ={delta:.3g}) is not positive "
                    f"definite (a Cholesky pivot² is below {rho:.2g}·max diagonal); raise lam or "
                    "jitter, or drop duplicate landmarks."
                )
            return L, delta
        ts = [0.0, rho]
        while ts[-1] * 10.0 <= MAX_JITTER_RTOL:
            ts.append(ts[-1] * 10.0)
        for t in ts:
            L = attempt(t * mean_diag)
            if L is not None:
                return L, t * mean_diag
        raise ValueError(
            f"K_mn K_nm / n + lam·K_mm (lam={self.lam:g}, m={self.m}) is not positive definite, even "
            f"with a diagonal jitter of {ts[-1]:.2g}·mean diagonal; the kernel may not be "
            "PSD, or lam is too small for the landmarks (raise lam, or drop duplicate landmarks)."
        )

    @classmethod
    def from_nystrom(cls, nystrom, X, lam: float, options=None,
                     jitter: float | None = None) -> "FalkonPreconditioner":
        """The preconditioner for a :class:`krepes_lib.nystrom.Nystrom` basis on X.

        Uses ``nystrom.kernel``, ``nystrom.landmarks``, its working dtype and its
        ``memory_budget`` (unless ``options`` is given: then ``options.memory_budget``).

        Parameters
        ----------
        nystrom : Nystrom
        X : array, shape (n, d)
        lam : float
            λ > 0.
        options : krepes_lib.Options, optional
        jitter : float, optional
        """
        if options is None:
            options = resolve_options(None, memory_budget=nystrom.memory_budget)
        return cls(nystrom.kernel, nystrom.landmarks, X, lam, options=options, jitter=jitter,
                   dtype=nystrom.dtype)

    # ----------------------------------------------------------------------------------
    def _prepare(self, G):
        get_xp(G, self.L)  # a host/device mix is an error
        G = self.xp.asarray(G)
        if G.ndim not in (1, 2) or G.shape[0] != self.m:
            raise ValueError(f"G must have shape (m={self.m},) or (m={self.m}, h); got {G.shape}.")
        out_dtype = G.dtype if G.dtype in (np.float32, np.float64) else self.dtype
        return G.astype(self.xp.float64, copy=False), out_dtype

    def apply(self, G):
        """P G = L⁻ᵀ (L⁻¹ G), two triangular solves, eq. (precond).

        Parameters
        ----------
        G : array, shape (m, h) or (m,)
            E.g. a gradient ∇_Ã L; every column gets the same m×m P.

        Returns
        -------
        array, shape like G, G's dtype (float32/float64; else the working dtype).
        """
        G64, out_dtype = self._prepare(G)
        sl = scipy_linalg(self.xp)
        Y = sl.solve_triangular(self.L, G64, lower=True)
        return sl.solve_triangular(self.L, Y, lower=True, trans="T").astype(out_dtype, copy=False)

    __call__ = apply

    def matvec(self, G):
        """M G = (K_mn K_nm / n + λ K_mm + δI) G = L (Lᵀ G), the matrix that P inverts.

        Parameters
        ----------
        G : array, shape (m, h) or (m,)

        Returns
        -------
        array, shape like G, G's dtype.
        """
        G64, out_dtype = self._prepare(G)
        return (self.L @ (self.L.T @ G64)).astype(out_dtype, copy=False)

    def __repr__(self):
        return (f"FalkonPreconditioner(kernel={self.kernel!r}, m={self.m}, n={self.n}, "
                f"lam={self.lam:g}, jitter={self.jitter:.3g})")
