"""What a measurement can reach (krepes_lib.studies.calibration, stats.paired_bootstrap, the v3
controls and ceilings): the readings of τ against direct SciPy / scikit-learn computations,
the ceiling of identical features is 1, the bootstrap and other-subset ceilings against a
hand computation, the paired bootstrap against a direct loop, the drop's landmark cap, and a
control that fails taking its cell out of the tally."""

import numpy as np
import pytest
from scipy.stats import kendalltau
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from krepes_lib import claims as C
from krepes_lib import stats
from krepes_lib.defaults import PROBE_C, PROBE_MAX_ITER
from krepes_lib.evaluate import labelled_subset
from krepes_lib.studies import calibration as cal
from krepes_lib.studies.audits import drop_m
from krepes_lib.studies.results import Table


def _blobs(n, C=3, d=5, seed=0, noise=1.5):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(7).normal(size=(C, d)) * 2
    y = np.arange(n) % C
    return centres[y] + noise * rng.normal(size=(n, d)), y


def _probs(Z, y, Zt, rows):  # the probe by hand: standardise on the labelled rows, lbfgs logistic regression
    sc = StandardScaler().fit(Z[rows])
    clf = LogisticRegression(C=PROBE_C, max_iter=PROBE_MAX_ITER).fit(sc.transform(Z[rows]), y[rows])
    return clf.predict_proba(sc.transform(Zt))


def test_tau_readings_against_scipy_and_identical_probabilities_give_one():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(4), size=60)
    Q = rng.dirichlet(np.ones(4), size=60)
    r = cal.tau_readings(P, Q)
    assert r["tau"] == pytest.approx(kendalltau(P.max(1), Q.max(1))[0], abs=1e-12)
    assert r["tau_pooled"] == pytest.approx(kendalltau(P.ravel(), Q.ravel())[0], abs=1e-12)
    assert r["agreement"] == pytest.approx(np.mean(P.argmax(1) == Q.argmax(1)), abs=1e-12)
    assert cal.tau_readings(P, P) == pytest.approx({"tau": 1.0, "tau_pooled": 1.0, "agreement": 1.0}, abs=1e-12)
    with pytest.raises(ValueError, match="one shape"):
        cal.tau_readings(P, Q[:, :3])


def test_the_ceiling_of_identical_features_and_rows_is_one_and_probe_scores_match_sklearn():
    Z, y = _blobs(300)
    Zt, yt = _blobs(120, seed=1)
    rows = labelled_subset(y, 0.2, seed=3)
    A, B = cal.probe_scores(Z, y, Zt, yt, rows), cal.probe_scores(Z.copy(), y, Zt, yt, rows)
    np.testing.assert_allclose(A["P"], _probs(Z, y, Zt, rows), rtol=1e-10, atol=1e-12)
    assert A["acc"] == pytest.approx(np.mean(A["correct"])) and A["n_labelled"] == rows.size
    assert cal.tau_readings(A["P"], B["P"]) == pytest.approx({"tau": 1.0, "tau_pooled": 1.0, "agreement": 1.0}, abs=1e-12)


def test_labelled_rows_of_the_two_ceilings():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    rows = labelled_subset(y, 0.2, seed=0)
    boot = cal.bootstrap_rows(y, rows, seed=1)
    assert np.isin(boot, rows).all() and np.array_equal(np.bincount(y[boot]), np.bincount(y[rows]))
    assert len(np.unique(boot)) < len(boot)  # with replacement (10 + 6 + 4 draws: a repeat is all but certain)
    other = cal.other_subset(y, rows, seed=2)
    assert not np.isin(other, rows).any() and np.array_equal(np.bincount(y[other]), np.bincount(y[rows]))
    np.testing.assert_array_equal(other, cal.other_subset(y, rows, seed=2))  # seeded


