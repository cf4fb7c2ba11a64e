"""SSL networks trained here: an MLP encoder for tables and a small CNN for images.

Book: *The empirical NTK of a network* (``book/entk.md``), section "Networks trained here".

Both take the library's rows as they are (tables: standardised columns; images: rows
flattened row-major from (H, W[, C]) with values in [0, 1], :mod:`krepes_lib.data`), so the
same X feeds the network, its eNTK (:class:`krepes_lib.neural.TorchNTK`) and the kernel
models. An :class:`SSLNetwork` is a backbone (the representation that is probed and whose
eNTK is audited) followed by a projector head that only the SSL loss sees (SimCLR/Barlow
Twins practice).

Sizes (:data:`SIZES`): ``tiny`` for tests/ci, ``quick`` for a 2-core CPU (minutes for a few
thousand rows), ``paper`` for one GPU. They are this project's choices: the paper does not
publish its architectures.
"""
from __future__ import annotations

from ._torch import from_tensor, require_torch, to_tensor, torch_dtype

torch = require_torch()
from torch import nn  # noqa: E402

__all__ = ["RowsToImages", "MLPEncoder", "SmallConvNet", "SSLNetwork", "make_network", "SIZES", "count_parameters"]

#: Widths per size: MLP hidden widths, CNN channels, representation and projector dims.
SIZES = {
    "tiny": {"mlp": (32,), "channels": (4, 8), "rep": 16, "proj": (32, 16)},
    "quick": {"mlp": (256, 256), "channels": (16, 32), "rep": 64, "proj": (128, 64)},
    "paper": {"mlp": (1024, 1024, 512), "channels": (64, 128, 256), "rep": 256, "proj": (1024, 256)},
}


class RowsToImages(nn.Module):
    """Rows (B, H·W·C), row-major (H, W, C), to NCHW images (B, C, H, W)."""

    def __init__(self, image_shape):
        super().__init__()
        shape = tuple(int(s) for s in image_shape)
        if len(shape) == 2:
            shape = shape + (1,)
        if len(shape) != 3:
            raise ValueError(f"image_shape={image_shape!r} must be (H, W) or (H, W, C).")
        self.image_shape = shape

    def forward(self, x):
        H, W, C = self.image_shape
        return x.reshape(x.shape[0], H, W, C).permute(0, 3, 1, 2)


class MLPEncoder(nn.Sequential):
    """Linear → BatchNorm → ReLU blocks, then a linear map to the representation."""

    def __init__(self, d_in: int, widths=(256, 256), out: int = 64, batchnorm: bool = True):
        layers, prev = [], int(d_in)
        for w in widths:
            layers += [nn.Linear(prev, int(w))]
            if batchnorm:
                layers += [nn.BatchNorm1d(int(w))]
            layers += [nn.ReLU()]
            prev = int(w)
        layers += [nn.Linear(prev, int(out))]
        super().__init__(*layers)


class SmallConvNet(nn.Sequential):
    """(conv 3×3 → BatchNorm → ReLU → max-pool 2) per channel width, adaptive average pool to
    4×4 (2×2 for small images), then a linear map to the representation. Takes flattened rows."""

    def __init__(self, image_shape, channels=(16, 32), out: int = 64, batchnorm: bool = True):
        to_img = RowsToImages(image_shape)
        H, W, C = to_img.image_shape
        layers, prev, side = [to_img], C, min(H, W)
        for c in channels:
            layers += [nn.Conv2d(prev, int(c), 3, padding=1)]
            if batchnorm:
                layers += [nn.BatchNorm2d(int(c))]
            layers += [nn.ReLU()]
            if side >= 8:
                layers += [nn.MaxPool2d(2)]
                side //= 2
            prev = int(c)
        pool = 4 if side >= 4 else max(1, side)
        layers += [nn.AdaptiveAvgPool2d(pool), nn.Flatten(), nn.Linear(prev * pool * pool, int(out))]
        super().__init__(*layers)


def _projector(rep: int, widths) -> nn.Sequential:
    layers, prev = [], int(rep)
    for w in widths[:-1]:
        layers += [nn.Linear(prev, int(w)), nn.BatchNorm1d(int(w)), nn.ReLU()]
        prev = int(w)
    layers += [nn.Linear(prev, int(widths[-1]))]
    return nn.Sequential(*layers)


class SSLNetwork(nn.Module):
    """Backbone (the representation) + projector (seen by the SSL loss only).

    ``forward(x)`` is the projector output the loss is computed on; :meth:`embed` returns
    the backbone representation of NumPy/CuPy rows (eval mode, chunked, no autograd).
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.projector = projector

    def forward(self, x):
        return self.projector(self.backbone(x))

    def embed(self, X, batch: int = 1024, head: bool = False):
        """Representations of rows X (NumPy or CuPy, float32/64) in X's namespace."""
        was = self.training
        self.eval()
        p = next(self.parameters())
        out = []
        try:
            with torch.no_grad():
                for i in range(0, X.shape[0], batch):
                    x = to_tensor(X[i:i + batch]).to(device=p.device, dtype=p.dtype)
                    out.append(self(x) if head else self.backbone(x))
        finally:
            self.train(was)
        return from_tensor(torch.cat(out), X)


def make_network(arch: str, d_in: int | None = None, image_shape=None, size: str = "quick",
                 seed: int = 0, dtype="float32") -> SSLNetwork:
    """A seeded :class:`SSLNetwork`: ``arch="mlp"`` (tables, needs ``d_in``) or ``"cnn"``
    (images, needs ``image_shape`` (H, W) or (H, W, C)); ``size`` one of :data:`SIZES`.

    The weights are PyTorch's default initialisation drawn under ``torch.manual_seed(seed)``
    with the global RNG state restored afterwards.
    """
    if size not in SIZES:
        raise ValueError(f"size={size!r}; choose one of {sorted(SIZES)}.")
    cfg = SIZES[size]
    state = torch.random.get_rng_state()
    torch.manual_seed(int(seed))
    try:
        if arch == "mlp":
            if d_in is None or int(d_in) < 1:
                raise ValueError("make_network('mlp') needs d_in, the number of table columns.")
            backbone = MLPEncoder(int(d_in), cfg["mlp"], cfg["rep"])
        elif arch == "cnn":
            if image_shape is None:
                raise ValueError("make_network('cnn') needs image_shape=(H, W) or (H, W, C).")
            backbone = SmallConvNet(image_shape, cfg["channels"], cfg["rep"])
        else:
            raise ValueError(f"arch={arch!r}; use 'mlp' (tables) or 'cnn' (images).")
        net = SSLNetwork(backbone, _projector(cfg["rep"], cfg["proj"]))
    finally:
        torch.random.set_rng_state(state)
    return net.to(torch_dtype(dtype))


def count_parameters(module) -> int:
    """Number of trainable numbers of a module."""
    return int(sum(p.numel() for p in module.parameters()))

