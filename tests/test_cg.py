"""Matrix-free CG (eq. cg) and the loss-agnostic preconditioner (eq. precond) against dense references."""
import numpy as np
import pytest

from krepes_lib.backend import to_host
from krepes_lib.cg import CGResult, conjugate_gradient
from krepes_lib.kernels import RBF, Kernel, Linear
from krepes_lib.nystrom import Nystrom
from krepes_lib.preconditioner import FalkonPreconditioner
from krepes_lib.options import Options

#: CG stopping tolerance and the accepted relative solution error, per dtype. float32:
#: eps32 ≈ 1.2e-7 and cond ≈ 30 leave ~1e-5 of round-off in x, hence 1e-4.
CG_RTOL = {np.float32: 1e-6, np.float64: 1e-12}
SOL_TOL = {np.float32: 1e-4, np.float64: 1e-8}


def spd(k, cond, seed=0):
    """A random SPD matrix with eigenvalues log-spaced in [1, cond], and its eigenvectors."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(k, k)))
    w = np.logspace(0, np.log10(cond), k)
    return (Q * w) @ Q.T, Q, w


def rel_err(x, ref):
    return np.linalg.norm(x - ref, axis=0) / np.linalg.norm(ref, axis=0)


# --------------------------------------------------------------------------------------
# CG against np.linalg.solve
@pytest.mark.parametrize("damping", [0.0, 0.5])
def test_cg_matches_dense_solve_several_rhs(xp, dtype, damping):
    k, r = 40, 4
    A, _, _ = spd(k, 30.0)
    B = np.random.default_rng(1).normal(size=(k, r))
    ref = np.linalg.solve(A + damping * np.eye(k), B)
    A_x = xp.asarray(A, dtype=dtype)
    res = conjugate_gradient(lambda V: A_x @ V, xp.asarray(B, dtype=dtype), damping=damping,
                             rtol=CG_RTOL[dtype], max_iter=200)
    assert isinstance(res, CGResult)
    assert res.stopped_by == "rtol" and res.converged.all() and not res.breakdown.any()
    assert res.x.shape == (k, r) and res.x.dtype == dtype
    assert res.residual_norms.shape == (res.iterations + 1, r)
    assert rel_err(to_host(res.x).astype(np.float64), ref).max() < SOL_TOL[dtype]
    # the reported final residual is the true one (in the solver's arithmetic) and meets rtol
    B_x = xp.asarray(B, dtype=dtype)
    true = to_host(xp.linalg.norm(B_x - (A_x @ res.x + damping * res.x), axis=0))
    np.testing.assert_allclose(res.residual_norms[-1], true, rtol=1e-5)
    assert (res.relative_residuals <= CG_RTOL[dtype]).all()


def test_cg_one_dimensional_rhs_and_x0():
    A, _, _ = spd(25, 10.0, seed=3)
    b = np.random.default_rng(2).normal(size=25)
    ref = np.linalg.solve(A, b)
    res = conjugate_gradient(lambda v: A @ v, b, rtol=1e-12)
    assert res.x.shape == (25,) and res.residual_norms.shape[1] == 1
    np.testing.assert_allclose(res.x, ref, rtol=1e-8)
    # starting at the solution: converged before any iteration
    res0 = conjugate_gradient(lambda v: A @ v, b, x0=ref, rtol=1e-8)
    assert res0.iterations == 0 and res0.stopped_by == "rtol"
    # a zero right-hand side is solved by x = 0 whatever x0 holds
    resz = conjugate_gradient(lambda v: A @ v, np.zeros(25), x0=np.ones(25))
    assert resz.iterations == 0 and resz.converged.all() and not resz.x.any()


# --------------------------------------------------------------------------------------
# Preconditioning
def test_jacobi_preconditioner_reduces_iterations_and_exact_one_is_one_iteration():
    k = 60
    S, _, _ = spd(k, 5.0, seed=4)
    D = np.diag(np.logspace(0, 3, k))  # bad row/column scaling: cond(DSD) is huge
    A = D @ S @ D
    B = np.random.default_rng(5).normal(size=(k, 3))
    ref = np.linalg.solve(A, B)
    mv = lambda V: A @ V  # noqa: E731
    plain = conjugate_gradient(mv, B, rtol=1e-8, max_iter=500)
    d = np.diag(A)
    jacobi = conjugate_gradient(mv, B, rtol=1e-8, max_iter=500, precond=lambda V: V / d[:, None])
    assert jacobi.stopped_by == "rtol"
    assert jacobi.iterations < plain.iterations / 2
    assert rel_err(jacobi.x, ref).max() < 1e-5
    A_inv = np.linalg.inv(A)
    exact = conjugate_gradient(mv, B, rtol=1e-8, precond=lambda V: A_inv @ V)
    assert exact.iterations == 1 and exact.stopped_by == "rtol"
    # with damping the exact preconditioner is (A + λI)⁻¹
    Ad_inv = np.linalg.inv(A + 3.0 * np.eye(k))
    exact_d = conjugate_gradient(mv, B, damping=3.0, rtol=1e-8, precond=lambda V: Ad_inv @ V)
    assert exact_d.iterations == 1


# --------------------------------------------------------------------------------------
# Per-column behaviour, stopping rules
def test_converged_column_is_frozen():
    k = 30
    A, Q, w = spd(k, 100.0, seed=6)
    B = np.stack([Q[:, 0], np.random.default_rng(7).normal(size=k)], axis=1)  # easy, hard
    seen = []
    res = conjugate_gradient(lambda V: A @ V, B, rtol=1e-10, max_iter=200,
                             callback=lambda it, X, nr: seen.append(X[:, 0].copy()) and False)
    assert res.converged.all() and res.iterations > 5
    np.testing.assert_allclose(res.x[:, 0], Q[:, 0] / w[0], rtol=1e-10)
    # after its first iteration the easy column never moves again, and its residual is constant
    for x_easy in seen[1:]:
        np.testing.assert_array_equal(x_easy, seen[0])
    assert np.all(res.residual_norms[1:, 0] == res.residual_norms[1, 0])
    assert res.residual_norms[-1, 1] <= 1e-10 * np.linalg.norm(B[:, 1])


def test_callback_stops_early():
    A, _, _ = spd(30, 1e3, seed=8)
    B = np.random.default_rng(9).normal(size=(30, 2))
    calls = []

    def cb(it, X, norms):
        assert X.shape == B.shape and norms.shape == (2,)
        calls.append(it)
        return it >= 3

    res = conjugate_gradient(lambda V: A @ V, B, callback=cb, rtol=1e-12)
    assert res.stopped_by == "callback" and res.iterations == 3 and calls == [1, 2, 3]
    assert res.residual_norms.shape == (4, 2) and not res.converged.any()
    # iteration 3 is not a refresh iteration, yet the last reported row is the true residual; a
    # slightly nonlinear operator makes the recursive residual drift visibly from the true one
    op = lambda V: A @ V + 0.1 * np.sin(V)  # noqa: E731
    res = conjugate_gradient(op, B, callback=lambda it, X, nr: it >= 3, rtol=1e-12)
    assert res.iterations == 3
    np.testing.assert_allclose(res.residual_norms[-1], np.linalg.norm(B - op(res.x), axis=0), rtol=1e-10)


def test_max_iter_is_honoured():
    A, _, _ = spd(50, 1e4, seed=10)
    B = np.random.default_rng(11).normal(size=(50, 2))
    count = []
    res = conjugate_gradient(lambda V: count.append(1) or A @ V, B, rtol=1e-14, max_iter=5)
    assert res.stopped_by == "max_iter" and res.iterations == 5 and not res.converged.any()
    # 5 directions + the final true-residual refresh at the cap; x = 0 needs no initial matvec
    assert len(count) == 6
    x0 = np.ones((50, 2))
    res0 = conjugate_gradient(lambda V: A @ V, B, x0=x0, max_iter=0)
    assert res0.iterations == 0 and res0.stopped_by == "max_iter"
    np.testing.assert_array_equal(res0.x, x0)
    assert res0.x is not x0  # x0 is not modified in place


@pytest.mark.parametrize("case", ["zero", "indefinite", "mixed", "bad_precond"])
def test_breakdown_is_detected_without_nans(case):
    if case == "zero":
        A, B, prec = np.zeros((5, 5)), np.ones((5, 2)), None
    elif case == "indefinite":
        A, B, prec = np.diag([1.0, -2.0]), np.ones((2, 1)), None  # pᵀAp = -1 on b
    elif case == "mixed":  # column 0 lives in the positive eigenspace, column 1 in the negative one
        A, B, prec = np.diag([2.0, -1.0]), np.eye(2), None
    else:
        A, B, prec = np.eye(4) * 2.0, np.ones((4, 2)), (lambda V: -V)
    with np.errstate(all="raise"):  # no division by zero, no invalid operation
        res = conjugate_gradient(lambda V: A @ V, B, rtol=1e-10, max_iter=50, precond=prec)
    assert res.stopped_by == "breakdown"
    assert np.isfinite(res.x).all() and np.isfinite(res.residual_norms).all()
    if case == "mixed":
        assert res.converged.tolist() == [True, False] and res.breakdown.tolist() == [False, True]
        np.testing.assert_allclose(res.x[:, 0], [0.5, 0.0])
    else:
        assert res.breakdown.all() and not res.converged.any() and res.iterations == 0


@pytest.mark.parametrize("refresh_every", [1, 4])
def test_residual_refresh_reports_the_true_residual(refresh_every):
    A, _, _ = spd(80, 1e5, seed=12)
    A32 = A.astype(np.float32)
    B = np.random.default_rng(13).normal(size=(80, 3)).astype(np.float32)
    checked = []

    def cb(it, X, norms):
        if it % refresh_every == 0:
            true = np.linalg.norm(B - A32 @ X, axis=0)  # same float32 arithmetic as the solver
            np.testing.assert_allclose(norms, true, rtol=1e-6)
            checked.append(it)
        return False

    res = conjugate_gradient(lambda V: A32 @ V, B, rtol=1e-5, max_iter=60,
                             refresh_every=refresh_every, callback=cb)
    assert len(checked) >= 10
    true = np.linalg.norm(B - A32 @ res.x, axis=0)
    np.testing.assert_allclose(res.residual_norms[-1], true, rtol=1e-6)


def test_validation_errors():
    A = np.eye(3)
    mv = lambda V: A @ V  # noqa: E731
    with pytest.raises(ValueError, match="damping"):
        conjugate_gradient(mv, np.ones(3), damping=-1.0)
    with pytest.raises(ValueError, match="x0"):
        conjugate_gradient(mv, np.ones(3), x0=np.ones(4))
    with pytest.raises(ValueError, match="matvec returned shape"):
        conjugate_gradient(lambda V: V[:2], np.ones(3))
    with pytest.raises(ValueError, match="refresh_every"):
        conjugate_gradient(mv, np.ones(3), refresh_every=0)
    with pytest.raises(ValueError, match=r"shape \(k,\) or \(k, r\)"):
        conjugate_gradient(mv, np.ones((3, 1, 1)))


# --------------------------------------------------------------------------------------
# The FALKON-like preconditioner, eq. (precond)
def naive_M(kernel, L, X, lam):
    """K_mn K_nm / n + λ K_mm with the full n×m matrix (the slow reference)."""
    K_nm = kernel(X, L, dtype="float64")
    return K_nm.T @ K_nm / X.shape[0] + lam * kernel(L, L, dtype="float64")


def pdata(n=150, d=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_preconditioner_equals_dense_inverse(xp):
    X = pdata()
    kern, lam = RBF(sigma=1.5), 1e-2
    M = naive_M(kern, X[:25], X, lam)
    P = FalkonPreconditioner(kern, xp.asarray(X[:25]), xp.asarray(X), lam=lam, dtype="float64")
    assert P.jitter == 0.0 and P.L.shape == (25, 25)
    G = np.random.default_rng(1).normal(size=(25, 4))
    PG = to_host(P.apply(xp.asarray(G)))
    np.testing.assert_allclose(PG, np.linalg.inv(M) @ G, rtol=1e-8, atol=1e-10 * np.abs(PG).max())
    np.testing.assert_allclose(to_host(P.matvec(xp.asarray(G))), M @ G, rtol=1e-12)
    # 1-D input, and the callable form used as CG's precond
    np.testing.assert_allclose(to_host(P(xp.asarray(G[:, 0]))), PG[:, 0], rtol=1e-12)


def test_preconditioner_float32_against_float64_reference():
    X = pdata(seed=2)
    kern, lam = RBF(sigma=1.5), 1e-1
    M = naive_M(kern, X[:20], X, lam)
    P = FalkonPreconditioner(kern, X[:20].astype(np.float32), X.astype(np.float32), lam=lam)
    G = np.random.default_rng(3).normal(size=(20, 3)).astype(np.float32)
    PG = P.apply(G)
    assert PG.dtype == np.float32
    np.testing.assert_allclose(PG, np.linalg.solve(M, G.astype(np.float64)), rtol=1e-3,
                               atol=1e-4 * np.abs(PG).max())


class CountingRBF(RBF):
    """RBF that records the row count of every block it streams."""

    def blocks(self, X, Y, memory_budget=None, rows=None):
        for sl, K in super().blocks(X, Y, memory_budget=memory_budget, rows=rows):
            object.__getattribute__(self, "_seen").append(K.shape[0])
            yield sl, K


def test_block_accumulation_with_tiny_budget_equals_dense():
    X = pdata(97, 4, seed=4)
    kern = CountingRBF(sigma=2.0)
    object.__setattr__(kern, "_seen", [])
    P_small = FalkonPreconditioner(kern, X[:15], X, lam=1e-2, options=Options(memory_budget=1), dtype="float64")
    assert kern._seen == [1] * 97  # one row per block: no n×m matrix
    P_dense = FalkonPreconditioner(RBF(sigma=2.0), X[:15], X, lam=1e-2, dtype="float64")
    np.testing.assert_allclose(P_small.L, P_dense.L, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(P_small.L @ P_small.L.T, naive_M(RBF(sigma=2.0), X[:15], X, 1e-2),
                               rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("lam", [0.0, -1.0, float("nan"), "a"])
def test_lambda_must_be_positive(lam):
    X = pdata(20)
    with pytest.raises(ValueError, match="lam="):
        FalkonPreconditioner(RBF(), X[:5], X, lam=lam)


@pytest.mark.parametrize("work", ["float64", "float32"])
def test_singular_kmm_gets_a_documented_jitter(work):
    X = pdata(100, 3, seed=5)
    m = 10
    P = FalkonPreconditioner(Linear(), X[:m], X, lam=1e-3, dtype=work)  # rank 3 < m = 10
    M = naive_M(Linear(), X[:m], X, 1e-3)
    rho = m * np.finfo(work).eps
    assert rho * np.diag(M).mean() * (1 - 1e-9) <= P.jitter <= 1e-2 * np.diag(M).mean()
    tol = 1e-12 if work == "float64" else 1e-5  # float32 kernel blocks, float64 sum
    np.testing.assert_allclose(P.L @ P.L.T, M + P.jitter * np.eye(m), atol=tol * np.abs(M).max())
    assert np.diag(P.L).min() ** 2 >= rho * np.diag(M).max()  # the documented pivot floor
    # a gradient lies in the range of K_mm: P maps it to finite values and M P G = G
    G = Linear()(X[:m], X[:m], dtype="float64") @ np.random.default_rng(6).normal(size=(m, 2))
    PG = P.apply(G)
    assert np.isfinite(PG).all()
    np.testing.assert_allclose(P.matvec(PG), G, rtol=1e-6, atol=1e-8 * np.abs(G).max())
    # the same matrix with the jitter passed explicitly gives the same factor
    mean_diag = np.diag(P.L @ P.L.T).mean() - P.jitter  # of P's own M (float32 blocks differ)
    P2 = FalkonPreconditioner(Linear(), X[:m], X, lam=1e-3, dtype=work, jitter=P.jitter / mean_diag)
    np.testing.assert_allclose(P2.L, P.L, rtol=1e-10, atol=1e-12)


class NegLinear(Kernel):
    name = "neg_linear"

    def _block(self, xp, X, Y):
        return -(X @ Y.T)

    def _diag(self, xp, X):
        return -(X * X).sum(1)


def test_not_positive_definite_is_a_clear_error():
    X = pdata(50, 3)
    with pytest.raises(ValueError, match="not positive definite"):
        FalkonPreconditioner(NegLinear(), X[:5], X, lam=10.0)


def test_from_nystrom_and_krr_system_solved_in_one_iteration():
    """For H = K_mn K_nm / n + λ K_mm (kernel ridge), P is H⁻¹: preconditioned CG takes one step."""
    X = pdata(200, 3, seed=7)
    nys = Nystrom(RBF(sigma=1.0), X[:30], dtype="float64", options=Options(memory_budget=2000))
    lam = 1e-4
    P = FalkonPreconditioner.from_nystrom(nys, X, lam)
    assert P.m == 30 and P.n == 200 and P.lam == lam
    K_nm = nys.kernel_rows(X)

    def H(A):  # (K_mn K_nm / n + λ K_mm) A, matrix-free through the streamed kernel
        return nys.kernel.rmatmul(X, nys.landmarks, nys.features(X, A)) / X.shape[0] + lam * nys.K_mm @ A

    Y = np.random.default_rng(8).normal(size=(200, 2))
    G = K_nm.T @ Y / 200  # right-hand side of the kernel-ridge normal equations, (m, h)
    plain = conjugate_gradient(H, G, rtol=1e-8, max_iter=300)
    pre = conjugate_gradient(H, G, rtol=1e-8, max_iter=300, precond=P.apply)
    assert pre.iterations == 1 and pre.stopped_by == "rtol"
    assert plain.iterations > 10
    np.testing.assert_allclose(pre.x, np.linalg.solve(naive_M(nys.kernel, X[:30], X, lam), G), rtol=1e-6,
                               atol=1e-8 * np.abs(pre.x).max())
