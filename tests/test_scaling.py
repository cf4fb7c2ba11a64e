"""krepes_lib.scaling: resampling, log-log slope fits, streamed full-data passes."""
import numpy as np
import pytest

import krepes_lib as kr
from krepes_lib import stats
from krepes_lib.studies import scaling
from krepes_lib.curvature import GGNOperator
from krepes_lib.losses import make_objective
from krepes_lib.problem import BatchProblem


def _table(N=300, seed=0):
    rng = np.random.default_rng(seed)
    cont = rng.normal(size=(N, 3))
    onehot = np.eye(4)[rng.integers(4, size=N)]
    return np.hstack([cont, onehot]).astype(np.float32), rng.integers(2, size=N)


def test_resample_real_rows_first_and_deterministic():
    X, y = _table()
    small = scaling.resample_rows(X, y, 120, seed=3)
    assert small.n_real == 120 and small.X.shape == (120, 7)
    np.testing.assert_array_equal(small.X, X[small.source])          # real rows only, unchanged
    assert np.unique(small.source).size == 120                       # without replacement
    big = scaling.resample_rows(X, y, 1000, seed=3)
    assert big.n_real == 300
    np.testing.assert_array_equal(big.X[:120], small.X)              # nested: a prefix
    np.testing.assert_array_equal(big.X[:300], X[big.source[:300]])  # every real row, first
    assert sorted(big.source[:300]) == list(range(300))
    np.testing.assert_array_equal(big.y, y[big.source])
    again = scaling.resample_rows(X, y, 1000, seed=3)
    np.testing.assert_array_equal(again.X, big.X)
    other = scaling.resample_rows(X, y, 1000, seed=4)
    assert not np.array_equal(other.X[300:], big.X[300:])
    # synthetic rows: one-hot columns copied exactly, continuous ones jittered by ~τσ
    syn, src = big.X[300:], big.source[300:]
    np.testing.assert_array_equal(big.jittered, [True] * 3 + [False] * 4)
    np.testing.assert_array_equal(syn[:, 3:], X[src, 3:])
    ratio = (syn[:, :3] - X[src, :3]).std(axis=0) / X[:, :3].std(axis=0)
    np.testing.assert_allclose(ratio, 0.05, rtol=0.15)


def test_resample_errors():
    X, y = _table(20)
    with pytest.raises(ValueError, match="n="):
        scaling.resample_rows(X, y, 0)
    with pytest.raises(ValueError, match="y must"):
        scaling.resample_rows(X, y[:5], 30)
    with pytest.raises(ValueError, match="jitter"):
        scaling.resample_rows(X, y, 30, jitter=-1)


@pytest.mark.parametrize("slope", [1.0, 1.5, 2.0])
def test_loglog_fit_recovers_exponent(slope):
    rng = np.random.default_rng(1)
    n = np.repeat(np.logspace(3, 6, 7), 3)
    t = 2e-6 * n**slope * np.exp(rng.normal(scale=0.1, size=n.size))
    fit = stats.fit_loglog(n, t, seed=0)
    assert abs(fit.slope - slope) < 0.05
    assert fit.ci_t[0] < fit.slope < fit.ci_t[1] and fit.ci_boot[0] < fit.slope < fit.ci_boot[1]
    width_t, width_b = fit.ci_t[1] - fit.ci_t[0], fit.ci_boot[1] - fit.ci_boot[0]
    assert 0 < width_t < 0.2 and 0.3 * width_t < width_b < 2 * width_t
    np.testing.assert_allclose(fit.predict(1e4), 2e-6 * 1e4**slope, rtol=0.2)
    exact = stats.fit_loglog(n, 3e-5 * n**slope, n_boot=10)
    assert exact.slope == pytest.approx(slope, abs=1e-12) and exact.intercept == pytest.approx(np.log(3e-5))


def test_loglog_t_interval_coverage():
    """Over 300 simulated timing sets the 90% t-interval covers the true exponent ~90% of the time."""
    rng = np.random.default_rng(2)
    n = np.repeat(np.logspace(3, 6, 5), 2)
    hits = [stats.fit_loglog(n, n**1.5 * np.exp(rng.normal(scale=0.2, size=n.size)), level=0.9,
                               n_boot=2).ci_t for _ in range(300)]
    cover = np.mean([lo < 1.5 < hi for lo, hi in hits])
    assert 0.84 < cover < 0.96          # binomial sd ≈ 0.017 around 0.90


def test_crossover_of_two_power_laws():
    n = np.logspace(2, 5, 6)
    slow = stats.fit_loglog(n, 1e-6 * n**2.0)
    fast = stats.fit_loglog(n, 1e-4 * n**1.5)
    # 1e-6 n² = 1e-4 n^1.5  <=>  n = 1e4
    assert stats.crossover_n(slow, fast) == pytest.approx(1e4, rel=1e-6)
    with pytest.raises(ValueError, match="two or more"):
        stats.fit_loglog([10, 10], [1.0, 2.0])


