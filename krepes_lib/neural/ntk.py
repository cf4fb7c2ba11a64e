"""The empirical NTK of any ``torch.nn.Module`` as a :class:`krepes_lib.kernels.Kernel`.

Book: *The empirical NTK of a network* (``book/entk.md``), equations (entk-proj),
(entk-sketch), (entk-countsketch), (entk-cost), (entk-normalised); *Theory* §Empirical NTK,
eq. (entk); spec §5.

For a network g(x; θ) with O outputs and an output contraction R (O × r) the kernel is

    k(x, x') = Σ_j ⟨∇_θ (Rᵀg)_j(x), ∇_θ (Rᵀg)_j(x')⟩ = Σ_j J̃_j(x)·J̃_j(x'),  J̃ = Rᵀ J,   (entk-proj)

with J(x) = ∂g(x)/∂θ (O × p), θ the **trainable** parameters (``requires_grad=True``; the
eNTK that governs fine-tuning) unless ``parameters="all"``. ``contraction="sum"`` is R = I
(eq. (entk), the spec's normalisation), ``"mean"`` is R = I/√O, and an (O, r) array is a given
output projection (r = 1 with R = u: the eNTK of the scalar uᵀg).

Every implementation is a feature map, k(x, x') = φ(x)·φ(x'), computed through
``torch.func`` (``functional_call``; the network in eval mode, so BatchNorm uses its running
statistics and dropout is off):

* ``"exact"`` — φ(x) = vec J̃(x) (r·p numbers): per-sample Jacobians ``vmap(jacrev)``.
* ``"project"`` — φ(x) = [C J̃_j(x)]_j (r·k numbers), C a CountSketch / sparse JL transform
  of the p parameters into k = ``projection_dim`` buckets (each parameter to one bucket with a
  random sign, E[CᵀC] = I; dattri's SJLT with one non-zero, TRAK's projection of per-sample
  gradients), eq. (entk-countsketch): r reverse passes per row, then O(r·p) additions.
* ``"sketch"`` — φ(x) = S^{-1/2} [Rᵀ J(x) p_s]_s (S·r numbers), S Rademacher directions by
  forward-mode products ``jvp``, eq. (entk-sketch): S forward passes per row, any r.
* ``"auto"`` — :meth:`TorchNTK.plan` picks one of them (and, for many outputs, a random output
  projection) from a cost model measured on a few rows and the error budget ``error``, and
  prints the estimated time (book: "Choosing an implementation").

``normalize=True`` gives k(x, x')/√(k(x, x) k(x', x')) (eq. (entk-normalised)), whose
influence scores are not dominated by large-norm rows.

Each row's features are computed **once** and kept in the process-wide
:mod:`krepes_lib.neural.features` store (one memory budget shared by every kernel,
``Options.feature_cache_bytes``; spilled to checksummed files on disk beyond it), so landmark
selection, K_mm, the audit's batches, embeddings and influence never recompute a row. When
the features of a block do not fit ``memory_budget`` (the exact features of a large network),
the contracted outputs are chunked instead and nothing is kept.

Images: the library's loaders flatten images channels-last, (H, W, C) row-major, and
``Dataset.image_shape`` says so; tell the kernel the data's ``image_shape`` and the network's
``layout`` ("NCHW" for torchvision-style networks) and it permutes the rows. A channels-first
``input_shape`` with more than one channel (which would only reshape HWC rows and scramble
the channels) is refused.
"""
from __future__ import annotations

import copy
import hashlib
import math
import time
import uuid
import warnings
import weakref
from dataclasses import dataclass

import numpy as np

from ..backend import asarray, dask_pass, get_xp, host_rng, is_dask_array, to_host
from ..defaults import BLOCK_BYTES
from ..kernels import Kernel
from ._torch import from_tensor, from_torch, require_torch, to_tensor, torch_dtype
from .features import feature_store, row_keys

torch = require_torch()
from torch.func import functional_call, jacrev, jvp, vmap  # noqa: E402

__all__ = ["TorchNTK", "sketch_error", "kernel_error", "exact_gram", "output_projection", "IMPLEMENTATIONS"]

IMPLEMENTATIONS = ("exact", "project", "sketch", "auto")
LAYOUTS = ("NCHW", "NHWC")

# Temporaries of one feature row while vmap(jacrev) / vmap(jvp) runs (result + reshaped copy
# + autograd buffers), used to size chunks under the memory budget.
_TEMPS = 3
# Rows of X the exact plan keeps per chunk at least (fewer outputs per chunk rather than
# one-row vmap calls).
_MIN_ROWS = 16
# Rows the auto plan measures its costs and errors on.
_PILOT_ROWS = 8


def _dtype_of(dtype):
    """torch dtype of a float32/float64 name, with the message of fault trial #34 for others."""
    try:
        return torch_dtype(dtype)
    except TypeError as err:  # numpy does not know 'bfloat16'
        raise ValueError(f"dtype={dtype!r}: krepes_lib.neural computes in 'float32' or 'float64'.") from err


