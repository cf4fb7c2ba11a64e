"""The device path without a GPU: the whole pipeline on the CuPy stand-in equals the NumPy run.

``tests/cupy_standin.py`` is a namespace whose arrays refuse every implicit trip to the host
(``np.asarray(dev)``, NumPy/SciPy routines given a device array, ``float`` of a non-scalar,
device arrays mixed with NumPy arrays), as CuPy's do. Each test runs one stage of the README
pipeline — landmarks, Nyström, the model, ``fit``, ``audit`` and every metric, the probes,
TorchNTK — once on NumPy and once on the stand-in (rows moved across explicitly with
``kr.to_device``), and requires the same numbers in float64; results must come back as device
arrays, and crossing back to the host happens only through ``to_host`` (``.get()``).
The ``device_xp`` fixture is the stand-in here and, on a machine with a GPU, real CuPy as well
(``tools/gpu_check.sh`` runs these with ``-k "cupy and not standin"``).
"""
import numpy as np
import pytest

import krepes_lib as kr
from krepes_lib.backend import get_xp, is_device_array, to_host

TOL = dict(rtol=1e-9, atol=1e-10)


def blobs(n=240, d=5, k=4, seed=0):
    r = np.random.default_rng(seed)
    centres = r.normal(scale=3.0, size=(k, d))
    y = r.integers(0, k, size=n)
    return (centres[y] + r.normal(size=(n, d))).astype(np.float64), y


def on(xp, a):
    return a if xp is np else kr.to_device(a, xp)


def same(dev, host, **tol):
    assert is_device_array(dev), f"expected a device array, got {type(dev).__name__}"
    np.testing.assert_allclose(to_host(dev), host, **(tol or TOL))


@pytest.fixture(scope="module")
def data():
    X, y = blobs()
    Xt, yt = blobs(n=60, seed=1)
    return X, y, Xt, yt


def _model(xp, X, method="kmeans++", kernel_space=False, coords="whitened"):
    kern = kr.RBF(sigma=kr.median_sigma(on(xp, X)))
    lm = kr.select_landmarks(on(xp, X), m=24, method=method, kernel=kern,
                             kernel_space=kernel_space, seed=0) if method == "kmeans++" else \
        kr.select_landmarks(on(xp, X), m=24, method=method, kernel=kern, seed=0)
    return kr.NystromModel(kr.Nystrom(kern, lm, dtype="float64"), h=4, coords=coords), lm


@pytest.mark.parametrize("method,kspace", [("uniform", False), ("kmeans++", False),
                                           ("kmeans++", True), ("leverage", False)])
def test_landmarks_and_nystrom(device_xp, data, method, kspace):
    X = data[0]
    (m_h, lm_h), (m_d, lm_d) = (_model(xp, X, method, kspace) for xp in (np, device_xp))
    np.testing.assert_array_equal(to_host(lm_d.indices), to_host(lm_h.indices))
    same(m_d.nystrom.K_mm, m_h.nystrom.K_mm)
    same(m_d.embed(on(device_xp, X)), m_h.embed(X))
    assert abs(m_d.nystrom.relative_error(on(device_xp, X)) - m_h.nystrom.relative_error(X)) < 1e-10


@pytest.mark.parametrize("loss", ["barlow_twins", "simclr", "vicreg", "byol", "kae"])
def test_audit_and_metrics(device_xp, data, loss):
    X, y, Xt, yt = data
    out = {}
    for xp in (np, device_xp):
        model, lm = _model(xp, X)
        a = kr.audit(model, loss, on(xp, X), augment="table", damping=1e-2, seed=0,
                     n_batches=2, batch_size=64)
        yl = y[to_host(lm.indices)]
        out[xp] = a, yl
    (ah, yl), (ad, _) = out[np], out[device_xp]
    assert ad.summary()["cg_iterations"] == ah.summary()["cg_iterations"]
    assert abs(ad.loss_after - ah.loss_after) <= 1e-8 * max(1.0, abs(ah.loss_after))
    same(ad.delta_A, ah.delta_A)
    Xt_d = on(device_xp, Xt)
    same(ad.embed(Xt_d), ah.embed(Xt))
    th, td = ah.top_influential(Xt, K=3), ad.top_influential(Xt_d, K=3)
    np.testing.assert_array_equal(to_host(td.indices), to_host(th.indices))
    same(td.scores, to_host(th.scores))
    same(ad.influence_scores(Xt_d), ah.influence_scores(Xt))
    assert ad.kappa(yl) == ah.kappa(yl)
    assert abs(ad.spectral_entropy() - ah.spectral_entropy()) < 1e-10
    p_h, p_d = ah.precision_at_1(Xt, yt, yl), ad.precision_at_1(Xt_d, yt, yl)
    assert p_d == p_h
    if loss == "barlow_twins":
        v = ah.concept_vector(Xt[yt == 0], Xt[yt != 0])
        vd = ad.concept_vector(Xt_d[on(device_xp, yt == 0)], Xt_d[on(device_xp, yt != 0)])
        same(vd, to_host(v), rtol=1e-6, atol=1e-8)
        ar_h = ah.attracting_repelling(Xt, v, K=2)
        ar_d = ad.attracting_repelling(Xt_d, vd, K=2)
        np.testing.assert_array_equal(to_host(ar_d.attract_indices), to_host(ar_h.attract_indices))
        c_h = ah.confidence_drop(Xt, yl, y_t=yt, n_remove=2, k=3, allow_small_m=True)
        c_d = ad.confidence_drop(Xt_d, yl, y_t=yt, n_remove=2, k=3, allow_small_m=True)
        for f in c_h._fields:
            vh, vd_ = getattr(c_h, f), getattr(c_d, f)
            np.testing.assert_allclose(vd_, vh, rtol=1e-9, atol=1e-12, err_msg=f)


