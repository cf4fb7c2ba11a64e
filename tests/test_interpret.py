"""Interpretability (book: *Interpretability*): planted answers and streamed = dense.

Each test builds synthetic data whose answer is known in advance (a feature that alone
drives the kernel, a duplicated landmark, clusters, a planted concept direction, ...)
and checks the library recovers it; the streamed functions are compared with naive
per-pair references written from the book's equations.
"""
import math
import tracemalloc

import numpy as np
import pytest

from krepes_lib import interpret as I
from krepes_lib.backend import to_host
from krepes_lib.kernels import RBF, Linear
from krepes_lib.options import Options


def _rng(seed=0):
    return np.random.default_rng(seed)


def problem(xp, n=37, m=23, d=3, h=4, seed=0, dtype=np.float64):
    r = _rng(seed)
    X = xp.asarray(r.normal(size=(n, d)).astype(dtype))
    L = xp.asarray(r.normal(size=(m, d)).astype(dtype))
    A = xp.asarray(r.normal(size=(m, h)).astype(dtype))
    g = xp.asarray(r.normal(size=h).astype(dtype))
    return X, L, A, g


def naive_contributions(kernel, X, L, A):
    """C[t, l, :] = k(x̃_l, x_t) A_l,: by explicit loops (float64)."""
    X, L, A = (np.asarray(to_host(a), dtype=np.float64) for a in (X, L, A))
    C = np.empty((X.shape[0], L.shape[0], A.shape[1]))
    for t in range(X.shape[0]):
        for l in range(L.shape[0]):
            k = float(kernel(X[t:t + 1], L[l:l + 1], dtype="float64")[0, 0])
            C[t, l] = k * A[l]
    return C


