"""Array backend: CuPy on a usable GPU, NumPy otherwise — the same code for both.

Book: *Notation and conventions* (``book/notation.md``), section "Arrays, devices and dtypes".

Policy
------
* **Everything follows X.** Numerical functions call :func:`get_xp` on their array
  arguments and compute in that namespace. Mixing host (NumPy) and device (CuPy)
  arrays in one call is an error, never a silent transfer.
* **float32 by default**, float64 on request (``dtype="float64"`` or
  ``KREPES_DTYPE=float64``). :func:`resolve_dtype` is the single place that decides.
* **Randomness is drawn on the host** from a seeded :class:`numpy.random.Generator`
  (:func:`host_rng`) and moved to the device afterwards, so a seed gives the same
  landmarks, batches and augmentations on a laptop and on a GPU.
* GPU detection is cached and tolerant: an installed CuPy without a driver or a
  device means "no GPU", not an import error. ``KREPES_BACKEND=numpy`` forces the
  host; ``KREPES_BACKEND=cupy`` demands a GPU and fails loudly without one.
* ``KREPES_BACKEND`` is validated in one place, :func:`backend_name`, which every entry point
  reaches through :func:`asarray` (and :func:`default_xp`, :func:`gpu_available`): an unknown
  value raises a ValueError and ``cupy`` without a usable GPU a RuntimeError, whatever arrays
  are passed. With a GPU, the variable chooses where *new* arrays go (:func:`default_xp`);
  arrays the caller passes still decide their own namespace (a NumPy X computes on the host:
  move it with ``kr.to_device(X)`` to compute on the GPU).
* **Every host↔device crossing is explicit**: :func:`to_device` (host → device) and
  :func:`to_host` (device → host, ``.get()``) are the only ways across; a NumPy function
  given a device array, ``np.asarray(dev)`` or ``float(dev)`` of a non-scalar fail on CuPy,
  and the test suite runs the numerical core on a stand-in that fails the same way
  (``tests/cupy_standin.py``, installed by :func:`_use_device_namespace`, never by a user
  setting).
"""
from __future__ import annotations

import contextlib
import functools
import os
from typing import Any

import numpy as np

__all__ = [
    "gpu_available",
    "backend_name",
    "default_xp",
    "get_xp",
    "is_device_array",
    "to_host",
    "to_device",
    "asarray",
    "resolve_dtype",
    "host_rng",
    "eps",
    "synchronize",
    "limit_host_threads",
    "scipy_linalg",
    "is_dask_array",
    "dask_pass",
]

_BACKEND_ENV = "KREPES_BACKEND"
_DTYPE_ENV = "KREPES_DTYPE"


# Row-parallel passes over Dask rows, by name: filled by krepes_lib.distributed when it is
# imported (``import krepes_lib`` does), so the core dispatches to it without importing it.
ROW_PASSES: dict = {}

#: The calls that accept Dask rows (named in the error of every other call).
DASK_ACCEPTED = ("kr.audit, Nystrom.features / NystromModel.embed, Kernel.matmul / rmatmul, "
                 "kr.select_landmarks, kr.median_sigma, TorchNTK.features, and the Audit metrics "
                 "embed, influence_scores, top_influential, confidence_drop")


def is_dask_array(a: Any) -> bool:
    """True for a ``dask.array.Array`` (checked by its type's module, without importing Dask)."""
    return type(a).__module__.split(".")[:2] == ["dask", "array"]


def dask_pass(name: str):
    """The implementation over Dask rows of the pass ``name`` (:mod:`krepes_lib.distributed`)."""
    try:
        return ROW_PASSES[name]
    except KeyError:
        raise RuntimeError(f"no Dask implementation of {name!r} is registered: import "
                           "krepes_lib.distributed (import krepes_lib does).") from None


# The device namespace a test installs in place of CuPy (tests/cupy_standin.py): a stack of
# (namespace, scipy.linalg counterpart, module root of its array type). Empty for every user.
_DEVICE_OVERRIDE: list = []


@functools.lru_cache(maxsize=1)
def _real_cupy_or_none():
    """Import CuPy and check that a device really works; ``None`` otherwise (cached)."""
    try:
        import cupy  # noqa: F401

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        # A tiny kernel launch catches "driver too old" and similar late failures.
        float(cupy.asarray([1.0], dtype=cupy.float32).sum())
        return cupy
    except Exception:  # ImportError, CUDARuntimeError, missing libcuda, ...
        return None