@pytest.mark.parametrize("method", ["bootstrap", "subset"])
def test_ceilings_against_a_direct_computation(method):
    Z, y = _blobs(240, seed=4)
    Zt, yt = _blobs(90, seed=5)
    rows = labelled_subset(y, 0.15, seed=0)
    got = cal.same_features_ceiling(Z, y, Zt, yt, rows, method=method, n_draws=3, seed=11)
    PA = _probs(Z, y, Zt, rows)
    draw, tag = (cal.bootstrap_rows, 0xB0) if method == "bootstrap" else (cal.other_subset, 0x5B)
    taus, pooled, agree = [], [], []
    for b in range(3):
        PB = _probs(Z, y, Zt, draw(y, rows, [11, tag, b]))
        taus.append(kendalltau(PA.max(1), PB.max(1))[0])
        pooled.append(kendalltau(PA.ravel(), PB.ravel())[0])
        agree.append(np.mean(PA.argmax(1) == PB.argmax(1)))
    assert got["n"] == 3
    assert got["tau"] == pytest.approx(np.mean(taus), abs=1e-9)
    assert got["tau_pooled"] == pytest.approx(np.mean(pooled), abs=1e-9)
    assert got["agreement"] == pytest.approx(np.mean(agree), abs=1e-12)
    assert got["tau"] < 1.0


def test_paired_bootstrap_over_rows_against_a_direct_loop():
    rng = np.random.default_rng(0)
    D = rng.integers(-1, 2, size=(3, 40)).astype(float)
    got = stats.paired_bootstrap(D, n_boot=200, ci=0.9, seed=5)
    r2 = np.random.default_rng(5)
    idx = r2.integers(0, 40, size=(200, 40))
    means = np.array([D[:, i].mean() for i in idx])  # every replicate resampled at the same rows
    lo, hi = np.percentile(means, [5, 95])
    assert got["mean"] == pytest.approx(D.mean()) and got["lo"] == pytest.approx(lo) and got["hi"] == pytest.approx(hi)
    assert got["se"] == pytest.approx(means.std(ddof=1))
    const = stats.paired_bootstrap(np.ones((2, 30)), n_boot=50)
    assert const["lo"] == const["hi"] == 1.0 and const["se"] == 0.0
    with pytest.raises(ValueError, match="finite"):
        stats.paired_bootstrap(np.array([[np.nan, 1.0]]))


def test_drop_landmarks_reach_c_times_k_and_the_cap_below_it():
    assert cal.drop_capacity(120, 10, 50) == pytest.approx(0.24)
    assert cal.drop_capacity(500, 10, 50) == 1.0 and cal.drop_capacity(120, 2, 50) == 1.0
    assert drop_m(2000, "sqrt", 50, 10) == 120 and drop_m(2000, "sqrt", 50, 10, n_classes=10) == 500
    assert drop_m(2000, 800, 50, 10, n_classes=7) == 800
    with pytest.raises(ValueError, match="10 classes"):
        drop_m(400, "sqrt", 50, 10, n_classes=10)


def _cell_rows(ds, nn, init, seed0=0):
    """Rows of one v3 cell as v3_row writes them (the fields cell_claims reads)."""
    rng = np.random.default_rng(seed0)
    out = []
    for i, (a, b) in enumerate(zip(nn, init)):
        tau = 0.6 + 0.01 * rng.normal()
        out.append(dict(dataset=ds, loss="barlow_twins", seed=i, network_seed=i % 3, nn_probe=a, nn_init_probe=b,
                        krepes_probe=a - 0.002 * (i % 2), delta=-0.2 * (i % 2), tau=tau, tau_pooled=0.7, agreement=0.9,
                        **{f"{p}_{k}": v for p in cal.CEILINGS for k, v in (("tau", 0.55), ("tau_pooled", 0.7),
                                                                            ("agreement", 0.88))},
                        init_delta=np.nan, init_tau=np.nan, init_tau_pooled=np.nan, init_agreement=np.nan,
                        drop_top_true=0.02 + 0.001 * i, drop_random_true=0.005, drop_capacity=1.0, m=120, n_classes=2,
                        damping=0.01, damping_accepted=0.01, cg_converged=True, cg_iterations=50,
                        loss_rose=False, step_ratio=0.5))
    return out


