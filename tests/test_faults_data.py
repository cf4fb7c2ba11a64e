"""Issue 12, fault-table row "corrupted or truncated data file": a clear error naming the
file, both hashes and the fix, and nothing computed.

Real offline files (Adult, the CoverType and HIGGS CSVs, the CIFAR-10 test tar) are copied
into a temporary data directory and damaged there, checked against the real registry; the
official files that are not offline (covtype.data.gz, HIGGS.csv.gz, cifar-10-python.tar.gz)
are tiny synthetic files in their formats whose hashes a test registry pins.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import tarfile
import warnings

import numpy as np
import pytest

from krepes_lib.data import registry
from krepes_lib import data as D

SHARED = {  # dataset -> files copied from the offline folder (small: ~15 MB in all)
    "adult": ["adult.data", "adult.test"],
    "covtype": ["forest_cover_kaggle_train.csv"],
    "higgs": ["higgs_test_5k.csv"],
    "cifar10": ["cifar10_test_jpg_YoongiKim.tar.gz"],
}
LOADS = {  # file -> the load that reads it
    "adult.data": ("adult", {}),
    "adult.test": ("adult", {"split": "test"}),
    "forest_cover_kaggle_train.csv": ("covtype", {"source": "kaggle"}),
    "higgs_test_5k.csv": ("higgs", {"source": "h2o"}),
    "cifar10_test_jpg_YoongiKim.tar.gz": ("cifar10", {"split": "test", "source": "jpeg", "n": 20}),
}


def _source(dataset: str, filename: str):
    for d in D.data_dirs():
        if (d / dataset / filename).is_file():
            return d / dataset / filename
    pytest.skip(f"{dataset}/{filename} is not in the offline data folder (set KREPES_DATA)")


@pytest.fixture
def copy(tmp_path, monkeypatch):
    """A temporary data dir with copies of the offline files; nothing may be computed from them."""
    sources = {(ds, fn): _source(ds, fn) for ds, fns in SHARED.items() for fn in fns}
    for (ds, fn), src in sources.items():
        (tmp_path / ds).mkdir(exist_ok=True)
        shutil.copyfile(src, tmp_path / ds / fn)
    monkeypatch.setenv("KREPES_DATA", str(tmp_path))
    monkeypatch.setenv("KREPES_VERIFY_CACHE", str(tmp_path / "cache" / "verified.json"))
    return tmp_path


@pytest.fixture
def nothing_computed(monkeypatch):
    """Every loader subsets its rows with stratified_indices after parsing: make that fatal."""
    def boom(*a, **k):
        raise AssertionError("the loader parsed and used a file that fails its checksum")

    for mod in {getattr(D, "images", D), getattr(D, "tables", D)}:
        monkeypatch.setattr(mod, "stratified_indices", boom)


def _refused(dataset, kw):
    """The error ``load`` raises on a damaged file (the test fails if it loads or computes)."""
    try:
        D.load(dataset, **kw)
    except AssertionError as e:
        pytest.fail(f"{dataset} was parsed and used: {e}")
    except Exception as e:  # noqa: BLE001 - inspected by the caller
        assert type(e).__name__ == "DataChecksumError", f"{type(e).__name__}: {e}"
        return e
    pytest.fail(f"{dataset} loaded a damaged file without an error")


def _flip(path, offset=None):
    raw = bytearray(path.read_bytes())
    i = len(raw) // 2 if offset is None else offset
    raw[i] ^= 0x01
    path.write_bytes(bytes(raw))


def _assert_clear(err, path, dataset, filename, what):
    rf = registry.get_file(dataset, filename)
    msg = str(err)
    assert str(path) in msg and what in msg
    assert rf.sha256 in msg and hashlib.sha256(path.read_bytes()).hexdigest() in msg
    if rf.urls:
        assert f"krepes fetch-data {dataset}" in msg and "--force" in msg
    else:
        assert "copy it again" in msg


@pytest.mark.parametrize("filename", list(LOADS))
def test_one_flipped_byte_is_refused_before_anything_is_computed(copy, filename, nothing_computed):
    dataset, kw = LOADS[filename]
    path = copy / dataset / filename
    _flip(path)
    _assert_clear(_refused(dataset, kw), path, dataset, filename, "corrupt")


@pytest.mark.parametrize("filename", ["adult.test", "higgs_test_5k.csv"])
def test_truncated_file_is_refused(copy, filename, nothing_computed):
    dataset, kw = LOADS[filename]
    path = copy / dataset / filename
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 1000)
    _assert_clear(_refused(dataset, kw), path, dataset, filename, "truncated")


def test_intact_copies_load_and_are_hashed_once(copy, monkeypatch):
    ds = D.load("higgs", source="h2o")
    assert len(ds) == 5000
    cache = json.loads((copy / "cache" / "verified.json").read_text())
    entry = cache[os.path.realpath(copy / "higgs" / "higgs_test_5k.csv")]
    assert entry["sha256"] == registry.get_file("higgs", "higgs_test_5k.csv").sha256

    def no_hashing(*a, **k):
        raise AssertionError("hashed again")

    monkeypatch.setattr(D.verify.hashlib, "sha256", no_hashing)
    D.load("higgs", source="h2o", max_rows=10)  # memory cache
    D.verify.clear_memory_cache()
    D.load("higgs", source="h2o", max_rows=10)  # on-disk cache (a new process would do this)
    _flip(copy / "higgs" / "higgs_test_5k.csv")  # a change (new mtime) is hashed again
    with pytest.raises(AssertionError, match="hashed again"):
        D.load("higgs", source="h2o", max_rows=10)


def test_unwritable_cache_location_is_tolerated(copy, monkeypatch):
    blocker = copy / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("KREPES_VERIFY_CACHE", str(blocker / "sub" / "verified.json"))
    D.verify.clear_memory_cache()
    assert len(D.load("covtype", source="kaggle", n=70)) == 70


def test_switch_off_and_unregistered_files_warn(copy, monkeypatch):
    _flip(copy / "adult" / "adult.data", offset=0)  # '3' -> '2' in the first age: parses fine
    monkeypatch.setenv("KREPES_VERIFY", "0")
    with pytest.warns(D.UnverifiedDataWarning, match="WITHOUT checking"):
        assert len(D.load("adult", n=50)) == 50
    monkeypatch.delenv("KREPES_VERIFY")
    (copy / "toy").mkdir()
    (copy / "toy" / "f.txt").write_text("x")
    with pytest.warns(D.UnregisteredDataWarning, match="no registered SHA-256"):
        D.find_file("toy", "f.txt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        D.find_file("toy", "f.txt")  # once per file and process


# --- the official files that are not offline: synthetic, pinned by a test registry -----------
def _pin(monkeypatch, dataset, path):
    entry = registry.DATASETS[dataset]
    files = tuple(dataclasses.replace(f, size=path.stat().st_size,
                                      sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                                      urls=("https://example.invalid/" + f.filename,))
                  if f.filename == path.name else f for f in entry.files)
    monkeypatch.setattr(registry, "DATASETS",
                        {**registry.DATASETS, dataset: dataclasses.replace(entry, files=files)})


def _covtype_gz():
    rows = []
    for i in range(14):
        wild, soil = [0] * 4, [0] * 40
        wild[i % 4], soil[i % 40] = 1, 1
        rows.append([2000 + i] * 10 + wild + soil + [1 + i % 7])
    return gzip.compress(("\n".join(",".join(map(str, r)) for r in rows) + "\n").encode(), mtime=0)


def _higgs_gz():
    arr = np.column_stack([np.arange(10) % 2, np.ones((10, 28))])
    return gzip.compress(("\n".join(",".join(f"{v:.3f}" for v in r) for r in arr) + "\n").encode(),
                         mtime=0)


def _cifar_tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        blob = pickle.dumps({b"data": np.zeros((10, 3072), np.uint8), b"labels": list(range(10))},
                            protocol=2)
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.size = len(blob)
        tf.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


@pytest.mark.parametrize("dataset, filename, make, kw", [
    ("covtype", "covtype.data.gz", _covtype_gz, {"source": "official"}),
    ("higgs", "HIGGS.csv.gz", _higgs_gz, {"source": "official"}),
    ("cifar10", "cifar-10-python.tar.gz", _cifar_tar, {"split": "test", "source": "official"}),
])
def test_official_formats_flipped_or_truncated(tmp_path, monkeypatch, dataset, filename, make, kw):
    monkeypatch.setenv("KREPES_DATA", str(tmp_path))
    monkeypatch.setenv("KREPES_VERIFY_CACHE", str(tmp_path / "verified.json"))
    path = tmp_path / dataset / filename
    path.parent.mkdir()
    path.write_bytes(make())
    _pin(monkeypatch, dataset, path)
    assert len(D.load(dataset, **kw)) > 0  # the pinned bytes load
    _flip(path, offset=path.stat().st_size - 3)  # inside the gzip trailer's CRC/size
    with pytest.raises(D.DataChecksumError, match="corrupt") as err:
        D.load(dataset, **kw)
    assert f"krepes fetch-data {dataset} --file {filename} --force" in str(err.value)
    path.write_bytes(make()[:-8])
    with pytest.raises(D.DataChecksumError, match="truncated"):
        D.load(dataset, **kw)


# --- issue 21 (second fault round): paths that exist but are not data files ---------------
def _odd(root, case):
    """``root/adult`` or ``root/adult/adult.data`` made into something that is not a data file."""
    folder = root / "adult"
    if case == "folder is a file":
        folder.write_text("x")
        return
    if case == "folder loops":
        folder.symlink_to("adult")
        return
    folder.mkdir()
    target = folder / "adult.data"
    {"directory": lambda: target.mkdir(),
     "fifo": lambda: os.mkfifo(target),
     "link loop": lambda: target.symlink_to("adult.data"),
     "link to /dev/zero": lambda: target.symlink_to("/dev/zero"),
     "broken link": lambda: target.symlink_to(root / "nowhere")}[case]()


@pytest.mark.parametrize("case, what", [
    ("folder is a file", "a regular file"), ("folder loops", "loops back"), ("directory", "a directory"),
    ("fifo", "FIFO"), ("link loop", "loops back"), ("link to /dev/zero", "character device"),
    ("broken link", "broken symbolic link"),
])
def test_data_path_that_exists_but_is_not_a_file_says_what_it_is(tmp_path, monkeypatch, case, what):
    """#66: these read "adult/adult.data not found ... fetch it", though the path exists."""
    good = _source("adult", "adult.data").parent.parent  # a later search-path entry with the files
    _odd(tmp_path, case)
    monkeypatch.setenv("KREPES_DATA", f"{tmp_path}{os.pathsep}{good}")
    with pytest.raises(D.DataPathError, match=what) as err:
        D.load("adult", n=10)
    assert "not found" not in str(err.value) and str(tmp_path / "adult") in str(err.value)
    assert "krepes fetch-data adult" in str(err.value)


def test_a_damaged_hash_cache_entry_never_blames_a_good_file(copy, monkeypatch):
    """The hash cache (verified.json) is an artefact the library writes: a flipped digit in a
    cached digest must not make a good file look corrupt."""
    assert len(D.load("adult", n=20)) == 20
    cp = copy / "cache" / "verified.json"
    cache = json.loads(cp.read_text())
    real = os.path.realpath(copy / "adult" / "adult.data")
    digest = cache[real]["sha256"]
    cache[real]["sha256"] = ("0" if digest[0] != "0" else "1") + digest[1:]
    cp.write_text(json.dumps(cache))
    D.verify.clear_memory_cache()
    assert len(D.load("adult", n=20)) == 20
    assert json.loads(cp.read_text())[real]["sha256"] == digest  # and the entry is corrected
