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

**The step is guarded** (ours; the paper takes it unguarded): a step that raises its own loss
L is not what the objective wants to change — on a nearly collinear PC start it can collapse
the representation. The label-free acceptance rule ``options.audit_step`` (default ``"lm"``,
Levenberg–Marquardt on δ) returns the first candidate with

    L(θ₀ + t d_δ) ≤ L(θ₀) + c t ∇Lᵀd_δ,   δ = δ₀, fδ₀, f²δ₀, …   (t = 1),       eq. (audit-accept)

(c = ``options.armijo``, f = ``options.lm_factor``; ``"backtrack"``: δ = δ₀ and t = 1, ½, …;
``"full"``: d_δ₀ unguarded). Every candidate's loss is L at F + tK d (the model is linear in
θ: no kernel block per trial), and all dampings come from one multi-shift CG run on δ₀ (eq.
(cg-shift)). :class:`Audit` records the requested and the accepted δ, every trial and the CG
status; the library warns (:class:`~krepes_lib.exceptions.ConvergenceWarning`,
:class:`~krepes_lib.exceptions.LossIncreaseWarning`) when CG stops short of its tolerance or
when the returned step raised its own loss.

:class:`Audit` keeps what the metrics need and caches what they share: K_mm, the landmark
representations, and k(X_t, x̃) for every test array it has seen (while the blocks fit the
memory budget), so κ, top-K, Precision@1, the confidence drop and the alignment gap of one
test set evaluate its kernel block once.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .augment import auto_for_kernel
from .backend import asarray, dask_pass, is_dask_array, is_device_array, to_device, to_host
from .cg import CGResult
from .curvature import GGNOperator, damped_directions
from .exceptions import ConvergenceWarning, LossIncreaseWarning
from .views import iter_view_batches, view_batches
from .losses import make_objective
from .model import NystromModel
from .options import Options, apply_feature_budget, resolve_options
from .problem import BatchProblem

__all__ = ["audit", "Audit", "guarded_step", "load_audit"]


