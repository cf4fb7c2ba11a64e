"""eNTK features computed once: the process-wide store (budget, spill to checksummed files,
recompute of a damaged shard), the CountSketch projection (entk-countsketch) and its error,
the auto plan, the normalised eNTK, and torch tensors in and out."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import krepes_lib as kr  # noqa: E402
from krepes_lib.neural import TorchNTK, kernel_error, sketch_error  # noqa: E402
from krepes_lib.neural.features import FeatureStore, row_keys  # noqa: E402


def mlp(seed=0, d=6, out=4, width=24):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, width), torch.nn.Tanh(), torch.nn.Linear(width, out))


def test_store_spills_to_checksummed_files_and_recomputes_a_damaged_shard(tmp_path):
    store = FeatureStore(budget=10 * 8 * 4, spill_bytes=10**6, spill_dir=str(tmp_path))
    x = torch.randn(30, 5, dtype=torch.float64)
    keys = row_keys(x)
    calls = []

    def compute(idx):
        calls.append(len(idx))
        return x[torch.as_tensor(idx)] * 2.0

    F = store.rows("t", keys, compute, chunk=7)
    assert torch.equal(F, 2 * x) and sum(calls) == 30
    assert store.used <= store.budget and store.stats["spilled"] > 0
    shards = list(tmp_path.rglob("shard-*.npy"))
    assert shards and not list(tmp_path.rglob("*.tmp"))  # renamed into place, nothing half-written
    calls.clear()
    assert torch.equal(store.rows("t", keys, compute, chunk=7), 2 * x) and calls == []  # read back
    # damage every shard on disk: its rows are recomputed, never read
    store2 = FeatureStore(budget=10 * 8 * 4, spill_bytes=10**6, spill_dir=str(tmp_path / "b"))
    store2.rows("t", keys, compute, chunk=7)
    for p in (tmp_path / "b").rglob("shard-*.npy"):
        raw = bytearray(p.read_bytes())
        raw[-3] ^= 0xFF
        p.write_bytes(bytes(raw))
    calls.clear()
    assert torch.equal(store2.rows("t", keys, compute, chunk=7), 2 * x)
    assert sum(calls) > 0 and store2.stats["corrupt"] > 0


def test_countsketch_projection_is_unbiased_and_falls_like_inverse_sqrt_k():
    net = mlp(1).double()
    X = np.random.default_rng(1).normal(size=(24, 6))
    err = sketch_error(net, X, sizes=(16, 256), seeds=(0, 1, 2), implementation="project")
    ratio = err["mean"][0] / err["mean"][1]
    assert 2.0 < ratio < 8.0  # 16x more buckets: about 4x less error
    exact = TorchNTK(net, cache_bytes=0)(X)
    mean = np.mean([TorchNTK(net, implementation="project", projection_dim=32, seed=s, cache_bytes=0)(X[:6])
                    for s in range(100)], axis=0)
    assert np.abs(mean - exact[:6, :6]).max() / np.abs(exact).max() < 0.08  # E[K̂] = K


def test_auto_plan_prints_the_estimate_and_meets_the_budget(capsys):
    net = mlp(2, out=6).double()
    X = np.random.default_rng(2).normal(size=(40, 6))
    k = TorchNTK(net, implementation="auto", error=0.2)
    info = k.plan(X, n_rows=1000)
    out = capsys.readouterr().out
    assert out.startswith("TorchNTK plan:") and "for 1,000 rows" in out
    assert info["implementation"] == k.implementation_used in ("exact", "project", "sketch")
    assert info["met"] and info["estimated_error"] <= 0.2
    assert kernel_error(k, X[:10])["error"] < 0.4  # measured against the exact eNTK
    tight = TorchNTK(net, implementation="auto", error=0.01, time_budget=1e-6)
    info = tight.plan(X, n_rows=1000, verbose=False)
    assert not info["met"]  # nothing fits a microsecond: the cheapest, said so


def test_normalised_entk_is_the_cosine_of_the_features():
    net = mlp(3).double()
    X = np.random.default_rng(3).normal(size=(9, 6)) * np.arange(1, 10)[:, None]  # rows of growing norm
    K = TorchNTK(net)(X)
    Kn = TorchNTK(net, normalize=True)(X)
    d = np.sqrt(np.diag(K))
    assert np.abs(Kn - K / np.outer(d, d)).max() < 1e-10
    assert np.allclose(TorchNTK(net, normalize=True).diag(X), 1.0)
    small = TorchNTK(net, normalize=True, memory_budget=20000, cache_bytes=0)  # the chunked path
    assert not small._fits_rows(small._plan(torch.from_numpy(X)), 9 + 1, 8)
    assert np.abs(small(X) - Kn).max() < 1e-10


def test_features_are_computed_once_through_the_pipeline(monkeypatch):
    """Landmarks (kernel-space k-means++), Nyström, the audit and embeddings: no row twice."""
    net = mlp(4, d=5)
    X = np.random.default_rng(4).normal(size=(60, 5)).astype(np.float32)
    seen = {}
    real = TorchNTK._chunk_features

    def spy(self, x, c, p):
        for key in row_keys(x):
            seen[key] = seen.get(key, 0) + 1
        return real(self, x, c, p)

    monkeypatch.setattr(TorchNTK, "_chunk_features", spy)
    a = kr.neural.audit_network(net, X, "barlow_twins", h=3, n_batches=1, batch_size=20, implementation="project",
                                projection_dim=64)
    a.embed(X)
    a.top_influential(X[:10], K=2)
    assert max(seen.values()) == 1  # every row (data, landmarks, views) computed once
    assert len(seen) >= 60 + 2 * 20 - 5  # the 60 rows and (almost all distinct) 40 views


def test_torch_tensors_in_and_out():
    net = mlp(5).double()
    X = np.random.default_rng(5).normal(size=(7, 6))
    k = TorchNTK(net)
    K = k(torch.from_numpy(X))
    assert isinstance(K, np.ndarray) and np.allclose(K, k(X))
    t = kr.neural.to_torch(K)
    assert torch.is_tensor(t) and t.data_ptr() == K.__array_interface__["data"][0]  # no copy
    assert isinstance(kr.neural.from_torch(t), np.ndarray)
