"""TorchNTK: the eNTK of a torch module, eq. (entk-proj), against the NumPy MLP eNTK, finite-
difference Jacobians of a tiny CNN, its own contractions, and the sketch (entk-sketch)."""
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from entk_reference import MLP, EmpiricalNTK  # noqa: E402
from krepes_lib.kernels import Linear  # noqa: E402
from krepes_lib.landmarks import kmeans_pp  # noqa: E402
from krepes_lib.model import NystromModel  # noqa: E402
from krepes_lib.neural import TorchNTK, output_projection, sketch_error  # noqa: E402
from krepes_lib.nystrom import Nystrom  # noqa: E402

RTOL = 1e-6


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def sequential_like(mlp):
    """nn.Sequential (float64) with the weights of an entk_reference.MLP (tests/)."""
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[mlp.activation]
    layers = []
    for l, W in enumerate(mlp.weights):
        layers.append(torch.nn.Linear(W.shape[1], W.shape[0]))
        if l < len(mlp.weights) - 1:
            layers.append(act())
    seq = torch.nn.Sequential(*layers).double()
    lins = [m for m in seq if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for lin, W, b in zip(lins, mlp.weights, mlp.biases):
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(b))
    return seq


def tiny_cnn(seed=0):
    """conv 3×3 → tanh → max-pool 2 → flatten → linear (3 outputs), NCHW input (1, 6, 6)."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Tanh(), torch.nn.MaxPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(2 * 3 * 3, 3)).double()


def fd_jacobian(module, X, input_shape=None, eps=1e-6):
    """J (n, O, p) by central finite differences over every parameter (float64, eval mode)."""
    module.eval()
    x = torch.from_numpy(X)
    if input_shape is not None:
        x = x.reshape((X.shape[0],) + tuple(input_shape))
    cols = []
    with torch.no_grad():
        for prm in module.parameters():
            flat = prm.view(-1)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + eps
                up = module(x).reshape(X.shape[0], -1).numpy()
                flat[i] = old - eps
                down = module(x).reshape(X.shape[0], -1).numpy()
                flat[i] = old
                cols.append((up - down) / (2 * eps))
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("contraction", ["sum", "mean"])
def test_equals_numpy_mlp_entk(activation, contraction):
    mlp = MLP.init([4, 7, 5, 3], seed=1, activation=activation)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(9, 4)), rng.normal(size=(5, 4))
    ref = EmpiricalNTK(mlp=mlp, output_reduction=contraction)
    k = TorchNTK(sequential_like(mlp), contraction=contraction)
    K = k(X, Y, dtype="float64")
    assert K.dtype == np.float64 and isinstance(K, np.ndarray)
    assert rel(K, ref(X, Y, dtype="float64")) < RTOL
    assert rel(k.diag(X, dtype="float64"), ref.diag(X, dtype="float64")) < RTOL


def test_equals_finite_difference_jacobian_of_a_cnn():
    cnn = tiny_cnn()
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(5, 36)), rng.normal(size=(4, 36))
    JX, JY = fd_jacobian(cnn, X, (1, 6, 6)), fd_jacobian(cnn, Y, (1, 6, 6))
    k = TorchNTK(cnn, input_shape=(1, 6, 6))
    assert rel(k(X, Y, dtype="float64"), np.einsum("iop,jop->ij", JX, JY)) < RTOL
    # a given output projection R: k = Σ_j (RᵀJ)_j(x)·(RᵀJ)_j(x'), eq. (entk-proj)
    R = rng.normal(size=(3, 2))
    kR = TorchNTK(cnn, contraction=R, input_shape=(1, 6, 6))
    ref = np.einsum("iop,oq,jrp,rq->ij", JX, R, JY, R)
    assert rel(kR(X, Y, dtype="float64"), ref) < RTOL
    # the features are the contracted Jacobians themselves
    F = TorchNTK(cnn, contraction=R[:, :1], input_shape=(1, 6, 6)).features(X, dtype="float64")
    assert rel(F, np.einsum("iop,o->ip", JX, R[:, 0])) < RTOL


def test_batchnorm_uses_running_statistics():
    """In eval mode BatchNorm normalises with its running statistics: the eNTK of a CNN with a
    BatchNorm layer (non-trivial running mean/var, affine weights as parameters) equals the
    finite-difference Jacobian contraction of the module in eval mode, whatever the block."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.BatchNorm2d(2), torch.nn.Tanh(),
                              torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(18, 2)).double()
    bn = net[1]
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.3, -0.2]))
        bn.running_var.copy_(torch.tensor([2.0, 0.5]))
        bn.weight.copy_(torch.tensor([1.5, 0.7]))
    net.train()  # TorchNTK switches its snapshot to eval mode itself
    X = np.random.default_rng(11).normal(size=(4, 36))
    J = fd_jacobian(net, X, (1, 6, 6))
    k = TorchNTK(net, input_shape=(1, 6, 6))
    K = k(X, dtype="float64")
    assert rel(K, np.einsum("iop,jop->ij", J, J)) < RTOL
    assert rel(k(X[:1], X, dtype="float64"), K[:1]) < 1e-12  # a row's kernel does not depend on the batch


