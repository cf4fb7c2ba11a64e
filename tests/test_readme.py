"""The README's blocks run as written (with the offline data; the ResNet-18 block at a small size)."""
import contextlib
import io
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _block(name):
    text = (ROOT / "README.md").read_text()
    body = text.split(f"<!-- snippet:{name} -->")[1].split(f"<!-- /snippet:{name} -->")[0]
    return "\n".join(ln for ln in body.strip().splitlines() if not ln.startswith("```"))


def _run(name):
    """Execute the README block ``name`` with the Adult files; return (printed lines, namespace)."""
    from krepes_lib import data

    try:
        data.find_file("adult", "adult.data")
    except FileNotFoundError:
        pytest.skip("the Adult files are not in KREPES_DATA")
    out = io.StringIO()
    ns = {}
    with contextlib.redirect_stdout(out):
        exec(compile(_block(name), "README.md", "exec"), ns)
    return out.getvalue().splitlines(), ns


def test_readme_api_snippet_runs():
    lines, ns = _run("api")
    acc = float(lines[0])
    assert 0.5 < acc <= 1.0
    assert ns["top"].indices.shape == (2000, 5)
    assert len(ns["hist"].loss) == 5
    s = ns["audit"].summary()  # at the defaults the README's audit converges and its step lowers its loss
    assert s["cg_converged"] and s["cg_relative_residual"] <= 1e-4 and not s["loss_rose"]
    assert s["damping_accepted"] == s["damping"] == 1e-2 and s["loss_after"] < s["loss_before"]


def test_readme_network_audit_snippet_runs():
    pytest.importorskip("torch")
    lines, ns = _run("neural")
    acc = float(lines[-1])
    assert 0.5 < acc <= 1.0
    assert ns["audit"].loss_after < ns["audit"].loss_before
    assert ns["top"].indices.shape == (500, 5)


def test_readme_resnet_snippet_runs_small(tmp_path, monkeypatch):
    """The ResNet-18 block, verbatim except for its size: the PNG subset of CIFAR-10 (48 rows),
    a narrow ResNet-18 (width 4, the hand-written one) and a checkpoint written here the way
    solo-learn saves one (after 2 training steps)."""
    torch = pytest.importorskip("torch")
    from krepes_lib import data
    from krepes_lib.neural.recipes import save_like, train_briefly
    from krepes_lib.neural.resnet import resnet18

    try:
        data.find_file("cifar10", "kaggle_cifar10_train_first200_png.tar.gz")
    except FileNotFoundError:
        pytest.skip("the CIFAR-10 PNG subset is not in KREPES_DATA")
    code = _block("resnet")
    swaps = {'load_split("cifar10", n_train=2000, n_test=500, seed=0)':
             'load_split("cifar10_png200", n_train=48, n_test=16, seed=0)',
             "resnet18(cifar_stem=True)": "resnet18(cifar_stem=True, width=4, torchvision=False)",
             "time_budget=600, n_batches=2": "time_budget=600, n_batches=1, batch_size=16, m=6, h=4"}
    for old, new in swaps.items():
        assert old in code, old
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    split = data.load_split("cifar10_png200", n_train=48, n_test=16, seed=0)
    net, proj, _ = train_briefly(resnet18(width=4, torchvision=False), split.X, split.image_shape, steps=2,
                                 batch_size=8)
    save_like("solo-learn", net, proj, tmp_path / "solo-learn.ckpt")
    out = io.StringIO()
    ns = {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), ns)
    text = out.getvalue()
    assert "TorchNTK plan:" in text and "top1_share" in text
    assert (tmp_path / "top5.csv").read_text().count("\n") == 16 * 5 + 1
    from krepes_lib.neural import TorchNTK

    k = TorchNTK(ns["net"], implementation="auto", image_shape=split.image_shape, layout="NCHW")
    import krepes_lib as kr

    b = kr.load_audit(tmp_path / "resnet18-audit.npz", kernel=k)
    assert b.summary()["loss_after"] == ns["audit"].loss_after
    assert torch.is_tensor(kr.neural.to_torch(b.embed(split.X_test)))
