"""A NumPy-backed stand-in for CuPy, for tests only: the device path exercised without a GPU.

It behaves like CuPy where CuPy differs from NumPy, so that code which only works because the
arrays happen to live on the host fails here as it would on a GPU:

* **no implicit conversion to the host**: ``np.asarray(dev)``, ``np.array(dev)`` and any NumPy
  or SciPy routine that converts its input raise CuPy's ``TypeError`` ("Implicit conversion to
  a NumPy array is not allowed ..."); ``float(dev)`` / ``int(dev)`` / ``bool(dev)`` work only on
  one-element arrays (CuPy synchronises and reads the value);
* **the only ways back** are ``dev.get()`` and ``asnumpy(dev)`` (counted in
  :data:`transfers`, so a test can assert that a pass stayed on the device);
* **host → device copies**: ``asarray(host)`` copies (device memory is not the host's);
  NumPy arrays are accepted as indices and as values assigned into a device array (as CuPy
  does), but an operation that mixes a device array with a NumPy array raises
  ``TypeError: Unsupported type <class 'numpy.ndarray'>`` like a CuPy ufunc;
* **NumPy functions dispatch** through ``__array_function__`` / ``__array_ufunc__`` to this
  namespace when every array argument is a device array (CuPy's behaviour), and raise
  otherwise; reductions and scalar indexing return 0-d device arrays, not NumPy scalars;
* its **own** ``random`` module (a Philox bit stream: the same seed gives other numbers than
  NumPy's PCG64, as CuPy's generators do), ``linalg``, a ``cuda`` module (``Stream.null``,
  ``runtime.getDeviceCount``), :data:`scipy_linalg` in place of ``cupyx.scipy.linalg``
  (triangular solves), ``get_array_module``, ``from_dlpack`` and ``__dlpack__``;
* arrays report ``__cuda_array_interface__`` and have ``flags`` without ``writeable``.

The arrays really are host memory underneath (``__dlpack_device__`` says CPU), so PyTorch
imports them through DLPack as CPU tensors: the DLPack route of ``krepes_lib.neural`` is
exercised, the CUDA device is not.

It is selected only by :func:`krepes_lib.backend.use_device_namespace` (``tests/conftest.py``
does that for the ``cupy-standin`` parameter of the ``xp`` fixture); no environment variable
names it, and it is not part of the installed package.
"""
from __future__ import annotations

import functools
import sys
import types

import numpy as _np

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
             "Please use `.get()` to construct a NumPy array explicitly.")

#: Explicit device -> host copies (``get``/``asnumpy``) and host -> device copies (``asarray``).
transfers = {"to_host": 0, "to_device": 0}

# numpy names passed through unchanged (types, constants, dtype helpers)
_PASS = {
    "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
    "uint32", "uint64", "bool_", "complex64", "complex128", "intp", "dtype", "finfo", "iinfo",
    "inf", "nan", "pi", "e", "newaxis", "float_", "integer", "floating", "number", "generic",
    "can_cast", "promote_types", "issubdtype", "result_type", "euler_gamma",
}
# numpy routines CuPy does not provide (keeps the stand-in from being more permissive)
_MISSING = {"asarray_chkfinite", "lib", "ma", "testing", "polynomial", "char", "rec",
            "ctypeslib", "emath", "isnat", "busday_count"}


class Flags:
    """CuPy's flags: c_contiguous, f_contiguous, owndata (no ``writeable``)."""

    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, a):
        self.c_contiguous = bool(a.flags.c_contiguous)
        self.f_contiguous = bool(a.flags.f_contiguous)
        self.owndata = bool(a.flags.owndata)

    def __getitem__(self, key):
        return getattr(self, {"C_CONTIGUOUS": "c_contiguous", "F_CONTIGUOUS": "f_contiguous",
                              "OWNDATA": "owndata"}[key])


