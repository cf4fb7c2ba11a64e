"""SimCLR's NT-Xent loss over the 2B stacked views, self-similarity excluded.

Book: *Derivations* §SimCLR, eqs. (simclr-loss), (simclr-grad); spec §3.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..defaults import LOSS_HYPER
from .objective import TwoViewObjective, register
from ._common import check_tangents, check_views, normalise_rows, normalise_rows_jac, scalar

__all__ = ["SimCLR", "value", "value_and_grad", "ggn_matvec"]

_NAME = "simclr"
_HYPER = LOSS_HYPER[_NAME]


def _forward(Za, Zb, tau):
    xp, B, h = check_views(
        Za, Zb, _NAME, min_batch=2,
        why=" (with B = 1 each anchor's positive is its only candidate: the loss is identically 0)")
    N = 2 * B
    Z = xp.concatenate([Za, Zb], axis=0)  # (2B, h): rows 0..B-1 view a, B..2B-1 view b
    Zhat, norms = normalise_rows(Z)
    S = Zhat @ Zhat.T / tau
    self_mask = xp.eye(N, dtype=bool)
    Smask = xp.where(self_mask, -xp.inf, S)  # the self-similarity is no logit
    smax = Smask.max(axis=1, keepdims=True)
    E = xp.exp(Smask - smax)  # exp(-inf) = 0 on the diagonal
    Esum = E.sum(axis=1, keepdims=True)
    P = E / Esum  # row softmax over j != k, P_kk = 0
    rows = xp.arange(N)
    pos = (rows + B) % N  # the other view of the same sample
    lse = smax[:, 0] + xp.log(Esum[:, 0])
    val = (lse - S[rows, pos]).mean()  # numerically stable -log softmax
    return xp, B, N, (Zhat, norms, P, rows, pos), val


def value(Za, Zb, *, tau):
    """NT-Xent loss of eq. (simclr-loss) (book: Derivations §SimCLR).

    Parameters
    ----------
    Za, Zb : array (B, h), B >= 1
    tau : float
        Temperature; logits ``S = Zhat Zhat^T / tau`` of the 2B row-normalised views.

    Returns
    -------
    0-d array: the mean over the 2B anchors of ``-log softmax_{j != k}(S_k)_{pos(k)}``.
    Rows with norm below ``_common.NORM_FLOOR`` are divided by the floor instead.
    """
    xp, _, _, _, val = _forward(Za, Zb, tau)
    return scalar(xp, val)


def value_and_grad(Za, Zb, *, tau):
    """Value and gradient of eq. (simclr-loss); implements eq. (simclr-grad).

    Book: Derivations §SimCLR. Returns ``(L, (dZa, dZb))`` of shapes (B, h).
    """
    xp, B, N, (Zhat, norms, P, rows, pos), val = _forward(Za, Zb, tau)
    G = P.copy()
    G[rows, pos] -= 1.0  # dL/dS = (P - Y) / N, zero diagonal
    G /= N
    dZhat = (G + G.T) @ Zhat / tau
    dZ = normalise_rows_jac(Zhat, norms, dZhat)
    return scalar(xp, val), (dZ[:B], dZ[B:])


def ggn_matvec(Za, Zb, Va, Vb, *, tau):
    """Gauss–Newton product, eq. (simclr-ggn) (book: Derivations §Gauss–Newton products).

    Outer function: the row-softmax cross-entropy on the logits ``S`` (off-diagonal
    entries), ``Q = block-diag((diag(p_k) - p_k p_k^T) / N)``, N = 2B; the Jacobian goes
    through the row normalisation (eq. (norm-jac)). Computed as
    ``vjp(P ⊙ u - P (rowsum(P ⊙ u)))`` with ``u = jvp(V)``. Va, Vb (B, h) -> ``(Ua, Ub)``.
    """
    xp, B, N, (Zhat, norms, P, rows, pos), _ = _forward(Za, Zb, tau)
    check_tangents(_NAME, Va=(Za, Va), Vb=(Zb, Vb))
    dZhat = normalise_rows_jac(Zhat, norms, xp.concatenate([Va, Vb], axis=0))
    T = dZhat @ Zhat.T
    dS = (T + T.T) / tau  # jvp of the logits (the diagonal is masked by P_kk = 0)
    PU = P * dS
    QdS = (PU - P * PU.sum(axis=1, keepdims=True)) / N
    U = normalise_rows_jac(Zhat, norms, (QdS + QdS.T) @ Zhat / tau)  # vjp
    return U[:B], U[B:]


@register
@dataclass(frozen=True)
class SimCLR:
    """SimCLR / NT-Xent loss on two views (spec §3; book: Derivations §SimCLR).

    Implements eq. (simclr-loss)/(simclr-grad): stack the 2B views, ``zhat = z / ||z||``,
    logits ``S = Zhat Zhat^T / tau`` with the diagonal excluded; each of the 2B rows is
    an anchor whose positive is the other view of its sample;
    ``L = mean_k [ -S_{k,pos(k)} + log sum_{j != k} exp S_kj ]``.

    Parameters
    ----------
    tau : float, default ``LOSS_HYPER["simclr"]["tau"]``
        Temperature (> 0).

    Methods take ``Za, Zb`` of shape (B, h) with B >= 1 (B = 1 gives L = 0: each anchor
    has a single logit, its positive); ``ggn_matvec(Za, Zb, Va, Vb)`` applies the
    generalised Gauss–Newton matrix (softmax cross-entropy on the logits).
    """

    name: ClassVar[str] = _NAME
    objective_class: ClassVar[type] = TwoViewObjective
    tau: float = _HYPER["tau"]

    def __post_init__(self):
        if not self.tau > 0:
            raise ValueError(f"{_NAME}: tau must be > 0, got {self.tau}.")

    def value(self, Za, Zb):
        """L of eq. (simclr-loss) as a 0-d array."""
        return value(Za, Zb, tau=self.tau)

    def value_and_grad(self, Za, Zb):
        """``(L, (dZa, dZb))``, eq. (simclr-grad)."""
        return value_and_grad(Za, Zb, tau=self.tau)

    def ggn_matvec(self, Za, Zb, Va, Vb):
        """``(Ua, Ub) = G (Va, Vb)``, the Gauss–Newton product of eq. (simclr-ggn)."""
        return ggn_matvec(Za, Zb, Va, Vb, tau=self.tau)
