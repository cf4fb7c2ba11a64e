"""The claims engine (krepes_lib/claims.py): each rule against a closed form, Holm against a hand
computation, the outcomes (min pairs, controls, missing values), and the claim-consistency test:
the same numbers fed through every notebook's claim path give the same verdict."""
from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

from krepes_lib import claims as C
from krepes_lib import stats

ROOT = Path(__file__).resolve().parents[1]
A = np.array([0.82, 0.85, 0.80, 0.86, 0.84])
B = np.array([0.80, 0.81, 0.79, 0.82, 0.83])


def one(rule, a, b=None, **kw):
    return C.decide([C.Claim("c", "p", a=a, b=b)], rule, **kw)[0]


# --- rules against closed forms --------------------------------------------------------------
@pytest.mark.parametrize("alternative", ["greater", "less"])
@pytest.mark.parametrize("margin", [0.0, 0.01])
def test_paired_rule_p_value_is_scipys_one_sided_t_test(alternative, margin):
    r = one(C.Paired(alternative, margin), A, B)
    bound = margin if alternative == "greater" else -margin
    ref = st.ttest_1samp(A - B - bound, 0.0, alternative=alternative).pvalue
    assert r["p"] == pytest.approx(ref, rel=1e-10)
    if margin == 0:
        assert r["p"] == pytest.approx(st.ttest_rel(A, B, alternative=alternative).pvalue, rel=1e-10)


def test_paired_rule_decides_by_direction():
    assert one(C.Paired("greater"), A, B)["verdict"] == C.HOLDS      # p = .0076
    assert one(C.Paired("less"), A, B)["verdict"] == C.FAILS          # the other side is significant
    assert one(C.Paired("greater", 0.05), A, B)["verdict"] == C.FAILS  # mean .024 significantly below .05
    assert one(C.Paired("greater"), [0.1, -0.1, 0.05], [0, 0, 0])["verdict"] == C.INCONCLUSIVE


def test_threshold_rule_is_a_one_sample_t_test():
    v = np.array([0.31, 0.28, 0.35, 0.30])
    r = one(C.Threshold("less", threshold=0.4), v)
    assert r["p"] == pytest.approx(st.ttest_1samp(v, 0.4, alternative="less").pvalue, rel=1e-10)
    assert r["verdict"] == C.HOLDS and "value − threshold (0.4)" in r["rule"]
    # the threshold is the other side: a claim that also gives b is refused, not silently re-read
    with pytest.raises(ValueError, match="use Paired"):
        one(C.Threshold("greater", threshold=0.0), v, np.full(4, 0.4))
    assert one(C.Paired("greater"), v, np.full(4, 0.4))["verdict"] == C.FAILS


def test_non_inferiority_to_a_measured_ceiling():
    ceiling = np.array([0.45, 0.47, 0.46, 0.44])
    ours = ceiling - np.array([0.01, 0.02, 0.0, 0.015])
    rule = C.NonInferiority(margin=0.05, reference="ceiling")
    r = one(rule, ours, ceiling)
    ref = st.ttest_1samp(ours - ceiling + 0.05, 0.0, alternative="greater").pvalue
    assert r["p"] == pytest.approx(ref, rel=1e-10) and r["verdict"] == C.HOLDS
    assert "non-inferiority to the ceiling" in r["rule"] and "mean(a − ceiling) > −0.05" in r["rule"]
    assert one(rule, ceiling - 0.2 + 0.01 * np.arange(4), ceiling)["verdict"] == C.FAILS


def test_tost_is_the_larger_of_two_one_sided_p_values():
    d = np.array([0.3, -0.4, 0.1, 0.25, -0.05])
    r = one(C.Equivalence(margin=1.0), d)
    p_lo = st.ttest_1samp(d, -1.0, alternative="greater").pvalue
    p_hi = st.ttest_1samp(d, 1.0, alternative="less").pvalue
    assert r["p"] == pytest.approx(max(p_lo, p_hi), rel=1e-10) and r["verdict"] == C.HOLDS
    assert one(C.Equivalence(margin=1.0), d + 5)["verdict"] == C.FAILS            # significantly outside
    assert one(C.Equivalence(margin=1.0), np.array([3.0, -2.5, 0.4]))["verdict"] == C.INCONCLUSIVE


def test_holm_against_a_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005·4 = .02, 0.01·3 = .03, 0.03·2 = .06, 0.04·1 = .04 → running max .06
    adj, rej = stats.holm(p, 0.05)
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02])
    assert rej.tolist() == [True, False, False, True]


