"""Kernel PCA as a loss: maximise the centred variance of the batch features under a
soft whitening constraint.

Book: *Derivations* §KPCA, eqs. (kpca-loss), (kpca-grad), (kpca-opt); spec §3.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..backend import get_xp
from ..defaults import LOSS_HYPER
from .objective import Objective, register
from ._common import check_matrix, check_same_dtype, check_tangents, scalar

__all__ = ["KPCA", "value", "value_and_grad", "ggn_matvec"]

_NAME = "kpca"
_HYPER = LOSS_HYPER[_NAME]


def _check(F, A_tilde, K_mm):
    check_matrix(F, "F", _NAME)
    check_matrix(A_tilde, "A_tilde", _NAME)
    check_matrix(K_mm, "K_mm", _NAME)
    xp = get_xp(F, A_tilde, K_mm)
    check_same_dtype(_NAME, F=F, A_tilde=A_tilde, K_mm=K_mm)
    B, h = F.shape
    m = A_tilde.shape[0]
    if A_tilde.shape[1] != h:
        raise ValueError(
            f"{_NAME}: F is (B, h) = {tuple(F.shape)} but A_tilde is {tuple(A_tilde.shape)}; "
            "A_tilde must be (m, h) with the same h."
        )
    if K_mm.shape != (m, m):
        raise ValueError(f"{_NAME}: K_mm must be (m, m) = ({m}, {m}), got {tuple(K_mm.shape)}.")
    if B < 2:
        raise ValueError(
            f"{_NAME}: needs a batch of B >= 2 samples (the variance is centred); got B = {B}."
        )
    if h < 1:
        raise ValueError(f"{_NAME}: h must be >= 1, got {h}.")
    return xp, B, h


def _forward(F, A_tilde, K_mm, beta):
    xp, B, h = _check(F, A_tilde, K_mm)
    Fc = F - F.mean(axis=0, keepdims=True)  # H F
    KA = K_mm @ A_tilde
    E = A_tilde.T @ KA - xp.eye(h, dtype=F.dtype)  # A^T K_mm A - I_h, symmetric
    val = -(Fc * Fc).sum() / B + 0.5 * beta * (E * E).sum()
    return xp, B, (Fc, KA, E), val


def value(F, A_tilde, K_mm, *, beta):
    """KPCA loss of eq. (kpca-loss) (book: Derivations §KPCA).

    Parameters
    ----------
    F : array (B, h), B >= 2
        Batch features ``F = K_bm A_tilde + 1 gamma^T`` (gamma drops out: F is centred).
    A_tilde : array (m, h)
        Landmark coefficients.
    K_mm : array (m, m)
        Landmark kernel matrix.
    beta : float
        Weight of the whitening penalty.

    Returns
    -------
    0-d array ``-(1/B) ||H F||_F^2 + (beta/2) ||A_tilde^T K_mm A_tilde - I_h||_F^2``,
    the spec's 1/n read as the batch mean (the full-batch loss when B = n).
    """
    xp, _, _, val = _forward(F, A_tilde, K_mm, beta)
    return scalar(xp, val)


def value_and_grad(F, A_tilde, K_mm, *, beta):
    """Value and gradients of eq. (kpca-loss); implements eq. (kpca-grad).

    Book: Derivations §KPCA. Returns ``(L, (dF, dA_direct))``: ``dF`` (B, h) is the
    gradient w.r.t. the batch features, to be lifted by the model through
    ``F = K_bm A_tilde + 1 gamma^T`` (``K_bm^T dF``); ``dA_direct`` (m, h) is the gradient
    of the penalty term, which depends on A_tilde directly. The total is
    ``grad_A L = K_bm^T dF + dA_direct``.
    """
    xp, B, (Fc, KA, E), val = _forward(F, A_tilde, K_mm, beta)
    dF = (-2.0 / B) * Fc
    dA = (2.0 * beta) * (KA @ E)
    return scalar(xp, val), (dF, dA)


def ggn_matvec(F, A_tilde, K_mm, VF, VA, *, beta, variance_curvature=False):
    """Gauss–Newton product, eq. (kpca-ggn) (book: Derivations §Gauss–Newton products).

    The penalty is least squares on ``E = A_tilde^T K_mm A_tilde - I`` with ``Q = beta I``:
    ``UA_direct = 2 beta K_mm A_tilde (VA^T K_mm A_tilde + A_tilde^T K_mm VA)`` (PSD).
    The variance term ``-(1/B) ||H F||^2`` has a *concave* outer function (``Q = -(2/B) I``
    on the residual ``H F``), so it is left out by default (``UF = 0``) and the product is
    PSD, as conjugate gradients need. ``variance_curvature=True`` adds its exact curvature
    ``UF = -(2/B) H VF`` (the loss is quadratic in F): then ``K_bm^T UF + UA_direct`` is the
    exact Hessian of the variance term plus the penalty's Gauss–Newton part, symmetric but
    indefinite.

    Directions VF (B, h) for F (the model passes ``K_bm VA``) and VA (m, h) for the direct
    dependence on A_tilde; returns ``(UF, UA_direct)``, lifted by the model like
    eq. (kpca-grad): ``U_A = K_bm^T UF + UA_direct``.
    """
    xp, B, (Fc, KA, E), _ = _forward(F, A_tilde, K_mm, beta)
    check_tangents(_NAME, VF=(F, VF), VA=(A_tilde, VA))
    T = VA.T @ KA
    UA = (2.0 * beta) * (KA @ (T + T.T))
    if variance_curvature:
        UF = (-2.0 / B) * (VF - VF.mean(axis=0, keepdims=True))
    else:
        UF = xp.zeros_like(VF)
    return UF, UA


class KPCAObjective(Objective):
    """One view; the whitening penalty depends on Ã directly (eq. (kpca-grad), (kpca-ggn))."""

    views = 1

    def _value(self, batch, F, A, aux, K_mm):
        return self.loss.value(F, A, K_mm)

    def _value_and_grad(self, batch, F, A, aux, K_mm):
        val, (dF, dA) = self.loss.value_and_grad(F, A, K_mm)
        return val, dF, dA, {}

    def _ggn(self, batch, F, A, aux, K_mm, VF, VA, Vaux):
        UF, UA = self.loss.ggn_matvec(F, A, K_mm, VF, VA)
        return UF, UA, {}


@register
@dataclass(frozen=True)
class KPCA:
    """Kernel PCA loss (spec §3; book: Derivations §KPCA).

    Implements eq. (kpca-loss)/(kpca-grad):
    ``L = -(1/B) ||H F||_F^2 + (beta/2) ||A_tilde^T K_mm A_tilde - I_h||_F^2`` with
    ``H = I - 11^T/B``. Its minimisers span the top-h centred Nyström KPCA directions
    (eq. (kpca-opt)).

    Parameters
    ----------
    beta : float, default ``LOSS_HYPER["kpca"]["beta"]``
        Weight of the whitening penalty (> 0 for a bounded loss).

    Methods: ``value(F, A_tilde, K_mm)``, ``value_and_grad(F, A_tilde, K_mm) ->
    (L, (dF, dA_direct))``, ``ggn_matvec(F, A_tilde, K_mm, VF, VA) -> (UF, UA_direct)``
    (the penalty's Gauss–Newton part; see :func:`ggn_matvec` for the variance term) with
    F (B, h), B >= 2, A_tilde (m, h), K_mm (m, m).
    """

    name: ClassVar[str] = _NAME
    objective_class: ClassVar[type] = KPCAObjective
    beta: float = _HYPER["beta"]

    def __post_init__(self):
        if self.beta < 0:
            raise ValueError(f"{_NAME}: beta must be >= 0, got {self.beta}.")

    def value(self, F, A_tilde, K_mm):
        """L of eq. (kpca-loss) as a 0-d array."""
        return value(F, A_tilde, K_mm, beta=self.beta)

    def value_and_grad(self, F, A_tilde, K_mm):
        """``(L, (dF, dA_direct))``, eq. (kpca-grad)."""
        return value_and_grad(F, A_tilde, K_mm, beta=self.beta)

    def ggn_matvec(self, F, A_tilde, K_mm, VF, VA, variance_curvature=False):
        """``(UF, UA_direct)``, the Gauss–Newton product of eq. (kpca-ggn)."""
        return ggn_matvec(F, A_tilde, K_mm, VF, VA, beta=self.beta,
                          variance_curvature=variance_curvature)
