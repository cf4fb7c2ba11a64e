"""One objective interface for all losses: what the training loop and the GGN operator call.

Book: *Derivations* (``book/derivations.md``), sections "From the embeddings to the
parameters" (eq. (der-chain)) and "Gauss–Newton products" (eq. (der-ggn-lift)); spec §3–§4.

The pure loss functions (one module per loss) map embeddings to a value, a gradient and a
Gauss–Newton product, each with its own signature. An :class:`Objective` wraps one of them
behind a single interface, so that :func:`krepes_lib.fit`, Newton-CG and the audit never
branch on a loss name:

``views``
    1 (KPCA, KAE: one un-augmented view per batch) or 2 (the SSL losses).
``init_state(model) -> ObjectiveState``
    The extra arrays the loss owns: trainable ``params`` (BYOL's predictor ``P``, KAE's
    decoder ``B_dec``) and non-trainable ``buffers`` (BYOL's EMA target).
``prepare(model, state, batch)``
    Per-batch constants computed once (BYOL's target embeddings, KAE's k(x, x)).
``value(batch, F, A, aux)``, ``value_and_grad(batch, F, A, aux)``, ``ggn(batch, F, A, aux, VF, VA, Vaux)``
    The loss at the batch embeddings F = K_bm Ã + 1γᵀ (all views stacked, shape (pB, h)),
    the raw coefficients A = Ã (m, h) (for terms that depend on Ã directly: KPCA's whitening
    penalty, the RKHS penalty) and the aux params. ``value_and_grad`` returns
    ``(L, dF, dA, daux)`` with dA the gradient of the direct terms (``None`` when there is
    none); ``ggn`` returns ``(UF, UA, Uaux)``, the generalised Gauss–Newton matrix applied to
    the direction (VF, VA, Vaux). The model lifts both through F = K_bm Ã + 1γᵀ
    (eq. (der-chain), eq. (der-ggn-lift)): ∇_Ã = K_bmᵀ dF + dA, ∇_γ = 1ᵀ dF.
``after_step(model, state)``
    What happens after an optimiser step (BYOL's EMA target update).

The RKHS penalty λ tr(ÃᵀK_mmÃ) of a loss with a field ``rkhs_penalty`` (simple
contrastive, spec §3) is added here once for every loss that declares it: value
λ tr(ÃᵀK_mmÃ), gradient 2λ K_mm Ã, Gauss–Newton (= exact Hessian) 2λ K_mm V_Ã.

Adding a loss
-------------
Write one module in ``krepes_lib/losses/`` with the pure functions and a frozen dataclass
(``name`` ClassVar, hyper-parameters as fields) decorated with :func:`register`; a
two-view loss with ``value_and_grad(Za, Zb)`` / ``ggn_matvec(Za, Zb, Va, Vb)`` needs
nothing else (:class:`TwoViewObjective` is the default ``objective_class``); a loss with
another signature sets ``objective_class`` to an :class:`Objective` subclass in the same
module. The package imports every module, so no other file changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..backend import get_xp

__all__ = ["Objective", "TwoViewObjective", "ObjectiveState", "Batch", "register", "REGISTRY"]

#: name -> loss class, filled by :func:`register` as the loss modules are imported.
REGISTRY: dict = {}


def register(cls):
    """Class decorator: add a loss dataclass (with a ``name`` ClassVar) to :data:`REGISTRY`."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"{cls.__name__}: a registered loss needs a string ClassVar 'name'.")
    if name in REGISTRY and REGISTRY[name] is not cls:
        raise ValueError(f"two losses are registered under the name {name!r}.")
    REGISTRY[name] = cls
    return cls


@dataclass
class ObjectiveState:
    """The arrays an objective owns: trainable ``params`` and non-trainable ``buffers``."""

    params: dict = field(default_factory=dict)
    buffers: dict = field(default_factory=dict)

    def state_dict(self) -> dict:
        out = {f"aux/{k}": v for k, v in self.params.items()}
        out.update({f"buffer/{k}": v for k, v in self.buffers.items()})
        return out

    def load_state_dict(self, state: dict, xp, dtype):
        from ..backend import to_device

        for prefix, store in (("aux/", self.params), ("buffer/", self.buffers)):
            for k, cur in store.items():
                key = prefix + k
                if key not in state:
                    raise KeyError(f"state has no {key!r}; was it saved for the same loss?")
                new = to_device(state[key], xp, dtype=dtype)
                if new.shape != cur.shape:
                    raise ValueError(f"{key}: saved shape {tuple(new.shape)} != {tuple(cur.shape)}.")
                cur[...] = new


