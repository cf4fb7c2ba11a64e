"""NystromModel gradients, PC init, augmentations, the training loop and checkpoints."""
import numpy as np
import pytest

from krepes_lib import losses
from krepes_lib.augment import IMAGE_DEFAULTS, ImageAugmenter, TableAugmenter, make_augmenter
from krepes_lib.backend import to_host
from krepes_lib.defaults import ADAM
from krepes_lib.evaluate import linear_probe
from krepes_lib.kernels import RBF, median_sigma
from krepes_lib.landmarks import select_landmarks
from krepes_lib.model import NystromModel
from krepes_lib.nystrom import Nystrom
from krepes_lib.optim import Adam
from krepes_lib.options import Options
from krepes_lib.problem import BatchProblem
from krepes_lib.train import fit


def batch_objective(model, name_or_obj, views, state=None):
    obj = losses.make_objective(name_or_obj)
    state = obj.init_state(model) if state is None else state
    return BatchProblem(model, obj, state, views, 2**30), state


def small_basis(xp=np, dtype="float64", n=60, d=4, m=10, seed=0):
    X = np.random.default_rng(seed).normal(size=(n, d))
    nys = Nystrom(RBF(sigma=2.0), xp.asarray(X[:m]), dtype=dtype)
    return xp.asarray(X).astype(dtype), nys


def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


def fd_grad(f, params, eps=1e-6):
    """Central finite differences of the scalar f() over every entry of every array in params."""
    out = {}
    for k, p in params.items():
        g = np.zeros(p.shape)
        for idx in np.ndindex(p.shape):
            old = float(p[idx])
            p[idx] = old + eps
            fp = float(f())
            p[idx] = old - eps
            fm = float(f())
            p[idx] = old
            g[idx] = (fp - fm) / (2 * eps)
        out[k] = g
    return out


# --- model ------------------------------------------------------------------------------
@pytest.mark.parametrize("coords", ["raw", "whitened"])
def test_backward_matches_finite_differences(xp, coords):
    X, nys = small_basis(xp)
    model = NystromModel(nys, h=3, coords=coords, init="random", seed=1)
    K = nys.kernel_rows(X[:7])
    Y = xp.asarray(np.random.default_rng(2).normal(size=(7, 3)))

    def objective():  # s(F) = ½‖F − Y‖² + Σ F³/3, a non-linear scalar function of F
        F = model.forward(K)
        return 0.5 * ((F - Y) ** 2).sum() + (F**3).sum() / 3

    F = model.forward(K)
    grads = model.backward(K, (F - Y) + F**2)
    assert set(grads) == {"W" if coords == "whitened" else "A_tilde", "gamma"}
    ref = fd_grad(objective, model.parameters())
    for k in grads:
        np.testing.assert_allclose(to_host(grads[k]), ref[k], rtol=1e-6, atol=1e-7)


def test_whitened_gradient_is_chain_rule_of_raw():
    X, nys = small_basis()
    raw = NystromModel(nys, h=3, coords="raw")
    wht = NystromModel(nys, h=3, coords="whitened")
    np.testing.assert_allclose(wht.A_tilde, raw.A_tilde, atol=1e-10)
    K = nys.kernel_rows(X)
    dF = np.random.default_rng(3).normal(size=(X.shape[0], 3))
    np.testing.assert_allclose(wht.backward(K, dF)["W"], wht.T.T @ raw.backward(K, dF)["A_tilde"], atol=1e-10)


@pytest.mark.parametrize("coords", ["raw", "whitened"])
def test_pc_init_gives_the_nystrom_feature_map(xp, coords):
    X, nys = small_basis(xp)
    h = 4
    model = NystromModel(nys, h=h, coords=coords, init="pc")
    Phi = nys.feature_map(X)[:, :h]  # K_nm U_h Λ_h^{-1/2}, eq. (nys-pc)
    np.testing.assert_allclose(to_host(model.embed(X)), to_host(Phi), atol=1e-10)
    np.testing.assert_allclose(to_host(model.embed(X, options=Options(memory_budget=2000))), to_host(Phi), atol=1e-10)
    np.testing.assert_allclose(to_host(model.A_tilde.T @ nys.K_mm @ model.A_tilde), np.eye(h), atol=1e-8)
    assert model.n_parameters == nys.m * h + h
    assert float(abs(model.gamma).max()) == 0.0


