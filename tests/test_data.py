"""krepes_lib.data: search path, error messages, subsetting and every loader.

The offline files are found only through ``krepes_lib.data.data_dirs()`` (``KREPES_DATA``,
set by the test environment); a test whose file is absent is skipped with the reason. The
counts asserted are those stated in each dataset's SOURCE.md. Loaders of the full official
files that are not available offline are exercised on tiny synthetic files in the same
formats, written to a temporary data directory.
"""
from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import zipfile

import numpy as np
import pytest

from krepes_lib import data as D


def need(dataset: str, *filenames: str):
    """Paths of the files, or skip the test naming what is missing and where it was sought."""
    paths = []
    for fn in filenames:
        try:
            paths.append(D.find_file(dataset, fn))
        except FileNotFoundError:
            pytest.skip(
                f"{dataset}/{fn} is in no data directory ({', '.join(map(str, D.data_dirs()))}); "
                "set KREPES_DATA to the offline data folder or fetch it"
            )
    return paths


# ------------------------------------------------------------------------------------------
# search path and errors
# ------------------------------------------------------------------------------------------
def test_data_dirs_from_env_and_default(monkeypatch, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("KREPES_DATA", f"{a}{D.os.pathsep}{D.os.pathsep}{b}")
    assert D.data_dirs() == [a, b]
    monkeypatch.delenv("KREPES_DATA")
    assert D.data_dirs() == [D.Path("~/.cache/krepes/data").expanduser()]
    monkeypatch.setenv("KREPES_DATA", "")
    assert D.data_dirs() == [D.Path("~/.cache/krepes/data").expanduser()]


def test_find_file_searches_in_order(monkeypatch, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        (d / "toy").mkdir(parents=True)
    (b / "toy" / "f.txt").write_text("b")
    monkeypatch.setenv("KREPES_DATA", f"{a}{D.os.pathsep}{b}")
    assert D.find_file("toy", "f.txt", verify=False) == b / "toy" / "f.txt"
    (a / "toy" / "f.txt").write_text("a")
    with pytest.warns(D.UnregisteredDataWarning, match="no registered SHA-256"):
        assert D.find_file("toy", "f.txt") == a / "toy" / "f.txt"


def test_missing_file_message_names_file_dirs_and_command(monkeypatch, tmp_path):
    monkeypatch.setenv("KREPES_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        D.load("mnist", split="train")
    msg = str(err.value)
    assert "train-images-idx3-ubyte.gz" in msg or "train-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path / "mnist") in msg
    assert "krepes fetch-data mnist" in msg and "python -m data_scripts.fetch mnist" in msg


def test_missing_offline_only_file_says_it_cannot_be_downloaded(monkeypatch, tmp_path):
    monkeypatch.setenv("KREPES_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="offline-only"):
        D.load("cifar10_png200")
    with pytest.raises(FileNotFoundError, match="fetch-data cifar10"):
        D.load("cifar10", split="test")


def test_unknown_names_and_bad_arguments():
    with pytest.raises(ValueError, match="choose from"):
        D.load("imagenet")
    with pytest.raises(ValueError, match="split"):
        D.load("mnist", split="validation")
    with pytest.raises(ValueError, match="n="):
        D.load("digits", n=0)
    with pytest.raises(ValueError, match="1797 rows"):
        D.load("digits", n=5000)
    with pytest.raises(TypeError, match="positive int"):
        D.load("digits", n=10.5)


# ------------------------------------------------------------------------------------------
# subsetting
# ------------------------------------------------------------------------------------------
def test_stratified_indices_quotas_and_determinism():
    y = np.repeat(np.arange(3), [500, 300, 200])
    idx = D.stratified_indices(y, 100, seed=0)
    assert np.bincount(y[idx]).tolist() == [50, 30, 20]
    assert np.all(np.diff(idx) > 0)
    assert np.array_equal(idx, D.stratified_indices(y, 100, seed=0))
    assert not np.array_equal(idx, D.stratified_indices(y, 100, seed=1))
    odd = D.stratified_indices(y, 7, seed=3)  # 3.5, 2.1, 1.4 -> 3+1, 2, 1
    assert np.bincount(y[odd], minlength=3).tolist() == [4, 2, 1]
    assert np.array_equal(D.stratified_indices(y, None), np.arange(1000))
    gen = np.random.default_rng(5)
    assert len(D.stratified_indices(y, 10, seed=gen)) == 10


def test_digits_no_download():
    ds = D.load("digits")
    assert ds.X.shape == (1797, 64) and ds.X.dtype == np.float32 and ds.y.dtype == np.int64
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0 and ds.image_shape == (8, 8)
    sub = D.load("digits", n=100, seed=3)
    assert len(sub) == 100 and np.array_equal(sub.X, ds.X[sub.indices])
    assert np.abs(sub.class_counts() - 10).max() <= 1


# ------------------------------------------------------------------------------------------
# offline datasets, counts as in SOURCE.md
# ------------------------------------------------------------------------------------------
def test_mnist_test_set():
    need("mnist", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    ds = D.load("mnist_test")
    assert ds.X.shape == (10000, 784) and ds.X.dtype == np.float32
    assert ds.image_shape == (28, 28) and ds.images().shape == (10000, 28, 28)
    assert 0.0 <= ds.X.min() and ds.X.max() == 1.0
    assert ds.class_counts().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    sub = D.load("mnist", split="test", n=1000, seed=0)
    assert np.array_equal(sub.X, ds.X[sub.indices]) and len(sub) == 1000


def test_mnist_train_labels():
    (path,) = need("mnist", "train-labels-idx1-ubyte.gz")
    labels = D.read_idx(path)
    assert labels.shape == (60000,) and labels.dtype == np.uint8
    assert np.bincount(labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_mnist_5k():
    need("mnist", "mnist_5k.csv.gz")
    ds = D.load("mnist_5k")
    assert ds.X.shape == (5000, 784) and ds.image_shape == (28, 28)
    assert ds.class_counts().tolist() == [500] * 10
    assert np.all(np.diff(ds.y) >= 0)  # sorted by label in the file
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0
    sub = D.load("mnist_5k", n=50, seed=1)
    assert sub.class_counts().tolist() == [5] * 10


def test_cifar10_jpeg_test_set():
    need("cifar10", "cifar10_test_jpg_YoongiKim.tar.gz")
    ds = D.load("cifar10", split="test", source="jpeg")
    assert ds.X.shape == (10000, 3072) and ds.image_shape == (32, 32, 3)
    assert ds.class_counts().tolist() == [1000] * 10 and ds.info["lossy"] is True
    means = ds.images().reshape(-1, 3).astype(np.float64).mean(axis=0) * 255
    np.testing.assert_allclose(means, [125.99, 123.69, 114.85], atol=0.01)


def test_cifar10_jpeg_train_subset_is_balanced_without_decoding_all():
    need("cifar10", "cifar10_train_jpg_YoongiKim.tar.gz")
    ds = D.load("cifar10", split="train", source="jpeg", n=200, seed=0)
    assert ds.X.shape == (200, 3072) and ds.class_counts().tolist() == [20] * 10
    assert ds.info["n_available"] == 50000
    assert ds.info["class_counts_available"] == [5000] * 10
    assert 0.0 <= ds.X.min() and ds.X.max() <= 1.0


def test_cifar10_png200_and_jpeg_agree():
    need("cifar10", "kaggle_cifar10_train_first200_png.tar.gz", "cifar10_train_jpg_YoongiKim.tar.gz")
    png = D.load("cifar10_png200")
    assert png.X.shape == (200, 3072) and png.info["lossy"] is False
    assert png.class_counts().tolist() == [14, 28, 22, 21, 19, 19, 18, 21, 15, 23]
    assert [png.classes[c] for c in png.y[:5]] == ["frog", "truck", "truck", "deer", "automobile"]
    # SOURCE.md: train/<class>/NNNN.jpg is the NNNN-th image of its class in official order,
    # and k.png is official image k-1; compare the first 30 (JPEG error ~5.9/255 on average).
    (jpeg_tar,) = need("cifar10", "cifar10_train_jpg_YoongiKim.tar.gz")
    wanted, seen = {}, {}
    for i in range(30):
        cls = png.classes[png.y[i]]
        wanted[f"train/{cls}/{seen.get(cls, 0):04d}.jpg"] = i
        seen[cls] = seen.get(cls, 0) + 1
    found = 0
    with tarfile.open(jpeg_tar, "r|gz") as tf:  # one forward pass
        for m in tf:
            if m.name in wanted:
                i = wanted[m.name]
                jpg = D._decode_rgb(tf.extractfile(m).read())
                err = np.abs(jpg.astype(float) / 255 - png.images()[i]).mean() * 255
                assert err < 10.0, (i, m.name, err)
                found += 1
    assert found == 30


def test_covtype_kaggle_subset():
    need("covtype", "forest_cover_kaggle_train.csv")
    ds = D.load("covtype", source="kaggle")
    assert ds.X.shape == (15120, 54) and ds.class_counts().tolist() == [2160] * 7
    assert ds.X_raw.shape == (15120, 12)
    assert ds.X_raw[0, :10].tolist() == [2596, 51, 3, 258, 0, 510, 221, 232, 148, 6279]
    assert ds.y[0] == 4 and ds.classes[4] == "Aspen"  # cover type 5
    wild, soil = ds.feature_groups["Wilderness_Area"], ds.feature_groups["Soil_Type"]
    assert len(wild) == 4 and len(soil) == 40 and ds.categorical == {"Wilderness_Area", "Soil_Type"}
    assert np.all(ds.X[:, wild].sum(axis=1) == 1) and np.all(ds.X[:, soil].sum(axis=1) == 1)
    assert np.array_equal(ds.X[:, soil].argmax(axis=1), ds.X_raw[:, 11].astype(int))
    num = ds.X[:, :10]
    np.testing.assert_allclose(num.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(num.std(axis=0), 1, atol=1e-4)
    raw = D.load("covtype", source="kaggle", standardize=False)
    assert np.array_equal(raw.X[:, :10], raw.X_raw[:, :10].astype(np.float32))


def test_adult_complete_rows_and_encoding():
    need("adult", "adult.data", "adult.test")
    train, test = D.load("adult", split="train"), D.load("adult", split="test")
    assert len(train) == 30162 and len(test) == 15060
    assert train.info["rows_in_files"] == {"adult.data": 32561, "adult.test": 16281}
    assert train.class_counts().tolist() == [22654, 7508]
    assert test.class_counts().tolist() == [11360, 3700]
    assert train.feature_names == test.feature_names and train.n_features == 104
    assert train.X_raw.shape == (30162, 14) and train.raw_feature_names == D.ADULT_FEATURES
    num_cols = [train.feature_groups[k][0] for k in ("age", "fnlwgt", "hours-per-week")]
    np.testing.assert_allclose(train.X[:, num_cols].mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(train.X[:, num_cols].std(axis=0), 1, atol=1e-4)
    for feat in D.ADULT_CATEGORICAL:
        cols = train.feature_groups[feat]
        assert len(cols) == len(train.categories[feat]) and feat in train.categorical
        assert np.all(train.X[:, cols].sum(axis=1) == 1)
        code = train.X_raw[:, D.ADULT_FEATURES.index(feat)].astype(int)
        assert np.array_equal(train.X[:, cols].argmax(axis=1), code)
    assert "?" not in sum(train.categories.values(), [])
    assert train.X_raw[0, 0] == 39 and train.categories["workclass"][int(train.X_raw[0, 1])] == "State-gov"
    both = D.load("adult", split="all", n=4522, seed=0)
    assert len(both) == 4522 and both.info["n_available"] == 45222
    frac_train = np.mean(both.indices < both.info["n_train"])
    assert 0.6 < frac_train < 0.73


def test_higgs_5k_sample():
    need("higgs", "higgs_test_5k.csv")
    ds = D.load("higgs", source="h2o")
    assert ds.X.shape == (5000, 28) and ds.X_raw.shape == (5000, 28)
    assert ds.class_counts().tolist() == [2315, 2685] and ds.classes == ["background", "signal"]
    assert len(np.unique(ds.X_raw[:, D.HIGGS_FEATURES.index("jet1_b-tag")])) == 3
    np.testing.assert_allclose(ds.X.mean(axis=0), 0, atol=1e-4)
    assert len(D.load("higgs", source="h2o", max_rows=100)) == 100


# ------------------------------------------------------------------------------------------
# full official formats on tiny synthetic files
# ------------------------------------------------------------------------------------------
@pytest.fixture
def synth(tmp_path, monkeypatch):
    """A temporary data directory whose files written by the test count as registered.

    Loaders check every file against ``krepes_lib.data.registry``; the synthetic files carry
    official names but other bytes, so each test's registry pins what it wrote
    (:func:`pin`) — the check itself stays on.
    """
    monkeypatch.setenv("KREPES_DATA", str(tmp_path))
    monkeypatch.setenv("KREPES_VERIFY_CACHE", str(tmp_path / "verified.json"))
    return tmp_path


def pin(monkeypatch, dataset: str, *paths) -> None:
    """Replace the registry entries of ``dataset``'s files named like ``paths`` by their hashes."""
    import dataclasses
    import hashlib

    from krepes_lib.data import registry

    entry = registry.DATASETS[dataset]
    new = {p.name: (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths}
    files = tuple(dataclasses.replace(f, size=new[f.filename][0], sha256=new[f.filename][1])
                  if f.filename in new else f for f in entry.files)
    monkeypatch.setattr(registry, "DATASETS",
                        {**registry.DATASETS, dataset: dataclasses.replace(entry, files=files)})


def _idx(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + np.array(arr.shape, ">u4").tobytes()
    return gzip.compress(header + arr.astype(np.uint8).tobytes())


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_idx_loaders_on_synthetic_files(synth, dataset, monkeypatch):
    rng = np.random.default_rng(0)
    d = synth / dataset
    d.mkdir()
    imgs, labels = rng.integers(0, 256, (40, 28, 28)), np.arange(40) % 10
    (d / "train-images-idx3-ubyte.gz").write_bytes(_idx(imgs))
    (d / "train-labels-idx1-ubyte.gz").write_bytes(_idx(labels))
    pin(monkeypatch, dataset, d / "train-images-idx3-ubyte.gz", d / "train-labels-idx1-ubyte.gz")
    ds = D.load(dataset, split="train", n=20, seed=0)
    assert ds.class_counts().tolist() == [2] * 10
    np.testing.assert_allclose(ds.images(), imgs[ds.indices] / 255, atol=1e-7)
    assert ds.classes[9] in ("9", "Ankle boot")
    (d / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01" + b"\0\0\0\x09"))
    with pytest.raises(D.DataChecksumError, match="train-labels-idx1-ubyte.gz"):
        D.load(dataset)  # not the pinned bytes: refused before it is parsed
    pin(monkeypatch, dataset, d / "train-labels-idx1-ubyte.gz")
    with pytest.raises(ValueError, match="truncated"):
        D.load(dataset)


def test_cifar10_official_batches_on_synthetic_archive(synth, monkeypatch):
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    chw = {}
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            x = rng.integers(0, 256, (10, 3072), dtype=np.uint8)
            chw[name] = x
            blob = pickle.dumps({b"data": x, b"labels": list(range(10))}, protocol=2)
            if name == "test_batch":  # the official pickles name the NumPy 1 module
                blob = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    (synth / "cifar10").mkdir()
    (synth / "cifar10" / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    pin(monkeypatch, "cifar10", synth / "cifar10" / "cifar-10-python.tar.gz")
    test = D.load("cifar10", split="test")
    assert test.info["lossy"] is False and test.X.shape == (10, 3072)
    img = test.images()[3]  # HWC: pixel (r, c, channel) = CHW[channel, r, c]
    expect = chw["test_batch"][3].reshape(3, 32, 32).transpose(1, 2, 0) / 255
    np.testing.assert_allclose(img, expect, atol=1e-7)
    train = D.load("cifar10", split="train", n=20, seed=0)
    assert train.info["n_available"] == 50 and train.class_counts().tolist() == [2] * 10


def test_cifar10_refuses_foreign_pickles(synth, monkeypatch):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        blob = pickle.dumps({b"data": Evil()})
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.size = len(blob)
        tf.addfile(info, io.BytesIO(blob))
    (synth / "cifar10").mkdir()
    (synth / "cifar10" / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    pin(monkeypatch, "cifar10", synth / "cifar10" / "cifar-10-python.tar.gz")
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        D.load("cifar10", split="test")


def test_covtype_full_file_preferred(synth, monkeypatch):
    rng = np.random.default_rng(2)
    rows = []
    for i in range(70):
        wild, soil = np.zeros(4, int), np.zeros(40, int)
        wild[i % 4], soil[i % 40] = 1, 1
        rows.append(list(rng.integers(0, 3000, 10)) + list(wild) + list(soil) + [1 + i % 7])
    text = "\n".join(",".join(map(str, r)) for r in rows) + "\n"
    (synth / "covtype").mkdir()
    (synth / "covtype" / "covtype.data.gz").write_bytes(gzip.compress(text.encode()))
    pin(monkeypatch, "covtype", synth / "covtype" / "covtype.data.gz")
    ds = D.load("covtype")
    assert ds.info["format"] == "UCI covtype.data.gz" and ds.X.shape == (70, 54)
    assert ds.class_counts().tolist() == [10] * 7
    assert np.array_equal(ds.X_raw[:, 10], np.arange(70) % 4)


def test_higgs_full_file_with_max_rows(synth, monkeypatch):
    rng = np.random.default_rng(3)
    arr = np.column_stack([np.arange(50) % 2, rng.normal(size=(50, 28))])
    text = "\n".join(",".join(f"{v:.18e}" for v in r) for r in arr) + "\n"
    (synth / "higgs").mkdir()
    (synth / "higgs" / "HIGGS.csv.gz").write_bytes(gzip.compress(text.encode()))
    pin(monkeypatch, "higgs", synth / "higgs" / "HIGGS.csv.gz")
    ds = D.load("higgs", max_rows=40, standardize=False)
    assert ds.info["format"] == "UCI HIGGS.csv.gz" and ds.X.shape == (40, 28)
    np.testing.assert_allclose(ds.X, arr[:40, 1:], rtol=1e-6)
    assert ds.class_counts().tolist() == [20, 20]


def test_bank_from_zip(synth, monkeypatch):
    header = '"age";"job";"balance";"duration";"y"'
    lines = [header] + [
        f'{20 + i};"{["admin.", "unknown", "technician"][i % 3]}";{100 * i};{i};"{"yes" if i % 4 == 0 else "no"}"'
        for i in range(24)
    ]
    (synth / "bank").mkdir()
    with zipfile.ZipFile(synth / "bank" / "bank.zip", "w") as zf:
        zf.writestr("bank-full.csv", "\n".join(lines) + "\n")
        zf.writestr("bank.csv", "\n".join(lines[:13]) + "\n")
    pin(monkeypatch, "bank", synth / "bank" / "bank.zip")
    ds = D.load("bank")
    assert ds.X.shape == (24, 3 + 3) and ds.class_counts().tolist() == [18, 6]
    assert ds.categorical == {"job"} and ds.categories["job"] == ["admin.", "technician", "unknown"]
    assert ds.feature_groups["job"] == [1, 2, 3] and ds.raw_feature_names == ["age", "job", "balance", "duration"]
    assert D.load("bank", drop_duration=True).X.shape == (24, 5)
    assert len(D.load("bank", variant="small")) == 12
    with pytest.raises(FileNotFoundError, match="fetch-data bank"):
        D.load("bank", variant="additional-full")


# ------------------------------------------------------------------------------------------
# load_split
# ------------------------------------------------------------------------------------------
def test_load_split_single_file_dataset():
    s = D.load_split("digits", n_train=600, n_test=300, seed=0)
    X, y, X_test, y_test = s  # unpacks as four arrays
    full = D.load("digits")
    assert X.shape == (600, 64) and X_test.shape == (300, 64) and not s.official
    assert np.intersect1d(s.train_ids, s.test_ids).size == 0
    np.testing.assert_array_equal(X, full.X[s.train_ids])
    np.testing.assert_array_equal(y_test, full.y[s.test_ids])
    assert s.train.image_shape == (8, 8) and s.test.classes == full.classes and s.n_classes == 10
    np.testing.assert_array_equal(s.train.indices, s.train_ids)
    # stratified: each class within one row of its proportional share
    share = full.class_counts() / len(full)
    assert np.all(np.abs(np.bincount(y_test, minlength=10) - 300 * share) <= 1)
    assert np.all(np.abs(np.bincount(y, minlength=10) - 600 * share) <= 1.5)
    assert s.chance == np.bincount(y_test).max() / 300
    # deterministic; the seed chooses the rows
    again = D.load_split("digits", n_train=600, n_test=300, seed=0)
    np.testing.assert_array_equal(again.train_ids, s.train_ids)
    np.testing.assert_array_equal(again.test_ids, s.test_ids)
    other = D.load_split("digits", n_train=600, n_test=300, seed=1)
    assert not np.array_equal(other.test_ids, s.test_ids)
    # defaults: 20 % held out, the rest for training
    d = D.load_split("digits")
    assert len(d.test) == round(0.2 * 1797) and len(d.train) == 1797 - len(d.test)
    assert np.union1d(d.train_ids, d.test_ids).size == 1797


def test_load_split_shrink_scales_both_sizes_in_their_ratio():
    n = len(D.load("digits"))
    s = D.load_split("digits", n_train=3000, n_test=1000, seed=0, shrink=True)
    assert len(s.y) + len(s.y_test) == n and len(s.y_test) == round(n * 1000 / 4000)
    assert np.intersect1d(s.train_ids, s.test_ids).size == 0
    s2 = D.load_split("digits", n_train=500, n_test=200, seed=0, shrink=True)
    assert (len(s2.y), len(s2.y_test)) == (500, 200)
    with pytest.raises(ValueError):
        D.load_split("digits", n_train=-1, n_test=2, shrink=True)


def test_load_split_errors():
    with pytest.raises(ValueError, match=r"more than the 1797 rows of 'digits'.*n_train \+ n_test <= 1797"):
        D.load_split("digits", n_train=1500, n_test=400)
    with pytest.raises(ValueError, match="n_test must be a positive int"):
        D.load_split("digits", n_test=0)
    with pytest.raises(ValueError, match="seed must be an int"):
        D.load_split("digits", seed=0.5)
    with pytest.raises(ValueError, match="pass n_train / n_test"):
        D.load_split("digits", n=10)
    with pytest.raises(ValueError, match="unknown dataset"):
        D.load_split("nope")


def test_load_split_official_adult():
    need("adult", "adult.data", "adult.test")
    s = D.load_split("adult", n_train=400, n_test=200, seed=0)
    assert s.official and len(s.train) == 400 and len(s.test) == 200
    assert s.train.split == "train" and s.test.split == "test"
    assert s.train.feature_groups == s.test.feature_groups and "sex" in s.train.categorical
    n_tr = s.train.info["n_available"]  # complete rows of adult.data
    assert s.train_ids.max() < n_tr <= s.test_ids.min()  # one index space, disjoint
    np.testing.assert_array_equal(s.test_ids - n_tr, s.test.indices)  # rows of adult.test
    np.testing.assert_array_equal(s.train_ids, s.train.indices)
    assert s.chance == pytest.approx(np.bincount(s.y_test).max() / 200)
    with pytest.raises(ValueError, match="official training set"):
        D.load_split("adult", n_train=10**6)


def test_load_split_mnist_full_training_set():
    need("mnist", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz")
    s = D.load_split("mnist", n_train=1000, n_test=500, seed=3)
    assert s.official and s.X.shape == (1000, 784) and s.train.image_shape == (28, 28)
    assert s.train.info["n_available"] == 60000  # the full offline training images
    assert np.bincount(s.y, minlength=10).min() >= 80


# ------------------------------------------------------------------------------------------
# Bank: the extracted CSVs of the offline folder (SOURCE.md counts)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant, filename, shape, counts", [
    ("full", "bank-full.csv", (45211, 16), [39922, 5289]),
    ("additional-full", "bank-additional-full.csv", (41188, 20), [36548, 4640]),
])
def test_bank_reads_extracted_csv(variant, filename, shape, counts):
    (path,) = need("bank", filename)
    ds = D.load("bank", variant=variant)
    assert ds.info["format"] == "extracted CSV" and ds.source == [str(path)]
    assert ds.X_raw.shape == shape and ds.class_counts().tolist() == counts
    assert "job" in ds.categorical and "age" not in ds.categorical