def test_decide_holm_corrects_once_over_the_named_family():
    rng = np.random.default_rng(0)
    items = [C.Claim(f"c{i}", "p", a=B + d + 0.004 * rng.standard_normal(5), b=B)
             for i, d in enumerate([0.02, 0.006, -0.02])]
    rows = C.decide(items, C.Paired("greater"), family="fam")
    raw = [st.ttest_rel(it.a, it.b, alternative="greater").pvalue for it in items]
    np.testing.assert_allclose([r["p"] for r in rows], raw, rtol=1e-10)
    np.testing.assert_allclose([r["p_holm"] for r in rows], stats.holm(raw)[0], rtol=1e-10)
    assert all("Holm over the 3 claims of fam" in r["rule"] for r in rows)
    assert rows[0]["verdict"] == C.HOLDS and rows[2]["verdict"] == C.FAILS


def test_holm_can_turn_a_raw_pass_into_inconclusive():
    # raw p ≈ 0.03 < α, but with ten claims in the family Holm multiplies the smallest by 10
    a, b = np.array([1.0, 1.2, 0.1, 0.9, 0.3]), np.zeros(5)
    assert one(C.Paired(), a, b)["verdict"] == C.HOLDS
    rows = C.decide([C.Claim(f"c{i}", "", a=a, b=b) for i in range(10)], C.Paired(), family="ten")
    assert all(r["verdict"] == C.INCONCLUSIVE for r in rows)


# --- outcomes ---------------------------------------------------------------------------------
def test_too_few_pairs_is_inconclusive_and_stays_in_the_family():
    rows = C.decide([C.Claim("two", "p", a=[1.0, 2.0], b=[0.0, 1.1]),
                     C.Claim("five", "p", a=A, b=B)], C.Paired())
    assert rows[0]["verdict"] == C.INCONCLUSIVE and rows[0]["p"] is None and "2 pair(s) < 3" in rows[0]["ours"]
    # the untested claim still counts in K: Holm multiplies the five-seed p by 2
    assert rows[1]["p_holm"] == pytest.approx(2 * rows[1]["p"]) and "at least 3 seeds" in rows[1]["rule"]


def test_identical_differences_fall_back_to_the_sign_test():
    assert one(C.Paired(), [1.0, 2.0, 3.0], [0.5, 1.5, 2.5])["p"] == pytest.approx(0.125)
    r = one(C.Paired(), np.arange(5.0) + 1, np.arange(5.0))
    assert r["p"] == pytest.approx(1 / 32) and r["verdict"] == C.HOLDS


def test_missing_values_are_left_out_or_fail_the_claim():
    a = np.array([0.9, np.nan, 0.8, 0.85, 0.9])
    r = one(C.Paired(), a, B)
    assert r["n"] == 4 and "1 seed(s) without a finite value, left out" in r["ours"]
    r = one(C.Paired("less", missing="fails"), a, B)
    assert r["verdict"] == C.FAILS and "fails for them" in r["ours"] and "fails the claim" in r["rule"]


def test_a_control_that_does_not_hold_means_the_setting_does_not_test_the_claim():
    learned = C.Control("the network beats its random initialisation", a=[0.52, 0.50, 0.51], b=[0.51, 0.51, 0.51])
    rows = C.decide([C.Claim("cell 1", "p", a=A, b=B, control=learned),
                     C.Claim("cell 2", "p", a=A, b=B)], C.Paired(), family="cells")
    assert rows[0]["verdict"].startswith(C.UNTESTED) and "the network beats" in rows[0]["verdict"]
    assert "initialisation' was not shown (" in rows[0]["verdict"]  # read as English, not "is inconclusive"
    assert " is does not" not in rows[0]["verdict"] and " is inconclusive" not in rows[0]["verdict"]
    # cell 1 left the family: cell 2 is corrected over K = 1
    assert rows[1]["p_holm"] == pytest.approx(rows[1]["p"]) and "Holm" not in rows[1]["rule"]
    ok = C.Control("learned", a=[0.6, 0.62, 0.61], b=[0.5, 0.51, 0.5])
    assert C.decide([C.Claim("c", "p", a=A, b=B, control=ok)], C.Paired())[0]["verdict"] == C.HOLDS
    assert C.decide([C.Claim("c", "p", a=A, b=B, untestable="chosen on these seeds")], C.Paired())[0][
        "verdict"] == f"{C.UNTESTED}: chosen on these seeds"


