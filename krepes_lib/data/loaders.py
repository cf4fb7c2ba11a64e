"""The table of loaders: :func:`load` by name, :func:`names`, :data:`LOADERS`."""
from __future__ import annotations

from typing import Any, Callable

from .dataset import Dataset
from .images import cifar10, cifar10_png200, digits, fashion_mnist, mnist, mnist_5k, mnist_test
from .tables import adult, bank, covtype, higgs

__all__ = ["LOADERS", "names", "load"]

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
    krepes_lib.data.verify.DataChecksumError
        A file read does not match its registered SHA-256 (nothing is loaded).
    """
    try:
        loader = LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(LOADERS)}.") from None
    return loader(**kw)