def _model(X, m=12, h=3):
    lm = kr.select_landmarks(X, m=m, method="uniform", seed=0)
    return kr.NystromModel(kr.Nystrom(kr.RBF(sigma=2.0), lm, dtype="float64"), h=h)


@pytest.mark.parametrize("loss", ["barlow_twins", "spectral_contrastive"])
def test_streamed_gradient_and_ggn_match_ggn_operator(loss):
    X = np.random.default_rng(0).normal(size=(96, 4))
    model = _model(X)
    B = 32
    batches = list(scaling.full_data_batches(X, B, 2, augment="table", seed=5))
    assert len(batches) == 3 and all(v.shape == (B, 4) for b in batches for v in b)
    again = list(scaling.full_data_batches(X, B, 2, augment="table", seed=5))
    np.testing.assert_array_equal(batches[2][1], again[2][1])        # regenerable
    obj = make_objective(loss)
    state = obj.init_state(model)
    op = GGNOperator([BatchProblem(model, obj, state, b, 2**30) for b in batches], damping=0.1,
                     keys=(model._main, "gamma"))
    val_ref, g_ref = op.gradient()
    sop = scaling.StreamedGGN(model, loss, X, damping=0.1, batch_size=B, augment="table", seed=5)
    val, g = sop.gradient()
    assert val == pytest.approx(val_ref, rel=1e-10)
    for k in sop.keys:
        np.testing.assert_allclose(g[k], g_ref[k], rtol=1e-9, atol=1e-12)
    rng = np.random.default_rng(2)
    V = {k: rng.normal(size=g[k].shape) for k in sop.keys}
    ref, got = op.matvec(V), sop.matvec(V)
    for k in sop.keys:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-9, atol=1e-12)
    v = sop.flatten(V)
    np.testing.assert_allclose(sop.flat_matvec(v), op.flat_matvec(v), rtol=1e-9, atol=1e-12)


def test_full_gradient_is_row_weighted_with_a_partial_batch():
    X = np.random.default_rng(1).normal(size=(80, 4))
    model = _model(X)
    B = 32  # batches of 32, 32, 16
    obj = make_objective("barlow_twins")
    state = obj.init_state(model)
    vals, grads, sizes = [], [], []
    for b in scaling.full_data_batches(X, B, 2, augment="table", seed=1):
        v, g = BatchProblem(model, obj, state, b, 2**30).value_and_grad()
        vals.append(float(v)), grads.append(g[model._main]), sizes.append(b[0].shape[0])
    w = np.asarray(sizes) / sum(sizes)
    val, g = scaling.full_objective_and_gradient(model, "barlow_twins", X, batch_size=B, augment="table",
                                                 seed=1)
    assert sizes == [32, 32, 16]
    assert val == pytest.approx(float(np.dot(w, vals)), rel=1e-12)
    np.testing.assert_allclose(g[model._main], sum(wi * gi for wi, gi in zip(w, grads)), rtol=1e-10)


def test_nystrom_timings_stages_and_full_kernel():
    X, y = _table(200)
    Xt, yt = _table(60, seed=1)
    out = scaling.nystrom_timings(X, y, Xt, yt, h=4, batch_size=64)
    assert out["m"] == 15 and set(out["seconds"]) == {"landmarks", "kernel", "pc_init", "epoch", "evaluation"}
    assert 0 <= out["accuracy"] <= 1
    bd = scaling.nystrom_timings(X, y, Xt, yt, h=4, batch_size=64, breakdown=True)
    split = scaling.time_breakdown({"seconds": bd["seconds"]})
    s = bd["seconds"]
    in_k = min(s["epoch"], s["epoch_kernel"])
    assert split["views"] == pytest.approx(min(s["epoch"] - in_k, s["epoch_views"]))
    assert split["optimisation"] == pytest.approx(s["epoch"] - in_k - split["views"]) and split["optimisation"] >= 0
    assert sum(split.values()) == pytest.approx(sum(v for k, v in s.items() if not k.startswith("epoch_")))
    assert scaling.train_seconds({"seconds": s}) == pytest.approx(sum(s[k] for k in scaling.TRAIN_STAGES))
    full = scaling.full_kernel_timings(X, y, Xt, yt, h=4, batch_size=64, stage="audit")
    assert full["m"] == 200 and "audit" in full["seconds"]
    rows = scaling.m_sweep(X, y, Xt, yt, [5, 40, 500], h=3, error_rows=100, n=300)
    assert [r["m"] for r in rows] == [5, 40] and rows[0]["n"] == 300
    assert rows[0]["nystrom_error"] > rows[1]["nystrom_error"] >= 0
    assert scaling.smallest_sufficient_m(rows + [{"n": 300, "m": 80, "accuracy": rows[1]["accuracy"] + 0.5}],
                                         tol=0.01) == {300: 80}


