"""Shared helpers of the interpretability modules (validation, blocking, top-K, random subsets)."""
from __future__ import annotations

import math
from typing import Iterator, NamedTuple

import numpy as np

from ..backend import asarray, get_xp, resolve_dtype, to_host
from ..defaults import (AG_TOP_K, CAV_C, CI_LEVEL, DENSE_MAX_BYTES, DROP_KNN_K,
                        DROP_N_REMOVE, EIGEN_RTOL, N_BOOT, TOP_K)
from ..kernels import make_kernel
from ..landmarks import Landmarks, class_coverage

# TOP_K ... DENSE_MAX_BYTES: see krepes_lib.defaults (the one place for defaults).

# Random landmark subsets are drawn per chunk of this many test rows from
# default_rng([seed, stream, chunk]): independent of the block size and of the device.
_RAND_CHUNK = 4096
_STREAM_AG, _STREAM_BOOT, _STREAM_DROP = 0, 1, 2


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def _work_dtype(*arrays):
    floats = [a.dtype for a in arrays
              if hasattr(a, "dtype") and np.issubdtype(np.dtype(a.dtype), np.floating)]
    if not floats:
        return resolve_dtype(None)
    return resolve_dtype(np.result_type(*floats))


def _setup(kernel, landmarks, X_t, A, extra=()):
    """Validate (kernel, x̃, X_t, A): one namespace, one floating dtype, matching shapes."""
    kernel = make_kernel(kernel)
    L = landmarks.points if isinstance(landmarks, Landmarks) else landmarks
    xp = get_xp(L, X_t, A, *extra)  # raises on a host/device mix
    dt = _work_dtype(L, X_t, A, *extra)
    X_t = asarray(X_t, xp=xp, dtype=dt, name="X_t")
    L = asarray(L, xp=xp, dtype=dt, name="landmarks")
    A = asarray(A, xp=xp, dtype=dt, name="A")
    if X_t.ndim != 2 or L.ndim != 2:
        raise ValueError(f"X_t and landmarks must be 2-D (n, d) arrays; got shapes "
                         f"{X_t.shape} and {L.shape}.")
    if X_t.shape[1] != L.shape[1]:
        raise ValueError(f"X_t has {X_t.shape[1]} features but the landmarks have {L.shape[1]}.")
    if A.ndim == 1:
        A = A[:, None]
    if A.ndim != 2 or A.shape[0] != L.shape[0]:
        raise ValueError(f"A must have shape (m={L.shape[0]}, h) (one row per landmark); "
                         f"got {A.shape}.")
    return kernel, xp, X_t, L, A


def _budget(options) -> int:
    """Bytes of one block: ``options.memory_budget`` (default :class:`krepes_lib.Options`), the
    one place the budget is read from."""
    from ..options import resolve_options

    return resolve_options(options).memory_budget