@pytest.mark.parametrize("coords", ["raw", "whitened"])
def test_random_init_is_seeded_and_scaled(coords):
    X, nys = small_basis(m=40, n=200)
    a = NystromModel(nys, h=30, coords=coords, init="random", seed=5)
    b = NystromModel(nys, h=30, coords=coords, init="random", seed=5)
    c = NystromModel(nys, h=30, coords=coords, init="random", seed=6)
    np.testing.assert_array_equal(a.A_tilde, b.A_tilde)
    assert not np.allclose(a.A_tilde, c.A_tilde)
    # E[ÃᵀK_mmÃ] = I_h: the mean diagonal is about 1 (±30% for 30 columns)
    G = a.A_tilde.T @ nys.K_mm @ a.A_tilde
    assert 0.7 < np.diag(G).mean() < 1.3


def test_losses_own_arrays_and_bad_options():
    """BYOL's predictor/target and KAE's decoder belong to their objectives, not to the model."""
    _, nys = small_basis()
    model = NystromModel(nys, h=3)
    assert set(model.params) == {"W", "gamma"}
    kae = losses.make_objective("kae").init_state(model)
    np.testing.assert_allclose(kae.params["B_dec"], model.A_tilde)
    byol_obj = losses.make_objective("byol")
    byol = byol_obj.init_state(model)
    np.testing.assert_array_equal(byol.params["P"], np.eye(3))
    np.testing.assert_allclose(byol.buffers["target_A"], model.A_tilde)
    A_before = byol.buffers["target_A"].copy()
    model.params["W"] += 1.0
    byol_obj.after_step(model, byol)  # EMA with the loss's rate (spec §3)
    tau = byol_obj.loss.ema
    np.testing.assert_allclose(byol.buffers["target_A"], tau * A_before + (1 - tau) * model.A_tilde, atol=1e-12)
    with pytest.raises(ValueError, match="coords"):
        NystromModel(nys, h=3, coords="polar")
    with pytest.raises(ValueError, match="rank"):
        NystromModel(nys, h=nys.rank + 1)


# --- augmentations ----------------------------------------------------------------------
AUGMENTERS = [
    ("digits", (8, 8)),
    ("rgb", (6, 5, 3)),
    ("table", "table"),
]


@pytest.mark.parametrize("name,shape", AUGMENTERS, ids=[a[0] for a in AUGMENTERS])
def test_augmentations_shape_dtype_determinism_change(xp, dtype, name, shape):
    d = 64 if name == "digits" else (90 if name == "rgb" else 7)
    X = xp.asarray(np.random.default_rng(0).random((33, d))).astype(dtype)
    aug = make_augmenter(shape)
    V1 = aug(X, np.random.default_rng(7))
    V2 = aug(X, np.random.default_rng(7))
    V3 = aug(X, np.random.default_rng(8))
    assert V1.shape == X.shape and V1.dtype == X.dtype and type(V1) is type(X)
    np.testing.assert_array_equal(to_host(V1), to_host(V2))
    assert not np.allclose(to_host(V1), to_host(V3))
    assert float(abs(V1 - X).mean()) > 1e-3
    assert float(abs(X - xp.asarray(np.random.default_rng(0).random((33, d))).astype(dtype)).max()) == 0  # input untouched


def test_shift_is_a_pure_translation():
    H, W, C, p = 5, 6, 2, 2
    X = np.random.default_rng(0).random((40, H * W * C)).astype(np.float32)
    aug = ImageAugmenter((H, W, C), pad=p, noise_std=0, erase_prob=0)
    V = aug(X, np.random.default_rng(1)).reshape(-1, H, W, C)
    padded = np.pad(X.reshape(-1, H, W, C), ((0, 0), (p, p), (p, p), (0, 0)))
    offsets = set()
    for i in range(X.shape[0]):  # reference check, sample by sample
        hits = [(oy, ox) for oy in range(2 * p + 1) for ox in range(2 * p + 1)
                if np.array_equal(padded[i, oy:oy + H, ox:ox + W], V[i])]
        assert hits, f"sample {i} is not a shifted copy"
        offsets.add(hits[0])
    assert len(offsets) > 5  # offsets really vary


def test_flip_and_erasing():
    X = np.random.default_rng(0).random((200, 8 * 8)).astype(np.float32) + 0.5
    flip = ImageAugmenter((8, 8), pad=0, flip=True, noise_std=0, erase_prob=0)
    V = flip(X, np.random.default_rng(2)).reshape(-1, 8, 8)
    Xi = X.reshape(-1, 8, 8)
    same = np.all(V == Xi, axis=(1, 2))
    mirrored = np.all(V == Xi[:, :, ::-1], axis=(1, 2))
    assert np.all(same | mirrored) and 50 < mirrored.sum() < 150
    erase = ImageAugmenter((8, 8), pad=0, noise_std=0, erase_prob=1.0)
    E = erase(X, np.random.default_rng(3))
    zeros = (E == 0).sum(axis=1)
    lo, hi = IMAGE_DEFAULTS["erase_scale"]
    assert np.all(zeros >= 1) and np.all(zeros <= 64)
    assert lo * 64 / 2 < zeros.mean() < hi * 64 * 2
    assert np.all((E == X) | (E == 0))


