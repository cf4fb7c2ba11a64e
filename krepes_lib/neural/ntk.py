"""The empirical NTK of any ``torch.nn.Module`` as a :class:`krepes_lib.kernels.Kernel`.

Book: *The empirical NTK of a network* (``book/entk.md``), equations (entk-proj),
(entk-sketch), (entk-cost); *Theory* §Empirical NTK, eq. (entk); spec §5.

For a network g(x; θ) with O outputs and an output contraction R (O × r) the kernel is

    k(x, x') = Σ_j ⟨∇_θ (Rᵀg)_j(x), ∇_θ (Rᵀg)_j(x')⟩ = Σ_j J̃_j(x)·J̃_j(x'),  J̃ = Rᵀ J,   (entk-proj)

with J(x) = ∂g(x)/∂θ (O × p). ``contraction="sum"`` is R = I (eq. (entk), the spec's
normalisation), ``"mean"`` is R = I/√O (the mean over outputs), and an (O, r) array is a
given output projection (r = 1 with R = u: the eNTK of the scalar uᵀg).

Two implementations, both through ``torch.func`` (``functional_call``; the network in eval
mode, so BatchNorm uses its running statistics and dropout is off):

* ``implementation="exact"`` — per-sample Jacobians ``vmap(jacrev)`` of Rᵀg, flattened to
  rows of r·p numbers, contracted by one GEMM per block pair. Cost (entk-cost): r·p
  multiply-adds per kernel entry plus r reverse passes per row (amortised over the other
  side); memory r·(p + A) numbers per row in flight, A = activations of one sample.
* ``implementation="sketch"`` — random projections of the per-sample gradients (seed 002
  eq. 20, TRAK-style): with S seeded Rademacher directions p_s ∈ {±1}^p (E[p pᵀ] = I),

      φ(x) = S^{-1/2} [Rᵀ J(x) p_s]_{s=1..S} ∈ R^{S·r},   k(x, x') ≈ φ(x)·φ(x'),         (entk-sketch)

  computed by S forward-mode products ``jvp`` (P = [p_s] is never formed densely: its rows are
  generated in chunks from ``seed`` on the host generator, deterministic on CPU and GPU).
  Unbiased; the relative error falls like 1/√S (:func:`sketch_error`).

Blocks are computed under ``memory_budget`` bytes (rows, outputs and directions chunked),
and the per-row features of the inputs last seen are kept in a small LRU cache keyed by a
digest of the rows (``cache_bytes``), so K(X, landmarks) for a fixed landmark set, the
k-means++ columns K(X, x_j) and the diagonal do not recompute the same Jacobians.
"""
from __future__ import annotations

import copy
import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..backend import asarray, get_xp, host_rng, to_host
from ..defaults import BLOCK_BYTES
from ..kernels import Kernel
from ._torch import from_tensor, require_torch, to_tensor, torch_dtype

torch = require_torch()
from torch.func import functional_call, jacrev, jvp, vmap  # noqa: E402

__all__ = ["TorchNTK", "sketch_error", "output_projection"]

# Temporaries of one feature row while vmap(jacrev) / vmap(jvp) runs (result + reshaped copy
# + autograd buffers), used to size chunks under the memory budget.
_TEMPS = 3
# Rows of X the exact plan keeps per chunk at least (fewer outputs per chunk rather than
# one-row vmap calls).
_MIN_ROWS = 16