# ----------------------------------------------------------------------------- representer
def test_representer_sum_reproduces_f_exactly(xp):
    X, L, A, g = problem(xp)
    kern = RBF(sigma=1.3)
    F = to_host(I.representer_sum(kern, L, X, A, gamma=g))
    F_ref = to_host(kern.matmul(X, L, A)) + to_host(g)[None, :]
    np.testing.assert_allclose(F, F_ref, rtol=1e-12, atol=1e-12)
    # and the decomposition itself is the per-pair formula
    C = to_host(I.contributions(kern, L, X, A))
    C_ref = naive_contributions(kern, X, L, A)
    np.testing.assert_allclose(C, C_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(C.sum(axis=1) + to_host(g), F_ref, rtol=1e-12, atol=1e-12)
    # gradient w.r.t. A_l,: is k(x̃_l, x_t) I_h: perturbing one row moves f by k·δ
    delta = np.zeros(A.shape)
    delta[5] = 1e-3 * _rng(9).normal(size=A.shape[1])
    F2 = to_host(I.representer_sum(kern, L, X, A + xp.asarray(delta), gamma=g))
    k5 = to_host(kern(X, L[5:6], dtype="float64"))[:, 0]
    np.testing.assert_allclose(F2 - F, k5[:, None] * delta[5][None, :], atol=1e-13)


def test_dense_contributions_refuse_large_outputs():
    X, L, A, _ = problem(np, n=50, m=20, h=4)
    with pytest.raises(ValueError, match="contribution_blocks"):
        I.contributions(RBF(), L, X, A, max_bytes=1000)
    with pytest.raises(ValueError, match="influence_blocks"):
        I.influence_scores(RBF(), L, X, A, max_bytes=1000)


def test_duplicated_landmark_splits_its_influence(xp):
    X, L, A, g = problem(xp, n=30, m=12)
    kern = RBF(sigma=1.0)
    j = 4
    # landmark j appears twice, each copy carries half of A_j,:
    L2 = xp.concatenate([L, L[j:j + 1]])
    A2 = xp.concatenate([A, A[j:j + 1] / 2])
    A2[j] = A[j] / 2
    F = to_host(I.representer_sum(kern, L, X, A, gamma=g))
    F2 = to_host(I.representer_sum(kern, L2, X, A2, gamma=g))
    np.testing.assert_allclose(F2, F, rtol=1e-12, atol=1e-12)
    IS = to_host(I.influence_scores(kern, L, X, A))
    IS2 = to_host(I.influence_scores(kern, L2, X, A2))
    np.testing.assert_allclose(IS2[:, j], IS[:, j] / 2, rtol=1e-12)
    np.testing.assert_allclose(IS2[:, -1], IS[:, j] / 2, rtol=1e-12)
    others = [l for l in range(L.shape[0]) if l != j]
    np.testing.assert_allclose(IS2[:, others], IS[:, others], rtol=1e-12)


# ----------------------------------------------------------------------------- influence
def naive_is(kernel, X, L, A, v=None):
    C = naive_contributions(kernel, X, L, A)
    if v is None:
        return np.linalg.norm(C, axis=2)
    v = np.asarray(to_host(v), dtype=np.float64)
    return C @ (v / np.linalg.norm(v))


def test_influence_scores_match_the_definition(xp):
    X, L, A, _ = problem(xp)
    kern = Linear()  # signed kernel values: |k| matters
    v = xp.asarray(_rng(3).normal(size=A.shape[1]))
    np.testing.assert_allclose(to_host(I.influence_scores(kern, L, X, A)), naive_is(kern, X, L, A),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_host(I.concept_influence(kern, L, X, A, v)),
                               naive_is(kern, X, L, A, v), rtol=1e-12, atol=1e-12)


def test_streamed_results_equal_dense_with_a_tiny_budget(xp):
    X, L, A, g = problem(xp, n=41, m=60, d=3, h=5)
    kern = RBF(sigma=1.2)
    v = xp.asarray(_rng(4).normal(size=5))
    r = _rng(5)
    X_raw = xp.asarray(np.c_[r.uniform(size=41), r.integers(0, 3, 41)])
    L_raw = xp.asarray(np.c_[r.uniform(size=60), r.integers(0, 3, 60)])
    y_t, y_l = r.integers(0, 3, 41), r.integers(0, 3, 60)
    tiny, big = 1, 2**28  # 1 byte → one test row per block

    # top-K against a naive full sort
    ref = naive_is(kern, X, L, A)
    ref_c = naive_is(kern, X, L, A, v)
    for budget in (tiny, big):
        top = I.top_influential(kern, L, X, A, K=7, v=v, options=Options(memory_budget=budget))
        idx = to_host(top.indices)
        np.testing.assert_array_equal(idx, np.argsort(-ref, axis=1, kind="stable")[:, :7])
        np.testing.assert_allclose(to_host(top.scores), np.take_along_axis(ref, idx, 1), rtol=1e-12)
        np.testing.assert_allclose(to_host(top.concept_scores), np.take_along_axis(ref_c, idx, 1),
                                   rtol=1e-12, atol=1e-15)
        ar = I.top_attracting_repelling(kern, L, X, A, v, K=4, options=Options(memory_budget=budget))
        np.testing.assert_array_equal(to_host(ar.attract_indices), np.argsort(-ref_c, axis=1)[:, :4])
        np.testing.assert_array_equal(to_host(ar.repel_indices), np.argsort(ref_c, axis=1)[:, :4])
        np.testing.assert_allclose(to_host(ar.repel_scores), np.sort(ref_c, axis=1)[:, :4], rtol=1e-12)

    def same(f):
        a, b = f(tiny), f(big)
        for x, y in zip(a, b):
            np.testing.assert_allclose(to_host(x), to_host(y), rtol=1e-12, equal_nan=True)
        return a

    same(lambda mb: (I.representer_sum(kern, L, X, A, gamma=g, options=Options(memory_budget=mb)),))
    same(lambda mb: (I.contributions(kern, L, X, A, options=Options(memory_budget=mb)),))
    ag = same(lambda mb: I.alignment_gap(kern, L, X, A, X_raw, L_raw, feature=0, K=5, n_boot=200,
                                         options=Options(memory_budget=mb)))
    same(lambda mb: I.alignment_gap(kern, L, X, A, X_raw, L_raw, feature=1, categorical=True, K=5,
                                    n_boot=50, options=Options(memory_budget=mb)))
    same(lambda mb: I.precision_at_1(kern, L, X, A, y_t, y_l, gamma=g, options=Options(memory_budget=mb)))
    same(lambda mb: I.confidence_drop(kern, L, X, A, y_l, target="predicted", n_remove=5, k=20, gamma=g, options=Options(memory_budget=mb), allow_small_m=True))
    same(lambda mb: I.confidence_drop(kern, L, X, A, y_l, y_t=y_t, target="true", metric="euclidean",
                                      n_remove=5, k=20, options=Options(memory_budget=mb), allow_small_m=True))

    # alignment gap against a naive per-point computation (same random sets by construction)
    V = 1 - np.minimum(np.abs(to_host(X_raw)[:, 0, None] - to_host(L_raw)[None, :, 0])
                       / np.ptp(np.r_[to_host(X_raw)[:, 0], to_host(L_raw)[:, 0]]), 1)
    top5 = np.argsort(-ref, axis=1)[:, :5]
    s = np.take_along_axis(ref, top5, 1)
    psi = (s * np.take_along_axis(V, top5, 1)).sum(1) / s.sum(1)
    np.testing.assert_allclose(ag.psi, psi.mean(), rtol=1e-10)
    assert ag.ci_low <= ag.gap <= ag.ci_high


def test_streaming_never_holds_an_n_by_m_matrix():
    """2·10⁵ test points × 400 landmarks: an n×m float64 matrix would be 640 MB."""
    r = _rng(1)
    n, m, h = 200_000, 400, 8
    X = r.normal(size=(n, 2))
    L = r.normal(size=(m, 2))
    A = r.normal(size=(m, h))
    kern = RBF(sigma=1.0)
    tracemalloc.start()
    top = I.top_influential(kern, L, X, A, K=5, options=Options(memory_budget=4 * 2**20))
    F = I.representer_sum(kern, L, X, A, options=Options(memory_budget=4 * 2**20))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    outputs = top.indices.nbytes + top.scores.nbytes + F.nbytes
    assert peak < outputs + 24 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    # spot check a few rows against the dense computation
    rows = [0, 12345, n - 1]
    S = np.abs(kern(X[rows], L)) * np.linalg.norm(A, axis=1)
    np.testing.assert_array_equal(top.indices[rows], np.argsort(-S, axis=1)[:, :5])


# ----------------------------------------------------------------------------- concepts
def test_cav_recovers_a_planted_direction(xp):
    r = _rng(2)
    h = 16
    u = r.normal(size=h)
    u /= np.linalg.norm(u)
    Z_pos = r.normal(size=(400, h)) + 1.5 * u
    Z_neg = r.normal(size=(400, h)) - 1.5 * u
    v = I.concept_activation_vector(xp.asarray(Z_pos), xp.asarray(Z_neg))
    v = to_host(v)
    assert abs(np.linalg.norm(v) - 1) < 1e-12
    assert v @ u > 0.95
    # swapping positives and negatives flips it
    v2 = to_host(I.concept_activation_vector(xp.asarray(Z_neg), xp.asarray(Z_pos)))
    assert v2 @ u < -0.95


def test_concept_scores_find_repulsive_landmarks():
    """Landmarks whose coefficient rows point against the concept repel every nearby test point."""
    r = _rng(6)
    m, h = 30, 3
    L = r.normal(size=(m, 2))
    X = L[:10] + 0.01 * r.normal(size=(10, 2))  # each test point sits on one landmark
    v = np.array([1.0, 0.0, 0.0])
    A = 0.1 * r.normal(size=(m, h))
    A[:10, 0] = np.where(np.arange(10) % 2 == 0, 5.0, -5.0)  # even: attract, odd: repel
    ar = I.top_attracting_repelling(RBF(sigma=0.05), L, X, A, v, K=1)
    t = np.arange(10)
    even = t % 2 == 0
    np.testing.assert_array_equal(ar.attract_indices[even, 0], t[even])
    np.testing.assert_array_equal(ar.repel_indices[~even, 0], t[~even])
    assert (ar.repel_scores[~even, 0] < -4).all() and (ar.attract_scores[even, 0] > 4).all()
    top = I.top_influential(RBF(sigma=0.05), L, X, A, K=1, v=v)
    np.testing.assert_array_equal(top.indices[:, 0], t)
    assert (np.sign(top.concept_scores[:, 0]) == np.where(even, 1, -1)).all()


# ----------------------------------------------------------------------------- features
def test_alignment_gap_is_largest_for_the_feature_that_drives_the_kernel():
    r = _rng(7)
    n, m = 600, 200
    T = np.c_[r.uniform(size=n), r.uniform(size=n), r.integers(0, 4, n)]  # f0 drives, f1/f2 noise
    Lr = np.c_[r.uniform(size=m), r.uniform(size=m), r.integers(0, 4, m)]
    kern = RBF(sigma=0.2)
    A = r.normal(size=(m, 6))
    res = [I.alignment_gap(kern, Lr[:, :1], T[:, :1], A, T, Lr, feature=f, categorical=(f == 2),
                           K=10, n_boot=300, seed=1) for f in range(3)]
    # Ψ_rand is IS-weighted too (a random set's mass sits on its members nearest in f0), so
    # the gap of the driving feature is modest (≈ 0.1 here) but its interval is far from 0
    assert res[0].psi > 0.9 and res[0].gap > 0.05, res[0][:6]
    for f in (1, 2):
        assert abs(res[f].gap) < 0.03, (f, res[f][:6])
        assert res[f].ci_low < 0 < res[f].ci_high, (f, res[f][:6])  # noise: 0 inside the CI
        assert res[0].ci_low > res[f].ci_high
    # a categorical feature that drives the kernel is detected too
    onehot = lambda c: np.eye(4)[c.astype(int)]
    res_c = I.alignment_gap(RBF(sigma=1.0), onehot(Lr[:, 2]), onehot(T[:, 2]), A, T, Lr, feature=2,
                            categorical=True, K=10, n_boot=100)
    assert res_c.psi == pytest.approx(1.0) and res_c.gap > 0.4, res_c[:6]


def test_feature_agreement_values():
    V = I.feature_agreement(np.array([0.0, 5.0]), np.array([0.0, 2.5, 10.0]), delta=5.0)
    np.testing.assert_allclose(V, [[1.0, 0.5, 0.0], [0.0, 0.5, 0.0]])
    Vc = I.feature_agreement(np.array([1.0, 2.0]), np.array([1.0, 2.0, 3.0]), delta=1.0, categorical=True)
    np.testing.assert_array_equal(Vc, [[1, 0, 0], [0, 1, 0]])
    X, L, A, _ = problem(np, n=5, m=4)
    raw_t, raw_l = np.arange(5.0), np.arange(4.0)
    FI = I.feature_conditioned_influence(RBF(), L, X, A, raw_t, raw_l, feature_range=4.0)
    IS = I.influence_scores(RBF(), L, X, A)
    np.testing.assert_allclose(FI, IS * (1 - np.minimum(np.abs(raw_t[:, None] - raw_l) / 4, 1)))


# ----------------------------------------------------------------------------- metrics
def clusters(C=3, per_lm=60, per_test=20, spread=0.3, sep=10.0, seed=8, d=2):
    r = _rng(seed)
    centres = sep * r.normal(size=(C, d))
    L = np.concatenate([c + spread * r.normal(size=(per_lm, d)) for c in centres])
    X = np.concatenate([c + spread * r.normal(size=(per_test, d)) for c in centres])
    return X, L, np.repeat(np.arange(C), per_test), np.repeat(np.arange(C), per_lm)


def test_precision_at_1_is_one_on_clustered_data():
    X, L, y_t, y_l = clusters()
    A = _rng(0).normal(size=(L.shape[0], 5))
    p = I.precision_at_1(RBF(sigma=1.0), L, X, A, y_t, y_l)
    assert p.krepes == 1.0 and p.cosine == 1.0
    # shuffled landmark labels: the metric must follow the definition (naive reference)
    y_bad = _rng(1).permutation(y_l)
    g = _rng(2).normal(size=5)
    p_bad = I.precision_at_1(RBF(sigma=1.0), L, X, A, y_t, y_bad, gamma=g, options=Options(memory_budget=1))
    K_tm = RBF(sigma=1.0)(X, L, dtype="float64")
    top_is = np.argmax(np.abs(K_tm) * np.linalg.norm(A, axis=1), axis=1)
    Z, Z_L = K_tm @ A + g, RBF(sigma=1.0)(L, L, dtype="float64") @ A + g
    cos = (Z / np.linalg.norm(Z, axis=1, keepdims=True)) @ (Z_L / np.linalg.norm(Z_L, axis=1, keepdims=True)).T
    assert p_bad.krepes == pytest.approx(np.mean(y_bad[top_is] == y_t))
    assert p_bad.cosine == pytest.approx(np.mean(y_bad[np.argmax(cos, axis=1)] == y_t))
    assert p_bad.krepes < 1 and p_bad.cosine < 1


def test_removing_the_influential_landmarks_drops_knn_confidence_more_than_random():
    X, L, y_t, y_l = clusters(C=3, per_lm=50)
    m = L.shape[0]
    r = _rng(3)
    A = r.normal(size=(m, 8))
    kern = RBF(sigma=1.0)
    res = I.confidence_drop(kern, L, X, A, y_l, target="predicted", n_remove=10, k=50, seed=0)
    # 50 landmarks per cluster and k = 50: confidence 1 before removal. The 10 most
    # influential landmarks all lie in the test point's own cluster, so removing them lets
    # exactly 10 foreign landmarks into the neighbour set (drop 0.2); 10 random ones remove
    # about 10/3 of its own class (drop ≈ 0.067).
    assert res.confidence == 1.0
    np.testing.assert_allclose(res.per_point_top, 0.2, atol=1e-12)
    assert 0.03 < res.random < 0.11, res[:4]
    assert res.ratio == pytest.approx(res.top / res.random) and res.ratio > 2
    res_true = I.confidence_drop(kern, L, X, A, y_l, y_t=y_t, target="true", n_remove=10, k=50)
    np.testing.assert_allclose(res_true.per_point_top, res.per_point_top)
    # with 58 own-class landmarks the top-10 removal costs only 2 neighbours (drop 0.04)
    X, L, y_t, y_l = clusters(C=3, per_lm=58)
    A = r.normal(size=(L.shape[0], 8))
    res58 = I.confidence_drop(kern, L, X, A, y_l, target="predicted", n_remove=10, k=50)
    assert res58.confidence == 1.0
    np.testing.assert_allclose(res58.per_point_top, 0.04, atol=1e-12)
    with pytest.raises(ValueError, match="k \\+ n_remove"):
        I.confidence_drop(kern, L[:55], X, A[:55], y_l[:55], n_remove=10, k=50)
    with pytest.raises(ValueError, match="y_t"):
        I.confidence_drop(kern, L, X, A, y_l, target="true")
    # the default target is the true class (spec §6)
    res_default = I.confidence_drop(kern, L, X, A, y_l, y_t=y_t, n_remove=10, k=50)
    np.testing.assert_allclose(res_default.per_point_top, res58.per_point_top)
    # m close to k + n_remove degenerates: refused unless asked for
    with pytest.raises(ValueError, match="too close"):
        I.confidence_drop(kern, L[:100], X, A[:100], y_l[:100], y_t=y_t, n_remove=10, k=50)


def test_confidence_drop_ratio_only_when_both_drops_are_positive():
    X, L, y_t, y_l = clusters(C=3, per_lm=50)
    A = _rng(3).normal(size=(L.shape[0], 8))
    kern = RBF(sigma=1.0)
    res = I.confidence_drop(kern, L, X, A, y_l, y_t=y_t, n_remove=10, k=50)
    assert res.top > 0 and res.random > 0 and res.ratio == pytest.approx(res.top / res.random)
    # one class everywhere: every removal leaves confidence 1, both drops are 0 -> no ratio
    same = I.confidence_drop(kern, L, X, A, np.zeros_like(y_l), y_t=np.zeros_like(y_t), n_remove=10, k=50)
    assert same.top == 0 and same.random == 0 and np.isnan(same.ratio)


def test_kendall_tau():
    a = _rng(0).normal(size=500)
    assert I.kendall_tau(a, a) == pytest.approx(1.0)
    assert I.kendall_tau(a, -a) == pytest.approx(-1.0)
    assert I.kendall_tau(a, np.exp(a)) == pytest.approx(1.0)  # rank statistic
    assert abs(I.kendall_tau(a, _rng(1).normal(size=500))) < 0.1


def test_spectral_entropy(xp):
    r = _rng(0)
    m, h = 40, 6
    Q, _ = np.linalg.qr(r.normal(size=(m, h)))
    assert I.spectral_entropy(xp.asarray(3.0 * Q)) == pytest.approx(1.0, abs=1e-12)  # AᵀA ∝ I
    rank1 = np.outer(r.normal(size=m), r.normal(size=h))
    assert I.spectral_entropy(xp.asarray(rank1)) == pytest.approx(0.0, abs=1e-12)
    # two equal directions out of h: log 2 / log h
    two = Q[:, :2] @ np.eye(2, h)
    assert I.spectral_entropy(xp.asarray(two)) == pytest.approx(math.log(2) / math.log(h), abs=1e-12)
    with pytest.raises(ValueError):
        I.spectral_entropy(xp.asarray(r.normal(size=(m, 1))))


def test_class_coverage_from_coefficients():
    labels = np.array([0, 0, 1, 1, 2, 2])
    A = np.zeros((6, 3))
    A[:, 0] = [9, 8, 7, 1, 2, 0.5]  # ranking 0,1,2,4,3,5 → classes 0,0,1,2: κ = 4
    assert I.class_coverage_from_coefficients(A, labels) == 4
    A[:, 0] = [9, 0.1, 7, 1, 8, 0.5]  # ranking 0,4,2 → classes 0,2,1: κ = 3
    assert I.class_coverage_from_coefficients(A, labels) == 3


def test_float32_follows_the_input_dtype(xp):
    X, L, A, g = problem(xp, dtype=np.float32)
    top = I.top_influential(RBF(), L, X, A, K=3)
    assert top.scores.dtype == np.float32
    assert I.representer_sum(RBF(), L, X, A, gamma=g).dtype == np.float32
    X64, L64, A64, _ = problem(xp, dtype=np.float64)
    ref = I.influence_scores(RBF(), L64, X64, A64)
    np.testing.assert_allclose(to_host(top.scores), np.sort(to_host(ref), axis=1)[:, ::-1][:, :3],
                               rtol=2e-4)
