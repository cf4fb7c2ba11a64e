"""The v3 audit: one GGN-Newton step from the PC initialisation, and the object every metric reads.

Book: *Theory* (``book/theory.md``), section "Second-order steps", eq. (audit-step);
*Interpretability* (``book/interpretability.md``) for the metrics; spec §4 (one-step
GGN-Newton), §6.

:func:`audit` takes a model (normally at its PC initialisation Ã₀ = U_h Λ_h^{-1/2}, γ₀ = 0),
an SSL loss and unlabelled rows X, draws ``n_batches`` batches of views of X
(:func:`krepes_lib.views.view_batches`), and solves **jointly for the landmark
coefficients and the bias**

    [vec(ΔÃ); Δγ] = −(H_GN + δI)⁻¹ [vec(∇_Ã L); ∇_γ L]   at (Ã₀, γ₀),     eq. (audit-step)

by conjugate gradient, with H_GN the Gauss–Newton matrix of the mean batch loss (eq.
(ggn-lift)) and δ = ``options.damping``. The loss's own arrays (BYOL's predictor, KAE's
decoder) are held at their initial values: the audit explains the landmark coefficients.
In whitened coordinates the damping acts on W instead of Ã (``coords="raw"`` is the paper's
J^T Q J + λI on vec(Ã)).

:class:`Audit` keeps what the metrics need and caches what they share: K_mm, the landmark
representations, and k(X_t, x̃) for every test array it has seen (while the blocks fit the
memory budget), so κ, top-K, Precision@1, the confidence drop and the alignment gap of one
test set evaluate its kernel block once.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .backend import asarray, is_device_array, to_device, to_host
from .cg import CGResult
from .curvature import GGNOperator, newton_direction
from .views import iter_view_batches, view_batches
from .losses import make_objective
from .model import NystromModel
from .options import Options, resolve_options
from .problem import BatchProblem

__all__ = ["audit", "Audit"]


def audit(model: NystromModel, loss, X, *, augment="auto", damping: float | None = None,
          seed: int = 0, n_batches: int = 4, batch_size: int = 256, batches=None,
          options: Options | None = None, preconditioner=None) -> "Audit":
    """One GGN-Newton step from the model's parameters (v3 audit), eq. (audit-step).

    Parameters
    ----------
    model : NystromModel
        Not modified; the audited model is ``Audit.model``.
    loss : str, loss object or Objective
    X : array (n, d)
        Unlabelled rows the batches of views are drawn from.
    augment : see :func:`krepes_lib.views.resolve_augment`
    damping : float, optional
        δ; default ``options.damping``.
    seed : int
        Seeds the view batches (``views.view_batches``).
    n_batches, batch_size : int
        The batches that define L and H_GN. When all of them (views, kernel blocks,
        embeddings) do not fit ``options.memory_budget``, the audit streams: every CG product
        regenerates the same views (same seed) and recomputes their kernel blocks, so memory
        stays at one batch whatever ``n_batches`` is (the result is the same).
    batches : list of tuples of arrays, optional
        Use these views instead of drawing them.
    options : Options
        CG tolerance, cap and memory budget.
    preconditioner : krepes_lib.curvature.Preconditioner, optional
        Preconditions the CG solve.

    Returns
    -------
    Audit
    """
    t0 = time.perf_counter()
    opts = resolve_options(options, damping=damping)
    objective = make_objective(loss)
    xp = model.xp
    state = objective.init_state(model)
    item = np.dtype(model.dtype).itemsize
    if batches is None:
        if not is_device_array(X) and xp is not np:
            X = to_device(X, xp)
        X = asarray(X, xp=xp, dtype=model.dtype, name="X")
        if X.ndim != 2 or X.shape[0] < 2:
            raise ValueError(f"X must be a 2-D (n, d) array with n >= 2 rows; got shape {X.shape}.")
        B = min(int(batch_size), X.shape[0])
        # what one pass keeps per batch: the views, the kernel block, F (and the loss's constants)
        per_batch = objective.views * B * (X.shape[1] + model.m + 2 * model.h) * item
        if int(n_batches) * per_batch <= opts.memory_budget:
            batches = view_batches(X, n_batches, batch_size, views=objective.views, augment=augment, seed=seed)
        else:  # streamed: every pass regenerates the same views (same seed) and keeps nothing
            def source():
                for b in iter_view_batches(X, n_batches, batch_size, views=objective.views,
                                           augment=augment, seed=seed):
                    yield BatchProblem(model, objective, state, b, opts.memory_budget)
            problems = source
    if batches is not None:
        batches = [tuple(v.astype(model.dtype, copy=False) for v in b) for b in batches]
        rows = sum(sum(v.shape[0] for v in b) for b in batches)
        keep = rows * model.m * item <= opts.memory_budget
        problems = [BatchProblem(model, objective, state, b, opts.memory_budget, keep_kernel=keep)
                    for b in batches]
    op = GGNOperator(problems, damping=opts.damping, keys=(model._main, "gamma"))
    before, g = op.gradient()
    d, res = newton_direction(op, g, opts, preconditioner=preconditioner)
    after = op.value_at(d, 1.0)
    gnorm = float(xp.sqrt(sum((g[k] ** 2).sum() for k in op.keys)))
    delta_A = model.A_of(d[model._main])
    return Audit(model=model, objective=objective, delta_A=delta_A, delta_gamma=d["gamma"],
                 loss_before=float(before), loss_after=float(after), grad_norm=gnorm, cg=res,
                 damping=opts.damping, seconds=time.perf_counter() - t0, n_matvec=op.n_matvec,
                 options=opts)


@dataclass
class Audit:
    """The result of :func:`audit` and the cache every metric reads.

    Attributes
    ----------
    model : NystromModel
        The model that was audited (at Ã₀, γ₀; unchanged).
    delta_A : array (m, h)
        ΔÃ in raw coordinates: the coefficients that influence and κ read (spec §6).
    delta_gamma : array (h,)
    A0, gamma0 : arrays
        Ã₀ and γ₀.
    A, gamma : arrays
        The audited representation f(x) = (Ã₀ + ΔÃ)ᵀk_x + γ₀ + Δγ.
    loss_before, loss_after : float
        Mean batch loss at Ã₀ and at Ã₀ + ΔÃ (same views).
    loss_rose : bool
        The step raised its own loss (flag it in any claim that uses this audit; a larger
        damping shortens the step).
    step_ratio : float
        ‖ΔÃ‖_F / ‖Ã₀‖_F.
    cg : CGResult
    """

    model: NystromModel
    objective: object
    delta_A: object
    delta_gamma: object
    loss_before: float
    loss_after: float
    grad_norm: float
    cg: CGResult
    damping: float
    seconds: float
    n_matvec: int
    options: Options

    def __post_init__(self):
        xp = self.model.xp
        self.A0 = self.model.A_tilde
        self.gamma0 = self.model.gamma.copy()
        self.A = self.A0 + self.delta_A
        self.gamma = self.gamma0 + self.delta_gamma
        self.loss_rose = bool(self.loss_after > self.loss_before)
        self.step_ratio = float(xp.linalg.norm(self.delta_A) / max(float(xp.linalg.norm(self.A0)), 1e-300))
        self._K = {}

    # --- shared pieces -------------------------------------------------------------------
    @property
    def nystrom(self):
        return self.model.nystrom

    @property
    def kernel(self):
        return self.nystrom.kernel

    @property
    def landmarks(self):
        return self.nystrom.landmarks

    @property
    def K_mm(self):
        return self.nystrom.K_mm

    @property
    def landmark_indices(self):
        """Rows of the training X the landmarks were taken from (when known)."""
        return self.nystrom.landmark_indices

    @property
    def landmark_representations(self):
        """f(x̃_l) = K_mm (Ã₀ + ΔÃ) + γ, shape (m, h) (computed once)."""
        if "Z_L" not in self._K:
            self._K["Z_L"] = self.K_mm @ self.A + self.gamma[None, :]
        return self._K["Z_L"]

    def _prep(self, X_t):
        xp = self.model.xp
        if not is_device_array(X_t) and xp is not np:
            X_t = to_device(X_t, xp)
        return asarray(X_t, xp=xp, dtype=self.model.dtype, name="X_t")

    def kernel_rows(self, X_t):
        """k(X_t, x̃), shape (n_t, m): cached per test array while it fits the memory budget,
        else ``None`` (the metrics then stream blocks themselves)."""
        key = (id(X_t), getattr(X_t, "shape", None))
        hit = self._K.get(key)
        if hit is not None and hit[0] is X_t:
            return hit[1]
        Xt = self._prep(X_t)
        if Xt.shape[0] * self.model.m * Xt.dtype.itemsize > self.options.memory_budget:
            return None
        (_, K), = self.kernel.blocks(Xt, self.landmarks, rows=Xt.shape[0])
        self._K[key] = (X_t, K)
        return K

    def _args(self, X_t):
        return self._prep(X_t), self.kernel_rows(X_t)

    # --- representations -------------------------------------------------------------------
    def embed(self, X):
        """The audited representation f(X) = K_Xm (Ã₀ + ΔÃ) + 1(γ₀ + Δγ)ᵀ, shape (n, h)."""
        Xt, K = self._args(X)
        if K is not None:
            return K @ self.A + self.gamma[None, :]
        return self.nystrom.features(Xt, self.A, self.gamma)

    def embed_init(self, X):
        """The representation at the PC initialisation, K_Xm Ã₀ + 1γ₀ᵀ."""
        Xt, K = self._args(X)
        if K is not None:
            return K @ self.A0 + self.gamma0[None, :]
        return self.nystrom.features(Xt, self.A0, self.gamma0)

    # --- metrics (spec §6) ----------------------------------------------------------------------
    def influence_scores(self, X_t, v=None):
        """IS(x̃_l, x_t) (or the signed concept score with ``v``), shape (n_t, m), eq. (int-is)."""
        from .interpret import influence_scores

        Xt, K = self._args(X_t)
        return influence_scores(self.kernel, self.landmarks, Xt, self.delta_A, v=v,
                                memory_budget=self.options.memory_budget, K_tm=K)

    def top_influential(self, X_t, K: int | None = None, v=None):
        """The K landmarks of largest IS per test point, eq. (int-is) (a TopK record)."""
        from .defaults import TOP_K
        from .interpret import top_influential

        Xt, Kt = self._args(X_t)
        return top_influential(self.kernel, self.landmarks, Xt, self.delta_A, K=TOP_K if K is None else K,
                               v=v, memory_budget=self.options.memory_budget, K_tm=Kt)

    def attracting_repelling(self, X_t, v, K: int | None = None):
        """K most attracting and repelling landmarks along a concept vector, eq. (int-concept)."""
        from .defaults import TOP_K
        from .interpret import top_attracting_repelling

        Xt, Kt = self._args(X_t)
        return top_attracting_repelling(self.kernel, self.landmarks, Xt, self.delta_A, v,
                                        K=TOP_K if K is None else K,
                                        memory_budget=self.options.memory_budget, K_tm=Kt)

    def concept_vector(self, X_pos, X_neg):
        """Unit CAV separating f(X_pos) from f(X_neg) in the audited representation, eq. (int-concept)."""
        from .interpret import concept_activation_vector

        return concept_activation_vector(self.embed(X_pos), self.embed(X_neg))

    def kappa(self, y_landmarks, n_classes: int | None = None) -> int:
        """Class coverage κ of the landmarks ranked by ‖ΔÃ_l,:‖₂, eq. (lm-kappa)."""
        from .interpret import class_coverage_from_coefficients

        return class_coverage_from_coefficients(self.delta_A, y_landmarks, n_classes)

    def precision_at_1(self, X_t, y_t, y_landmarks):
        """Precision@1 of the top-1 landmark by IS vs the cosine baseline, eq. (int-p1)."""
        from .interpret import precision_at_1

        Xt, K = self._args(X_t)
        return precision_at_1(self.kernel, self.landmarks, Xt, self.delta_A, y_t, y_landmarks,
                              A_repr=self.A, gamma=self.gamma, memory_budget=self.options.memory_budget,
                              K_tm=K, K_mm=self.K_mm)

    def confidence_drop(self, X_t, y_landmarks, y_t=None, target: str = "true", **kw):
        """k-NN confidence drop after removing the top vs random landmarks, eq. (int-drop)."""
        from .interpret import confidence_drop

        Xt, K = self._args(X_t)
        return confidence_drop(self.kernel, self.landmarks, Xt, self.delta_A, y_landmarks, y_t=y_t,
                               target=target, A_repr=self.A, gamma=self.gamma,
                               memory_budget=self.options.memory_budget, K_tm=K, K_mm=self.K_mm, **kw)

    def alignment_gap(self, X_t, X_t_raw, L_raw, feature: int, **kw):
        """Feature Alignment Gap of one raw feature, eqs. (int-feature), (int-gap)."""
        from .interpret import alignment_gap

        Xt, K = self._args(X_t)
        return alignment_gap(self.kernel, self.landmarks, Xt, self.delta_A, X_t_raw, L_raw,
                             feature=feature, memory_budget=self.options.memory_budget, K_tm=K, **kw)

    def spectral_entropy(self) -> float:
        """Normalised spectral entropy of (Ã₀ + ΔÃ)ᵀ(Ã₀ + ΔÃ), eq. (int-entropy)."""
        from .interpret import spectral_entropy

        return spectral_entropy(self.A)

    def summary(self) -> dict:
        """Diagnostics for a claim row: losses, the loss_rose flag, step size, CG."""
        return {"loss_before": self.loss_before, "loss_after": self.loss_after,
                "loss_rose": self.loss_rose, "step_ratio": self.step_ratio, "damping": self.damping,
                "cg_iterations": int(self.cg.iterations),
                "cg_converged": bool(np.all(to_host(np.asarray(self.cg.converged)))),
                "seconds": self.seconds}
