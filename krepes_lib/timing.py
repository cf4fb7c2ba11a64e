"""The one timer: wall seconds per named stage, device-synchronised.

Book: *Scaling* (the time breakdown), *Performance* (how speed is measured).

* :class:`Timer` — ``with timer("landmarks"): ...`` adds the stage's wall seconds (queued
  device work is waited for at both ends, :func:`krepes_lib.backend.synchronize`) and its CPU
  seconds (all threads of this process: the figure that does not move with the machine's load);
  :meth:`Timer.call` times one call and returns its result too;
* :func:`best_of` — the best of ``repeats`` synchronised wall times of a call (the least
  disturbed by other processes), for measurements repeated on purpose;
* :func:`per_point` — :func:`best_of` divided by the rows of the input (test cost per point).

Speed claims are not decided by timings inside tests: the benchmark suite prints ratios
against a peer measured in the same run (``benchmarks/run.py``).
"""
from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

from .backend import synchronize

__all__ = ["Timer", "best_of", "per_point"]


class Timer:
    """Wall seconds per named stage; stages of the same name add up.

    Parameters
    ----------
    xp : module
        The array namespace whose queued work is waited for (NumPy: nothing to wait for).

    Attributes
    ----------
    seconds : dict
        Stage name → accumulated seconds (first-seen order).
    calls : dict
        Stage name → number of timed sections.
    cpu_seconds : dict
        Stage name → accumulated CPU seconds of this process (``time.process_time``).
    """

    def __init__(self, xp=np):
        self.xp = xp
        self.seconds: dict = {}
        self.calls: dict = {}
        self.cpu_seconds: dict = {}

    def __repr__(self):
        return "Timer(" + ", ".join(f"{k}={v:.3g}s" for k, v in self.seconds.items()) + ")"

    @contextmanager
    def __call__(self, name: str):
        synchronize(self.xp)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield self
        finally:
            synchronize(self.xp)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.process_time() - c0
            self.calls[name] = self.calls.get(name, 0) + 1

    def call(self, fn, name: str = "call"):
        """``(fn(), seconds)``: one timed call, added to stage ``name``."""
        before = self.seconds.get(name, 0.0)
        with self(name):
            out = fn()
        return out, self.seconds[name] - before

    def get(self, name: str) -> float:
        """Seconds of stage ``name`` (0 if never timed)."""
        return float(self.seconds.get(name, 0.0))

    @property
    def total(self) -> float:
        return float(sum(self.seconds.values()))

    @property
    def cpu_total(self) -> float:
        """CPU seconds of all stages."""
        return float(sum(self.cpu_seconds.values()))

    def reset(self):
        self.seconds.clear()
        self.calls.clear()
        self.cpu_seconds.clear()


def best_of(fn, xp=np, repeats: int = 3, warmup: bool = False) -> float:
    """Best of ``repeats`` synchronised wall times of ``fn()`` in seconds.

    ``warmup=True`` calls ``fn()`` once first (caches, lazy imports, kernel compilation).
    """
    if int(repeats) < 1:
        raise ValueError(f"repeats={repeats} must be >= 1.")
    if warmup:
        fn()
    timer = Timer(xp)
    best = float("inf")
    for _ in range(int(repeats)):
        best = min(best, timer.call(fn)[1])
    return best


def per_point(fn, X, repeats: int = 3, xp=np) -> float:
    """Best-of-``repeats`` wall seconds of ``fn(X)`` divided by len(X) (test cost per point)."""
    return best_of(lambda: fn(X), xp, repeats) / len(X)
