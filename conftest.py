"""Repository-wide pytest settings (unit tests and nbval over the notebooks).

Notebooks executed by nbval write their result files and figures into a temporary folder
(``KREPES_RESULTS``) unless the caller chose one, and plot with the non-interactive backend.
"""
import os
import tempfile

os.environ.setdefault("KREPES_RESULTS", tempfile.mkdtemp(prefix="krepes-results-"))
os.environ.setdefault("MPLBACKEND", "Agg")
