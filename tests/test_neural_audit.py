"""The v3 pipeline on a user's own torch network: eNTK → k-means++ landmarks in kernel space →
Nyström + PC init → one GGN-Newton step by CG → influence."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import krepes_lib as kr  # noqa: E402
from krepes_lib.neural import TorchNTK, audit_network  # noqa: E402


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))


def _data():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 6)) * 2
    y = rng.integers(0, 3, size=120)
    return (centres[y] + rng.normal(size=(120, 6))).astype(np.float32), y


def test_audit_of_a_torch_network_lowers_its_loss():
    X, _ = _data()
    a = audit_network(_net(), X, "barlow_twins", h=4, augment="table", damping=1e-2, n_batches=2,
                      batch_size=64, seed=0)
    assert a.model.m == int(np.ceil(np.sqrt(len(X))))
    assert isinstance(a.kernel, TorchNTK)
    assert np.isfinite(a.loss_before) and a.loss_after < a.loss_before
    # influence IS(x̃_l, x_t) = |k(x_t, x̃_l)|·‖ΔÃ_l‖ read through the network's eNTK, eq. (int-is)
    top = a.top_influential(X[:5], K=3)
    IS = np.abs(a.kernel(X[:5], a.landmarks)) * np.linalg.norm(a.delta_A, axis=1)[None, :]
    np.testing.assert_array_equal(np.sort(top.indices, axis=1), np.sort(np.argsort(-IS, axis=1)[:, :3], axis=1))
    np.testing.assert_allclose(top.scores, -np.sort(-IS, axis=1)[:, :3], rtol=1e-5)
    assert a.embed(X).shape == (120, a.model.h)


def test_the_steps_by_hand_match_audit_network():
    """The README's explicit steps give the same audit as the one-call helper."""
    X, _ = _data()
    kernel = TorchNTK(_net(), implementation="sketch", sketch_size=64, seed=0)
    lm = kr.select_landmarks(X, m="sqrt", method="kmeans++", kernel=kernel, kernel_space=True, seed=0)
    model = kr.NystromModel(kr.Nystrom(kernel, lm), h=4)
    a = kr.audit(model, "simclr", X, augment="table", damping=1e-2, n_batches=2, batch_size=64, seed=0)
    b = audit_network(kernel, X, "simclr", h=4, augment="table", damping=1e-2, n_batches=2,
                      batch_size=64, seed=0)
    np.testing.assert_array_equal(a.model.nystrom.landmark_indices, b.model.nystrom.landmark_indices)
    np.testing.assert_allclose(a.delta_A, b.delta_A, rtol=1e-5, atol=1e-7)
    assert a.loss_after < a.loss_before


def test_leverage_landmarks_and_training_on_the_entk():
    """The eNTK is a kernel like any other: ridge-leverage landmarks and kr.fit run on it."""
    X, _ = _data()
    kernel = TorchNTK(_net(), implementation="sketch", sketch_size=32, seed=1)
    lm = kr.select_landmarks(X, m=10, method="leverage", kernel=kernel, seed=0)
    assert len(set(lm.indices.tolist())) == 10
    model = kr.NystromModel(kr.Nystrom(kernel, lm), h=4)
    hist = kr.fit(model, X, "vicreg", epochs=2, batch_size=40, augment="table", seed=0, progress=False)
    assert len(hist.loss) >= 2 and np.isfinite(hist.loss).all()
