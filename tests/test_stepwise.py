"""Tests of krepes_lib.stepwise: the covariance Barlow Twins loss, the contrastive operator
and the closed-form stepwise prediction (book: stepwise.md, eqs. (sw-*))."""
import numpy as np
import pytest

import krepes_lib as kr
from krepes_lib.studies import stepwise as sw
from krepes_lib.augment import identity
from krepes_lib.kernels import RBF
from krepes_lib.model import NystromModel
from krepes_lib.nystrom import Nystrom


def _views(seed=0, B=7, h=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, h)), rng.standard_normal((B, h))


@pytest.mark.parametrize("lam", [1.0, 0.3])
def test_loss_gradient_matches_finite_differences(lam):
    loss = sw.CovarianceBarlowTwins(lambda_off=lam)
    Za, Zb = _views()
    _, (dA, dB) = loss.value_and_grad(Za, Zb)
    eps = 1e-6
    for Z, dZ, which in ((Za, dA, 0), (Zb, dB, 1)):
        num = np.zeros_like(Z)
        for idx in np.ndindex(Z.shape):
            P, M = Z.copy(), Z.copy()
            P[idx] += eps
            M[idx] -= eps
            args_p = (P, Zb) if which == 0 else (Za, P)
            args_m = (M, Zb) if which == 0 else (Za, M)
            num[idx] = (loss.value(*args_p) - loss.value(*args_m)) / (2 * eps)
        np.testing.assert_allclose(dZ, num, rtol=1e-6, atol=1e-8)


def test_loss_value_is_frobenius_of_centred_crosscov():
    Za, Zb = _views(1)
    B = Za.shape[0]
    Ca = Za - Za.mean(0)
    Cb = Zb - Zb.mean(0)
    C = (Ca.T @ Cb + Cb.T @ Ca) / (2 * B)
    assert np.isclose(sw.CovarianceBarlowTwins().value(Za, Zb), ((C - np.eye(3)) ** 2).sum())


def test_ggn_matvec_equals_explicit_jacobian_product():
    lam = 0.4
    loss = sw.CovarianceBarlowTwins(lambda_off=lam)
    Za, Zb = _views(2, B=5, h=2)
    B, h = Za.shape
    w = lam + (1 - lam) * np.eye(h)

    def resid(z):
        a, b = z[:B * h].reshape(B, h), z[B * h:].reshape(B, h)
        a, b = a - a.mean(0), b - b.mean(0)
        C = (a.T @ b + b.T @ a) / (2 * B)
        return (np.sqrt(w) * (C - np.eye(h))).ravel()

    z0 = np.concatenate([Za.ravel(), Zb.ravel()])
    J = np.zeros((h * h, z0.size))
    for i in range(z0.size):
        e = np.zeros_like(z0)
        e[i] = 1e-6
        J[:, i] = (resid(z0 + e) - resid(z0 - e)) / 2e-6
    v = np.random.default_rng(3).standard_normal(z0.size)
    Ua, Ub = loss.ggn_matvec(Za, Zb, v[:B * h].reshape(B, h), v[B * h:].reshape(B, h))
    np.testing.assert_allclose(np.concatenate([Ua.ravel(), Ub.ravel()]), 2 * J.T @ (J @ v), rtol=1e-5, atol=1e-8)


def _tiny_nystrom(n=40, m=8, d=3, seed=0):
    X = np.random.default_rng(seed).standard_normal((n, d))
    return X, Nystrom(RBF(sigma=1.5), X[:m], dtype=np.float64)


def test_contrastive_operator_without_augmentation_is_centred_gram():
    X, nys = _tiny_nystrom()
    K = RBF(sigma=1.5)(X, X[:8])
    Kc = K - K.mean(0)
    G = sw.contrastive_operator(nys, X, identity, n_draws=2)
    np.testing.assert_allclose(G, Kc.T @ Kc / X.shape[0], rtol=1e-5, atol=1e-9)


def test_one_fit_step_is_the_linearised_update():
    """fit with SGD, full batch, no augmentation: Ã ← Ã − 4ηΓÃ(ÃᵀΓÃ − I), eq. (sw-flow)."""
    X, nys = _tiny_nystrom()
    model = sw.scale_init(NystromModel(nys, h=2, coords="raw", init="random", seed=1), 0.5)
    A0 = model.A_tilde.copy()
    G = sw.contrastive_operator(nys, X, identity, n_draws=1)
    lr = 0.3
    from krepes_lib.train import fit

    fit(model, X, sw.CovarianceBarlowTwins(), epochs=1, batch_size=X.shape[0], optimizer="sgd",
        lr=lr, augment=None, progress=False)
    expect = A0 - 4 * lr * G @ A0 @ (A0.T @ G @ A0 - np.eye(2))
    np.testing.assert_allclose(model.A_tilde, expect, rtol=1e-6, atol=1e-8)  # kernel rows: ‖x‖²+‖y‖²−2xᵀy rounding
    np.testing.assert_allclose(model.gamma, 0.0, atol=1e-12)  # centred views: γ gets no gradient


