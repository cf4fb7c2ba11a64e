"""Shared test settings: one table of tolerances per dtype, namespace × dtype grid.

The ``xp`` fixture runs a test on NumPy, on the CuPy stand-in (``cupy_standin``: device
arrays that refuse implicit conversion to the host, installed as the device namespace with
``KREPES_BACKEND=cupy`` for the test's duration) and, when a GPU works, on real CuPy.
"""
import numpy as np
import pytest

from krepes_lib import backend
from krepes_lib.backend import gpu_available

#: Relative tolerances per dtype for comparisons against float64 / naive references.
RTOL = {np.float32: 2e-4, np.float64: 1e-10}

NAMESPACES = ["numpy", "cupy-standin"] + (["cupy"] if gpu_available() else [])


@pytest.fixture
def standin(monkeypatch):
    """The CuPy stand-in installed as the device namespace (``KREPES_BACKEND=cupy``)."""
    import cupy_standin

    monkeypatch.setenv("KREPES_BACKEND", "cupy")
    with backend._use_device_namespace(cupy_standin, cupy_standin.scipy_linalg):
        yield cupy_standin


@pytest.fixture(params=NAMESPACES[1:])
def device_xp(request):
    """A device namespace: the CuPy stand-in, and real CuPy when a GPU works."""
    if request.param == "cupy-standin":
        return request.getfixturevalue("standin")
    import cupy

    return cupy


@pytest.fixture(params=NAMESPACES)
def xp(request):
    if request.param == "numpy":
        return np
    if request.param == "cupy-standin":
        return request.getfixturevalue("standin")
    import cupy

    return cupy


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param
