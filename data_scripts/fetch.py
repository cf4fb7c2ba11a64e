"""Download and verify the registered data files.

``python -m data_scripts.fetch [DATASET ...] [--data-dir DIR] [--list]`` (also reachable as
``krepes fetch-data DATASET``).

How a file is fetched (:func:`fetch`)
-------------------------------------
1. Every directory of the search path (:func:`krepes_lib.data.data_dirs`, plus ``data_dir``)
   is checked for ``<dataset>/<file>``. A copy whose SHA-256 matches the registry is used as
   it is: a verified file is never downloaded again, and nothing touches the network.
2. Otherwise the file is downloaded with :mod:`urllib` into ``<data_dir>/<dataset>/<file>.part``
   (``data_dir`` defaults to the first writable directory of the search path).
   An existing ``.part`` is resumed with an HTTP ``Range`` request (a server that ignores
   the range sends the whole file, which then replaces the ``.part``). A progress bar
   (tqdm) is shown on stderr unless ``progress=False``.
3. The SHA-256 of the ``.part`` is compared with the registry. On a match the ``.part`` is
   renamed to its final name with :func:`os.replace` (atomic on one filesystem). On a
   mismatch the ``.part`` is deleted; the next mirror is tried and, when none gives the
   right bytes, :class:`ChecksumError` names the file, both hashes and what to do.
4. Network errors (refused connection, timeout, HTTP error, truncated body) move on to the
   next URL of the file, after a couple of resumed retries on the same URL.

Bounded in time, locked, honest
-------------------------------
* Every read waits at most ``timeout`` seconds (``--timeout``, default :data:`TIMEOUT_S`) and
  a whole :func:`fetch` call at most ``deadline`` seconds (``--deadline``, default
  :data:`DEADLINE_S`): a black-holed network fails in bounded time with :class:`FetchError`.
* The failure message says whether a partial ``.part`` was kept, with its size, only when
  one exists (it is resumed by the next call).
* Two fetches of the same file (two processes, or threads) are serialised by an exclusive
  ``fcntl`` lock on ``<file>.lock`` next to the ``.part``: the second waits (it says so on
  stderr), then uses the file the first one verified; it gives up with :class:`FetchError`
  when the deadline passes first.
* ``force=True`` / ``--force`` downloads again even when a verified copy exists (the new
  file replaces the copy in ``data_dir``): the fix for a corrupt or truncated copy that a
  loader refused.
* An unwritable ``data_dir`` raises :class:`FetchError` naming it (no raw ``PermissionError``).

A file registered with ``sha256=None`` is refused (:class:`UnverifiedFileError`) unless
``allow_unverified=True`` / ``--allow-unverified``; the computed hash is then printed so it
can be reviewed and pinned in :mod:`krepes_lib.data.registry`.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import http.client
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from krepes_lib.data import registry
from krepes_lib.data.registry import RemoteFile
from krepes_lib.data.verify import sha256_of

__all__ = [
    "FetchError",
    "ChecksumError",
    "UnverifiedFileError",
    "FileStatus",
    "sha256_of",
    "fetch",
    "fetch_file",
    "verify",
    "main",
]

#: Seconds without data after which a connection counts as a network error.
TIMEOUT_S = 60
#: Seconds one :func:`fetch` call (all its files, URLs and retries) may take at most.
DEADLINE_S = 1800
#: Seconds between two tries of a lock held by another fetch of the same file.
LOCK_POLL_S = 0.5
#: Attempts per URL (the later ones resume the ``.part``) before moving to the next URL.
ATTEMPTS_PER_URL = 3
_CHUNK = 1 << 16
_USER_AGENT = "krepes-companion-data/0.1 (+python-urllib)"


class FetchError(RuntimeError):
    """A file could not be fetched (every URL failed, or it has no URL)."""


class ChecksumError(FetchError):
    """Downloaded bytes do not match the registered SHA-256."""


class UnverifiedFileError(FetchError):
    """The file has no registered checksum and ``allow_unverified`` was not given."""


class _DeadlineExceeded(Exception):
    """Internal: the overall deadline passed."""


class _Retry(Exception):
    """Internal: the transfer stopped early or the server answered oddly; resume or retry."""


@dataclass(frozen=True)
class FileStatus:
    """Result of checking one registered file (see :func:`verify`).

    Attributes
    ----------
    dataset, filename : str
        Which file.
    status : {"ok", "missing", "mismatch", "unverified"}
        ``ok``: present and its SHA-256 matches; ``missing``: in no data directory;
        ``mismatch``: present with the wrong SHA-256; ``unverified``: present, but the
        registry has no checksum for it.
    path : Path or None
        The copy that was checked (the first one in the search path).
    expected, actual : str or None
        Registered and computed SHA-256.
    """

    dataset: str
    filename: str
    status: str
    path: Path | None
    expected: str | None
    actual: str | None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------
def _log(msg: str, verbose: bool = True) -> None:
    if verbose:
        print(msg, file=sys.stderr, flush=True)


def _abs(d: str | os.PathLike) -> Path:
    """``d`` with ``~`` expanded, absolute against the current directory (like ``KREPES_DATA``)."""
    return Path(os.path.normpath(os.path.abspath(os.path.expanduser(d))))


def _search_dirs(data_dir: str | os.PathLike | None) -> list[Path]:
    """``data_dir`` (when given) followed by the configured search path, without repeats."""
    from krepes_lib.data import data_dirs

    out: list[Path] = []
    for d in ([_abs(data_dir)] if data_dir is not None else []) + data_dirs():
        if d not in out:
            out.append(d)
    return out


def _writable(d: Path) -> bool:
    """True when ``d`` exists and is writable, or could be created."""
    p = d
    while not p.exists():
        if p.parent == p:
            return False
        p = p.parent
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


def _target_dir(data_dir: str | os.PathLike | None) -> Path:
    """Where downloads go: ``data_dir``, else the first writable directory of the search path.

    Raises
    ------
    FetchError
        ``data_dir`` is None and no directory of the search path is writable.
    """
    from krepes_lib.data import DATA_ENV, data_dirs

    if data_dir is not None:
        return _abs(data_dir)
    dirs = data_dirs()
    for d in dirs:
        if _writable(d):
            return d
    raise FetchError(
        "no data directory is writable (" + ", ".join(str(d) for d in dirs) + "). Pass "
        f"--data-dir DIR (data_dir=DIR) and add DIR to {DATA_ENV}, e.g. "
        f"{DATA_ENV}=DIR{os.pathsep}{os.environ.get(DATA_ENV, '')}"
    )


def _copies(dataset: str, filename: str, dirs: Iterable[Path]) -> list[Path]:
    return [d / dataset / filename for d in dirs if (d / dataset / filename).is_file()]


def _fmt_size(n: int | None) -> str:
    if n is None:
        return "?"
    x = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if x < 1000 or unit == "GB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1000
    return f"{n} B"  # pragma: no cover


def _select(entry: registry.DatasetEntry, files: Sequence[str] | None, kind: str | None):
    if kind not in (None, "official", "substitute"):
        raise ValueError(f"kind={kind!r}: use None, 'official' or 'substitute'.")
    if files is not None:
        return [entry.file(f) for f in files]  # KeyError names the choices
    return [f for f in entry.files if kind is None or f.kind == kind]


# ------------------------------------------------------------------------------------------
# download of one file
# ------------------------------------------------------------------------------------------
def _remaining(deadline: float | None) -> float:
    """Seconds left before ``deadline`` (a :func:`time.monotonic` value); inf without one."""
    return float("inf") if deadline is None else deadline - time.monotonic()


def _transfer(url: str, part: Path, size: int | None, progress: bool, label: str,
              timeout: float = TIMEOUT_S, deadline: float | None = None) -> None:
    """Append the missing bytes of ``url`` to ``part`` (resuming with a Range request).

    Every blocking socket operation waits at most ``min(timeout, time left)``; the read loop
    stops with :class:`_DeadlineExceeded` once ``deadline`` has passed.
    """
    left = _remaining(deadline)
    if left <= 0:
        raise _DeadlineExceeded()
    start = part.stat().st_size if part.exists() else 0
    if size is not None and start == size:
        return  # complete already: let the checksum decide
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if start:
        req.add_header("Range", f"bytes={start}-")
    try:
        resp = urllib.request.urlopen(req, timeout=max(0.05, min(timeout, left)))
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # range past the end: the .part may be complete
            return
        raise
    with resp:
        status = getattr(resp, "status", 200)
        if start and status == 206:
            content_range = resp.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {start}-"):
                part.unlink(missing_ok=True)
                raise _Retry(f"server answered Range {start}- with {content_range!r}")
            mode = "ab"
        else:
            start, mode = 0, "wb"  # full body: start over
        length = resp.headers.get("Content-Length")
        expected_body = int(length) if length is not None and length.isdigit() else None
        total = start + expected_body if expected_body is not None else size
        from tqdm.auto import tqdm

        received = 0
        with open(part, mode) as f, tqdm(
            total=total,
            initial=start,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=label,
            disable=not progress,
            leave=False,
            file=sys.stderr,
        ) as bar:
            while True:
                if _remaining(deadline) <= 0:
                    f.flush()
                    raise _DeadlineExceeded()
                # read1: what has arrived (one socket read), so a stalled transfer keeps it all
                block = resp.read1(_CHUNK) if hasattr(resp, "read1") else resp.read(_CHUNK)
                if not block:
                    break
                f.write(block)
                received += len(block)
                bar.update(len(block))
            f.flush()
            os.fsync(f.fileno())
        if expected_body is not None and received < expected_body:
            raise _Retry(f"connection closed after {received} of {expected_body} bytes")


_NETWORK_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    socket.timeout,
    TimeoutError,
    ConnectionError,
    _Retry,
)


def _part_note(part: Path) -> str:
    """What is left of a failed download, stated only when it is there."""
    try:
        n = part.stat().st_size
    except OSError:
        n = 0
    if n > 0:
        return (f"A partial download of {n:,} bytes is kept at {part} and is resumed by the "
                "next fetch.")
    return "No partial download was kept."


@contextlib.contextmanager
def _file_lock(lock_path: Path, label: str, deadline: float | None, verbose: bool):
    """Hold an exclusive ``fcntl`` lock on ``lock_path``; wait (with a message) while another
    fetch holds it, up to ``deadline``."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not announced:
                    _log(f"{label}: another fetch is downloading this file (lock {lock_path}); "
                         "waiting for it to finish...", True)
                    announced = True
                if _remaining(deadline) <= 0:
                    raise FetchError(
                        f"{label}: another fetch still holds the lock {lock_path} and the "
                        "deadline passed while waiting for it. Let that fetch finish (or stop "
                        "it) and re-run; raise the limit with --deadline SECONDS.") from None
                time.sleep(min(LOCK_POLL_S, max(0.01, _remaining(deadline))))
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _check_writable(directory: Path, label: str) -> None:
    if not _writable(directory):
        raise FetchError(
            f"{label}: cannot write to {directory} (permission denied or read-only). Choose a "
            f"writable folder with --data-dir DIR (data_dir=DIR) and add it to KREPES_DATA "
            f"(e.g. KREPES_DATA=DIR{os.pathsep}{os.environ.get('KREPES_DATA', '')}).")


