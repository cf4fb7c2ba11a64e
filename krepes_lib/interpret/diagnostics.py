"""Is the influence sample-specific? The concentration of the top-1 landmarks over test rows.

Book: *Interpretability* eq. (int-is); *The empirical NTK of a network*, section "Influence
that means something" (eq. (int-concentration)).

IS(x̃_l, x_t) = |k(x̃_l, x_t)|·‖ΔÃ_l‖ explains a test point by the landmarks it is most
similar to — unless one landmark wins everywhere. With an unnormalised eNTK, k(x, x') grows
with the norms of the inputs' gradients, so a landmark with a large gradient norm can be the
top-1 of almost every test row (users-round2, user 2: 498 of 500). Over the n_t test rows, with
c_l the number of rows whose top-1 is landmark l,

    share = max_l c_l / n_t,      H = −Σ_l (c_l/n_t) log(c_l/n_t) / log min(m, n_t),   (int-concentration)

``share`` is the fraction of rows explained by the most common top-1 landmark and H ∈ [0, 1]
the normalised entropy of the top-1 distribution (1: every landmark equally often, 0: one
landmark for all). The rule fixed here: influence is **degenerate** when share ≥ 0.5 or
H < 0.5 (ours); then :meth:`krepes_lib.Audit.summary` warns and suggests the normalised eNTK
(``TorchNTK(normalize=True)``, k/√(k(x,x)k(x′,x′))).
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..backend import to_host

__all__ = ["influence_concentration", "InfluenceConcentrationWarning", "DEGENERATE_SHARE",
           "DEGENERATE_ENTROPY"]

#: A top-1 landmark shared by at least this fraction of test rows makes influence degenerate (ours).
DEGENERATE_SHARE = 0.5
#: A normalised top-1 entropy below this makes influence degenerate (ours).
DEGENERATE_ENTROPY = 0.5


class InfluenceConcentrationWarning(UserWarning):
    """The top-1 influential landmark is (nearly) the same for most test rows."""


def influence_concentration(top1, m: int, warn: bool = False) -> dict:
    """Concentration of the top-1 landmarks, eq. (int-concentration).

    Parameters
    ----------
    top1 : array (n_t,) of int
        The top-1 landmark of every test row (``audit.top_influential(X_t, K=1).indices[:, 0]``).
    m : int
        Number of landmarks.
    warn : bool
        Emit :class:`InfluenceConcentrationWarning` when degenerate.

    Returns
    -------
    dict with ``top1_share`` (largest fraction of rows with the same top-1), ``top1_landmark``
    (that landmark), ``top1_entropy`` (normalised, in [0, 1]), ``top1_distinct`` (landmarks that
    are the top-1 of some row), ``n_test`` and ``degenerate`` (the rule above).
    """
    t = np.asarray(to_host(top1), dtype=np.int64).ravel()
    if t.size == 0:
        raise ValueError("influence_concentration needs the top-1 landmark of at least one test row.")
    if int(m) < 1 or t.min() < 0 or t.max() >= int(m):
        raise ValueError(f"top1 holds landmark indices outside [0, m={m}).")
    counts = np.bincount(t, minlength=int(m))
    p = counts[counts > 0] / t.size
    denom = math.log(min(int(m), t.size))
    H = float(-(p * np.log(p)).sum() / denom) if denom > 0 else 0.0
    share = float(counts.max() / t.size)
    out = {"top1_share": share, "top1_landmark": int(counts.argmax()), "top1_entropy": H,
           "top1_distinct": int((counts > 0).sum()), "n_test": int(t.size),
           "degenerate": bool(share >= DEGENERATE_SHARE or H < DEGENERATE_ENTROPY)}
    if warn and out["degenerate"]:
        warnings.warn(
            f"influence is not sample-specific: landmark {out['top1_landmark']} is the top-1 of "
            f"{share:.0%} of the {t.size} test rows (top-1 entropy {H:.2f}). In IS = |k|·‖ΔÃ_l‖ a few "
            "large-norm landmarks (an unnormalised eNTK grows with gradient norms) or a few large rows "
            "of ΔÃ win everywhere; try the normalised eNTK (TorchNTK(..., normalize=True) or "
            "audit_network(..., normalize=True)) and read the influence lists with care.",
            InfluenceConcentrationWarning, stacklevel=3)
    return out
