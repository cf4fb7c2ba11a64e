"""Kernel auto-encoder: decode z back into the RKHS through the landmarks.

Book: *Derivations* §KAE, eqs. (kae-loss), (kae-grad); spec §3.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..backend import get_xp
from .objective import Objective, register
from ._common import check_matrix, check_same_dtype, check_tangents, scalar

__all__ = ["KAE", "value", "value_and_grad", "ggn_matvec"]

_NAME = "kae"


def _check(Z, K_bm, k_diag, B_dec, K_mm):
    for arr, nm, nd in ((Z, "Z", 2), (K_bm, "K_bm", 2), (k_diag, "k_diag", 1),
                        (B_dec, "B_dec", 2), (K_mm, "K_mm", 2)):
        check_matrix(arr, nm, _NAME, ndim=nd)
    xp = get_xp(Z, K_bm, k_diag, B_dec, K_mm)
    check_same_dtype(_NAME, Z=Z, K_bm=K_bm, k_diag=k_diag, B_dec=B_dec, K_mm=K_mm)
    B, h = Z.shape
    m = K_mm.shape[0]
    if K_mm.shape != (m, m):
        raise ValueError(f"{_NAME}: K_mm must be square (m, m), got {tuple(K_mm.shape)}.")
    if K_bm.shape != (B, m):
        raise ValueError(
            f"{_NAME}: K_bm must be (B, m) = ({B}, {m}) for Z {tuple(Z.shape)} and K_mm "
            f"{tuple(K_mm.shape)}, got {tuple(K_bm.shape)}."
        )
    if k_diag.shape != (B,):
        raise ValueError(f"{_NAME}: k_diag must be (B,) = ({B},), got {tuple(k_diag.shape)}.")
    if B_dec.shape != (m, h):
        raise ValueError(f"{_NAME}: B_dec must be (m, h) = ({m}, {h}), got {tuple(B_dec.shape)}.")
    if B < 1 or h < 1:
        raise ValueError(f"{_NAME}: needs B >= 1 and h >= 1, got Z {tuple(Z.shape)}.")
    return xp, B


def _forward(Z, K_bm, k_diag, B_dec, K_mm):
    xp, B = _check(Z, K_bm, k_diag, B_dec, K_mm)
    R = Z @ B_dec.T  # decoder coefficients on the landmarks, (B, m)
    RK = R @ K_mm
    val = (k_diag.sum() - 2.0 * (K_bm * R).sum() + (RK * R).sum()) / B
    return xp, B, (R, RK), val


def value(Z, K_bm, k_diag, B_dec, K_mm):
    """KAE loss of eq. (kae-loss) (book: Derivations §KAE).

    Parameters
    ----------
    Z : array (B, h)
        Codes ``z = A_tilde^T k_x`` of the batch (rows).
    K_bm : array (B, m)
        Kernel between the batch and the landmarks (rows ``k_x^T``).
    k_diag : array (B,)
        ``k(x, x)`` for the batch.
    B_dec : array (m, h)
        Decoder: ``ghat(z) = sum_l phi(x_l) (B_dec z)_l``.
    K_mm : array (m, m)
        Landmark kernel matrix.

    Returns
    -------
    0-d array ``mean_i [k(x_i, x_i) - 2 k_i^T B_dec z_i + z_i^T B_dec^T K_mm B_dec z_i]``
    (the mean squared RKHS reconstruction error; >= 0 for a PSD kernel).
    """
    xp, _, _, val = _forward(Z, K_bm, k_diag, B_dec, K_mm)
    return scalar(xp, val)


def value_and_grad(Z, K_bm, k_diag, B_dec, K_mm):
    """Value and gradients of eq. (kae-loss); implements eq. (kae-grad).

    Book: Derivations §KAE. Returns ``(L, (dZ, dB_dec))`` of shapes (B, h), (m, h).
    The model lifts ``dZ`` through ``Z = K_bm A_tilde`` (``K_bm^T dZ``).
    """
    xp, B, (R, RK), val = _forward(Z, K_bm, k_diag, B_dec, K_mm)
    Err = (2.0 / B) * (RK - K_bm)  # dL/dR, (B, m)
    return scalar(xp, val), (Err @ B_dec, Err.T @ Z)


def ggn_matvec(Z, K_bm, k_diag, B_dec, K_mm, VZ, VB):
    """Gauss–Newton product, eq. (kae-ggn) (book: Derivations §Gauss–Newton products).

    The loss is least squares in the RKHS on ``phi(x_i) - sum_l phi(x_l) R_il``, linear
    in the decoder coefficients ``R = Z B_dec^T``, with ``Q = (2/B) I``; in coefficients the
    RKHS inner product is ``K_mm``. So ``G (VZ, VB)`` is the vjp through R of
    ``(2/B) dR K_mm`` with ``dR = VZ B_dec^T + Z VB^T``. Directions VZ (B, h), VB (m, h);
    returns ``(UZ, UB)``. (K_bm and k_diag do not enter; they are checked and accepted so
    the signature mirrors :func:`value_and_grad`.)
    """
    xp, B = _check(Z, K_bm, k_diag, B_dec, K_mm)
    check_tangents(_NAME, VZ=(Z, VZ), VB=(B_dec, VB))
    G = (2.0 / B) * ((VZ @ B_dec.T + Z @ VB.T) @ K_mm)  # Q jvp, (B, m)
    return G @ B_dec, G.T @ Z  # vjp


class KAEObjective(Objective):
    """One view; owns the decoder ``B_dec`` (m, h), initialised to Ã₀ (raw coordinates).

    At the PC initialisation this is the optimal decoder: it reconstructs the projection of
    φ(x) on the top-h Nyström directions. The code z is the model's output
    F = K_bm Ã + 1γᵀ (γ included; γ₀ = 0), eq. (kae-loss).
    """

    views = 1

    def init_state(self, model):
        from .objective import ObjectiveState

        return ObjectiveState(params={"B_dec": model.A_tilde.copy()})

    def prepare(self, model, state, batch):
        batch.extra["k_diag"] = model.nystrom.kernel.diag(batch.X, dtype=model.dtype)

    def _value(self, batch, F, A, aux, K_mm):
        return self.loss.value(F, batch.K, batch.extra["k_diag"], aux["B_dec"], K_mm)

    def _value_and_grad(self, batch, F, A, aux, K_mm):
        val, (dF, dB) = self.loss.value_and_grad(F, batch.K, batch.extra["k_diag"], aux["B_dec"], K_mm)
        return val, dF, None, {"B_dec": dB}

    def _ggn(self, batch, F, A, aux, K_mm, VF, VA, Vaux):
        Bd = aux["B_dec"]
        VB = Vaux.get("B_dec")
        if VB is None:
            VB = get_xp(Bd).zeros_like(Bd)
        UF, UB = self.loss.ggn_matvec(F, batch.K, batch.extra["k_diag"], Bd, K_mm, VF, VB)
        return UF, None, {"B_dec": UB}


@register
@dataclass(frozen=True)
class KAE:
    """Kernel auto-encoder loss (spec §3; book: Derivations §KAE).

    Implements eq. (kae-loss)/(kae-grad):
    ``L = mean_i || phi(x_i) - sum_l phi(x_l) (B_dec z_i)_l ||_H^2``
    ``  = mean_i [k(x_i, x_i) - 2 k_i^T B_dec z_i + z_i^T B_dec^T K_mm B_dec z_i]``.
    No hyper-parameters (``LOSS_HYPER["kae"]`` is empty).

    Methods: ``value(Z, K_bm, k_diag, B_dec, K_mm)``,
    ``value_and_grad(Z, K_bm, k_diag, B_dec, K_mm) -> (L, (dZ, dB_dec))``,
    ``ggn_matvec(Z, K_bm, k_diag, B_dec, K_mm, VZ, VB) -> (UZ, UB)`` with Z (B, h),
    K_bm (B, m), k_diag (B,), B_dec (m, h), K_mm (m, m).
    """

    name: ClassVar[str] = _NAME
    objective_class: ClassVar[type] = KAEObjective

    def value(self, Z, K_bm, k_diag, B_dec, K_mm):
        """L of eq. (kae-loss) as a 0-d array."""
        return value(Z, K_bm, k_diag, B_dec, K_mm)

    def value_and_grad(self, Z, K_bm, k_diag, B_dec, K_mm):
        """``(L, (dZ, dB_dec))``, eq. (kae-grad)."""
        return value_and_grad(Z, K_bm, k_diag, B_dec, K_mm)

    def ggn_matvec(self, Z, K_bm, k_diag, B_dec, K_mm, VZ, VB):
        """``(UZ, UB) = G (VZ, VB)``, the Gauss–Newton product of eq. (kae-ggn)."""
        return ggn_matvec(Z, K_bm, k_diag, B_dec, K_mm, VZ, VB)