@dataclass(frozen=True, eq=False, repr=False)
class TorchNTK(Kernel):
    """eNTK of a PyTorch module, eq. (entk-proj); a Kernel usable wherever an RBF is.

    Parameters
    ----------
    module : torch.nn.Module
        The network g. A snapshot is taken (deep copy, ``eval()``): training the original
        afterwards does not change this kernel (the digest in ``repr`` names the weights).
        Its outputs are flattened per sample to O numbers.
    contraction : "sum", "mean" or array (O, r)
        Σ_o (eq. (entk)), the mean over the O outputs, or Rᵀg for a given projection R.
    implementation : "exact" or "sketch"
        Per-sample Jacobian contraction, or the random-projection estimate (entk-sketch).
    sketch_size : int
        S, the number of random directions of the sketch.
    seed : int
        Seeds the sketch directions.
    memory_budget : int
        Bytes allowed for the features in flight in one block.
    input_shape : tuple, optional
        Rows of X (n, d) are reshaped to (n, *input_shape) before the module (e.g.
        (1, 28, 28) for a CNN that takes NCHW images); default: rows as they are.
    dtype : str, optional
        Compute in this dtype (inputs are cast); default: follow the input (float32 unless
        float64 is passed). The module is copied to each dtype/device it is used in.
    cache_bytes : int
        Bytes of per-row features kept between calls (default 1 GiB; 0 disables the cache).
        Repeated calls on the same rows (k-means++ in kernel space, the diagonal, batches
        against fixed landmarks) read the features of the rows that fit instead of
        recomputing them; entries used by the current call are never evicted by it.
    """

    module: object = None
    contraction: object = "sum"
    implementation: str = "exact"
    sketch_size: int = 256
    seed: int = 0
    memory_budget: int = BLOCK_BYTES
    input_shape: tuple | None = None
    dtype: str | None = None
    cache_bytes: int = 4 * BLOCK_BYTES
    name = "torch_ntk"

    # -- set-up -----------------------------------------------------------------------
    def __post_init__(self):
        if not isinstance(self.module, torch.nn.Module):
            raise TypeError(f"TorchNTK(module=...) needs a torch.nn.Module, got {type(self.module).__name__}.")
        if self.implementation not in ("exact", "sketch"):
            raise ValueError(f"implementation={self.implementation!r}; use 'exact' or 'sketch'.")
        if isinstance(self.contraction, str):
            if self.contraction not in ("sum", "mean"):
                raise ValueError(f"contraction={self.contraction!r}; use 'sum', 'mean' or an (O, r) "
                                 "projection array.")
            R = None
        else:
            R = np.asarray(to_host(self.contraction), dtype=np.float64)
            if R.ndim == 1:
                R = R[:, None]
            if R.ndim != 2 or R.size == 0 or not np.isfinite(R).all():
                raise ValueError("contraction as an array must be a finite (O, r) projection matrix "
                                 f"(O = outputs of the module); got shape {R.shape}.")
        if int(self.sketch_size) != self.sketch_size or self.sketch_size < 1:
            raise ValueError(f"sketch_size={self.sketch_size} must be a positive integer (S directions).")
        if not self.memory_budget > 0:
            raise ValueError(f"memory_budget={self.memory_budget} must be a positive number of bytes.")
        if self.cache_bytes < 0:
            raise ValueError(f"cache_bytes={self.cache_bytes} must be >= 0 (0 disables the cache).")
        if self.dtype is not None:
            torch_dtype(self.dtype)  # validates
        base = copy.deepcopy(self.module).eval()
        for p in base.parameters():
            p.requires_grad_(False)
        names = [n for n, _ in base.named_parameters()]
        if not names:
            raise ValueError("TorchNTK: the module has no parameters, so its eNTK is zero.")
        h = hashlib.sha256()
        for n, t in list(base.named_parameters()) + list(base.named_buffers()):
            h.update(n.encode())
            h.update(t.detach().cpu().double().contiguous().numpy().tobytes())
        st = object.__setattr__
        st(self, "_base", base)
        st(self, "_R", R)
        st(self, "n_parameters", int(sum(p.numel() for p in base.parameters())))
        st(self, "digest", h.hexdigest()[:16])
        st(self, "_copies", {})
        st(self, "_cache", OrderedDict())
        st(self, "_cache_used", [0])
        st(self, "_gen", [0])  # call counter: entries used in the current call are not evicted
        st(self, "_meta", {})

    def __repr__(self):
        c = self.contraction if isinstance(self.contraction, str) else f"projection{self._R.shape}"
        extra = f", sketch_size={self.sketch_size}, seed={self.seed}" if self.implementation == "sketch" else ""
        return (f"TorchNTK(module={type(self.module).__name__}, p={self.n_parameters}, "
                f"weights={self.digest}, contraction={c!r}, implementation={self.implementation!r}"
                f"{extra}, input_shape={self.input_shape})")

    def _copy(self, tdtype, device):
        """The snapshot in dtype/device (made once): (module, params, buffers)."""
        key = (tdtype, str(device))
        if key not in self._copies:
            mod = copy.deepcopy(self._base).to(device=device, dtype=tdtype).eval()
            params = {n: p.detach() for n, p in mod.named_parameters()}
            buffers = {n: b.detach() for n, b in mod.named_buffers()}
            self._copies[key] = (mod, params, buffers)
        return self._copies[key]

    def _module_input(self, x):
        """Rows (b, d) as the module's input (b, *input_shape)."""
        if self.input_shape is None:
            return x
        shape = tuple(self.input_shape)
        if math.prod(shape) != x.shape[1]:
            raise ValueError(f"input_shape={shape} holds {math.prod(shape)} numbers but X has "
                             f"{x.shape[1]} features per row; pass the shape the rows unflatten to.")
        return x.reshape((x.shape[0],) + shape)

    def _info(self, tdtype, device, x1):
        """O (outputs), r (contracted outputs), A (activations per sample), R as a tensor."""
        key = (tdtype, str(device))
        if key in self._meta:
            return self._meta[key]
        mod, params, buffers = self._copy(tdtype, device)
        count = [0]

        def hook(_m, _i, out):
            if torch.is_tensor(out):
                count[0] += out.numel()

        handles = [m.register_forward_hook(hook) for m in mod.modules()]
        try:
            with torch.no_grad():
                out = functional_call(mod, (params, buffers), (self._module_input(x1),))
        finally:
            for hd in handles:
                hd.remove()
        O = int(out.reshape(1, -1).shape[1])
        if self._R is None:
            r, R = O, None
        else:
            if self._R.shape[0] != O:
                raise ValueError(f"contraction has {self._R.shape[0]} rows but the module has O = {O} "
                                 "outputs; pass an (O, r) projection.")
            r, R = self._R.shape[1], torch.as_tensor(self._R, dtype=tdtype, device=device)
        scale = 1.0 / O if isinstance(self.contraction, str) and self.contraction == "mean" else 1.0
        self._meta[key] = (O, r, max(count[0], O), R, scale)
        return self._meta[key]

    # -- features ---------------------------------------------------------------------
    def _g(self, mod, params, buffers, R):
        def g(prm, x):  # one sample -> the r contracted outputs, eq. (entk-proj)
            out = functional_call(mod, (prm, buffers), (x.unsqueeze(0),)).reshape(-1)
            return out if R is None else out @ R
        return g

    def _plan(self, x, n_held: int | None = None):
        """Chunking under the budget: (tdtype, device, O, r, A, R, scale, chunks, rows).

        Exact: the contracted outputs are split into chunks of rc outputs so that (i) the
        features of all ``n_held`` Y rows of one chunk fit half the budget (then no X row is
        computed twice, whatever the size of the network) and (ii) a chunk of at least
        ``_MIN_ROWS`` X rows with its temporaries fits the other half; ``rows`` is the X chunk.
        Sketch: the S directions are split so that their tangents fit a sixth of the budget.
        """
        tdtype, device = x.dtype, x.device
        O, r, A, R, scale = self._info(tdtype, device, x[:1])
        item = x.element_size()
        half = self.memory_budget // 2  # X-side and Y-side features share the budget
        p = self.n_parameters
        if self.implementation == "exact":
            per_out = _TEMPS * (p + A) * item  # one row, one output, with temporaries
            if per_out > half:
                raise ValueError(
                    f"memory_budget={self.memory_budget} bytes cannot hold one gradient of the "
                    f"{p}-parameter network ({per_out} bytes with temporaries); raise memory_budget "
                    "or use implementation='sketch'.")
            rc = min(r, half // (per_out * min(_MIN_ROWS, x.shape[0])))
            if n_held:
                rc = min(rc, half // (n_held * p * item))
            rc = max(1, rc)
            chunks = [(j, min(r, j + rc)) for j in range(0, r, rc)]
            rows = max(1, half // (per_out * rc))
        else:
            S = int(self.sketch_size)
            sc = max(1, min(S, half // (_TEMPS * p * item)))
            chunks = [(s, min(S, s + sc)) for s in range(0, S, sc)]
            rows = max(1, half // (_TEMPS * sc * (A + O) * item))
        return tdtype, device, O, r, A, R, scale, chunks, rows

    def _directions(self, lo, hi, tdtype, device, params):
        """Rademacher directions p_lo..p_{hi-1} as a dict of (hi-lo, *shape) tensors.

        Direction s is drawn on the host from ``default_rng([seed, s])``, so the sketch does
        not depend on the chunking (memory budget) nor on the device.
        """
        key = ("dir", lo, hi, tdtype, str(device))
        hit = self._cache_get(key)
        if hit is not None:
            return hit
        p = self.n_parameters
        signs = np.empty((hi - lo, p), dtype=np.int8)
        for s in range(lo, hi):
            signs[s - lo] = host_rng([int(self.seed), s]).integers(0, 2, size=p, dtype=np.int8)
        flat = torch.from_numpy(signs).to(device=device, dtype=tdtype).mul_(2).sub_(1)
        out, at = {}, 0
        for n, prm in params.items():
            out[n] = flat[:, at:at + prm.numel()].reshape((hi - lo,) + tuple(prm.shape))
            at += prm.numel()
        self._cache_put(key, out, flat.numel() * flat.element_size())
        return out

    def _chunk_features(self, x, chunk, plan):
        """Features of rows x (b, d) for one output / direction chunk: (b, width)."""
        tdtype, device, O, r, A, R, scale, _, _ = plan
        mod, params, buffers = self._copy(tdtype, device)
        g = self._g(mod, params, buffers, R)
        xi = self._module_input(x)
        lo, hi = chunk
        if self.implementation == "exact":
            if (lo, hi) == (0, r):
                gc = g
            else:
                def gc(prm, xs):
                    return g(prm, xs)[lo:hi]
            jac = vmap(jacrev(gc), in_dims=(None, 0))(params, xi)  # name -> (b, rc, *shape)
            F = torch.cat([jac[n].reshape(x.shape[0], hi - lo, -1) for n in params], dim=2)
            F = F.reshape(x.shape[0], -1)
            return F * math.sqrt(scale) if scale != 1.0 else F
        # sketch, eq. (entk-sketch): Rᵀ J(x) p_s by forward mode for s in [lo, hi)
        V = self._directions(lo, hi, tdtype, device, params)

        def batch_out(prm):
            out = functional_call(mod, (prm, buffers), (xi,)).reshape(x.shape[0], -1)
            return out if R is None else out @ R

        def one(v):
            return jvp(batch_out, (params,), (v,))[1]  # (b, r)

        JV = vmap(one)(V)  # (hi-lo, b, r)
        F = JV.permute(1, 0, 2).reshape(x.shape[0], -1)
        return F * math.sqrt(scale / self.sketch_size)

    # -- LRU cache of per-row features -------------------------------------------------
    def _cache_get(self, key):
        if self.cache_bytes <= 0 or key not in self._cache:
            return None
        self._cache.move_to_end(key)
        value, nbytes, _ = self._cache[key]
        self._cache[key] = (value, nbytes, self._gen[0])
        return value

    def _cache_put(self, key, value, nbytes):
        """Insert, evicting least recently used entries — but never one used in the current
        call: a repeated scan over more rows than fit (k-means++ asks for K(X, x_j) once per
        landmark) then keeps hitting the part that fits instead of evicting it just before use."""
        if self.cache_bytes <= 0 or nbytes > self.cache_bytes:
            return
        while self._cache_used[0] + nbytes > self.cache_bytes:
            oldest = next(iter(self._cache))
            if self._cache[oldest][2] >= self._gen[0]:
                return  # everything cached is in use by this call: do not insert
            self._cache_used[0] -= self._cache.pop(oldest)[1]
        self._cache[key] = (value, nbytes, self._gen[0])
        self._cache_used[0] += nbytes

    def clear_cache(self):
        """Drop the cached features and directions."""
        self._cache.clear()
        self._cache_used[0] = 0

    def _features(self, x, chunk, plan):
        """Cached :meth:`_chunk_features`, keyed by a digest of the rows' bytes."""
        if self.cache_bytes <= 0:
            return self._chunk_features(x, chunk, plan)
        key = ("feat", _digest(x), tuple(x.shape), x.dtype, str(x.device), chunk)
        hit = self._cache_get(key)
        if hit is None:
            hit = self._chunk_features(x, chunk, plan)
            self._cache_put(key, hit, hit.numel() * hit.element_size())
        return hit

    def _as_tensor(self, X):
        x = to_tensor(X)
        if self.dtype is not None:
            x = x.to(torch_dtype(self.dtype))
        return x

    # -- Kernel interface ----------------------------------------------------------------
    def _block(self, xp, X, Y):
        """K(X, Y) = Σ_chunks F_X F_Yᵀ, eq. (entk-proj) / (entk-sketch).

        The features of as many Y rows as fit half the budget are computed once and held;
        X is streamed in chunks against them, so for a Y that fits (landmarks, a k-means++
        column) every feature row is computed once per call. A larger Y is split into
        parts that fit, and X is recomputed per part (or read from the feature cache).
        """
        self._gen[0] += 1
        x, y = self._as_tensor(X), self._as_tensor(Y)
        plan = self._plan(x, n_held=y.shape[0])
        rows, chunks, row_bytes = plan[-1], plan[-2], self._row_bytes(plan, x)
        hold = max(rows, (self.memory_budget // 2) // max(row_bytes, 1))
        K = torch.zeros((x.shape[0], y.shape[0]), dtype=x.dtype, device=x.device)
        with torch.no_grad():
            for chunk in chunks:
                for j0 in range(0, y.shape[0], hold):
                    j1 = min(y.shape[0], j0 + hold)
                    FY = torch.cat([self._features(y[j:min(j1, j + rows)], chunk, plan)
                                    for j in range(j0, j1, rows)])
                    for i0 in range(0, x.shape[0], rows):
                        FX = self._features(x[i0:i0 + rows], chunk, plan)
                        K[i0:i0 + rows, j0:j1] += FX @ FY.T
                    del FY
        return from_tensor(K, X)

    def _row_bytes(self, plan, x):
        """Bytes of one held feature row of one chunk (no temporaries)."""
        lo, hi = plan[-2][0]
        width = (hi - lo) * (self.n_parameters if self.implementation == "exact" else plan[3])
        return width * x.element_size()

    def _diag(self, xp, X):
        self._gen[0] += 1
        x = self._as_tensor(X)
        plan = self._plan(x)
        rows = plan[-1]
        d = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        with torch.no_grad():
            for chunk in plan[-2]:
                for i0 in range(0, x.shape[0], rows):
                    F = self._features(x[i0:i0 + rows], chunk, plan)
                    d[i0:i0 + rows] += (F * F).sum(dim=1)
        return from_tensor(d, X)

    def features(self, X, dtype=None):
        """φ(X) with φ(X) φ(Y)ᵀ = K(X, Y): (n, S·r) for the sketch, (n, r·p) for ``exact``
        (the flattened contracted Jacobians — large; use it for small networks only)."""
        X = asarray(X, dtype=dtype or self.dtype, name="X")
        x = self._as_tensor(X)
        plan = self._plan(x)
        rows = plan[-1]
        with torch.no_grad():
            parts = [torch.cat([self._chunk_features(x[i:i + rows], c, plan)
                                for i in range(0, x.shape[0], rows)]) for c in plan[-2]]
        return from_tensor(torch.cat(parts, dim=1), X)


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


_HASH_WEIGHTS = {}


def _digest(x, on_device=None) -> str:
    """A digest of the exact bits of rows x (b, d), the key of the feature cache.

    On the host: BLAKE2b of the bytes. On a GPU (``on_device``, default ``x.is_cuda``) the rows
    stay there: their bits, read as integers, are multiplied by two fixed random 64-bit
    vectors and summed with wrap-around (a linear hash mod 2⁶⁴), and only those 2·b integers
    cross to the host.
    """
    on_device = x.is_cuda if on_device is None else on_device
    x = x.detach().contiguous()
    if not on_device:
        return hashlib.blake2b(x.cpu().numpy().tobytes(), digest_size=16).hexdigest()
    bits = x.view(torch.int32 if x.element_size() == 4 else torch.int64).to(torch.int64)
    key = (x.shape[1], str(x.device))
    if key not in _HASH_WEIGHTS:
        w = np.random.default_rng(0x6E74).integers(-2**62, 2**62, size=(x.shape[1], 2), dtype=np.int64) | 1
        _HASH_WEIGHTS[key] = torch.from_numpy(w).to(x.device)
    h = (bits.unsqueeze(-1) * _HASH_WEIGHTS[key]).sum(dim=1)  # (b, 2), wraps mod 2^64
    return hashlib.blake2b(h.cpu().numpy().tobytes(), digest_size=16).hexdigest()


def sketch_error(module, X, sizes=(16, 64, 256), seeds=(0, 1, 2), contraction="sum",
                 input_shape=None, dtype="float64", memory_budget: int = BLOCK_BYTES):
    """Relative Frobenius error ‖K_S − K‖_F / ‖K‖_F of the sketch (entk-sketch) vs the exact eNTK.

    Parameters
    ----------
    module : torch.nn.Module
    X : array (n, d)
        Rows on which K = K(X, X) is compared.
    sizes : sequence of int
        Sketch sizes S.
    seeds : sequence of int
        Independent sketches per size (the error is averaged over them).

    Returns
    -------
    dict with ``sizes``, ``mean`` and ``std`` (over seeds) of the relative error per S, and
    ``errors`` (len(sizes) × len(seeds)). The error of an unbiased sketch falls like 1/√S.
    """
    if not len(sizes) or not len(seeds):
        raise ValueError("sketch_error needs at least one sketch size and one seed.")
    X = asarray(X, dtype=dtype, name="X")
    kw = dict(contraction=contraction, input_shape=input_shape, memory_budget=memory_budget)
    exact = TorchNTK(module, implementation="exact", **kw)(X)
    xp = get_xp(exact)
    norm = float(xp.linalg.norm(exact))
    if not norm > 0:
        raise ValueError("the exact eNTK on X is zero; pick other rows or another module.")
    errs = np.empty((len(sizes), len(seeds)))
    for i, S in enumerate(sizes):
        for j, s in enumerate(seeds):
            K = TorchNTK(module, implementation="sketch", sketch_size=int(S), seed=int(s), **kw)(X)
            errs[i, j] = float(xp.linalg.norm(K - exact)) / norm
    return {"sizes": [int(s) for s in sizes], "mean": errs.mean(axis=1).tolist(),
            "std": errs.std(axis=1).tolist(), "errors": errs.tolist()}

