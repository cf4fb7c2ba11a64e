"""Tests of krepes_lib.studies.v1: record helpers and each study on tiny data (verdicts: tests/test_claims.py)."""
import numpy as np
import pytest

import krepes_lib as kr
from krepes_lib.studies import v1 as studies
from krepes_lib.evaluate import knn_accuracy, linear_probe


class Split(tuple):
    """Stand-in for kr.data.load_split's result: unpacks as X, y, X_test, y_test."""

    train = None
    n_classes = 3


def blobs(n, seed, C=3, d=5):
    centres = 3.0 * np.random.default_rng(0).standard_normal((C, d))  # shared by train and test
    y = np.repeat(np.arange(C), -(-n // C))[:n]
    return centres[y] + np.random.default_rng(seed).standard_normal((n, d)), y


@pytest.fixture(scope="module")
def split():
    return Split((*blobs(120, 1), *blobs(60, 2)))


# --- records ----------------------------------------------------------------------------------
def test_select_column_curves_order_by_seed_and_refuse_missing():
    recs = [dict(arm="a", seed=1, v=2.0, c=[1, 3]), dict(arm="a", seed=0, v=1.0, c=[3, 5]),
            dict(arm="b", seed=0, v=None, c=[0, 0])]
    assert [r["seed"] for r in studies.select(recs, arm="a")] == [0, 1]
    np.testing.assert_array_equal(studies.column(recs, "v", arm="a"), [1.0, 2.0])
    assert np.isnan(studies.column(recs, "v", arm="b")[0])
    mean, std = studies.curves(recs, "c", arm="a")
    np.testing.assert_allclose(mean, [2, 4])
    np.testing.assert_allclose(std, [np.sqrt(2), np.sqrt(2)])
    with pytest.raises(KeyError, match="no row matches"):
        studies.select(recs, arm="c")


# --- evaluation -------------------------------------------------------------------------------
def test_scorer_matches_probe_and_knn(split):
    X, y, Xt, yt = split
    model = kr.build_model(X, h=4, m=20, seed=0)
    sc = studies.Scorer(X, y, Xt, yt, seed=3)
    p = sc(model)
    assert p == linear_probe(model.embed(X), y, model.embed(Xt), yt, seed=3)
    out = sc.final(model, p)
    assert out["knn"] == knn_accuracy(model.embed(X), y, model.embed(Xt), yt, k=20)


def test_objective_value_is_the_mean_loss_on_the_embedded_views(split):
    X = split[0]
    model = kr.build_model(X, h=4, m=20, seed=0)
    batches = kr.view_batches(X, 2, 30, views=2, augment="table", seed=0)
    bt = kr.losses.get("barlow_twins")
    want = np.mean([float(bt.value(model.embed(a), model.embed(b))) for a, b in batches])
    assert studies.objective_value(model, "barlow_twins", batches) == pytest.approx(want, rel=1e-10)


# --- studies on tiny data ---------------------------------------------------------------------
def test_main_results_records_and_trained_counts(split):
    recs = studies.main_results(split, ["kae", "barlow_twins"], m=20, h=4, epochs=2, batch_size=40,
                                seeds=[0, 1], dtype="float64", progress=False)
    assert {r["method"] for r in recs} == {"raw features", "PC init", "kae", "barlow_twins"}
    pc = studies.select(recs, method="PC init")[0]
    r = pc["n_trained"] // 4 - 1  # whitened W (r × h) + γ (h)
    assert pc["mh_h"] == 20 * 4 + 4 and 1 <= r <= 20
    bt = studies.select(recs, method="barlow_twins")[0]
    kae = studies.select(recs, method="kae")[0]
    assert bt["n_trained"] == pc["n_trained"]          # BT trains only (W, γ)
    assert kae["n_trained"] > pc["n_trained"]           # plus the decoder
    assert bt["moved"] > 0 and len(bt["loss"]) == 2 and len(bt["probe_curve"]) == 3
    assert bt["probe_curve"][0] == pc["probe"]
    assert all(0 < x["probe"] <= 1 and 0 < x["knn"] <= 1 for x in recs)


def test_optimizer_study_runs_every_method_through_fit(split):
    recs, info = studies.optimizer_study(split, "barlow_twins", list(studies.OPTIMIZER_METHODS),
                                         lrs=[1e-2], seeds=[0, 1], m=20, h=4, epochs=2, batch_size=40,
                                         n_eval_views=80, newton_cg_iter=5, dtype="float64", progress=False)
    assert len(recs) == 10 and len(info["eval_batches"]) == 2
    for rec in recs:
        assert len(rec["objective"]) == 3 and np.isfinite(rec["objective"]).all()
        assert rec["time"][0] >= 0 and np.all(np.diff(rec["time"]) >= 0)
    # identical starting point for every method (PC init, same fixed views)
    assert len({round(r["objective"][0], 10) for r in recs}) == 1
    newton = studies.select(recs, method="newton_cg")
    assert all(r["objective"][-1] < r["objective"][0] for r in newton) and newton[0]["lr"] is None
    assert studies.select(recs, method="adam_ggn")[0]["n_matvec"] > 0


def test_best_lr_skips_diverged_rates_and_refuses_all_diverged():
    recs = [dict(method="a", lr=0.1, seed=0, diverged=True, objective=[1, np.nan]),
            dict(method="a", lr=0.01, seed=0, diverged=False, objective=[1, 0.5]),
            dict(method="a", lr=0.001, seed=0, diverged=False, objective=[1, 0.7]),
            dict(method="n", lr=None, seed=0, diverged=False, objective=[1, 0.1])]
    assert studies.best_lr(recs, "a") == 0.01 and studies.best_lr(recs, "n") is None
    with pytest.raises(RuntimeError, match="diverged at every"):
        studies.best_lr(recs[:1], "a")


def test_time_to_reach_reads_the_mean_curves():
    recs = [dict(method="a", seed=0, objective=[3.0, 2.0, 1.0], time=[0.0, 1.0, 2.0]),
            dict(method="a", seed=1, objective=[3.0, 1.0, 1.0], time=[0.0, 3.0, 4.0])]
    assert studies.time_to_reach(recs, 1.5, method="a") == 2.0  # mean objective 1.5 at t = 2
    assert studies.time_to_reach(recs, 0.5, method="a") == float("inf")


def test_init_study_pc_is_the_same_function_in_both_coordinates(split):
    recs, nys = studies.init_study(split, "barlow_twins", ["whitened", "raw"], ["pc", "random"], [0, 1],
                                   m=20, h=4, epochs=1, batch_size=40, dtype="float64", progress=False)
    assert len(recs) == 8
    p0w = [r["probe"][0] for r in studies.select(recs, coords="whitened", init="pc")]
    p0r = [r["probe"][0] for r in studies.select(recs, coords="raw", init="pc")]
    assert p0w == p0r and len(p0w) == 2
    r0 = [r["probe"][0] for r in studies.select(recs, coords="whitened", init="random")]
    assert r0 != p0w  # random init is a different function


def test_landmark_study_kappa_and_probes(split):
    recs = studies.landmark_study(split, "barlow_twins", ["uniform", "kmeans++", "leverage"], [10, 20], [0],
                                  h=4, epochs=1, batch_size=40, dtype="float64", progress=False)
    assert len(recs) == 6
    for r in recs:
        assert 3 <= r["kappa"] <= r["m"] + 1 and 3 <= r["kappa0"] <= r["m"] + 1
        assert 0 < r["probe0"] <= 1 and 0 < r["probe"] <= 1 and np.isfinite(r["loss"])


def test_nystrom_error_study_matches_the_basis_and_vanishes_at_m_equal_n(split):
    X, y = split[0][:40], split[1][:40]
    k = kr.default_kernel(X)
    recs = studies.nystrom_error_study(X, y, k, ["uniform", "kmeans++"], [5, 40], [0], h=3, progress=False)
    rec = studies.select(recs, method="uniform", m=5)[0]
    lm = kr.select_landmarks(X, 5, method="uniform", seed=0)
    assert rec["error"] == pytest.approx(kr.Nystrom(k, lm, dtype="float64").relative_error(X), rel=1e-12)
    assert all(r["error"] < 1e-4 for r in recs if r["m"] == 40)  # every point is a landmark
    assert all(r["error"] > 1e-3 for r in recs if r["m"] == 5)


def test_load_rows_caps_at_the_dataset_and_stratifies():
    X, y, D = studies.load_rows("digits", 10 ** 6)
    assert len(y) == len(D)
    X, y, D = studies.load_rows("digits", 100, seed=0)
    assert X.shape == (100, D.X.shape[1]) and np.bincount(y).min() >= 9


def test_host_setup_names_the_backend(capsys):
    assert studies.host_setup(None) == kr.default_xp().__name__
    assert "host BLAS threads: unchanged" in capsys.readouterr().out
