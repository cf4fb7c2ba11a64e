"""Every data file a loader reads is checked against its registered SHA-256.

Book: *Datasets* chapter; the checksums and their sources are in
:mod:`krepes_lib.data.registry`.

Policy
------
* A **registered** file (``krepes_lib.data.registry``) is hashed before it is read; a copy
  whose size or SHA-256 differs from the registry raises :class:`DataChecksumError` naming
  the file, the expected and actual hash (and sizes) and the fix (``krepes fetch-data NAME
  --force --data-dir DIR`` for a downloadable file, else re-copying it from its source).
  Nothing is computed from such a file.
* An **unregistered** file (e.g. an extracted ``cifar10/cifar-10-batches-py/`` folder) cannot
  be checked: it is read with an :class:`UnregisteredDataWarning` (once per file and
  process) that says so.
* ``KREPES_VERIFY=0`` switches the check off (an :class:`UnverifiedDataWarning` per file
  says the data is unchecked) — for files you changed on purpose.

Cost
----
The SHA-256 of a file is computed once: it is cached under the file's (real path, device,
inode, size, mtime_ns) in memory and in a small JSON file, ``$KREPES_VERIFY_CACHE``
(default ``~/.cache/krepes/verified.json``, or ``$XDG_CACHE_HOME/krepes/verified.json``), so
later processes pay a ``stat`` per file. The cache holds the computed hash, not the verdict,
so a change of the registry is honoured at once; a cached hash that disagrees with the
registry is recomputed from the file before the file is refused, so a damaged cache entry
never blames a good file. It is written atomically (temporary file +
rename); when its location is not writable the in-memory cache is used alone, silently. Any
write to a file changes its mtime (and a copy its inode), so a modified file is hashed again;
only a change that restores size, mtime and inode by hand would be missed.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

__all__ = ["DataChecksumError", "UnregisteredDataWarning", "UnverifiedDataWarning",
           "VERIFY_ENV", "CACHE_ENV", "check", "file_sha256", "registered", "cache_path",
           "clear_memory_cache"]

#: ``KREPES_VERIFY=0`` disables the check (each file read then warns that it is unchecked).
VERIFY_ENV = "KREPES_VERIFY"
#: Path of the on-disk hash cache (default ``~/.cache/krepes/verified.json``).
CACHE_ENV = "KREPES_VERIFY_CACHE"
_CHUNK = 1 << 20

_memory: dict[tuple, str] = {}
_warned: set[tuple[str, str]] = set()
_lock = threading.Lock()


class DataChecksumError(ValueError):
    """A data file does not match its registered size / SHA-256 (corrupt, truncated or another version)."""


class UnregisteredDataWarning(UserWarning):
    """A loader read a file that has no registry entry, so it could not be checked."""


class UnverifiedDataWarning(UserWarning):
    """Verification is switched off (``KREPES_VERIFY=0``) and a file was read unchecked."""


def registered(dataset: str, filename: str):
    """The :class:`krepes_lib.data.registry.RemoteFile` of ``dataset/filename``, or None."""
    from . import registry

    entry = registry.DATASETS.get(dataset)
    if entry is None:
        return None
    for rf in entry.files:
        if rf.filename == filename:
            return rf
    return None


def cache_path() -> Path:
    """Where the on-disk hash cache lives (``$KREPES_VERIFY_CACHE`` or the user cache folder)."""
    env = os.environ.get(CACHE_ENV)
    if env and env.strip():  # a relative path: relative to the current directory now
        return Path(os.path.abspath(os.path.expanduser(env.strip())))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "krepes" / "verified.json"


def clear_memory_cache() -> None:
    """Forget the hashes cached in this process (the on-disk cache is kept)."""
    with _lock:
        _memory.clear()
        _warned.clear()


def _key(path: Path) -> tuple[str, tuple[int, int, int, int]]:
    st = os.stat(path)
    return os.path.realpath(path), (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _disk_read(cp: Path) -> dict[str, Any]:
    try:
        with open(cp) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _disk_write(cp: Path, real: str, stamp: tuple, digest: str) -> None:
    """Add one entry to the on-disk cache atomically; an unwritable location is ignored."""
    try:
        cp.parent.mkdir(parents=True, exist_ok=True)
        data = _disk_read(cp)
        data[real] = {"stat": list(stamp), "sha256": digest}
        fd, tmp = tempfile.mkstemp(dir=cp.parent, prefix=".verified.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=0, sort_keys=True)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, cp)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass  # read-only home, full disk, ...: the in-memory cache still works


def sha256_of(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (constant memory).

    Parameters
    ----------
    path : path-like
        File to hash.
    chunk_size : int, default 1 MiB
        Bytes read at a time.

    Returns
    -------
    str
        Lower-case hex digest.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk_size)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike, fresh: bool = False) -> str:
    """Hex SHA-256 of ``path``, cached by (real path, device, inode, size, mtime_ns).

    Looks in memory, then in the on-disk cache (:func:`cache_path`), and only then reads
    the file (in 1 MiB blocks, constant memory). ``fresh=True`` reads the file whatever the
    caches say (and corrects them).
    """
    path = Path(path)
    real, stamp = _key(path)
    with _lock:
        hit = None if fresh else _memory.get((real, stamp))
    if hit is not None:
        return hit
    cp = cache_path()
    entry = None if fresh else _disk_read(cp).get(real)
    if isinstance(entry, dict) and tuple(entry.get("stat", ())) == stamp:
        digest = str(entry.get("sha256"))
    else:
        digest = sha256_of(path, chunk_size=_CHUNK)
        if _key(path)[1] == stamp:  # unchanged while it was read: the hash is the file's
            _disk_write(cp, real, stamp, digest)
    with _lock:
        _memory[(real, stamp)] = digest
    return digest


def _warn_once(path: Path, category: type[Warning], msg: str) -> None:
    key = (str(path), category.__name__)
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(msg, category, stacklevel=4)


def _fix(dataset: str, filename: str, path: Path, rf) -> str:
    if rf.urls:
        return (f"Fix: re-download it with `krepes fetch-data {dataset} --file {filename} --force "
                f"--data-dir {path.parent.parent}` (or `python -m data_scripts.fetch ...` with the "
                f"same arguments), or copy a good file over {path}.")
    return (f"Fix: it is an offline-only file ({rf.note}); copy it again from its source "
            f"({rf.checksum_source}) over {path}.")


def check(dataset: str, filename: str, path: str | os.PathLike) -> str | None:
    """Check ``path`` (a copy of ``dataset/filename``) against the registry before it is read.

    Parameters
    ----------
    dataset, filename : str
        Registry names (the folder and the file name).
    path : path-like
        The copy about to be read.

    Returns
    -------
    str or None
        The verified SHA-256, or None when the file is unregistered or ``KREPES_VERIFY=0``
        (both warn).

    Raises
    ------
    DataChecksumError
        Size or SHA-256 differs from the registry.
    """
    path = Path(path)
    rf = registered(dataset, filename)
    if os.environ.get(VERIFY_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        _warn_once(path, UnverifiedDataWarning,
                   f"{path} is read WITHOUT checking its SHA-256 ({VERIFY_ENV}=0).")
        return None
    if rf is None or rf.sha256 is None:
        _warn_once(path, UnregisteredDataWarning,
                   f"{path} has no registered SHA-256 (krepes_lib/data/registry.py), so it is read "
                   "unchecked.")
        return None
    size = os.stat(path).st_size
    actual = file_sha256(path)
    if actual != rf.sha256 and (rf.size is None or size == rf.size):
        actual = file_sha256(path, fresh=True)  # never refuse a file on a cached (damaged?) hash
    if actual == rf.sha256 and (rf.size is None or size == rf.size):
        return actual
    what = ("truncated" if rf.size is not None and size < rf.size else
            "corrupt or another version of the file")
    raise DataChecksumError(
        f"{path} does not match the registered {dataset}/{filename}: it is {what}. "
        f"Expected SHA-256 {rf.sha256}"
        + (f" ({rf.size:,} bytes)" if rf.size is not None else "")
        + f", actual SHA-256 {actual} ({size:,} bytes). Nothing was loaded from it. "
        + _fix(dataset, filename, path, rf)
    )
