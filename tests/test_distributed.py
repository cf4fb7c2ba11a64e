"""Dask rows on a two-process LocalCluster give the single-process results (krepes_lib.distributed).

Every row-parallel pass — kernel blocks, features F = K_nm Ã + γ, the audit (full-data objective,
gradient, GGN products of the CG solve), influence scores, top-K, k-NN confidence, landmark
selection (uniform, k-means++ in input and kernel space, leverage scores), the median bandwidth —
runs on a Dask array chunked along rows, on two worker processes, and is compared with the same
call on the rows in memory: float64 to 1e-10 relative, float32 within the project's tolerance
table (``conftest.RTOL``). The audit's batches are drawn per partition; the single-process
reference gets the same batches through ``views.partition_batches``.
"""
import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import krepes_lib as kr  # noqa: E402
from conftest import RTOL  # noqa: E402
from krepes_lib.backend import to_host  # noqa: E402
from krepes_lib.views import partition_batches  # noqa: E402

CHUNK = 70


@pytest.fixture(scope="module")
def client():
    import dask

    cfg = kr.distributed.worker_config()
    assert "MALLOC_TRIM_THRESHOLD_" not in cfg["distributed.nanny.pre-spawn-environ"]
    dask.config.set(cfg)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def blobs(n=250, d=5, k=4, seed=0):
    r = np.random.default_rng(seed)
    centres = r.normal(scale=3.0, size=(k, d))
    y = r.integers(0, k, size=n)
    return centres[y] + r.normal(size=(n, d)), y


def close(a, b, dtype=np.float64, factor=1.0):
    rtol = RTOL[np.dtype(dtype).type] * factor
    a, b = np.asarray(to_host(a), dtype=np.float64), np.asarray(to_host(b), dtype=np.float64)
    scale = max(np.abs(b).max(), 1e-300)
    assert np.abs(a - b).max() <= rtol * scale, f"max |diff| / max |ref| = {np.abs(a - b).max() / scale:.3g}"


def model_on(X, dtype, m=20, h=4, kernel=None):
    kern = kernel or kr.RBF(sigma=kr.median_sigma(X))
    lm = kr.select_landmarks(X.astype(dtype), m=m, method="uniform", seed=1)
    return kr.NystromModel(kr.Nystrom(kern, lm, dtype=dtype), h=h)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_features_and_kernel_blocks(client, dtype):
    X, _ = blobs()
    Xd = da.from_array(X.astype(dtype), chunks=(CHUNK, -1))
    model = model_on(X, dtype)
    F = model.embed(Xd)
    assert isinstance(F, da.Array) and F.chunks[0] == Xd.chunks[0]
    close(F.compute(), model.embed(X.astype(dtype)), dtype)
    k, L = model.nystrom.kernel, model.nystrom.landmarks
    A = np.random.default_rng(2).normal(size=(L.shape[0], 3)).astype(dtype)
    G = np.random.default_rng(3).normal(size=(X.shape[0], 3)).astype(dtype)
    Xh = X.astype(dtype)
    close(k.matmul(Xd, L, A).compute(), k.matmul(Xh, L, A), dtype)
    close(k.rmatmul(Xd, L, da.from_array(G, chunks=(CHUNK, -1))), k.rmatmul(Xh, L, G), dtype)
    close(k.rmatmul(Xd, L, G), k.rmatmul(Xh, L, G), dtype)
    # two maps over the same rows in one graph keep their own results (distinct task keys)
    other = model_on(X, dtype, m=12, h=3)
    F1, F2 = da.compute(model.embed(Xd), other.embed(Xd))
    close(F1, model.embed(Xh), dtype)
    close(F2, other.embed(Xh), dtype)


@pytest.mark.parametrize("loss,dtype,budget", [
    ("barlow_twins", np.float64, None), ("simclr", np.float64, None), ("vicreg", np.float64, 16000),
    ("byol", np.float64, None), ("barlow_twins", np.float32, None), ("vicreg", np.float32, None)],
    ids=["bt-f64", "simclr-f64", "vicreg-f64-streamed", "byol-f64", "bt-f32", "vicreg-f32"])