@dataclass(frozen=True, eq=False, repr=False)
class TorchNTK(Kernel):
    """eNTK of a PyTorch module, eq. (entk-proj); a Kernel usable wherever an RBF is.

    Parameters
    ----------
    module : torch.nn.Module
        The network g. A snapshot is taken (deep copy, ``eval()``): training the original
        afterwards does not change this kernel (the digest in ``repr`` names the weights).
        It must return one tensor per batch; its outputs are flattened per sample to O numbers.
    contraction : "sum", "mean" or array (O, r)
        Σ_o (eq. (entk)), the mean over the O outputs, or Rᵀg for a given projection R.
    implementation : "exact", "project", "sketch" or "auto"
        See the module notes; ``"auto"`` chooses from a cost model and ``error`` (:meth:`plan`).
    sketch_size : int
        S, the directions of ``"sketch"``.
    projection_dim : int
        k, the CountSketch buckets of ``"project"`` per contracted output.
    error : float
        The relative kernel error ``"auto"`` may spend (‖K̂ − K‖_F/‖K‖_F, default 0.05).
    time_budget : float, optional
        Seconds ``"auto"`` may spend on the features of the rows it is planned for; when no
        candidate meets ``error`` in time, the most accurate one that fits is chosen (and the
        printed plan says so).
    seed : int
        Seeds the random directions / projections.
    memory_budget : int
        Bytes allowed for the features in flight in one block (peak RSS can reach about
        1.3× (exact) to 2.2× (sketch) of it: autograd keeps temporaries).
    parameters : "trainable" or "all"
        θ of eq. (entk-proj): the parameters with ``requires_grad=True`` (default: the eNTK
        that governs fine-tuning; a frozen backbone contributes nothing) or all of them.
    image_shape : tuple, optional
        The data's image shape, (H, W) or (H, W, C): the rows of X are images flattened
        channels-last (``Dataset.image_shape`` of the library's loaders).
    layout : "NCHW" or "NHWC"
        The network's input layout when ``image_shape`` is given (default "NCHW", torchvision).
    input_shape : tuple, optional
        Rows of X (n, d) are reshaped to (n, *input_shape) before the module — for
        non-image inputs, or images with one channel; for colour images use ``image_shape``
        and ``layout`` (a channels-first shape with C > 1 is refused: a reshape of
        channels-last rows scrambles the channels).
    normalize : bool
        k(x, x')/√(k(x, x) k(x', x')), eq. (entk-normalised).
    dtype : str, optional
        Compute in this dtype (inputs are cast); default: follow the input (float64 stays
        float64, anything else is float32). The module is copied to each dtype/device used.
    cache_bytes : int, optional
        0 keeps no features of this kernel between calls; None (default) uses the
        process-wide store (:func:`krepes_lib.neural.features.set_budget`).
    """

    module: object = None
    contraction: object = "sum"
    implementation: str = "exact"
    sketch_size: int = 256
    seed: int = 0
    memory_budget: int = BLOCK_BYTES
    input_shape: tuple | None = None
    dtype: str | None = None
    cache_bytes: int | None = None
    image_shape: tuple | None = None
    layout: str | None = None
    parameters: str = "trainable"
    projection_dim: int = 2048
    normalize: bool = False
    error: float = 0.05
    time_budget: float | None = None
    name = "torch_ntk"

    # -- set-up -----------------------------------------------------------------------
    def __post_init__(self):
        if not isinstance(self.module, torch.nn.Module):
            raise TypeError(f"TorchNTK(module=...) needs a torch.nn.Module, got {type(self.module).__name__}.")
        if self.implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation={self.implementation!r}; use one of {IMPLEMENTATIONS}.")
        R = self._check_contraction(self.contraction)
        for name in ("sketch_size", "projection_dim"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"{name}={v} must be a positive integer.")
        if not self.memory_budget > 0:
            raise ValueError(f"memory_budget={self.memory_budget} must be a positive number of bytes.")
        if self.cache_bytes is not None and self.cache_bytes < 0:
            raise ValueError(f"cache_bytes={self.cache_bytes} must be >= 0 (0: keep no features) or None.")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ValueError(f"time_budget={self.time_budget!r} must be a positive number of seconds or None.")
        if not (isinstance(self.error, (int, float)) and 0 < self.error < 1):
            raise ValueError(f"error={self.error!r} must be a relative kernel error in (0, 1), e.g. 0.05.")
        if self.parameters not in ("trainable", "all"):
            raise ValueError(f"parameters={self.parameters!r}; use 'trainable' (requires_grad=True, "
                             "the eNTK of fine-tuning) or 'all'.")
        if self.dtype is not None:
            _dtype_of(self.dtype)  # validates
        shape = self._check_shapes()
        devices = {p.device.type for p in self.module.parameters()} | {b.device.type for b in self.module.buffers()}
        if "meta" in devices:
            raise ValueError("TorchNTK: the module has parameters on the 'meta' device (no data); load "
                             "its weights and move it to 'cpu' or 'cuda' (module.to_empty(device='cpu') "
                             "then load_state_dict) first.")
        named = list(self.module.named_parameters())
        if not named:
            raise ValueError("TorchNTK: the module has no parameters, so its eNTK is zero.")
        trainable = [n for n, p in named if p.requires_grad or self.parameters == "all"]
        if not trainable:
            raise ValueError(f"TorchNTK: all {len(named)} parameter tensors of the module have "
                             "requires_grad=False, so the eNTK of its trainable parameters is zero; pass "
                             "parameters='all' for the eNTK of every parameter.")
        for n, p in named:
            if not bool(torch.isfinite(p.detach()).all()):
                raise ValueError(f"TorchNTK: parameter {n!r} of the module holds NaN or inf; its eNTK "
                                 "would be NaN. Fix or reload the weights.")
        base = copy.deepcopy(self.module).eval()
        for p in base.parameters():
            p.requires_grad_(False)
        h = hashlib.sha256()
        for n, t in list(base.named_parameters()) + list(base.named_buffers()):
            h.update(n.encode() + (b"*" if n in trainable else b""))
            h.update(t.detach().cpu().double().contiguous().numpy().tobytes())
        st = object.__setattr__
        st(self, "_base", base)
        st(self, "_R", R)
        st(self, "_names", trainable)
        st(self, "_shape", shape)
        st(self, "n_parameters", int(sum(p.numel() for n, p in named if n in trainable)))
        st(self, "n_parameters_total", int(sum(p.numel() for _, p in named)))
        st(self, "digest", h.hexdigest()[:16])
        st(self, "_copies", {})
        st(self, "_meta", {})
        st(self, "_sjlt", {})
        st(self, "_dirs", {})
        st(self, "chosen", None)  # the plan of implementation="auto" once made
        st(self, "_impl", None if self.implementation == "auto" else self.implementation)
        # rows in the shared store are keyed per kernel object (two modules with equal weights
        # may differ in their forward code) and dropped when the kernel is collected
        st(self, "_uid", uuid.uuid4().hex)
        weakref.finalize(self, _forget, self._uid)

    def _check_contraction(self, contraction):
        if isinstance(contraction, str):
            if contraction not in ("sum", "mean"):
                raise ValueError(f"contraction={contraction!r}; use 'sum', 'mean' or an (O, r) "
                                 "projection array.")
            return None
        R = np.asarray(to_host(contraction), dtype=np.float64)
        if R.ndim == 1:
            R = R[:, None]
        if R.ndim != 2 or R.size == 0 or not np.isfinite(R).all():
            raise ValueError("contraction as an array must be a finite (O, r) projection matrix "
                             f"(O = outputs of the module); got shape {R.shape}.")
        return R

    def _check_shapes(self):
        """The per-sample reshape: ('image', (H, W, C), layout) / ('shape', shape) / None."""
        if self.layout is not None and self.layout not in LAYOUTS:
            raise ValueError(f"layout={self.layout!r}: the network's input layout is one of {LAYOUTS}.")
        if self.image_shape is not None:
            if self.input_shape is not None:
                raise ValueError("pass image_shape (the data's (H, W[, C]), with layout= the network's) or "
                                 "input_shape, not both: the pixel layout is declared once.")
            ims = tuple(int(s) for s in self.image_shape)
            if len(ims) == 2:
                ims = ims + (1,)
            if len(ims) != 3 or min(ims) < 1:
                raise ValueError(f"image_shape={self.image_shape!r} must be the data's (H, W) or (H, W, C) "
                                 "(the library's rows are images flattened channels-last).")
            return ("image", ims, self.layout or "NCHW")
        if self.layout is not None:
            raise ValueError(f"layout={self.layout!r} needs image_shape=(H, W, C), the data's image shape "
                             "(e.g. split.image_shape).")
        if self.input_shape is None:
            return None
        shape = tuple(int(s) for s in self.input_shape)
        if len(shape) == 3 and shape[0] > 1 and shape[0] < shape[-1]:
            raise ValueError(
                f"input_shape={shape} looks channels-first with {shape[0]} channels, but the library's "
                "image rows are flattened channels-last (H, W, C), so a reshape would scramble the "
                f"channels. Pass image_shape=({shape[1]}, {shape[2]}, {shape[0]}) (the data's, e.g. "
                "split.image_shape) and layout='NCHW' (the network's); TorchNTK then permutes.")
        return ("shape", shape)

    @property
    def data_image_shape(self):
        """The data's image shape (H, W[, C]) when the rows are images: from ``image_shape``, or a
        one-channel ``input_shape`` ((1, H, W), (H, W, 1), (H, W)); else None. ``augment="auto"``
        then draws image augmentations (:func:`krepes_lib.augment.auto_for_kernel`)."""
        if self._shape is None:
            return None
        if self._shape[0] == "image":
            H, W, C = self._shape[1]
            return (H, W) if C == 1 else (H, W, C)
        shape = self._shape[1]
        if len(shape) == 3 and shape[0] == 1:
            return shape[1:]
        if len(shape) == 3 and shape[-1] == 1 or len(shape) == 2:
            return shape[:2]
        return None

    @property
    def implementation_used(self) -> str | None:
        """The implementation in use (``"auto"`` resolves at :meth:`plan` or the first call)."""
        return self._impl

    def __repr__(self):
        c = self.contraction if isinstance(self.contraction, str) else f"projection{self._R.shape}"
        impl = self.implementation if self._impl is None or self._impl == self.implementation \
            else f"auto→{self._impl}"
        extra = ""
        if self._impl == "sketch":
            extra = f", sketch_size={self.chosen['S'] if self.chosen else self.sketch_size}, seed={self.seed}"
        elif self._impl == "project":
            extra = f", projection_dim={self.chosen['k'] if self.chosen else self.projection_dim}, seed={self.seed}"
        if self.chosen and self.chosen.get("r_out"):
            extra += f", output_projection={self.chosen['r_out']}"
        shape = f", image_shape={self._shape[1]}, layout={self._shape[2]!r}" if self._shape and \
            self._shape[0] == "image" else f", input_shape={self.input_shape}"
        return (f"TorchNTK(module={type(self.module).__name__}, p={self.n_parameters}"
                f"{'' if self.n_parameters == self.n_parameters_total else f' of {self.n_parameters_total}'}, "
                f"weights={self.digest}, contraction={c!r}, implementation={impl!r}{extra}{shape}"
                f"{', normalize=True' if self.normalize else ''})")

    def _copy(self, tdtype, device):
        """The snapshot in dtype/device (made once): (module, trainable params, constants)."""
        key = (tdtype, str(device))
        if key not in self._copies:
            mod = copy.deepcopy(self._base).to(device=device, dtype=tdtype).eval()
            params = {n: p.detach() for n, p in mod.named_parameters() if n in self._names}
            const = {n: p.detach() for n, p in mod.named_parameters() if n not in self._names}
            const.update({n: b.detach() for n, b in mod.named_buffers()})
            self._copies[key] = (mod, params, const)
        return self._copies[key]

    def _module_input(self, x):
        """Rows (b, d) as the module's input: (b, C, H, W) / (b, H, W, C) / (b, *input_shape)."""
        if self._shape is None:
            return x
        if self._shape[0] == "image":
            H, W, C = self._shape[1]
            if H * W * C != x.shape[1]:
                raise ValueError(f"image_shape=({H}, {W}, {C}) holds {H * W * C} numbers but X has "
                                 f"{x.shape[1]} features per row; pass the data's image shape "
                                 "(split.image_shape).")
            img = x.reshape(x.shape[0], H, W, C)
            return img.permute(0, 3, 1, 2) if self._shape[2] == "NCHW" else img
        shape = self._shape[1]
        if math.prod(shape) != x.shape[1]:
            raise ValueError(f"input_shape={shape} holds {math.prod(shape)} numbers but X has "
                             f"{x.shape[1]} features per row; pass the shape the rows unflatten to.")
        return x.reshape((x.shape[0],) + shape)

    def _call(self, mod, params, const, xi):
        out = functional_call(mod, (params, const), (xi,))
        if not torch.is_tensor(out):
            raise TypeError(f"TorchNTK: the module returned a {type(out).__name__}, not one tensor; wrap it "
                            "so that it returns the output whose eNTK you want (e.g. a module whose "
                            "forward returns net(x)[0] or net(x)['features']).")
        return out

    def _info(self, tdtype, device, x1):
        """O (outputs), r (contracted outputs), A (activations per sample), R as a tensor, scale."""
        key = (tdtype, str(device))
        if key in self._meta:
            return self._meta[key]
        mod, params, const = self._copy(tdtype, device)
        count = [0]

        def hook(_m, _i, out):
            if torch.is_tensor(out):
                count[0] += out.numel()

        handles = [m.register_forward_hook(hook) for m in mod.modules()]
        try:
            xi = self._module_input(x1)
            with torch.no_grad():
                try:
                    out = self._call(mod, params, const, xi)
                except (RuntimeError, ValueError, IndexError) as err:
                    what = ("image_shape=%s, layout=%r" % (self._shape[1], self._shape[2])
                            if self._shape and self._shape[0] == "image" else f"input_shape={self.input_shape}")
                    raise ValueError(
                        f"TorchNTK: the module failed on rows of width {x1.shape[1]} passed as "
                        f"{tuple(xi.shape[1:])} ({what}): {err}. Check that X has the width the network "
                        "takes, and pass image_shape/layout (images) or input_shape.") from err
        finally:
            for hd in handles:
                hd.remove()
        O = int(out.reshape(1, -1).shape[1])
        R = self._R if self.chosen is None or self.chosen.get("R") is None else self.chosen["R"]
        if R is None:
            r, Rt = O, None
        else:
            if R.shape[0] != O:
                raise ValueError(f"contraction has {R.shape[0]} rows but the module has O = {O} "
                                 "outputs; pass an (O, r) projection.")
            r, Rt = R.shape[1], torch.as_tensor(R, dtype=tdtype, device=device)
        mean = isinstance(self.contraction, str) and self.contraction == "mean"
        scale = 1.0 / O if mean and R is self._R else 1.0  # a chosen R carries the 1/√O itself
        self._meta[key] = (O, r, max(count[0], O), Rt, scale)
        return self._meta[key]

    # -- features ---------------------------------------------------------------------
    def _g(self, mod, const, R):
        def g(prm, x):  # one sample -> the r contracted outputs, eq. (entk-proj)
            out = self._call(mod, prm, const, x.unsqueeze(0)).reshape(-1)
            return out if R is None else out @ R
        return g

    def _width(self, r):
        """Features per row: r·p (exact), r·k (project), S·r (sketch)."""
        impl = self._impl
        if impl == "exact":
            return r * self.n_parameters
        if impl == "project":
            return r * self._k()
        return self._S() * r

    def _k(self):
        return int(self.chosen["k"]) if self.chosen and self.chosen.get("k") else int(self.projection_dim)

    def _S(self):
        return int(self.chosen["S"]) if self.chosen and self.chosen.get("S") else int(self.sketch_size)

    def _plan(self, x, n_held: int | None = None):
        """Chunking under the budget: (tdtype, device, O, r, A, R, scale, chunks, rows).

        Exact / project: the contracted outputs are split into chunks of rc outputs so that
        (i) the features of all ``n_held`` Y rows of one chunk fit half the budget and (ii) a
        chunk of at least ``_MIN_ROWS`` X rows with its temporaries fits the other half;
        ``rows`` is the X chunk. Sketch: the S directions are split so that their tangents fit
        a sixth of the budget.
        """
        tdtype, device = x.dtype, x.device
        O, r, A, R, scale = self._info(tdtype, device, x[:1])
        item = x.element_size()
        half = self.memory_budget // 2  # X-side and Y-side features share the budget
        p = self.n_parameters
        if self._impl in ("exact", "project"):
            per_out = _TEMPS * (p + A) * item  # one row, one output, with temporaries
            if per_out > half:
                raise ValueError(
                    f"memory_budget={self.memory_budget} bytes cannot hold one gradient of the "
                    f"{p}-parameter network ({per_out} bytes with temporaries); raise memory_budget "
                    "or use implementation='sketch' or 'auto'.")
            rc = min(r, half // (per_out * min(_MIN_ROWS, x.shape[0])))
            if n_held and self._impl == "exact":
                rc = min(rc, half // (n_held * p * item))
            rc = max(1, rc)
            chunks = [(j, min(r, j + rc)) for j in range(0, r, rc)]
            rows = max(1, half // (per_out * rc))
        else:
            S = self._S()
            sc = max(1, min(S, half // (_TEMPS * p * item)))
            chunks = [(s, min(S, s + sc)) for s in range(0, S, sc)]
            rows = max(1, half // (_TEMPS * sc * (A + O) * item))
        return tdtype, device, O, r, A, R, scale, chunks, rows

    def _directions(self, lo, hi, tdtype, device, params):
        """Rademacher directions p_lo..p_{hi-1} as a dict of (hi-lo, *shape) tensors.

        Direction s is drawn on the host from ``default_rng([seed, s])``, so the sketch does
        not depend on the chunking (memory budget) nor on the device. Kept while they take
        less than a quarter of the memory budget.
        """
        key = (lo, hi, tdtype, str(device))
        if key in self._dirs:
            return self._dirs[key]
        p = self.n_parameters
        signs = np.empty((hi - lo, p), dtype=np.int8)
        for s in range(lo, hi):
            signs[s - lo] = host_rng([int(self.seed), s]).integers(0, 2, size=p, dtype=np.int8)
        flat = torch.from_numpy(signs).to(device=device, dtype=tdtype).mul_(2).sub_(1)
        out, at = {}, 0
        for n, prm in params.items():
            out[n] = flat[:, at:at + prm.numel()].reshape((hi - lo,) + tuple(prm.shape))
            at += prm.numel()
        held = sum(v.numel() * v.element_size() for d in self._dirs.values() for v in d.values())
        if held + flat.numel() * flat.element_size() <= self.memory_budget // 4:
            self._dirs[key] = out
        return out

    def _countsketch(self, tdtype, device, params):
        """The CountSketch C of eq. (entk-countsketch): per parameter tensor, a bucket in [0, k)
        and a sign ±1 for each entry, drawn on the host from ``default_rng([seed, 0x5C, i])``."""
        key = (tdtype, str(device), self._k())
        if key not in self._sjlt:
            k, out = self._k(), []
            for i, (n, prm) in enumerate(params.items()):
                rng = host_rng([int(self.seed), 0x5C, i])
                idx = torch.from_numpy(rng.integers(0, k, size=prm.numel(), dtype=np.int64)).to(device)
                sgn = torch.from_numpy(rng.integers(0, 2, size=prm.numel(), dtype=np.int8)).to(
                    device=device, dtype=tdtype).mul_(2).sub_(1)
                out.append((n, idx, sgn))
            self._sjlt[key] = out
        return self._sjlt[key]

    def _chunk_features(self, x, chunk, plan):
        """Features of rows x (b, d) for one output / direction chunk: (b, width)."""
        with warnings.catch_warnings():  # torch's note that vmap falls back to a loop for some ops
            warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet")
            return self._chunk_features_(x, chunk, plan)

    def _chunk_features_(self, x, chunk, plan):
        tdtype, device, O, r, A, R, scale, _, _ = plan
        mod, params, const = self._copy(tdtype, device)
        g = self._g(mod, const, R)
        xi = self._module_input(x)
        lo, hi = chunk
        b = x.shape[0]
        if self._impl in ("exact", "project"):
            if (lo, hi) == (0, r):
                gc = g
            else:
                def gc(prm, xs):
                    return g(prm, xs)[lo:hi]
            jac = vmap(jacrev(gc), in_dims=(None, 0))(params, xi)  # name -> (b, rc, *shape)
            if self._impl == "exact":
                F = torch.cat([jac[n].reshape(b, hi - lo, -1) for n in params], dim=2).reshape(b, -1)
            else:  # eq. (entk-countsketch): C J̃_j for every output j of the chunk
                k = self._k()
                F = torch.zeros((b * (hi - lo), k), dtype=tdtype, device=device)
                for n, idx, sgn in self._countsketch(tdtype, device, params):
                    G = jac.pop(n).reshape(b * (hi - lo), -1)
                    F.index_add_(1, idx, G * sgn)
                F = F.reshape(b, -1)
            return F * math.sqrt(scale) if scale != 1.0 else F
        # sketch, eq. (entk-sketch): Rᵀ J(x) p_s by forward mode for s in [lo, hi)
        V = self._directions(lo, hi, tdtype, device, params)

        def batch_out(prm):
            out = self._call(mod, prm, const, xi).reshape(b, -1)
            return out if R is None else out @ R

        def one(v):
            return jvp(batch_out, (params,), (v,))[1]  # (b, r)

        JV = vmap(one)(V)  # (hi-lo, b, r)
        F = JV.permute(1, 0, 2).reshape(b, -1)
        return F * math.sqrt(scale / self._S())

    def _token(self, tdtype, device):
        """The store's key of this kernel's features: weights, parameters, implementation and
        its randomness, contraction, pixel layout, dtype, device."""
        R = self._R if not (self.chosen and self.chosen.get("R") is not None) else self.chosen["R"]
        rh = "none" if R is None else hashlib.blake2b(np.ascontiguousarray(R).tobytes(), digest_size=8).hexdigest()
        return (self._uid, repr((self.digest, tuple(self._names) if self.parameters == "trainable" else "all",
                     self._impl, self._k() if self._impl == "project" else None,
                     self._S() if self._impl == "sketch" else None,
                     self.seed if self._impl in ("project", "sketch") else None,
                     self.contraction if isinstance(self.contraction, str) else "R", rh,
                     self._shape, str(tdtype), str(device))))

    def _fits_rows(self, plan, n_rows, item):
        """Whether the full features of ``n_rows`` rows fit half the memory budget."""
        return self._width(plan[3]) * item * n_rows <= self.memory_budget // 2

    def _rows(self, x, plan, progress=None):
        """Full feature rows φ(x) (n, w): each row read from the store or computed once."""
        chunks, rows = plan[-2], plan[-1]

        def compute(idx):
            xs = x[torch.as_tensor(idx, device=x.device)] if not isinstance(idx, slice) else x[idx]
            with torch.no_grad():
                if len(chunks) == 1:
                    return self._chunk_features(xs, chunks[0], plan)
                return torch.cat([self._chunk_features(xs, c, plan) for c in chunks], dim=1)

        if self.cache_bytes == 0 or feature_store().budget == 0:
            parts = [compute(slice(i, i + rows)) for i in range(0, x.shape[0], rows)]
            return torch.cat(parts) if parts else None
        token = self._token(plan[0], plan[1])
        return feature_store().rows(token, row_keys(x), compute, rows, progress=progress)

    def _as_tensor(self, X):
        x = to_tensor(X)
        if self.dtype is not None:
            x = x.to(_dtype_of(self.dtype))
        return x

    # -- Kernel interface ----------------------------------------------------------------
    def _resolve_dtype(self, X, dtype):
        """Follow the input (fault trial #41): the call's dtype, else the kernel's, else
        float64 for float64 input and float32 otherwise."""
        if dtype is not None:
            return dtype
        if self.dtype is not None:
            return self.dtype
        return "float64" if getattr(X, "dtype", None) == np.float64 else None

    def __call__(self, X, Y=None, dtype=None):
        """The dense kernel block K(X, Y) (K(X, X) when Y is None), in X's dtype when float64.
        Torch tensors are accepted (CUDA ones become CuPy arrays by DLPack, no copy)."""
        X, Y = from_torch(X), from_torch(Y)
        return super().__call__(X, Y, dtype=self._resolve_dtype(X, dtype))

    def diag(self, X, dtype=None):
        X = from_torch(X)
        return super().diag(X, dtype=self._resolve_dtype(X, dtype))

    def _ensure_impl(self, x):
        if self._impl is None:
            self.plan(from_tensor(x, np.empty(0)) if not x.is_cuda else x, n_rows=x.shape[0])

    def _block(self, xp, X, Y):
        """K(X, Y) = φ(X) φ(Y)ᵀ, eqs. (entk-proj), (entk-countsketch), (entk-sketch).

        When the features of the Y rows fit half the budget they are read from (or put in)
        the feature store once and X is streamed against them, each X row read or computed
        once; otherwise the contracted outputs are chunked (nothing kept, no row computed
        twice within the call).
        """
        x, y = self._as_tensor(X), self._as_tensor(Y)
        self._ensure_impl(x)
        plan = self._plan(x, n_held=y.shape[0])
        item = x.element_size()
        if self._fits_rows(plan, y.shape[0] + min(plan[-1], x.shape[0]), item):
            FY = self._rows(y, plan)
            if self.normalize:
                FY = _unit_rows(FY)
            step = max(1, (self.memory_budget // 2) // max(1, self._width(plan[3]) * item))
            K = torch.empty((x.shape[0], y.shape[0]), dtype=x.dtype, device=x.device)
            big = x.shape[0] > 4 * step
            for i0 in range(0, x.shape[0], step):
                FX = self._rows(x[i0:i0 + step], plan, progress="eNTK features" if big else None)
                if self.normalize:
                    FX = _unit_rows(FX)
                K[i0:i0 + step] = FX @ FY.T
            return from_tensor(K, X)
        K = self._block_chunked(x, y, plan)
        if self.normalize:
            dx = self._diag_tensor(x)
            dy = dx if y is x else self._diag_tensor(y)
            K = K / torch.sqrt(torch.clamp(dx[:, None] * dy[None, :], min=torch.finfo(K.dtype).tiny))
        return from_tensor(K, X)

    def _block_chunked(self, x, y, plan):
        rows, chunks = plan[-1], plan[-2]
        lo, hi = chunks[0]
        row_bytes = (hi - lo) * (self.n_parameters if self._impl == "exact" else
                                 (self._k() if self._impl == "project" else plan[3])) * x.element_size()
        hold = max(rows, (self.memory_budget // 2) // max(row_bytes, 1))
        K = torch.zeros((x.shape[0], y.shape[0]), dtype=x.dtype, device=x.device)
        with torch.no_grad():
            for chunk in chunks:
                for j0 in range(0, y.shape[0], hold):
                    j1 = min(y.shape[0], j0 + hold)
                    FY = torch.cat([self._chunk_features(y[j:min(j1, j + rows)], chunk, plan)
                                    for j in range(j0, j1, rows)])
                    for i0 in range(0, x.shape[0], rows):
                        FX = self._chunk_features(x[i0:i0 + rows], chunk, plan)
                        K[i0:i0 + rows, j0:j1] += FX @ FY.T
                    del FY
        return K

    def _diag_tensor(self, x):
        plan = self._plan(x)
        if self._fits_rows(plan, min(plan[-1], x.shape[0]), x.element_size()):
            step = max(1, (self.memory_budget // 2) // max(1, self._width(plan[3]) * x.element_size()))
            d = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
            for i0 in range(0, x.shape[0], step):
                F = self._rows(x[i0:i0 + step], plan)
                d[i0:i0 + step] = (F * F).sum(dim=1)
            return d
        rows = plan[-1]
        d = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        with torch.no_grad():
            for chunk in plan[-2]:
                for i0 in range(0, x.shape[0], rows):
                    F = self._chunk_features(x[i0:i0 + rows], chunk, plan)
                    d[i0:i0 + rows] += (F * F).sum(dim=1)
        return d

    def _diag(self, xp, X):
        x = self._as_tensor(X)
        self._ensure_impl(x)
        if self.normalize:
            d = self._diag_tensor(x)
            return from_tensor((d > 0).to(x.dtype), X)
        return from_tensor(self._diag_tensor(x), X)

    def features(self, X, dtype=None):
        """φ(X) with φ(X) φ(Y)ᵀ = K(X, Y): (n, r·p) exact, (n, r·k) project, (n, S·r) sketch
        (unit rows when ``normalize``). Read from / kept in the feature store. Dask rows give a
        Dask array: the kernel (the module's weights) is sent to the workers once and each
        computes its own rows' features (:mod:`krepes_lib.distributed`)."""
        if is_dask_array(X):
            return dask_pass("kernel_features")(self, X)
        X = from_torch(X)
        X = asarray(X, dtype=self._resolve_dtype(X, dtype), name="X")
        x = self._as_tensor(X)
        self._ensure_impl(x)
        plan = self._plan(x)
        F = self._rows(x, plan, progress="eNTK features" if x.shape[0] > 4 * plan[-1] else None)
        if self.normalize:
            F = _unit_rows(F)
        return from_tensor(F, X)

    def feature_width(self, X) -> int:
        """Numbers per row of :meth:`features` for rows like X."""
        x = self._as_tensor(asarray(X[:1], dtype=self._resolve_dtype(X, None), name="X"))
        self._ensure_impl(x)
        return self._width(self._info(x.dtype, x.device, x)[1])

    def features_fit(self, X, memory_budget: int = BLOCK_BYTES) -> bool:
        """Whether φ(X) for all rows of X fits ``memory_budget`` (kernel-space k-means++ then runs
        on the features, each row computed once)."""
        item = 8 if self._resolve_dtype(X, None) == "float64" else 4
        return self.feature_width(X) * item * X.shape[0] <= memory_budget

    def clear_cache(self):
        """Drop this kernel's rows from the feature store (and its directions)."""
        _forget(self._uid)
        self._dirs.clear()

    # -- implementation="auto" ---------------------------------------------------------------
    def use_plan(self, plan: dict) -> None:
        """Apply a plan made by :meth:`plan` (e.g. ``kernel.chosen`` of another process, or the
        plan stored in a saved audit) without measuring: same implementation, sizes and
        output projection, so the same features."""
        impl = plan.get("implementation")
        if impl not in ("exact", "project", "sketch"):
            raise ValueError(f"plan has implementation={impl!r}; expected exact, project or sketch.")
        chosen = {k: plan[k] for k in ("k", "S", "r_out") if plan.get(k)}
        if chosen.get("r_out"):
            R = output_projection(int(plan["outputs"]), int(chosen["r_out"]), seed=self.seed, dtype="float64")
            chosen["R"] = R / math.sqrt(int(plan["outputs"])) if self.contraction == "mean" else R
        object.__setattr__(self, "_impl", impl)
        object.__setattr__(self, "chosen", {**plan, **chosen})
        self._meta.clear()

    def plan(self, X, n_rows: int | None = None, verbose: bool = True) -> dict:
        """Choose the implementation for ``implementation="auto"`` and estimate the cost.

        On ``_PILOT_ROWS`` rows of X it times one reverse pass (per contracted output) and one
        forward-mode pass (per direction) per row, and estimates the relative kernel error
        ‖K̂ − K‖_F/‖K‖_F of each randomised candidate from two independent draws on those rows
        (E‖K̂₁ − K̂₂‖² = 2 E‖K̂ − K‖² for unbiased estimates; it falls like 1/√(directions)).
        Candidates: ``exact`` (error 0; r reverse passes per row; r·p numbers per row, so only
        while the rows fit the feature store), ``project`` (r passes, k buckets) and — when the
        network has many outputs — ``project`` on a random output projection of r' outputs
        (r' passes) and ``sketch`` with S directions (S forward passes). The cheapest candidate
        whose estimated error is within ``error`` wins; the choice, its estimated error and
        time per row and for ``n_rows`` rows are printed before the long run.

        Returns the plan (a dict, also kept as ``kernel.chosen``).
        """
        X = asarray(X, dtype=self._resolve_dtype(X, None), name="X")
        x = self._as_tensor(X)
        n_rows = int(n_rows or x.shape[0])
        pilot = x[:min(_PILOT_ROWS, x.shape[0])]
        st = object.__setattr__
        O, r, A, _, _ = self._info(pilot.dtype, pilot.device, pilot[:1])
        p, eps = self.n_parameters, float(self.error)
        item = pilot.element_size()
        budget = feature_store().budget

        def timed(fn):
            fn()  # warm-up (vmap tracing, lazy allocation)
            t0 = time.perf_counter()
            fn()
            return (time.perf_counter() - t0) / pilot.shape[0]

        def trial(impl, **chosen):
            st(self, "_impl", impl)
            st(self, "chosen", chosen or None)
            self._meta.clear()
            return self._plan(pilot)

        def features_of(impl, seed, r_out=None, **chosen):
            old = self.seed
            object.__setattr__(self, "seed", seed)
            if r_out:
                chosen["R"] = output_projection(O, r_out, seed=seed, dtype="float64")
            try:
                pl = trial(impl, **chosen)
                with torch.no_grad():
                    return torch.cat([self._chunk_features(pilot, c, pl) for c in pl[-2]], dim=1)
            finally:
                object.__setattr__(self, "seed", old)
                self._sjlt.clear()
                self._dirs.clear()

        def replicate_error(impl, **chosen):
            F1 = features_of(impl, self.seed, **dict(chosen)).double()
            F2 = features_of(impl, self.seed + 7919, **dict(chosen)).double()
            K1, K2 = F1 @ F1.T, F2 @ F2.T
            den = float(torch.linalg.norm((K1 + K2) / 2))
            return float(torch.linalg.norm(K1 - K2)) / (math.sqrt(2) * den) if den > 0 else float("inf")

        # costs per row of one reverse pass (one output) and one forward-mode pass (one direction)
        R1 = output_projection(O, 1, seed=self.seed, dtype="float64")
        try:  # reverse mode: one gradient of p numbers per row must fit the budget
            pl = trial("project", R=R1, k=64)
            t_rev = timed(lambda: self._chunk_features(pilot, (0, 1), pl))
        except ValueError:
            t_rev = None
        pl = trial("sketch", S=1)
        t_fwd = timed(lambda: self._chunk_features(pilot, (0, 1), pl))
        pl = trial("sketch", S=4)  # directions are vmapped: the cost grows slower than S
        t_fwd4 = timed(lambda: torch.cat([self._chunk_features(pilot, c, pl) for c in pl[-2]], dim=1))

        def sketch_cost(S):  # two measured points, linear in S
            return max(t_fwd, t_fwd + (t_fwd4 - t_fwd) / 3.0 * (S - 1))
        cands = []
        k = int(self.projection_dim)
        many = self._R is None and O > 1
        if t_rev is not None:
            # exact: error 0, while r·p numbers per row fit the store
            if r * p * item * n_rows <= budget:
                cands.append(dict(impl="exact", error=0.0, s_row=r * t_rev, width=r * p))
            # project on the contraction itself: r passes
            e_proj_1 = replicate_error("project", r_out=1, k=k) if many else None
            # the CountSketch alone on the r contracted outputs: measured while cheap, else
            # bounded by the one-output figure (which also holds the output projection's error)
            e_proj_r = replicate_error("project", k=k) if r <= 16 or not many else e_proj_1 / math.sqrt(r)
            cands.append(dict(impl="project", k=k, error=e_proj_r, s_row=r * t_rev, width=r * k))
            # a random output projection with r' < O outputs (unbiased for the sum), CountSketch k
            for rp in (1, 2, 4, 8, 16, 32, 64) if many else ():
                if rp >= r:
                    break
                cands.append(dict(impl="project", k=k, r_out=rp, error=e_proj_1 / math.sqrt(rp),
                                  s_row=rp * t_rev, width=rp * k))
        if many or t_rev is None:
            e_sk_1 = replicate_error("sketch", S=1)
            for S in (1, 2, 4, 8, 16, 32, 64, 128, 256):
                cands.append(dict(impl="sketch", S=S, error=e_sk_1 / math.sqrt(S), s_row=sketch_cost(S),
                                  width=S * r))
        limit = self.time_budget
        fits = [c for c in cands if limit is None or c["s_row"] * n_rows <= limit]
        ok = [c for c in fits if c["error"] <= eps]
        if ok:  # the cheapest candidate within the error budget (and the time budget)
            best = min(ok, key=lambda c: (c["s_row"], c["width"]))
        elif fits:  # the error budget cannot be met in time: the most accurate that fits
            best = min(fits, key=lambda c: (c["error"], c["s_row"]))
        else:
            best = min(cands, key=lambda c: c["s_row"])
        chosen = {kk: v for kk, v in best.items() if kk in ("k", "S", "r_out")}
        if best.get("r_out"):
            R = output_projection(O, best["r_out"], seed=self.seed, dtype="float64")
            if self.contraction == "mean":
                R = R / math.sqrt(O)
            chosen["R"] = R
        trial(best["impl"], **chosen)
        self._meta.clear()
        info = dict(implementation=best["impl"], **{kk: v for kk, v in chosen.items() if kk != "R"},
                    estimated_error=best["error"], seconds_per_row=best["s_row"],
                    estimated_seconds=best["s_row"] * n_rows, n_rows=n_rows, width=best["width"],
                    reverse_pass_s=t_rev, forward_pass_s=t_fwd, outputs=O, parameters=p,
                    exact_seconds_per_row=None if t_rev is None else r * t_rev, error_budget=eps,
                    time_budget=limit, met=bool(ok))
        st(self, "chosen", {**chosen, **info})
        if verbose:
            print(_describe_plan(info), flush=True)
        return info


def _forget(uid):
    """Drop the rows of the kernel ``uid`` from the shared store."""
    feature_store().clear(owner=uid)


def _describe_plan(info):
    what = {"exact": "exact", "project": f"project (CountSketch k={info.get('k')})",
            "sketch": f"sketch (S={info.get('S')} forward-mode directions)"}[info["implementation"]]
    if info.get("r_out"):
        what += f" on a random projection of the outputs to r={info['r_out']}"
    ex = info["exact_seconds_per_row"]
    ex = (f"the exact eNTK costs ≈ {ex:.3g} s/row" if ex is not None else
          "one gradient does not fit memory_budget (reverse mode left out)")
    return (f"TorchNTK plan: p={info['parameters']:,} parameters, O={info['outputs']} outputs; {ex}. "
            f"Chosen: {what}, "
            f"{info['width']:,} features per row, estimated kernel error {info['estimated_error']:.3f} "
            f"(budget {info['error_budget']:g}{'' if info['met'] else ', NOT met: the most accurate candidate'}"
            f"{'' if info.get('time_budget') is None else ' within ' + _hms(info['time_budget'])}), "
            f"≈ {info['seconds_per_row']:.3g} s/row → ≈ {_hms(info['estimated_seconds'])} for "
            f"{info['n_rows']:,} rows.")


def _hms(s):
    s = float(s)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _unit_rows(F):
    """φ/‖φ‖ per row (zero rows stay zero), eq. (entk-normalised)."""
    n = torch.linalg.norm(F, dim=1, keepdim=True)
    return F / torch.where(n > 0, n, torch.ones_like(n))


def output_projection(n_outputs: int, r: int, seed: int = 0, dtype="float64"):
    """A random output contraction R (O × r) with E[R Rᵀ] = I_O: Gaussian entries / √r.

    ``TorchNTK(module, contraction=output_projection(O, r))`` is then an unbiased estimate of
    the ``"sum"`` eNTK, eq. (entk), whose exact evaluation costs r·p instead of O·p per entry
    (eq. (entk-cost)); the error falls like 1/√r. Drawn on the host from ``seed``.
    """
    if int(n_outputs) != n_outputs or n_outputs < 1 or int(r) != r or r < 1:
        raise ValueError(f"n_outputs={n_outputs} and r={r} must be positive integers.")
    R = host_rng([int(seed), 0x52]).standard_normal((int(n_outputs), int(r))) / math.sqrt(r)
    return R.astype(np.dtype(dtype))


def exact_gram(kernel, X, dtype="float64"):
    """The exact eNTK K(X, X) of ``kernel``'s network, contraction, parameters, pixel layout and
    normalisation, by plain autograd: one forward pass per row and one backward pass per (row,
    contracted output) — independent of the vmap code of the kernel, and cheap in memory (one
    gradient per row of X), so it serves as the reference for large networks on a few rows."""
    X = asarray(X, dtype=dtype, name="X")
    x = to_tensor(X).to(_dtype_of(dtype))
    mod, params, const = kernel._copy(x.dtype, x.device)
    O, r, _, R, scale = kernel._info(x.dtype, x.device, x[:1])
    R = None if kernel._R is None else torch.as_tensor(kernel._R, dtype=x.dtype, device=x.device)
    mean = isinstance(kernel.contraction, str) and kernel.contraction == "mean"
    scale = 1.0 / O if mean else 1.0
    r = O if R is None else R.shape[1]
    n = x.shape[0]
    K = torch.zeros((n, n), dtype=x.dtype, device=x.device)
    G = torch.empty((n, kernel.n_parameters), dtype=x.dtype, device=x.device)
    graphs = []  # one forward pass per row, kept for its r backward passes
    for i in range(n):
        prm = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        out = kernel._call(mod, prm, const, kernel._module_input(x[i:i + 1])).reshape(-1)
        graphs.append((prm, out if R is None else out @ R))
    for j in range(r):  # K = Σ_j G_j G_jᵀ, G_j the gradients of contracted output j, eq. (entk-proj)
        for i, (prm, out) in enumerate(graphs):
            g = torch.autograd.grad(out[j], list(prm.values()), retain_graph=j < r - 1)
            G[i] = torch.cat([t.reshape(-1) for t in g])
        with torch.no_grad():
            K += G @ G.T
    K *= scale
    if kernel.normalize:
        d = torch.sqrt(torch.clamp(torch.diagonal(K), min=torch.finfo(K.dtype).tiny))
        K = K / (d[:, None] * d[None, :])
    return from_tensor(K, X)


def kernel_error(kernel, X, reference=None, dtype="float64") -> dict:
    """Relative Frobenius error ‖K̂ − K‖_F/‖K‖_F of ``kernel`` (any TorchNTK: project, sketch,
    auto) against the exact eNTK of the same network, contraction, parameters, pixel layout
    and normalisation on the rows X.

    ``reference`` defaults to :func:`exact_gram` (plain autograd, one backward pass per row and
    contracted output). Returns ``{"error", "n_rows", "seconds_exact", "seconds"}``.
    """
    X = asarray(X, dtype=dtype, name="X")
    t0 = time.perf_counter()
    K = exact_gram(kernel, X, dtype=dtype) if reference is None else reference(X, dtype=dtype)
    t1 = time.perf_counter()
    Kh = kernel(X, dtype=dtype)
    t2 = time.perf_counter()
    xp = get_xp(K)
    norm = float(xp.linalg.norm(K))
    if not norm > 0:
        raise ValueError("the exact eNTK on X is zero; pick other rows or another module.")
    return {"error": float(xp.linalg.norm(Kh - K)) / norm, "n_rows": int(X.shape[0]),
            "seconds_exact": t1 - t0, "seconds": t2 - t1}


def sketch_error(module, X, sizes=(16, 64, 256), seeds=(0, 1, 2), contraction="sum",
                 input_shape=None, dtype="float64", memory_budget: int = BLOCK_BYTES,
                 implementation: str = "sketch"):
    """Relative Frobenius error ‖K_S − K‖_F / ‖K‖_F of the sketch (entk-sketch) — or of the
    CountSketch projection (entk-countsketch) with ``implementation="project"``, S = k — vs
    the exact eNTK.

    Parameters
    ----------
    module : torch.nn.Module
    X : array (n, d)
        Rows on which K = K(X, X) is compared.
    sizes : sequence of int
        Sketch sizes S (or projection dims k).
    seeds : sequence of int
        Independent sketches per size (the error is averaged over them).

    Returns
    -------
    dict with ``sizes``, ``mean`` and ``std`` (over seeds) of the relative error per S, and
    ``errors`` (len(sizes) × len(seeds)). The error of an unbiased sketch falls like 1/√S.
    """
    if not len(sizes) or not len(seeds):
        raise ValueError("sketch_error needs at least one sketch size and one seed.")
    if implementation not in ("sketch", "project"):
        raise ValueError(f"implementation={implementation!r}; use 'sketch' or 'project'.")
    X = asarray(X, dtype=dtype, name="X")
    kw = dict(contraction=contraction, input_shape=input_shape, memory_budget=memory_budget, cache_bytes=0)
    exact = TorchNTK(module, implementation="exact", **kw)(X)
    xp = get_xp(exact)
    norm = float(xp.linalg.norm(exact))
    if not norm > 0:
        raise ValueError("the exact eNTK on X is zero; pick other rows or another module.")
    errs = np.empty((len(sizes), len(seeds)))
    size_kw = "sketch_size" if implementation == "sketch" else "projection_dim"
    for i, S in enumerate(sizes):
        for j, s in enumerate(seeds):
            K = TorchNTK(module, implementation=implementation, seed=int(s), **{size_kw: int(S)}, **kw)(X)
            errs[i, j] = float(xp.linalg.norm(K - exact)) / norm
    return {"sizes": [int(s) for s in sizes], "mean": errs.mean(axis=1).tolist(),
            "std": errs.std(axis=1).tolist(), "errors": errs.tolist()}
