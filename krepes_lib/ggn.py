"""Gauss–Newton curvature lifted through the model, Newton-CG steps and preconditioned Adam.

Book: *Theory* (``book/theory.md``), section "Second-order steps", equations (ggn-lift),
(newton-step) and (audit-step); the per-loss products are in *Derivations* §Gauss–Newton
products; spec §4.

For a batch of two views with kernel blocks K_a, K_b (B×m), the model gives
Z_a = K_a Ã + 1γᵀ, Z_b = K_b Ã + 1γᵀ. For a direction v = (V_Ã, v_γ) (or (V_W, v_γ) in
whitened coordinates, V_Ã = T V_W) the lifted GGN product is, eq. (ggn-lift),

    J v      = (K_a V_Ã + 1v_γᵀ, K_b V_Ã + 1v_γᵀ)                       (jvp, the model's forward)
    (U_a, U_b) = loss.ggn_matvec(Z_a, Z_b, J v)                          (Q J v, hand-derived)
    Jᵀ U     = (K_aᵀU_a + K_bᵀU_b, 1ᵀ(U_a + U_b))                       (vjp, the model's backward)
    H_GN v   = mean over batches of Jᵀ Q J v  + 2λ_rkhs K_mm V_Ã  + δ v,

with δ the damping and λ_rkhs the model penalty of the simple contrastive loss (exact
curvature of a quadratic). No matrix of size (mh)² is formed; kernel blocks are kept when
they fit the memory budget and recomputed otherwise.

The operator acts on the main parameter (Ã or W) and γ; auxiliary parameters (the BYOL
predictor P, the KAE decoder B) are held fixed — their directions are zero — which is the
setting of the v3 audit, where only the landmark coefficients are explained.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .backend import get_xp, to_host
from .cg import CGResult, conjugate_gradient
from .defaults import BLOCK_BYTES, CG, LOSS_HYPER
from .kernels import block_rows
from .model import NystromModel
from .train import SINGLE_VIEW, History, _loss_kind, _resolve_augment, _resolve_loss, train_step

__all__ = ["GGNOperator", "newton_direction", "one_step_newton", "AuditResult", "fit_newton_cg",
           "FalkonGradTransform", "GGNGradTransform", "hvp_cost_ratio"]


class GGNOperator:
    """H_GN + δI of the mean batch loss at the model's current parameters, eq. (ggn-lift).

    Parameters
    ----------
    model : NystromModel
    loss : loss object (any of the eight; see :mod:`krepes_lib.losses`)
    batches : sequence of tuples of arrays
        ``(Xa, Xb)`` view pairs (two-view losses, BYOL) or ``(X,)`` (KPCA, KAE), each (B, d).
    damping : float
        δ ≥ 0 added as δI.
    memory_budget : int
        Bytes for the cached kernel blocks of all batches together; above it the blocks are
        recomputed at every product.

    Notes
    -----
    Vectors are dicts with the model's main key (``"A_tilde"`` or ``"W"``) and ``"gamma"``;
    :meth:`flatten` / :meth:`unflatten` map them to 1-D arrays for conjugate gradient.
    """

    def __init__(self, model: NystromModel, loss, batches: Sequence, damping: float = 0.0,
                 memory_budget: int = BLOCK_BYTES):
        if damping < 0:
            raise ValueError(f"damping={damping} must be >= 0.")
        if not batches:
            raise ValueError("batches must hold at least one batch of views.")
        self.model, self.loss = model, _resolve_loss(loss)
        self.kind = _loss_kind(self.loss)
        self.damping = float(damping)
        self.xp = model.xp
        self.keys = (model._main, "gamma")
        self.batches = [tuple(v.astype(model.dtype, copy=False) for v in b) for b in batches]
        if self.kind == "byol" and model.target is None:
            raise ValueError("loss 'byol' needs the predictor and the EMA target: build the model "
                             "with NystromModel(..., predictor=True).")
        if self.kind == "kae" and "B_dec" not in model.params:
            raise ValueError("loss 'kae' needs the decoder: build the model with NystromModel(..., decoder=True).")
        self.lam_rkhs = float(getattr(self.loss, "rkhs_penalty", 0.0) or 0.0)
        m = model.m
        total = sum(sum(v.shape[0] for v in b) for b in self.batches) * m * np.dtype(model.dtype).itemsize
        self._cache = total <= memory_budget
        self._K = [self._kernel(b) for b in self.batches] if self._cache else None
        # linearisation points: Z (and the BYOL targets) per batch, fixed for the operator's life
        self._Z = [self._embed(i) for i in range(len(self.batches))]
        self.n_matvec = 0

    # --- pieces ---------------------------------------------------------------------
    def _kernel(self, views):
        X = self.xp.concatenate(views) if len(views) > 1 else views[0]
        return self.model.nystrom.kernel(X, self.model.nystrom.landmarks, dtype=self.model.dtype)

    def _K_of(self, i):
        return self._K[i] if self._cache else self._kernel(self.batches[i])

    def _embed(self, i):
        K = self._K_of(i)
        out = {"F": self.model.forward(K)}
        if self.kind == "byol":
            out["T"] = self.model.forward(K, self.model.target["A_tilde"], self.model.target["gamma"])
        return out

    def _A_of(self, V):
        main = V[self.model._main]
        return main if self.model.T is None else self.model.T @ main

    # --- the product --------------------------------------------------------------------
    def matvec(self, V: dict) -> dict:
        """(H_GN + δI) V for a direction dict V (main parameter and gamma)."""
        xp, model, loss = self.xp, self.model, self.loss
        VA = self._A_of(V)
        out = {k: xp.zeros_like(V[k]) for k in self.keys}
        nb = len(self.batches)
        for i in range(nb):
            K = self._K_of(i)
            F = self._Z[i]["F"]
            VF = model.forward(K, A_tilde=VA, gamma=V["gamma"])
            dA_extra = None
            if self.kind == "kpca":
                UF, dA_extra = loss.ggn_matvec(F, model.A_tilde, model.nystrom.K_mm, VF, VA)
            elif self.kind == "kae":
                Bd = model.params["B_dec"]
                kd = model.nystrom.kernel.diag(self.batches[i][0], dtype=model.dtype)
                UF, _ = loss.ggn_matvec(F, K, kd, Bd, model.nystrom.K_mm, VF, xp.zeros_like(Bd))
            else:
                B = F.shape[0] // 2
                if self.kind == "byol":
                    T, P = self._Z[i]["T"], model.params["P"]
                    Ua, Ub, _ = loss.ggn_matvec(F[:B], F[B:], T[:B], T[B:], P, VF[:B], VF[B:],
                                                xp.zeros_like(P))
                else:
                    Ua, Ub = loss.ggn_matvec(F[:B], F[B:], VF[:B], VF[B:])
                UF = xp.concatenate([Ua, Ub])
            g = model.backward(K, UF.astype(model.dtype, copy=False), dA_extra)
            for k in self.keys:
                out[k] += g[k] / nb
        if self.lam_rkhs > 0:
            out[model._main] += model.grad_from_A((2.0 * self.lam_rkhs) * (model.nystrom.K_mm @ VA))
        if self.damping:
            for k in self.keys:
                out[k] += self.damping * V[k]
        self.n_matvec += 1
        return out

    def gradient(self) -> tuple[float, dict]:
        """Mean batch loss and its gradient (main parameter and gamma) at the current parameters."""
        total, grads = 0.0, None
        for b in self.batches:
            val, g = train_step(self.model, self.loss, b, memory_budget=BLOCK_BYTES)
            total += float(val)
            g = {k: g[k] for k in self.keys}
            grads = g if grads is None else {k: grads[k] + g[k] for k in self.keys}
        nb = len(self.batches)
        return total / nb, {k: v / nb for k, v in grads.items()}

    # --- flattening for CG --------------------------------------------------------------
    def flatten(self, V: dict):
        return self.xp.concatenate([V[k].reshape(-1) for k in self.keys])

    def unflatten(self, v) -> dict:
        out, i = {}, 0
        for k in self.keys:
            shape = self.model.params[k].shape
            size = int(np.prod(shape))
            out[k] = v[i:i + size].reshape(shape)
            i += size
        return out

    def flat_matvec(self, v):
        return self.flatten(self.matvec(self.unflatten(v)))


def newton_direction(op: GGNOperator, grads: dict, rtol: float = CG["rtol"],
                     max_iter: int = CG["max_iter"], callback: Callable | None = None,
                     precond: Callable | None = None) -> tuple[dict, CGResult]:
    """d = −(H_GN + δI)⁻¹ g by matrix-free conjugate gradient, eq. (newton-step)."""
    b = -op.flatten(grads)
    res = conjugate_gradient(op.flat_matvec, b, rtol=rtol, max_iter=max_iter, callback=callback,
                             precond=precond)
    return op.unflatten(res.x), res


@dataclass
class AuditResult:
    """The one-step GGN-Newton audit (spec §4, v3): vec(ΔÃ) = −H_GN⁻¹ vec(∇_Ã L(Ã₀)).

    Attributes
    ----------
    delta_A : array (m, h)
        ΔÃ in raw coordinates (whatever coordinates the model trains in).
    delta_gamma : array (h,)
    loss_before, loss_after : float
        Mean batch loss at Ã₀ and at Ã₀ + ΔÃ (same views).
    grad_norm : float
        ‖∇L(Ã₀)‖ over the main parameter and γ.
    cg : CGResult
    seconds : float
    """

    delta_A: object
    delta_gamma: object
    loss_before: float
    loss_after: float
    grad_norm: float
    cg: CGResult
    seconds: float
    n_matvec: int = 0


def one_step_newton(model: NystromModel, loss, batches: Sequence, damping: float = 1e-3,
                    rtol: float = CG["rtol"], max_iter: int = CG["max_iter"],
                    memory_budget: int = BLOCK_BYTES, apply: bool = False) -> AuditResult:
    """One GGN-Newton step from the model's current parameters (the PC initialisation in the
    v3 audit), eq. (audit-step): ΔÃ = −(H_GN + δI)⁻¹ ∇_Ã L, solved by CG.

    With ``apply=True`` the step is added to the model; otherwise the model is unchanged.
    The step is coordinate-free up to the damping (δI in Ã vs in W coordinates).
    """
    t0 = time.perf_counter()
    op = GGNOperator(model, loss, batches, damping=damping, memory_budget=memory_budget)
    before, g = op.gradient()
    d, res = newton_direction(op, g, rtol=rtol, max_iter=max_iter)
    main = model._main
    old = {k: model.params[k].copy() for k in op.keys}
    for k in op.keys:
        model.params[k] += d[k].astype(model.dtype, copy=False)
    after, _ = op.gradient()
    dA = op._A_of(d)
    if not apply:
        for k in op.keys:
            model.params[k][...] = old[k]
    xp = model.xp
    gnorm = float(xp.sqrt(sum((g[k] ** 2).sum() for k in op.keys)))
    return AuditResult(delta_A=dA, delta_gamma=d["gamma"], loss_before=before, loss_after=after,
                       grad_norm=gnorm, cg=res, seconds=time.perf_counter() - t0,
                       n_matvec=op.n_matvec)


def fit_newton_cg(model: NystromModel, X, loss, epochs: int, batch_size: int, seed: int = 0,
                  damping: float = 1e-2, cg_max_iter: int = 20, cg_rtol: float = 1e-3,
                  augment="auto", eval_fn: Callable | None = None, armijo: float = 1e-4,
                  max_halvings: int = 10, progress: bool = True,
                  memory_budget: int = BLOCK_BYTES) -> History:
    """Train with GGN-Newton-CG steps and a backtracking (Armijo) line search, spec §4.

    Per batch: gradient g and GGN operator on the batch's views, d = −(H_GN + δI)⁻¹ g by a
    few CG iterations (warm-started at zero), then the largest t ∈ {1, ½, ¼, …} with
    L(θ + t d) ≤ L(θ) + c t gᵀd on the same views (c = ``armijo``). Auxiliary parameters
    (BYOL predictor, KAE decoder) are not supported here: use Adam (``train.fit``) for
    those losses. Epoch streams are seeded like ``train.fit`` (``default_rng([seed, epoch])``).
    """
    loss = _resolve_loss(loss)
    kind = _loss_kind(loss)
    if kind in ("byol", "kae"):
        raise ValueError(f"fit_newton_cg: loss {kind!r} has auxiliary parameters; train it with "
                         "krepes_lib.train.fit (Adam), or use GGNGradTransform to precondition Adam.")
    xp = model.xp
    X = xp.asarray(X).astype(model.dtype, copy=False)
    aug = _resolve_augment(augment, kind)
    n = int(X.shape[0])
    B = int(min(batch_size, n))
    n_batches = n // B
    hist = History()
    from tqdm.auto import tqdm

    bar = tqdm(total=epochs * n_batches, disable=not progress, desc="newton-cg", unit="batch",
               leave=False)
    try:
        for epoch in range(int(epochs)):
            rng = np.random.default_rng([int(seed), epoch])
            perm = rng.permutation(n)
            t0 = time.perf_counter()
            values = []
            for bi in range(n_batches):
                Xb = X[xp.asarray(perm[bi * B:(bi + 1) * B])]
                views = (aug(Xb, rng),) if kind in SINGLE_VIEW else (aug(Xb, rng), aug(Xb, rng))
                op = GGNOperator(model, loss, [views], damping=damping, memory_budget=memory_budget)
                f0, g = op.gradient()
                d, _ = newton_direction(op, g, rtol=cg_rtol, max_iter=cg_max_iter)
                slope = float(sum((g[k] * d[k]).sum() for k in op.keys))
                old = {k: model.params[k].copy() for k in op.keys}
                t = 1.0
                for _ in range(max_halvings + 1):
                    for k in op.keys:
                        model.params[k][...] = old[k] + t * d[k]
                    f1, _ = op.gradient()
                    if np.isfinite(f1) and f1 <= f0 + armijo * t * slope:
                        break
                    t *= 0.5
                else:  # no decrease found: keep the old parameters
                    for k in op.keys:
                        model.params[k][...] = old[k]
                values.append(f0)  # the batch loss before the step, as train.fit logs it
                bar.update(1)
            hist.epoch.append(epoch + 1)
            hist.loss.append(float(np.mean(values)))
            hist.time.append(time.perf_counter() - t0)
            t1 = time.perf_counter()
            hist.probe.append(float(eval_fn(model)) if eval_fn is not None else float("nan"))
            hist.eval_time.append(time.perf_counter() - t1)
    finally:
        bar.close()
    return hist


@dataclass
class FalkonGradTransform:
    """Precondition the Ã-gradient with P = (K_mnK_nm/n + λK_mm)⁻¹ (eq. precond) before Adam.

    For ``train.fit(..., grad_transform=...)`` with a model in raw coordinates: the main
    gradient G (m, h) becomes P G (shared by the h columns); γ is unchanged.
    """

    precond: object  # krepes_lib.preconditioner.FalkonPreconditioner

    def __call__(self, model, loss, views, grads):
        if model._main != "A_tilde":
            raise ValueError("FalkonGradTransform preconditions Ã: build the model with coords='raw'.")
        grads = dict(grads)
        grads["A_tilde"] = self.precond.apply(grads["A_tilde"]).astype(model.dtype, copy=False)
        return grads


@dataclass
class GGNGradTransform:
    """Precondition the gradient with (H_GN + δI)⁻¹ of the current batch (a few CG steps).

    For ``train.fit(..., grad_transform=...)``: Adam then sees the approximate Newton
    direction −d instead of g (spec §4, "GGN-CG directions ... used to precondition Adam").
    """

    damping: float = 1e-2
    cg_max_iter: int = 10
    cg_rtol: float = 1e-2
    memory_budget: int = BLOCK_BYTES
    n_matvec: int = field(default=0, init=False)

    def __call__(self, model, loss, views, grads):
        op = GGNOperator(model, loss, [views], damping=self.damping, memory_budget=self.memory_budget)
        g = {k: grads[k] for k in op.keys}
        d, _ = newton_direction(op, g, rtol=self.cg_rtol, max_iter=self.cg_max_iter)
        self.n_matvec += op.n_matvec
        out = dict(grads)
        for k in op.keys:
            out[k] = (-d[k]).astype(model.dtype, copy=False)
        return out


def hvp_cost_ratio(model: NystromModel, loss, views, repeats: int = 5) -> dict:
    """Time one lifted GGN product against one gradient on the same batch (same run).

    Returns seconds per gradient, per HVP (kernel block cached, as inside CG) and their ratio.
    """
    op = GGNOperator(model, loss, [views])
    _, g = op.gradient()
    xp = model.xp
    from .backend import synchronize

    def timeit(fn):
        fn()
        synchronize(xp)
        t = time.perf_counter()
        for _ in range(repeats):
            fn()
        synchronize(xp)
        return (time.perf_counter() - t) / repeats

    t_grad = timeit(lambda: train_step(model, op.loss, views))
    t_hvp = timeit(lambda: op.matvec(g))
    return {"grad_s": t_grad, "hvp_s": t_hvp, "ratio": t_hvp / t_grad}
