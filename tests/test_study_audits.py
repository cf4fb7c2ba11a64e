"""krepes_lib.studies.audits: audit runs, metric collectors, results table and verdict rules."""
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats as st

import krepes_lib as kr
from krepes_lib.studies import audits as AS
from krepes_lib import data
from krepes_lib.interpret import alignment_gap, spectral_entropy


@pytest.fixture(scope="module")
def digits_split():
    D = data.load("digits")
    te = data.stratified_indices(D.y, 120, 0)
    rest = np.setdiff1d(np.arange(len(D)), te)
    tr = rest[data.stratified_indices(D.y[rest], 400, 1)]
    return SimpleNamespace(X=D.X[tr], y=D.y[tr], X_test=D.X[te], y_test=D.y[te], train=D, test=D,
                           n_classes=10)


@pytest.fixture(scope="module")
def run(digits_split):
    return AS.run_audit(digits_split, "barlow_twins", seed=1, dataset="digits", h=8, m=40,
                        n_batches=2, batch_size=64, dtype="float64")


def test_run_audit_is_build_model_plus_audit(digits_split, run):
    S = digits_split
    model = kr.build_model(S.X, 8, m=40, kernel="rbf", landmarks="kmeans++", seed=1, coords="raw",
                           dtype="float64")
    ref = kr.audit(model, "barlow_twins", S.X, augment=S.train, seed=1, n_batches=2, batch_size=64)
    np.testing.assert_allclose(run.audit.delta_A, ref.delta_A, rtol=1e-8, atol=1e-12)
    idx = np.asarray(model.nystrom.landmark_indices)
    np.testing.assert_array_equal(run.y_landmarks, S.y[idx])
    np.testing.assert_array_equal(S.X[idx], np.asarray(run.audit.landmarks))
    info = run.info()
    assert info["m"] == 40 and info["h"] == 8 and info["loss_rose"] == (info["loss_after"] > info["loss_before"])


def test_drop_m_needs_twice_k_plus_removed():
    assert AS.drop_m(1000) == 120  # ceil(sqrt(1000)) = 32 < 2 (50 + 10)
    assert AS.drop_m(40000) == 200
    assert AS.drop_m(1000, m=150) == 150
    assert AS.drop_m(1000, k=5, n_remove=1) == 32
    with pytest.raises(ValueError, match="m >= 120"):
        AS.drop_m(100)


def test_audit_flags_counts_rising_losses():
    rows = [dict(loss_rose=True, step_ratio=2.5), dict(loss_rose=False, step_ratio=0.1),
            dict(loss_rose=True, step_ratio=1.0)]
    txt = AS.audit_flags(rows)
    assert "FLAG" in txt and "2 of 3" in txt and "0.1–2.5" in txt
    assert AS.audit_flags(rows[1:2]).startswith("every audit lowered")
    per_feature = [dict(dataset="d", loss="l", seed=s, feature=f, loss_rose=s == 0, step_ratio=1.0)
                   for s in range(3) for f in "abc"]
    assert "1 of 3 audits" in AS.audit_flags(per_feature)
    guarded = [dict(seed=s, loss_rose=False, step_ratio=0.1, damping=1e-2, damping_accepted=a, cg_converged=c)
               for s, (a, c) in enumerate(((1e-2, True), (10.0, True), (100.0, False)))]
    txt = AS.audit_flags(guarded)
    assert txt.startswith("every audit lowered") and "raised by the acceptance rule in 2 of 3" in txt
    assert "accepted δ 10–100" in txt and "CG stopped short of its tolerance in 1 of 3" in txt


def test_audit_metrics_against_naive_references(digits_split, run):
    S = digits_split
    r = AS.audit_metrics(run, S, kappa=True, probe=True, p1=True, label_fraction=0.2)
    yL, yt = run.y_landmarks, S.y_test
    # uniform landmark: sum_c p_test(c) p_L(c), by an explicit double loop
    naive = np.mean([[float(a == b) for b in yL] for a in yt])
    assert r["p1_random"] == pytest.approx(naive, rel=1e-12)
    # distinct top-1 by IS = |k(x_t, x_l)| ||ΔÃ_l||, from the dense kernel
    K = np.asarray(run.audit.kernel(np.asarray(S.X_test, float), np.asarray(run.audit.landmarks), dtype=np.float64))
    IS = np.abs(K) * np.linalg.norm(np.asarray(run.audit.delta_A), axis=1)[None, :]
    assert r["distinct_top1"] == np.unique(IS.argmax(axis=1)).size
    assert r["p1_krepes"] == pytest.approx(np.mean(yL[IS.argmax(axis=1)] == yt))
    assert 10 <= r["kappa"] <= run.m + 1
    assert 0.5 < r["probe"] <= 1 and 0.5 < r["probe_pc"] <= 1


