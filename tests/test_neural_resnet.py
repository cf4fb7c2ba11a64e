"""The ResNet-18 recipe at a small size: torchvision's module names, checkpoints written the way
torchvision/timm, solo-learn and lightly save them (after a brief training) and read back, and
the audit of CIFAR-10 rows with the auto-chosen eNTK, its kernel error measured against the
exact eNTK."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import krepes_lib as kr  # noqa: E402
from krepes_lib.neural import TorchNTK, exact_gram  # noqa: E402
from krepes_lib.neural.recipes import audit_resnet18, save_like, train_briefly  # noqa: E402
from krepes_lib.neural.resnet import ResNet, load_backbone, resnet18, torchvision_available  # noqa: E402


def torchvision_resnet18_keys():
    """torchvision.models.resnet18().state_dict() keys (torchvision's naming, written out)."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = ["conv1.weight"] + [f"bn1.{b}" for b in bn]
    for layer in range(1, 5):
        for block in range(2):
            p = f"layer{layer}.{block}"
            keys += [f"{p}.conv1.weight"] + [f"{p}.bn1.{b}" for b in bn]
            keys += [f"{p}.conv2.weight"] + [f"{p}.bn2.{b}" for b in bn]
            if layer > 1 and block == 0:
                keys += [f"{p}.downsample.0.weight"] + [f"{p}.downsample.1.{b}" for b in bn]
    return keys + ["fc.weight", "fc.bias"]


def test_module_names_are_torchvisions():
    ours = ResNet(num_classes=1000, cifar_stem=False)
    assert list(ours.state_dict()) == torchvision_resnet18_keys()
    assert sum(p.numel() for p in ours.parameters()) == 11_689_512  # torchvision's resnet18
    assert sum(p.numel() for p in resnet18(torchvision=False).parameters()) == 11_168_832  # CIFAR stem, no fc
    if torchvision_available():
        import torchvision

        assert list(torchvision.models.resnet18().state_dict()) == torchvision_resnet18_keys()


@pytest.fixture(scope="module")
def cifar():
    try:
        return kr.data.load_split("cifar10_png200", n_train=48, n_test=16, seed=0)
    except FileNotFoundError:
        pytest.skip("the CIFAR-10 PNG subset is not in KREPES_DATA")


@pytest.fixture(scope="module")
def trained(cifar):
    net = resnet18(width=4, torchvision=False)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    net, proj, losses = train_briefly(net, cifar.X, cifar.image_shape, steps=3, batch_size=16)
    moved = max(float((net.state_dict()[k].float() - start[k].float()).abs().max()) for k in start)
    assert moved > 0 and all(np.isfinite(losses))
    return net, proj


@pytest.mark.parametrize("library", ["torchvision", "timm", "solo-learn", "lightly"])
def test_checkpoints_of_ssl_libraries_load(trained, cifar, library, tmp_path):
    net, proj = trained
    path = save_like(library, net, proj, tmp_path / f"{library}.ckpt")
    fresh = resnet18(width=4, torchvision=False)
    info = load_backbone(fresh, path)
    x = torch.from_numpy(cifar.X[:4]).reshape(4, 32, 32, 3).permute(0, 3, 1, 2)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), net.eval()(x))
    assert info["dropped"]  # the classifier / projector was left out
    if library == "lightly":
        assert info["renamed"]["4"] == "layer1"
    wrong = resnet18(width=4, torchvision=False, cifar_stem=False)
    with pytest.raises(ValueError, match="shape mismatch.*conv1.weight"):
        load_backbone(wrong, path)


def test_resnet18_recipe_small(trained, cifar, tmp_path, capsys):
    net, proj = trained
    path = save_like("solo-learn", net, proj, tmp_path / "solo.ckpt")
    r = audit_resnet18(cifar, path, width=4, error=0.25, m=8, h=4, n_batches=1, batch_size=16, error_rows=3,
                       error_dtype="float64", memory_budget=2**28)
    out = capsys.readouterr().out
    assert "TorchNTK plan:" in out and "ResNet-18 audit:" in out  # the estimate came first
    a = r["audit"]
    assert np.isfinite(a.loss_after) and a.kernel.implementation_used in ("exact", "project", "sketch")
    assert r["kernel_error"]["error"] < 0.6 and r["kernel_error"]["n_rows"] == 3
    assert 0 < r["concentration"]["top1_share"] <= 1 and 0 <= r["probe"] <= 1
    assert r["checkpoint"] > 0 and r["peak_rss_mb"] > 0
    # the saved audit reloads with the kernel (the network is not in the file), same plan
    a.save(tmp_path / "a.npz")
    k2 = TorchNTK(a.kernel.module, implementation="auto", image_shape=cifar.image_shape, layout="NCHW",
                  memory_budget=2**28)
    b = kr.load_audit(tmp_path / "a.npz", kernel=k2)
    assert np.array_equal(b.top_influential(cifar.X_test[:4], K=2).indices,
                          a.top_influential(cifar.X_test[:4], K=2).indices)
    other = resnet18(width=4, torchvision=False)
    with pytest.raises(ValueError, match="another model"):
        kr.load_audit(tmp_path / "a.npz", kernel=TorchNTK(torch.nn.Sequential(kr.neural.Normalize(), other),
                                                           implementation="auto", image_shape=cifar.image_shape,
                                                           layout="NCHW", memory_budget=2**28))


def test_exact_gram_matches_the_vmap_kernel():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(8, 3)).double()
    X = np.random.default_rng(0).random((5, 48))
    for kw in ({}, {"contraction": "mean"}, {"normalize": True}):
        k = TorchNTK(net, image_shape=(4, 4, 3), layout="NCHW", **kw)
        assert np.abs(exact_gram(k, X) - k(X)).max() < 1e-10 * max(1.0, np.abs(k(X)).max())
