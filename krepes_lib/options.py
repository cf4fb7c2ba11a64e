"""One options object for every solver setting, with one set of defaults.

Book: *Theory* (``book/theory.md``), section "Optimisation"; spec §4.

In the spirit of Falkon's ``FalkonOptions``: the training loop (:func:`krepes_lib.fit`),
the one-step audit (:func:`krepes_lib.audit`), the Gauss–Newton operator and conjugate
gradient all read their settings from one :class:`Options` value, passed down unchanged
(change one field with :meth:`Options.replace`). No entry point keeps a default of its own.

Where the paper is silent the values are this project's (spec §4 names Adam's values; the
damping δ, the CG tolerance and cap, the line search and the memory budget are ours).

Example
-------
>>> from krepes_lib.options import Options
>>> opts = Options().replace(damping=1e-1, cg_max_iter=20)
>>> opts.damping, opts.cg_rtol
(0.1, 0.0001)
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

from .defaults import ADAM, BLOCK_BYTES, CG, FEATURE_CACHE_BYTES

__all__ = ["Options", "DEFAULT_OPTIONS", "resolve_options", "apply_feature_budget", "OPTIMIZERS",
           "AUDIT_STEPS"]

#: The optimisers of the one ``fit`` loop (spec §4): first order, or GGN-Newton-CG.
OPTIMIZERS = ("adam", "sgd", "newton_cg")
#: Acceptance rules of the audit step, eq. (audit-accept) (book: *Theory*, §Second-order steps).
AUDIT_STEPS = ("lm", "backtrack", "full")


@dataclass(frozen=True)
class Options:
    """Solver settings shared by ``fit``, ``audit``, the GGN operator and CG.

    Parameters
    ----------
    optimizer : {"adam", "sgd", "newton_cg"}, default "adam"
        The step rule of :func:`krepes_lib.fit` (spec §4).
    lr : float, default 1e-3
        Learning rate of Adam / SGD (spec §4); finite and > 0.
    betas : (float, float), default (0.9, 0.999)
        Adam's moment decay rates (spec §4).
    adam_eps : float, default 1e-8
        Adam's ε (PyTorch's default).
    damping : float, default 1e-2
        δ of H_GN + δI (finite, >= 0) in the audit, in Newton-CG training and in GGN-preconditioned Adam
        (ours: the paper's λ is not public). The book's *Interpretability* chapter says how
        notebooks choose it.
    cg_rtol : float, default 1e-4
        Relative residual at which conjugate gradient stops (ours; reachable in float32, where
        1e-6 is not: ``krepes_lib.defaults.CG`` says how it was chosen).
    cg_max_iter : int, default 200
        CG iteration cap (ours; twice what the quick-size audits need at 1e-4).
    cg_refresh_every : int, default 10
        Recompute the true residual every this many CG iterations.
    armijo : float, default 1e-4
        Sufficient-decrease constant c of the Newton-CG backtracking line search.
    max_halvings : int, default 10
        Step halvings tried by that line search before the step is rejected (and by the
        audit's ``audit_step="backtrack"``).
    audit_step : {"lm", "backtrack", "full"}, default "lm"
        The label-free acceptance rule of the audit step, eq. (audit-accept) (ours: the paper
        takes the full step). ``"lm"``: Levenberg–Marquardt on δ — the step at δ, lm_factor·δ,
        lm_factor²·δ, … (at most ``lm_max_tries`` dampings, all from one multi-shift CG run,
        eq. (cg-shift)) until one lowers its own loss by the Armijo margin (c = ``armijo``);
        ``"backtrack"``: the step at δ shortened by t = 1, ½, ¼, … (``max_halvings``);
        ``"full"``: the unguarded step at δ (the paper's; a δ sweep uses it). Whatever the
        rule, ``Audit`` records every tried δ / t with its loss, and a step that raised its
        own loss is flagged (``loss_rose``) and warned about (``LossIncreaseWarning``).
    lm_factor : float, default 10
        Factor between the dampings the ``"lm"`` rule tries (> 1).
    lm_max_tries : int, default 6
        Dampings the ``"lm"`` rule tries: δ … lm_factor^(lm_max_tries − 1)·δ (δ to 10⁵δ).
    memory_budget : int, default 256 MiB
        Bytes allowed for one kernel block (and for the cached blocks of an audit).
    feature_cache_bytes : int, default 512 MiB
        Bytes of per-row eNTK features the whole process keeps in memory, shared by every
        :class:`krepes_lib.neural.TorchNTK` (:mod:`krepes_lib.neural.features`; beyond it rows
        spill to disk). ``audit`` and ``neural.audit_network`` given these options apply it; 0
        keeps none.
    """

    optimizer: str = "adam"
    lr: float = ADAM["lr"]
    betas: tuple = tuple(ADAM["betas"])
    adam_eps: float = ADAM["eps"]
    damping: float = 1e-2
    cg_rtol: float = CG["rtol"]
    cg_max_iter: int = CG["max_iter"]
    cg_refresh_every: int = CG["refresh_every"]
    armijo: float = 1e-4
    max_halvings: int = 10
    audit_step: str = "lm"
    lm_factor: float = 10.0
    lm_max_tries: int = 6
    memory_budget: int = BLOCK_BYTES
    feature_cache_bytes: int = FEATURE_CACHE_BYTES

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Options.optimizer={self.optimizer!r} is unknown; choose one of {OPTIMIZERS}.")
        real = {"lr", "adam_eps", "damping", "cg_rtol", "armijo", "lm_factor"}
        integral = {"cg_max_iter", "cg_refresh_every", "max_halvings", "memory_budget", "lm_max_tries",
                    "feature_cache_bytes"}
        for name in sorted(real | integral):  # type first: a str never reaches a comparison
            v = getattr(self, name)
            if not isinstance(v, numbers.Real):
                kind = "an integer" if name in integral else "a number"
                raise TypeError(f"Options.{name}={v!r} is a {type(v).__name__}; need {kind}"
                                + (f" (write {name}={v.strip()}, not a string)" if _numeric_str(v) else "")
                                + ".")
            if not math.isfinite(v):
                raise ValueError(f"Options.{name}={v!r}: need a finite number (inf/NaN would make "
                                 "every step zero or undefined).")
        b = self.betas
        if (isinstance(b, (str, bytes)) or not hasattr(b, "__len__") or len(b) != 2
                or not all(isinstance(x, numbers.Real) for x in b)):
            raise TypeError(f"Options.betas={b!r}: need two numbers in [0, 1), e.g. (0.9, 0.999).")
        checks = [
            ("lr", self.lr > 0, "a positive learning rate"),
            ("betas", all(0 <= x < 1 for x in b), "two numbers in [0, 1)"),
            ("adam_eps", self.adam_eps > 0, "a positive number"),
            ("damping", self.damping >= 0, "a finite number >= 0 (δ of H_GN + δI)"),
            ("cg_rtol", 0 < self.cg_rtol < 1, "a number in (0, 1)"),
            ("cg_max_iter", int(self.cg_max_iter) == self.cg_max_iter and self.cg_max_iter >= 1,
             "a positive integer"),
            ("cg_refresh_every", int(self.cg_refresh_every) == self.cg_refresh_every
             and self.cg_refresh_every >= 1, "a positive integer"),
            ("armijo", 0 < self.armijo < 1, "a number in (0, 1)"),
            ("max_halvings", int(self.max_halvings) == self.max_halvings and self.max_halvings >= 0,
             "an integer >= 0"),
            ("audit_step", self.audit_step in AUDIT_STEPS, f"one of {AUDIT_STEPS}"),
            ("lm_factor", self.lm_factor > 1, "a number > 1 (the damping grows by this factor)"),
            ("lm_max_tries", int(self.lm_max_tries) == self.lm_max_tries and self.lm_max_tries >= 1,
             "a positive integer"),
            ("memory_budget", int(self.memory_budget) == self.memory_budget and self.memory_budget > 0,
             "a positive number of bytes"),
            ("feature_cache_bytes", not isinstance(self.feature_cache_bytes, bool)
             and int(self.feature_cache_bytes) == self.feature_cache_bytes and self.feature_cache_bytes >= 0,
             "a number of bytes >= 0"),
        ]
        for name, ok, want in checks:
            if not ok:
                raise ValueError(f"Options.{name}={getattr(self, name)!r}: need {want}.")

    def replace(self, **changes) -> "Options":
        """A copy with ``changes`` applied (``dataclasses.replace``; unknown names are an error)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"Options has no field(s) {unknown}; fields: "
                            f"{[f.name for f in dataclasses.fields(self)]}.")
        return dataclasses.replace(self, **changes)


def _numeric_str(v) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return isinstance(v, str)


#: The project's defaults.
DEFAULT_OPTIONS = Options()


def resolve_options(options: Options | None = None, **overrides) -> Options:
    """``options`` (default :data:`DEFAULT_OPTIONS`) with the non-None ``overrides`` applied.

    Entry points accept a few common settings as keywords (``lr=``, ``damping=``) for
    convenience; they all land here, so the defaults stay in one place.
    """
    opts = DEFAULT_OPTIONS if options is None else options
    if not isinstance(opts, Options):
        raise TypeError(f"options must be a krepes_lib.Options, got {type(opts).__name__}.")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return opts.replace(**changes) if changes else opts


def apply_feature_budget(options: Options) -> None:
    """Make ``options.feature_cache_bytes`` the process-wide eNTK feature budget, when the
    feature store is in use (it is loaded with :class:`krepes_lib.neural.TorchNTK`; nothing
    is imported here)."""
    import sys

    store = sys.modules.get("krepes_lib.neural.features")
    if store is not None:
        store.set_budget(options.feature_cache_bytes)