def test_audit_metrics_drop_both_targets(digits_split):
    S = digits_split
    run = AS.run_audit(S, "barlow_twins", seed=0, h=8, m=AS.drop_m(len(S.y), k=10, n_remove=3),
                       n_batches=1, batch_size=64, dtype="float64")
    r = AS.audit_metrics(run, S, drop=True, drop_k=10, drop_n_remove=3)
    for t in ("true", "predicted"):
        assert r[f"drop_max_abs_{t}"] <= 3 / 10 + 1e-12
        ratio = r[f"drop_ratio_{t}"]
        if r[f"drop_top_{t}"] > 0 and r[f"drop_random_{t}"] > 0:
            assert ratio == pytest.approx(r[f"drop_top_{t}"] / r[f"drop_random_{t}"])
        else:
            assert np.isnan(ratio)
    # the true-class confidence is at most the predicted (majority) class's share
    assert r["confidence_true"] <= r["confidence_predicted"] + 1e-12
    with pytest.raises(ValueError, match="too close"):
        AS.audit_metrics(run, S, drop=True, drop_k=20, drop_n_remove=3)


def test_table_orders_pairs_by_seed():
    T = AS.Table()
    for s in (2, 0, 1):
        T.add(dict(loss="a", seed=s, v=10 * s))
        T.add(dict(loss="b", seed=s, v=s))
    np.testing.assert_array_equal(T.values("v", loss="a"), [0, 10, 20])
    assert T.unique("loss") == ["a", "b"] and T.unique("seed") == [2, 0, 1]
    assert T.mean_std("v", digits=1, loss="b") == "1.0 ± 1.0"


def test_table_claims_build_claims_that_the_engine_decides():
    T = AS.Table()
    a1, b1 = np.array([0.31, 0.35, 0.33, 0.36]), np.array([0.30, 0.30, 0.31, 0.32])
    for s, (x, y) in enumerate(zip(a1, b1)):
        T.add(dict(dataset="d", seed=s, a=x, b=y, loss_rose=False, step_ratio=0.5))
    items = AS.table_claims(T, [dict(dataset="d")], "a", "b", "{dataset}: a beats b", "p", what="d = a − b")
    assert isinstance(items[0], kr.claims.Claim) and items[0].claim == "d: a beats b"
    row = kr.claims.decide(items, kr.claims.Paired())[0]
    assert row["p"] == pytest.approx(st.ttest_rel(a1, b1, alternative="greater").pvalue) and row["verdict"] == "holds"
    assert row["rule"].startswith("d = a − b; one-sided paired t-test") and "every audit lowered its loss" in row["ours"]
    with pytest.raises(KeyError, match="no row matches"):
        AS.table_claims(T, [dict(dataset="e")], "a", "b", "{dataset}", "p")


def test_per_seed_kendall_against_scipy():
    T = AS.Table()
    rng = np.random.default_rng(1)
    ref = []
    for s in range(3):
        k, acc = rng.normal(size=5), rng.normal(size=5)
        for i in range(5):
            T.add(dict(dataset="d", loss=f"l{i}", seed=s, kappa=k[i], probe=acc[i]))
        ref.append(st.kendalltau(k, acc)[0])
    np.testing.assert_allclose(AS.per_seed_kendall(T, "kappa", "probe", dataset="d"), ref)
    paper = [1, 2, 3, 4, 5]
    got = AS.per_seed_kendall(T, "kappa", paper, dataset="d")
    np.testing.assert_allclose(got, [st.kendalltau(T.values("kappa", seed=s), paper)[0] for s in range(3)])