def fetch_file(
    dataset: str,
    rf: RemoteFile,
    data_dir: str | os.PathLike | None = None,
    allow_unverified: bool = False,
    progress: bool = True,
    force: bool = False,
    timeout: float = TIMEOUT_S,
    deadline: float | None = None,
) -> Path:
    """Make one registered file present and verified; return its path.

    Parameters
    ----------
    dataset : str
        Registry dataset the file belongs to (its folder name).
    rf : RemoteFile
        The registry entry of the file.
    data_dir : path-like, optional
        Where a download goes (``<data_dir>/<dataset>/<file>``); default the first writable
        directory of :func:`krepes_lib.data.data_dirs`. Copies already present in any
        directory of the search path are used when their checksum matches.
    allow_unverified : bool, default False
        Accept a file whose registered ``sha256`` is None (the computed hash is printed).
    progress : bool, default True
        Show a progress bar and status lines on stderr.
    force : bool, default False
        Download even when a verified copy is present (it replaces the copy in ``data_dir``).
    timeout : float, default :data:`TIMEOUT_S`
        Seconds one connect or read may wait.
    deadline : float, optional
        :func:`time.monotonic` value after which the fetch gives up (a whole :func:`fetch`
        call shares one). None: no overall limit.

    Returns
    -------
    Path
        The verified file.

    Raises
    ------
    UnverifiedFileError
        The registry has no checksum for the file and ``allow_unverified`` is False.
    ChecksumError
        No URL delivered bytes with the registered SHA-256 (the ``.part`` is removed).
    FetchError
        Every URL failed with a network error, the deadline passed, the target directory is
        not writable, or the file has no URL and is absent. The message says whether a
        ``.part`` was kept.
    """
    from krepes_lib.data.verify import file_sha256

    expected = rf.sha256
    if expected is None and not allow_unverified:
        raise UnverifiedFileError(
            f"{dataset}/{rf.filename} has no registered SHA-256, so it cannot be verified. "
            "Re-run with allow_unverified=True (command line: --allow-unverified) to accept "
            "it; the computed hash is printed so it can be reviewed and pinned in "
            "krepes_lib/data/registry.py."
        )
    dirs = _search_dirs(data_dir)
    label = f"{dataset}/{rf.filename}"

    def present() -> Path | None:
        """A verified copy anywhere in the search path (hashes cached by path/size/mtime)."""
        for path in _copies(dataset, rf.filename, dirs):
            actual = file_sha256(path)
            if expected is None:
                _log(f"{label}: present at {path}, unverified, sha256 {actual}", True)
                return path
            if actual == expected:
                _log(f"{label}: present and verified ({path})", progress)
                return path
            _log(f"warning: {path} does not match the registered SHA-256 "
                 f"(expected {expected}, got {actual}); ignoring it.", True)
        return None

    # 1. a verified copy anywhere in the search path
    if not force:
        found = present()
        if found is not None:
            return found

    if not rf.urls:
        raise FetchError(
            f"{label} is an offline-only file (no URL serves these exact bytes) "
            + ("and cannot be re-downloaded (--force). " if force else
               f"and is not in any data directory ({', '.join(str(d) for d in dirs)}). ")
            + f"{rf.note} Point KREPES_DATA at a folder that holds {label}."
        )

    # 2. download into .part (resuming, locked), 3. verify and rename
    target = _target_dir(data_dir) / dataset / rf.filename
    _check_writable(target.parent, label)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FetchError(f"{label}: cannot create {target.parent}: {e}. Choose a writable "
                         "--data-dir.") from None
    part = target.with_name(target.name + ".part")
    lock = target.with_name(target.name + ".lock")
    with _file_lock(lock, label, deadline, progress):
        if not force:  # another fetch may have finished it while this one waited
            found = present()
            if found is not None:
                return found
        return _download(dataset, rf, target, part, label, expected, progress, timeout,
                         deadline, force)


