"""The library's own warning classes (as scikit-learn's ``sklearn.exceptions``).

Book: *Theory* (``book/theory.md``), section "Second-order steps", eqs. (audit-step),
(audit-accept) and (cg).

Filter them like any warning, e.g. ``warnings.simplefilter("error", kr.ConvergenceWarning)``
to make a claim fail on an unconverged solve, or ``"ignore"`` to silence them.

* :class:`ConvergenceWarning` — conjugate gradient stopped at its iteration cap (or broke
  down) without reaching its tolerance, eq. (cg): the step solves the damped system only
  approximately (``Audit.cg``, ``Audit.summary()["cg_converged"]``).
* :class:`LossIncreaseWarning` — the audit step raised its own loss at every damping δ (or
  step length) that the acceptance rule tried, eq. (audit-accept): the returned step is the
  least bad one tried and ``Audit.loss_rose`` is True.
"""
from __future__ import annotations

__all__ = ["KrepesWarning", "ConvergenceWarning", "LossIncreaseWarning"]


class KrepesWarning(UserWarning):
    """Base class of the warnings krepes_lib issues."""


class ConvergenceWarning(KrepesWarning):
    """An iterative solver (conjugate gradient) stopped before reaching its tolerance."""


class LossIncreaseWarning(KrepesWarning):
    """A step raised the loss it was meant to lower, at every setting the acceptance rule tried."""
