"""One batch's objective at the model's current parameters: value, gradient, GGN product.

Book: *Theory* (``book/theory.md``), sections "Model" (eqs. (model), (model-grad)) and
"Second-order steps" (eq. (ggn-lift)); *Derivations* §From the embeddings to the
parameters (eq. (der-chain)); spec §1, §4.

A :class:`BatchProblem` is what every optimiser step and the audit work on. It computes the
kernel block K = k([Xᵃ; Xᵇ], x̃) (pB × m) **once**, the coefficients Ã = T W (whitened) or Ã
(raw) once, and the embeddings F = K Ã + 1γᵀ once, and then serves

* ``value_and_grad()`` — the objective and the gradient of every trainable array, by the
  chain rule eq. (model-grad): ∇_Ã L = Kᵀ ∇_F L + ∂L/∂Ã|direct, ∇_γ L = 1ᵀ ∇_F L, mapped to W
  by ∇_W = Tᵀ ∇_Ã in whitened coordinates; plus the loss's own arrays (BYOL's P, KAE's B);
* ``ggn_matvec(V)`` — the Gauss–Newton product lifted through the linear model, eq.
  (ggn-lift): J v = K V_Ã + 1v_γᵀ (jvp), the loss's hand-derived Q J v, then Jᵀ (vjp);
* ``value_at(V, t)`` — the objective at θ + tV for a line search, **without a kernel
  evaluation or a backward pass**: the model is linear in its parameters, so
  F(θ + tV) = F + t (K V_Ã + 1v_γᵀ).

Vectors are dicts over :attr:`BatchProblem.keys` (the model's main key ``"W"`` or
``"A_tilde"``, ``"gamma"``, then the loss's trainable arrays). Nothing here names a loss.
"""
from __future__ import annotations

import numpy as np

from .backend import get_xp

__all__ = ["BatchProblem", "kernel_block"]


def kernel_block(model, X, memory_budget: int):
    """k(X, x̃) for one batch, refusing a block larger than ``memory_budget`` bytes.

    The batch is the unit of streaming: a (pB, m) block that does not fit the budget means
    the batch is too large (lower ``batch_size``) or the budget too small.
    """
    L = model.nystrom.landmarks
    nbytes = X.shape[0] * L.shape[0] * np.dtype(model.dtype).itemsize
    if nbytes > memory_budget:
        raise MemoryError(
            f"the kernel block of one batch ({X.shape[0]} rows × m={L.shape[0]} landmarks = "
            f"{nbytes / 2**20:.1f} MiB) exceeds memory_budget={memory_budget / 2**20:.1f} MiB; "
            "lower batch_size or raise Options.memory_budget.")
    # blocks() skips kernel()'s finiteness check: X was validated once by the caller
    # (a check per batch would cost a device synchronisation).
    (_, K), = model.nystrom.kernel.blocks(X, L, rows=X.shape[0])
    return K


