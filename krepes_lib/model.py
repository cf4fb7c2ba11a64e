"""The Nyström-restricted kernel model f(x) = Ãᵀ k_x + γ and its gradients.

Book: *Theory* (``book/theory.md``), section "Model", equations (model), (model-grad);
section "Nyström and PC initialisation", equations (nys-pc), (nys-whiten); spec §1.

On a batch with kernel block K_bm = [k(x_i, x̃_l)] (b×m) the model is, eq. (model),

    F = K_bm Ã + 1 γᵀ,          Ã ∈ R^{m×h}, γ ∈ R^h,

and for any loss L(F) the chain rule gives, eq. (model-grad),

    ∇_Ã L = K_bmᵀ ∇_F L,        ∇_γ L = 1ᵀ ∇_F L.

Two coordinate systems describe the same function class:

* ``coords="raw"``: the parameter is Ã itself;
* ``coords="whitened"`` (project default): the parameter is W ∈ R^{r×h} with
  Ã = T W, T = U_r Λ_r^{-1/2} (eq. nys-whiten, :meth:`Nystrom.whitening`), so that
  ∇_W L = Tᵀ ∇_Ã L. In these coordinates ÃᵀK_mmÃ = WᵀW: plain Adam sees a
  well-conditioned problem.

The model holds no kernel matrix of the data: the caller (``train.fit``) computes K_bm
batch by batch and hands it to :meth:`forward` / :meth:`backward`; :meth:`embed` streams
over row blocks with :meth:`Nystrom.features`.
"""
from __future__ import annotations

import numpy as np

from .backend import get_xp, host_rng, is_dask_array, is_device_array, to_device
from .nystrom import Nystrom

__all__ = ["NystromModel", "COORDS", "INITS"]

COORDS = ("whitened", "raw")
INITS = ("pc", "random")


