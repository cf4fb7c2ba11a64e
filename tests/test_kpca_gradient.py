"""Tests of krepes_lib.kpca_gradient (book: kpca_gradient.md, eqs. (kg-*))."""
import numpy as np
import pytest

import krepes_lib as kr
from krepes_lib.studies import kpca_gradient as kg
from krepes_lib.kernels import RBF
from krepes_lib.model import NystromModel
from krepes_lib.nystrom import Nystrom


def _features(n=50, r=6, seed=0):
    rng = np.random.default_rng(seed)
    scales = np.array([3.0, 2.0, 1.0, 0.3, 0.2, 0.1])[:r]
    return rng.standard_normal((n, r)) * scales + 0.5


@pytest.mark.parametrize("finite", [True, False])
def test_huber_gradient_matches_finite_differences(finite):
    Phi = _features()
    rng = np.random.default_rng(1)
    W = 0.5 * rng.standard_normal((6, 2))
    mu = Phi.mean(0) + 0.1 * rng.standard_normal(6)
    Y = Phi - mu
    delta = np.median(np.linalg.norm(Y - Y @ W @ W.T, axis=1)) if finite else np.inf
    _, gW, gmu, w = kg.huber_value_and_grad(Phi, W, mu, delta)
    if np.isfinite(delta):  # both branches of the Huber function are exercised
        assert (w < 1).any() and (w == 1).any()
    eps = 1e-6
    num = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        P, M = W.copy(), W.copy()
        P[idx] += eps
        M[idx] -= eps
        num[idx] = (kg.huber_value(Phi, P, mu, delta) - kg.huber_value(Phi, M, mu, delta)) / (2 * eps)
    np.testing.assert_allclose(gW, num, rtol=1e-5, atol=1e-8)
    num_mu = np.zeros_like(mu)
    for i in range(mu.size):
        P, M = mu.copy(), mu.copy()
        P[i] += eps
        M[i] -= eps
        num_mu[i] = (kg.huber_value(Phi, W, P, delta) - kg.huber_value(Phi, W, M, delta)) / (2 * eps)
    np.testing.assert_allclose(gmu, num_mu, rtol=1e-5, atol=1e-8)


def test_huber_value_branches():
    Phi = np.array([[3.0, 0.0], [0.0, 0.5]])
    W = np.zeros((2, 1))
    mu = np.zeros(2)
    # residual norms 3 and 0.5, δ = 1: H = 1·(3 − 0.5) and 0.5²/2
    assert np.isclose(kg.huber_value(Phi, W, mu, 1.0), (2.5 + 0.125) / 2)
    assert np.isclose(kg.huber_value(Phi, W, mu, np.inf), (4.5 + 0.125) / 2)


def test_plain_gradient_finds_the_principal_subspace():
    Phi = _features(n=200)
    res = kg.fit_robust(Phi, 2, np.inf, steps=400)
    Pc = Phi - Phi.mean(0)
    _, V = np.linalg.eigh(Pc.T @ Pc)
    assert kg.subspace_angle(Phi @ res.W, Phi @ V[:, ::-1][:, :2]) < 1.0
    np.testing.assert_allclose(res.W.T @ res.W, np.eye(2), atol=1e-3)  # minimisers are orthonormal
    np.testing.assert_allclose(res.mu, Phi.mean(0), atol=1e-3)


def test_huber_resists_gross_outliers_where_the_squared_loss_does_not():
    # 30 dimensions, two strong directions; 10 gross outliers in random directions: the
    # squared loss weighs each by ‖y‖²/n along its direction (≈ 15 > λ₁ = 9), Huber by δ‖y‖/n (≈ 1 < λ₂ = 4).
    rng = np.random.default_rng(3)
    clean = rng.standard_normal((190, 30)) * np.r_[3.0, 2.0, np.full(28, 0.3)] + 0.5
    out = clean[:10] + 10.0 * rng.standard_normal((10, 30))
    Phi = np.vstack([clean, out])
    Pc = clean - clean.mean(0)
    _, V = np.linalg.eigh(Pc.T @ Pc)
    ref = clean @ V[:, ::-1][:, :2]
    delta = np.median(np.linalg.norm(Phi - np.median(Phi, 0), axis=1))
    plain = kg.fit_robust(Phi, 2, np.inf, steps=300)
    robust = kg.fit_robust(Phi, 2, delta, steps=300)
    a_plain, a_robust = kg.subspace_angle(clean @ plain.W, ref), kg.subspace_angle(clean @ robust.W, ref)
    assert a_robust < 5.0 < a_plain
    assert robust.weights[190:].max() < robust.weights[:190].mean()


