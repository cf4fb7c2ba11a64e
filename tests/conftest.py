"""Shared test settings: one table of tolerances per dtype, namespace × dtype grid."""
import numpy as np
import pytest

from krepes_lib.backend import gpu_available

#: Relative tolerances per dtype for comparisons against float64 / naive references.
RTOL = {np.float32: 2e-4, np.float64: 1e-10}

NAMESPACES = ["numpy"] + (["cupy"] if gpu_available() else [])


@pytest.fixture(params=NAMESPACES)
def xp(request):
    if request.param == "numpy":
        return np
    import cupy

    return cupy


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param
