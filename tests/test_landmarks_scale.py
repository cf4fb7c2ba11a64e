"""Landmarks: m="sqrt", the inverse-CDF k-means++ draw, bounded memory at n = 2·10⁵."""
import math
import tracemalloc
from dataclasses import dataclass

import numpy as np
import pytest

from krepes_lib import landmarks as LM
from krepes_lib.kernels import RBF, Kernel, Laplacian
from krepes_lib.options import Options


@pytest.mark.parametrize("method", ["uniform", "kmeans++", "leverage"])
def test_m_sqrt(method):
    X = np.random.default_rng(0).normal(size=(401, 3)).astype(np.float32)
    sel = LM.select_landmarks(X, m="sqrt", method=method, kernel=RBF(sigma=1.0), seed=0)
    assert sel.m == math.ceil(math.sqrt(401)) == 21
    assert np.unique(sel.indices).size == 21
    np.testing.assert_array_equal(sel.points, X[sel.indices])
    assert LM.select_landmarks(X[:4], m="sqrt").m == 2


def test_m_errors():
    X = np.zeros((10, 2))
    for bad in ("root", 0, 2.5, True, None):
        with pytest.raises(ValueError, match="m"):
            LM.select_landmarks(X, m=bad)
    with pytest.raises(ValueError, match="m=11"):
        LM.select_landmarks(X, m=11)


def test_kmeanspp_draw_follows_min_distance():
    """Second landmark: P(j) ∝ D(x_j, c₁)²; the inverse-CDF draw must match it (eq. lm-kmeanspp)."""
    X = np.array([[0.0], [1.0], [3.0], [6.0]])
    counts = np.zeros(4)
    firsts = 0
    for seed in range(3000):
        idx = LM.kmeans_pp(X, 2, seed=seed).indices
        if idx[0] == 0:
            firsts += 1
            counts[idx[1]] += 1
    p = np.array([0.0, 1.0, 9.0, 36.0]) / 46.0
    assert counts[0] == 0                                   # a chosen row is never drawn again
    se = np.sqrt(p * (1 - p) / firsts)
    assert np.all(np.abs(counts / firsts - p) <= 4 * se + 1e-12)


def test_kmeanspp_same_seed_same_landmarks_and_duplicates():
    X = np.random.default_rng(1).normal(size=(500, 4)).astype(np.float32)
    a = LM.kmeans_pp(X, 30, seed=7).indices
    np.testing.assert_array_equal(a, LM.kmeans_pp(X, 30, seed=7).indices)
    np.testing.assert_array_equal(a, LM.kmeans_pp(X.astype(np.float64), 30, seed=7).indices)
    D = np.repeat(np.eye(3), 5, axis=0)                     # 3 distinct points, 15 rows
    idx = LM.kmeans_pp(D, 6, seed=0).indices
    assert np.unique(idx).size == 6 and len({tuple(r) for r in D[idx[:3]]}) == 3


@pytest.mark.parametrize("method", ["kmeans++", "kmeans_kernel", "leverage"])
def test_landmarks_at_2e5_rows_in_bounded_memory(method):
    n, d, m = 200_000, 8, 40
    X = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    kern = RBF(sigma=3.0)
    budget = 16 * 2**20
    tracemalloc.start()
    if method == "kmeans++":
        LM.kmeans_pp(X, m, seed=0)
    elif method == "kmeans_kernel":
        LM.kmeans_pp(X, m, seed=0, kernel=kern, options=Options(memory_budget=budget))
    else:
        LM.ridge_leverage(X, m, kern, seed=0, sketch_size=200, options=Options(memory_budget=budget))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # O(n) vectors (a few float64 of length n = 1.6 MB each) + one block; n×m float32 would be 32 MB,
    # X in float64 12.8 MB.
    assert peak < budget + 12 * 8 * n, f"{method}: peak {peak / 2**20:.1f} MiB"
    assert peak < 4 * n * m


@pytest.mark.parametrize("kern", [RBF(sigma=1.3), Laplacian(sigma=2.0)])
def test_kernel_space_fast_path_matches_generic_kernel_column(kern):
    """RBF/Laplacian kernel-space k-means++ (cached norms) = the generic streamed kernel column."""
    X = np.random.default_rng(3).normal(size=(300, 5))

    @dataclass(frozen=True)
    class Wrapped(Kernel):          # same kernel, but not an RBF/Laplacian instance: generic path
        inner: Kernel = None

        def _block(self, xp, A, B):
            return self.inner._block(xp, A, B)

        def _diag(self, xp, A):
            return self.inner._diag(xp, A)

    fast = LM.kmeans_pp(X, 25, seed=4, kernel=kern).indices
    slow = LM.kmeans_pp(X, 25, seed=4, kernel=Wrapped(inner=kern), options=Options(memory_budget=4096)).indices
    np.testing.assert_array_equal(fast, slow)


def test_kmeans_pp_is_translation_invariant_in_float32():
    """Distances on data far from the origin (eq. (k-sqdist-centred)): shifting X by 1e4 must not
    change the landmarks k-means++ picks (float32)."""
    import numpy as np

    from krepes_lib.landmarks import kmeans_pp

    X = np.random.default_rng(0).normal(size=(2000, 5)).astype(np.float32)
    a = kmeans_pp(X, 30, seed=1)
    b = kmeans_pp(X + np.float32(1e4), 30, seed=1)
    agree = np.mean(np.isin(b.indices, a.indices))
    assert agree > 0.9, agree
    np.testing.assert_array_equal(b.points, (X + np.float32(1e4))[b.indices])
