"""Gauss–Newton curvature over several batches, Newton directions by CG, preconditioners.

Book: *Theory* (``book/theory.md``), section "Second-order steps", equations (ggn-lift),
(newton-step), (audit-step) and (precond); *Derivations* §Gauss–Newton products; spec §4.

:class:`GGNOperator` is H_GN + δI of the mean objective over a list of
:class:`~krepes_lib.problem.BatchProblem` s,

    H_GN v = mean over batches of Jᵀ Q J v  (+ the exact curvature of an RKHS penalty),
    eq. (ggn-lift),

acting on dicts of arrays over chosen keys: the audit uses the model's main parameter and
γ (the v3 step explains the landmark coefficients: the loss's own arrays stay fixed), a
Newton-CG training step uses every trainable array. :func:`newton_direction` solves
(H_GN + δI) d = −g by matrix-free CG (eq. (newton-step)).

Preconditioners share one interface, :class:`Preconditioner` —
``apply(problem, V) -> dict`` — so that Adam (``fit(..., preconditioner=...)``) and the
CG of a Newton step or of the audit accept the same objects:

* :class:`FalkonPrecond`: P = (K_mn K_nm / n + λ K_mm)⁻¹ of eq. (precond) on the Ã block
  (loss-agnostic, O(m²) memory; raw coordinates);
* :class:`GGNPrecond`: (H_GN + δI)⁻¹ of the current batch by a few CG iterations (for
  first-order optimisers: Adam then follows an approximate Newton direction).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .cg import CGResult, conjugate_gradient, conjugate_gradient_shifted, true_residual
from .options import Options, resolve_options

__all__ = ["GGNOperator", "newton_direction", "damped_directions", "Preconditioner", "FalkonPrecond",
           "GGNPrecond", "hvp_cost_ratio"]


class GGNOperator:
    """H_GN + δI of the mean objective over batch problems, eq. (ggn-lift).

    Parameters
    ----------
    problems : sequence of BatchProblem, or a callable returning an iterable of them
        One per batch, all for the same model, objective and state. A **callable** makes the
        operator *streamed*: every gradient, product and line-search value calls it again for a
        fresh pass (views regenerated, kernel blocks recomputed, nothing per batch kept), so
        memory stays O(B(m + d) + mh) for any number of batches.
    damping : float
        δ ≥ 0.
    keys : tuple of str, optional
        The blocks of the system (default: every trainable array of the problems).

    The mean over batches is weighted by their rows (equal batches: the plain mean).
    """

    def __init__(self, problems, damping: float = 0.0, keys=None):
        if callable(problems):
            self._source, self.problems = problems, None
            p0 = next(iter(problems()), None)
        else:
            self._source, self.problems = None, list(problems)
            p0 = self.problems[0] if self.problems else None
        if p0 is None:
            raise ValueError("GGNOperator needs at least one batch problem.")
        if not damping >= 0:
            raise ValueError(f"damping={damping} must be >= 0.")
        self.model, self.xp = p0.model, p0.xp
        self._p0_state = p0.state
        self.keys = tuple(p0.keys if keys is None else keys)
        unknown = sorted(set(self.keys) - set(p0.keys))
        if unknown:
            raise ValueError(f"keys {unknown} are not trainable arrays here; choose from {p0.keys}.")
        self.damping = float(damping)
        self._shapes = {k: self._array(k).shape for k in self.keys}
        self.first = p0
        self.n_matvec = 0

    @property
    def streamed(self) -> bool:
        return self._source is not None

    def _iter(self):
        return iter(self._source()) if self._source is not None else iter(self.problems)

    def _array(self, k):
        return self.model.params[k] if k in self.model.params else self._p0_state.params[k]

    def _mean(self, per_batch):
        """Row-weighted mean over a pass of ``per_batch(problem) -> dict or float``."""
        total, rows = None, 0
        for p in self._iter():
            b = p.batch.B
            u = per_batch(p)
            if isinstance(u, dict):
                total = {k: b * v for k, v in u.items()} if total is None else \
                    {k: total[k] + b * u[k] for k in u}
            else:
                total = b * u if total is None else total + b * u
            rows += b
        return {k: v / rows for k, v in total.items()} if isinstance(total, dict) else total / rows

    def gradient(self):
        """Mean objective over the batches and its gradient on :attr:`keys`."""
        vals = []

        def one(p):
            val, g = p.value_and_grad()
            vals.append((p.batch.B, float(val)))
            return {k: g[k] for k in self.keys}

        grads = self._mean(one)
        rows = sum(b for b, _ in vals)
        return sum(b * v for b, v in vals) / rows, grads

    def value_at(self, V: dict, t: float) -> float:
        """Mean objective at θ + tV (no kernel evaluation for kept problems: BatchProblem.value_at)."""
        return float(self._mean(lambda p: float(p.value_at(V, t))))

    def matvec(self, V: dict) -> dict:
        """(H_GN + δI) V."""
        out = self._mean(lambda p: p.ggn_matvec(V, self.keys))
        if self.damping:
            for k in self.keys:
                out[k] = out[k] + self.damping * V[k]
        self.n_matvec += 1
        return out

    # --- flattening for CG --------------------------------------------------------------
    def flatten(self, V: dict):
        return self.xp.concatenate([V[k].reshape(-1) for k in self.keys])

    def unflatten(self, v) -> dict:
        out, i = {}, 0
        for k in self.keys:
            shape = self._shapes[k]
            size = int(np.prod(shape))
            out[k] = v[i:i + size].reshape(shape)
            i += size
        return out

    def flat_matvec(self, v):
        return self.flatten(self.matvec(self.unflatten(v)))


def newton_direction(op: GGNOperator, grads: dict, options: Options | None = None,
                     preconditioner=None, callback: Callable | None = None,
                     x0: dict | None = None) -> tuple[dict, CGResult]:
    """d = −(H_GN + δI)⁻¹ g by matrix-free (preconditioned) CG, eq. (newton-step).

    ``options`` gives ``cg_rtol``, ``cg_max_iter``, ``cg_refresh_every`` (δ is the
    operator's). ``preconditioner`` is a :class:`Preconditioner` (applied to the operator's
    keys; blocks it does not act on pass unchanged). ``x0``: a starting direction (warm start).
    """
    opts = resolve_options(options)
    b = -op.flatten({k: grads[k] for k in op.keys})
    precond = None
    if preconditioner is not None:
        p0 = op.first

        def precond(v):
            V = op.unflatten(v)
            return op.flatten({**V, **{k: u for k, u in preconditioner.apply(p0, V).items()
                                       if k in op.keys}})
    res = conjugate_gradient(op.flat_matvec, b, rtol=opts.cg_rtol, max_iter=opts.cg_max_iter,
                             refresh_every=opts.cg_refresh_every, callback=callback,
                             precond=precond, x0=None if x0 is None else op.flatten(x0))
    return op.unflatten(res.x), res


def damped_directions(op: GGNOperator, grads: dict, dampings, options: Options | None = None,
                      preconditioner=None):
    """Yield ``(δ_j, d_j, CGResult_j)`` with d_j = −(H_GN + δ_j I)⁻¹ g for increasing δ_j,
    eq. (newton-step) — the candidates of the Levenberg–Marquardt rule, eq. (audit-accept).

    Without a preconditioner all of them come from **one** multi-shift CG run on the smallest
    δ (eq. (cg-shift), :func:`krepes_lib.cg.conjugate_gradient_shifted`): the larger dampings
    cost two vector updates per iteration and no product. With a preconditioner (not
    shift-invariant) each δ_j is a preconditioned solve warm-started from d_{j−1}. Either way
    each yielded result's last residual is the **true** ‖b − (H_GN + δ_j I) d_j‖ (checked when
    its solve converged, else computed when it is yielded: one product) and ``converged`` is
    decided on it. The operator's own damping must not
    exceed min δ_j (it is the base of the shifts); it is restored afterwards.

    A generator: a caller that stops at the first acceptable δ_j pays no verification for
    the others.
    """
    opts = resolve_options(options)
    dampings = [float(d) for d in dampings]
    if sorted(dampings) != dampings or dampings[0] < op.damping:
        raise ValueError(f"dampings={dampings} must increase and start at or above the operator's "
                         f"damping {op.damping:g}.")
    g = {k: grads[k] for k in op.keys}
    if preconditioner is None:
        b = -op.flatten(g)
        base = op.damping
        results = conjugate_gradient_shifted(op.flat_matvec, b, [d - base for d in dampings],
                                             rtol=opts.cg_rtol, max_iter=opts.cg_max_iter,
                                             refresh_every=opts.cg_refresh_every, verify=False)
        for j, (delta, res) in enumerate(zip(dampings, results)):
            if j > 0 or not res.converged[0]:  # the smallest shift's convergence was checked already
                r = true_residual(op.flat_matvec, b, res.x, delta - base)
                res.residual_norms[-1, 0] = r
                res.converged = np.asarray([r <= opts.cg_rtol * float(res.rhs_norms[0])])
            yield delta, op.unflatten(res.x), res
        return
    base, prev = op.damping, None
    try:
        for delta in dampings:
            op.damping = delta
            d, res = newton_direction(op, g, opts, preconditioner=preconditioner, x0=prev)
            prev = d
            yield delta, d, res
    finally:
        op.damping = base


# ---------------------------------------------------------------------------------------
# preconditioners
# ---------------------------------------------------------------------------------------
class Preconditioner:
    """Interface: ``apply(problem, V) -> dict`` maps a gradient-like dict to P V.

    ``problem`` is the :class:`~krepes_lib.problem.BatchProblem` of the current batch (it
    gives the model, the objective and the batch); keys the preconditioner does not act on
    are returned unchanged.
    """

    def apply(self, problem, V: dict) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError


class FalkonPrecond(Preconditioner):
    """P = (K_mn K_nm / n + λ K_mm)⁻¹ on the Ã block, eq. (precond); γ and aux unchanged.

    Parameters
    ----------
    falkon : krepes_lib.preconditioner.FalkonPreconditioner
        Built once on the training data (``FalkonPreconditioner.from_nystrom(nys, X, lam)``).

    The model must train in raw coordinates (P acts on Ã).
    """

    def __init__(self, falkon):
        self.falkon = falkon

    def apply(self, problem, V: dict) -> dict:
        model = problem.model
        if model._main != "A_tilde":
            raise ValueError("FalkonPrecond acts on Ã: build the model with coords='raw'.")
        out = dict(V)
        out["A_tilde"] = self.falkon.apply(V["A_tilde"]).astype(model.dtype, copy=False)
        return out

    def __repr__(self):
        return f"FalkonPrecond({self.falkon!r})"


class GGNPrecond(Preconditioner):
    """(H_GN + δI)⁻¹ of the current batch, by CG (``options``: damping, cg_rtol, cg_max_iter).

    For first-order optimisers (spec §4: "GGN-CG directions ... used to precondition Adam"):
    Adam then sees the approximate Newton direction instead of the gradient. Acts on every
    trainable array of the batch problem.
    """

    def __init__(self, options: Options | None = None, **overrides):
        self.options = resolve_options(options, **overrides)
        self.n_matvec = 0

    def apply(self, problem, V: dict) -> dict:
        op = GGNOperator([problem], damping=self.options.damping)
        d, _ = newton_direction(op, {k: -V[k] for k in op.keys}, self.options)
        self.n_matvec += op.n_matvec
        out = dict(V)
        out.update(d)
        return out

    def __repr__(self):
        return f"GGNPrecond(damping={self.options.damping:g}, cg_max_iter={self.options.cg_max_iter})"


def hvp_cost_ratio(problem, repeats: int = 5) -> dict:
    """Seconds of one gradient and of one lifted GGN product on the same batch (same run).

    The gradient is recomputed from a fresh :class:`~krepes_lib.problem.BatchProblem` (kernel
    block included, as in a training step); the product reuses the problem's kernel block, as
    inside CG. Returns ``{"grad_s", "hvp_s", "ratio"}`` (best of ``repeats``).
    """
    from .timing import best_of
    from .problem import BatchProblem

    p = problem

    def grad():
        BatchProblem(p.model, p.objective, p.state, p.batch.views, p.memory_budget).value_and_grad()

    _, g = p.value_and_grad()
    t_grad = best_of(grad, p.xp, repeats, warmup=True)
    t_hvp = best_of(lambda: p.ggn_matvec(g), p.xp, repeats, warmup=True)
    return {"grad_s": t_grad, "hvp_s": t_hvp, "ratio": t_hvp / t_grad}