def test_peak_check_catches_the_neighbour_of_the_edge():
    grid = [1e-3, 1e-2, 1e-1, 1, 10, 100, 1000]
    def bump(i):
        v = np.zeros((2, 7))
        v[:, i] = 1.0
        return v

    def verdict(*a, **k):
        return kr.claims.decide_check("c", "p", "o", **AS.peak_check(grid, *a, **k)["check"])["verdict"]
    assert verdict(bump(5), bump(6)).startswith("inconclusive: the peaks coincide only trivially")
    assert verdict(bump(5), bump(1)).startswith("inconclusive: the entropy")
    assert verdict(bump(2), bump(3)) == "holds"
    assert verdict(bump(0), bump(4)) == "does not hold"
    assert verdict(bump(5), bump(6), sweep="lambda_off") == "holds"
    assert AS.peak_check(grid, bump(2), bump(3))["p_chance"] == pytest.approx(19 / 49)


def test_class_gallery_identities(digits_split, run):
    S = digits_split
    g = AS.class_gallery(run, S, K=4)
    assert g["min_is"] >= 0 and g["max_is_violation"] <= 1e-10
    assert (g["att_s"][:, -1] >= g["rep_s"][:, 0]).all()
    assert ((0 <= g["share_att"]) & (g["share_att"] <= 1)).all()
    K = np.asarray(run.audit.kernel(np.asarray(S.X_test, float), np.asarray(run.audit.landmarks), dtype=np.float64))
    t = 7
    other = run.y_landmarks != S.y_test[t]
    assert g["sim_other"][t] == pytest.approx(K[t, other].mean())
    assert g["sim_rep"][t] == pytest.approx(K[t, g["rep_i"][t]].mean())
    np.testing.assert_allclose(g["chance"], np.bincount(run.y_landmarks, minlength=10)[S.y_test] / run.m)
    assert g["summary"]["share_rep"] == pytest.approx(g["share_rep"].mean()) and g["summary"]["seed"] == 1


def test_concept_separation_and_landmarks(run, digits_split):
    rng = np.random.default_rng(0)
    y_tr, y_te = rng.random(200) < 0.3, rng.random(100) < 0.3
    Z_tr = rng.normal(size=(200, 3)) + 4.0 * y_tr[:, None]
    Z_te = rng.normal(size=(100, 3)) + 4.0 * y_te[:, None]
    v, auc, bal = AS.concept_separation(Z_tr, y_tr, Z_te, y_te)
    assert auc > 0.97 and bal > 0.9 and np.linalg.norm(v) == pytest.approx(1.0)
    v, auc, bal = AS.concept_separation(Z_tr, y_tr, rng.normal(size=(100, 3)), y_te)
    assert abs(auc - 0.5) < 0.2
    with pytest.raises(ValueError, match="both positives and negatives"):
        AS.concept_separation(Z_tr, y_tr, Z_te, np.ones(100, bool))
    vh = np.ones(run.h) / np.sqrt(run.h)
    Xp = digits_split.X_test[:20]
    top, bot, mean = AS.concept_landmarks(run.audit, Xp, vh, K=3)
    K = np.asarray(run.audit.kernel(np.asarray(Xp, float), np.asarray(run.audit.landmarks), dtype=np.float64))
    ref = (K * (np.asarray(run.audit.delta_A) @ vh)[None, :]).mean(axis=0)
    np.testing.assert_allclose(mean, ref, rtol=1e-10, atol=1e-14)
    assert list(top) == list(np.argsort(-ref)[:3]) and list(bot) == list(np.argsort(ref)[:3])


def _table_split(n=300, nt=80, seed=0):
    rng = np.random.default_rng(seed)
    def ds(k):
        raw = np.column_stack([rng.integers(0, 2, k), rng.integers(0, 4, k), rng.normal(size=k)])
        X = np.column_stack([raw[:, 0], np.eye(4)[raw[:, 1].astype(int)], raw[:, 2]]).astype(np.float32)
        return data.Dataset(X=X, y=(raw[:, 0] + (raw[:, 2] > 0)).astype(np.int64) % 2, classes=["a", "b"],
                            name="toy", categorical={"s", "c"}, X_raw=raw, raw_feature_names=["s", "c", "num"])
    tr, te = ds(n), ds(nt)
    return SimpleNamespace(X=tr.X, y=tr.y, X_test=te.X, y_test=te.y, train=tr, test=te, n_classes=2)