def test_contractions_relate():
    cnn = tiny_cnn(2)
    X = np.random.default_rng(2).normal(size=(6, 36))
    kw = dict(input_shape=(1, 6, 6))
    Ks = TorchNTK(cnn, contraction="sum", **kw)(X, dtype="float64")
    assert rel(TorchNTK(cnn, contraction="mean", **kw)(X, dtype="float64"), Ks / 3) < RTOL
    assert rel(TorchNTK(cnn, contraction=np.eye(3), **kw)(X, dtype="float64"), Ks) < RTOL
    parts = sum(TorchNTK(cnn, contraction=np.eye(3)[:, [o]], **kw)(X, dtype="float64") for o in range(3))
    assert rel(parts, Ks) < RTOL


def test_random_output_projection_is_unbiased_for_the_sum():
    """k_R depends on R only through R Rᵀ (eq. (entk-proj)), and E[R Rᵀ] = I for
    output_projection, so the kernel of the mean R Rᵀ approaches k_sum."""
    cnn = tiny_cnn(10)
    X = np.random.default_rng(10).normal(size=(5, 36))
    kw = dict(input_shape=(1, 6, 6))
    R = output_projection(3, 4, seed=0)
    C = np.linalg.cholesky(R @ R.T)
    assert rel(TorchNTK(cnn, contraction=R, **kw)(X, dtype="float64"),
               TorchNTK(cnn, contraction=C, **kw)(X, dtype="float64")) < RTOL
    RRt = np.mean([P @ P.T for P in (output_projection(3, 4, seed=s) for s in range(400))], axis=0)
    assert np.abs(RRt - np.eye(3)).max() < 0.15
    Ks = TorchNTK(cnn, **kw)(X, dtype="float64")
    assert rel(TorchNTK(cnn, contraction=np.linalg.cholesky(RRt), **kw)(X, dtype="float64"), Ks) < 0.15
    with pytest.raises(ValueError, match="positive integers"):
        output_projection(3, 0)


@pytest.mark.parametrize("implementation", ["exact", "sketch"])
def test_psd_diag_and_budget_independence(implementation):
    cnn = tiny_cnn(3)
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(11, 36)), rng.normal(size=(7, 36))
    kw = dict(input_shape=(1, 6, 6), implementation=implementation, sketch_size=40)
    k = TorchNTK(cnn, **kw)
    K = k(X, dtype="float64")
    assert np.allclose(K, K.T, rtol=1e-12, atol=0)
    assert np.linalg.eigvalsh(K).min() > -1e-10 * np.abs(K).max()
    assert rel(k.diag(X, dtype="float64"), np.diag(K)) < 1e-12
    # budgets that force chunking over rows, and over outputs / directions, change nothing
    for budget, n in ((150_000, 11), (20_000, 3)):
        small = TorchNTK(cnn, memory_budget=budget, cache_bytes=0, **kw)
        plan = small._plan(torch.from_numpy(X))
        assert plan[-1] < n or len(plan[-2]) > 1
        assert rel(small(X[:n], Y, dtype="float64"), k(X[:n], Y, dtype="float64")) < 1e-12
    # Kernel.blocks / matmul stream the same numbers
    A = rng.normal(size=(7, 2))
    assert rel(small.matmul(X, Y, A, memory_budget=2000), k(X, Y, dtype="float64") @ A) < 1e-12