def test_a_cell_whose_network_did_not_learn_does_not_test_the_claim_and_leaves_the_tally():
    from krepes_lib.studies import v3

    learned = _cell_rows("adult", nn=[0.84, 0.85, 0.83, 0.845, 0.84, 0.85], init=[0.80, 0.81, 0.80, 0.805, 0.80, 0.8])
    flat = _cell_rows("higgs", nn=[0.55, 0.54, 0.56, 0.55, 0.53, 0.55], init=[0.56, 0.55, 0.56, 0.56, 0.55, 0.55])
    out = v3.cell_claims(Table(learned + flat), [("adult", "barlow_twins"), ("higgs", "barlow_twins")])
    for fam in ("delta", "tau", "drop"):
        adult, higgs = out[fam]
        assert C.outcome(higgs["verdict"]) == C.UNTESTED and "random initialisation" in higgs["verdict"]
        assert C.outcome(adult["verdict"]) != C.UNTESTED
        assert "Holm" not in adult["rule"] or "1 claims" in adult["rule"]  # the family is the one tested cell
        assert C.outcome(higgs["old_verdict"]) != C.UNTESTED  # the old rule had no control
        assert C.tally(out[fam])[C.UNTESTED] == 1
    assert C.outcome(out["drop"][0]["verdict"]) == C.HOLDS  # KREPES drop above random in every audit
    assert C.outcome(out["tau"][0]["verdict"]) == C.HOLDS  # τ 0.6 vs ceiling 0.55, margin 0.05
    assert "minimum detectable effect" in out["delta"][0]["ours"] and out["delta"][0]["mde"] > 0
    for fam in ("delta", "tau", "drop"):  # every row states the control and how the audits ran
        assert all(s in out[fam][0]["ours"] for s in ("random init", "accepted δ 0.01", "CG converged in 6/6",
                                                      "step ‖ΔÃ‖/‖Ã₀‖ 0.5–0.5")), fam
    # the old design: the audits whose seed is the network's (3 of 6), no control
    assert "n = 3" in out["drop"][1]["old_ours"]


def test_beside_keeps_each_rule_and_refuses_other_claims():
    a = C.decide([C.Claim("x", "", a=[1.0, 1.1, 1.2])], C.Paired("greater"))
    b = C.decide([C.Claim("x", "", a=[1.0, 1.1, 1.2])], C.Threshold("greater", threshold=2.0))
    rows = C.beside(a, b)
    assert rows[0]["verdict"] == a[0]["verdict"] and rows[0]["old_verdict"] == b[0]["verdict"]
    assert rows[0]["old_rule"] == b[0]["rule"] and C.symbol(rows[0]["old_verdict"]) in "+−?∅"
    with pytest.raises(ValueError, match="same claims"):
        C.beside(a, C.decide([C.Claim("y", "", a=[1.0, 1.1, 1.2])], C.Paired("greater")))
    assert C.status_of([C.HOLDS, f"{C.UNTESTED}: control"]) == f"reproduced (1 row {C.UNTESTED})"
    assert C.status_of([f"{C.UNTESTED}: control"]).startswith("not tested")


def test_the_report_shows_the_old_rules_verdict_beside_the_calibrated_one(tmp_path, monkeypatch):
    from krepes_lib import cli
    from krepes_lib.studies.results import save_results

    monkeypatch.setenv("KREPES_RESULTS", str(tmp_path / "book" / "executed" / "results"))
    row = {"claim": "v3 Adult × barlow_twins: Kendall-τ …", "paper": "τ = 0.845", "ours": "τ 0.6", "rule": "non-inferiority",
           "verdict": "holds", "old_verdict": "does not hold"}
    save_results("nb_a", {"claims": [row]}, parameters={})
    text = cli.write_report(tmp_path, {"notebooks": {"nb_a": {"title": "A", "reproduces": "a"}}}, "ci").read_text()
    assert "| verdict | old rule's verdict |" in text and "| holds | does not hold |" in text
    lines = cli._spec7_section({"14_v3_main_table": {"results": {"claims": [row]}}})
    tau = next(ln for ln in lines if ln.startswith("| v3 main table: Kendall"))
    assert "reproduced (old rules: not reproduced)" in tau
