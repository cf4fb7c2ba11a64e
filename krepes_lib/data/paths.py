"""The data directory search path and finding a file in it.

Files live at ``<dir>/<dataset>/<file>`` — the layout of the project's offline data folder,
so ``KREPES_DATA=/path/to/shared/data`` makes the offline copies work. :func:`data_dirs`
returns the search path: the directories in the environment variable ``KREPES_DATA``
(separated by :data:`os.pathsep`), or ``~/.cache/krepes/data``.

A relative entry (``KREPES_DATA=../shared/data``) means relative to the current working
directory **at the time of the call**; :func:`data_dirs` returns it as an absolute path.
Programs that start other processes in another directory (``krepes reproduce`` runs the
notebooks in ``notebooks/``; nbval kernels) call :func:`absolutize_data_env` first, so the
children inherit absolute paths that mean what the user meant.

:func:`find_file` returns the first copy and checks it against its registered SHA-256
(:mod:`krepes_lib.data.verify`); a missing file raises :class:`FileNotFoundError` naming
the command that fetches it (``krepes fetch-data <dataset>`` or
``python -m data_scripts.fetch <dataset>``). Loaders read files; they never download.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import MutableMapping, Sequence

from . import verify as _verify

__all__ = ["DATA_ENV", "DEFAULT_DATA_DIR", "DataPathError", "data_dirs", "absolutize_data_env",
           "fetch_command", "find_file"]

#: Environment variable holding the data directory search path (``os.pathsep``-separated).
DATA_ENV = "KREPES_DATA"
#: Used when ``KREPES_DATA`` is unset or empty.
DEFAULT_DATA_DIR = "~/.cache/krepes/data"


def _absolute(entry: str, cwd: str | None = None) -> Path:
    """``~`` expanded, made absolute against ``cwd`` (default the current directory), ``..`` folded."""
    p = os.path.expanduser(entry.strip())
    if not os.path.isabs(p):
        p = os.path.join(cwd if cwd is not None else os.getcwd(), p)
    return Path(os.path.normpath(p))


def data_dirs() -> list[Path]:
    """The data directory search path, in order.

    Returns
    -------
    list of Path
        The entries of ``$KREPES_DATA`` split on :data:`os.pathsep` (empty entries ignored,
        ``~`` expanded, relative entries resolved against the current working directory
        now), or ``[~/.cache/krepes/data]`` when the variable is unset or empty. All
        absolute; directories need not exist.
    """
    raw = os.environ.get(DATA_ENV, "")
    dirs = [_absolute(p) for p in raw.split(os.pathsep) if p.strip()]
    if not dirs:
        dirs = [_absolute(DEFAULT_DATA_DIR)]
    return dirs


def absolutize_data_env(environ: MutableMapping[str, str] | None = None,
                        cwd: str | None = None) -> str | None:
    """Rewrite ``KREPES_DATA`` in ``environ`` (default :data:`os.environ`) with absolute entries.

    Call it before starting processes with another working directory (papermill, nbval
    kernels): they inherit the variable, and ``../shared/data`` then still means the folder
    relative to where the command was started.

    Parameters
    ----------
    environ : mutable mapping, optional
        Default ``os.environ``.
    cwd : str, optional
        What relative entries are relative to (default the current working directory).

    Returns
    -------
    str or None
        The new value, or None when the variable is unset or empty (left as it is).
    """
    env = os.environ if environ is None else environ
    raw = env.get(DATA_ENV, "")
    if not raw.strip():
        return None
    new = os.pathsep.join(str(_absolute(p, cwd)) for p in raw.split(os.pathsep) if p.strip())
    env[DATA_ENV] = new
    return new


def fetch_command(dataset: str) -> str:
    """The shell command that downloads ``dataset`` (both spellings)."""
    return f"`krepes fetch-data {dataset}` (or `python -m data_scripts.fetch {dataset}`)"


def find_file(dataset: str, filename: str, verify: bool = True) -> Path:
    """Path of ``<dir>/<dataset>/<filename>`` in the first search-path directory holding it.

    Parameters
    ----------
    dataset : str
        Dataset folder name (``mnist``, ``cifar10``, ``adult``, ...).
    filename : str
        File name inside that folder.
    verify : bool, default True
        Check the copy against its registered SHA-256 (:func:`krepes_lib.data.verify.check`;
        the verdict is cached by path, size and mtime, so a file is hashed once).

    Returns
    -------
    Path

    Raises
    ------
    FileNotFoundError
        The message names the file, every directory searched and the command that fetches
        it (or, for an offline-only file, where it came from).
    DataPathError
        The path exists in a search-path directory but is not a regular file (a directory,
        FIFO, device, broken or looping symbolic link; or the dataset folder is not a folder):
        the message says what it is. The search does not fall through to a later directory.
    krepes_lib.data.verify.DataChecksumError
        The first copy does not match the registry (message: file, expected and actual
        hash, the command that fixes it).
    """
    dirs = data_dirs()
    for d in dirs:
        p = d / dataset / filename
        if p.is_file():
            if verify:
                _verify.check(dataset, filename, p)
            return p
        _refuse_odd_entry(dataset, filename, d)
    raise FileNotFoundError(_missing_message(dataset, filename, dirs))


class DataPathError(OSError):
    """A data path exists but is not what a loader can read (a directory where a file
    belongs, a FIFO, a device, a broken or looping symbolic link)."""


def _what_is(path: Path) -> str | None:
    """What ``path`` is when it exists but is not a regular file (None: missing or regular)."""
    import errno
    import stat

    if not os.path.lexists(path):
        return None
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symbolic link that loops back on itself"
        if e.errno == errno.ENOENT:
            return f"a broken symbolic link (to {os.readlink(path)!r}, which does not exist)"
        if e.errno == errno.ENOTDIR:
            return None  # a parent is not a folder: reported for the parent
        return f"unreadable ({e.strerror})"
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a character device" if stat.S_ISCHR(mode) else "a block device"
            if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    if os.path.islink(path):
        kind += f" (through the symbolic link to {os.readlink(path)!r})"
    return kind


def _refuse_odd_entry(dataset: str, filename: str, d: Path) -> None:
    """Raise :class:`DataPathError` when ``d/dataset`` or ``d/dataset/filename`` exists but
    cannot be the data (a loader would otherwise report "not found" for a path that exists,
    or fall through to another copy further down the search path)."""
    folder = d / dataset
    if os.path.lexists(folder) and not folder.is_dir():
        what = _what_is(folder) or "a regular file"
        raise DataPathError(
            f"{folder} should be the folder holding {dataset}/{filename}, but it is {what}. "
            f"Replace it with a folder (then fetch with {fetch_command(dataset)}), or remove it "
            f"and point {DATA_ENV} at a folder that holds {dataset}/{filename}.")
    what = _what_is(folder / filename)
    if what is not None:
        raise DataPathError(
            f"{folder / filename} exists but is {what}, not a regular file, so it cannot be read "
            f"as {dataset}/{filename}. Remove it and fetch the file with {fetch_command(dataset)} "
            f"(or copy the real file there).")


def _missing_message(dataset: str, filename: str, dirs: Sequence[Path]) -> str:
    searched = ", ".join(str(d / dataset) for d in dirs)
    env = os.environ.get(DATA_ENV)
    origin = f"{DATA_ENV}={env!r}" if env else f"{DATA_ENV} unset, default {DEFAULT_DATA_DIR}"
    msg = f"{dataset}/{filename} not found. Searched: {searched} ({origin})."
    rf = _verify.registered(dataset, filename)
    if rf is not None and not rf.urls:
        msg += (
            f" It is an offline-only file that cannot be downloaded: {rf.note} Point "
            f"{DATA_ENV} at a folder holding {dataset}/{filename}."
        )
    else:
        msg += (
            f" Fetch it with {fetch_command(dataset)}, or set {DATA_ENV} to a folder that "
            f"holds {dataset}/{filename}."
        )
    return msg


def _find_first(dataset: str, filenames: Sequence[str]) -> Path | None:
    """The first of ``filenames`` present (verified), or None when none is."""
    for fn in filenames:
        try:
            return find_file(dataset, fn)
        except FileNotFoundError:
            continue
    return None

