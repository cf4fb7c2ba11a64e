"""Provenance: what a result or a cached artefact was made from, in one record.

Book: *Reproduction report* (``book/executed/report.md``, "Is a section current?") and
*The empirical NTK of a network*, "Networks trained here" (the weight cache).

One record, :class:`Provenance`, with four parts, is what every cache and every result of
this project is keyed by:

``code``
    SHA-256 of the source files that produce it (:func:`files_hash`; the whole library for
    a notebook, :func:`library_code_hash`, the training code for a network).
``data``
    Fingerprint of the data it was computed from: the rows actually read
    (:func:`array_fingerprint`) when they are known, or, before a notebook runs, the data
    files it can read (:func:`data_files_fingerprint`: search path, path, size and mtime of
    every registered file; the loaders check each file's SHA-256 when they read it).
``env``
    The environment that changes results (:func:`environment`): the resolved backend
    (``KREPES_BACKEND``), the dtype (``KREPES_DTYPE``), the resolved cache folder
    (``KREPES_CACHE``), whether data files are verified (``KREPES_VERIFY``) and the versions
    of Python, NumPy, SciPy, scikit-learn, PyTorch and CuPy.
``config``
    The configuration: parameters and profile of a notebook, the fields of a network's
    ``SSLConfig`` and its loss's hyper-parameters.

:meth:`Provenance.key` is the SHA-256 of the four parts (the cache key, the notebook
fingerprint); :meth:`Provenance.differences` names the parts two records differ in — the
reason a network is retrained or a report section is marked stale.

Users: :mod:`krepes_lib.neural.ssl` (network weight cache), ``krepes reproduce`` (the
notebook fingerprint it stores in every executed notebook and passes to the notebook's
results file through ``KREPES_PROVENANCE``) and the reproduction report (which recomputes the
fingerprint and marks a section whose record no longer matches).

Relative paths in ``KREPES_CACHE`` and ``KREPES_VERIFY_CACHE`` mean relative to the working
directory of the call, like ``KREPES_DATA``; :func:`absolutize_env` rewrites all three with
absolute paths before a program starts children in another folder (papermill kernels run
in ``notebooks/``).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, MutableMapping

import numpy as np

__all__ = ["Provenance", "CacheWarning", "CACHE_ENV", "PROVENANCE_ENV", "LIB_ROOT", "cache_root",
           "absolutize_env", "files_hash", "library_code_hash", "array_fingerprint",
           "data_files_fingerprint", "environment"]

#: Root of the on-disk caches (networks under ``networks/``); default ``~/.cache/krepes``.
CACHE_ENV = "KREPES_CACHE"
#: Set by ``krepes reproduce`` for the notebook it runs: the JSON of its :class:`Provenance`
#: (with its key), which :func:`krepes_lib.studies.results.save_results` copies into the results file.
PROVENANCE_ENV = "KREPES_PROVENANCE"
_VERIFY_CACHE_ENV = "KREPES_VERIFY_CACHE"  # krepes_lib.data.verify.CACHE_ENV
_PACKAGES = ("numpy", "scipy", "scikit-learn", "torch", "cupy")


class CacheWarning(UserWarning):
    """A cache artefact could not be used or written (damaged file, read-only folder); the
    result is computed afresh and the message says which file and what to do."""


# --- the record ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Provenance:
    """What something was made from: ``code``, ``data``, ``env`` and ``config`` (see the module).

    ``code`` and ``data`` are hex digests; ``env`` and ``config`` JSON-able mappings.
    """

    code: str
    data: str
    env: Mapping = field(default_factory=dict)
    config: Mapping = field(default_factory=dict)

    def key(self, length: int = 64) -> str:
        """SHA-256 (hex, first ``length`` characters) of the four parts."""
        blob = json.dumps({"code": self.code, "data": self.data, "env": self.env,
                           "config": self.config}, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:length]

    def as_dict(self) -> dict:
        """JSON-able record, with its ``key``."""
        d = json.loads(json.dumps(asdict(self), sort_keys=True, default=str))
        d["key"] = self.key()
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "Provenance":
        """The record written by :meth:`as_dict` (``key`` is recomputed, not trusted)."""
        return cls(code=str(d.get("code", "")), data=str(d.get("data", "")),
                   env=dict(d.get("env") or {}), config=dict(d.get("config") or {}))

    def differences(self, other: "Provenance") -> list[str]:
        """Human-readable parts in which ``other`` (e.g. today's record) differs from this one."""
        out = []
        if self.code != other.code:
            out.append("the code changed")
        if self.data != other.data:
            out.append("the data changed")
        for part in ("env", "config"):
            a, b = dict(getattr(self, part)), dict(getattr(other, part))
            for k in sorted(set(a) | set(b)):
                if a.get(k) != b.get(k):
                    out.append(f"{k} {_short(a.get(k))} → {_short(b.get(k))}")
        return out


def _short(v) -> str:
    s = json.dumps(v, sort_keys=True, default=str) if not isinstance(v, str) else v
    return s if len(s) <= 60 else s[:57] + "..."


# --- paths ---------------------------------------------------------------------------------
def _absolute(entry: str, cwd: str | None = None) -> Path:
    p = os.path.expanduser(entry.strip())
    if not os.path.isabs(p):
        p = os.path.join(cwd if cwd is not None else os.getcwd(), p)
    return Path(os.path.normpath(p))


def cache_root() -> Path:
    """``$KREPES_CACHE`` as an absolute path (relative to the current directory now), default
    ``~/.cache/krepes``. Not created here."""
    raw = os.environ.get(CACHE_ENV, "")
    return _absolute(raw) if raw.strip() else _absolute(os.path.join("~", ".cache", "krepes"))


def absolutize_env(environ: MutableMapping[str, str] | None = None,
                   cwd: str | None = None) -> dict:
    """Rewrite ``KREPES_DATA``, ``KREPES_CACHE`` and ``KREPES_VERIFY_CACHE`` in ``environ``
    (default :data:`os.environ`) with absolute paths (relative to ``cwd``, default the current
    directory), so that child processes started elsewhere read the folders the user meant.

    Returns the variables that are set, with their new values.
    """
    from .data.paths import DATA_ENV, absolutize_data_env

    env = os.environ if environ is None else environ
    out = {}
    new = absolutize_data_env(env, cwd)
    if new is not None:
        out[DATA_ENV] = new
    for var in (CACHE_ENV, _VERIFY_CACHE_ENV):
        raw = env.get(var, "")
        if raw.strip():
            env[var] = out[var] = str(_absolute(raw, cwd))
    return out


# --- code ----------------------------------------------------------------------------------
def files_hash(files: Mapping[str, str | os.PathLike]) -> str:
    """SHA-256 over ``{name: path}``: every name (sorted) and the SHA-256 of its file's bytes."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0")
        h.update(hashlib.sha256(Path(files[name]).read_bytes()).digest())
    return h.hexdigest()


#: The folder of the ``krepes_lib`` package (what :func:`library_code_hash` hashes, with the
#: ``data_scripts`` folder beside it when present).
LIB_ROOT = Path(__file__).resolve().parent


def _package_files(base: Path, name: str) -> dict:
    return {f"{name}/{p.relative_to(base).as_posix()}": p for p in base.rglob("*")
            if p.is_file() and (p.suffix == ".py" or p.name == "experiments.yml")
            and "__pycache__" not in p.parts}


def library_code_hash() -> str:
    """SHA-256 over every ``*.py`` and ``experiments.yml`` of ``krepes_lib`` and ``data_scripts``
    (paths relative to each package, sorted, and contents): an edit, an added or a removed
    module changes it. The packages are found by path (:data:`LIB_ROOT`), not imported."""
    files = _package_files(LIB_ROOT, "krepes_lib")
    scripts = LIB_ROOT.parent / "data_scripts"
    if (scripts / "__init__.py").is_file():
        files.update(_package_files(scripts, "data_scripts"))
    return files_hash(files)


# --- data ----------------------------------------------------------------------------------
def array_fingerprint(*arrays) -> str:
    """SHA-256 of arrays (shape, dtype and bytes of each, in order; host copies; None allowed).

    The fingerprint of "the rows actually read": two loads that give the same arrays give
    the same fingerprint, whatever file, loader or search path they came from.
    """
    from .backend import to_host

    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"None\0")
            continue
        ah = np.ascontiguousarray(to_host(a))
        if ah.dtype.hasobject:
            raise TypeError("array_fingerprint: object arrays have no stable bytes; convert them "
                            "(e.g. labels with numpy.asarray(y, dtype=str)).")
        h.update(repr((ah.shape, ah.dtype.str)).encode())
        h.update(memoryview(ah).cast("B") if ah.size else b"")  # hashed in place, no copy
    return h.hexdigest()


def data_files_fingerprint() -> str:
    """SHA-256 over the data search path and (path, size, mtime_ns) of every registered file
    in it: one ``stat`` per file. A replaced, added or removed data file, or another
    ``KREPES_DATA``, changes it (what a notebook *can* read, before it runs)."""
    from .data import data_dirs, registry

    h = hashlib.sha256()
    for d in data_dirs():
        h.update(f"dir {d}\n".encode())
        for entry in registry.DATASETS.values():
            for rf in entry.files:
                p = d / entry.name / rf.filename
                try:
                    st = p.stat()
                except OSError:
                    continue
                h.update(f"{p}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


# --- environment ---------------------------------------------------------------------------
def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment(packages: Iterable[str] = _PACKAGES) -> dict:
    """The environment that changes results.

    ``backend`` is the resolved ``KREPES_BACKEND`` (``numpy`` or ``cupy``; an unknown value,
    or ``cupy`` without a usable GPU, raises here — see :func:`krepes_lib.backend.backend_name`),
    ``dtype`` the resolved ``KREPES_DTYPE``, ``cache`` the absolute ``KREPES_CACHE`` folder,
    ``verify`` whether data files are checked (``KREPES_VERIFY``), then ``python`` (major.minor)
    and the installed version (or None) of each of ``packages`` (distribution names; read
    from the package metadata, nothing is imported).
    """
    from .backend import backend_name, resolve_dtype

    verify = os.environ.get("KREPES_VERIFY", "1").strip().lower() not in ("0", "false", "no", "off")
    env = {"KREPES_BACKEND": backend_name(), "KREPES_DTYPE": str(resolve_dtype(None)),
           "KREPES_CACHE": str(cache_root()), "KREPES_VERIFY": verify,
           "python": ".".join(platform.python_version_tuple()[:2])}
    for p in packages:
        env[p] = _version(p)
    return env
