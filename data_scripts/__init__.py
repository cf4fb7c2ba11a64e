"""Download, verify and cache the data files the KREPES companion uses.

* the registry of every file of every dataset (official URL(s) and mirrors, size, SHA-256 and
  where each checksum came from) lives in the library, :mod:`krepes_lib.data.registry`, so that
  the loaders can check what they read without importing this script package;
* :mod:`data_scripts.fetch` — :func:`~data_scripts.fetch.fetch` (resumable, verified,
  atomic downloads into ``<data dir>/<dataset>/<file>``),
  :func:`~data_scripts.fetch.verify` and the command line
  ``python -m data_scripts.fetch [DATASET ...] [--data-dir DIR] [--list]``.

The data directory search path is :func:`krepes_lib.data.data_dirs` (environment variable
``KREPES_DATA``, default ``~/.cache/krepes/data``); :mod:`krepes_lib.data` reads the files.
"""
from __future__ import annotations

__all__ = ["fetch"]
