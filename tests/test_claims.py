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
    # b given per seed overrides the rule's threshold (e.g. a threshold that differs per seed)
    assert one(C.Threshold("greater", threshold=0.0), v, np.full(4, 0.4))["verdict"] == C.FAILS


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