class NystromModel:
    """f(x) = Ãᵀ k_x + γ on a Nyström basis, eq. (model).

    Parameters
    ----------
    nystrom : Nystrom
        The basis: kernel, landmarks x̃_1..x̃_m, K_mm and its eigendecomposition. Its
        namespace (NumPy or CuPy) and working dtype are the model's.
    h : int
        Representation dimension (h ≤ r, the numerical rank of K_mm).
    coords : {"whitened", "raw"}, default "whitened"
        Which parameter the optimiser sees: W with Ã = T W (eq. nys-whiten), or Ã.
    init : {"pc", "random"}, default "pc"
        ``"pc"``: Ã₀ = U_h Λ_h^{-1/2} (eq. nys-pc), i.e. W₀ = [I_h; 0]; then
        K_nm Ã₀ is the top-h Nyström feature map (uncentred KPCA of the landmark span).
        ``"random"``: i.i.d. Gaussian entries drawn on the host from ``seed`` and scaled so
        that E[Ã₀ᵀ K_mm Ã₀] = I_h — the value the PC init has exactly (every output
        dimension starts with unit RKHS norm): W₀ ~ N(0, 1/r) in whitened coordinates
        (ÃᵀK_mmÃ = WᵀW), Ã₀ ~ N(0, 1/tr K_mm) in raw coordinates. γ₀ = 0 in both cases.
    seed : int or numpy.random.Generator, default 0
        Host RNG for ``init="random"``.

    The model holds only (Ã or W, γ). Arrays that belong to a loss — BYOL's predictor and
    EMA target, KAE's decoder — are owned by that loss's objective
    (:mod:`krepes_lib.losses.objective`), created by ``fit`` / ``audit``.

    Attributes
    ----------
    nystrom : Nystrom
    m, h, r : int
        Landmarks, representation dimensions, numerical rank of K_mm.
    coords, init : str
    T : array (m, r) or None
        Whitening map U_r Λ_r^{-1/2} (whitened coordinates only).
    params : dict[str, array]
        The trainable arrays: ``"A_tilde"`` (m, h) or ``"W"`` (r, h), and ``"gamma"`` (h,).
        Updated in place.

    Examples
    --------
    >>> import numpy as np
    >>> from krepes_lib.kernels import RBF
    >>> from krepes_lib.nystrom import Nystrom
    >>> X = np.random.default_rng(0).normal(size=(100, 3))
    >>> model = NystromModel(Nystrom(RBF(sigma=1.0), X[:20]), h=4)
    >>> model.embed(X).shape, model.n_parameters
    ((100, 4), 84)
    """

    def __init__(self, nystrom: Nystrom, h: int, coords: str = "whitened", init: str = "pc",
                 seed=0):
        if not isinstance(nystrom, Nystrom):
            raise TypeError(f"nystrom must be a krepes_lib.nystrom.Nystrom, got {type(nystrom).__name__}.")
        if coords not in COORDS:
            raise ValueError(f"coords={coords!r} is unknown; choose one of {COORDS}.")
        if init not in INITS:
            raise ValueError(f"init={init!r} is unknown; choose one of {INITS}.")
        nystrom._check_h(h)
        self.nystrom = nystrom
        self.xp = nystrom.xp
        self.dtype = nystrom.dtype
        self.h = int(h)
        self.coords = coords
        self.init = init
        xp, dt = self.xp, self.dtype
        self.T = nystrom.whitening() if coords == "whitened" else None

        if init == "pc":
            main = nystrom.pc_init_whitened(h) if coords == "whitened" else nystrom.pc_init(h)
        else:
            rng = host_rng(seed)
            shape = (self.r, self.h) if coords == "whitened" else (self.m, self.h)
            if coords == "whitened":
                scale = 1.0 / np.sqrt(self.r)  # E[WᵀW] = I_h
            else:
                scale = 1.0 / np.sqrt(float(xp.trace(nystrom.K_mm)))  # E[ÃᵀK_mmÃ] = I_h
            main = to_device(rng.standard_normal(shape) * scale, xp, dtype=dt)
        self.params = {self._main: main, "gamma": xp.zeros(self.h, dtype=dt)}

    # --- shapes and parameters ----------------------------------------------------
    @property
    def m(self) -> int:
        return self.nystrom.m

    @property
    def r(self) -> int:
        return self.nystrom.rank

    @property
    def _main(self) -> str:
        return "W" if self.coords == "whitened" else "A_tilde"

    @property
    def A_tilde(self):
        """Ã, shape (m, h): the parameter itself (raw) or T W (whitened, eq. nys-whiten)."""
        main = self.params[self._main]
        return main if self.T is None else self.T @ main

    @property
    def gamma(self):
        """γ, shape (h,)."""
        return self.params["gamma"]

    def parameters(self) -> dict:
        """The trainable arrays by name (live references, see ``params``)."""
        return self.params

    @property
    def n_parameters(self) -> int:
        """m·h + h: the entries of (Ã, γ) that define f at test time (spec §1).

        What an optimiser actually trains is counted by :attr:`n_trained` (W has r·h
        entries in whitened coordinates) plus the loss's own arrays
        (:attr:`krepes_lib.train.History.n_trained`).
        """
        return self.m * self.h + self.h

    @property
    def n_trained(self) -> int:
        """Entries of the arrays the optimiser updates: Ã (m·h) or W (r·h), plus γ (h)."""
        return int(sum(int(np.prod(v.shape)) for v in self.params.values()))

    def A_of(self, V_main):
        """Map a direction of the main parameter to Ã coordinates: itself (raw) or T V (whitened)."""
        return V_main if self.T is None else self.T @ V_main

    def fingerprint(self) -> str:
        """SHA-256 of what defines the model's coordinates: kernel, landmarks, h, coords, dtype.

        A checkpoint records it; resuming into a model with another kernel, other
        landmarks or another h is refused (:func:`krepes_lib.fit`).
        """
        import hashlib

        from .backend import to_host

        hsh = hashlib.sha256(repr((self.nystrom.kernel, self.h, self.coords, self.r,
                                   self.dtype.name, tuple(self.nystrom.landmarks.shape))).encode())
        hsh.update(np.ascontiguousarray(to_host(self.nystrom.landmarks)).tobytes())
        return hsh.hexdigest()

    # --- forward / backward ---------------------------------------------------------
    def _check_K(self, K_bm):
        if K_bm.ndim != 2 or K_bm.shape[1] != self.m:
            raise ValueError(f"K_bm must have shape (b, m={self.m}); got {tuple(K_bm.shape)}.")
        get_xp(K_bm, self.params["gamma"])

    def forward(self, K_bm, A_tilde=None, gamma=None):
        """F = K_bm Ã + 1γᵀ, eq. (model).

        Parameters
        ----------
        K_bm : array (b, m)
            Kernel block between a batch and the landmarks.
        A_tilde, gamma : arrays (m, h), (h,), optional
            Use these instead of the model's (e.g. a precomputed ``A_tilde`` or the BYOL
            target).

        Returns
        -------
        F : array (b, h)
        """
        self._check_K(K_bm)
        A = self.A_tilde if A_tilde is None else A_tilde
        g = self.params["gamma"] if gamma is None else gamma
        F = K_bm @ A
        F += g[None, :]
        return F

    def grad_from_A(self, dA):
        """Map ∇_Ã L (m, h) to the gradient of the main parameter: itself (raw) or Tᵀ∇_Ã L (whitened)."""
        return dA if self.T is None else self.T.T @ dA

    def backward(self, K_bm, dF, dA_extra=None) -> dict:
        """Gradients of L from ∇_F L, eq. (model-grad).

        Parameters
        ----------
        K_bm : array (b, m)
        dF : array (b, h)
            ∇_F L for F = :meth:`forward` (K_bm).
        dA_extra : array (m, h), optional
            A gradient with respect to Ã that does not pass through F (a penalty on Ã, the
            KPCA whitening term); added before the change of coordinates.

        Returns
        -------
        dict
            ``{"A_tilde" | "W": ∇ (m, h) | (r, h), "gamma": 1ᵀ dF (h,)}``;
            ∇_Ã L = K_bmᵀ dF (+ dA_extra), and ∇_W L = Tᵀ ∇_Ã L in whitened coordinates.
        """
        self._check_K(K_bm)
        if dF.shape != (K_bm.shape[0], self.h):
            raise ValueError(f"dF must have shape (b={K_bm.shape[0]}, h={self.h}); got {tuple(dF.shape)}.")
        dA = K_bm.T @ dF
        if dA_extra is not None:
            dA += dA_extra
        return {self._main: self.grad_from_A(dA), "gamma": dF.sum(axis=0)}

    # --- embeddings -----------------------------------------------------------------
    def embed(self, X, options=None):
        """f(X) = K_Xm Ã + 1γᵀ, shape (n, h), streamed over row blocks (eq. nys-features).

        A NumPy ``X`` is moved to the model's device once; the result stays there. Blocks fit
        the Nyström basis's memory budget, or ``options.memory_budget`` when ``options`` is given.
        """
        # Dask rows stay on their cluster (Nystrom.features maps over their chunks)
        if not is_device_array(X) and self.xp is not np and not is_dask_array(X):
            X = to_device(X, self.xp)
        if options is not None:
            old, self.nystrom.memory_budget = self.nystrom.memory_budget, int(options.memory_budget)
            try:
                return self.nystrom.features(X, self.A_tilde, self.params["gamma"])
            finally:
                self.nystrom.memory_budget = old
        return self.nystrom.features(X, self.A_tilde, self.params["gamma"])

    # --- state for checkpoints -------------------------------------------------------
    def state_dict(self) -> dict:
        """All arrays that define the model's state, by name."""
        return {f"param/{k}": v for k, v in self.params.items()}

    def load_state_dict(self, state: dict):
        """Copy arrays from :meth:`state_dict`-style names into the model (shapes must match)."""
        for key, cur in self.state_dict().items():
            if key not in state:
                raise KeyError(f"state has no {key!r}; was it saved from a model with the same options?")
            new = to_device(state[key], self.xp, dtype=self.dtype)
            if new.shape != cur.shape:
                raise ValueError(f"{key}: saved shape {tuple(new.shape)} != model shape {tuple(cur.shape)}.")
            cur[...] = new

    def __repr__(self):
        return (f"NystromModel(m={self.m}, h={self.h}, r={self.r}, coords={self.coords!r}, "
                f"init={self.init!r}, kernel={self.nystrom.kernel!r})")