def test_table_corruption_draws_from_the_column():
    X = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    aug = TableAugmenter(corrupt_frac=0.5, noise_std=0.0)
    V = aug(X, np.random.default_rng(1))
    changed = V != X
    assert 0.3 < changed.mean() < 0.6
    for j in range(X.shape[1]):
        assert np.isin(V[:, j], X[:, j]).all()  # every value comes from the same column


# --- training loop ----------------------------------------------------------------------
LOSS_NAMES = losses.NAMES


@pytest.mark.parametrize("coords", ["raw", "whitened"])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_batch_gradients_match_finite_differences(name, coords):
    """The whole objective of one step (loss on Z, RKHS penalty, KPCA direct term, BYOL
    predictor, KAE decoder) against entry-wise finite differences of its value, float64."""
    X, nys = small_basis(m=8, n=20)
    model = NystromModel(nys, h=3, coords=coords, init="random", seed=0)
    obj = losses.make_objective(name)
    state = obj.init_state(model)
    if name == "byol":
        state.buffers["target_A"] += 0.1 * np.random.default_rng(4).normal(size=state.buffers["target_A"].shape)
    rng = np.random.default_rng(1)
    views = (X[:6],) if obj.views == 1 else (X[:6], X[:6] + 0.1 * rng.normal(size=(6, 4)))
    _, grads = BatchProblem(model, obj, state, views, 2**30).value_and_grad()
    params = {**model.params, **state.params}
    assert set(grads) == set(params)
    ref = fd_grad(lambda: BatchProblem(model, obj, state, views, 2**30).value_and_grad()[0], params)
    for k in grads:
        np.testing.assert_allclose(grads[k], ref[k], rtol=1e-5, atol=1e-6, err_msg=f"{name}: {k}")


def test_a_batch_block_over_the_memory_budget_is_refused():
    X, nys = small_basis(m=10, n=40)
    model = NystromModel(nys, h=3)
    with pytest.raises(MemoryError, match="batch_size"):
        BatchProblem(model, losses.make_objective("vicreg"), losses.ObjectiveState(), (X[:16], X[16:32]),
                     memory_budget=8 * 10 * 3)


def test_adam_uses_the_defaults_and_matches_a_reference():
    p = {"x": np.array([1.0, -2.0])}
    opt = Adam(p)
    o = opt.options
    assert (o.lr, o.betas, o.adam_eps) == (ADAM["lr"], tuple(ADAM["betas"]), ADAM["eps"])
    m = v = np.zeros(2)
    x = np.array([1.0, -2.0])
    b1, b2 = ADAM["betas"]
    for t in range(1, 4):
        g = 2 * x
        opt.update(p, {"x": 2 * p["x"]})
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - ADAM["lr"] * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + ADAM["eps"])
    np.testing.assert_allclose(p["x"], x, rtol=1e-12)


def test_barlow_twins_on_digits_lowers_loss_and_probes_well():
    X, y = digits()
    Xtr, ytr, Xte, yte = X[:1400], y[:1400], X[1400:], y[1400:]
    lm = select_landmarks(Xtr, 150, seed=0)
    nys = Nystrom(RBF(sigma=median_sigma(Xtr)), lm.points)
    model = NystromModel(nys, h=32)

    def probe(mdl):
        return linear_probe(mdl.embed(Xtr), ytr, mdl.embed(Xte), yte, label_fraction=0.1)

    hist = fit(model, Xtr, "barlow_twins", epochs=3, batch_size=256, seed=0,
               augment=make_augmenter((8, 8)), eval_fn=probe, progress=False)
    assert hist.epoch == [1, 2, 3]
    assert hist.loss[-1] < hist.loss[0] - 0.5, hist.loss
    assert hist.probe[-1] > 0.6, hist.probe  # chance is 0.1
    assert all(t > 0 for t in hist.time)


