"""The claims engine: every verdict of the companion is decided here, by a rule fixed before the run.

Book: *The layers of the code* (``book/layers.md``, "How a claim is decided"); *Reproducibility checklist*; spec §7.

The model, in four nouns:

**Claim** (:class:`Claim`) — one statement of the paper checked on our numbers: its text, the
paper's number, the per-seed measurements ``a`` and ``b`` (``b`` is the other arm, a fixed
threshold, or a *measured ceiling*; same seeds, same order), what d = a − b is (``what``), text
for the row (``ours``, ``flags``) and, optionally, a **control**.

**Rule** (:class:`Rule` and its subclasses) — how the numbers decide the claim, fixed before the
run. A rule turns a claim's numbers into :class:`Evidence` (the estimate and two p-values: one
for the claim, one for its opposite) and states itself as text, which is written into the claim
row. Each rule has its **minimum number of pairs** (``min_pairs``): with fewer finite pairs it
does not test and the claim is "inconclusive". The rules:

* :class:`Paired` — one-sided paired t-test of d = a − b over seeds, H₁: mean d > +margin
  ("greater") or mean d < −margin ("less"); an exact sign test where every difference is equal
  (:func:`krepes_lib.stats.paired_test`);
* :class:`Threshold` — the same with b a fixed number ("the per-seed value exceeds / stays
  below the threshold");
* :class:`NonInferiority` — H₁: mean(a − b) > −margin; with b a *measured ceiling* (e.g. the
  agreement a network reaches with itself) this is "non-inferior to the ceiling": the claim asks
  no more than the measurement can reach;
* :class:`Equivalence` — TOST: both H₁: mean d > −margin and H₁: mean d < +margin (the
  larger p is the claim's), "does not hold" when mean d lies significantly outside the band.

A deterministic rule on measured quantities (a slope's interval, a count, where two argmaxes
fall) has no p-value: :func:`decide_check` takes the rule's text and the two conditions the
study measured ("holds if …", "does not hold if …") and writes the row.

**Family** — the claims decided together by one :func:`decide` call, under a name. The p-values
of the claimed direction and of the opposite direction are Holm-adjusted (:func:`krepes_lib.
stats.holm`) **once**, over the family's claims; a claim with too few pairs enters with p = 1
(it still counts in K), a claim that cannot test (below) is left out of the family. The rule
text names the family and its size. Quantifiers over one family, written as one row:
:func:`decide_some` ("holds for k of K": Holm over the K comparisons) and :func:`decide_all`
("every comparison": an intersection–union test, each at α, no correction needed).

**Outcome** — :data:`HOLDS` ("holds": the claimed direction is significant after correction),
:data:`FAILS` ("does not hold": the opposite direction is), :data:`INCONCLUSIVE` (neither, or
too few pairs), and :data:`UNTESTED` ("does not test the claim: …"): the setting cannot test
the claim — a :class:`Control` attached to the claim did not hold (e.g. "the network beats its
random initialisation"), or the claim names the reason (``untestable``). Rows that only report
a number carry a status beginning with "not" (:func:`reported`: "not comparable …").

Calibrating a claim against what the measurement can reach (the noise ceiling, an untrained
control): pass the ceiling as ``b`` of a :class:`NonInferiority` rule (``reference`` names it in
the rule text) and the control as ``Claim(control=Control(...))``; the row then says what was
compared with what, and a setting that cannot test the claim is neither "holds" nor "does not
hold". :func:`minimum_detectable_effect` gives the effect a paired t-test of the same design
would detect, for the row's text.

Example — one v3 cell decided against its ceiling, with a control, beside the paper's rule::

    from krepes_lib import claims as C
    learned = C.Control("the network beats its random initialisation", a=nn_probe, b=nn_probe_init)
    cells = [C.Claim("Adult × BT: τ reaches the same-features ceiling", "τ = 0.845", a=tau,
                     b=tau_ceiling, what="τ(KREPES, NN) vs τ(NN, NN on another labelled subset)",
                     control=learned)]
    rows = C.decide(cells, C.NonInferiority(margin=0.05, reference="ceiling"), family="τ cells")
    paper_rule = [C.Claim(c.claim, c.paper, a=c.a, control=c.control) for c in cells]
    old = C.decide(paper_rule, C.Threshold("greater", threshold=0.745, name="paper τ − 0.1"), family="τ cells (paper)")

Each row states its rule, the family and its size; ``C.tally(rows)`` counts the outcomes (a
"does not test the claim" row is kept out of the decided ones).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from . import stats

__all__ = ["HOLDS", "FAILS", "INCONCLUSIVE", "UNTESTED", "ALPHA", "MIN_PAIRS", "Rule", "Paired",
           "Threshold", "NonInferiority", "Equivalence", "Evidence", "Control", "Claim", "decide",
           "decide_some", "decide_all", "decide_check", "reported", "row", "beside", "outcome", "symbol", "SYMBOLS", "tally", "status_of",
           "minimum_detectable_effect", "VERDICT_PREFIXES"]

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
#: The outcome when the setting cannot test the claim (a control did not hold).
UNTESTED = "does not test the claim"
#: Significance level of every verdict (ours).
ALPHA = stats.ALPHA
#: Fewest finite pairs (seeds) a test-based rule decides on. With two seeds a one-sided t-test
#: has one degree of freedom and two nearly equal differences (common for accuracies on a fixed
#: test set, which move in quanta) give a tiny p; below three pairs a claim is "inconclusive".
MIN_PAIRS = 3
#: How every row's verdict begins (a report reads the outcome from the prefix).
VERDICT_PREFIXES = (HOLDS, FAILS, INCONCLUSIVE, UNTESTED, "not ")


# ---------------------------------------------------------------------------------------
# evidence and rules
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Evidence:
    """What a rule measured on one claim's numbers.

    Attributes
    ----------
    n : int
        Finite pairs used.
    lost : int
        Pairs left out because a value was not finite (a run that diverged or never reached its
        target; see ``Rule.missing``).
    mean, ci_low, ci_high : float
        Mean of d = a − b and its two-sided (1 − 2α) t-interval (the one-sided test's bound).
    p_claim, p_against : float
        Unadjusted p-values of the claim and of its opposite (1.0 when the rule does not test).
    tested : bool
        n ≥ the rule's ``min_pairs`` (and no missing value under ``missing="fails"``).
    note : str
        Why the rule did not test, or what it found missing.
    """

    n: int
    lost: int
    mean: float
    ci_low: float
    ci_high: float
    p_claim: float
    p_against: float
    tested: bool
    alpha: float
    note: str = ""
    forced: str = ""  # an outcome decided without a test (missing="fails" with a missing value)

    def describe(self, scale: float = 1.0, digits: int = 3, unit: str = "", p_adj: float | None = None) -> str:
        """``Δ = +x (90% CI lo … hi, n = 3, p = …, Holm p = …)`` in display units."""
        if not self.n:
            txt = "no finite pair"
        elif not self.tested:
            txt = f"Δ = {scale * self.mean:+.{digits}f}{unit} ({self.note or f'n = {self.n}: no test'})"
        else:
            level = round(100 * (1 - 2 * self.alpha))
            txt = (f"Δ = {scale * self.mean:+.{digits}f}{unit} ({level}% CI {scale * self.ci_low:+.{digits}f} … "
                   f"{scale * self.ci_high:+.{digits}f}, n = {self.n}, p = {self.p_claim:.3g}"
                   + (f", Holm p = {p_adj:.3g}" if p_adj is not None else "") + ")")
        if self.lost:
            txt += f"; {self.lost} seed(s) without a finite value"
            txt += ": the claim fails for them" if self.forced else ", left out"
        return txt


def _num(x: float) -> str:
    """A bound as text: "0" for ±0, a typographic minus sign."""
    return "0" if x == 0 else f"{x:g}".replace("-", "−")


def _pairs(a, b):
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape).ravel() if np.ndim(b) == 0 else \
        np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"a claim's a and b must pair up (same seeds, same order); got {a.size} and {b.size} values.")
    return a, b


@dataclass(frozen=True, kw_only=True)
class Rule:
    """Base of the rules: a one-sided test of mean d = a − b against a bound, over seeds.

    Subclasses set the bound and the direction (:meth:`_bounds`) and their text (:meth:`text`).

    Parameters
    ----------
    alpha : float
        Level of the test (before the family's Holm correction).
    min_pairs : int
        Fewest finite pairs the rule decides on (default :data:`MIN_PAIRS`).
    missing : {"drop", "fails"}
        A non-finite value: "drop" leaves its pair out (the row says so), "fails" makes the
        claim not hold (e.g. "every seed reaches the target": a seed that never did is
        evidence against the claim, not a missing value).
    """

    alpha: float = ALPHA
    min_pairs: int = MIN_PAIRS
    missing: str = "drop"

    def __post_init__(self):
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha={self.alpha} must be in (0, 0.5).")
        if int(self.min_pairs) < 1:
            raise ValueError(f"min_pairs={self.min_pairs} must be ≥ 1.")
        if self.missing not in ("drop", "fails"):
            raise ValueError(f"missing={self.missing!r}: use 'drop' or 'fails'.")

    # (alternative, margin) pairs of paired_test: the claim's test and the opposite's
    def _tests(self, d):
        raise NotImplementedError

    def text(self) -> str:
        raise NotImplementedError

    def evidence(self, a, b=None) -> Evidence:
        """The rule applied to one claim's per-seed values (pairs with a non-finite value are
        handled by ``missing``); ``b`` None: 0 (a :class:`Threshold` supplies its threshold)."""
        a, b = _pairs(a, 0.0 if b is None else b)
        ok = np.isfinite(a) & np.isfinite(b)
        lost = int((~ok).sum())
        d = a[ok] - b[ok]
        n = int(d.size)
        mean = float(d.mean()) if n else math.nan
        if lost and self.missing == "fails":
            return Evidence(n, lost, mean, math.nan, math.nan, 1.0, 0.0, False, self.alpha,
                            note=f"{lost} of {a.size} seeds have no value", forced=FAILS)
        if n < self.min_pairs or n < 2:
            return Evidence(n, lost, mean, math.nan, math.nan, 1.0, 1.0, False, self.alpha,
                            note=f"{n} pair(s) < {self.min_pairs}: no test")
        p_claim, p_against = self._tests(d)
        ref = stats.paired_test(d, np.zeros_like(d), "greater", self.alpha)
        return Evidence(n, lost, mean, ref.ci_low, ref.ci_high, float(p_claim), float(p_against), True,
                        self.alpha)

    def describe(self, what: str = "") -> str:
        """The rule as it is written into a claim row."""
        head = f"{what}; " if what else ""
        return (f"{head}{self.text()}, α = {self.alpha:g} (at least {self.min_pairs} seeds, else inconclusive"
                + ("; a seed without a value fails the claim" if self.missing == "fails" else "") + ")")


def _one_sided(d, alternative: str, bound: float, alpha: float):
    """(p of H₁: mean d > bound, p of H₁: mean d < bound) by the paired t-test of d against 0
    shifted by ``bound`` (sign test when every difference is equal)."""
    t = stats.paired_test(d - bound, np.zeros_like(d), alternative, alpha)
    return t.p_greater, t.p_less


@dataclass(frozen=True)
class Paired(Rule):
    """One-sided paired t-test over seeds of d = a − b: H₁ mean d > +margin ("greater") or
    mean d < −margin ("less"). "does not hold" when the opposite side of ±margin is significant."""

    alternative: str = "greater"
    margin: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        if self.alternative not in ("greater", "less"):
            raise ValueError(f"alternative={self.alternative!r}: use 'greater' or 'less'.")

    def _bound(self) -> float:
        return self.margin if self.alternative == "greater" else -self.margin

    def _tests(self, d):
        pg, pl = _one_sided(d, self.alternative, self._bound(), self.alpha)
        return (pg, pl) if self.alternative == "greater" else (pl, pg)

    def text(self) -> str:
        side = ">" if self.alternative == "greater" else "<"
        return f"one-sided paired t-test over seeds, H₁: mean difference {side} {_num(self._bound())}"


@dataclass(frozen=True)
class Threshold(Paired):
    """A per-seed value against a fixed number: H₁ mean(value) > threshold (+margin) or <.
    Decide ``Claim(a=values)`` (no ``b``: the rule's threshold is the other side; a claim with a
    ``b`` is refused — compare with per-seed values by :class:`Paired`)."""

    threshold: float = 0.0
    name: str = "threshold"

    def evidence(self, a, b=None) -> Evidence:
        if b is not None:
            raise ValueError(f"Threshold({self.name} = {self.threshold:g}) compares each value with its threshold; "
                             "this claim also gives b. Leave b out, or use Paired to compare with per-seed b.")
        return super().evidence(a, self.threshold)

    def text(self) -> str:
        side = ">" if self.alternative == "greater" else "<"
        return (f"one-sided t-test over seeds of value − {self.name} ({_num(self.threshold)}), H₁: mean {side} "
                f"{_num(self._bound())}")


@dataclass(frozen=True)
class NonInferiority(Rule):
    """H₁: mean(a − b) > −margin: a is no worse than b by more than ``margin``.

    With ``b`` a measured **ceiling** (what the measurement reaches against itself: a second
    probe on the same features, a noise floor), the claim "a reaches the ceiling within margin"
    asks no more than the instrument can show; ``reference`` names b in the rule text.
    "does not hold" when mean(a − b) < −margin is significant.
    """

    margin: float = 0.0
    reference: str = "b"

    def __post_init__(self):
        super().__post_init__()
        if not self.margin >= 0:
            raise ValueError(f"margin={self.margin} must be ≥ 0 (a − {self.reference} > −margin).")

    def _tests(self, d):
        return _one_sided(d, "greater", -self.margin, self.alpha)

    def text(self) -> str:
        return (f"non-inferiority to the {self.reference}: one-sided paired t-test over seeds, "
                f"H₁: mean(a − {self.reference}) > −{self.margin:g}")


@dataclass(frozen=True)
class Equivalence(Rule):
    """TOST: two one-sided t-tests of mean d over seeds, H₁ mean d > −margin and H₁ mean d <
    +margin; the claim's p is the larger. "does not hold" when mean d is significantly outside
    the band (the smaller p of mean d < −margin and mean d > +margin)."""

    margin: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if not self.margin > 0:
            raise ValueError(f"margin={self.margin} must be > 0 (the equivalence band ±margin).")

    def _tests(self, d):
        lo_g, lo_l = _one_sided(d, "greater", -self.margin, self.alpha)   # mean d > −margin
        hi_g, hi_l = _one_sided(d, "less", self.margin, self.alpha)       # mean d < +margin
        return max(lo_g, hi_l), min(lo_l, hi_g)

    def text(self) -> str:
        return (f"TOST: two one-sided t-tests over seeds of the per-seed difference, band ±{self.margin:g}; "
                "holds if the larger TOST p passes, does not hold if the mean is significantly outside the band")


def minimum_detectable_effect(std: float, n: int, alpha: float = ALPHA, power: float = 0.8) -> float:
    """Smallest mean difference a one-sided paired t-test on ``n`` pairs with spread ``std``
    detects with probability ``power`` at level ``alpha``: (t_{1−α} + t_{power}) · std / √n
    (the normal-approximation formula with t quantiles, n − 1 degrees of freedom)."""
    from scipy import stats as st

    if n < 2 or not np.isfinite(std):
        return math.inf
    return float((st.t.ppf(1 - alpha, n - 1) + st.t.ppf(power, n - 1)) * std / math.sqrt(n))


# ---------------------------------------------------------------------------------------
# claims, controls and families
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Control:
    """A check that the setting can test a claim, decided before the claim.

    ``a``, ``b`` are per-seed values and ``rule`` the check's rule (default: one-sided paired
    t-test a > b); ``what`` names it ("the network beats its random initialisation"). Unless it
    holds, the claim's outcome is :data:`UNTESTED` and the claim leaves its family.
    """

    what: str
    a: object
    b: object = None
    rule: Rule = field(default_factory=lambda: Paired())

    def outcome(self) -> tuple[str, Evidence]:
        ev = self.rule.evidence(self.a, self.b)
        if ev.forced:
            return ev.forced, ev
        if not ev.tested:
            return INCONCLUSIVE, ev
        return (HOLDS if ev.p_claim < ev.alpha else FAILS if ev.p_against < ev.alpha else INCONCLUSIVE), ev


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, its per-seed numbers and its row text.

    Parameters
    ----------
    claim, paper : str
        What is claimed, and the paper's number or statement.
    a, b : array-like or float
        Per-seed values (same seeds, same order); ``b`` may be a scalar (a threshold).
    what : str
        What d = a − b is (put in front of the rule text), e.g. "d = P@1(KREPES) − P@1(cosine)".
    ours : str
        Our numbers as text, printed before the rule's evidence.
    flags : str
        Diagnostics appended to "ours" (e.g. audits whose step raised their loss).
    a_name, b_name : str
        When given, "ours" starts with "a_name mean ± std vs b_name mean ± std".
    rule : Rule, optional
        This claim's rule when it differs from its family's.
    control : Control, optional
        Must hold for the setting to test the claim (else :data:`UNTESTED`).
    untestable : str
        A reason known before the test that this setting cannot test the claim.
    extra : dict
        More fields for the row.
    """

    claim: str
    paper: str
    a: object = None
    b: object = None
    what: str = ""
    ours: str = ""
    flags: str = ""
    a_name: str = ""
    b_name: str = ""
    rule: Rule | None = None
    control: Control | None = None
    untestable: str = ""
    extra: dict = field(default_factory=dict)


