"""Shared pieces of the losses: input checks and the two Jacobians several losses reuse.

Book: *Derivations* (``book/derivations.md``), section "Building blocks":
the standardisation of eq. (std-fwd) with its Jacobian eq. (std-jac), and the row
normalisation of eq. (norm-fwd) with its Jacobian eq. (norm-jac). Both Jacobians are
symmetric, so one function serves as jvp and as vjp.

Everything here is written with ``xp = get_xp(...)`` and works for NumPy and CuPy alike.
"""
from __future__ import annotations

from typing import Any

from ..backend import get_xp

__all__ = [
    "check_matrix",
    "check_views",
    "check_same_dtype",
    "check_tangents",
    "scalar",
    "standardise",
    "standardise_jac",
    "normalise_rows",
    "normalise_rows_jac",
    "NORM_FLOOR",
]

#: Row norms are clipped from below at this value before dividing (as torch's
#: ``F.normalize``); the hand-derived Jacobian assumes rows with a larger norm.
NORM_FLOOR = 1e-12


def check_matrix(X: Any, name: str, loss: str, ndim: int = 2):
    """Raise a clear error unless ``X`` is a floating array with ``ndim`` dimensions."""
    if not hasattr(X, "ndim") or not hasattr(X, "dtype"):
        raise TypeError(f"{loss}: {name} must be a NumPy or CuPy array, got {type(X).__name__}.")
    if X.ndim != ndim:
        raise ValueError(f"{loss}: {name} must be {ndim}-D, got shape {tuple(X.shape)}.")
    if X.dtype.kind != "f":
        raise TypeError(
            f"{loss}: {name} has dtype {X.dtype}; pass float32 or float64 arrays "
            "(krepes_lib.backend.asarray converts)."
        )


def check_same_dtype(loss: str, **arrays):
    """Raise TypeError when the arrays do not share one dtype (no silent promotion)."""
    dtypes = {k: v.dtype for k, v in arrays.items()}
    if len(set(dtypes.values())) > 1:
        desc = ", ".join(f"{k}: {d}" for k, d in dtypes.items())
        raise TypeError(f"{loss}: inputs must share one dtype, got {desc}.")


def check_views(
    Za: Any, Zb: Any, loss: str, min_batch: int = 1, why: str = "", names=("Za", "Zb")
):
    """Check the two views of a batch; return ``(xp, B, h)``.

    Both must be floating 2-D arrays of one namespace, one dtype and the same shape
    ``(B, h)`` with ``B >= min_batch`` and ``h >= 1``.
    """
    na, nb = names
    check_matrix(Za, na, loss)
    check_matrix(Zb, nb, loss)
    xp = get_xp(Za, Zb)
    if Za.shape != Zb.shape:
        raise ValueError(
            f"{loss}: the two views must have the same shape (B, h); "
            f"got {na} {tuple(Za.shape)} and {nb} {tuple(Zb.shape)}."
        )
    check_same_dtype(loss, **{na: Za, nb: Zb})
    B, h = Za.shape
    if h < 1:
        raise ValueError(f"{loss}: the representation dimension h must be >= 1, got {h}.")
    if B < min_batch:
        raise ValueError(
            f"{loss}: needs a batch of B >= {min_batch} samples{why}; got B = {B}."
        )
    return xp, B, h


def check_tangents(loss: str, **pairs):
    """Check GGN directions against their points: ``name=(point, direction)``.

    Each direction must be an array of its point's shape, namespace and dtype.
    """
    for nm, (X, V) in pairs.items():
        check_matrix(V, nm, loss, ndim=X.ndim)
        get_xp(X, V)  # raises on a host/device mix
        if V.shape != X.shape:
            raise ValueError(
                f"{loss}: the direction {nm} must have the shape of its point, "
                f"{tuple(X.shape)}; got {tuple(V.shape)}."
            )
        if V.dtype != X.dtype:
            raise TypeError(f"{loss}: the direction {nm} has dtype {V.dtype}, its point {X.dtype}.")


def scalar(xp, value):
    """A 0-d array of ``xp`` (NumPy reductions return NumPy scalars; make them arrays)."""
    return xp.asarray(value)


# --- standardisation: eq. (std-fwd), (std-jac) -------------------------------------
def standardise(Z, eps: float):
    """Column standardisation with the biased variance (batch-norm, training mode).

    ``Zbar = (Z - mean) / s`` with ``s = sqrt(var + eps)``, ``var`` the biased (1/B)
    variance of each column. Returns ``(Zbar, s)``, shapes ``(B, h)`` and ``(h,)``.
    Implements eq. (std-fwd).
    """
    xp = get_xp(Z)
    Zc = Z - Z.mean(axis=0, keepdims=True)
    s = xp.sqrt((Zc * Zc).mean(axis=0) + eps)
    return Zc / s, s


def standardise_jac(Zbar, s, V):
    """The Jacobian of :func:`standardise` applied to ``V`` (B, h); it is symmetric.

    ``J V = (V - mean(V) - Zbar * mean(Zbar * V)) / s`` column by column, so the same
    function is the jvp and the vjp. Implements eq. (std-jac).
    """
    return (
        V - V.mean(axis=0, keepdims=True) - Zbar * (Zbar * V).mean(axis=0, keepdims=True)
    ) / s


# --- row normalisation: eq. (norm-fwd), (norm-jac) ---------------------------------
def normalise_rows(Z):
    """``Zhat = Z / ||Z||`` row by row; returns ``(Zhat, norms)`` with norms of shape (B, 1).

    Norms are clipped from below at :data:`NORM_FLOOR`. Implements eq. (norm-fwd).
    """
    xp = get_xp(Z)
    norms = xp.maximum(xp.sqrt((Z * Z).sum(axis=1, keepdims=True)), NORM_FLOOR)
    return Z / norms, norms


def normalise_rows_jac(Zhat, norms, V):
    """The (symmetric) Jacobian of :func:`normalise_rows` applied to ``V``, row by row.

    ``(v - zhat (zhat . v)) / ||z||`` for every row. Implements eq. (norm-jac).
    """
    return (V - Zhat * (Zhat * V).sum(axis=1, keepdims=True)) / norms