def _download(dataset, rf, target: Path, part: Path, label: str, expected, progress: bool,
              timeout: float, deadline: float | None, force: bool) -> Path:
    """The locked part of :func:`fetch_file`: every URL, resumed retries, verify, rename."""
    if rf.size is not None and part.exists() and part.stat().st_size > rf.size:
        part.unlink()
    network_errors: list[str] = []
    mismatch: ChecksumError | None = None
    for url in rf.urls:
        fresh_retry_done = False
        attempt = 0
        while attempt < ATTEMPTS_PER_URL:
            attempt += 1
            if _remaining(deadline) <= 0:
                raise _deadline_error(label, deadline, network_errors, part, target, expected)
            resumed_from = part.stat().st_size if part.exists() else 0
            try:
                _log(
                    f"{label}: downloading {_fmt_size(rf.size)} from {url}"
                    + (f" (resuming at byte {resumed_from})" if resumed_from else ""),
                    progress,
                )
                _transfer(url, part, rf.size, progress, label, timeout, deadline)
            except _DeadlineExceeded:
                raise _deadline_error(label, deadline, network_errors, part, target,
                                      expected) from None
            except urllib.error.HTTPError as e:
                network_errors.append(f"{url}: HTTP {e.code} {e.reason}")
                if 400 <= e.code < 500 and e.code not in (408, 429):
                    break  # this URL will not work: next mirror
                continue
            except _NETWORK_ERRORS as e:
                network_errors.append(f"{url}: {type(e).__name__}: {e}")
                continue
            if not part.exists():  # e.g. 416 without a .part
                network_errors.append(f"{url}: no data received")
                continue
            actual = sha256_of(part)
            if expected is None:
                os.replace(part, target)
                _log(
                    f"{label}: UNVERIFIED download accepted (--allow-unverified); "
                    f"sha256 {actual}, {target.stat().st_size} bytes. Review it and pin this "
                    "hash in krepes_lib/data/registry.py.",
                    True,
                )
                return target
            if actual == expected:
                os.replace(part, target)
                _log(f"{label}: verified, saved to {target}", progress)
                return target
            part.unlink(missing_ok=True)
            mismatch = ChecksumError(
                f"{label}: SHA-256 mismatch for the download from {url}: expected {expected}, "
                f"got {actual}. The partial file was deleted and nothing was saved. Re-run the "
                f"fetch (`python -m data_scripts.fetch {dataset}`); if it keeps failing the "
                "server is serving different bytes — do not use the file, report it, or place "
                f"a copy with the registered checksum at {target}."
            )
            _log(f"{label}: checksum mismatch from {url} (got {actual})", True)
            if resumed_from and not fresh_retry_done:
                fresh_retry_done = True  # a stale .part may be to blame: once more from zero
                attempt = 0
                continue
            break  # next mirror
    if mismatch is not None:
        raise mismatch
    if _remaining(deadline) <= 0:
        raise _deadline_error(label, deadline, network_errors, part, target, expected)
    raise FetchError(
        f"{label}: every URL failed:\n  "
        + "\n  ".join(network_errors)
        + "\nCheck the network (proxies are read from http_proxy/https_proxy) and re-run. "
        + _part_note(part)
        + f" Or copy the file (sha256 {expected}) to {target}."
    )


