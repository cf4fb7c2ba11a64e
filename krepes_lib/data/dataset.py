"""The :class:`Dataset` container and stratified subsetting.

Every loader accepts ``n=None, seed=0``: ``n`` rows are drawn as a stratified random subset
(:func:`stratified_indices`: per-class quotas proportional to the class counts, largest
remainder; the rows keep their file order) with a host :class:`numpy.random.Generator`, so a
seed gives the same rows everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from ..backend import host_rng

__all__ = ["Dataset", "stratified_indices", "take"]


@dataclass
class Dataset:
    """A loaded dataset.

    Attributes
    ----------
    X : ndarray of float32, shape (n, d)
        Features; images flattened row-major (H, W[, C]) with values in [0, 1]; tables with
        standardised numeric and one-hot categorical columns.
    y : ndarray of int64, shape (n,)
        Labels in ``0 .. len(classes) - 1``.
    classes : list of str
        Class names, indexed by label.
    name : str
        Loader name.
    image_shape : tuple of int or None
        Shape of one image, e.g. ``(28, 28)`` or ``(32, 32, 3)``; None for tables.
    feature_names : list of str or None
        Name of every column of ``X`` (``"feature=category"`` for one-hot columns).
    feature_groups : dict of str to list of int or None
        Tables: original feature -> its column indices in ``X``.
    categorical : set of str
        Tables: names of the categorical original features.
    X_raw : ndarray of float or None, shape (n, n_original_features)
        Tables: the original features before encoding (numeric values, or category codes
        indexing ``categories[feature]``; NaN where a code is undefined).
    raw_feature_names : list of str or None
        Names of the columns of ``X_raw`` (the original features).
    categories : dict of str to list of str
        Category names of each categorical feature, indexed by code.
    split : str or None
        ``"train"``, ``"test"``, ``"all"``, or None where the source has no split.
    indices : ndarray of int64 or None
        Row numbers of the returned rows within the full split that was read (before the
        ``n`` subset), for reproducibility.
    source : list of str
        Files the data was read from.
    info : dict
        Anything else: ``n_available`` (rows before subsetting), ``class_counts_available``,
        standardisation statistics, notes such as ``lossy``.
    """

    X: np.ndarray
    y: np.ndarray
    classes: list[str]
    name: str
    image_shape: tuple[int, ...] | None = None
    feature_names: list[str] | None = None
    feature_groups: dict[str, list[int]] | None = None
    categorical: set[str] = field(default_factory=set)
    X_raw: np.ndarray | None = None
    raw_feature_names: list[str] | None = None
    categories: dict[str, list[str]] = field(default_factory=dict)
    split: str | None = None
    indices: np.ndarray | None = None
    source: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_classes(self) -> int:
        """Number of classes, ``len(classes)``."""
        return len(self.classes)

    @property
    def n_features(self) -> int:
        """Columns of ``X``."""
        return int(self.X.shape[1])

    @property
    def layout(self) -> str | None:
        """How each row of ``X`` holds an image: ``"HWC"`` (row-major (H, W[, C]), channels
        last — every image loader of the library) or None for tables. A network that takes
        NCHW tensors is told so once: ``TorchNTK(net, image_shape=ds.image_shape, layout="NCHW")``."""
        return None if self.image_shape is None else "HWC"

    def images(self) -> np.ndarray:
        """``X`` reshaped to ``(n, *image_shape)`` (a view); only for image datasets."""
        if self.image_shape is None:
            raise ValueError(f"dataset {self.name!r} is a table; it has no image_shape.")
        return self.X.reshape((len(self),) + tuple(self.image_shape))

    def class_counts(self) -> np.ndarray:
        """Rows per class, shape ``(n_classes,)``."""
        return np.bincount(self.y, minlength=self.n_classes)


def _check_n(n: Any, n_available: int) -> int | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be a positive int or None (all rows), got {n!r}.")
    n = int(n)
    if n < 1 or n > n_available:
        raise ValueError(
            f"n={n} is out of range: this dataset has {n_available} rows; "
            f"pass 1 <= n <= {n_available}, or n=None for all rows."
        )
    return n


def stratified_indices(y: np.ndarray, n: int | None, seed: Any = 0) -> np.ndarray:
    """Indices of a stratified random subset of ``n`` rows (sorted, so file order is kept).

    Parameters
    ----------
    y : ndarray of int, shape (N,)
        Labels.
    n : int or None
        Rows to keep; None keeps all (``arange(N)``).
    seed : int, numpy Generator or None, default 0
        Host randomness (:func:`krepes_lib.backend.host_rng`).

    Returns
    -------
    ndarray of int64, shape (n,)
        Sorted row indices. Each class gets ``floor(n * N_c / N)`` rows, the remaining rows go
        to the classes with the largest fractional parts (ties to the lower label), and the
        rows of each class are drawn uniformly without replacement.
    """
    y = np.asarray(y)
    N = int(y.shape[0])
    n = _check_n(n, N)
    if n is None or n == N:
        return np.arange(N, dtype=np.int64)
    labels, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    exact = n * counts / N
    quota = np.floor(exact).astype(np.int64)
    remainder = n - int(quota.sum())
    if remainder:
        order = np.lexsort((np.arange(len(labels)), -(exact - quota)))
        quota[order[:remainder]] += 1
    rng = host_rng(seed)
    picked = []
    for c in range(len(labels)):
        if quota[c]:
            members = np.flatnonzero(inverse == c)
            picked.append(rng.choice(members, size=int(quota[c]), replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64)


def _available_info(y_all: np.ndarray, n_classes: int) -> dict[str, Any]:
    return {
        "n_available": int(len(y_all)),
        "class_counts_available": np.bincount(y_all, minlength=n_classes).tolist(),
    }


def _check_split(split: str, allowed: Sequence[str]) -> str:
    if split not in allowed:
        raise ValueError(f"split={split!r} is not available here; use one of {list(allowed)}.")
    return split


def take(ds: Dataset, rows: np.ndarray) -> Dataset:
    """The rows ``rows`` of ``ds`` as a new :class:`Dataset` (metadata kept, ``indices`` mapped).

    ``indices`` of the result are row numbers in the same file/split as ``ds.indices`` (so
    ``take(load(name), r).indices == r`` for a dataset loaded without ``n``); per-row lists
    in ``info`` (e.g. the JPEG member names) are subset too.
    """
    rows = np.asarray(rows, dtype=np.int64)
    n = len(ds)
    info = dict(ds.info)
    for k, v in ds.info.items():
        if isinstance(v, list) and len(v) == n and k != "class_counts_available":
            info[k] = [v[i] for i in rows]
    return replace(
        ds, X=ds.X[rows], y=ds.y[rows],
        X_raw=None if ds.X_raw is None else ds.X_raw[rows],
        indices=rows.copy() if ds.indices is None else ds.indices[rows], info=info,
    )  # fmt: skip
