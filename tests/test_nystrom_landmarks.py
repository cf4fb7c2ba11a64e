"""Nyström identities, PC initialisation, landmark strategies and class coverage κ."""
import numpy as np
import pytest

from krepes_lib import landmarks as LM
from krepes_lib.backend import to_host
from krepes_lib.kernels import RBF, Linear, Polynomial, Kernel
from krepes_lib.nystrom import Nystrom
from krepes_lib.options import Options


def data(n=120, d=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_m_equals_n_reproduces_kernel(xp):
    X = xp.asarray(data(60))
    nys = Nystrom(RBF(sigma=1.5), X, dtype="float64")
    np.testing.assert_allclose(to_host(nys.approx_kernel(X)), to_host(RBF(sigma=1.5)(X, dtype="float64")),
                               atol=1e-8)
    assert nys.relative_error(X, rows=17) < 1e-6


def test_pc_init_is_the_nystrom_feature_map():
    X = data(200)
    kern = RBF(sigma=2.0)
    L = X[:40]
    nys = Nystrom(kern, L, dtype="float64")
    h = 6
    A0 = nys.pc_init(h)
    F = nys.features(X, A0)
    # Gram matrix of the features = rank-h Nyström approximation K_nm U_h Λ_h⁻¹ U_hᵀ K_mn
    K_nm = kern(X, L, dtype="float64")
    w, V = np.linalg.eigh(kern(L, dtype="float64"))
    Uh, wh = V[:, ::-1][:, :h], w[::-1][:h]
    np.testing.assert_allclose(F @ F.T, K_nm @ Uh @ np.diag(1 / wh) @ Uh.T @ K_nm.T, atol=1e-8)
    # on the landmarks themselves the PC features are orthogonal with norms Λ_h: Ã₀ᵀ K_mm Ã₀ = I_h
    np.testing.assert_allclose(A0.T @ nys.K_mm @ A0, np.eye(h), atol=1e-8)
    # whitened coordinates: W₀ = [I_h; 0] gives the same Ã₀ (up to dtype)
    np.testing.assert_allclose(nys.whitening() @ nys.pc_init_whitened(h), A0, atol=1e-10)


def test_nystrom_error_decreases_with_m():
    X = data(300, 3, seed=1)
    errs = [Nystrom(RBF(sigma=1.0), X[:m], dtype="float64").relative_error(X) for m in (10, 40, 160)]
    assert errs[0] > errs[1] > errs[2]


def test_relative_floor_and_rank_errors():
    X = data(50, 3)
    nys = Nystrom(Linear(), X[:20], dtype="float64")  # rank 3 at most
    assert nys.rank == 3
    with pytest.raises(ValueError, match=r"h=4 exceeds the numerical rank r=3"):
        nys.pc_init(4)
    # scaling the kernel does not change the rank (the floor is relative)
    assert Nystrom(Polynomial(degree=1, scale=1e-8, coef0=0.0), X[:20], dtype="float64").rank == 3


class NotPSD(Kernel):
    name = "not_psd"

    def _block(self, xp, X, Y):
        return -(X @ Y.T)

    def _diag(self, xp, X):
        return -np.einsum("ij,ij->i", X, X)


def test_clear_errors():
    X = data(30)
    with pytest.raises(ValueError, match="not positive semi-definite"):
        Nystrom(NotPSD(), X[:10] + 1.0, dtype="float64")
    with pytest.raises(ValueError, match="NaN"):
        Nystrom(RBF(), np.full((3, 2), np.nan))
    nys = Nystrom(RBF(), X[:10])
    with pytest.raises(ValueError, match=r"shape \(n, d=4\)"):
        nys.features(np.ones((5, 3)), nys.pc_init(2))
    with pytest.raises(ValueError, match="A_tilde"):
        nys.features(X, np.ones((11, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"m=31 landmarks requested but X has only n=30"):
        LM.select_landmarks(X, 31)


@pytest.mark.parametrize("method", ["uniform", "kmeans++", "leverage"])
def test_landmark_methods_return_points_and_indices(method, xp):
    X = xp.asarray(data(200))
    sel = LM.select_landmarks(X, 25, method=method, kernel=RBF(sigma=1.0), seed=3)
    assert sel.m == 25 and sel.method in (method, "kmeans++")
    assert np.unique(sel.indices).size == 25
    np.testing.assert_array_equal(to_host(sel.points), to_host(X[xp.asarray(sel.indices)]))
    again = LM.select_landmarks(X, 25, method=method, kernel=RBF(sigma=1.0), seed=3)
    np.testing.assert_array_equal(sel.indices, again.indices)  # host RNG: same seed, same landmarks


def test_kmeanspp_spreads_over_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [50, 0], [0, 50], [50, 50]], float)
    X = np.concatenate([c + rng.normal(size=(500, 2)) for c in centres])
    sel = LM.select_landmarks(X, 4, method="kmeans++", seed=1)
    assert len({int(i) // 500 for i in sel.indices}) == 4  # one landmark in each cluster
    # the kernel-space variant also works
    sel_k = LM.select_landmarks(X, 4, method="kmeans++", kernel=RBF(sigma=5.0), kernel_space=True, seed=1)
    assert len({int(i) // 500 for i in sel_k.indices}) == 4


def test_kmeanspp_with_few_distinct_points():
    X = np.repeat(np.eye(3), 10, axis=0)
    sel = LM.select_landmarks(X, 5, method="kmeans++", seed=0)
    assert np.unique(sel.indices).size == 5
    assert len({tuple(r) for r in to_host(sel.points)}) == 3


def test_leverage_scores_exact_with_full_sketch():
    X = data(80, 3)
    kern, lam = RBF(sigma=1.0), 1e-2
    n = X.shape[0]
    Kf = kern(X, dtype="float64")
    exact = np.diag(Kf @ np.linalg.inv(Kf + n * lam * np.eye(n)))
    approx = LM.approximate_leverage_scores(X, kern, lam=lam, sketch_size=None, options=Options(memory_budget=4096))
    np.testing.assert_allclose(approx, exact, rtol=1e-6, atol=1e-9)
    # a smaller sketch over-estimates (it projects onto fewer directions) but stays bounded by k(x,x)/(nλ)
    small = LM.approximate_leverage_scores(X, kern, lam=lam, sketch_size=20)
    assert np.all(small >= exact - 1e-9) and np.all(small <= 1 / (n * lam) + 1e-9)


def test_leverage_prefers_outliers():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(990, 2)) * 0.1, rng.normal(size=(10, 2)) + 20])
    ell = LM.approximate_leverage_scores(X, RBF(sigma=0.5), lam=1e-3, sketch_size=300)
    assert ell[990:].mean() > 5 * ell[:990].mean()


def test_given_landmarks_and_errors():
    X = data(20)
    sel = LM.select_landmarks(X, method="given", indices=[3, 1, 7])
    np.testing.assert_array_equal(sel.indices, [3, 1, 7])
    with pytest.raises(ValueError, match="duplicates"):
        LM.select_landmarks(X, method="given", indices=[1, 1])
    with pytest.raises(ValueError, match="method='nope'"):
        LM.select_landmarks(X, 3, method="nope")
    with pytest.raises(ValueError, match="needs kernel"):
        LM.select_landmarks(X, 3, method="leverage")


def test_class_coverage():
    labels = np.array([0, 0, 1, 2, 1, 0])
    scores = np.array([6, 5, 4, 1, 3, 2])  # order: 0,0,1,1,0,2 -> all 3 classes after 6
    assert LM.class_coverage(scores, labels) == 6
    assert LM.class_coverage(np.array([6, 1, 5, 4, 0, 0]), labels) == 3  # labels 0, 1, 2 in the top 3
    assert LM.class_coverage(scores, labels, n_classes=4) == 7  # not covered: m + 1
    with pytest.raises(ValueError, match="one per landmark"):
        LM.class_coverage(scores, labels[:3])
