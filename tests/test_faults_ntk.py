"""Fault trials of TorchNTK (review ``faults-round2.md``: #30, #32, #34, #35, #36, #37, #41,
#43) and the image-layout trap of ``users-round2.md``: each gives the correct result or a
clear error that names the cause and the fix. Each failed on main at 09b9e67."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import krepes_lib as kr  # noqa: E402
from krepes_lib.neural import TorchNTK  # noqa: E402


def mlp(seed=0, d=6, out=3):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.Tanh(), torch.nn.Linear(16, out))


def X_(n=12, d=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


class Tupled(torch.nn.Module):
    def __init__(self, out="tuple"):
        super().__init__()
        self.net, self.out = mlp(), out

    def forward(self, x):
        y = self.net(x)
        return (y, y.sum()) if self.out == "tuple" else {"features": y}


@pytest.mark.parametrize("out", ["tuple", "dict"])
def test_30_module_returning_a_tuple_or_dict_is_a_clear_error(out):
    with pytest.raises(TypeError, match="returned a (tuple|dict), not one tensor; wrap it"):
        TorchNTK(Tupled(out))(X_())


def test_32_frozen_parameters_are_left_out_by_default_and_all_is_an_option():
    net = mlp(1)
    for p in net[0].parameters():
        p.requires_grad_(False)
    X = X_()
    k = TorchNTK(net)
    assert k.n_parameters == 16 * 3 + 3 and k.n_parameters_total == 6 * 16 + 16 + 16 * 3 + 3
    head = torch.nn.Sequential(torch.nn.Tanh(), net[2])
    feats = net[0](torch.from_numpy(X).float()).detach().double().numpy()
    ref = TorchNTK(head.double())(feats)  # the head's eNTK on the frozen layer's outputs
    assert np.abs(k(X) - ref).max() / np.abs(ref).max() < 1e-5
    full = TorchNTK(net, parameters="all")
    assert full.n_parameters == k.n_parameters_total
    assert np.abs(full(X) - k(X)).max() > 1e-3  # the frozen layer's share is real
    for p in net.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad=False.*parameters='all'"):
        TorchNTK(net)


def test_34_bfloat16_dtype_has_the_float16_message():
    for dt in ("bfloat16", "float16"):
        with pytest.raises(ValueError, match="computes in 'float32' or 'float64'"):
            TorchNTK(mlp(), dtype=dt)


def test_35_wrong_width_names_the_input_shape():
    with pytest.raises(ValueError, match="rows of width 5.*input_shape"):
        TorchNTK(mlp())(X_(d=5))


def test_36_meta_device_is_a_clear_error():
    with pytest.raises(ValueError, match="'meta' device.*'cpu' or 'cuda'"):
        TorchNTK(mlp().to("meta"))


def test_37_nan_weights_and_nan_kernels_are_clear_errors():
    net = mlp()
    with torch.no_grad():
        net[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="'0.weight' of the module holds NaN"):
        TorchNTK(net)

    class NaNKernel(kr.Kernel):
        def _block(self, xp, X, Y):
            return np.full((X.shape[0], Y.shape[0]), np.nan)

        def _diag(self, xp, X):
            return np.full(X.shape[0], np.nan)

    with pytest.raises(ValueError, match="kernel returned NaN or inf on the landmarks"):
        kr.Nystrom(NaNKernel(), X_(5))


def test_41_float64_inputs_are_not_rounded_to_float32():
    net = mlp(2).double()
    X = X_(seed=3)
    k64 = TorchNTK(net, dtype="float64")
    a = k64(X)
    c = k64(X.astype(np.float32).astype(np.float64))
    assert a.dtype == np.float64 and np.abs(a - c).max() > 0  # not the rounded rows' kernel
    assert TorchNTK(net)(X).dtype == np.float64  # the default follows the input
    assert TorchNTK(net)(X.astype(np.float32)).dtype == np.float32


def test_43_the_feature_cache_is_one_process_wide_budget():
    from krepes_lib.neural.features import feature_store

    X = X_(400, seed=4).astype(np.float32)
    budget = 2 * 2**20
    opts = kr.Options(feature_cache_bytes=budget)
    from krepes_lib.options import apply_feature_budget

    apply_feature_budget(opts)
    try:
        keep = []
        for seed in range(3):
            k = TorchNTK(mlp(seed), contraction="mean")
            model = kr.NystromModel(kr.Nystrom(k, kr.select_landmarks(X, m=20, seed=seed)), h=4)
            model.embed(X)
            keep.append(model)
        store = feature_store()
        assert store.used <= budget  # three kernels kept alive share one budget
        assert store.stats["spilled"] + store.stats["dropped"] > 0  # the rest went to disk or away
    finally:
        apply_feature_budget(kr.Options())
    assert kr.Options().feature_cache_bytes == 512 * 2**20


def test_images_channels_first_input_shape_is_refused_and_layout_permutes():
    """users-round2 user 2: HWC rows reshaped to (3, H, W) scramble the channels silently."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 2 * 2, 2))
    imgs = np.random.default_rng(0).random((5, 4, 4, 3))  # (n, H, W, C) as the loaders hold them
    X = imgs.reshape(5, -1)  # the library's rows: channels-last
    with pytest.raises(ValueError, match="channels-first.*image_shape=\\(4, 4, 3\\).*layout='NCHW'"):
        TorchNTK(net, input_shape=(3, 4, 4))
    k = TorchNTK(net, image_shape=(4, 4, 3), layout="NCHW")
    chw_rows = imgs.transpose(0, 3, 1, 2).reshape(5, -1)  # what the network must see
    plain = TorchNTK(torch.nn.Sequential(torch.nn.Unflatten(1, (3, 4, 4)), *net))
    assert np.abs(k(X) - plain(chw_rows)).max() < 1e-10
    with pytest.raises(ValueError, match="image_shape=\\(4, 4, 3\\) holds 48 numbers but X has 47"):
        k(X[:, :47])
    with pytest.raises(ValueError, match="layout='NCWH'"):
        TorchNTK(net, image_shape=(4, 4, 3), layout="NCWH")
    with pytest.raises(ValueError, match="declared once"):
        TorchNTK(net, image_shape=(4, 4, 3), input_shape=(3, 4, 4))


def test_auto_augment_is_image_augmentation_for_image_kernels():
    """users-round2: augment='auto' applied table corruption to images."""
    from krepes_lib.augment import ImageAugmenter, auto_for_kernel
    from krepes_lib.train import resolve_augment

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(), torch.nn.Linear(8, 2))
    k = TorchNTK(net, image_shape=(4, 4, 3), layout="NCHW")
    aug = resolve_augment(auto_for_kernel("auto", k), views=2)
    assert isinstance(aug, ImageAugmenter) and aug.image_shape == (4, 4, 3)
    one = TorchNTK(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)), input_shape=(1, 4, 4))
    assert isinstance(resolve_augment(auto_for_kernel("auto", one), views=2), ImageAugmenter)
    assert auto_for_kernel("auto", kr.RBF(1.0)) == "auto"
    X = np.random.default_rng(0).random((6, 48)).astype(np.float32)
    model = kr.NystromModel(kr.Nystrom(k, X[:4]), h=2)
    a = kr.audit(model, "barlow_twins", X, n_batches=1, batch_size=6, seed=0)
    assert np.isfinite(a.loss_after)
