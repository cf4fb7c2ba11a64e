"""Backend policy: everything follows X, dtype policy, host RNG, tolerant GPU detection."""
import sys

import numpy as np
import pytest

from krepes_lib import backend as B


class FakeDeviceArray:
    """Looks like a CuPy array to the backend (module name starts with 'cupy')."""

    __module__ = "cupy._core.core"
    shape = (2,)


def test_get_xp_follows_the_arrays():
    assert B.get_xp(np.ones(2), None, 3.0) is np
    assert B.get_xp() is np
    with pytest.raises(TypeError, match="host \\(NumPy\\) and device \\(CuPy\\) arrays were mixed"):
        B.get_xp(np.ones(2), FakeDeviceArray())


def test_dtype_policy(monkeypatch):
    assert B.resolve_dtype() == np.float32
    assert B.resolve_dtype("float64") == np.float64
    monkeypatch.setenv("KREPES_DTYPE", "float64")
    assert B.resolve_dtype() == np.float64
    with pytest.raises(ValueError, match="float32"):
        B.resolve_dtype("int8")


def test_asarray_rejects_nan_and_names_parameter():
    with pytest.raises(ValueError, match="X_train contains 1 NaN"):
        B.asarray([[1.0, np.nan]], name="X_train")
    assert B.asarray([[1, 2]]).dtype == np.float32


def test_host_rng_is_seeded():
    a = B.host_rng(3).normal(size=4)
    np.testing.assert_array_equal(a, B.host_rng(3).normal(size=4))
    g = np.random.default_rng(1)
    assert B.host_rng(g) is g


def test_cupy_without_driver_means_no_gpu(monkeypatch):
    B._cupy_or_none.cache_clear()
    monkeypatch.setitem(sys.modules, "cupy", None)  # import fails like a broken install
    try:
        assert B.gpu_available() is False
        assert B.default_xp() is np
        monkeypatch.setenv("KREPES_BACKEND", "cupy")
        with pytest.raises(RuntimeError, match="no usable GPU"):
            B.default_xp()
    finally:
        B._cupy_or_none.cache_clear()


def test_backend_env_forces_numpy(monkeypatch):
    monkeypatch.setenv("KREPES_BACKEND", "numpy")
    assert B.gpu_available() is False and B.default_xp() is np
    monkeypatch.setenv("KREPES_BACKEND", "tpu")
    with pytest.raises(ValueError, match="KREPES_BACKEND"):
        B.default_xp()


def test_transfers_roundtrip():
    x = np.arange(3.0)
    assert B.to_host(x) is x
    assert B.to_device(x, np, dtype="float32").dtype == np.float32


def test_thread_limit():
    assert B.limit_host_threads(None) is None
    from threadpoolctl import threadpool_info

    with B.limit_host_threads(1):
        assert all(p["num_threads"] == 1 for p in threadpool_info())