def test_audit_passes_equal_one_process(client, loss, dtype, budget):
    """The full-data objective, its gradient, GGN products and step values on the cluster equal
    the same passes over the same batches in memory (float64 1e-10, float32 RTOL)."""
    from krepes_lib.curvature import GGNOperator
    from krepes_lib.distributed import audit_operator
    from krepes_lib.problem import BatchProblem

    X, _ = blobs()
    Xh = X.astype(dtype)
    Xd = da.from_array(Xh, chunks=(CHUNK, -1))
    model = model_on(X, dtype)
    obj = kr.make_objective(loss)
    state = obj.init_state(model)
    opts = kr.Options(damping=1e-2, **({"memory_budget": budget} if budget else {}))
    op_d = audit_operator(model, obj, state, Xd, augment="table", seed=3, n_batches=7, batch_size=32,
                          options=opts)
    if budget:  # streamed: every partition keeps its rows only, no kernel block
        chunk_bytes = [c * Xh.shape[1] * Xh.itemsize for c in Xd.chunks[0]]
        assert op_d.worker_bytes() == chunk_bytes
    batches = partition_batches(Xh, Xd.chunks[0], 7, 32, views=obj.views, augment="table", seed=3)
    assert len(batches) == 7
    op_h = GGNOperator([BatchProblem(model, obj, state, b, 2**30) for b in batches],
                       damping=opts.damping, keys=op_d.keys)
    (v_d, g_d), (v_h, g_h) = op_d.gradient(), op_h.gradient()
    assert abs(v_d - v_h) <= RTOL[dtype] * abs(v_h)
    V = {k: np.random.default_rng(5).normal(size=g_h[k].shape).astype(dtype) for k in g_h}
    m_d, m_h = op_d.matvec(V), op_h.matvec(V)
    for k in g_h:
        close(g_d[k], g_h[k], dtype)
        close(m_d[k], m_h[k], dtype)
    assert abs(op_d.value_at(V, 0.3) - op_h.value_at(V, 0.3)) <= RTOL[dtype] * abs(op_h.value_at(V, 0.3))


@pytest.mark.parametrize("loss,dtype", [("barlow_twins", np.float64), ("simclr", np.float64),
                                        ("vicreg", np.float32)], ids=["bt-f64", "simclr-f64", "vicreg-f32"])
def test_audit_step_equals_one_process(client, loss, dtype):
    """kr.audit on Dask rows == kr.audit on the same batches in memory. CG amplifies rounding
    to its own tolerance, so the solve is run to cg_rtol 1e-13 in float64 (the step then agrees
    to 1e-10); in float32 (cg_rtol 1e-4) the step agrees to 10× the float32 tolerance."""
    X, _ = blobs()
    Xh = X.astype(dtype)
    Xd = da.from_array(Xh, chunks=(CHUNK, -1))
    model = model_on(X, dtype)
    tight = dtype == np.float64
    opts = kr.Options(damping=1e-2, cg_rtol=1e-13 if tight else 1e-4, cg_max_iter=1000)
    a_d = kr.audit(model, loss, Xd, augment="table", seed=3, n_batches=7, batch_size=32, options=opts)
    batches = partition_batches(Xh, Xd.chunks[0], 7, 32, views=kr.make_objective(loss).views,
                                augment="table", seed=3)
    a_h = kr.audit(model, loss, None, batches=batches, options=opts)
    assert abs(a_d.cg.iterations - a_h.cg.iterations) <= 1   # the stopping test sees rounding
    f = 1.0 if tight else 10.0
    assert abs(a_d.loss_before - a_h.loss_before) <= RTOL[dtype] * abs(a_h.loss_before)
    assert abs(a_d.loss_after - a_h.loss_after) <= RTOL[dtype] * f * abs(a_h.loss_after)
    step = [np.concatenate([np.ravel(a.delta_A), np.ravel(a.delta_gamma)]) for a in (a_d, a_h)]
    close(step[0], step[1], dtype, f)   # [ΔÃ; Δγ] relative to its largest entry (Δγ ≈ 0 for BT)


def test_audit_metrics_on_dask_test_rows(client):
    X, y = blobs()
    Xt, yt = blobs(n=150, seed=5)
    model = model_on(X, np.float64, m=24)
    a = kr.audit(model, "barlow_twins", X, augment="table", damping=1e-2, seed=0, n_batches=2,
                 batch_size=64)
    Xt_d = da.from_array(Xt, chunks=(40, -1))
    close(a.embed(Xt_d).compute(), a.embed(Xt))
    close(a.influence_scores(Xt_d).compute(), a.influence_scores(Xt))
    t_d, t_h = a.top_influential(Xt_d, K=4), a.top_influential(Xt, K=4)
    np.testing.assert_array_equal(t_d.indices.compute(), t_h.indices)
    close(t_d.scores.compute(), t_h.scores)
    v = np.random.default_rng(0).normal(size=4)
    t_d, t_h = a.top_influential(Xt_d, K=3, v=v), a.top_influential(Xt, K=3, v=v)
    close(t_d.concept_scores.compute(), t_h.concept_scores)
    yl = y[a.landmark_indices]
    for target in ("true", "predicted"):
        c_d = a.confidence_drop(Xt_d, yl, y_t=yt, target=target, n_remove=2, k=4, allow_small_m=True)
        c_h = a.confidence_drop(Xt, yl, y_t=yt, target=target, n_remove=2, k=4, allow_small_m=True)
        np.testing.assert_array_equal(c_d.per_point_top, c_h.per_point_top)
        np.testing.assert_array_equal(c_d.per_point_random, c_h.per_point_random)
        assert c_d.top == c_h.top and c_d.random == c_h.random
        assert abs(c_d.confidence - c_h.confidence) <= 1e-12


