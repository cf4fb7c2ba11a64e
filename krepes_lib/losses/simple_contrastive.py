"""Simple contrastive loss: one positive (other view) and one negative (next sample).

Book: *Derivations* §Simple contrastive, eqs. (sc-loss), (sc-grad); spec §3.
The model's RKHS penalty ``rkhs_penalty * tr(A_tilde^T K_mm A_tilde)`` belongs to the
model, not to this loss on Z; the weight is carried here as a field for the model to use.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..defaults import LOSS_HYPER
from ._common import check_views, scalar

__all__ = ["SimpleContrastive", "value", "value_and_grad"]

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

    Methods take ``Za, Zb`` of shape (B, h) with B >= 2.
    """

    name: ClassVar[str] = _NAME
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