def _backend_choice() -> str:
    """The validated ``KREPES_BACKEND``: '' (unset), 'auto', 'numpy' or 'cupy'."""
    choice = os.environ.get(_BACKEND_ENV, "").strip().lower()
    if choice not in ("", "numpy", "cupy", "auto"):
        raise ValueError(
            f"{_BACKEND_ENV}={os.environ.get(_BACKEND_ENV)!r} is not understood; use 'numpy', "
            "'cupy' or 'auto' (default), or unset it."
        )
    if choice == "cupy" and _cupy_or_none() is None:
        raise RuntimeError(
            f"{_BACKEND_ENV}=cupy but no usable GPU: install the 'gpu' extra "
            "(pip install 'krepes-companion[gpu]') on a machine with a CUDA driver, or unset it."
        )
    return choice


def backend_name() -> str:
    """The backend this process computes new arrays with: ``"cupy"`` or ``"numpy"``.

    The one place ``KREPES_BACKEND`` is validated: an unknown value raises a ValueError,
    ``cupy`` without a usable GPU a RuntimeError naming the fix.
    """
    choice = _backend_choice()
    if choice == "numpy":
        return "numpy"
    return "cupy" if _cupy_or_none() is not None else "numpy"

def _cupy_or_none():
    """The device namespace: a test's stand-in while one is installed, else CuPy when a GPU
    works, else ``None`` (``cache_clear`` forgets the cached CuPy probe)."""
    if _DEVICE_OVERRIDE:
        return _DEVICE_OVERRIDE[-1][0]
    return _real_cupy_or_none()


_cupy_or_none.cache_clear = _real_cupy_or_none.cache_clear


@contextlib.contextmanager
def _use_device_namespace(xp, scipy_linalg_module):
    """Tests only: use ``xp`` (a CuPy stand-in) as the device namespace inside the block.

    ``default_xp`` / ``gpu_available`` / ``KREPES_BACKEND=cupy`` then see it as the GPU, its
    arrays count as device arrays (:func:`is_device_array`), :func:`get_xp` returns it and
    :func:`scipy_linalg` gives ``scipy_linalg_module``. No environment variable or public
    name reaches this: a user's process always gets real CuPy or NumPy.
    """
    root = xp.ndarray.__module__.split(".")[0]
    if root in ("numpy", "cupy"):
        raise ValueError("_use_device_namespace takes a stand-in namespace, not numpy or cupy.")
    _DEVICE_OVERRIDE.append((xp, scipy_linalg_module, root))
    try:
        yield xp
    finally:
        _DEVICE_OVERRIDE.pop()


def _device_root(a):
    """The module root of a device array's type ("cupy" or a stand-in's); None for others."""
    root = type(a).__module__.split(".")[0]
    if root == "cupy" or any(root == r for _, _, r in _DEVICE_OVERRIDE):
        return root
    return None


def _device_namespace(root):
    """The namespace of a device-array module root (imports CuPy only when asked)."""
    for xp, _, r in reversed(_DEVICE_OVERRIDE):
        if root == r:
            return xp
    import cupy

    return cupy


def gpu_available() -> bool:
    """True when CuPy imports and a CUDA device answers (cached after the first call).

    ``KREPES_BACKEND=numpy`` makes this False whatever the machine has; an invalid
    ``KREPES_BACKEND`` raises (:func:`backend_name`).
    """
    return backend_name() == "cupy"


def default_xp():
    """The namespace new arrays are created in when no input array decides it.

    CuPy when :func:`gpu_available`, NumPy otherwise. ``KREPES_BACKEND=cupy`` raises a
    clear error when no GPU can be used.
    """
    if backend_name() == "numpy":
        return np
    return _cupy_or_none()


def is_device_array(a: Any) -> bool:
    """True for a CuPy array (checked by its type's module, without importing CuPy).

    Torch CUDA tensors are not device arrays here (they expose ``__cuda_array_interface__``
    too): :mod:`krepes_lib.neural` converts them through DLPack explicitly.
    """
    return _device_root(a) is not None


def get_xp(*arrays: Any):
    """The array namespace of the arguments: "everything follows X".

    ``None`` and Python scalars are ignored. With no array argument, NumPy is returned
    (create arrays with :func:`default_xp` when you want the GPU).

    Raises
    ------
    TypeError
        When host (NumPy) and device (CuPy) arrays are mixed; move them with
        :func:`to_device` / :func:`to_host` first.
    """
    on_device, dev_root = None, None
    for a in arrays:
        if a is None or isinstance(a, (int, float, complex, bool, np.generic)):
            continue
        root = _device_root(a)
        dev = root is not None
        if on_device is None:
            on_device, dev_root = dev, root
        elif on_device != dev or root != dev_root:
            raise TypeError(
                "get_xp: host (NumPy) and device (CuPy) arrays were mixed in one call; "
                "move them to one place with krepes_lib.backend.to_device(x, xp) or to_host(x)."
            )
    return _device_namespace(dev_root) if on_device else np


