"""The optimisers of the one ``fit`` loop: Adam, SGD and GGN-Newton-CG.

Book: *Theory* (``book/theory.md``), sections "Training" and "Second-order steps"
(eqs. (newton-step), (precond)); spec §4.

Interface: ``step(problem, params) -> value``. ``problem`` is the
:class:`~krepes_lib.problem.BatchProblem` of the batch (value, gradient, Gauss–Newton
products, line-search values), ``params`` the dict of every trainable array (the model's and
the loss's own), updated in place; the return value is the batch objective *before* the
step. ``state_dict`` / ``load_state_dict`` make a step rule resumable from a checkpoint.
No optimiser names a loss.
"""
from __future__ import annotations

import numpy as np

from .backend import get_xp, to_device
from .curvature import GGNOperator, newton_direction
from .options import Options, resolve_options

__all__ = ["Adam", "SGD", "NewtonCG", "make_optimizer"]


def _zeros_like(a):
    return get_xp(a).zeros_like(a)


class _FirstOrder:
    """Shared by Adam and SGD: gradient, optional preconditioner, update."""

    def __init__(self, params: dict, options: Options, preconditioner=None):
        self.options = options
        self.preconditioner = preconditioner
        self.t = 0

    def step(self, problem, params: dict):
        val, grads = problem.value_and_grad()
        if self.preconditioner is not None:
            grads = self.preconditioner.apply(problem, grads)
        self.update(params, grads)
        return val

    def state_dict(self) -> dict:
        return {"t": np.asarray(self.t)}

    def load_state_dict(self, state: dict):
        self.t = int(state["t"])


class Adam(_FirstOrder):
    """Adam (Kingma & Ba), PyTorch's update rule, in the arrays' namespace (spec §4).

    m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², θ ← θ − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε),
    with lr, β, ε from :class:`~krepes_lib.options.Options`.
    """

    name = "adam"

    def __init__(self, params: dict, options: Options | None = None, preconditioner=None):
        super().__init__(params, resolve_options(options), preconditioner)
        self.m = {k: _zeros_like(v) for k, v in params.items()}
        self.v = {k: _zeros_like(v) for k, v in params.items()}

    def update(self, params: dict, grads: dict):
        o = self.options
        self.t += 1
        b1, b2 = o.betas
        step_size = o.lr / (1.0 - b1**self.t)
        root_bc2 = np.sqrt(1.0 - b2**self.t)
        for k, g in grads.items():
            m, v, p = self.m[k], self.v[k], params[k]
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            denom = get_xp(p).sqrt(v)
            denom /= root_bc2
            denom += o.adam_eps
            p -= step_size * (m / denom)

    def state_dict(self) -> dict:
        out = super().state_dict()
        out.update({f"m/{k}": a for k, a in self.m.items()})
        out.update({f"v/{k}": a for k, a in self.v.items()})
        return out

    def load_state_dict(self, state: dict):
        super().load_state_dict(state)
        for name, store in (("m", self.m), ("v", self.v)):
            for k, cur in store.items():
                cur[...] = to_device(state[f"{name}/{k}"], get_xp(cur), dtype=cur.dtype)


class SGD(_FirstOrder):
    """Plain gradient descent θ ← θ − lr·g (a baseline)."""

    name = "sgd"

    def __init__(self, params: dict, options: Options | None = None, preconditioner=None):
        super().__init__(params, resolve_options(options), preconditioner)

    def update(self, params: dict, grads: dict):
        self.t += 1
        for k, g in grads.items():
            params[k] -= self.options.lr * g


class NewtonCG:
    """GGN-Newton-CG with a backtracking (Armijo) line search, spec §4.

    Per batch: the gradient g of every trainable array, d = −(H_GN + δI)⁻¹ g by CG
    (eq. (newton-step); δ = ``options.damping``, CG settings from ``options``, optionally
    preconditioned), then the largest t ∈ {1, ½, ¼, …} (at most ``max_halvings`` halvings)
    with L(θ + t d) ≤ L(θ) + c t gᵀd, c = ``options.armijo``. Each trial costs one loss
    evaluation at F + t K d (the model is linear in θ): no kernel block and no backward pass.
    When no t passes, the parameters are left unchanged (counted in ``rejected``).
    """

    name = "newton_cg"

    def __init__(self, params: dict, options: Options | None = None, preconditioner=None):
        self.options = resolve_options(options)
        self.preconditioner = preconditioner
        self.t = 0
        self.rejected = 0
        self.n_matvec = 0

    def step(self, problem, params: dict):
        o = self.options
        op = GGNOperator([problem], damping=o.damping)
        f0, g = problem.value_and_grad()
        d, _ = newton_direction(op, g, o, preconditioner=self.preconditioner)
        self.n_matvec += op.n_matvec
        slope = float(sum(float((g[k] * d[k]).sum()) for k in op.keys))
        f0f = float(f0)
        t = 1.0
        for _ in range(int(o.max_halvings) + 1):
            f1 = float(problem.value_at(d, t))
            if np.isfinite(f1) and f1 <= f0f + o.armijo * t * slope:
                for k in op.keys:
                    params[k] += (t * d[k]).astype(params[k].dtype, copy=False)
                break
            t *= 0.5
        else:
            self.rejected += 1
        self.t += 1
        return f0

    def state_dict(self) -> dict:
        return {"t": np.asarray(self.t), "rejected": np.asarray(self.rejected)}

    def load_state_dict(self, state: dict):
        self.t = int(state["t"])
        self.rejected = int(state.get("rejected", 0))


_OPTIMIZERS = {cls.name: cls for cls in (Adam, SGD, NewtonCG)}


def make_optimizer(params: dict, options: Options, preconditioner=None):
    """The step rule ``options.optimizer`` for ``params``."""
    return _OPTIMIZERS[options.optimizer](params, options, preconditioner)
