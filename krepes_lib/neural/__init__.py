"""Optional PyTorch tools: the eNTK of any ``torch.nn.Module``, SSL networks.

Book: *The empirical NTK of a network* (``book/entk.md``); *Theory* §Empirical NTK.

PyTorch is the optional extra ``neural`` (``pip install "krepes-companion[neural]"``; on a
CPU-only machine ``pip install torch==2.13.0`` first). Nothing here imports torch until it
is used, so ``import krepes_lib`` and ``import krepes_lib.neural`` work without it::

    from krepes_lib.neural import TorchNTK          # imports torch now
    kernel = TorchNTK(my_module, contraction="sum")  # a krepes_lib.kernels.Kernel

Submodules: :mod:`.ntk` (:class:`TorchNTK`, :func:`sketch_error`, :func:`kernel_error`),
:mod:`.features` (the process-wide store of per-row eNTK features), :mod:`.resnet` (a
ResNet-18 with torchvision's names, checkpoint loading), :mod:`.recipes` (the ResNet-18 audit
of CIFAR-10, measured), :mod:`.networks` (MLP
encoder, small CNN), :mod:`.ssl` (training with the library's SSL losses, on-disk cache,
probes) and :mod:`.pipeline` (the v3 audit of a network in one call). NeuralEF, a peer
method of the paper, is a study: :mod:`krepes_lib.studies.neuralef`.
"""
from __future__ import annotations

import importlib

_SUBMODULES = ("ntk", "networks", "ssl", "pipeline", "_torch", "features", "resnet", "recipes")
_EXPORTS = {
    "TorchNTK": "ntk", "sketch_error": "ntk", "output_projection": "ntk", "kernel_error": "ntk",
    "exact_gram": "ntk", "feature_store": "features", "set_feature_budget": "features",
    "resnet18": "resnet", "load_backbone": "resnet", "Normalize": "resnet",
    "audit_resnet18": "recipes",
    "MLPEncoder": "networks", "SmallConvNet": "networks", "SSLNetwork": "networks",
    "make_network": "networks",
    "SSLLossFunction": "ssl", "ssl_loss": "ssl", "train_ssl": "ssl", "SSLConfig": "ssl",
    "load_or_train": "ssl", "probe_trained_vs_init": "ssl", "probe_table": "ssl", "PROFILES": "ssl",
    "audit_network": "pipeline",
    "require_torch": "_torch", "from_torch": "_torch", "to_torch": "_torch",
}

__all__ = sorted(_EXPORTS) + ["ntk", "networks", "ssl", "pipeline", "features", "resnet", "recipes"]


def __getattr__(name):
    if name in _SUBMODULES:
        if name != "_torch":
            importlib.import_module(f"{__name__}._torch").require_torch()
        return importlib.import_module(f"{__name__}.{name}")
    if name in _EXPORTS:
        mod = __getattr__(_EXPORTS[name])
        return getattr(mod, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
