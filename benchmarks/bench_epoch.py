"""One training epoch vs its PyTorch twin and vs its GEMM + exp floor (augmentation timed alone).

Folded into the suite: this runs lines 1 and 2 of ``benchmarks/run.py`` (see its docstring
and the book's *Performance* page). Options are run.py's, e.g. ``--threads 2 --quick``.

Usage::

    python benchmarks/bench_epoch.py [--threads N] [--quick]
"""
import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "--lines", "1,2", "--no-book", *sys.argv[1:]]
    runpy.run_path(str(Path(__file__).with_name("run.py")), run_name="__main__")