def to_host(a: Any) -> np.ndarray:
    """``a`` as a NumPy array: the explicit device → host copy (``.get()``) for a device
    array, no copy for a NumPy array, ``numpy.asarray`` for anything else (lists, scalars).
    A Dask array is refused: gathering it is the caller's explicit ``.compute()``."""
    if is_device_array(a):
        return a.get()
    if is_dask_array(a):
        raise TypeError(f"to_host: a Dask array of shape {a.shape} would be computed and gathered "
                        "here; call .compute() on it (or on the part you need) explicitly.")
    return np.asarray(a)


def to_device(a: Any, xp=None, dtype=None):
    """``a`` as an array of namespace ``xp`` (default: :func:`default_xp`), optionally cast."""
    xp = default_xp() if xp is None else xp
    if xp is np:
        out = to_host(a)
    else:
        out = xp.asarray(a)
    if dtype is not None:
        out = out.astype(resolve_dtype(dtype), copy=False)
    return out


def resolve_dtype(dtype: Any = None) -> np.dtype:
    """The floating dtype to compute in: float32 by default, float64 on request.

    ``dtype=None`` reads ``KREPES_DTYPE`` (default ``float32``). Only float32 and
    float64 are accepted.
    """
    if dtype is None:
        dtype = os.environ.get(_DTYPE_ENV, "float32")
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype={dtype!r}: krepes_lib computes in 'float32' (default) or 'float64'.")
    return dt


def asarray(x: Any, xp=None, dtype=None, name: str = "X", check_finite: bool = True):
    """Validate and convert an input array.

    Parameters
    ----------
    x : array-like
        The data.
    xp : module, optional
        Target namespace; default: the namespace of ``x`` if it is an array, else NumPy.
    dtype : str or dtype, optional
        See :func:`resolve_dtype`.
    name : str
        Parameter name used in error messages.
    check_finite : bool
        Raise a ValueError naming ``name`` when ``x`` holds NaN or inf.
    """
    _backend_choice()  # KREPES_BACKEND: an invalid value, or cupy without a GPU, fails here
    if is_dask_array(x):
        raise TypeError(
            f"{name} is a Dask array, and this call needs its rows in memory (converting would "
            f"load all {x.shape[0]} rows here). Dask rows are accepted by {DASK_ACCEPTED} "
            f"(krepes_lib.distributed); for anything else pass {name}.compute() or a slice of it."
        )
    if xp is None:
        xp = get_xp(x) if hasattr(x, "shape") else np
    out = to_device(x, xp, dtype=resolve_dtype(dtype))
    if check_finite and out.size and not bool(xp.isfinite(out).all()):
        bad = int((~xp.isfinite(out)).sum())
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s); clean or impute them "
            f"(e.g. numpy.nan_to_num) before passing {name}."
        )
    return out


def host_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A host-side :class:`numpy.random.Generator` (pass a Generator through unchanged)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def eps(dtype) -> float:
    """Machine epsilon of ``dtype`` (used for dtype-aware tolerances)."""
    return float(np.finfo(np.dtype(dtype)).eps)


def synchronize(xp) -> None:
    """Wait for queued device work (no-op on NumPy); call before reading a timer."""
    if xp is not np:
        xp.cuda.Stream.null.synchronize()


def limit_host_threads(n: int | None):
    """Cap the host BLAS/OpenMP threads of NumPy *and* SciPy at ``n`` (None: leave as is).

    Many small per-batch matrix products run faster on one thread on a busy machine.
    SciPy bundles its own BLAS, so it is imported first for the limit to cover it.
    Returns the threadpoolctl limiter (or None).
    """
    if n is None:
        return None
    import scipy.linalg  # noqa: F401  (load SciPy's BLAS before limiting)
    import sklearn.linear_model  # noqa: F401  (and scikit-learn's OpenMP runtime, used by the probe)
    from threadpoolctl import threadpool_limits  # ships with scikit-learn

    return threadpool_limits(int(n))


def scipy_linalg(xp):
    """``scipy.linalg`` or ``cupyx.scipy.linalg`` to match ``xp`` (triangular solves etc.)."""
    if xp is np:
        import scipy.linalg

        return scipy.linalg
    for ns, sla, _ in reversed(_DEVICE_OVERRIDE):
        if xp is ns:
            return sla
    import cupyx.scipy.linalg

    return cupyx.scipy.linalg