@pytest.mark.parametrize("optimizer", ["adam", "newton_cg"])
def test_fit_on_the_device(device_xp, data, optimizer):
    X = data[0]
    hist = {}
    for xp in (np, device_xp):
        model, _ = _model(xp, X)
        h = kr.fit(model, on(xp, X), "barlow_twins", epochs=2, batch_size=64, augment="table",
                   options=kr.Options(optimizer=optimizer, lr=1e-2), seed=0)
        hist[xp] = (model, h)
    (mh, hh), (md, hd) = hist[np], hist[device_xp]
    np.testing.assert_allclose(hd.loss, hh.loss, rtol=1e-8)
    same(md.A_tilde, to_host(mh.A_tilde), rtol=1e-7, atol=1e-9)


def test_probes_and_knn(device_xp, data):
    X, y, Xt, yt = data
    Z, Zt = X[:, :3], Xt[:, :3]
    acc_h = kr.linear_probe(Z, y, Zt, yt)
    acc_d = kr.linear_probe(on(device_xp, Z), on(device_xp, y), on(device_xp, Zt), on(device_xp, yt))
    assert acc_d == pytest.approx(acc_h, abs=1e-12)
    assert kr.knn_accuracy(on(device_xp, Z), y, on(device_xp, Zt), yt) == kr.knn_accuracy(Z, y, Zt, yt)


def test_falkon_preconditioned_fit(device_xp, data):
    from krepes_lib.preconditioner import FalkonPreconditioner

    X = data[0]
    res = {}
    for xp in (np, device_xp):
        model, _ = _model(xp, X, coords="raw")
        P = FalkonPreconditioner.from_nystrom(model.nystrom, on(xp, X), lam=1e-3)
        G = on(xp, np.random.default_rng(3).normal(size=(model.m, 4)))
        res[xp] = (P.apply(G), P.matvec(G))
    same(res[device_xp][0], to_host(res[np][0]))
    same(res[device_xp][1], to_host(res[np][1]))


def test_standin_refuses_what_cupy_refuses(standin):
    """The premise of this file: the stand-in fails where CuPy fails (else nothing is proven)."""
    import scipy.linalg

    d = standin.asarray(np.eye(3))
    for bad in (lambda: np.asarray(d), lambda: float(d), lambda: d + np.ones(3),
                lambda: scipy.linalg.solve_triangular(d, d), lambda: np.concatenate([d, np.eye(3)])):
        with pytest.raises(TypeError):
            bad()
    assert get_xp(d) is standin and kr.default_xp() is standin and kr.gpu_available()
    assert type(d.sum()) is type(d)                  # reductions stay on the device (0-d)
    n0 = standin.transfers["to_host"]
    assert isinstance(kr.to_host(d), np.ndarray) and standin.transfers["to_host"] == n0 + 1
    with pytest.raises(TypeError, match="mixed"):
        get_xp(d, np.eye(3))


def test_checkpoint_resume_on_the_device(device_xp, data, tmp_path):
    """Checkpoints cross to the host explicitly (to_host) and come back with to_device."""
    X = data[0]
    path = str(tmp_path / "ck.npz")
    model, _ = _model(device_xp, X)
    kr.fit(model, on(device_xp, X), "vicreg", epochs=1, batch_size=64, augment="table",
           checkpoint=path, seed=0)
    resumed, _ = _model(device_xp, X)
    h = kr.fit(resumed, on(device_xp, X), "vicreg", epochs=2, batch_size=64, augment="table",
               checkpoint=path, seed=0)
    ref, _ = _model(np, X)
    h_ref = kr.fit(ref, X, "vicreg", epochs=2, batch_size=64, augment="table", seed=0)
    np.testing.assert_allclose(h.loss, h_ref.loss, rtol=1e-8)
    same(resumed.A_tilde, to_host(ref.A_tilde), rtol=1e-7, atol=1e-9)


