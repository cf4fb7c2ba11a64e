"""Lifted Gauss–Newton products, Newton steps, the audit step and preconditioned training."""
import numpy as np
import pytest

from krepes_lib import losses
from krepes_lib.ggn import (FalkonGradTransform, GGNGradTransform, GGNOperator, fit_newton_cg,
                            hvp_cost_ratio, newton_direction, one_step_newton)
from krepes_lib.kernels import RBF
from krepes_lib.model import NystromModel
from krepes_lib.nystrom import Nystrom
from krepes_lib.preconditioner import FalkonPreconditioner
from krepes_lib.train import fit, train_step

rng0 = np.random.default_rng(0)
X_ALL = rng0.normal(size=(60, 3))


def make_model(coords="raw", m=8, h=3, **kw):
    nys = Nystrom(RBF(sigma=1.5), X_ALL[:m], dtype="float64")
    return NystromModel(nys, h=h, coords=coords, **kw)


def batches(kind, n_batches=2, B=6, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        X = rng.normal(size=(B, 3))
        if kind in ("kpca", "kae"):
            out.append((X,))
        else:
            out.append((X + 0.1 * rng.normal(size=X.shape), X + 0.1 * rng.normal(size=X.shape)))
    return out


def dense(op):
    """The operator as a dense matrix, column by column (small problems only)."""
    size = op.flatten({k: op.model.params[k] for k in op.keys}).size
    return np.stack([op.flat_matvec(np.eye(size)[i]) for i in range(size)], axis=1)


def model_for(name, coords="raw"):
    return make_model(coords, decoder=(name == "kae"), predictor=(name == "byol"))


def loss_jacobian_reference(name, model, bs, eps=1e-6):
    """Jᵀ G_Z J / n_batches with J = ∂Z/∂θ by central finite differences of the model's forward
    pass and G_Z the loss-level GGN as a dense matrix (from ggn_matvec on unit directions)."""
    loss = losses.get(name)
    op = GGNOperator(model, loss, bs)
    keys = op.keys
    theta0 = op.flatten({k: model.params[k] for k in keys})
    total = 0.0
    for views in bs:
        Xcat = np.concatenate(views)
        K = model.nystrom.kernel(Xcat, model.nystrom.landmarks, dtype="float64")

        def Z_of(theta):
            p = op.unflatten(theta)
            A = p[keys[0]] if model.T is None else model.T @ p[keys[0]]
            return (K @ A + p["gamma"]).ravel()

        J = np.stack([(Z_of(theta0 + eps * e) - Z_of(theta0 - eps * e)) / (2 * eps)
                      for e in np.eye(theta0.size)], axis=1)
        F = Z_of(theta0).reshape(Xcat.shape[0], -1)
        nz = F.size
        cols = []
        for e in np.eye(nz):
            V = e.reshape(F.shape)
            if name == "kpca":
                U, _ = loss.ggn_matvec(F, model.A_tilde, model.nystrom.K_mm, V, np.zeros_like(model.A_tilde))
            else:
                B = F.shape[0] // 2
                if name == "byol":
                    T = model.forward(K, model.target["A_tilde"], model.target["gamma"])
                    P = model.params["P"]
                    Ua, Ub, _ = loss.ggn_matvec(F[:B], F[B:], T[:B], T[B:], P, V[:B], V[B:], np.zeros_like(P))
                else:
                    Ua, Ub = loss.ggn_matvec(F[:B], F[B:], V[:B], V[B:])
                U = np.concatenate([Ua, Ub])
            cols.append(U.ravel())
        G = np.stack(cols, axis=1)
        total = total + J.T @ G @ J
    return op, total / len(bs)


@pytest.mark.parametrize("coords", ["raw", "whitened"])
@pytest.mark.parametrize("name", ["barlow_twins", "vicreg", "simclr", "spectral_contrastive", "byol"])
def test_lifted_ggn_equals_JT_G_J(name, coords):
    model = model_for(name, coords)
    # move away from the PC init so that nothing is accidentally symmetric
    model.params[model._main] += 0.05 * np.random.default_rng(2).normal(size=model.params[model._main].shape)
    bs = batches(name)
    op, ref = loss_jacobian_reference(name, model, bs)
    H = dense(op)
    np.testing.assert_allclose(H, ref, rtol=1e-6, atol=1e-7 * np.abs(ref).max())


def test_rkhs_penalty_curvature_is_exact():
    """simple contrastive: the loss on Z is bilinear (GGN 0); the model penalty λ tr(ÃᵀK_mmÃ)
    is quadratic with Hessian 2λ K_mm — the operator must be exactly that."""
    model = make_model("raw")
    loss = losses.get("simple_contrastive", rkhs_penalty=0.1)
    op = GGNOperator(model, loss, batches("simple_contrastive"))
    H = dense(op)
    m, h = model.params["A_tilde"].shape
    ref = np.zeros_like(H)
    ref[:m * h, :m * h] = np.kron(2 * 0.1 * model.nystrom.K_mm, np.eye(h))
    np.testing.assert_allclose(H, ref, atol=1e-12)


@pytest.mark.parametrize("name", ["barlow_twins", "vicreg", "simclr", "spectral_contrastive",
                                  "byol", "kpca", "kae", "simple_contrastive"])
def test_operator_is_symmetric_psd(name):
    model = model_for(name, "whitened")
    op = GGNOperator(model, losses.get(name), batches(name), damping=0.0)
    rng = np.random.default_rng(5)
    size = op.flatten({k: model.params[k] for k in op.keys}).size
    for _ in range(5):
        u, v = rng.normal(size=size), rng.normal(size=size)
        Hu, Hv = op.flat_matvec(u), op.flat_matvec(v)
        assert abs(u @ Hv - v @ Hu) <= 1e-9 * (1 + abs(u @ Hv))
        assert v @ Hv >= -1e-10 * (v @ v)


def test_newton_step_solves_a_quadratic_loss():
    """KAE with a fixed decoder is quadratic in (Ã, γ): GGN = Hessian, so one Newton step
    (tiny damping, CG to convergence) lands on a stationary point: the gradient vanishes."""
    model = model_for("kae", "whitened")
    rng = np.random.default_rng(4)
    model.params["W"] += 0.3 * rng.normal(size=model.params["W"].shape)  # leave the optimum
    model.params["B_dec"] += 0.3 * rng.normal(size=model.params["B_dec"].shape)
    loss = losses.get("kae")
    bs = batches("kae", n_batches=3, B=10)
    op = GGNOperator(model, loss, bs, damping=1e-10)
    _, g0 = op.gradient()
    d, res = newton_direction(op, g0, rtol=1e-12, max_iter=500)
    for k in op.keys:
        model.params[k] += d[k]
    _, g1 = GGNOperator(model, loss, bs).gradient()
    norm = lambda g: np.sqrt(sum((v ** 2).sum() for v in g.values()))  # noqa: E731
    assert norm(g1) < 1e-6 * norm(g0), (norm(g0), norm(g1), res.stopped_by)


def test_newton_direction_matches_dense_solve():
    model = model_for("barlow_twins", "whitened")
    op = GGNOperator(model, losses.get("barlow_twins"), batches("barlow_twins"), damping=1e-2)
    _, g = op.gradient()
    d, res = newton_direction(op, g, rtol=1e-12, max_iter=400)
    ref = np.linalg.solve(dense(op), -op.flatten(g))
    np.testing.assert_allclose(op.flatten(d), ref, rtol=1e-7, atol=1e-10)


def test_one_step_audit_lowers_the_loss_and_leaves_the_model():
    model = model_for("barlow_twins", "whitened")
    before = model.A_tilde.copy()
    audit = one_step_newton(model, losses.get("barlow_twins"), batches("barlow_twins", 3, 12),
                            damping=1e-2)
    assert audit.delta_A.shape == before.shape
    assert audit.loss_after < audit.loss_before
    np.testing.assert_array_equal(model.A_tilde, before)  # apply=False keeps Ã₀
    applied = one_step_newton(model, losses.get("barlow_twins"), batches("barlow_twins", 3, 12),
                              damping=1e-2, apply=True)
    np.testing.assert_allclose(model.A_tilde, before + applied.delta_A, atol=1e-12)


def test_newton_cg_training_and_preconditioned_adam_reduce_the_loss():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(96, 3))
    noise = lambda Xb, r: Xb + 0.2 * r.normal(size=Xb.shape)  # noqa: E731  the augmentation
    held = (X[:48] + 0.2 * rng.normal(size=(48, 3)), X[:48] + 0.2 * rng.normal(size=(48, 3)))
    loss = losses.get("barlow_twins")

    def batch_loss(model):
        return float(train_step(model, loss, held)[0])

    m1 = model_for("barlow_twins", "whitened")
    start = batch_loss(m1)
    fit_newton_cg(m1, X, loss, epochs=2, batch_size=32, progress=False, augment=noise)
    assert batch_loss(m1) < start
    m2 = model_for("barlow_twins", "whitened")
    t = GGNGradTransform(cg_max_iter=5)
    fit(m2, X, loss, epochs=3, batch_size=32, progress=False, grad_transform=t, lr=1e-2, augment=noise)
    assert t.n_matvec > 0 and batch_loss(m2) < start
    m3 = model_for("barlow_twins", "raw")
    P = FalkonPreconditioner.from_nystrom(m3.nystrom, X, lam=1e-3)
    fit(m3, X, loss, epochs=3, batch_size=32, progress=False, grad_transform=FalkonGradTransform(P),
        lr=1e-2, augment=noise)
    assert batch_loss(m3) < start
    with pytest.raises(ValueError, match="coords='raw'"):
        FalkonGradTransform(P)(model_for("barlow_twins", "whitened"), loss, None, {"W": None})
    with pytest.raises(ValueError, match="auxiliary parameters"):
        fit_newton_cg(model_for("byol"), X, losses.get("byol"), 1, 32)


def test_hvp_cost_ratio_is_reported():
    model = model_for("simclr", "whitened")
    r = hvp_cost_ratio(model, losses.get("simclr"), batches("simclr")[0], repeats=2)
    assert r["grad_s"] > 0 and r["hvp_s"] > 0 and np.isfinite(r["ratio"])


def test_bad_damping():
    with pytest.raises(ValueError, match="damping"):
        GGNOperator(make_model(), losses.get("vicreg"), batches("vicreg"), damping=-1)


def test_auxiliary_parameters_are_required():
    with pytest.raises(ValueError, match="predictor=True"):
        GGNOperator(make_model(), losses.get("byol"), batches("byol"))
    with pytest.raises(ValueError, match="decoder=True"):
        GGNOperator(make_model(), losses.get("kae"), batches("kae"))
