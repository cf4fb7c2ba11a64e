"""Verdict statistics (paired tests, Holm, bootstrap), the options object and the experiment layer."""
import math

import numpy as np
import pytest
from scipy import stats as st

import krepes_lib as kr
from krepes_lib import stats
from krepes_lib.options import DEFAULT_OPTIONS, Options, resolve_options


# --- stats (verdicts are the claims engine's: tests/test_claims.py) ------------------------
def test_paired_test_matches_scipy_in_both_directions():
    rng = np.random.default_rng(0)
    b = rng.normal(size=8)
    a = b + 0.5 + 0.1 * rng.normal(size=8)
    t = stats.paired_test(a, b, alternative="greater")
    assert t.p == pytest.approx(st.ttest_rel(a, b, alternative="greater").pvalue, rel=1e-10) and t.ci_low > 0
    assert t.p_less == pytest.approx(st.ttest_rel(a, b, alternative="less").pvalue, rel=1e-10)
    # a margin moves the threshold: H₁ mean > 2 (greater) or mean < −0.2 (less)
    t2 = stats.paired_test(a, b, margin=2.0)
    assert t2.p == pytest.approx(st.ttest_1samp(a - b, 2.0, alternative="greater").pvalue, rel=1e-10)
    t3 = stats.paired_test(-a, -b, alternative="less", margin=0.2)
    assert t3.p == pytest.approx(st.ttest_1samp(b - a, -0.2, alternative="less").pvalue, rel=1e-10)


def test_identical_differences_use_the_sign_test():
    """t is undefined when all differences are equal: p = 2⁻ⁿ (the exact sign test)."""
    assert stats.paired_test([1.0, 2.0, 3.0], [0.5, 1.5, 2.5]).p == pytest.approx(0.125)
    t5 = stats.paired_test(np.arange(5.0) + 1, np.arange(5.0))
    assert t5.p == pytest.approx(1 / 32) and t5.p_less == 1.0
    assert "90% CI" in t5.describe()


def test_paired_test_with_one_seed_has_no_p_and_bad_input_is_refused():
    assert math.isnan(stats.paired_test([1.0], [0.0]).p)
    with pytest.raises(ValueError, match="pair up"):
        stats.paired_test([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="finite"):
        stats.paired_test([1, np.nan], [1, 2])
    with pytest.raises(ValueError, match="alternative"):
        stats.paired_test([1, 2], [1, 2], alternative="two-sided")


def test_holm_matches_its_definition():
    p = np.array([0.01, 0.04, 0.03, 0.2])
    adj, rej = stats.holm(p, alpha=0.05)
    # sorted 0.01, 0.03, 0.04, 0.2 -> 4·0.01, max(.04, 3·.03), max(.09, 2·.04), max(.09, .2)
    np.testing.assert_allclose(adj, [0.04, 0.09, 0.09, 0.2])
    np.testing.assert_array_equal(rej, [True, False, False, False])


def test_bootstrap_ci_covers_the_mean_and_is_seeded():
    v = np.random.default_rng(1).normal(loc=3.0, size=400)
    m, lo, hi = stats.bootstrap_ci(v, n_boot=500, seed=0)
    assert lo < m < hi and lo < 3.0 < hi and hi - lo < 0.5
    assert stats.bootstrap_ci(v, n_boot=500, seed=0) == (m, lo, hi)


def test_mean_std():
    assert stats.mean_std([1.0, 3.0]) == "2.00 ± 1.41" and stats.mean_std([2.0]) == "2.00 ± n/a"


# --- options ------------------------------------------------------------------------------
def test_options_have_one_set_of_defaults_and_validate():
    o = Options()
    assert o == DEFAULT_OPTIONS and o.damping == 1e-2 and o.optimizer == "adam"
    assert resolve_options(None, lr=0.5, damping=None).lr == 0.5
    assert resolve_options(None).damping == DEFAULT_OPTIONS.damping
    with pytest.raises(TypeError, match="no field"):
        o.replace(dampnig=1.0)
    for bad in (dict(lr=0), dict(cg_rtol=2.0), dict(cg_max_iter=0), dict(optimizer="lbfgs"),
                dict(memory_budget=-1), dict(betas=(0.9, 1.0))):
        with pytest.raises(ValueError, match=list(bad)[0]):
            Options(**bad)
    with pytest.raises(TypeError, match="Options"):
        resolve_options({"lr": 1})


# --- experiment layer ----------------------------------------------------------------------
def test_build_model_and_view_batches_are_seeded():
    X = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    model = kr.build_model(X, h=5, m="sqrt", seed=1)
    assert model.m == 18 and model.h == 5 and model.nystrom.landmark_indices.shape == (18,)
    np.testing.assert_array_equal(model.nystrom.landmarks, X[model.nystrom.landmark_indices])
    again = kr.build_model(X, h=5, m="sqrt", seed=1)
    np.testing.assert_array_equal(again.nystrom.landmark_indices, model.nystrom.landmark_indices)
    b1 = kr.view_batches(X, 3, 32, views=2, seed=4)
    b2 = kr.view_batches(X, 3, 32, views=2, seed=4)
    assert len(b1) == 3 and all(len(v) == 2 and v[0].shape == (32, 4) for v in b1)
    for u, v in zip(b1, b2):
        np.testing.assert_array_equal(u[0], v[0])
    assert not np.array_equal(b1[0][0], b1[0][1])  # two different augmented views
    with pytest.raises(ValueError, match="sqrt"):
        kr.recipe.resolve_m("half", 10)
    assert kr.recipe.resolve_m(50, 10) == 10


def test_default_kernel_uses_the_median_heuristic():
    X = np.random.default_rng(0).normal(size=(200, 3))
    k = kr.default_kernel(X, "rbf", scale=2.0)
    assert k.sigma == pytest.approx(2.0 * kr.median_sigma(X))
    assert kr.default_kernel(X, "linear").name == "linear"
