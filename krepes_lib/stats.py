"""Statistics the claims are decided with: paired differences over seeds, Holm, bootstrap, log-log fits.

Book: *Reproduction report* (how verdicts are decided); *Scaling* eq. (sc-loglog); spec §7.

This module computes; it decides nothing. Verdicts ("holds", "does not hold", ...) come from
the rules of the claims engine (:mod:`krepes_lib.claims`), which call:

* :func:`paired_test` — one-sided paired t-test of d_s = a_s − b_s (H₁: mean d > margin, or
  < −margin), with its mean, t-interval and p-values of both directions (an exact sign test
  when every difference is the same, where t is undefined);
* :func:`holm` — Holm's step-down adjustment of a family of p-values;
* :func:`bootstrap_ci` — percentile bootstrap interval of a mean (seeded);
* :func:`fit_loglog` — the least-squares slope of log t on log n with a t-interval and a
  bootstrap interval (eq. (sc-loglog)), and :func:`crossover_n` of two fitted power laws;
* :func:`mean_std` — "mean ± std" over seeds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["PairedTest", "paired_test", "holm", "bootstrap_ci", "paired_bootstrap", "mean_std", "LogLogFit", "fit_loglog",
           "crossover_n", "ALPHA"]

#: Significance level of every verdict (ours; the claims engine's default).
ALPHA = 0.05


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

    p-values are NaN with fewer than two pairs. A verdict is the claims engine's
    (:class:`krepes_lib.claims.Paired`), not this test's.
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

    @property
    def p(self) -> float:
        """p-value of the claimed direction."""
        return self.p_greater if self.alternative == "greater" else self.p_less

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
        return PairedTest(mean, std, n, math.nan, math.nan, math.nan, math.nan, alternative, alpha, margin)
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
    return PairedTest(mean, std, n, lo, hi, pg, pl, alternative, alpha, margin)


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


def paired_bootstrap(D, n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> dict:
    """Paired bootstrap over test rows of a mean difference.

    ``D``: (R, n) per-row differences a − b of R replicates on the **same** n test rows (e.g.
    KREPES correct − network correct). Each resample draws n row indices with replacement and
    applies them to every replicate (the pairing is over rows), then averages over replicates and
    rows. Returns ``mean``, the percentile interval ``lo``, ``hi`` at level ``ci`` and ``se`` (the
    standard deviation of the resampled means): the spread that comes from which test rows were
    drawn, which the spread over replicates on a fixed test set does not contain.
    """
    D = np.atleast_2d(np.asarray(D, dtype=np.float64))
    if D.size == 0 or not np.isfinite(D).all():
        raise ValueError(f"paired_bootstrap: D must be a finite (replicates, rows) array; got shape {D.shape}.")
    if not 0 < ci < 1:
        raise ValueError(f"ci={ci} must be in (0, 1).")
    rng = np.random.default_rng(seed)
    per_row = D.mean(axis=0)  # the replicate mean of each row: resampling rows resamples these
    idx = rng.integers(0, per_row.size, size=(int(n_boot), per_row.size))
    means = per_row[idx].mean(axis=1)
    lo, hi = np.percentile(means, [50 * (1 - ci), 50 * (1 + ci)])
    return {"mean": float(per_row.mean()), "lo": float(lo), "hi": float(hi), "se": float(means.std(ddof=1))}


def mean_std(values, digits: int = 2, scale: float = 1.0) -> str:
    """``"mean ± std"`` over seeds (sample std; "± n/a" for one value)."""
    v = np.asarray(values, dtype=np.float64).ravel() * scale
    s = f"{v.mean():.{digits}f}"
    return s + (f" ± {v.std(ddof=1):.{digits}f}" if v.size > 1 else " ± n/a")


@dataclass(frozen=True)
class LogLogFit:
    """t ≈ exp(intercept) · n^slope fitted on log t = intercept + slope · log n (eq. sc-loglog).

    ``ci_t``: two-sided t-interval of the slope from the least-squares fit over every
    (n, repetition) point; ``ci_boot``: percentile bootstrap interval (timings resampled with
    replacement within each n); ``level`` their coverage.
    """

    slope: float
    intercept: float
    ci_t: tuple
    ci_boot: tuple
    level: float
    n_points: int

    def predict(self, n):
        return np.exp(self.intercept) * np.asarray(n, dtype=np.float64) ** self.slope


def _ols(logn, logt):
    A = np.stack([np.ones_like(logn), logn], axis=1)
    coef, *_ = np.linalg.lstsq(A, logt, rcond=None)
    return coef, A


def fit_loglog(n, t, level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> LogLogFit:
    """Least-squares slope of log t on log n with two confidence intervals (eq. sc-loglog).

    Parameters
    ----------
    n : array-like (k,)
        Sizes (one per timing; repeat a size for repeated timings).
    t : array-like (k,)
        Seconds (> 0).
    level : float
        Coverage of both intervals.
    n_boot : int
        Bootstrap resamples (within each distinct n, with replacement).
    seed : int
    """
    from scipy import stats as st

    n = np.asarray(n, dtype=np.float64).ravel()
    t = np.asarray(t, dtype=np.float64).ravel()
    if n.shape != t.shape:
        raise ValueError(f"n and t must pair up; got {n.size} sizes and {t.size} timings.")
    if not ((n > 0).all() and (t > 0).all() and np.isfinite(t).all()):
        raise ValueError("fit_loglog needs positive sizes and positive finite timings.")
    sizes = np.unique(n)
    if sizes.size < 2:
        raise ValueError("fit_loglog needs timings at two or more distinct sizes n.")
    logn, logt = np.log(n), np.log(t)
    (a, s), A = _ols(logn, logt)
    k = n.size
    if k > 2:
        resid = logt - A @ np.array([a, s])
        s2 = float(resid @ resid) / (k - 2)
        se = math.sqrt(s2 / float(((logn - logn.mean()) ** 2).sum()))
        q = float(st.t.ppf(0.5 + level / 2, k - 2))
        ci_t = (s - q * se, s + q * se)
    else:
        ci_t = (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(n == v) for v in sizes]
    idx = np.concatenate([g[rng.integers(g.size, size=(n_boot, g.size))] for g in groups], axis=1)
    xb, yb = logn[idx], logt[idx]                       # (n_boot, k): one resample per row
    xc = xb - xb.mean(axis=1, keepdims=True)
    boots = (xc * (yb - yb.mean(axis=1, keepdims=True))).sum(axis=1) / (xc * xc).sum(axis=1)
    lo, hi = np.quantile(boots, [0.5 - level / 2, 0.5 + level / 2])
    return LogLogFit(float(s), float(a), (float(ci_t[0]), float(ci_t[1])), (float(lo), float(hi)),
                     float(level), int(k))


def crossover_n(slow: LogLogFit, fast: LogLogFit) -> float:
    """The n where two fitted power laws give equal time: log n* = (a_f − a_s)/(s_s − s_f).

    Returns ``nan`` for parallel fits. Below n* the curve with the smaller slope may still be
    slower (its constant is larger); above n* it is faster.
    """
    ds = slow.slope - fast.slope
    if ds == 0:
        return math.nan
    return float(math.exp((fast.intercept - slow.intercept) / ds))
