"""Train / held-out splits: :func:`load_split` and the :class:`Split` it returns.

One rule for every notebook (it replaces the ``load_split`` copies the notebooks had):

* A dataset **with an official split** (:data:`OFFICIAL_SPLIT`: ``adult``, ``mnist``,
  ``fashion_mnist``, ``cifar10``) uses it: ``n_train`` rows drawn (stratified) from the
  official training file(s), ``n_test`` from the official test file(s); ``None`` keeps all
  rows of that side.
* **Any other dataset** is split once, stratified: ``n_test`` rows are held out (``None``:
  ``round(0.2 · N)``), then ``n_train`` rows are drawn (stratified) from the rest (``None``:
  all the rest).

Seeds
-----
``seed`` (an int) **chooses the rows**: the held-out side is drawn with
``stratified_indices(·, n_test, seed)`` and the training side with ``seed + 1`` (for
``seed=0`` these are the streams the notebooks used before). The same seed gives the same
rows on every machine; another seed gives another split. Experiments that vary a *model*
seed over a fixed split keep ``seed`` fixed.

Row ids
-------
``train_ids`` / ``test_ids`` are row numbers in one index space per dataset, so they are
disjoint: for a single-file dataset the row number in the file (all rows, before any
subset); for an official split the training rows first, then the test rows offset by the
number of training rows available (Adult's ``split="all"`` order).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from .dataset import Dataset, stratified_indices, take
from .loaders import LOADERS, load

__all__ = ["Split", "load_split", "OFFICIAL_SPLIT"]

#: Loaders whose data comes as separate official training and test files (``split=``).
OFFICIAL_SPLIT = frozenset({"adult", "mnist", "fashion_mnist", "cifar10"})


@dataclass(frozen=True, eq=False)
class Split:
    """Training and held-out rows of one dataset (see :func:`load_split`).

    Unpacks as ``X, y, X_test, y_test = split``.

    Attributes
    ----------
    name : str
        Loader name.
    train, test : Dataset
        The chosen rows with every attribute of the loaded dataset (``classes``,
        ``image_shape``, ``feature_groups``, ``X_raw``, ``categorical``, ...).
    train_ids, test_ids : ndarray of int64
        Row ids in the dataset's common index space (disjoint; see the module notes).
    official : bool
        Whether the official split was used.
    seed : int
        The seed that chose the rows.
    """

    name: str
    train: Dataset
    test: Dataset
    train_ids: np.ndarray
    test_ids: np.ndarray
    official: bool
    seed: int

    # the four arrays ---------------------------------------------------------------------
    @property
    def X(self) -> np.ndarray:
        """Training features ``train.X``."""
        return self.train.X

    @property
    def y(self) -> np.ndarray:
        """Training labels ``train.y``."""
        return self.train.y

    @property
    def X_test(self) -> np.ndarray:
        """Held-out features ``test.X``."""
        return self.test.X

    @property
    def y_test(self) -> np.ndarray:
        """Held-out labels ``test.y``."""
        return self.test.y

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.X, self.y, self.X_test, self.y_test))

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i):
        return (self.X, self.y, self.X_test, self.y_test)[i]

    # summaries ---------------------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        """Class names (``train.classes``)."""
        return self.train.classes

    @property
    def n_classes(self) -> int:
        """Number of classes of the dataset (not only those present)."""
        return self.train.n_classes

    @property
    def image_shape(self) -> tuple | None:
        """Shape of one image, (H, W) or (H, W, C), channels last; None for tables."""
        return self.train.image_shape

    @property
    def layout(self) -> str | None:
        """``"HWC"`` for images (rows flattened channels-last), None for tables."""
        return self.train.layout

    @property
    def chance(self) -> float:
        """Accuracy of always predicting the majority class of the held-out rows."""
        counts = np.bincount(self.y_test, minlength=self.n_classes)
        return float(counts.max() / counts.sum())

    def __repr__(self) -> str:
        return (f"Split({self.name!r}, n_train={len(self.train)}, n_test={len(self.test)}, "
                f"official={self.official}, seed={self.seed}, n_classes={self.n_classes})")


def _size(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise ValueError(f"{what} must be a positive int or None, got {value!r}.")
    return int(value)


def load_split(name: str, n_train: int | None = None, n_test: int | None = None, seed: int = 0,
               shrink: bool = False, **loader_kw: Any) -> Split:
    """Load ``name`` and split it into training and held-out rows (stratified).

    Parameters
    ----------
    name : str
        A loader name (:func:`krepes_lib.data.names`).
    n_train : int, optional
        Training rows (default: all available on the training side).
    n_test : int, optional
        Held-out rows (default: the whole official test set, or 20 % of the rows of a
        dataset without an official split).
    seed : int, default 0
        Chooses the rows (held-out side with ``seed``, training side with ``seed + 1``);
        see the module notes.
    shrink : bool, default False
        For a dataset without an official split that has fewer than ``n_train + n_test``
        rows: scale both sizes down in their ratio (n_test = round(N·n_test/(n_train+n_test)),
        n_train = N − n_test) and say so, instead of raising — so one experiment profile serves
        small (digits: 1,797 rows) and large datasets.
    **loader_kw
        Passed to the loader (e.g. ``source="jpeg"`` for CIFAR-10, ``variant=`` for Bank);
        not ``n`` or ``split``, which this function sets.

    Returns
    -------
    Split
        Unpacks as ``X, y, X_test, y_test``; also ``.train`` / ``.test`` (Datasets),
        ``.train_ids`` / ``.test_ids``, ``.n_classes``, ``.chance``.

    Raises
    ------
    ValueError
        Unknown name, a size that is not a positive int, ``n_train + n_test`` larger than the
        rows available (the message gives the count and what to pass), ``n``/``split`` in
        ``loader_kw``.
    FileNotFoundError, krepes_lib.data.verify.DataChecksumError
        From the loader.
    """
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(LOADERS)}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int (it chooses the split), got {seed!r}.")
    seed = int(seed)
    n_train, n_test = _size(n_train, "n_train"), _size(n_test, "n_test")
    clash = sorted({"n", "split"} & set(loader_kw))
    if clash:
        raise ValueError(f"load_split sets {clash} itself; pass n_train / n_test instead.")
    if name in OFFICIAL_SPLIT:
        tr_all = load(name, split="train", **loader_kw)
        te_all = load(name, split="test", **loader_kw)
        for side, want, ds in (("n_train", n_train, tr_all), ("n_test", n_test, te_all)):
            if want is not None and want > len(ds):
                raise ValueError(
                    f"{side}={want} is more than the {len(ds)} rows of {name}'s official "
                    f"{'training' if side == 'n_train' else 'test'} set; pass {side} <= "
                    f"{len(ds)} or {side}=None for all of them.")
        te_rows = stratified_indices(te_all.y, n_test, seed)
        tr_rows = stratified_indices(tr_all.y, n_train, seed + 1)
        train, test = take(tr_all, tr_rows), take(te_all, te_rows)
        train_ids = np.asarray(train.indices, dtype=np.int64)
        test_ids = len(tr_all) + np.asarray(test.indices, dtype=np.int64)
        official = True
    else:
        full = load(name, **loader_kw)
        N = len(full)
        nte = int(round(0.2 * N)) if n_test is None else n_test
        if shrink and n_train is not None and n_train + nte > N:
            nte = int(round(N * nte / (n_train + nte)))
            n_train = N - nte
            print(f"{name}: {N} rows; using n_train = {n_train}, n_test = {nte} (same ratio)")
        if nte >= N or (n_train is not None and n_train + nte > N):
            raise ValueError(
                f"n_train={n_train} + n_test={nte}{' (20 %)' if n_test is None else ''} "
                f"is more than the {N} rows of {name!r} (split once into held-out and "
                f"training rows); pass n_train + n_test <= {N}, e.g. n_test="
                f"{int(round(0.2 * N))}, n_train={N - int(round(0.2 * N))}.")
        te_rows = stratified_indices(full.y, nte, seed)
        rest = np.setdiff1d(np.arange(N, dtype=np.int64), te_rows)
        tr_rows = rest[stratified_indices(full.y[rest], n_train, seed + 1)]
        train, test = take(full, tr_rows), take(full, te_rows)
        train_ids, test_ids = tr_rows, te_rows
        official = False
    assert np.intersect1d(train_ids, test_ids).size == 0, "held-out rows overlap training rows"
    return Split(name=name, train=train, test=test, train_ids=train_ids, test_ids=test_ids,
                 official=official, seed=seed)