def _unwrap(x):
    """Device arrays -> their buffers; a NumPy array in an operation -> CuPy's TypeError."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, _np.ndarray):
        raise TypeError(f"Unsupported type {type(x)}")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    return x


def _unwrap_index(key):
    """Indices: device arrays, NumPy arrays and lists are all accepted (CuPy copies them over)."""
    if isinstance(key, ndarray):
        return key._a
    if isinstance(key, tuple):
        return tuple(_unwrap_index(k) for k in key)
    return key


def _wrap(r):
    if isinstance(r, _np.ndarray):
        return ndarray(r)
    if isinstance(r, _np.generic):          # CuPy reductions and scalar indexing give 0-d arrays
        return ndarray(_np.asarray(r))
    if isinstance(r, tuple):
        return tuple(_wrap(v) for v in r)
    if isinstance(r, list):
        return [_wrap(v) for v in r]
    return r


def _call(fn, args, kwargs):
    out = kwargs.get("out")
    kw = {k: (_unwrap(v) if k != "dtype" else v) for k, v in kwargs.items()}
    r = fn(*_unwrap(args), **kw)
    if out is not None:
        outs = out if isinstance(out, tuple) else (out,)
        inner = r if isinstance(r, tuple) else (r,)
        if all(isinstance(o, ndarray) and i is o._a for o, i in zip(outs, inner)):
            return out                      # CuPy returns the out array itself
    return _wrap(r)


def _wrap_function(fn, name):
    @functools.wraps(fn)
    def f(*args, **kwargs):
        return _call(fn, args, kwargs)

    f.__name__ = name
    f._standin = True
    return f


def _binary(name):
    op = getattr(_np, name)

    def f(self, other):
        return _wrap(op(self._a, _unwrap(other)))

    def r(self, other):
        return _wrap(op(_unwrap(other), self._a))

    def i(self, other):
        op(self._a, _unwrap(other), out=self._a)
        return self

    return f, r, i


class ndarray:
    """A device array of the stand-in (a NumPy buffer that refuses to leave implicitly)."""

    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, a):
        if not isinstance(a, _np.ndarray):
            raise TypeError("cupy_standin.ndarray wraps a numpy.ndarray; use asarray().")
        self._a = a

    # -- the differences from NumPy ---------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method not in ("__call__", "outer", "at", "reduce", "accumulate", "reduceat"):
            return NotImplemented
        if _namespace_function(ufunc.__name__) is None:
            return NotImplemented
        fn = ufunc if method == "__call__" else getattr(ufunc, method)
        return _call(fn, inputs, kwargs)    # a NumPy input raises "Unsupported type"

    def __array_function__(self, func, types_, args, kwargs):
        path = func.__module__.split(".")[1:] if func.__module__ else []
        mod = sys.modules[__name__]
        for part in path:
            mod = getattr(mod, part, None)
            if mod is None:
                return NotImplemented
        fn = getattr(mod, func.__name__, None)
        if fn is None or fn is func or not callable(fn):
            return NotImplemented
        return fn(*args, **kwargs)

    def _scalar(self, cast):
        if self._a.size != 1:
            raise TypeError("only length-1 arrays can be converted to Python scalars")
        return cast(self._a.reshape(()).item())

    def __float__(self):
        return self._scalar(float)

    def __int__(self):
        return self._scalar(int)

    def __bool__(self):
        return self._scalar(bool)

    def __complex__(self):
        return self._scalar(complex)

    def __format__(self, spec):
        if self._a.ndim == 0:
            return format(self._a.item(), spec)
        return format(str(self), spec)

    def get(self, stream=None, order="C", out=None, blocking=True):
        """The explicit device -> host copy (a NumPy array)."""
        transfers["to_host"] += 1
        if out is not None:
            out[...] = self._a
            return out
        return _np.array(self._a, order=order, copy=True)

    # -- what CuPy exposes --------------------------------------------------------------------
    @property
    def __cuda_array_interface__(self):
        return {"shape": self._a.shape, "typestr": self._a.dtype.str,
                "data": (self._a.__array_interface__["data"][0], False),
                "strides": None if self._a.flags.c_contiguous else self._a.strides, "version": 3}

    def __dlpack__(self, *args, **kwargs):
        return self._a.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()

    @property
    def flags(self):
        return Flags(self._a)

    @property
    def device(self):
        return "standin:0"

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    T = property(lambda self: ndarray(self._a.T))
    mT = property(lambda self: ndarray(self._a.mT))
    real = property(lambda self: ndarray(self._a.real))
    imag = property(lambda self: ndarray(self._a.imag))
    base = property(lambda self: None if self._a.base is None else self)

    def __getattr__(self, name):
        if name.startswith("__"):          # no __array_interface__ / __array_struct__ leaks
            raise AttributeError(name)
        attr = getattr(self._a, name)      # AttributeError for what NumPy lacks
        if name in ("tolist", "item", "tobytes"):
            return attr                    # CuPy syncs and returns Python objects
        if not callable(attr):
            return _wrap(attr)

        def method(*args, **kwargs):
            return _call(attr, args, kwargs)

        return method

    def __reduce__(self):
        return (_rebuild, (self._a,))

    def __repr__(self):
        return "standin." + repr(self._a)

    def __str__(self):
        return str(self._a)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (ndarray(_np.asarray(self._a[i])) if self._a.ndim == 1 else ndarray(self._a[i])
                for i in range(self._a.shape[0]))

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap_index(key)])

    def __setitem__(self, key, value):
        if isinstance(value, ndarray):
            value = value._a
        self._a[_unwrap_index(key)] = value

    def __neg__(self):
        return _wrap(_np.negative(self._a))

    def __pos__(self):
        return _wrap(_np.positive(self._a))

    def __abs__(self):
        return _wrap(_np.absolute(self._a))

    def __invert__(self):
        return _wrap(_np.invert(self._a))

    def __matmul__(self, other):
        return _wrap(_np.matmul(self._a, _unwrap(other)))

    def __rmatmul__(self, other):
        return _wrap(_np.matmul(_unwrap(other), self._a))

    def __imatmul__(self, other):
        self._a[...] = _np.matmul(self._a, _unwrap(other))
        return self

    def __eq__(self, other):
        return _wrap(_np.equal(self._a, _unwrap(other)))

    def __ne__(self, other):
        return _wrap(_np.not_equal(self._a, _unwrap(other)))

    def __lt__(self, other):
        return _wrap(_np.less(self._a, _unwrap(other)))

    def __le__(self, other):
        return _wrap(_np.less_equal(self._a, _unwrap(other)))

    def __gt__(self, other):
        return _wrap(_np.greater(self._a, _unwrap(other)))

    def __ge__(self, other):
        return _wrap(_np.greater_equal(self._a, _unwrap(other)))


for _name, _ufunc in [("add", "add"), ("sub", "subtract"), ("mul", "multiply"),
                      ("truediv", "true_divide"), ("floordiv", "floor_divide"), ("mod", "remainder"),
                      ("pow", "power"), ("and", "bitwise_and"), ("or", "bitwise_or"),
                      ("xor", "bitwise_xor"), ("lshift", "left_shift"), ("rshift", "right_shift")]:
    _f, _r, _i = _binary(_ufunc)
    setattr(ndarray, f"__{_name}__", _f)
    setattr(ndarray, f"__r{_name}__", _r)
    setattr(ndarray, f"__i{_name}__", _i)


def _rebuild(a):
    return ndarray(a)


# -- module-level namespace ----------------------------------------------------------------------
_CACHE: dict = {}


def _namespace_function(name):
    if name in _MISSING or name.startswith("_"):
        return None
    if name in _CACHE:
        return _CACHE[name]
    fn = getattr(_np, name, None)
    if fn is None or not callable(fn) or isinstance(fn, type):
        return None
    _CACHE[name] = _wrap_function(fn, name)
    return _CACHE[name]


def __getattr__(name):
    if name in _PASS:
        return getattr(_np, name)
    fn = _namespace_function(name)
    if fn is None:
        raise AttributeError(f"module 'cupy_standin' has no attribute {name!r}")
    return fn


def asarray(a, dtype=None, order=None, *, blocking=False):
    """A device array: no copy for a device array of that dtype, a host -> device copy otherwise."""
    if isinstance(a, ndarray):
        return a if dtype is None or _np.dtype(dtype) == a.dtype else ndarray(a._a.astype(dtype))
    transfers["to_device"] += 1
    return ndarray(_np.array(a, dtype=dtype, order=order or "K", copy=True))


def array(a, dtype=None, copy=True, order="K", ndmin=0):
    if isinstance(a, ndarray):
        return ndarray(_np.array(a._a, dtype=dtype, copy=True, order=order, ndmin=ndmin))
    transfers["to_device"] += 1
    return ndarray(_np.array(a, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def ascontiguousarray(a, dtype=None):
    return ndarray(_np.ascontiguousarray(asarray(a)._a, dtype=dtype))


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    """Device -> host (a NumPy array); a NumPy input is returned as is."""
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return _np.asarray(a, order=order)


def get_array_module(*args):
    """This module when any argument is a device array, NumPy otherwise (``cupy.get_array_module``)."""
    for a in args:
        if isinstance(a, ndarray):
            return sys.modules[__name__]
    return _np


def from_dlpack(x):
    """Import a DLPack capsule owner (a torch tensor, ...) without a host copy."""
    return ndarray(_np.from_dlpack(x))


def fromDlpack(x):  # noqa: N802 - CuPy's old name
    return from_dlpack(x)


def isscalar(x):
    return _np.isscalar(x)


def ndim(a):
    return a.ndim if isinstance(a, ndarray) else _np.ndim(a)


def shape(a):
    return a.shape if isinstance(a, ndarray) else _np.shape(a)


# -- submodules ----------------------------------------------------------------------------------
def _module(name, doc):
    mod = types.ModuleType(f"{__name__}.{name}", doc)
    sys.modules[mod.__name__] = mod
    return mod


linalg = _module("linalg", "cupy.linalg stand-in: NumPy's linalg on device arrays.")


def _linalg_getattr(name):
    fn = getattr(_np.linalg, name, None)
    if fn is None or not callable(fn) or isinstance(fn, type) or name.startswith("_"):
        raise AttributeError(f"module 'cupy_standin.linalg' has no attribute {name!r}")
    wrapped = _wrap_function(fn, name)
    setattr(linalg, name, wrapped)
    return wrapped


linalg.__getattr__ = _linalg_getattr
linalg.LinAlgError = _np.linalg.LinAlgError

random = _module("random", "cupy.random stand-in: its own bit stream (Philox), not NumPy's PCG64.")


class Generator:
    """``cupy.random.Generator`` stand-in: draws on a Philox stream and returns device arrays."""

    def __init__(self, seed=None):
        self._g = _np.random.Generator(_np.random.Philox(seed))

    def __getattr__(self, name):
        fn = getattr(self._g, name)

        def draw(*args, **kwargs):
            return _wrap(_np.asarray(fn(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})))

        return draw


random.Generator = Generator
random.default_rng = lambda seed=None: Generator(seed)
_GLOBAL = [Generator(0)]


def _random_getattr(name):
    if name.startswith("_"):
        raise AttributeError(name)
    return getattr(_GLOBAL[0], name)


def _seed(seed=None):
    _GLOBAL[0] = Generator(seed)


random.seed = _seed
random.__getattr__ = _random_getattr
random.rand = lambda *shape: _GLOBAL[0].random(shape)
random.randn = lambda *shape: _GLOBAL[0].standard_normal(shape)

cuda = _module("cuda", "cupy.cuda stand-in: one device, a null stream that synchronises at once.")


class _Stream:
    def synchronize(self):
        return None


class _Runtime:
    @staticmethod
    def getDeviceCount():  # noqa: N802 - CUDA's name
        return 1


class Device:
    def __init__(self, index=0):
        self.id = int(index)

    def synchronize(self):
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


cuda.Stream = types.SimpleNamespace(null=_Stream())
cuda.runtime = _Runtime()
cuda.Device = Device

scipy_linalg = _module("scipy_linalg", "cupyx.scipy.linalg stand-in (triangular solves, LU).")


def _scipy_linalg_getattr(name):
    import scipy.linalg as sl

    if name not in ("solve_triangular", "lu_factor", "lu_solve", "block_diag", "tril", "triu",
                    "expm", "lu"):
        raise AttributeError(f"cupyx.scipy.linalg (stand-in) has no {name!r}")
    wrapped = _wrap_function(getattr(sl, name), name)
    setattr(scipy_linalg, name, wrapped)
    return wrapped


scipy_linalg.__getattr__ = _scipy_linalg_getattr