def test_dtype_follows_the_input_and_the_option():
    cnn = tiny_cnn(4)
    X = np.random.default_rng(4).normal(size=(4, 36))
    k = TorchNTK(cnn, input_shape=(1, 6, 6))
    K32 = k(X.astype(np.float32))
    assert K32.dtype == np.float32
    assert k(X).dtype == np.float64 and k.diag(X).dtype == np.float64  # follows float64 input
    assert rel(K32, k(X, dtype="float64")) < 1e-4
    assert TorchNTK(cnn, input_shape=(1, 6, 6), dtype="float64")(X.astype(np.float32)).dtype == np.float64


def test_sketch_error_falls_like_inverse_sqrt_S():
    mlp = MLP.init([4, 16, 16, 2], seed=5, activation="tanh")
    X = np.random.default_rng(5).normal(size=(10, 4))
    res = sketch_error(sequential_like(mlp), X, sizes=(16, 256), seeds=range(6))
    small, large = res["mean"]
    # E‖K_S − K‖_F ∝ 1/√S: a 16× larger sketch has ~4× smaller error (loose band for 6 seeds)
    assert 2.0 < small / large < 8.0, res
    assert large < 0.25


def test_nystrom_model_and_kernel_space_kmeanspp():
    """Landmarks by k-means++ in eNTK space, Nyström and the PC-initialised model equal those of
    the Linear kernel on the explicit features (the flattened Jacobians)."""
    cnn = tiny_cnn(6)
    X = np.random.default_rng(6).normal(size=(30, 36))
    k = TorchNTK(cnn, input_shape=(1, 6, 6))
    F = k.features(X, dtype="float64")
    lm = kmeans_pp(X, 6, seed=0, kernel=k)
    lm_ref = kmeans_pp(F, 6, seed=0, kernel=Linear())
    np.testing.assert_array_equal(lm.indices, lm_ref.indices)
    nys = Nystrom(k, X[lm.indices], dtype="float64")
    nys_ref = Nystrom(Linear(), F[lm.indices], dtype="float64")
    assert rel(nys.K_mm, nys_ref.K_mm) < RTOL
    model = NystromModel(nys, h=3)
    Z, Z_ref = model.embed(X), NystromModel(nys_ref, h=3).embed(F)
    assert Z.shape == (30, 3)
    assert rel(np.abs(Z), np.abs(Z_ref)) < 1e-5  # eigenvectors up to sign


def test_repr_names_the_weights_and_snapshot():
    cnn = tiny_cnn(7)
    k = TorchNTK(cnn, input_shape=(1, 6, 6))
    X = np.random.default_rng(7).normal(size=(3, 36))
    K = k(X, dtype="float64")
    with torch.no_grad():
        next(cnn.parameters()).add_(1.0)  # training the original later does not change k
    np.testing.assert_array_equal(k(X, dtype="float64"), K)
    assert k.digest in repr(k) and TorchNTK(cnn, input_shape=(1, 6, 6)).digest != k.digest


def test_clear_errors():
    cnn = tiny_cnn()
    with pytest.raises(TypeError, match="torch.nn.Module"):
        TorchNTK(np.eye(2))
    with pytest.raises(ValueError, match="contraction"):
        TorchNTK(cnn, contraction="max")
    with pytest.raises(ValueError, match="implementation"):
        TorchNTK(cnn, implementation="fast")
    with pytest.raises(ValueError, match="sketch_size"):
        TorchNTK(cnn, implementation="sketch", sketch_size=0)
    X = np.zeros((2, 36))
    with pytest.raises(ValueError, match="O = 3 outputs"):
        TorchNTK(cnn, contraction=np.ones((4, 1)), input_shape=(1, 6, 6))(X)
    with pytest.raises(ValueError, match="input_shape"):
        TorchNTK(cnn, input_shape=(1, 5, 5))(X)
    with pytest.raises(ValueError, match="memory_budget"):
        TorchNTK(cnn, input_shape=(1, 6, 6), memory_budget=100)(X)