def test_existential_and_universal_rows():
    comps = [C.Claim("up", "", a=A, b=B), C.Claim("flat", "", a=[0.1, -0.1, 0.05], b=[0, 0, 0]),
             C.Claim("down", "", a=B, b=A)]
    row = C.decide_some("which", "p", comps, C.Paired(), what="losses")
    assert row["verdict"].startswith("holds for 1/3 losses: up") and row["holds"] == ["up"]
    assert row["opposite"] == ["down"] and "significantly lower for down" in row["verdict"]
    assert C.decide_some("all", "p", comps[:1], C.Paired(), what="losses")["verdict"] == "holds (all 1 losses)"
    assert C.decide_all("every", "p", comps[:1], C.Paired())["verdict"] == C.HOLDS
    assert C.decide_all("every", "p", comps, C.Paired())["verdict"] == C.FAILS
    assert C.decide_all("every", "p", comps[:2], C.Paired())["verdict"] == C.INCONCLUSIVE


def test_checks_reported_rows_tallies_and_bad_input():
    assert C.decide_check("c", "p", "o", "rule", holds=True)["verdict"] == C.HOLDS
    assert C.decide_check("c", "p", "o", "rule", holds=False)["verdict"] == C.FAILS
    assert C.decide_check("c", "p", "o", "rule", holds=False, fails=False,
                          why_inconclusive="trivial peak")["verdict"] == "inconclusive: trivial peak"
    assert C.reported("c", "p", "o", "not comparable (other kernel)", "no test")["verdict"].startswith("not ")
    with pytest.raises(ValueError, match="begins with 'not '"):
        C.reported("c", "p", "o", "sort of", "rule")
    with pytest.raises(ValueError, match="states the rule"):
        C.row("c", "p", "o", C.HOLDS, "")
    with pytest.raises(ValueError, match="pair up"):
        one(C.Paired(), [1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="alternative"):
        C.Paired("two-sided")
    with pytest.raises(ValueError, match="margin"):
        C.Equivalence(margin=0)
    rows = [C.row("a", "", "", v, "r") for v in (C.HOLDS, C.HOLDS, C.FAILS, "holds for 2/3 x", C.INCONCLUSIVE)]
    assert C.tally(rows) == {C.HOLDS: 3, C.FAILS: 1, C.INCONCLUSIVE: 1, C.UNTESTED: 0, "reported": 0}
    assert C.status_of([C.HOLDS, C.HOLDS]) == "reproduced" and C.status_of([C.FAILS]) == "not reproduced"
    assert C.status_of([C.HOLDS, C.FAILS]) == "partly reproduced"


def test_minimum_detectable_effect_closed_form():
    n, s = 5, 0.02
    ref = (st.t.ppf(0.95, n - 1) + st.t.ppf(0.8, n - 1)) * s / math.sqrt(n)
    assert C.minimum_detectable_effect(s, n) == pytest.approx(ref)
    assert C.minimum_detectable_effect(s, 1) == math.inf


# --- the claim-consistency test ------------------------------------------------------------------
# The same per-seed numbers, fed through every notebook's claim path, give the same verdict.
SCENARIOS = {
    "clearly greater": (A, B),
    "clearly smaller": (B, A),
    "noise": (np.array([0.50, 0.52, 0.49, 0.51]), np.array([0.51, 0.50, 0.50, 0.51])),
    "two seeds": (np.array([0.9, 0.95]), np.array([0.5, 0.52])),
    "identical differences": (np.arange(3.0) + 1, np.arange(3.0)),
    "identical differences, 5 seeds": (np.arange(5.0) + 1, np.arange(5.0)),
    "a failed run": (np.array([0.9, np.nan, 0.91, 0.92, 0.9]), np.array([0.5, 0.5, 0.52, 0.51, 0.5])),
}


def _outcome(v):
    return C.outcome(v if isinstance(v, str) else v["verdict"])


def _paths(a, b):
    """(name, verdict) of every notebook claim path that decides "a > b" on these seeds."""
    from krepes_lib.studies import audits as AS
    from krepes_lib.studies import kpca_gradient as kg
    from krepes_lib.studies import stepwise as sw
    from krepes_lib.studies.results import Table

    rows = [dict(group="g", arm="a", seed=s, v=x, w=y, loss_rose=False, step_ratio=1.0)
            for s, (x, y) in enumerate(zip(a, b))]
    rows += [dict(group="g", arm="b", seed=s, v=y, w=y, loss_rose=False, step_ratio=1.0) for s, y in enumerate(b)]
    T = Table(rows)
    greater = C.Paired("greater")
    out = {
        # notebooks 01-05, 07, 09, 10, 14-16: Claim objects decided by a family rule
        "decide": one(greater, a, b),
        "decide in a family of one claim that cannot test": C.decide(
            [C.Claim("c", "p", a=a, b=b), C.Claim("x", "p", a=a, b=b, untestable="setting")], greater)[0],
        # notebooks 06 and 16: columns of the results table
        "table_claims (06, 16)": C.decide(AS.table_claims(T, [dict(group="g", arm="a")], "v", "w", "c", "p"),
                                          greater)[0],
        # notebooks 02 and 05: "for which of K" with K = 1
        "decide_some (02, 05)": C.decide_some("c", "p", [C.Claim("l", "", a=a, b=b)], greater),
        # notebooks 09 and 16: "every pair", one pair
        "decide_all via pair_comparisons (09, 16)": C.decide_all(
            "c", "p", AS.pair_comparisons(T, ["a"], ["b"], key="v", by="arm", group="g"), greater),
        # notebook 10: a non-inferiority rule with no margin is the paired test
        "NonInferiority(margin=0) (10)": one(C.NonInferiority(margin=0.0), a, b),
        # notebooks 10, 14, 15: a threshold rule on the per-seed differences
        "Threshold on a − b (10, 14, 15)": one(C.Threshold("greater", threshold=0.0), np.asarray(a) - np.asarray(b)),
        # notebooks 11 and 12: the stepwise threshold builder on b − a "below 0"
        "stepwise.threshold_claim (11, 12)": C.decide(
            [sw.threshold_claim("c", np.asarray(b) - np.asarray(a), 0.0, "", "p")], C.Paired("less"))[0],
        # notebook 12: the time-to-target builder (method = b, reference = a: "b faster than a")
        "kpca time_claim (12)": C.decide([kg.time_claim("c", b, a, "p")], C.Paired("less"))[0],
    }
    return {k: _outcome(v) for k, v in out.items()}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_claim_consistency_every_notebook_path_gives_the_same_verdict(scenario):
    a, b = SCENARIOS[scenario]
    got = _paths(a, b)
    assert len(set(got.values())) == 1, got
    expected = {"clearly greater": C.HOLDS, "clearly smaller": C.FAILS, "noise": C.INCONCLUSIVE,
                "two seeds": C.INCONCLUSIVE, "identical differences": C.INCONCLUSIVE,
                "identical differences, 5 seeds": C.HOLDS, "a failed run": C.HOLDS}[scenario]
    assert set(got.values()) == {expected}, got


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_tost_is_the_two_one_sided_rules_together(scenario):
    """Notebooks 13 and 14 (Equivalence) against the two one-sided rules it is made of."""
    a, b = SCENARIOS[scenario]
    d = np.asarray(a) - np.asarray(b)
    for margin in (0.01, 0.05, 0.5):
        tost = _outcome(one(C.Equivalence(margin=margin), d))
        lo = _outcome(one(C.NonInferiority(margin=margin), d))               # mean d > −margin
        hi = _outcome(one(C.Threshold("less", threshold=margin), d))          # mean d < +margin
        if lo == hi == C.HOLDS:
            assert tost == C.HOLDS
        elif C.FAILS in (lo, hi):
            assert tost == C.FAILS
        else:
            assert tost == C.INCONCLUSIVE


VERDICT_WORDS = {C.HOLDS, C.FAILS, C.INCONCLUSIVE, C.UNTESTED}


def _docstrings(tree):
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.body:
            first = n.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def test_no_module_outside_the_engine_decides_a_verdict():
    """Outside krepes_lib/claims.py no library module and no notebook writes a verdict word,
    names the engine's outcome constants, or Holm-corrects p-values (stats.py defines holm)."""
    files = [p for p in sorted((ROOT / "krepes_lib").rglob("*.py")) if p.name != "claims.py"]
    files += sorted((ROOT / "notebooks" / "src").glob("*.py"))
    bad = []
    for p in files:
        tree = ast.parse(p.read_text(), str(p))
        docs = _docstrings(tree)
        for n in ast.walk(tree):
            where = f"{p.relative_to(ROOT)}:{getattr(n, 'lineno', '?')}"
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
                if n.value in VERDICT_WORDS or n.value.startswith(tuple(w + ": " for w in VERDICT_WORDS)):
                    bad.append(f"{where}: verdict literal {n.value!r}")
            elif isinstance(n, ast.Attribute) and n.attr in ("HOLDS", "FAILS", "INCONCLUSIVE", "UNTESTED", "verdict"):
                bad.append(f"{where}: .{n.attr}")
            elif isinstance(n, ast.Call) and p.name != "stats.py":
                f = n.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name == "holm":
                    bad.append(f"{where}: holm(...)")
    assert not bad, "verdicts decided outside krepes_lib/claims.py:\n" + "\n".join(bad)
