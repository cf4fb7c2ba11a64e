"""Simple contrastive loss: one positive (other view) and one negative (next sample).

Book: *Derivations* §Simple contrastive, eqs. (sc-loss), (sc-grad); spec §3.
The model's RKHS penalty ``rkhs_penalty * tr(A_tilde^T K_mm A_tilde)`` belongs to the
model, not to this loss on Z; the weight is carried here as a field for the model to use.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..defaults import LOSS_HYPER
from .objective import TwoViewObjective, register
from ._common import check_tangents, check_views, scalar

__all__ = ["SimpleContrastive", "value", "value_and_grad", "ggn_matvec"]

_NAME = "simple_contrastive"
_HYPER = LOSS_HYPER[_NAME]


def _check(Za, Zb):
    return check_views(
        Za, Zb, _NAME, min_batch=2,
        why=" (with B = 1 the negative (i+1) mod B is the positive itself)",
    )


def value(Za, Zb):
    """Simple contrastive loss of eq. (sc-loss) (book: Derivations §Simple contrastive).

    ``L = -(1/B) sum_i za_i . (zb_i - zb_{(i+1) mod B})``; Za, Zb: arrays (B, h), B >= 2.
    Returns a 0-d array. The RKHS penalty is not included (it is the model's).
    """
    xp, B, _ = _check(Za, Zb)
    return scalar(xp, -(Za * (Zb - xp.roll(Zb, -1, axis=0))).sum() / B)


def value_and_grad(Za, Zb):
    """Value and gradient of eq. (sc-loss); implements eq. (sc-grad).

    Book: Derivations §Simple contrastive. Returns ``(L, (dZa, dZb))`` of shapes (B, h).
    """
    xp, B, _ = _check(Za, Zb)
    Db = Zb - xp.roll(Zb, -1, axis=0)  # row i: zb_i - zb_{i+1}
    val = -(Za * Db).sum() / B
    dZa = -Db / B
    dZb = -(Za - xp.roll(Za, 1, axis=0)) / B  # row k: za_k - za_{k-1}
    return scalar(xp, val), (dZa, dZb)


def ggn_matvec(Za, Zb, Va, Vb):
    """Gauss–Newton product, eq. (sc-ggn) (book: Derivations §Gauss–Newton products): zero.

    The loss is a *linear* outer function ``-(1/B) sum_i r_i`` of the residuals
    ``r_i = za_i . (zb_i - zb_{i+1})``, so ``Q = 0`` and the GGN vanishes (the true Hessian,
    the bilinear cross term, is indefinite). Curvature comes from the model's RKHS
    penalty ``2 rkhs_penalty K_mm``. Returns ``(0 * Va, 0 * Vb)``.
    """
    xp, _, _ = _check(Za, Zb)
    check_tangents(_NAME, Va=(Za, Va), Vb=(Zb, Vb))
    return xp.zeros_like(Va), xp.zeros_like(Vb)


@register
@dataclass(frozen=True)
class SimpleContrastive:
    """Simple contrastive loss on two views (spec §3; book: Derivations §Simple contrastive).

    Implements eq. (sc-loss)/(sc-grad): ``L = -(1/B) sum_i za_i . (zb_i - zb_{(i+1) mod B})``
    (positive: the other view of the same sample; negative: the other view of the next
    sample in the shuffled batch).

    Parameters
    ----------
    rkhs_penalty : float, default ``LOSS_HYPER["simple_contrastive"]["rkhs_penalty"]``
        The weight lambda of the model's RKHS penalty ``lambda tr(A_tilde^T K_mm A_tilde)``.
        It is *not* part of :meth:`value`: the loss on Z is unbounded below without it, and
        the model (which owns A_tilde and K_mm) adds it.

    Methods take ``Za, Zb`` of shape (B, h) with B >= 2; ``ggn_matvec(Za, Zb, Va, Vb)``
    returns zeros (linear outer function, see eq. (sc-ggn)).
    """

    name: ClassVar[str] = _NAME
    objective_class: ClassVar[type] = TwoViewObjective
    rkhs_penalty: float = _HYPER["rkhs_penalty"]

    def __post_init__(self):
        if self.rkhs_penalty < 0:
            raise ValueError(f"{_NAME}: rkhs_penalty must be >= 0, got {self.rkhs_penalty}.")

    def value(self, Za, Zb):
        """L of eq. (sc-loss) as a 0-d array (without the RKHS penalty)."""
        return value(Za, Zb)

    def value_and_grad(self, Za, Zb):
        """``(L, (dZa, dZb))``, eq. (sc-grad) (without the RKHS penalty)."""
        return value_and_grad(Za, Zb)

    def ggn_matvec(self, Za, Zb, Va, Vb):
        """``(Ua, Ub) = (0, 0)``: the GGN of this bilinear loss is zero, eq. (sc-ggn)."""
        return ggn_matvec(Za, Zb, Va, Vb)