def _spectrum_gamma(eigs, m=6, seed=0):
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((m, m)))
    lam = np.concatenate([eigs, np.full(m - len(eigs), 0.01)])
    return Q @ np.diag(lam) @ Q.T, Q


def test_closed_form_matches_gradient_descent_from_aligned_init():
    G, Q = _spectrum_gamma([1.0, 0.5, 0.25])
    lr = 0.0025  # 8ηλ₁ = 0.02: close to the gradient flow
    c0 = np.array([1e-4, 1e-4, 1e-4])
    pred = sw.predict(G, 3, lr, c0=c0)
    A0 = pred.U * np.sqrt(c0 / pred.eigvals)
    t, eig = sw.simulate(G, A0, lr, steps=int(1.6 * pred.step_times[-1]))
    np.testing.assert_allclose(sw.step_times(t, eig, final=1.0), pred.step_times, rtol=0.01)
    assert np.abs(eig - pred.curves(t)).max() < 0.01
    assert np.allclose(eig[-1], 1.0, atol=0.02)  # eq. (sw-final): C → I


def test_closed_form_predicts_steps_from_small_random_init():
    G, _ = _spectrum_gamma([1.0, 0.4, 0.15])
    lr = 0.01
    A0 = 1e-4 * np.random.default_rng(5).standard_normal((6, 3))
    pred = sw.predict(G, 3, lr, A0=A0)
    assert np.all(np.diff(pred.step_times) > 0)
    t, eig = sw.simulate(G, A0, lr, steps=int(1.5 * pred.step_times[-1]))
    np.testing.assert_allclose(sw.step_times(t, eig, final=1.0), pred.step_times, rtol=0.06)
    # final representation: span of U_h (up to rotation) — C = ÃᵀΓÃ = I and Ã ∈ span(U_3)
    A = A0.copy()
    for _ in range(int(1.5 * pred.step_times[-1])):
        A -= 4 * lr * G @ A @ (A.T @ G @ A - np.eye(3))
    from scipy.linalg import subspace_angles

    assert np.max(subspace_angles(A, pred.A_final)) < 1e-3


def test_step_times_of_a_logistic_curve():
    t = np.arange(0, 200.0)
    rate, c0 = 0.1, 1e-3
    e = np.exp(rate * t)
    curve = (c0 * e / (1 + c0 * (e - 1)))[:, None]
    assert np.isclose(sw.step_times(t, curve, final=1.0)[0], np.log((1 - c0) / c0) / rate, atol=0.05)


def test_threshold_claim_is_a_claim_for_the_engine():
    c = sw.threshold_claim("angle small", [0.1, 0.12, 0.09, 0.11], 0.3, "°", "paper")
    assert c.b == 0.3 and "per seed 0.1, 0.12, 0.09, 0.11°" in c.ours and "threshold (0.3°)" in c.what
    below = kr.claims.Paired("less")
    assert kr.claims.decide([c], below)[0]["verdict"] == "holds"
    assert kr.claims.decide([sw.threshold_claim("x", [0.5, 0.1, 0.6], 0.3, "", "p")], below)[0]["verdict"] == "inconclusive"


def test_errors_name_the_parameter():
    G, _ = _spectrum_gamma([1.0, 0.5])
    with pytest.raises(ValueError, match="h must be"):
        sw.predict(G, 7, 0.1, c0=1e-3)
    with pytest.raises(ValueError, match="symmetric"):
        sw.predict(np.triu(G), 2, 0.1, c0=1e-3)
    with pytest.raises(ValueError, match="exactly one of A0"):
        sw.predict(G, 2, 0.1)
    with pytest.raises(ValueError, match="scale_init"):
        sw.predict(G, 2, 0.1, A0=np.ones((6, 2)) * 10)
    X, nys = _tiny_nystrom()
    with pytest.raises(ValueError, match="scale"):
        sw.scale_init(NystromModel(nys, h=2, coords="raw", init="random"), -1)
    with pytest.raises(ValueError, match="lambda_off"):
        sw.CovarianceBarlowTwins(lambda_off=-1)


def test_mode_overlaps():
    G, Q = _spectrum_gamma([1.0, 0.5, 0.25, 0.1, 0.05])  # eigenvectors: columns of Q (in this order)
    ov = sw.mode_overlaps(Q[:, [0, 2]] @ np.diag([2.0, 0.1]), G, 4)
    np.testing.assert_allclose(ov, [1, 0, 1, 0], atol=1e-10)
    mixed = (0.8 * Q[:, 1] + 0.6 * Q[:, 3])[:, None]
    np.testing.assert_allclose(sw.mode_overlaps(mixed, G, 4), [0, 0.8, 0, 0.6], atol=1e-10)
