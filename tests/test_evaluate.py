"""Linear probe, labelled subsets, k-NN against a naive reference, parameter counts."""
import numpy as np
import pytest

from krepes_lib.evaluate import (count_parameters, knn_accuracy, labelled_subset, linear_probe,
                                 raw_feature_probe)
from krepes_lib.kernels import RBF
from krepes_lib.model import NystromModel
from krepes_lib.nystrom import Nystrom
from krepes_lib.options import Options


def blobs(n_per=60, C=4, h=5, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centres = 10.0 * np.eye(C, h)
    y = np.repeat(np.arange(C), n_per)
    Z = centres[y] + spread * rng.normal(size=(y.shape[0], h))
    perm = rng.permutation(y.shape[0])
    return Z[perm], y[perm]


def test_probe_on_separable_data_is_perfect():
    Ztr, ytr = blobs(seed=0)
    Zte, yte = blobs(seed=1)
    assert linear_probe(Ztr, ytr, Zte, yte, label_fraction=0.1) == 1.0
    acc, (_, clf, n_lab) = linear_probe(Ztr, ytr, Zte, yte, label_fraction=0.1, return_model=True)
    assert acc == 1.0 and n_lab == 4 * 6 and clf.classes_.tolist() == [0, 1, 2, 3]
    assert raw_feature_probe(Ztr, ytr, Zte, yte, label_fraction=1.0) == 1.0


def test_probe_on_noise_is_near_chance():
    rng = np.random.default_rng(0)
    Z, y = rng.normal(size=(600, 5)), rng.integers(0, 3, 600)
    assert abs(linear_probe(Z[:400], y[:400], Z[400:], y[400:], label_fraction=0.5) - 1 / 3) < 0.12


def test_labelled_subset_is_stratified_and_seeded():
    y = np.repeat([0, 1, 2], [100, 50, 7])
    idx = labelled_subset(y, 0.1, seed=0)
    assert np.bincount(y[idx]).tolist() == [10, 5, 1]  # round(0.1·n_c), at least 1
    assert np.array_equal(idx, labelled_subset(y, 0.1, seed=0))
    assert not np.array_equal(idx, labelled_subset(y, 0.1, seed=1))
    assert np.unique(idx).shape == idx.shape
    assert labelled_subset(y, 1.0).shape == y.shape
    with pytest.raises(ValueError):
        labelled_subset(y, 0.0)


def knn_naive(Ztr, ytr, Zte, k, metric):
    pred = []
    for z in Zte:  # the slow reference: one test point at a time
        if metric == "cosine":
            d = -(Ztr @ z) / (np.linalg.norm(Ztr, axis=1) * np.linalg.norm(z))
        else:
            d = np.linalg.norm(Ztr - z, axis=1)
        nn = np.argsort(d, kind="stable")[:k]
        counts = np.bincount(ytr[nn], minlength=ytr.max() + 1)
        pred.append(np.argmax(counts))
    return np.asarray(pred)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("k", [1, 5, 40])
def test_knn_equals_naive_reference(xp, metric, k):
    rng = np.random.default_rng(k)
    Ztr, ytr = rng.normal(size=(40, 6)), rng.integers(0, 4, 40)
    Zte, yte = rng.normal(size=(23, 6)), rng.integers(0, 4, 23)
    ref = float((knn_naive(Ztr, ytr, Zte, k, metric) == yte).mean())
    got = knn_accuracy(xp.asarray(Ztr), xp.asarray(ytr), xp.asarray(Zte), xp.asarray(yte), k=k, metric=metric)
    assert got == pytest.approx(ref, abs=1e-12)
    # streamed over tiny blocks of test rows: the same answer
    tiny = knn_accuracy(xp.asarray(Ztr), xp.asarray(ytr), xp.asarray(Zte), xp.asarray(yte), k=k,
                        metric=metric, options=Options(memory_budget=1))
    assert tiny == got


def test_knn_on_blobs_and_bad_k():
    Ztr, ytr = blobs(seed=0)
    Zte, yte = blobs(seed=1)
    assert knn_accuracy(Ztr, ytr, Zte, yte, k=5) == 1.0
    with pytest.raises(ValueError, match="k="):
        knn_accuracy(Ztr, ytr, Zte, yte, k=10_000)


def test_count_parameters():
    X = np.random.default_rng(0).normal(size=(30, 3))
    nys = Nystrom(RBF(sigma=1.0), X[:12])
    for coords in ("raw", "whitened"):
        model = NystromModel(nys, h=4, coords=coords)
        assert count_parameters(model) == 12 * 4 + 4
    assert count_parameters({"a": np.zeros((3, 2)), "b": np.zeros(5)}) == 11
    with pytest.raises(TypeError):
        count_parameters(3)


# --- issue 12 fault table: NaN embeddings and empty inputs are clear errors ------------------
def test_fault_knn_on_nan_embeddings_is_an_error():
    rng = np.random.default_rng(0)
    Z, y = rng.standard_normal((40, 3)), np.arange(40) % 2
    bad = Z.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        knn_accuracy(bad, y, Z, y, k=3)
    with pytest.raises(ValueError, match="NaN"):
        knn_accuracy(Z, y, np.full_like(Z, np.nan), y, k=3)
    with pytest.raises(ValueError, match="NaN"):
        knn_accuracy(Z, y, np.where(Z > 0, np.inf, Z), y, k=3, metric="euclidean")


@pytest.mark.parametrize("side", ["train", "test"])
def test_fault_empty_inputs_are_errors_not_zero_division(side):
    rng = np.random.default_rng(1)
    Z, y = rng.standard_normal((30, 4)), np.arange(30) % 3
    Z0, y0 = np.zeros((0, 4)), np.zeros(0, dtype=int)
    args = (Z0, y0, Z, y) if side == "train" else (Z, y, Z0, y0)
    with pytest.raises(ValueError, match="empty"):
        knn_accuracy(*args, k=1)
    with pytest.raises(ValueError, match="empty"):
        linear_probe(*args)
    with pytest.raises(ValueError, match="empty"):
        knn_accuracy(np.zeros((30, 0)), y, np.zeros((30, 0)), y, k=1)
