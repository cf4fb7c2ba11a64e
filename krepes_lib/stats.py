"""Statistics for claims: paired differences over seeds, bootstrap intervals, verdict rules.

Book: *Reproduction report* (how verdicts are decided); spec §7.

A claim of the paper is checked by a rule **fixed before the run** and written into the
claim row. The rules here work on *paired* differences across seeds (the same seed gives
both arms the same landmarks, views and labelled subset), and a family of comparisons is
corrected for multiplicity (Holm) before any "holds for k of K" statement:

* :func:`paired_test` — one-sided paired t-test of d_s = a_s − b_s (H₁: mean d > margin, or
  < −margin), with its mean, t-interval and p-value (an exact sign test when every
  difference is the same, where t is undefined);
* :func:`holm` — Holm's step-down adjustment of a family of p-values;
* :func:`bootstrap_ci` — percentile bootstrap interval of a mean (seeded);
* :func:`claim_row` — the report row ``{claim, paper, ours, rule, verdict}`` with the rule
  text generated from the test's parameters, so a row always states how it was decided.

Verdicts are "holds", "does not hold" (the opposite direction is significant) or
"inconclusive" (neither is).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["PairedTest", "paired_test", "holm", "bootstrap_ci", "claim_row", "mean_std",
           "ALPHA", "HOLDS", "FAILS", "INCONCLUSIVE"]

#: Significance level of every verdict (ours).
ALPHA = 0.05
HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"


@dataclass(frozen=True)
class PairedTest:
    """A one-sided paired t-test of d = a − b over seeds.

    Attributes
    ----------
    mean, std : float
        Mean and sample standard deviation of the differences.
    n : int
        Number of pairs (seeds).
    ci_low, ci_high : float
        Two-sided (1 − 2α) t-interval of the mean difference (90 % at α = 0.05: its lower
        end is the one-sided test's bound).
    p_greater, p_less : float
        p-values of H₁: mean > t₀ and H₁: mean < t₀, with the threshold t₀ = +margin for a
        claimed increase ("greater") and −margin for a claimed decrease ("less").
    alternative : {"greater", "less"}
        The claimed direction.
    alpha, margin : float
    verdict : str
        "holds" when the claim (mean beyond t₀ in the claimed direction) is significant,
        "does not hold" when the opposite (mean on the other side of t₀) is, else
        "inconclusive" (always inconclusive with n < 2).
    """

    mean: float
    std: float
    n: int
    ci_low: float
    ci_high: float
    p_greater: float
    p_less: float
    alternative: str
    alpha: float
    margin: float
    verdict: str

    @property
    def p(self) -> float:
        """p-value of the claimed direction."""
        return self.p_greater if self.alternative == "greater" else self.p_less

    def rule(self) -> str:
        """The rule as text for a claim row."""
        side = ">" if self.alternative == "greater" else "<"
        m = f"{'' if self.alternative == 'greater' else '−'}{self.margin:g}" if self.margin else "0"
        return (f"one-sided paired t-test over {self.n} seeds, H₁: mean difference {side} {m}, "
                f"α = {self.alpha:g}")

    def describe(self, digits: int = 3) -> str:
        level = round(100 * (1 - 2 * self.alpha))
        return (f"Δ = {self.mean:+.{digits}f} ({level}% CI {self.ci_low:+.{digits}f} … {self.ci_high:+.{digits}f}, "
                f"n = {self.n}, p = {self.p:.3g})")


def paired_test(a, b, alternative: str = "greater", alpha: float = ALPHA, margin: float = 0.0) -> PairedTest:
    """One-sided paired t-test of d_s = a_s − b_s over seeds s.

    Parameters
    ----------
    a, b : array-like (n,)
        Paired measurements (same seeds, same order).
    alternative : {"greater", "less"}
        The claim: a > b (+ margin) or a < b (− margin).
    alpha : float, default 0.05
    margin : float, default 0
        A difference that must be exceeded (e.g. a noise floor), in the units of a − b.
    """
    from scipy import stats as st

    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired_test: a and b must pair up (same seeds); got {a.size} and {b.size} values.")
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative={alternative!r}: use 'greater' or 'less'.")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha={alpha} must be in (0, 0.5).")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired_test: a and b must be finite (a NaN means a run failed).")
    d = a - b
    n = int(d.size)
    mean = float(d.mean()) if n else math.nan
    std = float(d.std(ddof=1)) if n > 1 else math.nan
    if n < 2:
        return PairedTest(mean, std, n, math.nan, math.nan, math.nan, math.nan, alternative, alpha,
                          margin, INCONCLUSIVE)
    se = std / math.sqrt(n)
    q = float(st.t.ppf(1 - alpha, n - 1))
    t0 = margin if alternative == "greater" else -margin
    if se == 0:
        # All differences equal: the t statistic is undefined. Fall back to the exact sign
        # test (every pair on one side of t₀ has probability 2⁻ⁿ under the null), so that two
        # or three identical differences cannot make a claim "hold".
        pg = 0.5 ** n if mean > t0 else 1.0
        pl = 0.5 ** n if mean < t0 else 1.0
        lo = hi = mean
    else:
        pg = float(st.t.sf((mean - t0) / se, n - 1))
        pl = float(st.t.cdf((mean - t0) / se, n - 1))
        lo, hi = mean - q * se, mean + q * se
    p_claim, p_other = (pg, pl) if alternative == "greater" else (pl, pg)
    verdict = HOLDS if p_claim < alpha else (FAILS if p_other < alpha else INCONCLUSIVE)
    return PairedTest(mean, std, n, lo, hi, pg, pl, alternative, alpha, margin, verdict)


def holm(pvalues, alpha: float = ALPHA):
    """Holm's step-down adjusted p-values (same order) and the rejections at ``alpha``."""
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    k = p.size
    order = np.argsort(p)
    adj = np.empty(k)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (k - rank) * p[i]))
        adj[i] = running
    return adj, adj < alpha


def bootstrap_ci(values, n_boot: int = 1000, ci: float = 0.95, seed: int = 0):
    """Percentile bootstrap interval of the mean of ``values`` (seeded host RNG)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("bootstrap_ci: no finite values.")
    if not 0 < ci < 1:
        raise ValueError(f"ci={ci} must be in (0, 1).")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(int(n_boot), v.size))].mean(axis=1)
    lo, hi = np.percentile(means, [50 * (1 - ci), 50 * (1 + ci)])
    return float(v.mean()), float(lo), float(hi)


def mean_std(values, digits: int = 2, scale: float = 1.0) -> str:
    """``"mean ± std"`` over seeds (sample std; "± n/a" for one value)."""
    v = np.asarray(values, dtype=np.float64).ravel() * scale
    s = f"{v.mean():.{digits}f}"
    return s + (f" ± {v.std(ddof=1):.{digits}f}" if v.size > 1 else " ± n/a")


def claim_row(claim: str, paper: str, ours: str, verdict: str, rule: str, **extra) -> dict:
    """A report row; ``rule`` says how the verdict was decided (fixed before the run)."""
    if verdict not in (HOLDS, FAILS, INCONCLUSIVE) and not verdict.startswith(("holds", "does not",
                                                                               "inconclusive", "not ")):
        raise ValueError(f"verdict={verdict!r}: use 'holds', 'does not hold', 'inconclusive' "
                         "or 'not attempted/comparable ...'.")
    if not rule:
        raise ValueError("claim_row: every claim states the rule that decided it.")
    return {"claim": claim, "paper": paper, "ours": ours, "rule": rule, "verdict": verdict, **extra}
