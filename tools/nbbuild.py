"""Kept for existing commands: ``python tools/nbbuild.py SRC.py DST.ipynb`` = ``tools/editions.py``.

The sources are jupytext percent scripts; tools/editions.py reads them with jupytext and
writes the book notebook (exercise blocks → sphinx-exercise directives), and with
``--editions`` the student and instructor editions (otter-grader).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from editions import book_notebook as build, main  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:3]))