def load_audit(path, kernel=None, model=None) -> "Audit":
    """Read an audit written by :meth:`Audit.save` (see :func:`krepes_lib.audit_io.load_audit`)."""
    from .audit_io import load_audit as _load

    return _load(path, kernel=kernel, model=model, cls=Audit)


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
        Unlabelled rows the batches of views are drawn from. A Dask array runs the audit on
        its cluster (:mod:`krepes_lib.distributed`): the batches are split over the row chunks
        in proportion to their rows and drawn per chunk where the rows are
        (:func:`krepes_lib.views.partition_view_batches`; in one process the same batches are
        :func:`krepes_lib.views.partition_batches`), and every CG pass runs on the workers.
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
        CG tolerance, cap and memory budget; the acceptance rule of the step
        (``audit_step``, ``lm_factor``, ``lm_max_tries``, ``armijo``, ``max_halvings``),
        eq. (audit-accept).
    preconditioner : krepes_lib.curvature.Preconditioner, optional
        Preconditions the CG solve (then each damping the ``"lm"`` rule tries is its own
        solve, warm-started from the previous one).

    Returns
    -------
    Audit

    Warns
    -----
    ConvergenceWarning
        CG stopped (cap or breakdown) above ``options.cg_rtol`` for the returned step.
    LossIncreaseWarning
        No tried δ (or t) lowered the loss; the least bad step is returned, ``loss_rose``.
    """
    t0 = time.perf_counter()
    opts = resolve_options(options, damping=damping)
    augment = auto_for_kernel(augment, model.nystrom.kernel)  # images: image views for "auto"
    if options is not None:
        apply_feature_budget(opts)
    objective = make_objective(loss)
    xp = model.xp
    state = objective.init_state(model)
    item = np.dtype(model.dtype).itemsize
    op = None
    if batches is None and is_dask_array(X):
        # rows on a cluster (krepes_lib.distributed): batches drawn per partition on the workers,
        # every pass (gradient, GGN product, step value) runs there; the model is sent once
        op = dask_pass("audit_operator")(model, objective, state, X, augment=augment, seed=seed,
                                         n_batches=n_batches, batch_size=batch_size, options=opts)
    elif batches is None:
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
    if op is None:
        op = GGNOperator(problems, damping=opts.damping, keys=(model._main, "gamma"))
    before, g = op.gradient()
    step = guarded_step(op, g, float(before), opts, preconditioner)
    d, t, res = step["direction"], step["t"], step["cg"]
    gnorm = float(xp.sqrt(sum((g[k] ** 2).sum() for k in op.keys)))
    delta_A = model.A_of(t * d[model._main])        # the returned step t·d, eq. (audit-accept)
    delta_gamma = t * d["gamma"]
    out = Audit(model=model, objective=objective, delta_A=delta_A, delta_gamma=delta_gamma,
                loss_before=float(before), loss_after=step["loss"], grad_norm=gnorm, cg=res,
                damping=opts.damping, seconds=time.perf_counter() - t0, n_matvec=op.n_matvec,
                options=opts, damping_accepted=step["damping"], step_length=t,
                step_accepted=step["accepted"], trials=step["trials"])
    _warn(out)
    return out


def guarded_step(op: GGNOperator, g: dict, before: float, opts: Options, preconditioner=None) -> dict:
    """The audit step under the label-free acceptance rule ``opts.audit_step``, eq. (audit-accept).

    Candidates: d_δ = −(H_GN + δI)⁻¹∇L (eq. (audit-step)) for δ = δ₀, fδ₀, f²δ₀, … (``"lm"``,
    f = ``lm_factor``, ``lm_max_tries`` dampings, one multi-shift CG run, eq. (cg-shift)), or
    t·d_δ₀ for t = 1, ½, … (``"backtrack"``, ``max_halvings``), or d_δ₀ alone (``"full"``).
    The first candidate with L(θ₀ + t d) ≤ L(θ₀) + c t ∇Lᵀd (c = ``armijo``; the loss at
    F + tK d, :meth:`GGNOperator.value_at` — no kernel block per trial while the batches are
    kept; a streamed audit recomputes its blocks once per trial) is returned; when none
    passes, the candidate of lowest loss (``accepted`` False).

    Returns ``{"direction", "t", "damping", "loss", "accepted", "cg", "trials"}``; ``trials``
    lists every tried (δ, t) with its loss, slope ∇Lᵀd, CG iterations and true relative
    residual, in the order tried.
    """
    rule = opts.audit_step
    delta0 = float(opts.damping)
    if rule == "lm" and not delta0 > 0:
        raise ValueError("Options.audit_step='lm' multiplies the damping until the step lowers its loss, "
                         f"so it needs damping > 0 (got {delta0:g}); pass damping > 0, or "
                         "Options(audit_step='backtrack') / 'full' for the undamped Gauss–Newton step.")
    dampings = [delta0 * opts.lm_factor ** j for j in range(int(opts.lm_max_tries))] if rule == "lm" else [delta0]
    ts = [0.5 ** i for i in range(int(opts.max_halvings) + 1)] if rule == "backtrack" else [1.0]
    candidates = damped_directions(op, g, dampings, opts, preconditioner)
    try:
        return _first_acceptable(candidates, g, op, before, opts, ts)
    finally:
        candidates.close()  # restores the operator's damping on the preconditioned path


def _first_acceptable(candidates, g, op, before, opts, ts):
    trials, best = [], None
    for delta, d, res in candidates:
        slope = float(sum(float((g[k] * d[k]).sum()) for k in op.keys))
        rel = float(res.relative_residuals[0])
        for t in ts:
            loss = op.value_at(d, t)
            ok = bool(np.isfinite(loss) and loss <= before + opts.armijo * t * slope)
            trials.append({"damping": delta, "t": t, "loss": loss, "slope": t * slope, "accepted": ok,
                           "cg_iterations": int(res.iterations), "cg_relative_residual": rel,
                           "cg_converged": bool(np.all(res.converged))})
            cand = {"direction": d, "t": t, "damping": delta, "loss": loss, "accepted": ok, "cg": res}
            if best is None or (np.isfinite(loss) and not loss >= best["loss"]):
                best = cand
            if ok:
                return {**cand, "trials": trials}
    return {**best, "trials": trials}


def _warn(a: "Audit"):
    """ConvergenceWarning for an unconverged CG solve of the returned step; LossIncreaseWarning
    for a returned step that raised its own loss (eq. (audit-accept))."""
    if not a.cg_converged:
        why = {"max_iter": f"at its cap cg_max_iter={a.options.cg_max_iter}",
               "breakdown": "on a breakdown (H_GN + δI not positive definite along a direction)"}.get(
            a.cg.stopped_by, f"after {a.cg.iterations} iterations")
        warnings.warn(
            f"audit: conjugate gradient stopped {why} with relative residual {a.cg_relative_residual:.2e} > "
            f"cg_rtol={a.options.cg_rtol:g} for the step at δ={a.damping_accepted:g} (dtype "
            f"{np.dtype(a.model.dtype).name}); the step solves eq. (audit-step) only approximately. Raise "
            "Options.cg_max_iter, loosen Options.cg_rtol, or use a larger damping.", ConvergenceWarning,
            stacklevel=3)
    if a.loss_rose:
        tried = ", ".join(f"δ={r['damping']:g}" + (f" t={r['t']:g}" if r["t"] != 1.0 else "") + f": {r['loss']:.4g}"
                          for r in a.trials)
        warnings.warn(
            f"audit: the step raised its own loss ({a.loss_before:.6g} -> {a.loss_after:.6g}) at every tried "
            f"setting of Options.audit_step={a.options.audit_step!r} ({tried}); the returned step is the least "
            "bad one and Audit.loss_rose is True. "
            + ("Use the default Options(audit_step='lm') to guard the step." if a.options.audit_step == "full"
               else "Raise Options.lm_max_tries or the damping."),
            LossIncreaseWarning, stacklevel=3)


@dataclass(repr=False)
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
        The returned step raised its own loss (the acceptance rule found no step that lowers
        it: a ``LossIncreaseWarning`` was issued; flag it in any claim that uses this audit).
    step_ratio : float
        ‖ΔÃ‖_F / ‖Ã₀‖_F.
    cg : CGResult
        The solve of the returned step's δ (its last residual is the true one).
    cg_converged : bool
        That solve reached ``options.cg_rtol`` (else a ``ConvergenceWarning`` was issued).
    cg_relative_residual : float
        ‖b − (H_GN + δI)d‖ / ‖b‖ of the returned step.
    damping : float
        The requested δ (``options.damping``).
    damping_accepted : float
        The δ of the returned step, eq. (audit-accept) (= ``damping`` unless the ``"lm"``
        rule raised it).
    step_length : float
        t of the returned step t·d (< 1 only under ``audit_step="backtrack"``).
    step_accepted : bool
        The returned step met the acceptance test L(θ₀ + t d) ≤ L(θ₀) + c t ∇Lᵀd.
    trials : list of dict
        Every tried (δ, t) in order: ``damping``, ``t``, ``loss``, ``slope`` (t ∇Lᵀd),
        ``accepted``, ``cg_iterations``, ``cg_relative_residual``, ``cg_converged``.
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
    damping_accepted: float | None = None
    step_length: float = 1.0
    step_accepted: bool | None = None
    trials: list = field(default_factory=list)

    def __post_init__(self):
        if self.damping_accepted is None:
            self.damping_accepted = self.damping
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
        if is_dask_array(X_t):
            return X_t, None  # Dask rows: the metric maps over their chunks (krepes_lib.distributed)
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
                                options=self.options, K_tm=K)

    def top_influential(self, X_t, K: int | None = None, v=None):
        """The K landmarks of largest IS per test point, eq. (int-is) (a TopK record)."""
        from .defaults import TOP_K
        from .interpret import top_influential

        Xt, Kt = self._args(X_t)
        return top_influential(self.kernel, self.landmarks, Xt, self.delta_A, K=TOP_K if K is None else K,
                               v=v, options=self.options, K_tm=Kt)

    def attracting_repelling(self, X_t, v, K: int | None = None):
        """K most attracting and repelling landmarks along a concept vector, eq. (int-concept)."""
        from .defaults import TOP_K
        from .interpret import top_attracting_repelling

        Xt, Kt = self._args(X_t)
        return top_attracting_repelling(self.kernel, self.landmarks, Xt, self.delta_A, v,
                                        K=TOP_K if K is None else K,
                                        options=self.options, K_tm=Kt)

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
                              A_repr=self.A, gamma=self.gamma, options=self.options,
                              K_tm=K, K_mm=self.K_mm)

    def confidence_drop(self, X_t, y_landmarks, y_t=None, target: str = "true", **kw):
        """k-NN confidence drop after removing the top vs random landmarks, eq. (int-drop)."""
        from .interpret import confidence_drop

        Xt, K = self._args(X_t)
        return confidence_drop(self.kernel, self.landmarks, Xt, self.delta_A, y_landmarks, y_t=y_t,
                               target=target, A_repr=self.A, gamma=self.gamma,
                               options=self.options, K_tm=K, K_mm=self.K_mm, **kw)

    def alignment_gap(self, X_t, X_t_raw, L_raw, feature: int, **kw):
        """Feature Alignment Gap of one raw feature, eqs. (int-feature), (int-gap)."""
        from .interpret import alignment_gap

        Xt, K = self._args(X_t)
        return alignment_gap(self.kernel, self.landmarks, Xt, self.delta_A, X_t_raw, L_raw,
                             feature=feature, options=self.options, K_tm=K, **kw)

    def spectral_entropy(self) -> float:
        """Normalised spectral entropy of (Ã₀ + ΔÃ)ᵀ(Ã₀ + ΔÃ), eq. (int-entropy)."""
        from .interpret import spectral_entropy

        return spectral_entropy(self.A)

    @property
    def cg_converged(self) -> bool:
        return bool(np.all(to_host(np.asarray(self.cg.converged))))

    @property
    def cg_relative_residual(self) -> float:
        return float(np.max(self.cg.relative_residuals))

    def influence_concentration(self, X_t, warn: bool = True) -> dict:
        """How sample-specific the influence is on X_t, eq. (int-concentration): the share of
        test rows whose top-1 landmark is the same one and the normalised entropy of the top-1
        distribution (:func:`krepes_lib.interpret.diagnostics.influence_concentration`); warns
        when degenerate (share ≥ 0.5 or entropy < 0.5)."""
        from .interpret.diagnostics import influence_concentration

        top = self.top_influential(X_t, K=1)
        out = influence_concentration(top.indices[:, 0], self.model.m, warn=warn)
        self._K["concentration"] = out
        return out

    def summary(self, X_t=None) -> dict:
        """Diagnostics for a claim row: losses, the loss_rose flag, requested and accepted δ,
        step size, CG (iterations, convergence, relative residual) — and, with test rows X_t
        (or after :meth:`influence_concentration`), how concentrated the top-1 influence is
        (``top1_share``, ``top1_entropy``, ``influence_degenerate``; warns when degenerate)."""
        out = {"loss_before": self.loss_before, "loss_after": self.loss_after,
               "loss_rose": self.loss_rose, "step_ratio": self.step_ratio, "damping": self.damping,
               "damping_accepted": self.damping_accepted, "step_length": self.step_length,
               "step_accepted": self.step_accepted, "audit_step": self.options.audit_step,
               "cg_iterations": int(self.cg.iterations), "cg_converged": self.cg_converged,
               "cg_relative_residual": self.cg_relative_residual,
               "seconds": self.seconds}
        conc = self.influence_concentration(X_t) if X_t is not None else self._K.get("concentration")
        if conc is not None:
            out.update(top1_share=conc["top1_share"], top1_landmark=conc["top1_landmark"],
                       top1_entropy=conc["top1_entropy"], top1_distinct=conc["top1_distinct"],
                       influence_degenerate=conc["degenerate"])
        return out

    # --- keeping an audit -------------------------------------------------------------------
    def __repr__(self):
        conv = "converged" if self.cg_converged else "not converged"
        extra = ""
        conc = self._K.get("concentration")
        if conc is not None:
            extra = (f", top-1 share={conc['top1_share']:.2f}"
                     f"{' (degenerate)' if conc['degenerate'] else ''}")
        return (f"Audit(loss={getattr(self.objective, 'name', self.objective)!r}, m={self.model.m}, "
                f"h={self.model.h}, kernel={self.kernel!r}, loss {self.loss_before:.4g} → "
                f"{self.loss_after:.4g}{' (rose)' if self.loss_rose else ''}, step_ratio={self.step_ratio:.3g}, "
                f"CG {int(self.cg.iterations)} iterations ({conv}), damping={self.damping:g}"
                f"{'' if self.damping_accepted == self.damping else f' (accepted {self.damping_accepted:g})'}"
                f"{extra})")

    def __reduce__(self):
        raise TypeError("an Audit holds its kernel (for a network, the torch module) and is not pickled; "
                        "keep it with audit.save(path) and read it back with krepes_lib.load_audit(path, "
                        "kernel=...).")

    def save(self, path) -> str:
        """Write the audit to ``path`` (.npz, atomically): ΔÃ, Δγ, Ã₀, γ₀, the landmarks and
        their row indices, K_mm, the CG record, and metadata — the loss, the model's
        fingerprint and the kernel's provenance (its repr, for a network the digest of its
        weights), with a SHA-256 of the arrays. :func:`load_audit` reads it back and refuses it
        for another model."""
        from .audit_io import save_audit

        return save_audit(self, path)

    def top_table(self, X_t, K: int | None = None, v=None, y_t=None, y_landmarks=None, classes=None,
                  path=None) -> list:
        """The top-K landmarks of every row of X_t as table rows (test_row, rank, landmark,
        train_row, score, ...); written as CSV to ``path`` when given."""
        from .interpret.export import topk_table

        top = self.top_influential(X_t, K=K, v=v)
        return topk_table(top, self.landmark_indices, y_t=y_t, y_landmarks=y_landmarks, classes=classes,
                          path=path)

    def plot_influence(self, X_t, image_shape, rows=(0,), K: int = 5, v=None, y_t=None, y_landmarks=None,
                       classes=None, path=None):
        """Image grid: each test image with its K most attracting and K most repelling
        landmarks (:func:`krepes_lib.interpret.export.influence_grid`)."""
        from .interpret.export import influence_grid

        return influence_grid(self, X_t, image_shape, rows=rows, K=K, v=v, y_t=y_t,
                              y_landmarks=y_landmarks, classes=classes, path=path)