def test_library_imports_without_torch():
    """krepes_lib and its kernel-only parts work with torch blocked; the neural tools say how
    to install the extra."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np, krepes_lib as kr, krepes_lib.neural as nn_\n"
        "X = np.random.default_rng(0).normal(size=(5, 3))\n"
        "assert kr.RBF(1.0)(X).shape == (5, 5) and kr.ReluNTK()(X).shape == (5, 5)\n"
        "try:\n    nn_.TorchNTK\nexcept ImportError as e:\n    print(e)\nelse:\n    raise SystemExit('no error')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "krepes-companion[neural]" in out.stdout and "torch==2.13.0" in out.stdout


@pytest.mark.skipif(not __import__("krepes_lib").gpu_available(), reason="needs CuPy and a GPU")
def test_cupy_in_cupy_out():
    import cupy

    cnn = tiny_cnn(8)
    X = np.random.default_rng(8).normal(size=(6, 36))
    k = TorchNTK(cnn, input_shape=(1, 6, 6))
    Kd = k(cupy.asarray(X), dtype="float64")
    assert isinstance(Kd, cupy.ndarray)
    assert rel(cupy.asnumpy(Kd), k(X, dtype="float64")) < 1e-10
    ks = TorchNTK(cnn, input_shape=(1, 6, 6), implementation="sketch", sketch_size=32)
    assert rel(cupy.asnumpy(ks(cupy.asarray(X), dtype="float64")), ks(X, dtype="float64")) < 1e-10


def test_feature_rows_are_computed_once_across_calls(monkeypatch):
    """k-means++ asks K(X, x_j) once per landmark: every row's features are computed once (the
    landmark rows are rows of X), and the numbers are those without the store."""
    cnn = tiny_cnn(9)
    X = np.random.default_rng(9).normal(size=(40, 36))
    ref = TorchNTK(cnn, input_shape=(1, 6, 6), cache_bytes=0)
    k = TorchNTK(cnn, input_shape=(1, 6, 6))
    refs = [ref(X, X[j:j + 1], dtype="float64") for j in range(3)]
    calls = []
    real = TorchNTK._chunk_features
    monkeypatch.setattr(TorchNTK, "_chunk_features",
                        lambda self, x, c, p: calls.append(x.shape[0]) or real(self, x, c, p))
    for j in range(3):
        assert rel(k(X, X[j:j + 1], dtype="float64"), refs[j]) < 1e-12
    assert sum(calls) == X.shape[0]  # each of the 40 rows once, in the first call
    calls.clear()
    k.diag(X, dtype="float64")
    assert calls == []


@pytest.mark.parametrize("on_device", [False, True])
def test_row_keys_see_every_bit(on_device):
    """A row's key changes when one of its bits changes (host BLAKE2b, and the device path's
    integer hash, run here on the CPU), and is the same for the same bits."""
    from krepes_lib.neural.features import row_keys

    for dt in (torch.float32, torch.float64):
        x = torch.randn(5, 7, generator=torch.Generator().manual_seed(0), dtype=dt)
        y = x.clone()
        y[3, 6] = torch.nextafter(y[3, 6], torch.tensor(float("inf"), dtype=dt))
        if on_device:
            kx, ky = _device_keys(x), _device_keys(y)
        else:
            kx, ky = row_keys(x), row_keys(y)
        assert kx == (_device_keys(x.clone()) if on_device else row_keys(x.clone()))
        assert kx[3] != ky[3] and kx[:3] == ky[:3]
        assert len(set(kx)) == 5


def _device_keys(x):
    """row_keys' GPU path on a CPU tensor (is_cuda forced)."""
    from krepes_lib.neural import features

    class Fake(torch.Tensor):
        @property
        def is_cuda(self):
            return True

    return features.row_keys(x.as_subclass(Fake))


def test_no_row_is_computed_twice_when_outputs_are_chunked(monkeypatch):
    """A budget too small to hold Y's features for all outputs splits the outputs instead of
    Y: every (row, output chunk) feature is computed exactly once, no cache needed."""
    cnn = tiny_cnn(12)
    rng = np.random.default_rng(12)
    X, Y = rng.normal(size=(20, 36)), rng.normal(size=(9, 36))
    k = TorchNTK(cnn, input_shape=(1, 6, 6), memory_budget=60_000, cache_bytes=0)
    plan = k._plan(torch.from_numpy(X), n_held=Y.shape[0])
    assert len(plan[-2]) > 1  # the outputs are chunked
    ref = TorchNTK(cnn, input_shape=(1, 6, 6))(X, Y, dtype="float64")
    calls = []
    real = TorchNTK._chunk_features
    monkeypatch.setattr(TorchNTK, "_chunk_features",
                        lambda self, x, c, p: calls.append(x.shape[0]) or real(self, x, c, p))
    assert rel(k(X, Y, dtype="float64"), ref) < 1e-12
    assert sum(calls) == len(plan[-2]) * (X.shape[0] + Y.shape[0])