def test_exact_kpca_matches_naive_eigendecomposition():
    X = np.random.default_rng(0).standard_normal((40, 3))
    k = RBF(sigma=1.3)
    K = np.exp(-((X[:, None, :] - X[None, :, :]) ** 2).sum(-1) / (2 * 1.3 ** 2))
    H = np.eye(40) - 1.0 / 40
    np.testing.assert_allclose(kg.centred_gram(k, X), H @ K @ H, atol=1e-6)
    w, V = np.linalg.eigh(H @ K @ H)
    scores, (t_gram, t_eig) = kg.exact_kpca(k, X, 3)
    np.testing.assert_allclose(np.abs(scores), np.abs(V[:, ::-1][:, :3] * np.sqrt(w[::-1][:3])), atol=1e-5)
    assert t_gram >= 0 and t_eig >= 0


def test_kpca_loss_by_fit_reaches_exact_kpca_with_all_points_as_landmarks():
    X = np.random.default_rng(1).standard_normal((60, 2)) * np.array([2.0, 0.5])
    k = RBF(sigma=2.0)
    ref, _ = kg.exact_kpca(k, X, 2)
    model = NystromModel(Nystrom(k, X, dtype=np.float64), h=2, init="random", seed=0)
    sec, ang = kg.kpca_fit_trace(model, X, ref, epochs=300, batch_size=60, lr=0.05)
    assert ang[0] > 10 and ang[-1] < 1.0
    assert np.all(np.diff(sec) >= 0) and len(sec) == len(ang) == 301
    assert kg.time_to_accuracy(sec, ang, 1.0) <= sec[-1]
    assert np.isnan(kg.time_to_accuracy(sec, ang, -1.0))


def test_errors_name_the_parameter():
    Phi = _features()
    with pytest.raises(ValueError, match="delta"):
        kg.huber_value(Phi, np.zeros((6, 2)), np.zeros(6), 0.0)
    with pytest.raises(ValueError, match="need Phi"):
        kg.huber_value(Phi, np.zeros((5, 2)), np.zeros(6), 1.0)
    with pytest.raises(ValueError, match="h must be"):
        kg.fit_robust(Phi, 9, 1.0)
    with pytest.raises(ValueError, match="h must be"):
        kg.exact_kpca(RBF(sigma=1.0), Phi, 50)


def test_nystrom_kpca_with_all_points_is_exact_kpca():
    X = np.random.default_rng(2).standard_normal((50, 3))
    k = RBF(sigma=1.5)
    ref, _ = kg.exact_kpca(k, X, 3)
    scores = kg.nystrom_kpca(Nystrom(k, X, dtype=np.float64), X, 3)
    assert kg.subspace_angle(scores, ref) < 1e-3


def test_plant_outliers():
    X = np.zeros((100, 4))
    Xa, is_out = kg.plant_outliers(X, 0.05, 2.0, seed=0)
    assert Xa.shape == (105, 4) and is_out.sum() == 5 and not is_out[:100].any()
    assert np.allclose(Xa[:100], 0) and Xa[100:].std() > 1.0
    with pytest.raises(ValueError, match="frac"):
        kg.plant_outliers(X, 1.5, 1.0)


def test_time_claim_rule():
    rule = kr.claims.Paired("less", missing="fails")

    def verdict(tm, tr):
        return kr.claims.decide([kg.time_claim("c", tm, tr, "p")], rule)[0]["verdict"]
    assert verdict([1.0, 1.1, 0.9, 1.0], [3.0, 3.2, 2.9, 3.1]) == "holds"
    assert verdict([1.0, np.nan, 0.9], [3.0, 3.2, 2.9]) == "does not hold"  # a seed never reached the target
    assert verdict([4.0, 4.1, 3.9], [3.0, 3.2, 2.9]) == "does not hold"
    assert "never" in kg.time_claim("c", [1.0, np.nan], [3.0, 3.2], "p").ours
