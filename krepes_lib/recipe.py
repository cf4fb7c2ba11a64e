"""The model recipe: kernel → landmarks → Nyström → NystromModel at its PC initialisation.

Book: *Theory* (``book/theory.md``), sections "Kernels", "Landmark selection", "Nyström and PC
initialisation"; spec §1–§2 (m ≈ √n in v3).

One recipe, used by every study and by :mod:`krepes_lib.neural`:

* :func:`default_kernel` — RBF (or Laplacian) with the median-heuristic bandwidth times a
  factor, or any kernel of :data:`krepes_lib.kernels.KERNELS` by name, or a Kernel instance;
* :func:`resolve_m` — m as an integer or ``"sqrt"`` (⌈√n⌉);
* :func:`build_nystrom` — kernel → landmarks (m = ⌈√n⌉ by default, k-means++ in input or in
  kernel space) → the Nyström basis, for studies that put several models on one basis;
* :func:`build_model` — the same, then :class:`~krepes_lib.model.NystromModel` at its PC
  initialisation, in one call.

The studies (RBF and eNTK audits, v1 runs, scaling, NeuralEF's bridge) and
:func:`krepes_lib.neural.audit_network` build their bases and models with these; nothing else
writes the recipe out (studies that time each stage — ``studies.scaling.nystrom_timings``,
``studies.v1.landmark_study`` — call the same steps one at a time).
"""
from __future__ import annotations

import math

from .backend import default_xp, get_xp, to_device
from .kernels import Kernel, make_kernel, median_sigma

__all__ = ["default_kernel", "build_nystrom", "build_model", "resolve_m"]


def default_kernel(X, name: str | Kernel = "rbf", scale: float = 1.0, **params) -> Kernel:
    """The kernel of an experiment: ``name`` with the median-heuristic bandwidth for RBF/Laplacian.

    σ = ``scale`` × median ‖x_i − x_j‖ over random pairs (:func:`krepes_lib.median_sigma`);
    other kernels take ``params``. A Kernel instance is returned unchanged.
    """
    if isinstance(name, Kernel):
        return name
    if name in ("rbf", "laplacian") and "sigma" not in params:
        return make_kernel(name, sigma=scale * median_sigma(X), **params)
    return make_kernel(name, **params)


def resolve_m(m, n: int) -> int:
    """Landmarks for n rows: an int, or ``"sqrt"`` for ⌈√n⌉ (v3's m ≈ √n), capped at n."""
    if isinstance(m, str):
        if m != "sqrt":
            raise ValueError(f"m={m!r}: pass an integer or 'sqrt' (m = ceil(sqrt(n))).")
        return min(n, int(math.ceil(math.sqrt(n))))
    if int(m) != m or m < 1:
        raise ValueError(f"m={m!r} must be a positive integer or 'sqrt'.")
    return min(int(m), n)


def build_nystrom(X, m="sqrt", kernel="rbf", landmarks: str = "kmeans++", seed: int = 0, dtype=None,
                  kernel_scale: float = 1.0, landmark_space: str = "input", **landmark_options):
    """kernel → landmarks → Nyström basis, spec §1–§2 (see :func:`build_model` for the parameters).

    X is moved to the default device (cast to ``dtype`` when given); the basis computes in X's
    dtype. Returns the :class:`~krepes_lib.nystrom.Nystrom` basis (its ``landmark_indices`` say
    which rows of X are the landmarks).
    """
    from .landmarks import select_landmarks
    from .nystrom import Nystrom

    if landmark_space not in ("input", "kernel"):
        raise ValueError(f"landmark_space={landmark_space!r}: use 'input' or 'kernel'.")
    xp = get_xp(X) if hasattr(X, "__cuda_array_interface__") else default_xp()
    X = to_device(X, xp, dtype=dtype)
    k = default_kernel(X, kernel, scale=kernel_scale)
    opts = dict(landmark_options)
    if landmarks == "leverage" or landmark_space == "kernel":
        opts.setdefault("kernel", k)
    if landmark_space == "kernel" and landmarks in ("kmeans++", "kmeanspp"):
        opts.setdefault("kernel_space", True)
    lm = select_landmarks(X, m=resolve_m(m, X.shape[0]), method=landmarks, seed=seed, **opts)
    return Nystrom(k, lm, dtype=X.dtype)


def build_model(X, h: int, m="sqrt", kernel="rbf", landmarks: str = "kmeans++", seed: int = 0,
                coords: str = "whitened", init: str = "pc", dtype=None, kernel_scale: float = 1.0,
                landmark_space: str = "input", **landmark_options):
    """kernel → landmarks → Nyström → NystromModel (PC init), spec §1–§2.

    Parameters
    ----------
    X : array (n, d)
        Training rows (NumPy moves to the default device).
    h : int
        Representation dimensions (lowered to the numerical rank of K_mm when larger, with
        the model's ``h`` telling which was used).
    m : int or "sqrt"
        Landmarks (default ⌈√n⌉).
    kernel : str or Kernel
        :func:`default_kernel` name or instance.
    landmarks : {"kmeans++", "uniform", "leverage"}
    landmark_space : {"input", "kernel"}
        Where k-means++ measures distances: between rows of X, or in the kernel's feature space
        (‖φ(x) − φ(x')‖² = k(x, x) − 2k(x, x') + k(x', x'), eq. (lm-kmeanspp) with the kernel
        distance: for an eNTK, the network's own geometry).
    seed : int
        Seeds the landmark draw (and a random init).
    coords, init, dtype
        See :class:`~krepes_lib.model.NystromModel` / :class:`~krepes_lib.nystrom.Nystrom`.
    kernel_scale : float
        Bandwidth factor of :func:`default_kernel`.
    """
    from .model import NystromModel

    nys = build_nystrom(X, m=m, kernel=kernel, landmarks=landmarks, seed=seed, dtype=dtype,
                        kernel_scale=kernel_scale, landmark_space=landmark_space, **landmark_options)
    return NystromModel(nys, h=min(int(h), nys.rank), coords=coords, init=init, seed=seed)
