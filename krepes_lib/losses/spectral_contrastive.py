"""Spectral contrastive loss (HaoChen et al. 2021) on two views.

Book: *Derivations* §Spectral contrastive, eqs. (spec-loss), (spec-grad); spec §3.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .objective import TwoViewObjective, register
from ._common import check_tangents, check_views, scalar

__all__ = ["SpectralContrastive", "value", "value_and_grad", "ggn_matvec"]

_NAME = "spectral_contrastive"


def _forward(Za, Zb):
    xp, B, h = check_views(
        Za, Zb, _NAME, min_batch=2, why=" (the negative term averages over B (B - 1) pairs)"
    )
    S = Za @ Zb.T  # S_ij = za_i . zb_j, (B, B)
    Soff = S * (1.0 - xp.eye(B, dtype=Za.dtype))
    val = -(2.0 / B) * xp.trace(S) + (Soff * Soff).sum() / (B * (B - 1))
    return xp, B, Soff, val


def value(Za, Zb):
    """Spectral contrastive loss of eq. (spec-loss) (book: Derivations §Spectral contrastive).

    ``L = -(2/B) sum_i za_i . zb_i + 1/(B (B-1)) sum_{i != j} (za_i . zb_j)^2``.
    Za, Zb: arrays (B, h), B >= 2. No hyper-parameters. Returns a 0-d array.
    """
    xp, _, _, val = _forward(Za, Zb)
    return scalar(xp, val)


def value_and_grad(Za, Zb):
    """Value and gradient of eq. (spec-loss); implements eq. (spec-grad).

    Book: Derivations §Spectral contrastive. Returns ``(L, (dZa, dZb))`` of shapes (B, h).
    """
    xp, B, Soff, val = _forward(Za, Zb)
    G = (2.0 / (B * (B - 1))) * Soff  # dL/dS without the trace part
    dZa = G @ Zb - (2.0 / B) * Zb
    dZb = G.T @ Za - (2.0 / B) * Za
    return scalar(xp, val), (dZa, dZb)


def ggn_matvec(Za, Zb, Va, Vb):
    """Gauss–Newton product, eq. (spec-ggn) (book: Derivations §Gauss–Newton products).

    Residuals ``r_ij = za_i . zb_j`` (i != j) with ``Q = 2 / (B (B-1)) I``; the linear
    positive term has no curvature. Va, Vb (B, h) -> ``(Ua, Ub)`` (B, h).
    """
    xp, B, _, _ = _forward(Za, Zb)
    check_tangents(_NAME, Va=(Za, Va), Vb=(Zb, Vb))
    dS = Va @ Zb.T + Za @ Vb.T  # jvp of S
    G = (2.0 / (B * (B - 1))) * dS * (1.0 - xp.eye(B, dtype=Za.dtype))
    return G @ Zb, G.T @ Za  # vjp


@register
@dataclass(frozen=True)
class SpectralContrastive:
    """Spectral contrastive loss on two views (spec §3; book: Derivations §Spectral contrastive).

    Implements eq. (spec-loss)/(spec-grad):
    ``L = -(2/B) sum_i za_i . zb_i + 1/(B (B-1)) sum_{i != j} (za_i . zb_j)^2``.
    No hyper-parameters (``LOSS_HYPER["spectral_contrastive"]`` is empty).
    Methods take ``Za, Zb`` of shape (B, h) with B >= 2; ``ggn_matvec(Za, Zb, Va, Vb)``
    applies the generalised Gauss–Newton matrix (residuals ``za_i . zb_j``, i != j).
    """

    name: ClassVar[str] = _NAME
    objective_class: ClassVar[type] = TwoViewObjective

    def value(self, Za, Zb):
        """L of eq. (spec-loss) as a 0-d array."""
        return value(Za, Zb)

    def value_and_grad(self, Za, Zb):
        """``(L, (dZa, dZb))``, eq. (spec-grad)."""
        return value_and_grad(Za, Zb)

    def ggn_matvec(self, Za, Zb, Va, Vb):
        """``(Ua, Ub) = G (Va, Vb)``, the Gauss–Newton product of eq. (spec-ggn)."""
        return ggn_matvec(Za, Zb, Va, Vb)