@pytest.mark.parametrize("method,kspace", [("uniform", False), ("kmeans++", False), ("kmeans++", True),
                                           ("leverage", False)])
def test_landmark_selection(client, method, kspace):
    X, _ = blobs()
    Xd = da.from_array(X, chunks=(CHUNK, -1))
    kern = kr.Laplacian(sigma=3.0) if kspace else kr.RBF(sigma=3.0)
    kw = dict(kernel=kern, kernel_space=True) if kspace else dict(kernel=kern)
    if method != "kmeans++":
        kw.pop("kernel_space", None)
    lm_d = kr.select_landmarks(Xd, m=15, method=method, seed=4, **kw)
    lm_h = kr.select_landmarks(X, m=15, method=method, seed=4, **kw)
    np.testing.assert_array_equal(lm_d.indices, lm_h.indices)
    np.testing.assert_array_equal(to_host(lm_d.points), to_host(lm_h.points))


def test_kmeanspp_in_the_space_of_any_kernel(client):
    """The generic kernel-space path (a polynomial kernel: one streamed kernel column per step)."""
    X, _ = blobs(n=140)
    kern = kr.Polynomial(degree=2)
    lm_d = kr.select_landmarks(da.from_array(X, chunks=(50, -1)), m=10, method="kmeans++", kernel=kern,
                               kernel_space=True, seed=2)
    lm_h = kr.select_landmarks(X, m=10, method="kmeans++", kernel=kern, kernel_space=True, seed=2)
    np.testing.assert_array_equal(lm_d.indices, lm_h.indices)


def test_median_sigma_and_given(client):
    X, _ = blobs()
    Xd = da.from_array(X, chunks=(CHUNK, -1))
    assert kr.median_sigma(Xd, n_pairs=300, seed=1) == kr.median_sigma(X, n_pairs=300, seed=1)
    lm = kr.select_landmarks(Xd, method="given", indices=[7, 3, 200])
    np.testing.assert_array_equal(lm.points, X[[7, 3, 200]])


def test_calls_that_need_rows_in_memory_say_so(client):
    X, _ = blobs(n=80)
    Xd = da.from_array(X, chunks=(40, -1))
    model = model_on(X, np.float64)
    with pytest.raises(TypeError, match="Dask array.*kr.audit"):
        kr.fit(model, Xd, "barlow_twins", epochs=1)
    y = np.arange(80) % 2
    with pytest.raises(TypeError, match="Dask array.*compute"):
        kr.linear_probe(model.embed(Xd), y, model.embed(X), y)


def test_without_a_client_the_same_code_runs_here(monkeypatch):
    """No active Client: partitions run one after the other in this process, same numbers."""
    monkeypatch.setattr(distributed, "default_client", lambda: (_ for _ in ()).throw(ValueError("none")))
    X, _ = blobs(n=120)
    Xd = da.from_array(X, chunks=(50, -1))
    model = model_on(X, np.float64, m=12, h=3)
    a_d = kr.audit(model, "vicreg", Xd, augment="table", seed=1, n_batches=3, batch_size=24)
    batches = partition_batches(X, Xd.chunks[0], 3, 24, augment="table", seed=1)
    a_h = kr.audit(model, "vicreg", None, batches=batches)
    close(a_d.delta_A, a_h.delta_A)
    lm = kr.select_landmarks(Xd, m=6, method="kmeans++", seed=0)
    np.testing.assert_array_equal(lm.indices, kr.select_landmarks(X, m=6, method="kmeans++", seed=0).indices)


def test_entk_features_and_embedding_of_a_network(client):
    """A network's eNTK over Dask rows: the kernel (the module, its weights) is sent once and
    every worker computes its rows' features; equal to one process."""
    torch = pytest.importorskip("torch")
    from krepes_lib.distributed import kernel_features
    from krepes_lib.neural import TorchNTK

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    X, _ = blobs(n=120)
    Xd = da.from_array(X, chunks=(40, -1))
    kern = TorchNTK(net, implementation="sketch", sketch_size=4, dtype="float64")
    Phi = kernel_features(kern, Xd)
    assert isinstance(Phi, da.Array)
    close(Phi.compute(), kern.features(X))
    close(kern.features(Xd).compute(), kern.features(X))       # TorchNTK.features on Dask rows
    model = kr.NystromModel(kr.Nystrom(kern, X[:10], dtype="float64"), h=3)
    close(model.embed(Xd).compute(), model.embed(X))