@pytest.mark.parametrize("name", ["barlow_twins", "byol"])
def test_checkpoint_resume_equals_uninterrupted(tmp_path, name):
    X, _ = digits()
    X = X[:300]
    nys = Nystrom(RBF(sigma=median_sigma(X)), X[:40])
    kw = dict(loss=name, batch_size=64, seed=3, augment=make_augmenter((8, 8)), progress=False)
    extras = {}
    full = NystromModel(nys, h=8, **extras)
    h_full = fit(full, X, epochs=4, **kw)
    ck = str(tmp_path / "run.npz")
    part = NystromModel(nys, h=8, **extras)
    fit(part, X, epochs=2, checkpoint=ck, **kw)
    resumed = NystromModel(nys, h=8, **extras)  # a fresh process would start like this
    h_res = fit(resumed, X, epochs=4, checkpoint=ck, **kw)
    assert h_res.epoch == [1, 2, 3, 4]
    np.testing.assert_array_equal(h_res.loss, h_full.loss)
    for k in full.params:
        np.testing.assert_array_equal(resumed.params[k], full.params[k])
    for k in h_full.state.params:
        np.testing.assert_array_equal(h_res.state.params[k], h_full.state.params[k])
    for k in h_full.state.buffers:  # BYOL's EMA target
        np.testing.assert_array_equal(h_res.state.buffers[k], h_full.state.buffers[k])
    # resuming a finished run is a no-op; another configuration is refused
    again = fit(resumed, X, epochs=4, checkpoint=ck, **kw)
    assert again.loss == h_res.loss
    with pytest.raises(ValueError, match="another run: batch_size differs"):
        fit(NystromModel(nys, h=8, **extras), X, epochs=5, checkpoint=ck, **{**kw, "batch_size": 32})


def test_checkpoint_of_another_model_or_data_is_refused(tmp_path):
    """Issue 12: a checkpoint written with other landmarks, another kernel or other data must not
    resume silently into the wrong coordinates."""
    X, _ = digits()
    X = X[:300]
    kw = dict(loss="barlow_twins", batch_size=64, seed=3, progress=False, augment=None)
    ck = str(tmp_path / "run.npz")
    nys = Nystrom(RBF(sigma=median_sigma(X)), X[:40])
    fit(NystromModel(nys, h=8), X, epochs=1, checkpoint=ck, **kw)
    other_landmarks = Nystrom(RBF(sigma=median_sigma(X)), X[40:80])
    with pytest.raises(ValueError, match="the model .kernel, landmarks"):
        fit(NystromModel(other_landmarks, h=8), X, epochs=2, checkpoint=ck, **kw)
    other_kernel = Nystrom(RBF(sigma=2 * median_sigma(X)), X[:40])
    with pytest.raises(ValueError, match="the model"):
        fit(NystromModel(other_kernel, h=8), X, epochs=2, checkpoint=ck, **kw)
    with pytest.raises(ValueError, match="the training data differs"):
        fit(NystromModel(nys, h=8), X[::-1].copy(), epochs=2, checkpoint=ck, **kw)
    with open(ck, "r+b") as f:  # truncate: a clear error naming the file
        f.truncate(100)
    with pytest.raises(ValueError, match="unreadable.*truncated"):
        fit(NystromModel(nys, h=8), X, epochs=2, checkpoint=ck, **kw)


def test_nan_loss_names_epoch_and_batch_and_suggests_lower_lr():
    X, nys = small_basis(m=10, n=40)
    real = losses.get("spectral_contrastive")

    class Breaks:
        """Stand-in loss: NaN from the third call on."""
        name = "breaks"
        calls = 0

        def value_and_grad(self, Za, Zb):
            self.calls += 1
            val, g = real.value_and_grad(Za, Zb)
            return (val * np.nan if self.calls >= 3 else val), g

        def ggn_matvec(self, *args):
            return real.ggn_matvec(*args)

    with pytest.raises(FloatingPointError, match=r"epoch 2, batch 1/2.*lr=0\.001"):
        fit(NystromModel(nys, h=3), X, Breaks(), epochs=3, batch_size=20, progress=False)


def test_fit_rejects_bad_inputs():
    X, nys = small_basis()
    model = NystromModel(nys, h=3)
    with pytest.raises(ValueError, match="shape"):
        fit(model, X[:, :2], "barlow_twins", epochs=1, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="at least 2"):
        fit(model, X[:0], "barlow_twins", epochs=1, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="optimizer"):
        fit(model, X, "barlow_twins", epochs=1, batch_size=8, progress=False, optimizer="lbfgs")
    with pytest.raises(ValueError, match="batch_size"):
        fit(model, X, "barlow_twins", epochs=1, batch_size=1, progress=False)


def test_a_diverging_optimiser_is_stopped_with_a_message():
    """Issue 12: Adam with lr = 1e6 must not report a loss of 1e25 with only a warning."""
    X, y = digits()
    nys = Nystrom(RBF(sigma=median_sigma(X[:500])), X[:60])
    with pytest.raises(FloatingPointError, match="diverged.*lr=1e\\+06"):
        with np.errstate(all="ignore"):
            fit(NystromModel(nys, h=8), X[:500], "vicreg", epochs=3, batch_size=64, lr=1e6,
                progress=False, augment=make_augmenter((8, 8)))
