"""Issue 21 (second fault round, ``../shared/reviews/faults-round2.md``), the network weight
cache of :mod:`krepes_lib.neural.ssl`: keyed by the rows it was trained on (D1), checksummed
(D2, #44, #45), usable when the cache cannot be written (#47, #48), trained once by concurrent
callers (#49), and found where a relative ``KREPES_CACHE`` points (#52).

The networks are tiny and trained on synthetic rows (``krepes_lib.data.load_split`` is
replaced), so each training takes a fraction of a second.
"""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from krepes_lib import data as D  # noqa: E402
from krepes_lib.neural import ssl  # noqa: E402
from krepes_lib.provenance import CacheWarning  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CFG = ssl.SSLConfig(dataset="synthetic", loss="barlow_twins", size="tiny", n_train=96, n_test=32,
                    epochs=1, batch_size=32)


class _Split(tuple):
    train = None  # no image shape


@pytest.fixture
def rows(monkeypatch, tmp_path):
    """A synthetic ``load_split``; ``rows["X"]`` can be changed between calls (a loader fix)."""
    rng = np.random.default_rng(0)
    state = {"X": rng.normal(size=(96, 5)).astype(np.float32),
             "Xt": rng.normal(size=(32, 5)).astype(np.float32)}

    def load_split(dataset, n_train=None, n_test=None, seed=0):
        y = (state["X"][:, 0] > 0).astype(np.int64)
        yt = (state["Xt"][:, 0] > 0).astype(np.int64)
        return _Split((state["X"], y, state["Xt"], yt))

    monkeypatch.setattr(D, "load_split", load_split)
    monkeypatch.setenv("KREPES_CACHE", str(tmp_path / "cache"))
    _forget_rows()
    yield state
    _forget_rows()


def _forget_rows():
    """What a new process does: read (and hash) the rows again."""
    for f in (ssl._split, getattr(ssl, "_split_fingerprint", ssl._split)):
        f.cache_clear()


def _load(**kw):
    _forget_rows()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        tr = ssl.load_or_train(CFG, progress=False, **kw)
    return tr, [x for x in w if issubclass(x.category, CacheWarning)]


def test_d1_other_rows_under_the_same_name_train_a_new_network(rows):
    """#50/#51: after a loader change (columns reordered) the old network came back with
    from_cache=True and was audited on rows it never saw."""
    first, _ = _load()
    again, _ = _load()
    assert not first.from_cache and again.from_cache and again.key == first.key
    rows["X"] = rows["X"][:, ::-1].copy()  # the loader now returns the columns reversed
    changed, warned = _load()
    assert not changed.from_cache and changed.key != first.key and not warned
    fresh, _ = _load(force=True)
    assert changed.losses == fresh.losses  # what a fresh cache gives, not the old history
    assert ssl.provenance(CFG).differences(ssl.Provenance.from_dict(
        torch.load(first.path, weights_only=True)["provenance"])) == ["the data changed"]


def _flip(path: Path):
    """Flip one byte inside the first stored tensor (torch's zip files are uncompressed)."""
    import struct
    import zipfile

    b = bytearray(path.read_bytes())
    info = next(i for i in zipfile.ZipFile(path).infolist() if i.filename.endswith("data/0"))
    n, m = struct.unpack("<HH", b[info.header_offset + 26:info.header_offset + 30])
    b[info.header_offset + 30 + n + m + 3] ^= 0x40
    path.write_bytes(bytes(b))


@pytest.mark.parametrize("damage, what", [
    (_flip, "fails its SHA-256 check"),                                           # #46
    (lambda p: p.write_bytes(p.read_bytes()[:2000]), "unreadable"),               # #44
    (lambda p: p.write_bytes(b""), "unreadable"),                                 # #45
])
def test_d2_damaged_cache_file_is_named_and_retrained(rows, damage, what):
    first, _ = _load()
    damage(first.path)
    tr, warned = _load()
    assert not tr.from_cache and len(warned) == 1
    msg = str(warned[0].message)
    assert what in msg and str(first.path) in msg and "trained again" in msg
    for a, b in zip(first.network.state_dict().values(), tr.network.state_dict().values()):
        assert torch.equal(a, b)  # deterministic retrain: the intact weights
    again, warned = _load()
    assert again.from_cache and not warned  # the file was replaced


