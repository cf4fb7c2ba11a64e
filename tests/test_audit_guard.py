"""The guarded audit step (eq. (audit-accept)), multi-shift CG (eq. (cg-shift)) and the library's
warnings: a step that raises its own loss is caught, the reported numbers are recomputed from
scratch, an unconverged CG is said out loud."""
import warnings

import numpy as np
import pytest

import krepes_lib as kr
from krepes_lib import losses
from krepes_lib.cg import conjugate_gradient, conjugate_gradient_shifted
from krepes_lib.curvature import GGNOperator, damped_directions
from krepes_lib.options import Options
from krepes_lib.problem import BatchProblem

from test_curvature import dense, reference_JtGJ

TIGHT = dict(cg_rtol=1e-10, cg_max_iter=500)


def collinear_simclr(seed=0, sigma_mult=3.0):
    """A miniature of the MNIST × SimCLR audit of issue 18: an RBF of 3× the median bandwidth
    makes the PC start nearly collinear (mean pairwise cosine ≈ 0.96), SimCLR's loss is then
    near log(2B − 1), and the Gauss–Newton step at δ = 1e-2 overshoots into collapse."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(64, 3))
    nys = kr.Nystrom(kr.RBF(sigma=sigma_mult * kr.median_sigma(X)), X[:10], dtype="float64")
    model = kr.NystromModel(nys, h=3, coords="raw")
    views = [(Xb + 0.05 * rng.normal(size=Xb.shape), Xb + 0.05 * rng.normal(size=Xb.shape))
             for Xb in (X[:32], X[32:])]
    return model, views


def operator(model, loss, views, damping):
    obj = losses.make_objective(loss)
    st = obj.init_state(model)
    op = GGNOperator([BatchProblem(model, obj, st, b, 2**30) for b in views], damping=damping,
                     keys=(model._main, "gamma"))
    L0, g = op.gradient()
    return op, float(L0), g, obj, st


def loss_from_scratch(model, obj, views, delta_A, delta_gamma):
    """The mean batch loss of the audited model, recomputed with new kernel blocks (no value_at)."""
    audited = kr.NystromModel(model.nystrom, h=model.h, coords="raw")
    audited.params["A_tilde"] = model.A_tilde + delta_A
    audited.params["gamma"] = model.gamma + delta_gamma
    st = obj.init_state(audited)
    vals = [float(BatchProblem(audited, obj, st, b, 2**30).value_and_grad()[0]) for b in views]
    return float(np.mean(vals))


# ------------------------------------------------------------------------------------------
# multi-shift CG, eq. (cg-shift)
@pytest.mark.parametrize("dtype,rtol,tol", [(np.float64, 1e-10, 1e-8), (np.float32, 1e-4, 1e-3)])
def test_shifted_cg_solves_every_shift_like_a_dense_solve(dtype, rtol, tol):
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(60, 60)))
    A = (Q * np.logspace(-2, 1, 60)) @ Q.T
    b = rng.normal(size=60)
    shifts = [1e-2, 1e-1, 1.0, 10.0]
    calls = []

    def matvec(v):
        calls.append(1)
        return A.astype(dtype) @ v

    res = conjugate_gradient_shifted(matvec, b.astype(dtype), shifts, rtol=rtol, max_iter=500)
    n_shifted = len(calls)
    for s, r in zip(shifts, res):
        ref = np.linalg.solve(A + s * np.eye(60), b)
        assert np.linalg.norm(r.x - ref) / np.linalg.norm(ref) < tol
        assert r.converged[0] and r.relative_residuals[0] <= rtol and r.x.dtype == dtype
        # the reported last residual is the true one
        true = np.linalg.norm(b - (A + s * np.eye(60)) @ r.x.astype(np.float64)) / np.linalg.norm(b)
        assert r.relative_residuals[0] == pytest.approx(true, rel=1e-2 if dtype == np.float32 else 1e-6)
    # one Krylov sequence: no more products than one plain solve of the smallest shift (+ checks)
    calls.clear()
    plain = conjugate_gradient(matvec, b.astype(dtype), damping=shifts[0], rtol=rtol, max_iter=500)
    assert plain.converged[0] and n_shifted <= len(calls) + len(shifts) + 2


def test_shifted_cg_reports_a_capped_solve_as_not_converged():
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.normal(size=(50, 50)))
    A = (Q * np.logspace(-3, 1, 50)) @ Q.T
    res = conjugate_gradient_shifted(lambda v: A @ v, rng.normal(size=50), [1e-3, 100.0], rtol=1e-6, max_iter=5)
    assert not res[0].converged[0] and res[0].stopped_by == "max_iter"
    assert res[1].converged[0]  # the large shift is well conditioned: converged in 5 iterations
    with pytest.raises(ValueError, match="shifts"):
        conjugate_gradient_shifted(lambda v: A @ v, np.ones(50), [-1.0])


def test_damped_directions_with_and_without_a_preconditioner_agree():
    """One multi-shift run and the warm-started preconditioned solves give the same steps."""
    model, views = collinear_simclr()
    op, _, g, _, _ = operator(model, "simclr", views, 1e-2)
    falkon = kr.FalkonPrecond(kr.preconditioner.FalkonPreconditioner(model.nystrom.kernel, model.nystrom.landmarks,
                                                                     np.concatenate([v for b in views for v in b]),
                                                                     lam=1e-2, dtype="float64"))
    dampings = [1e-2, 1e-1, 1.0]
    opts = Options(**TIGHT)
    a = list(damped_directions(op, g, dampings, opts))
    b = list(damped_directions(op, g, dampings, opts, preconditioner=falkon))
    assert op.damping == 1e-2  # restored
    H = dense(GGNOperator(op.problems, damping=0.0, keys=op.keys))
    for (da, xa, ra), (db, xb, rb) in zip(a, b):
        ref = np.linalg.solve(H + da * np.eye(H.shape[0]), -op.flatten(g))
        np.testing.assert_allclose(op.flatten(xa), ref, rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(op.flatten(xb), ref, rtol=1e-7, atol=1e-10)
        assert ra.converged[0] and rb.converged[0]


# ------------------------------------------------------------------------------------------
# the acceptance rule, eq. (audit-accept)
def test_a_step_that_raises_its_loss_is_caught_and_a_larger_damping_accepted():
    model, views = collinear_simclr()
    with pytest.warns(kr.LossIncreaseWarning, match="raised its own loss"):
        full = kr.audit(model, "simclr", None, batches=views, damping=1e-2,
                        options=Options(audit_step="full", **TIGHT))
    assert full.loss_rose and full.loss_after > full.loss_before and not full.step_accepted
    assert full.loss_after > 0.99 * np.log(2 * 32 - 1)  # the collapse: SimCLR at log(2B − 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", kr.KrepesWarning)  # the default rule warns about nothing here
        lm = kr.audit(model, "simclr", None, batches=views, damping=1e-2, options=Options(**TIGHT))
    s = lm.summary()
    assert s["damping"] == 1e-2 and s["damping_accepted"] > 1e-2 and s["audit_step"] == "lm"
    assert not lm.loss_rose and lm.step_accepted and lm.loss_after < lm.loss_before
    assert s["loss_before"] == lm.loss_before and s["loss_after"] == lm.loss_after
    tried = [t["damping"] for t in lm.trials]
    np.testing.assert_allclose(tried, [1e-2 * 10.0 ** j for j in range(len(tried))])
    assert [t["accepted"] for t in lm.trials] == [False] * (len(tried) - 1) + [True]
    assert all(t["loss"] > lm.loss_before for t in lm.trials[:-1])  # every rejected δ raised the loss
    assert lm.trials[0]["loss"] == pytest.approx(full.loss_after, rel=1e-10)  # same first candidate


def test_reported_numbers_equal_a_direct_recomputation():
    """float64: the accepted step is −(H + δI)⁻¹∇L with H the explicit JᵀGJ (finite-difference
    Jacobian, eq. (ggn-lift)); every trial's loss equals op.value_at and a from-scratch
    evaluation with new kernel blocks; the acceptance test is eq. (audit-accept)."""
    model, views = collinear_simclr()
    aud = kr.audit(model, "simclr", None, batches=views, damping=1e-2, options=Options(**TIGHT))
    op, L0, g, obj, st = operator(model, "simclr", views, 0.0)
    assert aud.loss_before == pytest.approx(L0, rel=1e-12)
    _, H = reference_JtGJ(model, obj, st, op.problems, op.keys)
    gf = op.flatten(g)
    for t in aud.trials:
        d = np.linalg.solve(H + t["damping"] * np.eye(H.shape[0]), -gf)
        assert t["loss"] == pytest.approx(op.value_at(op.unflatten(d), 1.0), rel=1e-8)
        assert t["slope"] == pytest.approx(float(gf @ d), rel=1e-6)
        assert t["accepted"] == (t["loss"] <= L0 + Options().armijo * t["slope"])
    d = np.linalg.solve(H + aud.damping_accepted * np.eye(H.shape[0]), -gf)
    step = op.unflatten(d)
    np.testing.assert_allclose(aud.delta_A, step["A_tilde"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(aud.delta_gamma, step["gamma"], rtol=1e-6, atol=1e-9)
    assert aud.loss_after == pytest.approx(loss_from_scratch(model, obj, views, aud.delta_A, aud.delta_gamma),
                                           rel=1e-10)
    # the CG status is the true residual of the returned step
    Hd = H + aud.damping_accepted * np.eye(H.shape[0])
    x = op.flatten({"A_tilde": aud.delta_A, "gamma": aud.delta_gamma})
    assert aud.cg_relative_residual == pytest.approx(np.linalg.norm(gf + Hd @ x) / np.linalg.norm(gf),
                                                     rel=1e-3, abs=1e-12)


def test_backtracking_shortens_the_step_along_the_direction():
    model, views = collinear_simclr()
    bt = kr.audit(model, "simclr", None, batches=views, damping=1e-2, options=Options(audit_step="backtrack", **TIGHT))
    ts = [t["t"] for t in bt.trials]
    assert ts == [0.5 ** i for i in range(len(ts))] and bt.step_length == ts[-1] < 1
    assert bt.damping_accepted == 1e-2 and not bt.loss_rose and bt.step_accepted
    with pytest.warns(kr.LossIncreaseWarning):
        ref = kr.audit(model, "simclr", None, batches=views, damping=1e-2, options=Options(audit_step="full", **TIGHT))
    np.testing.assert_allclose(bt.delta_A, bt.step_length * ref.delta_A, rtol=1e-12)


def test_no_acceptable_step_returns_the_least_bad_one_and_warns():
    model, views = collinear_simclr()
    with pytest.warns(kr.LossIncreaseWarning, match="every tried"):
        aud = kr.audit(model, "simclr", None, batches=views, damping=1e-2,
                       options=Options(lm_max_tries=2, **TIGHT))  # δ = 1e-2 and 1e-1 both raise the loss
    assert len(aud.trials) == 2 and aud.loss_rose and not aud.step_accepted
    assert aud.loss_after == min(t["loss"] for t in aud.trials)


def test_the_lm_rule_needs_a_positive_damping():
    model, views = collinear_simclr()
    with pytest.raises(ValueError, match="damping > 0"):
        kr.audit(model, "simclr", None, batches=views, damping=0.0)
    for bad in (dict(audit_step="newton"), dict(lm_factor=1.0), dict(lm_max_tries=0), dict(lm_factor=float("inf"))):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Options(**bad)
    for bad in (dict(lm_factor="10"), dict(lm_max_tries="6")):
        with pytest.raises(TypeError, match=next(iter(bad))):
            Options(**bad)


# ------------------------------------------------------------------------------------------
# CG convergence, recorded and warned about
def test_a_capped_cg_is_warned_about_and_recorded():
    model, views = collinear_simclr()
    with pytest.warns(kr.ConvergenceWarning, match="cap cg_max_iter=2"):
        aud = kr.audit(model, "barlow_twins", None, batches=views, damping=1e-2,
                       options=Options(cg_max_iter=2, cg_rtol=1e-10, audit_step="full"))
    s = aud.summary()
    assert s["cg_converged"] is False and s["cg_iterations"] == 2 and s["cg_relative_residual"] > 1e-10
    assert issubclass(kr.ConvergenceWarning, kr.KrepesWarning) and issubclass(kr.KrepesWarning, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error", kr.ConvergenceWarning)
        ok = kr.audit(model, "barlow_twins", None, batches=views, damping=1e-2)  # the defaults converge
    assert ok.summary()["cg_converged"] is True


def test_value_at_follows_each_new_direction_dict():
    """BatchProblem.value_at keeps K V for the last direction *object*: a new temporary dict
    (which can reuse a freed dict's id) gets its own product."""
    model, views = collinear_simclr()
    op, _, g, obj, st = operator(model, "simclr", views, 1e-2)
    rng = np.random.default_rng(5)
    Vs = [{k: rng.normal(size=v.shape) for k, v in g.items()} for _ in range(4)]
    got = []
    for V in Vs:  # a temporary dict per call, freed before the next one is made
        tmp = op.unflatten(op.flatten(V))
        got.append(op.value_at(tmp, 1.0))
        del tmp
    for V, v in zip(Vs, got):
        fresh = [BatchProblem(model, obj, st, b, 2**30) for b in views]
        assert v == pytest.approx(float(np.mean([float(p.value_at(V, 1.0)) for p in fresh])), rel=1e-12)
