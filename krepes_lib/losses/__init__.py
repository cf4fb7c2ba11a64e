"""The eight losses of spec §3, each with a hand-derived gradient.

Book: *Derivations* (``book/derivations.md``), one section per loss.

Losses know nothing about kernels: they map embeddings to values and gradients, and the
model lifts the gradients through ``F = K_bm A_tilde + 1 gamma^T`` (eq. (der-chain), book:
Derivations §From the embeddings to the parameters).
Every function is written with ``xp = get_xp(...)`` and runs on NumPy and CuPy alike.

Registry and the objective interface
------------------------------------
``get(name, **hyper)`` returns a frozen dataclass whose fields are the loss's
hyper-parameters, defaults from :data:`krepes_lib.defaults.LOSS_HYPER`.
``make_objective(name_or_loss)`` wraps it in the one interface the training loop, Newton-CG
and the audit use (:mod:`krepes_lib.losses.objective`). Every module of this package is
imported here and registers its loss with ``@register``: a ninth loss is one new file.

Two-view losses (``barlow_twins``, ``vicreg``, ``simclr``, ``spectral_contrastive``,
``simple_contrastive``)::

    loss.value(Za, Zb)                  -> 0-d array
    loss.value_and_grad(Za, Zb)         -> (value, (dZa, dZb))      # Za, Zb: (B, h)
    loss.ggn_matvec(Za, Zb, Va, Vb)     -> (Ua, Ub)                 # G (Va, Vb)

The others (interfaces documented on each class)::

    KPCA.value_and_grad(F, A_tilde, K_mm)            -> (value, (dF, dA_direct))
    KAE.value_and_grad(Z, K_bm, k_diag, B_dec, K_mm) -> (value, (dZ, dB_dec))
    BYOL.value_and_grad(Za, Zb, Ta, Tb, P)           -> (value, (dZa, dZb, dP))

``ggn_matvec`` always takes the value's arguments followed by one direction per gradient
output (same shapes) and returns one product per gradient output, e.g.
``KPCA.ggn_matvec(F, A_tilde, K_mm, VF, VA) -> (UF, UA_direct)``. It applies the
generalised Gauss–Newton matrix ``J^T Q J`` of the loss's residual / logit form (book:
Derivations §Gauss–Newton products) without forming it; the model lifts it through the
linear map ``F = K_bm A_tilde + 1 gamma^T`` (eq. (der-ggn-lift)).

Example
-------
>>> import numpy as np
>>> from krepes_lib import losses
>>> bt = losses.get("barlow_twins")
>>> rng = np.random.default_rng(0)
>>> Za, Zb = rng.standard_normal((2, 8, 3))
>>> L, (dZa, dZb) = bt.value_and_grad(Za, Zb)
>>> dZa.shape
(8, 3)
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil

from .objective import REGISTRY, Batch, Objective, ObjectiveState, TwoViewObjective, register

# Import every loss module once: each registers its class (order: spec §3).
_ORDER = ("kpca", "kae", "simple_contrastive", "spectral_contrastive", "simclr", "barlow_twins",
          "vicreg", "byol")
for _mod in sorted((m.name for m in pkgutil.iter_modules(__path__)
                    if not m.name.startswith("_") and m.name != "objective"),
                   key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n)):
    importlib.import_module(f"{__name__}.{_mod}")

from .barlow_twins import BarlowTwins  # noqa: E402
from .byol import BYOL  # noqa: E402
from .kae import KAE  # noqa: E402
from .kpca import KPCA  # noqa: E402
from .simclr import SimCLR  # noqa: E402
from .simple_contrastive import SimpleContrastive  # noqa: E402
from .spectral_contrastive import SpectralContrastive  # noqa: E402
from .vicreg import VICReg  # noqa: E402

__all__ = [
    "NAMES", "REGISTRY", "get", "make_objective", "register",
    "Objective", "TwoViewObjective", "ObjectiveState", "Batch",
    "KPCA", "KAE", "SimpleContrastive", "SpectralContrastive", "SimCLR", "BarlowTwins", "VICReg",
    "BYOL",
]

#: All registered loss names, in the order of spec §3 (then any added loss).
NAMES = tuple(REGISTRY)


def get(name: str, **hyper):
    """The loss ``name`` with hyper-parameters ``hyper`` (the rest: the dataclass defaults,
    which read :data:`krepes_lib.defaults.LOSS_HYPER`).

    Raises
    ------
    ValueError
        For an unknown name (the message lists :data:`NAMES`).
    TypeError
        For an unknown keyword (the message lists the loss's hyper-parameters).
    """
    try:
        cls = REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(NAMES)}.") from None
    valid = tuple(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(hyper) - set(valid))
    if unknown:
        raise TypeError(
            f"loss {name!r} got unknown hyper-parameter(s) {', '.join(unknown)}; "
            f"valid: {', '.join(valid) if valid else '(none)'}."
        )
    return cls(**hyper)


def make_objective(loss, **hyper) -> Objective:
    """An :class:`Objective` from a loss name, a loss object or an objective (passed through)."""
    if isinstance(loss, Objective):
        if hyper:
            raise TypeError("make_objective: pass hyper-parameters with a loss name, not an objective.")
        return loss
    if isinstance(loss, str):
        loss = get(loss, **hyper)
    elif hyper:
        raise TypeError("make_objective: pass hyper-parameters with a loss name, not a loss object.")
    cls = getattr(loss, "objective_class", None)
    if cls is None:
        if hasattr(loss, "value_and_grad") and hasattr(loss, "ggn_matvec"):
            cls = TwoViewObjective  # a user's two-view loss object
        else:
            raise TypeError(f"loss must be a name, a registered loss or an Objective; got "
                            f"{type(loss).__name__} (it needs value_and_grad and ggn_matvec).")
    return cls(loss)
