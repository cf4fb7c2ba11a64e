"""Lifted Gauss–Newton products, Newton directions, the audit step, Newton-CG and preconditioned
training through the one objective interface (eq. (ggn-lift), (newton-step), (audit-step))."""
import numpy as np
import pytest

import krepes_lib as kr
from krepes_lib import losses
from krepes_lib.curvature import GGNOperator, hvp_cost_ratio, newton_direction
from krepes_lib.options import Options
from krepes_lib.preconditioner import FalkonPreconditioner
from krepes_lib.problem import BatchProblem

rng0 = np.random.default_rng(0)
X_ALL = rng0.normal(size=(60, 3))
ALL = ["kpca", "kae", "simple_contrastive", "spectral_contrastive", "simclr", "barlow_twins", "vicreg", "byol"]


def make_model(coords="raw", m=8, h=3):
    nys = kr.Nystrom(kr.RBF(sigma=1.5), X_ALL[:m], dtype="float64")
    return kr.NystromModel(nys, h=h, coords=coords)


def batches(views, n_batches=2, B=6, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        X = rng.normal(size=(B, 3))
        out.append((X,) if views == 1 else
                   (X + 0.1 * rng.normal(size=X.shape), X + 0.1 * rng.normal(size=X.shape)))
    return out


def setup(name, coords="raw", n_batches=2, B=6, perturb=0.05, **hyper):
    model = make_model(coords)
    obj = losses.make_objective(name, **hyper)
    state = obj.init_state(model)
    r = np.random.default_rng(2)
    for store in (model.params, state.params):  # leave the PC init / identity predictor
        for k in store:
            store[k] += perturb * r.normal(size=store[k].shape)
    problems = [BatchProblem(model, obj, state, b, 2**30) for b in batches(obj.views, n_batches, B)]
    return model, obj, state, problems


def dense(op):
    size = op.flatten({k: op._array(k) for k in op.keys}).size
    return np.stack([op.flat_matvec(np.eye(size)[i]) for i in range(size)], axis=1)


def reference_JtGJ(model, obj, state, problems, keys, eps=1e-6):
    """mean over batches of Jᵀ G J, J = ∂(Z, aux)/∂θ by central differences of the forward pass,
    G = the loss-level Gauss–Newton matrix on (Z, aux) from objective.ggn on unit directions."""
    op = GGNOperator(problems, keys=keys)
    theta0 = op.flatten({k: op._array(k) for k in keys})
    aux_keys = [k for k in keys if k in state.params]
    total = 0.0
    for p in problems:
        K = p.batch.K

        def out_of(theta):
            q = op.unflatten(theta)
            A = model.A_of(q[model._main])
            Z = (K @ A + q["gamma"]).ravel()
            return np.concatenate([Z] + [q[k].ravel() for k in aux_keys])

        J = np.stack([(out_of(theta0 + eps * e) - out_of(theta0 - eps * e)) / (2 * eps)
                      for e in np.eye(theta0.size)], axis=1)
        F = p.F
        nz = F.size
        sizes = [state.params[k].size for k in aux_keys]
        cols = []
        for e in np.eye(nz + sum(sizes)):
            VF = e[:nz].reshape(F.shape)
            Vaux, i = {}, nz
            for k, s in zip(aux_keys, sizes):
                Vaux[k] = e[i:i + s].reshape(state.params[k].shape)
                i += s
            UF, _, Uaux = obj.ggn(p.batch, F, p.A, state.params, p.K_mm, VF, np.zeros_like(p.A), Vaux)
            cols.append(np.concatenate([UF.ravel()] + [Uaux[k].ravel() for k in aux_keys]))
        G = np.stack(cols, axis=1)
        total = total + J.T @ G @ J
    return op, total / len(problems)


@pytest.mark.parametrize("coords", ["raw", "whitened"])
@pytest.mark.parametrize("name", ["barlow_twins", "vicreg", "simclr", "spectral_contrastive", "byol", "kae"])
def test_lifted_ggn_equals_JT_G_J_including_the_losses_own_arrays(name, coords):
    model, obj, state, problems = setup(name, coords)
    keys = problems[0].keys  # main, gamma and the loss's arrays (BYOL's P, KAE's B_dec)
    op, ref = reference_JtGJ(model, obj, state, problems, keys)
    H = dense(op)
    np.testing.assert_allclose(H, ref, rtol=1e-6, atol=1e-7 * np.abs(ref).max())


def test_rkhs_penalty_curvature_is_exact():
    """simple contrastive: bilinear loss on Z (GGN 0) plus λ tr(ÃᵀK_mmÃ) with Hessian 2λ K_mm."""
    model, obj, state, problems = setup("simple_contrastive", perturb=0.0, rkhs_penalty=0.1)
    op = GGNOperator(problems)
    H = dense(op)
    m, h = model.params["A_tilde"].shape
    ref = np.zeros_like(H)
    ref[:m * h, :m * h] = np.kron(2 * 0.1 * model.nystrom.K_mm, np.eye(h))
    np.testing.assert_allclose(H, ref, atol=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_operator_is_symmetric_psd(name):
    model, obj, state, problems = setup(name, "whitened")
    op = GGNOperator(problems, damping=0.0)
    rng = np.random.default_rng(5)
    size = op.flatten({k: op._array(k) for k in op.keys}).size
    for _ in range(5):
        u, v = rng.normal(size=size), rng.normal(size=size)
        Hu, Hv = op.flat_matvec(u), op.flat_matvec(v)
        assert abs(u @ Hv - v @ Hu) <= 1e-9 * (1 + abs(u @ Hv))
        assert v @ Hv >= -1e-10 * (v @ v)


@pytest.mark.parametrize("name", ALL)
def test_gradient_matches_finite_differences_of_the_value(name):
    """BatchProblem.value_and_grad (lifted, eq. (model-grad)) against central differences of
    value_at along random directions of every trainable array."""
    model, obj, state, problems = setup(name, "whitened")
    p = problems[0]
    val, g = p.value_and_grad()
    r = np.random.default_rng(7)
    for _ in range(3):
        V = {k: r.normal(size=g[k].shape) for k in p.keys}
        eps = 1e-5
        fd = (float(p.value_at(V, eps)) - float(p.value_at(dict(V), -eps))) / (2 * eps)
        an = sum(float((g[k] * V[k]).sum()) for k in p.keys)
        assert fd == pytest.approx(an, rel=1e-5, abs=1e-8)
    assert float(p.value_at({k: np.zeros_like(v) for k, v in g.items()}, 1.0)) == pytest.approx(float(val))


def test_newton_step_solves_a_quadratic_loss():
    """KAE is quadratic in (Ã, γ) for a fixed decoder: GGN = Hessian, so one Newton step on
    (main, γ) reaches a stationary point of those blocks."""
    model, obj, state, problems = setup("kae", "whitened", n_batches=3, B=10, perturb=0.3)
    keys = (model._main, "gamma")
    op = GGNOperator(problems, damping=1e-10, keys=keys)
    _, g0 = op.gradient()
    d, res = newton_direction(op, g0, Options(cg_rtol=1e-12, cg_max_iter=500))
    for k in keys:
        model.params[k] += d[k]
    fresh = [BatchProblem(model, obj, state, p.batch.views, 2**30) for p in problems]
    _, g1 = GGNOperator(fresh, keys=keys).gradient()
    norm = lambda g: np.sqrt(sum((v ** 2).sum() for v in g.values()))  # noqa: E731
    assert norm(g1) < 1e-6 * norm(g0), (norm(g0), norm(g1), res.stopped_by)


def test_newton_direction_matches_dense_solve():
    model, obj, state, problems = setup("barlow_twins", "whitened")
    op = GGNOperator(problems, damping=1e-2)
    _, g = op.gradient()
    d, res = newton_direction(op, g, Options(cg_rtol=1e-10, cg_max_iter=400))
    ref = np.linalg.solve(dense(op), -op.flatten(g))
    np.testing.assert_allclose(op.flatten(d), ref, rtol=1e-6, atol=1e-9)


def test_dropping_the_kernel_block_gives_the_same_products():
    model, obj, state, problems = setup("byol", "raw")
    lean = [BatchProblem(model, obj, state, p.batch.views, 2**30, keep_kernel=False) for p in problems]
    V = {k: np.random.default_rng(1).normal(size=problems[0].value_and_grad()[1][k].shape)
         for k in problems[0].keys}
    for a, b in zip(problems, lean):
        for k, u in a.ggn_matvec(V).items():
            np.testing.assert_allclose(b.ggn_matvec(V)[k], u, rtol=1e-12)
        assert float(a.value_at(V, 0.3)) == pytest.approx(float(b.value_at(V, 0.3)), rel=1e-12)


def test_audit_lowers_the_loss_and_leaves_the_model():
    model = make_model("whitened")
    before = model.A_tilde.copy()
    views = batches(2, 3, 12)
    aud = kr.audit(model, "barlow_twins", None, batches=views, damping=1e-2,
                   options=Options(cg_rtol=1e-10, cg_max_iter=500))
    assert aud.delta_A.shape == before.shape and aud.loss_after < aud.loss_before and not aud.loss_rose
    np.testing.assert_array_equal(model.A_tilde, before)
    np.testing.assert_allclose(aud.A, before + aud.delta_A)
    # the step is the Newton direction of the operator on (main, γ)
    obj = losses.make_objective("barlow_twins")
    st = obj.init_state(model)
    op = GGNOperator([BatchProblem(model, obj, st, b, 2**30) for b in views], damping=1e-2,
                     keys=(model._main, "gamma"))
    _, g = op.gradient()
    ref = np.linalg.solve(dense(op), -op.flatten(g))
    np.testing.assert_allclose(op.flatten({model._main: np.linalg.lstsq(model.T, aud.delta_A, rcond=None)[0],
                                           "gamma": aud.delta_gamma}), ref, rtol=1e-5, atol=1e-8)


def test_newton_cg_and_preconditioned_adam_reduce_the_loss_for_every_loss_kind():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(96, 3))
    noise = lambda Xb, r: Xb + 0.2 * r.normal(size=Xb.shape)  # noqa: E731  the augmentation
    held = (X[:48] + 0.2 * rng.normal(size=(48, 3)), X[:48] + 0.2 * rng.normal(size=(48, 3)))

    def held_loss(model, name, state):
        obj = losses.make_objective(name)
        return float(BatchProblem(model, obj, state, held[:obj.views], 2**30).value_and_grad()[0])

    for name in ("barlow_twins", "kae", "vicreg"):
        m1 = make_model("whitened")
        obj = losses.make_objective(name)
        start = held_loss(m1, name, obj.init_state(m1))
        h = kr.fit(m1, X, name, epochs=2, batch_size=32, progress=False, augment=noise,
                   options=Options(optimizer="newton_cg", damping=1e-1, cg_max_iter=20))
        assert held_loss(m1, name, h.state) < start, name
    m2 = make_model("whitened")
    pre = kr.GGNPrecond(Options(damping=1e-2, cg_max_iter=5))
    h2 = kr.fit(m2, X, "barlow_twins", epochs=3, batch_size=32, progress=False, preconditioner=pre,
                lr=1e-2, augment=noise)
    assert pre.n_matvec > 0 and held_loss(m2, "barlow_twins", h2.state) < start
    m3 = make_model("raw")
    P = kr.FalkonPrecond(FalkonPreconditioner.from_nystrom(m3.nystrom, X, lam=1e-3))
    h3 = kr.fit(m3, X, "barlow_twins", epochs=3, batch_size=32, progress=False, preconditioner=P,
                lr=1e-2, augment=noise)
    assert held_loss(m3, "barlow_twins", h3.state) < start
    with pytest.raises(ValueError, match="coords='raw'"):
        kr.fit(make_model("whitened"), X, "barlow_twins", epochs=1, batch_size=32, progress=False,
               preconditioner=P)


def test_a_newton_cg_step_lowers_its_batch_objective_with_the_losses_own_arrays():
    """BYOL's target moves after every step, so a held-out loss need not fall; the step itself must
    lower the batch objective (Armijo) and move the predictor P too."""
    from krepes_lib.optim import NewtonCG

    model, obj, state, problems = setup("byol", "whitened")
    p = problems[0]
    f0 = float(p.value_and_grad()[0])
    P0 = state.params["P"].copy()
    params = {**model.params, **state.params}
    opt = NewtonCG(params, Options(damping=1e-2, cg_max_iter=30))
    opt.step(p, params)
    f1 = float(BatchProblem(model, obj, state, p.batch.views, 2**30).value_and_grad()[0])
    assert f1 < f0 and opt.rejected == 0 and not np.allclose(state.params["P"], P0)


def test_falkon_preconditioned_cg_gives_the_same_direction():
    model, obj, state, problems = setup("barlow_twins", "raw")
    op = GGNOperator(problems, damping=1e-2, keys=(model._main, "gamma"))
    _, g = op.gradient()
    P = kr.FalkonPrecond(FalkonPreconditioner.from_nystrom(model.nystrom, X_ALL, lam=1e-2))
    opts = Options(cg_rtol=1e-10, cg_max_iter=400)
    d0, r0 = newton_direction(op, g, opts)
    d1, r1 = newton_direction(op, g, opts, preconditioner=P)
    np.testing.assert_allclose(op.flatten(d1), op.flatten(d0), rtol=1e-6, atol=1e-9)


def test_hvp_cost_ratio_is_reported():
    model, obj, state, problems = setup("simclr", "whitened")
    r = hvp_cost_ratio(problems[0], repeats=2)
    assert r["grad_s"] > 0 and r["hvp_s"] > 0 and np.isfinite(r["ratio"])


def test_bad_damping_and_keys():
    model, obj, state, problems = setup("vicreg")
    with pytest.raises(ValueError, match="damping"):
        GGNOperator(problems, damping=-1)
    with pytest.raises(ValueError, match="not trainable"):
        GGNOperator(problems, keys=("P",))
    with pytest.raises(ValueError, match="damping"):
        Options(damping=-1.0)


def test_a_streamed_audit_equals_the_kept_one():
    """With a memory budget too small to keep the batches, audit regenerates the same views at
    every product (iter_view_batches) and keeps nothing: same step, same losses."""
    X = np.random.default_rng(8).normal(size=(400, 3))
    model = make_model("raw")
    kept = kr.audit(model, "vicreg", X, n_batches=6, batch_size=32, seed=3,
                    options=Options(cg_rtol=1e-10, cg_max_iter=300))
    lean = kr.audit(model, "vicreg", X, n_batches=6, batch_size=32, seed=3,
                    options=Options(cg_rtol=1e-10, cg_max_iter=300, memory_budget=64 * 8 * 40))
    np.testing.assert_allclose(lean.delta_A, kept.delta_A, rtol=1e-7, atol=1e-10)
    assert lean.loss_after == pytest.approx(kept.loss_after, rel=1e-10)
    assert lean.loss_before == pytest.approx(kept.loss_before, rel=1e-12)