def _deadline_error(label, deadline, network_errors, part, target, expected) -> FetchError:
    tried = ("\n  ".join([""] + network_errors)) if network_errors else ""
    return FetchError(
        f"{label}: gave up: the fetch's deadline passed (--deadline SECONDS, default "
        f"{DEADLINE_S} s; each read waits at most --timeout SECONDS).{tried}\nThe network "
        "may be unreachable or very slow; check it (proxies are read from "
        "http_proxy/https_proxy) and re-run, with a larger --deadline for a slow link. "
        + _part_note(part) + f" Or copy the file (sha256 {expected}) to {target}."
    )


# ------------------------------------------------------------------------------------------
# public API
# ------------------------------------------------------------------------------------------
def fetch(
    dataset: str,
    data_dir: str | os.PathLike | None = None,
    allow_unverified: bool = False,
    progress: bool = True,
    files: Sequence[str] | None = None,
    kind: str | None = None,
    force: bool = False,
    timeout: float = TIMEOUT_S,
    deadline: float | None = DEADLINE_S,
) -> dict[str, Path]:
    """Download (if needed) and verify the files of a registered dataset.

    Parameters
    ----------
    dataset : str
        A name from :func:`krepes_lib.data.registry.names` (``mnist``, ``fashion_mnist``,
        ``cifar10``, ``covtype``, ``adult``, ``higgs``, ``bank``).
    data_dir : path-like, optional
        Directory downloads go to (``<data_dir>/<dataset>/<file>``). Default: the first
        writable directory of :func:`krepes_lib.data.data_dirs` (``$KREPES_DATA`` or
        ``~/.cache/krepes/data``). Loaders only search :func:`~krepes_lib.data.data_dirs`,
        so a ``data_dir`` outside it must be added to ``KREPES_DATA`` (a note says so).
    allow_unverified : bool, default False
        Accept files registered without a checksum (prints their computed SHA-256).
    progress : bool, default True
        Progress bars and status lines on stderr.
    files : sequence of str, optional
        Only these files of the dataset. Default: all of them; offline-only files (no URL)
        that are absent are skipped with a note.
    kind : {None, "official", "substitute"}
        Only files of this kind (e.g. ``kind="substitute"`` fetches the 5,000-row HIGGS
        sample without the 2.6 GB official file).
    force : bool, default False
        Download again even when a verified copy is present (see :func:`fetch_file`).
    timeout : float, default :data:`TIMEOUT_S`
        Seconds one connect or read may wait.
    deadline : float or None, default :data:`DEADLINE_S`
        Seconds the whole call may take (all files, URLs, retries and lock waits); it ends
        at most ``timeout`` later. None: no limit.

    Returns
    -------
    dict of str to Path
        Path of every file that is present and verified after the call.

    Raises
    ------
    KeyError
        Unknown dataset or file name (the message lists the choices).
    ChecksumError, UnverifiedFileError, FetchError
        See :func:`fetch_file`. Files fetched before the failure stay in place.
    """
    from krepes_lib.data import DATA_ENV, data_dirs

    entry = registry.get(dataset)
    chosen = _select(entry, files, kind)
    out: dict[str, Path] = {}
    dirs = _search_dirs(data_dir)
    if data_dir is not None and _abs(data_dir) not in data_dirs():
        _log(
            f"note: {data_dir} is not in the data search path; add it to {DATA_ENV} so the "
            "loaders find these files.",
            progress,
        )
    if deadline is not None and not deadline > 0:
        raise ValueError(f"deadline={deadline!r}: give a positive number of seconds or None.")
    if not timeout > 0:
        raise ValueError(f"timeout={timeout!r}: give a positive number of seconds.")
    until = None if deadline is None else time.monotonic() + float(deadline)
    for rf in chosen:
        if not rf.urls and files is None and (force or not _copies(dataset, rf.filename, dirs)):
            _log(f"{dataset}/{rf.filename}: skipped (offline-only"
                 + (", cannot be re-downloaded" if force else ", not present")
                 + f"). {rf.note}", progress)
            continue
        out[rf.filename] = fetch_file(dataset, rf, data_dir, allow_unverified, progress,
                                      force=force, timeout=timeout, deadline=until)
    return out


