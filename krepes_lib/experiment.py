"""The small experiment layer: default kernel, model construction, view batches, seeds.

Book: *Theory* (``book/theory.md``), sections "Kernels", "Landmark selection", "Nyström and PC
initialisation"; spec §1–§2 (m ≈ √n in v3), §4 (views).

What every notebook used to copy lives here once, with one convention for random streams:

* :func:`default_kernel` — RBF (or Laplacian) with the median-heuristic bandwidth times a
  factor, or any kernel of :data:`krepes_lib.kernels.KERNELS` by name;
* :func:`build_model` — kernel → landmarks (m = ⌈√n⌉ by default, k-means++) → Nyström →
  :class:`~krepes_lib.model.NystromModel` at its PC initialisation, in one call;
* :func:`view_batches` — ``n_batches`` batches of views of random training rows, drawn from
  ``default_rng([seed, STREAM_VIEWS])``: the same views for the same seed in every notebook
  and in :func:`krepes_lib.audit`;
* :func:`seed_rng` — the host generator of a named stream for a seed.
"""
from __future__ import annotations

import math

import numpy as np

from .backend import default_xp, get_xp, to_device
from .kernels import Kernel, make_kernel, median_sigma

__all__ = ["default_kernel", "build_model", "view_batches", "iter_view_batches", "resolve_m", "seed_rng",
           "STREAM_VIEWS", "STREAM_LANDMARKS"]

#: Random streams (the second entry of ``default_rng([seed, stream])``).
STREAM_LANDMARKS, STREAM_VIEWS, STREAM_PROBE = 3, 7, 11


def seed_rng(seed: int, stream: int) -> np.random.Generator:
    """``numpy.random.default_rng([seed, stream])``: one independent host stream per purpose."""
    return np.random.default_rng([int(seed), int(stream)])


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


def build_model(X, h: int, m="sqrt", kernel="rbf", landmarks: str = "kmeans++", seed: int = 0,
                coords: str = "whitened", init: str = "pc", dtype=None, kernel_scale: float = 1.0,
                **landmark_options):
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
    seed : int
        Seeds the landmark draw (and a random init).
    coords, init, dtype
        See :class:`~krepes_lib.model.NystromModel` / :class:`~krepes_lib.nystrom.Nystrom`.
    kernel_scale : float
        Bandwidth factor of :func:`default_kernel`.
    """
    from .landmarks import select_landmarks
    from .model import NystromModel
    from .nystrom import Nystrom

    xp = get_xp(X) if hasattr(X, "__cuda_array_interface__") else default_xp()
    X = to_device(X, xp, dtype=dtype)
    k = default_kernel(X, kernel, scale=kernel_scale)
    opts = dict(landmark_options)
    if landmarks == "leverage":
        opts.setdefault("kernel", k)
    lm = select_landmarks(X, m=resolve_m(m, X.shape[0]), method=landmarks, seed=seed, **opts)
    nys = Nystrom(k, lm, dtype=X.dtype)
    return NystromModel(nys, h=min(int(h), nys.rank), coords=coords, init=init, seed=seed)


def view_batches(X, n_batches: int, batch_size: int, views: int = 2, augment="auto", seed: int = 0):
    """``n_batches`` batches of ``views`` views of ``batch_size`` random rows of X.

    Rows of each batch are drawn without replacement; batches and augmentations come from
    ``seed_rng(seed, STREAM_VIEWS)``. ``augment`` as in :func:`krepes_lib.train.resolve_augment`
    ("auto": table corruption for two views, none for one). Returns a list of tuples
    (:func:`iter_view_batches` yields the same batches one at a time).
    """
    return list(iter_view_batches(X, n_batches, batch_size, views, augment, seed))


def iter_view_batches(X, n_batches: int, batch_size: int, views: int = 2, augment="auto", seed: int = 0):
    """The batches of :func:`view_batches`, generated one at a time (same seed, same views):
    a pass can be repeated without keeping any batch (a streamed audit)."""
    from .train import resolve_augment

    if int(n_batches) != n_batches or n_batches < 1:
        raise ValueError(f"n_batches={n_batches} must be a positive integer.")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be a positive integer.")
    xp = get_xp(X)
    aug = resolve_augment(augment, views)
    rng = seed_rng(seed, STREAM_VIEWS)
    B = min(int(batch_size), X.shape[0])
    for _ in range(int(n_batches)):
        Xb = X[xp.asarray(rng.choice(X.shape[0], size=B, replace=False))]
        yield tuple(aug(Xb, rng) for _ in range(views))
