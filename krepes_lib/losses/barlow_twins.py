"""Barlow Twins: cross-correlation of the standardised views pushed towards the identity.

Book: *Derivations* §Barlow Twins, eqs. (bt-loss), (bt-grad); spec §3.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..defaults import LOSS_HYPER
from .objective import TwoViewObjective, register
from ._common import check_tangents, check_views, scalar, standardise, standardise_jac

__all__ = ["BarlowTwins", "value", "value_and_grad", "ggn_matvec"]

_NAME = "barlow_twins"
_HYPER = LOSS_HYPER[_NAME]


def _forward(Za, Zb, lambda_off, eps):
    xp, B, h = check_views(
        Za, Zb, _NAME, min_batch=2, why=" (each column is standardised over the batch)"
    )
    Na, sa = standardise(Za, eps)
    Nb, sb = standardise(Zb, eps)
    C = Na.T @ Nb / B
    eye = xp.eye(h, dtype=Za.dtype)
    # W ⊙ W: 1 on the diagonal, lambda_off off it.
    W2 = lambda_off + (1.0 - lambda_off) * eye
    R = C - eye
    val = (W2 * R * R).sum()
    return xp, B, (Na, sa, Nb, sb, W2, R), val


def value(Za, Zb, *, lambda_off, eps):
    """Barlow Twins loss L of eq. (bt-loss) (book: Derivations §Barlow Twins).

    Parameters
    ----------
    Za, Zb : array (B, h), B >= 2
        The two views' embeddings, one namespace and dtype.
    lambda_off : float
        Weight of the squared off-diagonal correlations.
    eps : float
        Added to the biased column variance before the square root.

    Returns
    -------
    0-d array: ``sum_i (1 - C_ii)^2 + lambda_off sum_{i != j} C_ij^2``.
    """
    xp, _, _, val = _forward(Za, Zb, lambda_off, eps)
    return scalar(xp, val)


def value_and_grad(Za, Zb, *, lambda_off, eps):
    """Value and gradient of eq. (bt-loss); implements eq. (bt-grad).

    Book: Derivations §Barlow Twins. Shapes as :func:`value`; returns
    ``(L, (dZa, dZb))`` with dZa, dZb of shape (B, h).
    """
    xp, B, (Na, sa, Nb, sb, W2, R), val = _forward(Za, Zb, lambda_off, eps)
    Gamma = 2.0 * W2 * R  # dL/dC
    dZa = standardise_jac(Na, sa, Nb @ Gamma.T / B)
    dZb = standardise_jac(Nb, sb, Na @ Gamma / B)
    return scalar(xp, val), (dZa, dZb)


def ggn_matvec(Za, Zb, Va, Vb, *, lambda_off, eps):
    """Gauss–Newton product ``J^T Q J v``, eq. (bt-ggn) (book: Derivations §Gauss–Newton products).

    Residuals ``r = vec(W ⊙ (C - I))`` with ``Q = 2 I`` (the loss is ``||r||^2``); the
    Jacobian goes through both standardisations (eq. (std-jac)). Va, Vb: directions of
    shape (B, h); returns ``(Ua, Ub)`` of shape (B, h). No dense matrix is formed.
    """
    xp, B, (Na, sa, Nb, sb, W2, R), _ = _forward(Za, Zb, lambda_off, eps)
    check_tangents(_NAME, Va=(Za, Va), Vb=(Zb, Vb))
    dC = (standardise_jac(Na, sa, Va).T @ Nb + Na.T @ standardise_jac(Nb, sb, Vb)) / B  # jvp
    Gamma = 2.0 * W2 * dC  # W ⊙ Q (W ⊙ dC)
    Ua = standardise_jac(Na, sa, Nb @ Gamma.T / B)  # vjp
    Ub = standardise_jac(Nb, sb, Na @ Gamma / B)
    return Ua, Ub


@register
@dataclass(frozen=True)
class BarlowTwins:
    """Barlow Twins loss on two views (spec §3; book: Derivations §Barlow Twins).

    Implements eq. (bt-loss)/(bt-grad). Each view is standardised per column with
    the *biased* variance, ``Zbar = (Z - mean) / sqrt(var + eps)`` (batch-norm in
    training mode, no affine); ``C = Zbar_a^T Zbar_b / B`` (h, h);
    ``L = sum_i (1 - C_ii)^2 + lambda_off * sum_{i != j} C_ij^2`` (no extra scale).

    Parameters
    ----------
    lambda_off : float, default ``LOSS_HYPER["barlow_twins"]["lambda_off"]``
        Weight of the squared off-diagonal correlations.
    eps : float, default ``LOSS_HYPER["barlow_twins"]["eps"]``
        Added to the biased variance; ``eps = 0`` needs non-constant columns.

    Methods take ``Za, Zb`` of shape (B, h) with B >= 2; ``ggn_matvec(Za, Zb, Va, Vb)``
    applies the generalised Gauss–Newton matrix (residuals ``W ⊙ (C - I)``, ``Q = 2 I``).
    """

    name: ClassVar[str] = _NAME
    objective_class: ClassVar[type] = TwoViewObjective
    lambda_off: float = _HYPER["lambda_off"]
    eps: float = _HYPER["eps"]

    def __post_init__(self):
        if self.lambda_off < 0:
            raise ValueError(f"{_NAME}: lambda_off must be >= 0, got {self.lambda_off}.")
        if self.eps < 0:
            raise ValueError(f"{_NAME}: eps must be >= 0, got {self.eps}.")

    def value(self, Za, Zb):
        """L of eq. (bt-loss) as a 0-d array."""
        return value(Za, Zb, lambda_off=self.lambda_off, eps=self.eps)

    def value_and_grad(self, Za, Zb):
        """``(L, (dZa, dZb))``, eq. (bt-grad)."""
        return value_and_grad(Za, Zb, lambda_off=self.lambda_off, eps=self.eps)

    def ggn_matvec(self, Za, Zb, Va, Vb):
        """``(Ua, Ub) = G (Va, Vb)``, the Gauss–Newton product of eq. (bt-ggn)."""
        return ggn_matvec(Za, Zb, Va, Vb, lambda_off=self.lambda_off, eps=self.eps)