def verify(
    dataset: str,
    data_dir: str | os.PathLike | None = None,
    files: Sequence[str] | None = None,
) -> list[FileStatus]:
    """Check the SHA-256 of the files of ``dataset`` that are present; no network.

    Parameters
    ----------
    dataset : str
        Registered dataset name.
    data_dir : path-like, optional
        Searched before the configured search path.
    files : sequence of str, optional
        Only these files (default all registered files of the dataset).

    Returns
    -------
    list of FileStatus
        One entry per registered file: ``ok``, ``missing``, ``mismatch`` or ``unverified``;
        the copy checked is the first one in the search path (the one loaders read).
    """
    entry = registry.get(dataset)
    dirs = _search_dirs(data_dir)
    out = []
    for rf in _select(entry, files, None):
        copies = _copies(dataset, rf.filename, dirs)
        if not copies:
            out.append(FileStatus(dataset, rf.filename, "missing", None, rf.sha256, None))
            continue
        actual = sha256_of(copies[0])
        if rf.sha256 is None:
            status = "unverified"
        else:
            status = "ok" if actual == rf.sha256 else "mismatch"
        out.append(FileStatus(dataset, rf.filename, status, copies[0], rf.sha256, actual))
    return out


# ------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------
def _print_list(data_dir) -> None:
    dirs = _search_dirs(data_dir)
    try:
        target = str(_target_dir(data_dir))
    except FetchError:
        target = "nowhere: no data directory is writable (use --data-dir)"
    print("data directories searched: " + ", ".join(str(d) for d in dirs))
    print(f"downloads go to:          {target}\n")
    for entry in registry.DATASETS.values():
        print(f"{entry.name}: {entry.description}\n  {entry.homepage}  [{entry.license}]")
        for rf in entry.files:
            where = _copies(entry.name, rf.filename, dirs)
            state = f"present ({where[0].parent.parent})" if where else "absent"
            how = "" if rf.urls else ", offline-only"
            sha = (rf.sha256[:12] + "…") if rf.sha256 else "NO CHECKSUM"
            print(
                f"  {rf.filename:<42} {rf.kind:<10} {_fmt_size(rf.size):>9}  "
                f"sha256 {sha}  {state}{how}"
            )
        print()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (0 success, 1 failure, 2 usage)."""
    parser = argparse.ArgumentParser(
        prog="python -m data_scripts.fetch",
        description=(
            "Download and verify the KREPES datasets into <data dir>/<dataset>/<file>. "
            "Files already present and verified in any data directory are not downloaded "
            "again. Data directories: $KREPES_DATA (os.pathsep-separated), default "
            "~/.cache/krepes/data."
        ),
    )
    parser.add_argument(
        "datasets",
        nargs="*",
        metavar="DATASET",
        help=f"one or more of: {', '.join(registry.names())}, or 'all'",
    )
    parser.add_argument(
        "--data-dir", metavar="DIR", help="download into DIR (default: first writable data directory)"
    )
    parser.add_argument("--list", action="store_true", help="list the registered files and exit")
    parser.add_argument(
        "--verify", action="store_true", help="only check the files present (no download)"
    )
    parser.add_argument(
        "--only",
        choices=("official", "substitute"),
        help="only official files or only the small offline substitutes",
    )
    parser.add_argument("--file", action="append", dest="files", metavar="NAME",
                        help="only this file of the dataset (repeatable)")
    parser.add_argument(
        "--allow-unverified",
        action="store_true",
        help="accept files that have no registered checksum (prints the computed hash)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--force", action="store_true",
                        help="download again even if a verified copy exists (replaces the copy "
                             "in --data-dir; the fix for a corrupt or truncated file)")
    parser.add_argument("--deadline", type=float, default=DEADLINE_S, metavar="SECONDS",
                        help=f"give up after this many seconds per dataset (default {DEADLINE_S})")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, metavar="SECONDS",
                        help=f"seconds one connect or read may wait (default {TIMEOUT_S})")
    args = parser.parse_args(argv)
    if not args.deadline > 0 or not args.timeout > 0:
        print("error: --deadline and --timeout must be positive numbers of seconds",
              file=sys.stderr)
        return 2

    if args.list:
        _print_list(args.data_dir)
        return 0
    if not args.datasets:
        parser.print_usage(sys.stderr)
        print(
            "error: name at least one DATASET (or 'all'), or use --list. "
            f"Datasets: {', '.join(registry.names())}",
            file=sys.stderr,
        )
        return 2
    names = registry.names() if "all" in args.datasets else args.datasets
    unknown = [n for n in names if n not in registry.DATASETS]
    if unknown:
        print(
            f"error: unknown dataset(s) {', '.join(unknown)}; choose from "
            f"{', '.join(registry.names())} or 'all'",
            file=sys.stderr,
        )
        return 2
    if args.files and len(names) != 1:
        print("error: --file needs exactly one DATASET", file=sys.stderr)
        return 2

    failed = False
    for name in names:
        if args.verify:
            for st in verify(name, args.data_dir, args.files):
                where = f" ({st.path})" if st.path else ""
                print(f"{name}/{st.filename}: {st.status}{where}")
                if st.status == "mismatch":
                    print(f"    expected {st.expected}\n    actual   {st.actual}")
                    failed = True
            continue
        try:
            got = fetch(
                name,
                data_dir=args.data_dir,
                allow_unverified=args.allow_unverified,
                progress=not args.no_progress,
                files=args.files,
                kind=args.only,
                force=args.force,
                timeout=args.timeout,
                deadline=args.deadline,
            )
            for fname, path in got.items():
                print(f"{name}/{fname}: ok ({path})")
        except (FetchError, KeyError) as e:
            print(f"error: {e}", file=sys.stderr)
            failed = True
        except OSError as e:  # e.g. a folder that cannot be written: a message, no traceback
            where = f" {e.filename}" if getattr(e, "filename", None) else ""
            print(f"error: {name}: cannot write{where}: {e.strerror or e}. Choose a writable "
                  "--data-dir DIR and add it to KREPES_DATA.", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
