"""A ResNet-18 with torchvision's module names, and checkpoints of torchvision, timm, lightly
and solo-learn loaded into it.

Book: *The empirical NTK of a network* (``book/entk.md``), section "Auditing a ResNet-18".

torchvision is optional here: on this project's CPU machines it needs another torch build
(several GB) than the one the project pins. :func:`resnet18` therefore returns
``torchvision.models.resnet18`` when torchvision is importable (and the standard width is
asked for), and otherwise this module's :class:`ResNet`, written so that its module names —
and so its ``state_dict`` keys — are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0``, ..., ``fc``; tested against the key list of torchvision's
``resnet18``). A checkpoint made by either loads into either. ``cifar_stem=True`` is the
usual CIFAR variant of SSL libraries (solo-learn, lightly): a 3×3 stride-1 first convolution
and no max-pooling, for 32×32 images.

:func:`load_backbone` reads the ways those libraries save a backbone — a plain state dict
(torchvision, timm), a Lightning checkpoint ``{"state_dict": {"backbone.conv1.weight": ...,
"projector.0.weight": ...}}`` (solo-learn), a model whose ``backbone`` is
``nn.Sequential(*list(resnet.children())[:-1])`` (lightly: ``backbone.0.weight``,
``backbone.4.0.conv1.weight``, ``projection_head.layers.0.weight``) — drops the projector /
classifier / momentum copies, and loads the rest strictly (an error lists what is missing).
"""
from __future__ import annotations

import os
import re

from ._torch import require_torch

torch = require_torch()
from torch import nn  # noqa: E402

__all__ = ["ResNet", "BasicBlock", "resnet18", "load_backbone", "Normalize", "CIFAR10_MEAN", "CIFAR10_STD",
           "torchvision_available"]

#: Per-channel statistics of the CIFAR-10 training images (RGB, pixels in [0, 1]), as used by
#: solo-learn and lightly for their CIFAR recipes.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

# prefixes of keys that are not the backbone (projectors, predictors, classifiers, EMA copies)
_DROP = re.compile(r"^(projector|projection_head|prediction_head|predictor|momentum_\w+|classifier|"
                   r"head|online_head|linear|teacher\w*)\.")
_WRAP = ("module.", "model.", "encoder.", "backbone.", "_orig_mod.")


def torchvision_available() -> bool:
    try:
        import torchvision  # noqa: F401
    except Exception:  # ImportError, or a torchvision built for another torch
        return False
    return True