def _rows(n, per_row_numbers, itemsize, memory_budget):
    """Test rows per block so that ``per_row_numbers`` numbers per row fit the budget."""
    if memory_budget <= 0:
        raise ValueError(f"memory_budget={memory_budget} must be a positive number of bytes.")
    return int(max(1, min(max(n, 1), memory_budget // max(1, itemsize * per_row_numbers))))


def _check_K(K, m, what="K"):
    if int(K) != K or K < 1 or K > m:
        raise ValueError(f"{what}={K} must be an integer in [1, m={m}].")
    return int(K)


def _check_dense(nbytes, max_bytes, name, stream_with):
    if nbytes > max_bytes:
        raise ValueError(
            f"{name} would need {nbytes / 2**20:.1f} MiB (> max_bytes = {max_bytes / 2**20:.1f} MiB); "
            f"stream it with {stream_with} instead, or raise max_bytes.")


def _argsort_desc(xp, a):
    if xp is np:
        return np.argsort(-a, axis=1, kind="stable")
    return xp.argsort(-a, axis=1)


def _topk(xp, S, K, sort=True):
    """Indices and values of the K largest entries per row of S (b, m), descending."""
    m = S.shape[1]
    if K < m:
        idx = xp.argpartition(-S, K - 1, axis=1)[:, :K]
    else:
        idx = xp.broadcast_to(xp.arange(m)[None, :], S.shape).copy()
    vals = xp.take_along_axis(S, idx, axis=1)
    if sort:
        order = _argsort_desc(xp, vals)
        idx = xp.take_along_axis(idx, order, axis=1)
        vals = xp.take_along_axis(vals, order, axis=1)
    return idx, vals


def _unit_vector(xp, v, h, dtype):
    v = asarray(v, xp=xp, dtype=dtype, name="v").ravel()
    if v.shape[0] != h:
        raise ValueError(f"v has {v.shape[0]} entries but the representation has h={h}.")
    nrm = float(xp.linalg.norm(v))
    if not nrm > 0:
        raise ValueError("v is the zero vector; a concept activation vector must be non-zero.")
    return v / nrm


def _floyd(rng, b, m, K):
    """b independent uniform K-subsets of range(m) (Floyd's algorithm, vectorised over rows)."""
    out = np.empty((b, K), dtype=np.int64)
    for i, j in enumerate(range(m - K, m)):
        t = rng.integers(0, j + 1, size=b)
        if i:
            t = np.where((out[:, :i] == t[:, None]).any(axis=1), j, t)
        out[:, i] = t
    return out


class _RandomSubsets:
    """Random K-subsets of the m landmarks for test rows [start, stop), host-side and
    independent of how the rows are blocked (chunks of ``_RAND_CHUNK`` rows, each from
    ``default_rng([seed, stream, chunk])``)."""

    def __init__(self, seed, stream, m, K):
        if isinstance(seed, np.random.Generator) or int(seed) != seed or seed < 0:
            raise ValueError(f"seed={seed!r} must be a non-negative integer.")
        self.seed, self.stream, self.m, self.K = int(seed), int(stream), int(m), int(K)
        self._cache = {}

    def _chunk(self, c):
        if c not in self._cache:
            self._cache.clear()
            rng = np.random.default_rng([self.seed, self.stream, c])
            self._cache[c] = _floyd(rng, _RAND_CHUNK, self.m, self.K)
        return self._cache[c]

    def __call__(self, start, stop):
        out = np.empty((stop - start, self.K), dtype=np.int64)
        for c in range(start // _RAND_CHUNK, (stop - 1) // _RAND_CHUNK + 1):
            lo, hi = max(start, c * _RAND_CHUNK), min(stop, (c + 1) * _RAND_CHUNK)
            out[lo - start:hi - start] = self._chunk(c)[lo - c * _RAND_CHUNK:hi - c * _RAND_CHUNK]
        return out


def _encode_labels(*label_arrays):
    """Integer codes 0..C−1 for the union of the given label arrays (host)."""
    hosts = [np.asarray(to_host(y)).ravel() for y in label_arrays]
    classes = np.unique(np.concatenate(hosts))
    return classes, [np.searchsorted(classes, y).astype(np.int64) for y in hosts]


def _influence_weights(xp, A, v):
    """w_l with IS = |K| w (v None, eq. int-is) or IS(·; v) = K w (signed, eq. int-concept)."""
    if v is None:
        return xp.sqrt(xp.einsum("lj,lj->l", A, A))
    return A @ _unit_vector(xp, v, A.shape[1], A.dtype)



def _representation_setup(xp, kernel, L, A, A_repr, gamma, dtype, K_mm=None):
    A_r = A if A_repr is None else asarray(A_repr, xp=xp, dtype=dtype, name="A_repr")
    if A_r.ndim == 1:
        A_r = A_r[:, None]
    if A_r.shape[0] != L.shape[0]:
        raise ValueError(f"A_repr must have m={L.shape[0]} rows; got {A_r.shape}.")
    g = None if gamma is None else asarray(gamma, xp=xp, dtype=dtype, name="gamma").reshape(1, -1)
    K_mm = kernel(L, L, dtype=dtype) if K_mm is None else K_mm.astype(dtype, copy=False)
    Z_L = K_mm @ A_r  # landmark representations f(x̃_l), (m, h)
    if g is not None:
        Z_L = Z_L + g
    return A_r, g, Z_L


def _unit_rows(xp, Z):
    nrm = xp.sqrt(xp.einsum("ij,ij->i", Z, Z))
    return Z / xp.where(nrm > 0, nrm, 1.0)[:, None]



def _blocks(kernel, X_t, L, rows, K_tm=None):
    """(rows, K_block) over blocks of test rows: computed, or sliced (copied) from a cached K_tm.

    ``K_tm`` is k(X_t, x̃) precomputed for exactly these test rows (an audit keeps it so no
    metric evaluates the same kernel block twice); blocks are copies, so callers may work in
    place.
    """
    if K_tm is None:
        yield from kernel.blocks(X_t, L, rows=rows)
        return
    if tuple(K_tm.shape) != (X_t.shape[0], L.shape[0]):
        raise ValueError(f"K_tm must have shape (n_t={X_t.shape[0]}, m={L.shape[0]}); got {tuple(K_tm.shape)}.")
    for start in range(0, X_t.shape[0], rows):
        sl = slice(start, min(X_t.shape[0], start + rows))
        yield sl, K_tm[sl].astype(X_t.dtype, copy=True)

