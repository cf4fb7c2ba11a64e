"""Lazy PyTorch import and array <-> tensor conversion for :mod:`krepes_lib.neural`.

PyTorch is the optional extra ``neural``: ``import krepes_lib`` never imports it; the
first use of a neural tool does, through :func:`require_torch`, with an error that names
the extra when it is missing. NumPy arrays become CPU tensors without a copy
(``torch.from_numpy``); CuPy arrays become CUDA tensors through DLPack and back, so a
kernel block computed on a GPU never visits the host ("everything follows X",
:mod:`krepes_lib.backend`).
"""
from __future__ import annotations

import numpy as np

from ..backend import get_xp, is_device_array

__all__ = ["require_torch", "to_tensor", "from_tensor", "torch_dtype", "from_torch", "to_torch", "INSTALL_HINT"]

INSTALL_HINT = ('pip install "krepes-companion[neural]" (on a CPU-only machine install the CPU '
                'wheel first: pip install torch==2.13.0; CUDA users: the wheel for their CUDA '
                'from pytorch.org)')


def require_torch():
    """``torch`` itself, or an ImportError that says how to install the ``neural`` extra."""
    try:
        import torch
    except ImportError as err:  # also raised when sys.modules["torch"] is None
        raise ImportError(
            f"krepes_lib.neural needs PyTorch (the optional extra 'neural'): {INSTALL_HINT}."
        ) from err
    return torch


def torch_dtype(dtype):
    """The torch dtype of a NumPy dtype (float32 or float64 only)."""
    torch = require_torch()
    name = np.dtype(dtype).name
    if name == "float32":
        return torch.float32
    if name == "float64":
        return torch.float64
    raise ValueError(f"dtype={dtype!r}: krepes_lib.neural computes in 'float32' or 'float64'.")


def to_tensor(x):
    """A NumPy array as a CPU tensor (shared memory; read-only arrays are copied) or a CuPy
    array as a CUDA tensor (DLPack: no copy, no trip to the host)."""
    torch = require_torch()
    if is_device_array(x):
        return torch.from_dlpack(x)
    x = np.ascontiguousarray(x)
    if not x.flags.writeable:  # torch tensors assume writable memory; copy read-only rows
        x = x.copy()
    return torch.from_numpy(x)


def from_tensor(t, like):
    """``t`` in the namespace of ``like``: NumPy for a NumPy ``like``; for a device ``like``
    the device namespace's ``from_dlpack`` (a CUDA tensor becomes a CuPy array without a copy)."""
    t = t.detach()
    if is_device_array(like):
        return get_xp(like).from_dlpack(t.contiguous())
    return t.cpu().numpy()


def from_torch(t):
    """A torch tensor as the library's array: a CUDA tensor becomes a CuPy array through DLPack
    (no copy, stays on the GPU), a CPU tensor a NumPy array (shared memory). Gradients are
    detached. :class:`~krepes_lib.neural.TorchNTK` calls it on tensor inputs itself."""
    torch = require_torch()
    if not torch.is_tensor(t):
        return t
    t = t.detach()
    if t.is_cuda:
        import cupy

        return cupy.from_dlpack(t.contiguous())
    return t.contiguous().numpy()


def to_torch(a):
    """A library array as a torch tensor: CuPy → CUDA tensor through DLPack (no copy), NumPy →
    CPU tensor (shared memory)."""
    torch = require_torch()
    if torch.is_tensor(a):
        return a
    if is_device_array(a):
        return torch.from_dlpack(a)
    return torch.from_numpy(np.ascontiguousarray(a))