class BatchProblem:
    """The objective of one batch of views at the model's current parameters.

    Parameters
    ----------
    model : NystromModel
    objective : krepes_lib.losses.Objective
    state : krepes_lib.losses.ObjectiveState
        The loss's own arrays (``state.params`` are trained, ``state.buffers`` are not).
    views : tuple of arrays (B, d)
        ``objective.views`` arrays of one batch, in the model's namespace and dtype.
    memory_budget : int
        Bytes allowed for the kernel block.
    keep_kernel : bool, default True
        Keep K between calls (False: recompute it at every product — for an audit over
        more batches than the memory budget holds).
    """

    def __init__(self, model, objective, state, views, memory_budget: int, keep_kernel: bool = True):
        from .losses.objective import Batch

        if len(views) != objective.views:
            raise ValueError(f"loss {objective.name!r} takes {objective.views} view(s) per batch; "
                             f"got {len(views)}.")
        self.model, self.objective, self.state = model, objective, state
        self.xp = model.xp
        self.memory_budget = int(memory_budget)
        self.keep_kernel = bool(keep_kernel)
        self.batch = Batch(views, None)
        K = kernel_block(model, self.batch.X, self.memory_budget)
        self.batch.K = K
        self.A = model.A_tilde                       # Ã = T W once per batch (eq. nys-whiten)
        self.gamma = model.gamma
        self.K_mm = model.nystrom.K_mm
        self.F = K @ self.A                          # eq. (model)
        self.F += self.gamma[None, :]
        objective.prepare(model, state, self.batch)
        if not self.keep_kernel:
            self.batch.K = None
        self.keys = (model._main, "gamma", *state.params)
        self._vg = None

    # --- pieces ---------------------------------------------------------------------------
    def _K(self):
        if self.batch.K is not None:
            return self.batch.K
        return kernel_block(self.model, self.batch.X, self.memory_budget)

    def _with_K(self, fn):
        """Run ``fn(K)`` with the kernel block present in ``self.batch`` (recomputed if dropped)."""
        if self.batch.K is not None:
            return fn(self.batch.K)
        self.batch.K = self._K()
        try:
            return fn(self.batch.K)
        finally:
            self.batch.K = None

    def lift(self, K, dF, dA=None) -> dict:
        """Map (∇_F, direct ∇_Ã) to the main parameter and γ, eq. (model-grad)."""
        gA = K.T @ dF.astype(self.model.dtype, copy=False)
        if dA is not None:
            gA += dA
        return {self.model._main: self.model.grad_from_A(gA), "gamma": dF.sum(axis=0)}

    def direction(self, V: dict):
        """(V_Ã, v_γ, V_aux) of a direction dict (missing keys are zero)."""
        xp, model = self.xp, self.model
        main = V.get(model._main)
        VA = xp.zeros_like(self.A) if main is None else model.A_of(main)
        Vg = V.get("gamma")
        Vaux = {k: V[k] for k in self.state.params if k in V}
        return VA, (xp.zeros_like(self.gamma) if Vg is None else Vg), Vaux

    # --- the objective ----------------------------------------------------------------------
    def value_and_grad(self):
        """``(L, grads)``: the batch objective and the gradient of every trainable array (cached)."""
        if self._vg is None:
            def run(K):
                val, dF, dA, daux = self.objective.value_and_grad(
                    self.batch, self.F, self.A, self.state.params, self.K_mm)
                grads = self.lift(K, dF, dA)
                grads.update(daux)
                return val, grads

            self._vg = self._with_K(run)
        return self._vg

    def value_at(self, V: dict, t: float):
        """The objective at θ + tV, with F(θ + tV) = F + t (K V_Ã + 1v_γᵀ) (eq. (model) is linear).

        K V is kept for the last direction dict (the same object, held here, so that its id
        cannot be reused by another dict): a line search along one V costs one product; do not
        modify V's arrays in place between calls.
        """
        VA, Vg, Vaux = self.direction(V)
        if getattr(self, "_dir_V", None) is not V:
            VF = self._with_K(lambda K: K @ VA)
            VF += Vg[None, :]
            self._dir_V, self._dir_VF = V, VF
        F = self.F + t * self._dir_VF
        A = self.A + t * VA
        aux = {k: v + t * Vaux[k] if k in Vaux else v for k, v in self.state.params.items()}
        return self._with_K(lambda K: self.objective.value(self.batch, F, A, aux, self.K_mm))

    def ggn_matvec(self, V: dict, keys=None) -> dict:
        """J^T Q J V for the keys in ``keys`` (default all), eq. (ggn-lift); no dense matrix."""
        keys = self.keys if keys is None else keys
        VA, Vg, Vaux = self.direction(V)

        def run(K):
            VF = K @ VA
            VF += Vg[None, :]
            UF, UA, Uaux = self.objective.ggn(self.batch, self.F, self.A, self.state.params,
                                              self.K_mm, VF, VA, Vaux)
            out = self.lift(K, UF, UA)
            out.update(Uaux)
            return out

        out = self._with_K(run)
        return {k: out[k] for k in keys}