def _mean_std(v, digits, scale) -> str:
    v = np.asarray(v, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    return stats.mean_std(v, digits, scale) if v.size else "n/a"


def _ours(c: Claim, ev: Evidence | None, scale, digits, unit, p_adj) -> str:
    parts = []
    if c.a_name or c.b_name:
        parts.append(f"{c.a_name or 'a'} {_mean_std(c.a, digits, scale)}{unit} vs "
                     f"{c.b_name or 'b'} {_mean_std(c.b, digits, scale)}{unit}")
    if c.ours:
        parts.append(c.ours)
    if ev is not None:
        parts.append(ev.describe(scale, digits, unit, p_adj))
    if c.flags:
        parts.append(c.flags)
    return "; ".join(parts)


def row(claim: str, paper: str, ours: str, verdict: str, rule: str, **extra) -> dict:
    """The report row ``{claim, paper, ours, rule, verdict}``; every row states its rule."""
    if not str(verdict).startswith(VERDICT_PREFIXES):
        raise ValueError(f"verdict={verdict!r}: a verdict begins with 'holds', 'does not hold', 'inconclusive', "
                         f"'{UNTESTED}' or 'not …' (a reported number).")
    if not rule:
        raise ValueError("every claim states the rule that decided it (rule='...').")
    return {"claim": claim, "paper": paper, "ours": ours, "rule": rule, "verdict": verdict, **extra}


def _untested(c: Claim):
    """(reason, control evidence) when the claim cannot be tested in this setting, else None."""
    if c.untestable:
        return c.untestable, None
    if c.control is not None:
        out, ev = c.control.outcome()
        if out != HOLDS:
            said = "was not shown" if out == INCONCLUSIVE else "does not hold"
            return f"the control '{c.control.what}' {said} ({ev.describe()})", ev
    return None


def _family(claims, rule):
    """Evidence, Holm-adjusted p of both directions and verdict of each claim of one family."""
    claims = list(claims)
    rules = [c.rule or rule for c in claims]
    if any(r is None for r in rules):
        raise ValueError("decide: give the family's rule (rule=...) or each claim's own.")
    gate = [_untested(c) for c in claims]
    ev = [None if g else r.evidence(c.a, c.b) for c, r, g in zip(claims, rules, gate)]
    live = [i for i, g in enumerate(gate) if g is None]
    adj_c, adj_o = np.ones(len(claims)), np.ones(len(claims))
    if live:
        adj_c[live] = stats.holm([ev[i].p_claim if ev[i].tested else 1.0 for i in live])[0]
        adj_o[live] = stats.holm([ev[i].p_against if (ev[i].tested or ev[i].forced) else 1.0 for i in live])[0]
    verdicts = []
    for i, (r, g, e) in enumerate(zip(rules, gate, ev)):
        if g is not None:
            verdicts.append(f"{UNTESTED}: {g[0]}")
        elif e.forced:
            verdicts.append(e.forced)
        elif not e.tested:
            verdicts.append(INCONCLUSIVE)
        else:
            verdicts.append(HOLDS if adj_c[i] < r.alpha else FAILS if adj_o[i] < r.alpha else INCONCLUSIVE)
    return claims, rules, ev, adj_c, verdicts, len(live)


def decide(claims, rule: Rule | None = None, family: str = "", *, scale: float = 1.0, digits: int = 3,
           unit: str = "") -> list[dict]:
    """Decide a family of claims: one row each, Holm-corrected once over the family.

    Parameters
    ----------
    claims : iterable of Claim
    rule : Rule
        The family's rule (a claim's own ``rule`` overrides it).
    family : str
        The family's name, written into each rule text with its size K ("Holm over the K claims
        of <family>"); the correction runs over the claims of this call that can be tested
        (a claim whose control did not hold leaves the family; one with too few pairs stays in
        it with p = 1).
    scale, digits, unit
        Display of the evidence (e.g. 100, 2, " %" for accuracies), not the decision.

    Each row: ``claim``, ``paper``, ``ours`` (our numbers, the evidence, flags), ``rule``,
    ``verdict`` and ``p`` / ``p_holm`` (None when not tested), ``n``, ``family`` and ``flags``.
    Verdict: :data:`HOLDS` when the claim's Holm-adjusted p < α, :data:`FAILS` when the
    opposite's is, else :data:`INCONCLUSIVE`; :data:`UNTESTED` (with the reason) for a claim
    whose control did not hold.
    """
    claims, rules, ev, adj_c, verdicts, K = _family(claims, rule)
    out = []
    for i, (c, r, e, v) in enumerate(zip(claims, rules, ev, verdicts)):
        text = r.describe(c.what)
        if e is None:
            out.append(row(c.claim, c.paper, _ours(c, None, scale, digits, unit, None), v,
                           text + "; a claim whose control does not hold is not tested and leaves the family",
                           p=None, p_holm=None, n=None, family=family, flags=c.flags, **c.extra))
            continue
        if K > 1:
            text += f"; Holm over the {K} claims of {family or 'this family'}"
        p_adj = float(adj_c[i]) if e.tested else None
        out.append(row(c.claim, c.paper, _ours(c, e, scale, digits, unit, p_adj if K > 1 else None), v, text,
                       p=float(e.p_claim) if e.tested else None, p_holm=p_adj, n=e.n, family=family,
                       flags=c.flags, **c.extra))
    return out


def decide_some(claim: str, paper: str, comparisons, rule: Rule, *, what: str = "comparisons",
                context: str = "", scale: float = 1.0, digits: int = 2, unit: str = "") -> dict:
    """One row for an existential claim over a family: "for which of these K comparisons …".

    ``comparisons``: a list of :class:`Claim` (``claim`` = its label, ``a``, ``b``). Each is
    tested by ``rule``; both directions are Holm-adjusted over the K. Verdict: "holds (all K
    <what>)", "holds for k/K <what>: labels" (some), "does not hold: …" (none in the claimed
    direction, some significantly in the opposite one) or "inconclusive: …". The row's ``holds``
    and ``opposite`` list the labels.
    """
    comparisons, _, ev, _, verdicts, K = _family(comparisons, rule)
    if not comparisons:
        raise ValueError("decide_some: no comparison given.")
    labels = [c.claim for c in comparisons]
    yes = [lab for lab, v in zip(labels, verdicts) if v == HOLDS]
    no = [lab for lab, v in zip(labels, verdicts) if v == FAILS]
    opp = "lower" if getattr(rule, "alternative", "greater") == "greater" else "higher"
    if len(yes) == K:
        verdict = f"{HOLDS} (all {K} {what})"
    elif yes:
        verdict = f"{HOLDS} for {len(yes)}/{K} {what}: {', '.join(yes)}"
    elif no:
        verdict = f"{FAILS}: none in the claimed direction; significantly {opp} for {', '.join(no)}"
    else:
        verdict = f"{INCONCLUSIVE}: no difference significant after Holm ({K} {what})"
    if yes and no:
        verdict += f"; significantly {opp} for {', '.join(no)}"
    detail = "; ".join(f"{lab} {scale * e.mean:+.{digits}f}{unit} "
                       + (f"(p = {e.p_claim:.2g})" if e.tested else f"(n = {e.n}, no test)")
                       for lab, e in zip(labels, ev))
    ours = (context + "; " if context else "") + "Δ per comparison: " + detail
    text = rule.describe() + (f"; Holm over the {K} comparisons of this family ({what})" if K > 1 else "")
    return row(claim, paper, ours, verdict, text, holds=yes, opposite=no)


def decide_all(claim: str, paper: str, comparisons, rule: Rule, *, flags: str = "", digits: int = 3) -> dict:
    """One row for "every comparison holds" (e.g. every level of one group exceeds every level
    of another): an intersection–union test.

    Each comparison (a :class:`Claim` whose ``claim`` is its label) is tested by ``rule`` at α
    without correction: the claim **holds** when every one passes (an intersection of claims
    needs no multiplicity correction); it **does not hold** when some comparison is significant
    in the opposite direction after Holm over the comparisons (an existential statement); else
    **inconclusive**.
    """
    comparisons = list(comparisons)
    ev = [rule.evidence(c.a, c.b) for c in comparisons]
    holds = all(e.tested and e.p_claim < rule.alpha for e in ev)
    _, rev = stats.holm([e.p_against if e.tested else 1.0 for e in ev], rule.alpha)
    verdict = HOLDS if holds else FAILS if rev.any() else INCONCLUSIVE
    text = (rule.describe() + f"; for each of the {len(comparisons)} comparisons: holds if every one passes "
            "(intersection-union test), does not hold if one is significant the other way after Holm over them")
    ours = "; ".join(f"{c.claim}: {e.describe(digits=digits)}" for c, e in zip(comparisons, ev))
    return row(claim, paper, ours + (f"; {flags}" if flags else ""), verdict, text, flags=flags)


def decide_check(claim: str, paper: str, ours: str, rule: str, holds: bool, fails: bool | None = None,
                 why_inconclusive: str = "", **extra) -> dict:
    """A deterministic rule on measured quantities (no test over seeds): a slope's interval, a
    count in every seed, where two argmaxes fall.

    ``rule`` states the rule (fixed before the run); ``holds`` and ``fails`` are its two
    conditions as the study measured them (``fails`` defaults to ``not holds``). Verdict:
    :data:`HOLDS`, :data:`FAILS`, or :data:`INCONCLUSIVE` (with ``why_inconclusive``) when
    neither condition is met.
    """
    fails = (not holds) if fails is None else fails
    if holds and fails:
        raise ValueError("decide_check: a rule's 'holds' and 'does not hold' conditions cannot both be met.")
    verdict = (HOLDS if holds else FAILS if fails else
               INCONCLUSIVE + (f": {why_inconclusive}" if why_inconclusive else ""))
    return row(claim, paper, ours, verdict, rule, **extra)


def reported(claim: str, paper: str, ours: str, status: str, rule: str, **extra) -> dict:
    """A row that reports a number without deciding a claim: ``status`` begins with "not"
    ("not comparable (…)", "not tested (…)", "not reported: …"), ``rule`` says why."""
    if not str(status).startswith("not "):
        raise ValueError(f"status={status!r}: a reported row's status begins with 'not ' "
                         "(e.g. 'not comparable (other kernel)'); decide a claim with decide().")
    return row(claim, paper, ours, status, rule, **extra)


def beside(rows, old_rows) -> list[dict]:
    """The rows of a family with the same claims' verdicts under another (older) rule beside them.

    ``rows`` and ``old_rows`` are :func:`decide` rows of the same claims in the same order (the
    calibrated rule and, e.g., the paper-threshold rule on the same numbers). Each returned row
    gains ``old_verdict``, ``old_rule`` and ``old_ours`` (the report prints the old verdict
    beside the new one); the decision itself stays the row's own.
    """
    rows, old_rows = list(rows), list(old_rows)
    if len(rows) != len(old_rows) or any(a["claim"] != b["claim"] for a, b in zip(rows, old_rows)):
        raise ValueError("beside: the old rows must decide the same claims, in the same order.")
    return [{**a, "old_verdict": b["verdict"], "old_rule": b["rule"], "old_ours": b["ours"]}
            for a, b in zip(rows, old_rows)]


def outcome(verdict: str) -> str:
    """The outcome a verdict text begins with: :data:`HOLDS` ("holds for 2/3 …" included),
    :data:`FAILS`, :data:`INCONCLUSIVE`, :data:`UNTESTED`, or "reported" (a "not …" row)."""
    v = str(verdict)
    for o in (HOLDS, FAILS, INCONCLUSIVE, UNTESTED):
        if v.startswith(o):
            return o
    if v.startswith("not "):
        return "reported"
    raise ValueError(f"verdict={verdict!r} is not one of the engine's outcomes.")


#: One character per outcome, for compact tables: holds, does not hold, inconclusive, does not test, reported.
SYMBOLS = {HOLDS: "+", FAILS: "−", INCONCLUSIVE: "?", UNTESTED: "∅", "reported": "·"}


def symbol(verdict: str) -> str:
    """The :data:`SYMBOLS` character of a verdict's outcome (+ − ? ∅ ·)."""
    return SYMBOLS[outcome(verdict)]


def tally(rows) -> dict:
    """Claim rows counted by outcome: ``{holds, does not hold, inconclusive, does not test the
    claim, reported}`` (a "does not test" row is out of the tally of decided claims)."""
    out = {HOLDS: 0, FAILS: 0, INCONCLUSIVE: 0, UNTESTED: 0, "reported": 0}
    for r in rows:
        out[outcome(r["verdict"] if isinstance(r, dict) else r)] += 1
    return out


def status_of(verdicts) -> str:
    """The status of a paper's number from the verdicts of the rows that address it:
    "reproduced" (all hold), "not reproduced" (some do not hold, none holds), "partly
    reproduced" (some hold), else "inconclusive / not comparable". Rows that do not test the
    claim (:data:`UNTESTED`) are kept out and counted ("k rows do not test the claim"); when no
    other row is left the status is "not tested: …"."""
    v = [str(x).lower() for x in verdicts]
    untested = sum(x.startswith(UNTESTED) for x in v)
    v = [x for x in v if not x.startswith(UNTESTED)]
    note = f" ({untested} row{'s' if untested > 1 else ''} {UNTESTED})" if untested else ""
    if untested and not v:
        return f"not tested: every row {UNTESTED}"
    holds = [x.startswith(HOLDS) for x in v]
    fails = [x.startswith(FAILS) for x in v]
    if v and all(holds):
        return "reproduced" + note
    if any(fails) and not any(holds):
        return "not reproduced" + note
    if any(holds):
        return "partly reproduced" + note
    return "inconclusive / not comparable" + note


def with_rule(rule: Rule, **changes) -> Rule:
    """A copy of ``rule`` with fields changed (rules are frozen)."""
    return replace(rule, **changes)