class BasicBlock(nn.Module):
    """torchvision's ``BasicBlock``: conv3×3 → BN → ReLU → conv3×3 → BN, plus the identity or a
    1×1-conv + BN ``downsample``, then ReLU."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """ResNet with torchvision's module names (``BasicBlock`` only: ResNet-18/34).

    Parameters
    ----------
    layers : tuple of 4 ints
        Blocks per stage ((2, 2, 2, 2) for ResNet-18).
    num_classes : int or None
        None: ``fc`` is the identity and the output is the 8·width-d pooled representation (an
        SSL backbone); an int: a linear classifier.
    cifar_stem : bool
        3×3 stride-1 ``conv1`` and no max-pooling (32×32 inputs) instead of 7×7 stride 2 + pool.
    width : int
        Channels of the first stage (64 in the standard network; smaller for tests).
    """

    def __init__(self, layers=(2, 2, 2, 2), num_classes=None, cifar_stem=True, width=64):
        super().__init__()
        self.inplanes = int(width)
        if cifar_stem:
            self.conv1 = nn.Conv2d(3, self.inplanes, 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, self.inplanes, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar_stem else nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(8 * width, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Identity() if num_classes is None else nn.Linear(8 * width, int(num_classes))
        for mod in self.modules():  # torchvision's initialisation
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(mod, nn.BatchNorm2d):
                nn.init.constant_(mod.weight, 1)
                nn.init.constant_(mod.bias, 0)

    def _make_layer(self, planes, blocks, stride=1):
        down = None
        if stride != 1 or self.inplanes != planes:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, down)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes=None, cifar_stem: bool = True, width: int = 64, torchvision: bool | None = None):
    """A randomly initialised ResNet-18 (NCHW input) with torchvision's module names.

    ``torchvision=None`` uses torchvision's own ``resnet18`` when it is importable and
    ``width == 64`` (its stem swapped for the CIFAR one when ``cifar_stem``), else
    :class:`ResNet`; ``True`` / ``False`` force one. Either way ``fc`` is the identity when
    ``num_classes`` is None (the 512-d backbone representation). Load weights with
    :func:`load_backbone`.
    """
    use_tv = torchvision_available() and width == 64 if torchvision is None else bool(torchvision)
    if not use_tv:
        return ResNet((2, 2, 2, 2), num_classes=num_classes, cifar_stem=cifar_stem, width=width)
    if width != 64:
        raise ValueError(f"width={width}: torchvision's resnet18 has width 64; pass torchvision=False.")
    import torchvision.models as tvm

    net = tvm.resnet18(weights=None, num_classes=1000 if num_classes is None else int(num_classes))
    if cifar_stem:
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        net.maxpool = nn.Identity()
    if num_classes is None:
        net.fc = nn.Identity()
    return net


class Normalize(nn.Module):
    """(x − mean) / std per channel of NCHW images (the input normalisation of the recipe
    the network was trained with; a buffer, so it is part of the network's state)."""

    def __init__(self, mean=CIFAR10_MEAN, std=CIFAR10_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def _unwrap(ckpt):
    """The state dict inside a checkpoint: Lightning's ``state_dict``, ``model``, ``net``..."""
    if not isinstance(ckpt, dict):
        if hasattr(ckpt, "state_dict"):
            return ckpt.state_dict()
        raise TypeError(f"checkpoint is a {type(ckpt).__name__}; pass a path, a state dict or a module.")
    for key in ("state_dict", "model", "model_state_dict", "net", "backbone"):
        inner = ckpt.get(key)
        if isinstance(inner, dict) and inner and all(isinstance(k, str) for k in inner):
            if any(torch.is_tensor(v) for v in inner.values()):
                return inner
    return ckpt


def load_backbone(model, checkpoint, strict: bool = True) -> dict:
    """Load a backbone's weights saved by torchvision, timm, solo-learn or lightly into ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        The backbone, e.g. :func:`resnet18` (its ``fc`` the identity).
    checkpoint : path, dict or module
        ``torch.load``-able file (read with ``weights_only=True``), a state dict, or a
        Lightning-style dict holding one under ``state_dict`` / ``model``.
    strict : bool
        Every tensor of ``model`` must be found (default).

    Returns
    -------
    dict with ``loaded`` (keys loaded), ``dropped`` (keys of heads and copies left out) and
    ``renamed`` (how lightly's ``nn.Sequential`` indices were mapped to module names).

    Raises
    ------
    ValueError
        When tensors of the model are missing or shapes differ: the message lists them and
        the prefixes found in the file.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = _unwrap(checkpoint)
    own = model.state_dict()
    dropped, renamed = [], {}
    clean = {}
    for k, v in state.items():
        if not torch.is_tensor(v):
            continue
        key = k
        changed = True
        while changed:  # strip wrappers: DDP's module., Lightning's model., SSL's backbone.
            changed = False
            for w in _WRAP:
                if key.startswith(w) and key not in own:
                    key, changed = key[len(w):], True
        if _DROP.match(k) or _DROP.match(key) or (key.startswith("fc.") and not any(o.startswith("fc.") for o in own)):
            dropped.append(k)
            continue
        clean[key] = v
    # lightly: nn.Sequential(*list(resnet.children())[:-1]) numbers the children 0, 1, 2, ...
    names = [n for n, _ in model.named_children()]
    if clean and all(re.match(r"^\d+\.", k) for k in clean):
        out = {}
        for k, v in clean.items():
            i, rest = k.split(".", 1)
            if int(i) >= len(names):
                raise ValueError(f"checkpoint key {k!r}: child {i} does not exist in the model "
                                 f"(children: {names}).")
            renamed[i] = names[int(i)]
            out[f"{names[int(i)]}.{rest}"] = v
        clean = out
    missing = [k for k in own if k not in clean and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in clean if k not in own]
    shapes = [k for k in clean if k in own and tuple(clean[k].shape) != tuple(own[k].shape)]
    if (missing and strict) or unexpected or shapes:
        prefixes = sorted({k.split(".")[0] for k in state})
        raise ValueError(
            f"load_backbone: the checkpoint does not fit the model — missing {len(missing)} "
            f"{missing[:4]}, unexpected {len(unexpected)} {unexpected[:4]}, shape mismatch {shapes[:4]}. "
            f"Top-level prefixes in the file: {prefixes}; dropped as heads: {len(dropped)}. Build the "
            "model the checkpoint was made for (e.g. resnet18(cifar_stem=...)).")
    for k in own:
        if k.endswith("num_batches_tracked") and k not in clean:
            clean[k] = own[k]
    model.load_state_dict(clean, strict=strict)
    return {"loaded": sorted(clean), "dropped": dropped, "renamed": renamed}
