"""VICReg: invariance + variance hinge + covariance penalty, as in the original code.

Book: *Derivations* §VICReg, eqs. (vic-loss), (vic-grad); spec §3.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..backend import get_xp
from ..defaults import LOSS_HYPER
from .objective import TwoViewObjective, register
from ._common import check_tangents, check_views, scalar

__all__ = ["VICReg", "value", "value_and_grad", "ggn_matvec", "terms"]

_NAME = "vicreg"
_HYPER = LOSS_HYPER[_NAME]


def _view_stats(Z, eps):
    """Centred Z, column std sqrt(Var + eps) (unbiased Var), off-diagonal covariance."""
    xp = get_xp(Z)
    B, h = Z.shape
    Zc = Z - Z.mean(axis=0, keepdims=True)
    sd = xp.sqrt((Zc * Zc).sum(axis=0) / (B - 1) + eps)
    Cov = Zc.T @ Zc / (B - 1)
    Coff = Cov * (1.0 - xp.eye(h, dtype=Z.dtype))
    return Zc, sd, Coff


def _terms(Za, Zb, eps):
    xp, B, h = check_views(
        Za, Zb, _NAME, min_batch=2, why=" (the unbiased variance divides by B - 1)"
    )
    D = Za - Zb
    inv = (D * D).sum() / (B * h)
    sa, sb = _view_stats(Za, eps), _view_stats(Zb, eps)
    var_a = xp.maximum(1.0 - sa[1], 0.0).mean()
    var_b = xp.maximum(1.0 - sb[1], 0.0).mean()
    cov_a = (sa[2] * sa[2]).sum() / h
    cov_b = (sb[2] * sb[2]).sum() / h
    return xp, B, h, D, sa, sb, (inv, var_a, var_b, cov_a, cov_b)


def terms(Za, Zb, *, eps):
    """The unweighted terms of eq. (vic-loss) as a dict of 0-d arrays.

    Keys: ``invariance`` = ||Za - Zb||_F^2 / (B h), ``variance`` = [v(Za) + v(Zb)] / 2,
    ``covariance`` = c(Za) + c(Zb). Useful for logging and for the closed-form tests.
    """
    xp, _, _, _, _, _, (inv, va, vb, ca, cb) = _terms(Za, Zb, eps)
    return {
        "invariance": scalar(xp, inv),
        "variance": scalar(xp, 0.5 * (va + vb)),
        "covariance": scalar(xp, ca + cb),
    }


def value(Za, Zb, *, lambda_inv, mu, nu, eps):
    """VICReg loss L of eq. (vic-loss) (book: Derivations §VICReg).

    Parameters
    ----------
    Za, Zb : array (B, h), B >= 2
    lambda_inv, mu, nu : float
        Weights of the invariance, variance and covariance terms.
    eps : float
        Added to the unbiased variance inside the square root of the hinge.

    Returns
    -------
    0-d array ``lambda_inv ||Za - Zb||^2/(B h) + mu [v(Za) + v(Zb)]/2 + nu [c(Za) + c(Zb)]``.
    """
    xp, _, _, _, _, _, (inv, va, vb, ca, cb) = _terms(Za, Zb, eps)
    return scalar(xp, lambda_inv * inv + mu * 0.5 * (va + vb) + nu * (ca + cb))


def _view_grad(stats, B, h, mu, nu):
    """d/dZ of mu/2 v(Z) + nu c(Z) (eq. vic-grad, the per-view part)."""
    Zc, sd, Coff = stats
    active = (sd < 1.0).astype(Zc.dtype)  # hinge subgradient 0 at the kink, as ReLU
    g_var = -(0.5 * mu / h) * Zc * (active / ((B - 1) * sd))
    g_cov = (4.0 * nu / (h * (B - 1))) * (Zc @ Coff)
    return g_var + g_cov


def value_and_grad(Za, Zb, *, lambda_inv, mu, nu, eps):
    """Value and gradient of eq. (vic-loss); implements eq. (vic-grad).

    Book: Derivations §VICReg. Returns ``(L, (dZa, dZb))``, gradients of shape (B, h).
    At the hinge's kink (a column std exactly 1) the subgradient 0 is used.
    """
    xp, B, h, D, sa, sb, (inv, va, vb, ca, cb) = _terms(Za, Zb, eps)
    val = lambda_inv * inv + mu * 0.5 * (va + vb) + nu * (ca + cb)
    g_inv = (2.0 * lambda_inv / (B * h)) * D
    dZa = g_inv + _view_grad(sa, B, h, mu, nu)
    dZb = -g_inv + _view_grad(sb, B, h, mu, nu)
    return scalar(xp, val), (dZa, dZb)


def _view_ggn(Zc, Coff, V, B, h, nu):
    """Covariance part of eq. (vic-ggn) for one view: residuals sqrt(nu/h) M ⊙ Cov, Q = 2I."""
    xp = get_xp(Zc)
    Vc = V - V.mean(axis=0, keepdims=True)
    dCov = (Vc.T @ Zc + Zc.T @ Vc) / (B - 1)  # jvp
    dCoff = dCov * (1.0 - xp.eye(h, dtype=Zc.dtype))
    return (4.0 * nu / (h * (B - 1))) * (Zc @ dCoff)  # vjp of Q dr


def ggn_matvec(Za, Zb, Va, Vb, *, lambda_inv, mu, nu, eps):
    """Gauss–Newton product, eq. (vic-ggn) (book: Derivations §Gauss–Newton products).

    Residuals: ``sqrt(lambda_inv / (B h)) (Za - Zb)`` and ``sqrt(nu / h) M ⊙ Cov(Z)`` for each
    view, ``Q = 2 I``; the variance hinge is piecewise linear in the column stds, so it
    has no Gauss–Newton curvature (``mu`` does not enter). Va, Vb (B, h) -> ``(Ua, Ub)``.
    """
    xp, B, h, D, sa, sb, _ = _terms(Za, Zb, eps)
    check_tangents(_NAME, Va=(Za, Va), Vb=(Zb, Vb))
    U_inv = (2.0 * lambda_inv / (B * h)) * (Va - Vb)
    Ua = U_inv + _view_ggn(sa[0], sa[2], Va, B, h, nu)
    Ub = -U_inv + _view_ggn(sb[0], sb[2], Vb, B, h, nu)
    return Ua, Ub


@register
@dataclass(frozen=True)
class VICReg:
    """VICReg loss on two views (spec §3; book: Derivations §VICReg).

    Implements eq. (vic-loss)/(vic-grad), as in the original code:
    ``L = lambda_inv ||Za - Zb||_F^2 / (B h) + mu [v(Za) + v(Zb)] / 2 + nu [c(Za) + c(Zb)]``,
    ``v(Z) = (1/h) sum_j max(0, 1 - sqrt(Var Z_:j + eps))`` with the *unbiased* variance,
    ``c(Z) = (1/h) sum_{i != j} Cov(Z)_ij^2``, ``Cov = Zbar^T Zbar / (B - 1)``.

    Parameters (defaults from ``LOSS_HYPER["vicreg"]``)
    ----------
    lambda_inv : float
        Invariance weight.
    mu : float
        Variance-hinge weight.
    nu : float
        Covariance weight.
    eps : float
        Added to the variance inside the square root.

    Methods take ``Za, Zb`` of shape (B, h) with B >= 2; ``ggn_matvec(Za, Zb, Va, Vb)``
    applies the generalised Gauss–Newton matrix (invariance and covariance residuals; the
    variance hinge has no Gauss–Newton curvature).
    """

    name: ClassVar[str] = _NAME
    objective_class: ClassVar[type] = TwoViewObjective
    lambda_inv: float = _HYPER["lambda_inv"]
    mu: float = _HYPER["mu"]
    nu: float = _HYPER["nu"]
    eps: float = _HYPER["eps"]

    def __post_init__(self):
        for field in ("lambda_inv", "mu", "nu", "eps"):
            if getattr(self, field) < 0:
                raise ValueError(f"{_NAME}: {field} must be >= 0, got {getattr(self, field)}.")

    def _hyper(self):
        return dict(lambda_inv=self.lambda_inv, mu=self.mu, nu=self.nu, eps=self.eps)

    def value(self, Za, Zb):
        """L of eq. (vic-loss) as a 0-d array."""
        return value(Za, Zb, **self._hyper())

    def value_and_grad(self, Za, Zb):
        """``(L, (dZa, dZb))``, eq. (vic-grad)."""
        return value_and_grad(Za, Zb, **self._hyper())

    def ggn_matvec(self, Za, Zb, Va, Vb):
        """``(Ua, Ub) = G (Va, Vb)``, the Gauss–Newton product of eq. (vic-ggn)."""
        return ggn_matvec(Za, Zb, Va, Vb, **self._hyper())

    def terms(self, Za, Zb):
        """The unweighted invariance, variance and covariance terms (see :func:`terms`)."""
        return terms(Za, Zb, eps=self.eps)
