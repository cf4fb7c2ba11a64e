"""SSL networks trained with the library's own losses: the autograd Function is checked by
gradcheck (float64 finite differences of the library value), training is deterministic, and
trained weights are cached by configuration."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from krepes_lib import losses  # noqa: E402
from krepes_lib.neural import networks, ssl  # noqa: E402


@pytest.mark.parametrize("name", ssl.SSL_LOSSES)
def test_function_gradient_is_the_library_gradient(name):
    """gradcheck compares the Function's backward (the hand-derived gradient) with central
    differences of its forward (the library value) in float64."""
    g = torch.Generator().manual_seed(0)
    Za, Zb = (torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))
    loss = losses.get(name)
    if name == "byol":
        P = (torch.eye(3, dtype=torch.float64) + 0.3 * torch.randn(3, 3, generator=g, dtype=torch.float64))
        P.requires_grad_(True)
        Ta, Tb = (torch.randn(6, 3, generator=g, dtype=torch.float64) for _ in range(2))
        args, fn = (Za, Zb, P), (lambda a, b, p: ssl.ssl_loss(loss, a, b, p, Ta, Tb))
    else:
        args, fn = (Za, Zb), (lambda a, b: ssl.ssl_loss(loss, a, b))
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-7, rtol=1e-5)
    # and the value is the library's value
    arrays = [a.detach().numpy() for a in args]
    ref = (loss.value(arrays[0], arrays[1], Ta.numpy(), Tb.numpy(), arrays[2]) if name == "byol"
           else loss.value(*arrays))
    assert float(fn(*args)) == pytest.approx(float(ref), rel=1e-12)


def test_ssl_loss_refuses_other_losses():
    Z = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="cannot train a network"):
        ssl.ssl_loss("kpca", Z, Z)
    with pytest.raises(ValueError, match="loss="):
        ssl.SSLConfig(dataset="adult", loss="kae")


@pytest.mark.parametrize("loss", ["barlow_twins", "byol"])
def test_training_is_deterministic_on_cpu(loss):
    X = np.random.default_rng(0).normal(size=(96, 5)).astype(np.float32)
    cfg = ssl.SSLConfig(dataset="synthetic", loss=loss, size="tiny", epochs=2, batch_size=32)
    net1, h1 = ssl.train_ssl(cfg, X, progress=False)
    net2, h2 = ssl.train_ssl(cfg, X, progress=False)
    assert h1 == h2 and len(h1) == 2 and np.isfinite(h1).all()
    for (k, a), b in zip(net1.state_dict().items(), net2.state_dict().values()):
        assert torch.equal(a, b), k
    init = networks.make_network("mlp", d_in=5, size="tiny", seed=0)
    moved = [not torch.equal(a, b) for a, b in zip(net1.parameters(), init.parameters())]
    assert all(moved)  # every parameter was trained (gradients reach all layers)
    other, _ = ssl.train_ssl(ssl.SSLConfig(dataset="synthetic", loss=loss, size="tiny", epochs=2,
                                           batch_size=32, seed=1), X, progress=False)
    assert not torch.equal(next(other.parameters()), next(net1.parameters()))


def test_cnn_trains_on_flattened_images_and_embeds():
    X = np.random.default_rng(1).random((64, 8 * 8 * 3)).astype(np.float32)
    cfg = ssl.SSLConfig(dataset="synthetic", loss="simclr", size="tiny", epochs=1, batch_size=32)
    net, hist = ssl.train_ssl(cfg, X, image_shape=(8, 8, 3), progress=False)
    Z = net.embed(X)
    assert Z.shape == (64, networks.SIZES["tiny"]["rep"]) and isinstance(Z, np.ndarray)
    with torch.no_grad():
        ref = net.backbone(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(Z, ref, rtol=1e-5, atol=1e-6)
    # the rows are unflattened row-major (H, W, C), as krepes_lib.data stores images
    img = networks.RowsToImages((8, 8, 3))(torch.from_numpy(X[:1]))
    assert img.shape == (1, 3, 8, 8) and float(img[0, 2, 1, 0]) == X[0, (1 * 8 + 0) * 3 + 2]


def test_cache_reuse_force_and_key(tmp_path, monkeypatch):
    monkeypatch.setenv("KREPES_CACHE", str(tmp_path))
    cfg = ssl.SSLConfig.for_profile("adult", "vicreg", "ci", n_train=128, n_test=64)
    try:
        first = ssl.load_or_train(cfg, progress=False)
    except FileNotFoundError as err:
        pytest.skip(f"Adult not available offline: {err}")
    assert not first.from_cache and first.path.parent == tmp_path / "networks"
    again = ssl.load_or_train(cfg, progress=False)
    assert again.from_cache and again.key == first.key and again.losses == first.losses
    for a, b in zip(first.network.state_dict().values(), again.network.state_dict().values()):
        assert torch.equal(a, b)
    forced = ssl.load_or_train(cfg, force=True, progress=False)
    assert not forced.from_cache and forced.losses == first.losses  # deterministic retrain
    assert ssl.cache_key(ssl.SSLConfig.for_profile("adult", "vicreg", "ci", n_train=128, n_test=64,
                                                   lr=2e-3)) != first.key
    assert ssl.cache_key(ssl.SSLConfig.for_profile("adult", "vicreg", "ci", n_train=128, n_test=64,
                                                   augment={"corrupt_frac": 0.5})) != first.key
    assert ssl.code_hash("vicreg") != ssl.code_hash("simclr")  # the loss's own module is in the key
    stored = [p.name for p in (tmp_path / "networks").iterdir() if not p.name.endswith(".lock")]
    assert stored == [first.path.name]  # no temp files (the training lock file stays beside it)
    probe = ssl.probe_trained_vs_init(first)
    assert set(probe) == {"trained", "init"} and all(0.0 <= v <= 1.0 for v in probe.values())
