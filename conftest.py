"""Repository-wide pytest settings (unit tests and nbval over the notebooks).

* ``KREPES_DATA`` entries that are relative (``../shared/data``) are made absolute here, at
  startup, against the directory pytest was started in: nbval runs each notebook's kernel in
  the notebook's folder, and the kernel inherits this environment, so a relative path keeps
  the meaning it had on the command line (``krepes_lib.provenance.absolutize_env``; the same
  for ``KREPES_CACHE`` and ``KREPES_VERIFY_CACHE``).
* Notebooks executed by nbval write their result files and figures into a temporary folder
  (``KREPES_RESULTS``) unless the caller chose one, and plot with the non-interactive backend.
"""
import os
import tempfile

from krepes_lib.provenance import absolutize_env

absolutize_env()
os.environ.setdefault("KREPES_RESULTS", tempfile.mkdtemp(prefix="krepes-results-"))
os.environ.setdefault("MPLBACKEND", "Agg")
