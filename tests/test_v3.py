"""krepes_lib.v3: the timed / unit-diagonal kernel, the eNTK audit as an AuditRun, the probe pair
(same labelled rows, Δ, Kendall-τ) against naive references, the v3 and v1 rows, and the verdict
rules (TOST and thresholds with Holm) against closed-form t-tests."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import krepes_lib as kr  # noqa: E402
from krepes_lib.studies import v3  # noqa: E402
from krepes_lib.evaluate import labelled_subset  # noqa: E402
from krepes_lib.neural import TorchNTK, ssl  # noqa: E402
from krepes_lib.studies.results import PAPER  # noqa: E402


def _data(n, seed=0, d=6, C=3):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(C, d)) * 2.5
    y = np.arange(n) % C
    rng.shuffle(y)
    return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y


@pytest.fixture(scope="module")
def trained():
    X, y = _data(180, 0)
    Xt, yt = _data(90, 1)
    cfg = ssl.SSLConfig(dataset="synthetic", loss="barlow_twins", size="tiny", epochs=1, batch_size=32)
    net, hist = ssl.train_ssl(cfg, X, progress=False)
    return ssl.TrainedNetwork(net, cfg, "test", hist, 0.0, False, None, X, y, Xt, yt, None)


def test_timed_kernel_scales_casts_and_counts():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(20, 3)), rng.normal(size=(5, 3))
    base = kr.RBF(sigma=1.3)
    k = v3.TimedKernel(base, scale=2.5)
    np.testing.assert_allclose(k(X, Y), 2.5 * base(X, Y), rtol=1e-12)
    np.testing.assert_allclose(k.diag(X), 2.5 * base.diag(X), rtol=1e-12)
    got = np.concatenate([b for _, b in k.blocks(X, Y, rows=7)])  # the prepared-Y path, float64 kept
    ref = np.concatenate([b for _, b in base.blocks(X, Y, rows=7)])
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, 2.5 * ref, rtol=1e-12)
    assert k.seconds > 0 and k.calls >= 5
    k.reset()
    assert k.seconds == 0 and k.calls == 0
    # a float32 eNTK inside a float64 model: blocks come back in X's dtype
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    kt = v3.TimedKernel(TorchNTK(net, dtype="float32"))
    assert kt(X, Y, dtype="float64").dtype == np.float64
    with pytest.raises(ValueError, match="scale"):
        v3.TimedKernel(base, scale=0.0)
    with pytest.raises(TypeError, match="Kernel"):
        v3.TimedKernel("rbf")


def test_unit_diagonal_scale_is_one_over_the_mean_squared_norm_for_the_linear_kernel():
    X = np.random.default_rng(1).normal(size=(300, 4))
    s = v3.unit_diagonal_scale(kr.Linear(), X, rows=256)
    assert s == pytest.approx(1.0 / np.mean(np.sum(X[:256] ** 2, axis=1)), rel=1e-12)
    assert v3.TimedKernel(kr.Linear(), s).diag(X[:256], dtype="float64").mean() == pytest.approx(1.0, rel=1e-12)


def test_network_split_slices_and_counts(trained):
    sp = v3.network_split(trained, n_train=150, n_test=60)
    # a stratified subset (round(n/N · N_c) rows per class), not a prefix: the files' row order can follow the label
    want = np.round(150 / 180 * np.bincount(trained.y)).astype(int)
    np.testing.assert_array_equal(np.bincount(sp.y), want)
    idx = labelled_subset(trained.y, 150 / 180, seed=[0, 1])
    np.testing.assert_array_equal(sp.X, trained.X[idx])
    assert sp.X_test.shape == (60, 6) and sp.n_classes == 3
    assert sp.chance == pytest.approx(np.bincount(sp.y_test).max() / sp.y_test.size)
    assert v3.network_split(trained).X.shape == trained.X.shape
    views = sp.train(sp.X[:8].copy(), np.random.default_rng(0))
    assert views.shape == (8, 6) and not np.allclose(views, sp.X[:8])  # the table augmenter


def test_entk_audit_is_the_network_eNTK_scaled_and_influence_reads_it(trained):
    sp = v3.network_split(trained)
    run = v3.run_entk_audit(trained, sp, "barlow_twins", 0, implementation="exact", m=20, h=4,
                            n_batches=1, batch_size=64)
    k = run.audit.kernel
    assert isinstance(k, v3.TimedKernel) and isinstance(k.base, TorchNTK) and k.base.implementation == "exact"
    exact = TorchNTK(trained.backbone, implementation="exact")
    X64 = sp.X.astype(np.float64)
    scale = 1.0 / exact.diag(X64[:256]).mean()
    assert k.scale == pytest.approx(scale, rel=1e-5)
    # landmarks: k-means++ in the (scaled) eNTK's space, from the training rows
    lm = kr.select_landmarks(X64, m=20, method="kmeans++", kernel=k, kernel_space=True, seed=0)
    np.testing.assert_array_equal(run.landmark_indices, lm.indices)
    np.testing.assert_array_equal(run.y_landmarks, sp.y[lm.indices])
    # IS(x̃_l, x_t) = |k(x_t, x̃_l)|·‖ΔÃ_l‖ with k = scale × eNTK, eq. (int-is)
    Xt = sp.X_test[:7].astype(np.float64)
    IS = np.abs(scale * exact(Xt, X64[lm.indices])) * np.linalg.norm(run.audit.delta_A, axis=1)[None, :]
    top = run.audit.top_influential(Xt, K=3)
    np.testing.assert_allclose(top.scores, -np.sort(-IS, axis=1)[:, :3], rtol=1e-4)
    info = run.info()
    assert info["kernel"] == "eNTK (exact)" and 0 < info["kernel_s"] <= info["seconds"]
    assert info["n_network_parameters"] == sum(p.numel() for p in trained.backbone.parameters())
    assert np.isfinite(info["loss_before"]) and np.isfinite(info["loss_after"])


def test_probe_pair_uses_the_same_labelled_rows_and_kendall_tau_of_predicted_class_probabilities(trained):
    from scipy.stats import kendalltau
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from krepes_lib.defaults import PROBE_C, PROBE_MAX_ITER

    sp = v3.network_split(trained)
    run = v3.run_entk_audit(trained, sp, "barlow_twins", 3, sketch_size=4, m=16, h=4, n_batches=1, batch_size=64)
    pp = v3.probe_pair(trained, run, sp, label_fraction=0.2, seed=3)
    idx = labelled_subset(sp.y, 0.2, 3)

    def naive(Z, Zt):
        Z, Zt = np.asarray(Z, np.float64), np.asarray(Zt, np.float64)
        sc = StandardScaler().fit(Z[idx])
        clf = LogisticRegression(C=PROBE_C, max_iter=PROBE_MAX_ITER).fit(sc.transform(Z[idx]), sp.y[idx])
        P = clf.predict_proba(sc.transform(Zt))
        return float((P.argmax(1) == sp.y_test).mean()), P

    a_nn, P_nn = naive(trained.network.embed(sp.X), trained.network.embed(sp.X_test))
    a_kr, P_kr = naive(run.audit.embed(sp.X), run.audit.embed(sp.X_test))
    assert pp["nn_probe"] == pytest.approx(a_nn) and pp["krepes_probe"] == pytest.approx(a_kr)
    assert pp["delta"] == pytest.approx(100 * (a_kr - a_nn))
    assert pp["tau"] == pytest.approx(kendalltau(P_nn.max(1), P_kr.max(1))[0], abs=1e-9)
    rows = np.arange(sp.y_test.size)
    assert pp["tau_true"] == pytest.approx(kendalltau(P_nn[rows, sp.y_test], P_kr[rows, sp.y_test])[0], abs=1e-9)
    assert pp["agreement"] == pytest.approx(float((P_nn.argmax(1) == P_kr.argmax(1)).mean()))
    assert pp["n_labelled"] == idx.size


@pytest.mark.parametrize("kernel", ["entk", "rbf"])
def test_v3_row_has_the_table_columns(trained, kernel):
    sp = v3.network_split(trained)
    row = v3.v3_row(trained, sp, 1, kernel=kernel, h=4, n_batches=1, batch_size=64, sketch_size=4, drop_k=10,
                    drop_n_remove=5, kappa=True)
    assert row["m"] == 30  # max(ceil(sqrt(180)) = 14, 2 (k + n_remove) = 30)
    assert row["delta"] == pytest.approx(100 * (row["krepes_probe"] - row["nn_probe"]))
    assert abs(row["drop_top_true"]) <= 5 / 10 and abs(row["drop_random_true"]) <= 5 / 10
    assert 3 <= row["kappa"] <= row["m"] + 1 and -1 <= row["tau"] <= 1
    assert row["kernel"] == ("rbf" if kernel == "rbf" else "eNTK (sketch S=4)") and row["kernel_s"] <= row["seconds"]
    with pytest.raises(ValueError, match="kernel="):
        v3.v3_row(trained, sp, 1, kernel="laplace")


def test_v1_row_trains_several_epochs_and_splits_the_time(trained):
    sp = v3.network_split(trained)
    r = v3.v1_row(trained, sp, 0, kernel="entk", h=4, m=16, epochs=2, batch_size=64, sketch_size=4)
    assert r["epochs"] == 2 and np.isfinite(r["loss_last"]) and r["n_trained"] > r["h"]
    assert r["fit_kernel_s"] + r["fit_optim_s"] == pytest.approx(r["fit_s"], rel=1e-9)
    assert 0 < r["fit_kernel_s"] and 0 < r["krepes_test_kernel_s"] <= r["krepes_test_s"]
    assert r["nn_parameters"] > r["nn_backbone_parameters"] == sum(p.numel() for p in trained.backbone.parameters())
    assert r["delta"] == pytest.approx(100 * (r["krepes_probe"] - r["nn_probe"]))


def test_paper_values():
    assert v3.paper_value("v3_delta", "adult", "simclr") == PAPER["v3_delta"]["Adult"][1]
    assert v3.paper_value("v3_kendall_tau", "cifar10", "vicreg") == PAPER["v3_kendall_tau"]["CIFAR-10"][2]
    assert v3.paper_value("v3_confidence_drop", "covtype") == PAPER["v3_confidence_drop"]["CoverType"]
    assert v3.paper_value("v3_delta", "mnist", "simclr") is None and v3.paper_value("v3_delta", "adult", "byol") is None


def test_network_log_counts_trained_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("KREPES_CACHE", str(tmp_path))
    v3.network_log(clear=True)
    try:
        a = v3.load_network("covtype", "simclr", 0, "ci", progress=False, n_train=128, n_test=64)
    except FileNotFoundError as err:
        pytest.skip(f"CoverType not available offline: {err}")
    b = v3.load_network("covtype", "simclr", 0, "ci", progress=False, n_train=128, n_test=64)
    assert not a.from_cache and b.from_cache
    log = v3.network_log(clear=True)
    assert log["networks"] == 1 and log["trained"] == 1 and log["train_s"] == pytest.approx(a.seconds)
    assert v3.network_log() == {"networks": 0, "trained": 0, "train_s": 0.0}