def test_write_failure_after_training_warns_and_returns_the_network(rows, monkeypatch):
    """#47: a full (or read-only) cache failed after training and discarded the network."""
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ssl.torch, "save", full)
    tr, warned = _load()
    assert tr.network is not None and tr.path is None and not tr.from_cache
    assert len(warned) == 1 and "could not be stored" in str(warned[0].message)
    assert "No space left" in str(warned[0].message)


def test_unwritable_cache_root_is_named_before_training(rows, monkeypatch, tmp_path):
    """#48: a cache root that cannot hold networks/ was a raw PermissionError from mkdir."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("KREPES_CACHE", str(blocker / "cache"))
    trained = []
    real = ssl.train_ssl
    monkeypatch.setattr(ssl, "train_ssl", lambda *a, **k: trained.append(1) or real(*a, **k))
    tr, warned = _load()
    assert tr.network is not None and tr.path is None and trained == [1]
    msg = str(warned[0].message)
    assert "KREPES_CACHE" in msg and "cannot be written" in msg and str(blocker) in msg


@pytest.mark.skipif(os.name != "posix", reason="the lock is fcntl's")
def test_concurrent_callers_train_a_network_once(tmp_path):
    """#49: two processes asking for one network both trained it (no lock)."""
    script = textwrap.dedent(f"""
        import os, sys, time
        import numpy as np
        from krepes_lib import data as D
        from krepes_lib.neural import ssl

        class S(tuple):
            train = None

        rng = np.random.default_rng(0)
        X, Xt = rng.normal(size=(96, 5)).astype(np.float32), rng.normal(size=(32, 5)).astype(np.float32)
        D.load_split = lambda *a, **k: S((X, (X[:, 0] > 0).astype(int), Xt, (Xt[:, 0] > 0).astype(int)))
        real = ssl.train_ssl
        def slow(*a, **k):
            print("TRAINING", flush=True)
            time.sleep(1.5)
            return real(*a, **k)
        ssl.train_ssl = slow
        open(sys.argv[1] + ".ready", "w").close()
        while not os.path.exists(sys.argv[2]):
            time.sleep(0.02)
        cfg = ssl.SSLConfig(dataset="synthetic", loss="barlow_twins", size="tiny", n_train=96,
                            n_test=32, epochs=1, batch_size=32)
        print("from_cache", ssl.load_or_train(cfg, progress=False).from_cache, flush=True)
    """)
    env = {**os.environ, "KREPES_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    go, path = tmp_path / "go", tmp_path / "train_one.py"
    path.write_text(script)  # a file, so that the cache key's inspect.getsource sees the wrapper
    procs = [subprocess.Popen([sys.executable, str(path), str(tmp_path / f"p{i}"), str(go)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    deadline = time.time() + 120
    while not all((tmp_path / f"p{i}.ready").exists() for i in range(2)) and time.time() < deadline:
        time.sleep(0.05)
    go.write_text("")  # both call load_or_train now
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    text = "".join(o for o, _ in outs)
    assert text.count("TRAINING") == 1, text
    assert sorted(ln for ln in text.splitlines() if ln.startswith("from_cache")) == \
        ["from_cache False", "from_cache True"], text


def test_relative_krepes_cache_is_relative_to_the_cwd_of_the_call(rows, monkeypatch, tmp_path):
    """#52 (library side): a relative KREPES_CACHE resolves against the current directory and
    is stored absolute, so the notebooks' kernels (cwd notebooks/) find the same cache."""
    from krepes_lib.provenance import absolutize_env

    (tmp_path / "nb").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KREPES_CACHE", ".krepes_cache")
    assert ssl.cache_dir() == tmp_path / ".krepes_cache" / "networks"
    tr, _ = _load()
    assert tr.path.parent == tmp_path / ".krepes_cache" / "networks"
    env = {"KREPES_CACHE": ".krepes_cache", "KREPES_VERIFY_CACHE": "v.json", "KREPES_DATA": "d"}
    absolutize_env(env)
    assert env == {"KREPES_CACHE": str(tmp_path / ".krepes_cache"),
                   "KREPES_VERIFY_CACHE": str(tmp_path / "v.json"), "KREPES_DATA": str(tmp_path / "d")}
    monkeypatch.chdir(tmp_path / "nb")
    monkeypatch.setenv("KREPES_CACHE", env["KREPES_CACHE"])
    assert _load()[0].from_cache
