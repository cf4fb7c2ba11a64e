"""BYOL: normalised linear predictor of the online view regresses the normalised target.

Book: *Derivations* §BYOL, eqs. (byol-loss), (byol-grad); spec §3.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..backend import get_xp
from ..defaults import LOSS_HYPER
from .objective import Objective, register
from ._common import (
    check_matrix,
    check_same_dtype,
    check_tangents,
    check_views,
    normalise_rows,
    normalise_rows_jac,
    scalar,
)

__all__ = ["BYOL", "value", "value_and_grad", "ggn_matvec"]

_NAME = "byol"
_HYPER = LOSS_HYPER[_NAME]


def _check(Za, Zb, Ta, Tb, P):
    xp, B, h = check_views(Za, Zb, _NAME, min_batch=1)
    check_views(Ta, Tb, _NAME, min_batch=1, names=("Ta", "Tb"))
    check_matrix(P, "P", _NAME)
    get_xp(Za, Ta, P)  # raises on a host/device mix
    if Ta.shape != Za.shape:
        raise ValueError(
            f"{_NAME}: target embeddings Ta, Tb must have the online shape (B, h) = "
            f"{tuple(Za.shape)}, got {tuple(Ta.shape)}."
        )
    if P.shape != (h, h):
        raise ValueError(
            f"{_NAME}: the predictor P must be (h, h) = ({h}, {h}), got {tuple(P.shape)}."
        )
    check_same_dtype(_NAME, Za=Za, Ta=Ta, P=P)
    return xp, B, h


def _forward(Za, Zb, Ta, Tb, P):
    xp, B, h = _check(Za, Zb, Ta, Tb, P)
    Qa_hat, qa = normalise_rows(Za @ P)
    Qb_hat, qb = normalise_rows(Zb @ P)
    Ta_hat, _ = normalise_rows(Ta)
    Tb_hat, _ = normalise_rows(Tb)
    Ra = Qa_hat - Tb_hat  # view a predicts the target of view b
    Rb = Qb_hat - Ta_hat  # the swap
    val = ((Ra * Ra).sum() + (Rb * Rb).sum()) / B
    return xp, B, (Qa_hat, qa, Qb_hat, qb, Ra, Rb), val


def value(Za, Zb, Ta, Tb, P):
    """BYOL loss of eq. (byol-loss) (book: Derivations §BYOL).

    Parameters
    ----------
    Za, Zb : array (B, h)
        Online embeddings of the two views.
    Ta, Tb : array (B, h)
        Target-network embeddings of the two views (constants: stop-gradient).
    P : array (h, h)
        Linear predictor, ``q(z) = z P``.

    Returns
    -------
    0-d array ``(1/B) sum_i ||qhat(za_i) - that_b,i||^2 + ||qhat(zb_i) - that_a,i||^2``
    with ``xhat = x / ||x||``; it lies in [0, 8].
    """
    xp, _, _, val = _forward(Za, Zb, Ta, Tb, P)
    return scalar(xp, val)


def value_and_grad(Za, Zb, Ta, Tb, P):
    """Value and gradient of eq. (byol-loss); implements eq. (byol-grad).

    Book: Derivations §BYOL. Returns ``(L, (dZa, dZb, dP))`` of shapes (B, h), (B, h),
    (h, h); the targets get no gradient.
    """
    xp, B, (Qa_hat, qa, Qb_hat, qb, Ra, Rb), val = _forward(Za, Zb, Ta, Tb, P)
    dQa = normalise_rows_jac(Qa_hat, qa, (2.0 / B) * Ra)
    dQb = normalise_rows_jac(Qb_hat, qb, (2.0 / B) * Rb)
    dZa = dQa @ P.T
    dZb = dQb @ P.T
    dP = Za.T @ dQa + Zb.T @ dQb
    return scalar(xp, val), (dZa, dZb, dP)


def ggn_matvec(Za, Zb, Ta, Tb, P, Va, Vb, VP):
    """Gauss–Newton product, eq. (byol-ggn) (book: Derivations §Gauss–Newton products).

    Residuals ``qhat(z P) - that`` (both swaps), ``Q = (2/B) I``, Jacobian w.r.t. the online
    embeddings and the predictor (the targets are constants). Directions Va, Vb (B, h) and
    VP (h, h) (pass zeros for a block you do not want); returns ``(Ua, Ub, UP)``.
    """
    xp, B, (Qa_hat, qa, Qb_hat, qb, _, _), _ = _forward(Za, Zb, Ta, Tb, P)
    check_tangents(_NAME, Va=(Za, Va), Vb=(Zb, Vb), VP=(P, VP))
    dQa_hat = normalise_rows_jac(Qa_hat, qa, Va @ P + Za @ VP)  # jvp
    dQb_hat = normalise_rows_jac(Qb_hat, qb, Vb @ P + Zb @ VP)
    Ga = normalise_rows_jac(Qa_hat, qa, (2.0 / B) * dQa_hat)  # vjp of Q dr
    Gb = normalise_rows_jac(Qb_hat, qb, (2.0 / B) * dQb_hat)
    return Ga @ P.T, Gb @ P.T, Za.T @ Ga + Zb.T @ Gb


class BYOLObjective(Objective):
    """Two views; owns the predictor ``P`` (h, h) = I_h and the EMA target (Ã_ξ, γ_ξ).

    The target starts as a copy of (Ã₀, γ₀); its embeddings T = K_bm Ã_ξ + 1γ_ξᵀ are
    constants of the batch (stop-gradient); after each step (Ã_ξ, γ_ξ) ←
    τ(Ã_ξ, γ_ξ) + (1 − τ)(Ã, γ) with τ = the loss's ``ema`` (spec §3).
    """

    views = 2

    def init_state(self, model):
        from .objective import ObjectiveState

        xp = model.xp
        return ObjectiveState(params={"P": xp.eye(model.h, dtype=model.dtype)},
                              buffers={"target_A": model.A_tilde.copy(),
                                       "target_gamma": model.gamma.copy()})

    def prepare(self, model, state, batch):
        T = batch.K @ state.buffers["target_A"]
        T += state.buffers["target_gamma"][None, :]
        batch.extra["T"] = batch.split(T)

    def after_step(self, model, state):
        tau = float(self.loss.ema)
        for name, theta in (("target_A", model.A_tilde), ("target_gamma", model.gamma)):
            xi = state.buffers[name]
            xi *= tau
            xi += (1.0 - tau) * theta

    def _value(self, batch, F, A, aux, K_mm):
        return self.loss.value(*batch.split(F), *batch.extra["T"], aux["P"])

    def _value_and_grad(self, batch, F, A, aux, K_mm):
        val, (dZa, dZb, dP) = self.loss.value_and_grad(*batch.split(F), *batch.extra["T"], aux["P"])
        return val, get_xp(F).concatenate([dZa, dZb]), None, {"P": dP}

    def _ggn(self, batch, F, A, aux, K_mm, VF, VA, Vaux):
        P = aux["P"]
        VP = Vaux.get("P")
        if VP is None:
            VP = get_xp(P).zeros_like(P)
        Ua, Ub, UP = self.loss.ggn_matvec(*batch.split(F), *batch.extra["T"], P, *batch.split(VF), VP)
        return get_xp(F).concatenate([Ua, Ub]), None, {"P": UP}


@register
@dataclass(frozen=True)
class BYOL:
    """BYOL loss (spec §3; book: Derivations §BYOL).

    Implements eq. (byol-loss)/(byol-grad). Online embeddings ``Za, Zb`` (B, h), a
    linear predictor ``q(z) = z P`` with ``P`` (h, h), target embeddings ``Ta, Tb`` (B, h)
    from the EMA network (stop-gradient):
    ``L = (1/B) sum_i [ ||qhat(za_i) - that_b,i||^2 + ||qhat(zb_i) - that_a,i||^2 ]``,
    ``xhat = x / ||x||`` (the spec writes the per-sample loss; the batch reduction here is
    the mean over samples, both swaps summed).

    Parameters
    ----------
    ema : float, default ``LOSS_HYPER["byol"]["ema"]``
        EMA rate of the target network, for the model: after a step,
        ``theta_xi <- ema * theta_xi + (1 - ema) * theta`` (:meth:`target_update`).
        The loss itself does not use it.

    Methods: ``value(Za, Zb, Ta, Tb, P)``, ``value_and_grad(Za, Zb, Ta, Tb, P) ->
    (L, (dZa, dZb, dP))``, ``ggn_matvec(Za, Zb, Ta, Tb, P, Va, Vb, VP) -> (Ua, Ub, UP)``
    (least squares on the normalised residuals). B >= 1, h >= 1.
    """

    name: ClassVar[str] = _NAME
    objective_class: ClassVar[type] = BYOLObjective
    ema: float = _HYPER["ema"]

    def __post_init__(self):
        if not 0.0 <= self.ema <= 1.0:
            raise ValueError(f"{_NAME}: ema must lie in [0, 1], got {self.ema}.")

    def value(self, Za, Zb, Ta, Tb, P):
        """L of eq. (byol-loss) as a 0-d array."""
        return value(Za, Zb, Ta, Tb, P)

    def value_and_grad(self, Za, Zb, Ta, Tb, P):
        """``(L, (dZa, dZb, dP))``, eq. (byol-grad)."""
        return value_and_grad(Za, Zb, Ta, Tb, P)

    def ggn_matvec(self, Za, Zb, Ta, Tb, P, Va, Vb, VP):
        """``(Ua, Ub, UP) = G (Va, Vb, VP)``, the Gauss–Newton product of eq. (byol-ggn)."""
        return ggn_matvec(Za, Zb, Ta, Tb, P, Va, Vb, VP)

    def target_update(self, target, online):
        """One EMA step ``ema * target + (1 - ema) * online`` (arrays of one shape)."""
        return self.ema * target + (1.0 - self.ema) * online