class Batch:
    """One batch: its views, the kernel block of all views stacked, and per-batch constants.

    Attributes
    ----------
    views : tuple of arrays (B, d)
    B : int
        Samples per view.
    X : array (pB, d)
        The views stacked (view a rows first).
    K : array (pB, m)
        k(X, x̃): computed once per batch and reused by the forward pass, the gradient,
        every Gauss–Newton product and the line search.
    extra : dict
        Per-batch constants an objective computes in :meth:`Objective.prepare`.
    """

    def __init__(self, views, K):
        self.views = tuple(views)
        self.B = int(views[0].shape[0])
        xp = get_xp(*views)
        self.X = views[0] if len(views) == 1 else xp.concatenate(views)
        self.K = K
        self.extra = {}

    def split(self, F):
        """The per-view blocks of a stacked (pB, ·) array."""
        B = self.B
        return tuple(F[i * B:(i + 1) * B] for i in range(len(self.views)))


class Objective:
    """Base adapter; see the module docstring for the interface.

    Subclasses implement ``_value``, ``_value_and_grad`` and ``_ggn`` for the loss alone;
    the RKHS penalty is added here.
    """

    views = 2

    def __init__(self, loss):
        self.loss = loss
        self.rkhs_penalty = float(getattr(loss, "rkhs_penalty", 0.0) or 0.0)

    @property
    def name(self) -> str:
        return self.loss.name

    def __repr__(self):
        return f"{type(self).__name__}({self.loss!r})"

    # -- state -------------------------------------------------------------------------
    def init_state(self, model) -> ObjectiveState:
        """The extra arrays this loss owns, initialised for ``model`` (none by default)."""
        return ObjectiveState()

    def prepare(self, model, state: ObjectiveState, batch: Batch) -> None:
        """Per-batch constants (none by default)."""

    def after_step(self, model, state: ObjectiveState) -> None:
        """Called after every optimiser step (nothing by default)."""

    # -- to implement --------------------------------------------------------------------
    def _value(self, batch, F, A, aux, K_mm):  # pragma: no cover - abstract
        raise NotImplementedError

    def _value_and_grad(self, batch, F, A, aux, K_mm):  # pragma: no cover - abstract
        raise NotImplementedError

    def _ggn(self, batch, F, A, aux, K_mm, VF, VA, Vaux):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- public: the loss plus the RKHS penalty -----------------------------------------------
    def value(self, batch, F, A, aux, K_mm):
        """The objective at (F, A, aux): the loss plus λ tr(ÃᵀK_mmÃ) when the loss has one."""
        val = self._value(batch, F, A, aux, K_mm)
        if self.rkhs_penalty > 0:
            val = val + self.rkhs_penalty * (A * (K_mm @ A)).sum()
        return val

    def value_and_grad(self, batch, F, A, aux, K_mm):
        """``(L, dF, dA, daux)``: dF (pB, h), dA (m, h) or None, daux a dict like ``aux``."""
        val, dF, dA, daux = self._value_and_grad(batch, F, A, aux, K_mm)
        if self.rkhs_penalty > 0:
            KA = K_mm @ A
            val = val + self.rkhs_penalty * (A * KA).sum()       # λ tr(ÃᵀK_mmÃ)
            pen = (2.0 * self.rkhs_penalty) * KA                   # its gradient 2λ K_mm Ã
            dA = pen if dA is None else dA + pen
        return val, dF, dA, daux

    def ggn(self, batch, F, A, aux, K_mm, VF, VA, Vaux):
        """``(UF, UA, Uaux)``: the Gauss–Newton matrix of the objective applied to (VF, VA, Vaux)."""
        UF, UA, Uaux = self._ggn(batch, F, A, aux, K_mm, VF, VA, Vaux)
        if self.rkhs_penalty > 0:
            pen = (2.0 * self.rkhs_penalty) * (K_mm @ VA)
            UA = pen if UA is None else UA + pen
        return UF, UA, Uaux


class TwoViewObjective(Objective):
    """A loss of two views, ``value_and_grad(Za, Zb)`` and ``ggn_matvec(Za, Zb, Va, Vb)``."""

    views = 2

    def _value(self, batch, F, A, aux, K_mm):
        return self.loss.value(*batch.split(F))

    def _value_and_grad(self, batch, F, A, aux, K_mm):
        val, (dZa, dZb) = self.loss.value_and_grad(*batch.split(F))
        return val, get_xp(F).concatenate([dZa, dZb]), None, {}

    def _ggn(self, batch, F, A, aux, K_mm, VF, VA, Vaux):
        Ua, Ub = self.loss.ggn_matvec(*batch.split(F), *batch.split(VF))
        return get_xp(F).concatenate([Ua, Ub]), None, {}
