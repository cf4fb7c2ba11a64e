"""View streams: which rows form each batch and how every view of them is augmented.

Book: *Theory* (``book/theory.md``), section "Training"; spec §1 (p views per sample) and §4.

One module for what :func:`krepes_lib.fit`, :func:`krepes_lib.audit` and every study share:

* :func:`resolve_augment` — the augmenter of a call (``"auto"``, ``None``, ``"table"``, an
  image shape, a Dataset or a callable; the augmenters themselves are in
  :mod:`krepes_lib.augment`);
* :func:`view_batches` / :func:`iter_view_batches` — ``n_batches`` batches of views of random
  training rows, drawn from ``default_rng([seed, STREAM_VIEWS])``: the same views for the same
  seed in every notebook and in :func:`krepes_lib.audit` (generated again, never stored, when
  an audit streams);
* :func:`seed_rng` — the host generator of a named stream for a seed;
* :func:`partition_view_batches` — the batches of one partition of the rows (a chunk of a Dask
  array), drawn from that partition alone with ``default_rng([seed, STREAM_VIEWS, part])``, so
  a cluster draws them where the rows are; :func:`partition_batches` lists the same batches
  for rows in memory (the single-process equivalent of an audit over Dask rows).
"""
from __future__ import annotations

import numpy as np

from .augment import TableAugmenter, identity, make_augmenter
from .backend import get_xp

__all__ = ["resolve_augment", "view_batches", "iter_view_batches", "seed_rng",
           "partition_view_batches", "partition_batch_counts", "partition_batches",
           "STREAM_VIEWS", "STREAM_LANDMARKS", "STREAM_PROBE"]

#: Random streams (the second entry of ``default_rng([seed, stream])``).
STREAM_LANDMARKS, STREAM_VIEWS, STREAM_PROBE = 3, 7, 11


def seed_rng(seed: int, stream: int) -> np.random.Generator:
    """``numpy.random.default_rng([seed, stream])``: one independent host stream per purpose."""
    return np.random.default_rng([int(seed), int(stream)])


def resolve_augment(augment, views: int):
    """The augmenter: ``"auto"`` = table corruption for two views, none for one view;
    ``None`` = none; ``"table"``, an image shape or a Dataset -> :func:`make_augmenter`;
    a callable ``(X_batch, rng) -> X_view`` is used as is."""
    if isinstance(augment, str) and augment == "auto":
        return identity if views == 1 else TableAugmenter()
    if augment is None:
        return identity
    if callable(augment):
        return augment
    return make_augmenter(augment)


def view_batches(X, n_batches: int, batch_size: int, views: int = 2, augment="auto", seed: int = 0):
    """``n_batches`` batches of ``views`` views of ``batch_size`` random rows of X.

    Rows of each batch are drawn without replacement; batches and augmentations come from
    ``seed_rng(seed, STREAM_VIEWS)``. ``augment`` as in :func:`resolve_augment`
    ("auto": table corruption for two views, none for one). Returns a list of tuples
    (:func:`iter_view_batches` yields the same batches one at a time).
    """
    return list(iter_view_batches(X, n_batches, batch_size, views, augment, seed))


def iter_view_batches(X, n_batches: int, batch_size: int, views: int = 2, augment="auto", seed: int = 0):
    """The batches of :func:`view_batches`, generated one at a time (same seed, same views):
    a pass can be repeated without keeping any batch (a streamed audit)."""
    if int(n_batches) != n_batches or n_batches < 1:
        raise ValueError(f"n_batches={n_batches} must be a positive integer.")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be a positive integer.")
    yield from _draw(X, n_batches, batch_size, views, augment, seed_rng(seed, STREAM_VIEWS))


def _draw(X, n_batches, batch_size, views, augment, rng):
    xp = get_xp(X)
    aug = resolve_augment(augment, views)
    B = min(int(batch_size), X.shape[0])
    for _ in range(int(n_batches)):
        Xb = X[xp.asarray(rng.choice(X.shape[0], size=B, replace=False))]
        yield tuple(aug(Xb, rng) for _ in range(views))


def partition_batch_counts(n_batches: int, rows) -> list:
    """How many of ``n_batches`` batches each partition of ``rows[i]`` rows draws.

    Proportional to the rows (largest remainders, ties to the earlier partition); a
    partition smaller than the batch still counts its rows. Sums to ``n_batches``.
    """
    rows = np.asarray([int(r) for r in rows], dtype=np.int64)
    if int(n_batches) != n_batches or n_batches < 1:
        raise ValueError(f"n_batches={n_batches} must be a positive integer.")
    if rows.size == 0 or rows.min() < 0 or rows.sum() < 1:
        raise ValueError(f"partitions of rows {rows.tolist()}: need at least one non-empty partition.")
    share = int(n_batches) * rows / rows.sum()
    counts = np.floor(share).astype(np.int64)
    rest = int(n_batches) - int(counts.sum())
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[:rest]] += 1
    return counts.tolist()


def partition_view_batches(X_part, part: int, n_batches: int, batch_size: int, views: int = 2,
                           augment="auto", seed: int = 0):
    """The batches of views of one partition of the rows, generated one at a time.

    Like :func:`iter_view_batches` on ``X_part`` alone, with the host generator
    ``default_rng([seed, STREAM_VIEWS, part])``: a partition's batches depend on its own rows
    and index only, so each worker of a cluster draws its partition's batches where the rows
    are (:mod:`krepes_lib.distributed`), and the same call on rows in memory gives the same
    batches (:func:`partition_batches`).
    """
    if int(n_batches) != n_batches or n_batches < 0:
        raise ValueError(f"n_batches={n_batches} must be a non-negative integer.")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be a positive integer.")
    rng = np.random.default_rng([int(seed), STREAM_VIEWS, int(part)])
    yield from _draw(X_part, int(n_batches), batch_size, views, augment, rng)


def partition_batches(X, chunks, n_batches: int, batch_size: int, views: int = 2, augment="auto",
                      seed: int = 0) -> list:
    """All batches of an audit over rows partitioned as ``chunks`` (rows per partition, e.g. a
    Dask array's ``X.chunks[0]``), drawn from rows in memory: what ``kr.audit`` on the Dask
    array computes with, as ``kr.audit(..., batches=partition_batches(...))`` in one process."""
    chunks = [int(c) for c in chunks]
    if sum(chunks) != X.shape[0]:
        raise ValueError(f"chunks {chunks} hold {sum(chunks)} rows but X has {X.shape[0]}.")
    counts = partition_batch_counts(n_batches, chunks)
    out, start = [], 0
    for part, (rows, k) in enumerate(zip(chunks, counts)):
        if k:
            out.extend(partition_view_batches(X[start:start + rows], part, k, batch_size, views,
                                              augment, seed))
        start += rows
    return out