def test_alignment_gaps_match_the_interpret_call():
    S = _table_split()
    run = AS.run_audit(S, "vicreg", seed=2, h=4, m=20, n_batches=1, batch_size=64, dtype="float64")
    rows = AS.alignment_gaps(run, S, ["c", "num"], K=5, n_boot=200)
    a = run.audit
    ref = alignment_gap(a.kernel, a.landmarks, np.asarray(S.X_test, float), a.delta_A, S.test.X_raw,
                        S.train.X_raw[run.landmark_indices], feature=1, categorical=True, K=5,
                        n_boot=200, seed=2)
    assert rows[0]["gap"] == pytest.approx(ref.gap) and rows[0]["lo"] == pytest.approx(ref.ci_low)
    assert rows[1]["feature"] == "num" and rows[0]["loss"] == "vicreg"
    with pytest.raises(ValueError, match="not a raw feature"):
        AS.alignment_gaps(run, S, ["nope"])


def test_pair_comparisons_feed_the_intersection_union_rule():
    T = AS.Table()
    rng = np.random.default_rng(3)
    for s in range(4):
        for f, mu in (("hi1", 0.5), ("hi2", 0.4), ("lo1", 0.1), ("lo2", 0.0)):
            T.add(dict(loss="l", seed=s, feature=f, gap=mu + 0.01 * rng.normal(), loss_rose=False, step_ratio=1.0))
    comps = AS.pair_comparisons(T, ["hi1", "hi2"], ["lo1", "lo2"], loss="l")
    assert [c.claim for c in comps] == ["hi1 − lo1", "hi1 − lo2", "hi2 − lo1", "hi2 − lo2"]
    row = kr.claims.decide_all("c", "p", comps, kr.claims.Paired())
    assert row["verdict"] == "holds" and "intersection-union" in row["rule"]
    rev = kr.claims.decide_all("c", "p", AS.pair_comparisons(T, ["lo1", "hi1"], ["hi2"], loss="l"), kr.claims.Paired())
    assert rev["verdict"] == "does not hold"


def test_entropy_sweep_shares_views_and_shrinks_the_step(digits_split):
    S = digits_split
    rows = AS.entropy_sweep(S, "barlow_twins", [1e-2, 1.0, 100.0], seed=0, h=6, m=30, n_batches=1,
                            batch_size=64, dtype="float64")
    steps = [r["step_ratio"] for r in rows[:3]]
    assert steps[0] >= steps[1] >= steps[2] > 0
    pc = rows[-1]
    assert pc["value"] is None and 0 <= pc["H"] <= 1
    # the δ = 1 point is the audit of run_audit with the same seed (same landmarks and views)
    r1 = AS.run_audit(S, "barlow_twins", seed=0, h=6, m=30, damping=1.0, n_batches=1, batch_size=64,
                      dtype="float64")
    assert rows[1]["H_audited"] == pytest.approx(r1.audit.spectral_entropy(), rel=1e-8)
    assert rows[1]["H_delta"] == pytest.approx(spectral_entropy(r1.audit.delta_A), rel=1e-8)
    with pytest.raises(ValueError, match="lambda_off"):
        AS.entropy_sweep(S, "vicreg", [1, 2, 3], sweep="lambda_off")


def test_table_claims_pairs_columns_per_group():
    T = AS.Table()
    for s in range(4):
        T.add(dict(dataset="d", loss="a", seed=s, x=0.5 + 0.01 * s, y=0.1, loss_rose=s == 0, step_ratio=1.0))
        T.add(dict(dataset="d", loss="b", seed=s, x=0.1 + 0.02 * (-1) ** s, y=0.1, loss_rose=False, step_ratio=1.0))
    rows = kr.claims.decide(AS.table_claims(T, [dict(dataset="d", loss="a"), dict(dataset="d", loss="b")], "x", "y",
                                            "{dataset}/{loss}: x > y", "paper {loss}", what="d = x − y"),
                            kr.claims.Paired(), family="groups")
    assert [r["claim"] for r in rows] == ["d/a: x > y", "d/b: x > y"] and rows[1]["paper"] == "paper b"
    assert rows[0]["verdict"] == "holds" and rows[1]["verdict"] == "inconclusive"
    assert "FLAG" in rows[0]["flags"] and rows[0]["rule"].startswith("d = x − y; one-sided paired t-test over seeds")
    assert "Holm over the 2 claims of groups" in rows[0]["rule"]
