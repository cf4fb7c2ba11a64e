"""The library calls the benchmark suite times, in one place (re-point here when the API moves).

Every function takes plain arrays / models and returns what the suite needs; nothing here
times anything. The library side is ``krepes_lib`` as importable from ``sys.path``.
"""
from __future__ import annotations

import warnings

import numpy as np

import krepes_lib as kr
from krepes_lib.curvature import GGNOperator, newton_direction
from krepes_lib.losses import make_objective
from krepes_lib.options import Options
from krepes_lib.problem import BatchProblem


def rbf_nystrom(L, sigma, dtype="float32"):
    """A Nyström basis of the RBF kernel on landmark points L."""
    return kr.Nystrom(kr.RBF(sigma=float(sigma)), L, dtype=dtype)


def model(nys, h, coords="raw"):
    """The PC-initialised model f(x) = Ãᵀk_x + γ."""
    return kr.NystromModel(nys, h=h, coords=coords)


def fresh_model(nys, h, coords="raw"):
    return model(nys, h, coords)


def epoch(mdl, X, loss, B, augment, seed=0, lr=1e-3):
    """One training epoch of Adam (``fit``); returns the mean batch loss."""
    hist = kr.fit(mdl, X, loss, epochs=1, batch_size=B, seed=seed, augment=augment,
                  options=Options(lr=lr), progress=False)
    return hist.loss[0]


def epoch_plan(n, B, seed=0):
    """The permutation and RNG state ``fit`` uses for epoch 0 (so a twin sees the same batches)."""
    rng = np.random.default_rng([int(seed), 0])
    return rng, rng.permutation(n)


def adam_hyper():
    o = Options()
    return dict(lr=o.lr, betas=tuple(o.betas), eps=o.adam_eps)


def problem(mdl, loss, views, budget=None):
    """One batch problem: the kernel block, F = K Ã + 1γᵀ (the gradient is computed on demand)."""
    obj = make_objective(loss)
    state = obj.init_state(mdl)
    return BatchProblem(mdl, obj, state, views, budget or Options().memory_budget)


def gradient(mdl, loss, views):
    """One gradient as training computes it: kernel block, forward, loss, backward."""
    return problem(mdl, loss, views).value_and_grad()


def ggn_operator(prob, damping):
    """(H_GN + δI) over one batch problem (kernel block cached), on (Ã or W, γ)."""
    return GGNOperator([prob], damping=damping, keys=(prob.model._main, "gamma"))


def ggn_matvec(op, V):
    return op.matvec(V)


def cg_solve(op, g, k):
    """k CG iterations (rtol 1e-30: no early stop) on (H_GN + δI) d = −g."""
    d, res = newton_direction(op, g, Options(cg_rtol=1e-30, cg_max_iter=int(k)))
    return d, res


def view_batches(X, n_batches, B, augment, seed=0):
    return kr.view_batches(X, n_batches, B, views=2, augment=augment, seed=seed)


def audit(mdl, loss, batches, damping, cg_max_iter=None):
    """The one-step audit end to end on given batches; returns (ΔÃ, Δγ, CG iterations, loss after)."""
    # the unguarded step (the twin takes it too); the capped CG's ConvergenceWarning is expected here
    opts = Options(damping=damping, audit_step="full") if cg_max_iter is None else \
        Options(damping=damping, cg_max_iter=cg_max_iter, audit_step="full")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kr.KrepesWarning)
        a = kr.audit(mdl, loss, None, batches=batches, damping=damping, options=opts)
    return a.delta_A, a.delta_gamma, int(a.cg.iterations), float(a.loss_after)


def features(nys, X):
    """The Nyström feature map Φ = K_Xm U_r Λ_r^{-1/2}, streamed over row blocks."""
    return nys.feature_map(X)


def kmeanspp(X, m, seed=0):
    """k-means++ landmark indices (input-space distances)."""
    return kr.select_landmarks(X, m, method="kmeans++", seed=seed).indices
