"""Empirical NTK: exact per-layer contraction vs an explicit finite-difference Jacobian,
and the random-projection estimate vs the exact kernel."""
import numpy as np
import pytest

from entk_reference import MLP, EmpiricalNTK, RandomProjectionNTK
from krepes_lib.backend import to_host


def fd_jacobian(mlp, X, eps=1e-6):
    """J of shape (n, O, P): central finite differences over every weight and bias."""
    params = [p for W, b in zip(mlp.weights, mlp.biases) for p in (W, b)]
    cols = []
    for p in params:
        flat = p.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            up = mlp.forward(X)
            flat[i] = old - eps
            down = mlp.forward(X)
            flat[i] = old
            cols.append((up - down) / (2 * eps))
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_entk_equals_explicit_jacobian(activation, reduction):
    mlp = MLP.init([3, 5, 4, 2], seed=1, activation=activation)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(6, 3)), rng.normal(size=(4, 3))
    JX, JY = fd_jacobian(mlp, X), fd_jacobian(mlp, Y)
    ref = np.einsum("iop,jop->ij", JX, JY)
    if reduction == "mean":
        ref /= mlp.n_outputs
    k = EmpiricalNTK(mlp=mlp, output_reduction=reduction)
    np.testing.assert_allclose(k(X, Y, dtype="float64"), ref, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(k.diag(X, dtype="float64"), np.einsum("iop,iop->i", JX, JX)
                               / (1 if reduction == "sum" else mlp.n_outputs), rtol=1e-7)


def test_jvp_equals_jacobian_times_direction():
    mlp = MLP.init([3, 6, 2], seed=2)
    X = np.random.default_rng(1).normal(size=(5, 3))
    k = RandomProjectionNTK(mlp=mlp, n_projections=3, seed=0)
    J = fd_jacobian(mlp, X)  # (n, O, P)
    v = np.concatenate([np.concatenate([V[0].ravel(), vb[0]]) for V, vb in k.tangents])
    np.testing.assert_allclose(mlp.jvp(X, k.tangents)[:, 0, :], J @ v, rtol=1e-6, atol=1e-8)


def test_random_projection_converges_to_exact():
    mlp = MLP.init([4, 16, 3], seed=0)
    X = np.random.default_rng(3).normal(size=(8, 4))
    exact = EmpiricalNTK(mlp=mlp)(X, dtype="float64")
    rough = RandomProjectionNTK(mlp=mlp, n_projections=50, seed=1)(X, dtype="float64")
    fine = RandomProjectionNTK(mlp=mlp, n_projections=5000, seed=1)(X, dtype="float64")
    err = lambda K: np.linalg.norm(K - exact) / np.linalg.norm(exact)  # noqa: E731
    assert err(fine) < 0.05
    assert err(fine) < err(rough)


def test_entk_is_a_blockwise_kernel():
    mlp = MLP.init([4, 8, 2], seed=0)
    rng = np.random.default_rng(0)
    X, L, A = rng.normal(size=(50, 4)), rng.normal(size=(7, 4)), rng.normal(size=(7, 2))
    k = EmpiricalNTK(mlp=mlp)
    np.testing.assert_allclose(k.matmul(X, L, A, rows=6), k(X, L, dtype="float64") @ A, rtol=1e-10)
    w = np.linalg.eigvalsh(to_host(k(X, dtype="float64")))
    assert w.min() > -1e-8 * w.max()  # a Gram matrix: PSD


def test_errors():
    with pytest.raises(ValueError, match="mlp=MLP"):
        EmpiricalNTK()
    with pytest.raises(ValueError, match="activation"):
        MLP.init([2, 2], activation="gelu")
    with pytest.raises(ValueError, match="layer 1"):
        MLP([np.ones((3, 2)), np.ones((2, 4))], [np.ones(3), np.ones(2)])
