"""One lifted GGN product and k CG iterations vs torch.func, and the product vs one gradient.

Folded into the suite: this runs line 4 of ``benchmarks/run.py`` (see its docstring and the
book's *Performance* page). Options are run.py's, e.g. ``--cg-iters 20 --threads 2``.

Usage::

    python benchmarks/bench_hvp.py [--cg-iters K] [--threads N] [--quick]
"""
import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "--lines", "4", "--no-book", *sys.argv[1:]]
    runpy.run_path(str(Path(__file__).with_name("run.py")), run_name="__main__")