def test_image_views_on_the_device(device_xp):
    from krepes_lib.augment import make_augmenter

    aug = make_augmenter((6, 6, 1))
    Xb = np.random.default_rng(0).random((8, 36))
    a = aug(Xb, np.random.default_rng(1))
    b = aug(on(device_xp, Xb), np.random.default_rng(1))
    same(b, a.astype(b.dtype), rtol=1e-6, atol=1e-7)


def test_torch_ntk_crosses_by_dlpack(device_xp):
    """CuPy arrays enter TorchNTK as tensors and leave it as arrays through DLPack: no `.get()`."""
    torch = pytest.importorskip("torch")
    from krepes_lib.neural import TorchNTK

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    X = np.random.default_rng(0).normal(size=(11, 5))
    L = X[:4]
    for impl in ("exact", "sketch"):
        kern = TorchNTK(net, implementation=impl, sketch_size=8)
        K_h, d_h = kern(X, L, dtype="float64"), kern.diag(X, dtype="float64")
        Xd, Ld = on(device_xp, X), on(device_xp, L)
        counter = getattr(device_xp, "transfers", None)   # the stand-in counts .get() calls
        n0 = counter["to_host"] if counter else 0
        K_d, d_d = kern(Xd, Ld, dtype="float64"), kern.diag(Xd, dtype="float64")
        assert not counter or counter["to_host"] == n0, "a device -> host copy inside TorchNTK"
        same(K_d, K_h)
        same(d_d, d_h)
    # and through the pipeline: Nyström on the eNTK, an audit, top-K
    kern = TorchNTK(net)
    res = {}
    for xp in (np, device_xp):
        model = kr.NystromModel(kr.Nystrom(kern, on(xp, L), dtype="float64"), h=2)
        a = kr.audit(model, "barlow_twins", on(xp, X), augment="table", n_batches=1, batch_size=8)
        res[xp] = (a.delta_A, a.top_influential(on(xp, X), K=2).indices)
    same(res[device_xp][0], to_host(res[np][0]), rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(to_host(res[device_xp][1]), to_host(res[np][1]))


def test_benchmark_suite_runs_on_the_device(standin, tmp_path):
    """`benchmarks/run.py --device gpu` on the stand-in: every line runs with device arrays, the
    twins get their tensors through DLPack, and each peer computes the library's numbers."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    import importlib.util
    import json
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
    spec = importlib.util.spec_from_file_location("krepes_bench_run", path)
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    out = tmp_path / "perf.json"
    args = run._parse(["--device", "gpu", "--quick", "--n", "192", "--m", "32", "--h", "4",
                       "--batch-size", "48", "--repeats", "1", "--cg-iters", "2", "--audit-cg", "3",
                       "--out", str(out)])
    n0 = standin.transfers["to_device"]
    run.main(args)
    res = json.loads(out.read_text())
    assert res["meta"]["device"].startswith("cupy_standin")
    assert standin.transfers["to_device"] > n0        # the rows really went to the "device"
    lines = {r["line"] for r in res["rows"]}
    assert lines == {1, 2, 3, 4, 5, 6, 7}
    for r in res["rows"]:
        if r["check"] is not None and r["line"] in (1, 3, 4, 5, 7):
            assert abs(r["check"]) < 1e-3, r


def test_a_user_never_gets_the_standin(tmp_path):
    """The stand-in is installed only by the test fixture: no KREPES_BACKEND value selects it,
    and KREPES_BACKEND=cupy without a GPU fails loudly even when tests/ is importable."""
    import os
    import subprocess
    import sys

    tests_dir = os.path.dirname(os.path.abspath(__file__))
    code = ("import cupy_standin, krepes_lib as kr, numpy as np\n"
            "from krepes_lib.backend import _real_cupy_or_none\n"
            "try:\n    xp = kr.default_xp()\nexcept (RuntimeError, ValueError) as e:\n"
            "    print(type(e).__name__)\nelse:\n"
            "    print('cupy' if _real_cupy_or_none() is not None and xp.__name__ == 'cupy' else xp.__name__)\n")
    for value in ("cupy", "cupy_standin", "cupy-standin", "standin"):
        env = {**os.environ, "KREPES_BACKEND": value, "PYTHONPATH": tests_dir}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             cwd=tmp_path).stdout.strip()
        assert out in ("RuntimeError", "ValueError", "cupy"), (value, out)
        assert out != "cupy_standin"
