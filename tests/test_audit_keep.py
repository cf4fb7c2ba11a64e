"""An audit you can keep: save / load (refused for another model or a changed file), a compact
repr, top-K as a CSV table, the image grid, and the influence-concentration diagnostic."""
import csv
import pickle
import warnings

import numpy as np
import pytest

import krepes_lib as kr
from krepes_lib.interpret import InfluenceConcentrationWarning, influence_concentration


@pytest.fixture(scope="module")
def rbf_audit():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5)).astype(np.float32)
    lm = kr.select_landmarks(X, m=12, method="kmeans++", seed=0)
    model = kr.NystromModel(kr.Nystrom(kr.RBF(sigma=2.0), lm), h=4)
    return X, kr.audit(model, "barlow_twins", X, augment="table", n_batches=2, batch_size=60, seed=0)


def test_save_load_roundtrip_gives_the_same_metrics(rbf_audit, tmp_path):
    X, a = rbf_audit
    path = a.save(tmp_path / "a.npz")
    b = kr.load_audit(path)  # the library's RBF is rebuilt from the file
    Xt = X[:30]
    ta, tb = a.top_influential(Xt, K=3), b.top_influential(Xt, K=3)
    assert np.array_equal(ta.indices, tb.indices) and np.allclose(ta.scores, tb.scores, rtol=1e-5)
    assert np.allclose(a.embed(Xt), b.embed(Xt), rtol=1e-5, atol=1e-6)
    sa, sb = a.summary(), b.summary()
    for k in ("loss_before", "loss_after", "step_ratio", "cg_iterations", "cg_converged", "damping",
              "damping_accepted", "step_length", "step_accepted", "cg_relative_residual"):
        assert sa[k] == pytest.approx(sb[k])
    assert [t["loss"] for t in b.trials] == pytest.approx([t["loss"] for t in a.trials])
    assert b.provenance["kernel"]["repr"] == repr(a.kernel)
    assert np.array_equal(b.landmark_indices, a.landmark_indices)


def test_load_refuses_another_model_and_a_changed_file(rbf_audit, tmp_path):
    X, a = rbf_audit
    path = a.save(tmp_path / "a.npz")
    with pytest.raises(ValueError, match="made for another model"):
        kr.load_audit(path, kernel=kr.RBF(sigma=1.0))
    other = kr.NystromModel(kr.Nystrom(kr.RBF(sigma=2.0), X[:12]), h=4)
    with pytest.raises(ValueError, match="made for another model"):
        kr.load_audit(path, model=other)
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    data["delta_A"] = data["delta_A"] + 1.0
    bad = tmp_path / "bad.npz"
    np.savez(bad, **data)
    with pytest.raises(ValueError, match="SHA-256"):
        kr.load_audit(bad)
    with pytest.raises(ValueError, match="not a readable audit"):
        (tmp_path / "junk.npz").write_bytes(b"junk")
        kr.load_audit(tmp_path / "junk.npz")


def test_repr_is_one_line_and_pickle_says_what_to_do(rbf_audit):
    _, a = rbf_audit
    r = repr(a)
    assert "\n" not in r and len(r) < 400 and "Audit(loss='barlow_twins', m=12, h=4" in r
    with pytest.raises(TypeError, match="audit.save"):
        pickle.dumps(a)


def test_top_table_csv(rbf_audit, tmp_path):
    X, a = rbf_audit
    y = (X[:, 0] > 0).astype(int)
    rows = a.top_table(X[:7], K=3, y_t=y[:7], y_landmarks=y[a.landmark_indices], classes=["neg", "pos"],
                       path=tmp_path / "top.csv")
    assert len(rows) == 21 and rows[0]["rank"] == 1
    with open(tmp_path / "top.csv") as f:
        back = list(csv.DictReader(f))
    top = a.top_influential(X[:7], K=3)
    assert [int(r["landmark"]) for r in back] == top.indices.ravel().tolist()
    assert [int(r["train_row"]) for r in back] == a.landmark_indices[top.indices.ravel()].tolist()
    assert {r["test_label"] for r in back} <= {"neg", "pos"}


def test_influence_grid_writes_a_png(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.random((80, 36)).astype(np.float32)
    model = kr.NystromModel(kr.Nystrom(kr.RBF(sigma=2.0), X[:10]), h=3)
    a = kr.audit(model, "barlow_twins", X, augment=(6, 6), n_batches=1, batch_size=40, seed=0)
    fig = a.plot_influence(X[:5], (6, 6), rows=(0, 1), K=2, path=tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 1000
    assert len(fig.axes) == 2 * (1 + 2 * 2)
    S = kr.interpret.signed_contributions(a, X[:2])
    assert S.shape == (2, 10)
    with pytest.raises(ValueError, match="image_shape"):
        a.plot_influence(X[:5], (5, 5))
    # the panels are the top-K of the signed contributions, in order: landmark ids in the titles
    order = np.argsort(-np.asarray(kr.interpret.signed_contributions(a, X[:1])[0]))
    titles = [ax.get_title() for ax in fig.axes[:1 + 2 * 2]]
    assert [int(t.split()[0][1:]) for t in titles[1:3]] == list(order[:2])
    assert [int(t.split()[0][1:]) for t in titles[3:5]] == list(order[::-1][:2])


def test_gallery_grid_without_a_test_column_and_its_errors():
    rng = np.random.default_rng(0)
    A, R = rng.random((2, 3, 16)), rng.random((2, 2, 16))
    fig = kr.interpret.gallery_grid(None, A, R, (4, 4), row_labels=["a", "b"],
                                    attract_titles=[["x"] * 3] * 2, repel_titles=[["y"] * 2] * 2)
    assert len(fig.axes) == 2 * 5 and fig.axes[0].get_ylabel() == "a" and fig.axes[3].get_title() == "y"
    assert len(kr.interpret.gallery_grid(rng.random((2, 16)), A, R, (4, 4)).axes) == 2 * 6
    with pytest.raises(ValueError, match="landmark images have 15"):
        kr.interpret.gallery_grid(rng.random((2, 16)), rng.random((2, 3, 15)), R, (4, 4))
    with pytest.raises(ValueError, match="same r"):
        kr.interpret.gallery_grid(rng.random((3, 16)), A, R, (4, 4))


def test_concentration_rule_and_warning():
    out = influence_concentration(np.array([3] * 498 + [1, 2]), m=45)
    assert out["top1_share"] == pytest.approx(0.996) and out["top1_landmark"] == 3 and out["degenerate"]
    spread = influence_concentration(np.arange(100) % 20, m=20)
    assert spread["top1_entropy"] == pytest.approx(1.0) and not spread["degenerate"]
    with pytest.warns(InfluenceConcentrationWarning, match="normalize=True"):
        influence_concentration(np.zeros(10, dtype=int), m=5, warn=True)


def test_summary_reports_concentration(rbf_audit):
    X, a = rbf_audit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InfluenceConcentrationWarning)
        s = a.summary(X[:50])
    top1 = a.top_influential(X[:50], K=1).indices[:, 0]
    assert s["top1_share"] == pytest.approx(np.bincount(top1).max() / 50)
    assert 0.0 <= s["top1_entropy"] <= 1.0 and isinstance(s["influence_degenerate"], bool)
