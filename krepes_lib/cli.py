"""The ``krepes`` command: run the notebooks with papermill, then build the book.

``krepes list``                      notebooks, what each reproduces, the profiles
``krepes reproduce [--profile P]``   papermill every notebook into ``book/executed/``,
                                     write the reproduction report, build the book
                                     (Jupyter Book renders what papermill executed)
``krepes fetch-data [DATASET ...]``  download + verify datasets (``data_scripts.fetch``)

Profiles (``ci``, ``quick`` = default, ``paper``) and the parameters of every notebook
per profile live in one file, ``krepes_lib/experiments.yml``.

``experiments.yml`` is validated when it is loaded (:func:`validate_experiments`): the keys
``profiles`` and ``notebooks``; every notebook has a title, what it reproduces and **every
profile** (an explicit ``{}`` when a profile runs the notebook's defaults; a misspelt
profile is refused, never run as the defaults); and every parameter is one the notebook's
``parameters`` cell defines, of the type of its default there (papermill's inspection) —
``damping: 1e-3`` is a *string* to YAML and is refused with "write 1.0e-3".

Up to date
----------
``reproduce`` skips a notebook whose executed copy carries the same fingerprint, the key of
its :class:`~krepes_lib.provenance.Provenance` record (:func:`notebook_provenance`): the
SHA-256 of the notebook, its parameters and profile, **the library code** (every ``*.py``
and ``experiments.yml`` under ``krepes_lib/`` and ``data_scripts/``, sorted paths), **the
data it can read** (the data search path and, for every registered file present in it, its
path, size and mtime) and **the environment that changes results** (resolved
``KREPES_BACKEND`` and ``KREPES_DTYPE``, absolute ``KREPES_CACHE``, ``KREPES_VERIFY``, the
versions of Python, NumPy, SciPy, scikit-learn, torch, CuPy). A library fix, a changed data
file or another backend therefore re-runs the notebooks; ``KREPES_BACKEND=cupy`` without a
GPU stops before anything runs. The record travels to the notebook's results file
(``KREPES_PROVENANCE``), so the report can tell which run each number comes from. A
successful run removes a stale ``NAME.failed.ipynb``; executed notebooks are written with
the umask's permissions (0644 under the usual umask 022), not 0600.

The report
----------
:func:`write_report` reads ``results/NAME.json`` for the notebooks of ``experiments.yml``
only, and gives every section its profile, run date and state (:func:`section_states`):
*current*, *stale* (the record differs from today's: it says what changed), *failed* (a
``NAME.failed.ipynb`` newer than the results), *other profile*, *unverified* (a results
file without a record, or whose checksum fails) or *unreadable* (named). Only current
sections enter the table of spec §7 numbers.

Relative paths: ``KREPES_DATA=../shared/data``, ``KREPES_CACHE`` and ``KREPES_VERIFY_CACHE``
mean relative to where ``krepes`` was started; they are made absolute before papermill runs
the notebooks in ``notebooks/`` (:func:`krepes_lib.provenance.absolutize_env`).
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from .provenance import (PROVENANCE_ENV, Provenance, absolutize_env, data_files_fingerprint,
                         environment, library_code_hash)

__all__ = ["main", "load_experiments", "validate_experiments", "notebook_parameters",
           "ParameterError", "RunContext", "notebook_provenance", "section_states", "write_report",
           "code_fingerprint", "data_fingerprint"]

EXECUTED = Path("book") / "executed"
#: The keys a notebook entry of experiments.yml may have.
NOTEBOOK_KEYS = {"title", "reproduces", "cpu_runtime", "profiles"}
_EXPERIMENTS = "krepes_lib/experiments.yml"

#: One definition each (krepes_lib.provenance); the old names stay for callers.
code_fingerprint = library_code_hash
data_fingerprint = data_files_fingerprint


class ParameterError(ValueError):
    """``experiments.yml`` is malformed, or a profile passes a parameter the notebook does not
    define or of another type than the notebook's default."""


def load_experiments() -> dict:
    """The parsed and validated ``experiments.yml`` (:func:`validate_experiments`)."""
    text = resources.files("krepes_lib").joinpath("experiments.yml").read_text()
    try:
        exp = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ParameterError(f"{_EXPERIMENTS} is not valid YAML: {err}") from None
    return validate_experiments(exp)


def _mapping(v) -> bool:
    return isinstance(v, dict)


def validate_experiments(exp, source: str = _EXPERIMENTS) -> dict:
    """Check the structure of ``experiments.yml`` (parsed); return it unchanged.

    ``profiles`` (name -> description), ``notebooks`` (name -> entry) and, optionally,
    ``networks`` (profile -> the SSL networks' sizes, :func:`krepes_lib.profiles.
    check_network_profiles`); a notebook entry's keys
    are among :data:`NOTEBOOK_KEYS`, with ``title``, ``reproduces`` and ``profiles``
    required; its ``profiles`` name **every** profile and no other (an explicit ``{}`` for
    a profile that runs the notebook's defaults), each a mapping of parameters;
    ``cpu_runtime`` names profiles only. Parameter names and types are checked against the
    notebook itself by :func:`resolve_parameters`. Raises :class:`ParameterError` naming
    the notebook, the key and the fix.
    """
    if (not _mapping(exp) or not {"profiles", "notebooks"} <= set(exp)
            or set(exp) - {"profiles", "notebooks", "networks"}):
        keys = sorted(exp) if _mapping(exp) else type(exp).__name__
        raise ParameterError(f"{source}: the top level must have the keys 'profiles' and 'notebooks' "
                             f"(and 'networks', the SSL networks' sizes per profile); found {keys}.")
    profiles, notebooks = exp["profiles"], exp["notebooks"]
    if not _mapping(profiles) or not profiles:
        raise ParameterError(f"{source}: 'profiles' must map each profile name to a description.")
    if "networks" in exp:
        from .profiles import check_network_profiles

        try:
            check_network_profiles(exp["networks"], profiles, source)
        except ValueError as err:
            raise ParameterError(str(err)) from None
    if not _mapping(notebooks) or not notebooks:
        raise ParameterError(f"{source}: 'notebooks' must map each notebook name to its entry.")
    names = sorted(profiles)
    for nb, entry in notebooks.items():
        where = f"{source}, notebook {nb!r}"
        if not _mapping(entry):
            raise ParameterError(f"{where}: the entry must be a mapping with keys {sorted(NOTEBOOK_KEYS)}.")
        extra = sorted(set(entry) - NOTEBOOK_KEYS)
        if extra:
            raise ParameterError(f"{where}: unknown key(s) {extra}; allowed: {sorted(NOTEBOOK_KEYS)} "
                                 "(parameters go under profiles: <profile>: {...}; a key indented "
                                 "one level too far?).")
        missing = sorted({"title", "reproduces", "profiles"} - set(entry))
        if missing:
            raise ParameterError(f"{where}: missing key(s) {missing}.")
        for k in ("title", "reproduces"):
            if not isinstance(entry[k], str):
                raise ParameterError(f"{where}: {k} must be a string.")
        rt = entry.get("cpu_runtime")
        if rt is not None and (not _mapping(rt) or set(rt) - set(profiles)):
            raise ParameterError(f"{where}: cpu_runtime must map profiles among {names} to a duration.")
        declared = entry["profiles"]
        if not _mapping(declared):
            raise ParameterError(f"{where}: profiles must map every profile {names} to its parameters.")
        unknown = sorted(set(declared) - set(profiles))
        if unknown:
            raise ParameterError(f"{where}: profile(s) {unknown} are not among the profiles {names} "
                                 "(a typo, or a key at the wrong indentation?).")
        absent = [p for p in names if p not in declared]
        if absent:
            raise ParameterError(f"{where}: profile(s) {absent} are not declared; every notebook "
                                 f"declares every profile (write `{absent[0]}: {{}}` when it runs "
                                 "with the notebook's defaults).")
        for prof, params in declared.items():
            if not _mapping(params):
                raise ParameterError(
                    f"{where}, profile {prof!r}: the parameters must be a mapping (name: value); "
                    f"got {params!r}" + (" (write `{}` for the notebook's defaults)." if params is None else "."))
    return exp


def find_root(root: str | None) -> Path:
    """The repository root: the folder holding ``_config.yml``, ``_toc.yml`` and ``notebooks/``."""
    start = Path(root or os.getcwd()).resolve()
    for p in [start, *start.parents]:
        if (p / "_config.yml").is_file() and (p / "notebooks").is_dir():
            return p
    raise SystemExit(
        f"krepes: no book found at or above {start} (looked for _config.yml and notebooks/); "
        "run the command from the repository root or pass --root PATH."
    )


def notebook_parameters(path: Path) -> dict:
    """Names and defaults of the notebook's ``parameters``-tagged cell (papermill's inspection)."""
    import papermill

    return papermill.inspect_notebook(str(path))


def resolve_parameters(name: str, profile: str, exp: dict, nb_path: Path) -> dict:
    """The parameters of ``name`` under ``profile``, checked against the notebook's cell:
    every name is defined there, and every value has the type of the notebook's default
    (:func:`check_parameter_type`)."""
    if profile not in exp["profiles"]:
        raise ParameterError(f"--profile {profile!r} is unknown; choose one of {sorted(exp['profiles'])}.")
    declared = exp["notebooks"][name].get("profiles") or {}
    if profile not in declared:
        raise ParameterError(f"{_EXPERIMENTS}: notebook {name!r} does not declare profile {profile!r} "
                             f"(write `{profile}: {{}}` when it runs with the notebook's defaults).")
    params = dict(declared[profile] or {})
    known = notebook_parameters(nb_path)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ParameterError(
            f"experiments.yml gives notebook {name!r} (profile {profile!r}) the unknown parameter(s) "
            f"{unknown}; the notebook's parameters cell defines {sorted(known)}. Fix the name in "
            "krepes_lib/experiments.yml or add it to the notebook's parameters cell."
        )
    for key, value in params.items():
        check_parameter_type(name, profile, key, value, known[key].get("default"))
    return params


def _kind(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, (list, tuple)):
        return "list"
    if isinstance(v, dict):
        return "dict"
    return type(v).__name__


def _is_number_string(v) -> bool:
    if not isinstance(v, str):
        return False
    try:
        float(v)
    except ValueError:
        return False
    return True


def _compatible(value, default) -> bool:
    kv, kd = _kind(value), _kind(default)
    if kv == "null" or kd == "null":
        return True  # None is the usual "all rows" / "automatic" of a parameter
    if kd == "float":
        return kv in ("float", "int")
    if kd == "list" and kv == "list":
        kinds = {_kind(x) for x in default} - {"null"}
        if len(kinds) == 1 and default:
            proto = next(x for x in default if x is not None)
            return all(_compatible(x, proto) for x in value)
        return True
    return kv == kd


def check_parameter_type(name: str, profile: str, key: str, value, default_src: str | None) -> None:
    """Refuse a value whose type differs from the notebook's default (parsed from its source).

    Integers pass for floats, ``null`` passes everywhere, list elements are checked against
    the default's elements; a default that is not a literal is not checked. A string that
    reads as a number (YAML 1.1 reads ``1e-3`` as a string) gets its own message.
    """
    try:
        default = ast.literal_eval(default_src) if default_src is not None else None
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return  # an expression: no literal type to compare with
    if default_src is None or _compatible(value, default):
        return
    where = f"{_EXPERIMENTS}: notebook {name!r}, profile {profile!r}, parameter {key}={value!r}"
    numbers = [value] if not isinstance(value, list) else value
    bad = next((v for v in numbers if _is_number_string(v)), None)
    if bad is not None and _kind(default) in ("int", "float", "list"):
        fix = (f"YAML reads a number in exponent form without a dot (like 1e-3) as a string; write "
               f"{_dotted(bad)}" if "e" in bad.lower() and "." not in bad.lower().split("e")[0]
               else f"write it without quotes: {bad.strip()}")
        raise ParameterError(f"{where}: {bad!r} is a string, not a number; {fix} (the notebook's "
                             f"default is {default_src}).")
    raise ParameterError(f"{where} is of type {_kind(value)}, but the notebook's default is {default_src} "
                         f"({_kind(default)}). Give a value of that type.")


def _dotted(text: str) -> str:
    t = text.strip().lower()
    if "e" in t and "." not in t.split("e")[0]:
        mant, exp = t.split("e", 1)
        return f"{mant}.0e{exp}"
    return t


@dataclass(frozen=True)
class RunContext:
    """The parts of a notebook's provenance shared by every notebook of one run: library
    code, data files and environment (computed once by :meth:`now`)."""

    code: str
    data: str
    env: dict = field(default_factory=dict)

    @classmethod
    def now(cls) -> "RunContext":
        """Today's context. Raises ValueError/RuntimeError for an invalid ``KREPES_BACKEND``
        or ``cupy`` without a GPU (:func:`krepes_lib.backend.backend_name`)."""
        return cls(library_code_hash(), data_files_fingerprint(), environment())


def _context(deps) -> RunContext:
    """``deps``: a RunContext, None (today's) or a string standing for the code part (tests)."""
    if deps is None:
        return RunContext.now()
    if isinstance(deps, str):
        return RunContext(code=deps, data="", env={})
    return deps


def notebook_provenance(nb_path: Path, params: dict, profile: str, deps=None) -> Provenance:
    """The record of one notebook run: ``deps`` (a :class:`RunContext`) plus the notebook's
    bytes, parameters and profile as its config. Its ``key()`` is the fingerprint."""
    ctx = _context(deps)
    return Provenance(code=ctx.code, data=ctx.data, env=dict(ctx.env),
                      config={"notebook": hashlib.sha256(Path(nb_path).read_bytes()).hexdigest(),
                              "parameters": params, "profile": profile})


def _fingerprint(nb_path: Path, params: dict, profile: str, deps=None) -> str:
    """The key of :func:`notebook_provenance`."""
    return notebook_provenance(nb_path, params, profile, deps).key()


def _readable_mode(path: str | os.PathLike) -> None:
    """Give ``path`` the umask's default permissions (mkstemp creates 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _timed_out_cell(nb_file: str) -> tuple[int | None, str]:
    """Index and first source line of the cell that was running when the time-out hit."""
    import nbformat

    try:
        nb = nbformat.read(nb_file, as_version=4)
    except Exception:  # noqa: BLE001 - a half-written notebook: no cell to name
        return None, ""
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code":
            continue
        status = c.get("metadata", {}).get("papermill", {}).get("status")
        if status == "running" or any(o.get("output_type") == "error" for o in c.get("outputs", [])):
            first = next((ln for ln in c.source.splitlines() if ln.strip()), "")
            return i, first
    return None, ""


def _up_to_date(out: Path, fingerprint: str) -> bool:
    if not out.is_file():
        return False
    try:
        meta = json.loads(out.read_text())["metadata"].get("krepes", {})
    except (ValueError, KeyError):
        return False
    return meta.get("fingerprint") == fingerprint


def run_notebook(root: Path, name: str, profile: str, exp: dict, force: bool = False,
                 timeout: int | None = None, deps: str | None = None, progress: bool = True) -> str:
    """Execute one notebook with papermill into ``book/executed/NAME.ipynb`` (atomically).

    Returns ``"ran"`` or ``"skipped"`` (output exists with the same fingerprint: notebook
    source, parameters, profile, library code, data files and environment; ``deps`` is the
    :class:`RunContext`, computed when None). Raises SystemExit naming the notebook and cell on failure or
    time-out (``timeout`` seconds per cell); the partly executed notebook is kept as
    ``NAME.failed.ipynb``, which a later successful run removes.
    """
    import nbformat
    import papermill
    from nbclient.exceptions import CellTimeoutError
    from papermill.exceptions import PapermillExecutionError

    src = root / "notebooks" / f"{name}.ipynb"
    if not src.is_file():
        raise SystemExit(f"krepes: experiments.yml names notebook {name!r} but {src} does not exist.")
    params = resolve_parameters(name, profile, exp, src)
    out_dir = root / EXECUTED
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(out_dir, os.W_OK | os.X_OK):
            raise PermissionError(13, "not writable", str(out_dir))
    except OSError as e:
        raise SystemExit(
            f"krepes: cannot write the executed notebooks to {out_dir} ({e.strerror or e}). "
            "Make it a writable folder, or run from a writable copy (--root PATH).") from None
    out = out_dir / f"{name}.ipynb"
    absolutize_env()  # the kernel runs in notebooks/: ../shared/data, .cache keep their meaning
    try:
        prov = notebook_provenance(src, params, profile, deps)
    except (ValueError, RuntimeError) as err:  # KREPES_BACKEND / KREPES_DTYPE
        raise SystemExit(f"krepes: {err}") from None
    fp = prov.key()
    failed = out_dir / f"{name}.failed.ipynb"
    if not force and _up_to_date(out, fp):
        return "skipped"
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".ipynb")
    os.close(fd)
    env_before = {k: os.environ.get(k) for k in ("KREPES_RESULTS", PROVENANCE_ENV, "TQDM_DISABLE")}
    os.environ["KREPES_RESULTS"] = str(out_dir / "results")
    os.environ[PROVENANCE_ENV] = json.dumps(prov.as_dict(), sort_keys=True)  # -> save_results
    # no progress bars in the executed notebooks: with ipywidgets installed they are widget
    # outputs, which the book could only render with the widget JavaScript from a CDN
    os.environ["TQDM_DISABLE"] = "1"
    try:
        papermill.execute_notebook(
            str(src), tmp, parameters=params, cwd=str(root / "notebooks"), progress_bar=progress,
            kernel_name="python3", execution_timeout=timeout,
        )
    except PapermillExecutionError as err:
        _readable_mode(tmp)
        os.replace(tmp, failed)
        raise SystemExit(
            f"krepes: notebook {name} failed in cell {err.cell_index} (execution count "
            f"{err.exec_count}): {err.ename}: {err.evalue}\n"
            f"  the partly executed notebook is {failed}"
        ) from None
    except CellTimeoutError:
        cell, first = _timed_out_cell(tmp)
        _readable_mode(tmp)
        os.replace(tmp, failed)
        where = f"cell {cell}" + (f" (`{first.strip()[:80]}`)" if first else "") \
            if cell is not None else "a cell"
        raise SystemExit(
            f"krepes: notebook {name} timed out in {where}: it ran longer than --timeout "
            f"{timeout} s. Raise --timeout SECONDS (or leave it out for no limit), or run a "
            f"smaller profile.\n  the partly executed notebook is {failed}"
        ) from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    nb = nbformat.read(tmp, as_version=4)
    nb.metadata["krepes"] = {"fingerprint": fp, "profile": profile, "parameters": params,
                             "provenance": prov.as_dict()}
    drop_widget_outputs(nb)
    nbformat.write(nb, tmp)
    _readable_mode(tmp)
    os.replace(tmp, out)
    failed.unlink(missing_ok=True)  # a failure of an earlier run is no longer the state
    return "ran"


@dataclass
class SectionState:
    """What the report knows about one notebook's results (:func:`section_states`).

    ``status``: "current", "stale", "failed", "other profile", "unverified", "unreadable" or
    "not run"; ``reasons``: why (what changed, which file); ``data``: the results file's
    content (None when there is none or it cannot be read); ``profile`` and ``written``: of
    the run the numbers come from.
    """

    name: str
    status: str
    reasons: list = field(default_factory=list)
    data: dict | None = None
    profile: str | None = None
    written: str | None = None

    @property
    def current(self) -> bool:
        return self.status == "current"


def _read_json(path: Path):
    with open(path) as f:
        return json.load(f)


def section_states(root: Path, exp: dict, profile: str, deps=None) -> dict:
    """The state of every notebook's results in ``book/executed`` (name -> :class:`SectionState`).

    Only ``results/NAME.json`` of the notebooks of ``exp`` is read (a stray ``NAME.old.json``
    is ignored). Checks, in order: the file is readable JSON with an intact checksum and a
    provenance record (else *unreadable* / *unverified*); the executed notebook carries the same
    fingerprint (else *stale*: the results file comes from another run); no ``NAME.failed.ipynb``
    is newer (else *failed*); the record equals today's (:func:`notebook_provenance` for the
    run's profile; else *stale*, naming what changed); the run's profile is ``profile`` (else
    *other profile*). ``deps``: the :class:`RunContext` (computed when None).
    """
    from .studies.results import verify_results

    ctx = None
    states = {}
    for name in exp["notebooks"]:
        ex = root / EXECUTED
        jpath, nbpath, failed = ex / "results" / f"{name}.json", ex / f"{name}.ipynb", ex / f"{name}.failed.ipynb"
        st = SectionState(name, "not run")
        states[name] = st
        if not jpath.is_file():
            if failed.is_file():
                st.status, st.reasons = "failed", [f"its last run failed ({failed.name}) and no results exist"]
            continue
        try:
            st.data = _read_json(jpath)
            if not isinstance(st.data, dict) or not isinstance(st.data.get("results"), dict):
                raise ValueError("it is not a results record (no 'results' mapping)")
        except (OSError, ValueError) as err:
            st.status, st.data = "unreadable", None
            st.reasons = [f"{jpath} cannot be read ({type(err).__name__}: {err}); rerun the notebook "
                          f"(krepes reproduce --only {name} --force) or delete the file"]
            continue
        st.written = st.data.get("written")
        problem = verify_results(st.data)
        if problem:
            st.status, st.reasons = "unverified", [f"{jpath.name}: {problem}"]
            continue
        prov = st.data["provenance"]
        st.profile = (prov.get("config") or {}).get("profile")
        try:
            meta = _read_json(nbpath)["metadata"].get("krepes", {}) if nbpath.is_file() else None
        except (OSError, ValueError, KeyError, AttributeError) as err:
            st.status = "unreadable"
            st.reasons = [f"the executed notebook {nbpath} cannot be read ({type(err).__name__}); rerun "
                          f"the notebook (krepes reproduce --only {name} --force)"]
            continue
        if meta is None or meta.get("fingerprint") != prov.get("key"):
            st.status = "stale"
            st.reasons = [f"{jpath.name} does not come from the run that wrote the executed notebook "
                          f"{nbpath.name}" + (" (missing)" if meta is None else "")]
            continue
        failed_since = failed.is_file() and failed.stat().st_mtime >= jpath.stat().st_mtime
        reasons = []
        if st.profile in exp.get("profiles", {}):
            try:
                ctx = ctx or _context(deps)
                params = resolve_parameters(name, st.profile, exp, root / "notebooks" / f"{name}.ipynb")
                now = notebook_provenance(root / "notebooks" / f"{name}.ipynb", params, st.profile, ctx)
                reasons = Provenance.from_dict(prov).differences(now)
            except (ParameterError, OSError, ValueError, RuntimeError) as err:
                reasons = [f"today's fingerprint cannot be computed ({err})"]
        else:
            reasons = [f"profile {st.profile!r} is not in experiments.yml"]
        if failed_since:
            st.status = "failed"
            st.reasons = [f"its last run failed ({failed.name}); these numbers are from the run before"]
            st.reasons += [f"since then {r}" for r in reasons]
        elif reasons:
            st.status, st.reasons = "stale", reasons
        elif st.profile != profile:
            st.status, st.reasons = "other profile", [f"it ran with profile {st.profile!r}, not {profile!r}"]
        else:
            st.status = "current"
    return states


def _state_line(st: SectionState, profile: str) -> str:
    """One line under a section's title: profile, run date, state (and what to do)."""
    run = f"profile **{st.profile or '?'}**, run {st.written or '?'}"
    if st.current:
        return f"*State:* **current** ({run}; same notebook, parameters, code, data and environment as now)."
    # a failed, edited or unreadable results file can sit beside an executed notebook that is current,
    # which a plain rerun would skip: those need --force
    force = " --force" if st.status in ("failed", "unverified", "unreadable") else ""
    fix = f"`krepes reproduce --only {st.name} --profile {profile}{force}`"
    why = "; ".join(st.reasons)
    head = {"stale": "STALE", "failed": "FAILED", "other profile": "OTHER PROFILE",
            "unverified": "UNVERIFIED", "unreadable": "UNREADABLE"}.get(st.status, st.status.upper())
    return (f"*State:* **{head}** ({run}): {why}. The numbers below (if any) are not current and are "
            f"left out of the table at a glance; rerun with {fix}.")


def write_report(root: Path, exp: dict, profile: str, deps=None) -> Path:
    """Generate ``book/executed/report.md`` from the notebooks' result files.

    Every section names its profile, run date and state (:func:`section_states`); only
    *current* sections enter the spec §7 table. ``deps``: the :class:`RunContext` (computed
    when None).
    """
    from .files import atomic_path

    states = section_states(root, exp, profile, deps)
    current = {n: st.data for n, st in states.items() if st.current}
    not_current = {n: st.status for n, st in states.items() if st.data is not None and not st.current}
    lines = [
        "# Reproduction report",
        "",
        f"Generated by `krepes reproduce --profile {profile}` from the JSON files the executed",
        "notebooks wrote; nothing on this page is typed by hand. *Paper* is the paper's number",
        "(spec §7) where it reports one, *ours* the number this run computed, *verdict* what the",
        "notebook concluded from its own numbers. Defaults that are the project's and not the",
        "paper's are listed in each notebook's *Setting* section. Every verdict follows the",
        "*rule* in its row, fixed before the run (the claims engine, `krepes_lib.claims`).",
        "",
        "Each section states the profile and the date of the run its numbers come from, and",
        "whether they are **current**: the same notebook, parameters, library code, data files and",
        "environment (backend, dtype, package versions) as now. Stale, failed, other-profile or",
        "unverified sections are marked and left out of the table at a glance.",
        "",
    ]
    lines += _spec7_section(current, not_current)
    for name, meta in exp["notebooks"].items():
        st = states[name]
        data = st.data
        lines += [f"## {meta['title']}", "", f"Notebook: [{name}]({name}.ipynb). {meta['reproduces']}", ""]
        if st.status == "not run":
            lines += ["*Not run in this build.*", ""]
            continue
        lines += [_state_line(st, profile), ""]
        if data is None:
            continue
        claims = data["results"].get("claims", [])
        if claims:
            # a claim decided under a calibrated rule carries the old rule's verdict beside it
            # (krepes_lib.claims.beside): the report shows both
            old = any("old_verdict" in c for c in claims)
            keys = ("claim", "paper", "ours", "rule", "verdict") + (("old_verdict",) if old else ())
            lines += ["| claim | paper | ours | rule | verdict |" + (" old rule's verdict |" if old else ""),
                      "|---|---|---|---|---|" + ("---|" if old else "")]
            for c in claims:
                cells = [str(c.get(k, "—" if k == "old_verdict" else "")).replace("|", "\\|").replace("\n", " ")
                         for k in keys]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        lines += [f"Run: {data.get('written', '?')} on {data.get('machine', '?')} "
                  f"({data.get('cpu_count', '?')} CPUs), "
                  f"parameters `{json.dumps(data.get('parameters', {}), sort_keys=True)}`.", ""]
    lines += _compute_section(root, exp, states) + _datasets_section()
    path = root / EXECUTED / "report.md"
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write("\n".join(lines))
    return path


def _spec7_section(results: dict, left_out: dict | None = None) -> list[str]:
    """Every number of spec §7 with a status (reproduced / not reproduced / not attempted, why),
    from the *current* results only; ``left_out`` (name -> state) are named, not counted."""
    from .studies.results import SPEC7, spec7_status

    left_out = left_out or {}
    lines = ["## The paper's numbers (spec §7) at a glance", "",
             "Each number the paper reports, with the status this build's notebooks give it (derived",
             "from the claim verdicts of **current** sections only; details in the sections below).",
             "Nothing is left out: an item no notebook addresses says why, and a notebook whose",
             "results are stale, failed or of another profile is named with its state.", "",
             "| paper (spec §7) | status | notebooks |", "|---|---|---|"]
    for item in SPEC7:
        status, rows = spec7_status(item, results)
        old = [c["old_verdict"] for _, c in rows if "old_verdict" in c]
        if old:  # the calibrated verdicts decide the status; the old rules' status is shown beside
            from .claims import status_of

            status += f" (old rules: {status_of(old)})"
        excluded = {nb: left_out[nb] for nb in item.get("notebooks", {}) if nb in left_out}
        if excluded and not rows:
            status = "no current result: " + ", ".join(f"{nb} ({st})" for nb, st in excluded.items())
        elif excluded:
            status += " (left out: " + ", ".join(f"{nb}, {st}" for nb, st in excluded.items()) + ")"
        nbs = sorted({f"[{nb}]({nb}.ipynb)" for nb, _ in rows}
                     | {f"[{nb}]({nb}.ipynb) ({st}, left out)" for nb, st in excluded.items()})
        cells = [item["paper"], status, ", ".join(nbs) or "—"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines + [""]


def _compute_section(root: Path, exp: dict, states: dict | None = None) -> list[str]:
    """Wall time, profile, state and device of every executed notebook (from its metadata)."""
    lines = ["## Compute used", "",
             "Wall time of each executed notebook as papermill recorded it, the profile it ran",
             "with and the state of its results (machine and parameters are in each section above).", "",
             "| notebook | profile | state | wall time (s) | cells |", "|---|---|---|---|---|"]
    for name in exp["notebooks"]:
        path = root / EXECUTED / f"{name}.ipynb"
        state = states[name].status if states else ""
        if not path.is_file():
            lines.append(f"| {name} | not run | {state} | | |")
            continue
        try:
            nb = _read_json(path)
            meta = nb["metadata"]
            pm, prof = meta.get("papermill", {}), meta.get("krepes", {}).get("profile", "?")
            dur, cells = pm.get("duration"), len(nb["cells"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            lines.append(f"| {name} | unreadable: {path.name} ({type(err).__name__}) | {state} | | |")
            continue
        lines.append(f"| {name} | {prof} | {state} | {dur:.1f} | {cells} |" if isinstance(dur, (int, float))
                     else f"| {name} | {prof} | {state} | ? | {cells} |")
    return lines + [""]


def _datasets_section() -> list[str]:
    """Every registered data file with its source and SHA-256 (krepes_lib.data.registry)."""
    from .data import registry

    lines = ["## Datasets and checksums", "",
             "Every file is fetched by `krepes fetch-data` (or read from `KREPES_DATA`); every loader",
             "checks each file it reads against the SHA-256 below before using it",
             "(`krepes_lib.data.verify`; a mismatch stops the notebook). *Substitute* files are the",
             "smaller offline stand-ins.", "",
             "| dataset | file | kind | source | SHA-256 |", "|---|---|---|---|---|"]
    for name in registry.names():
        entry = registry.get(name)
        for f in entry.files:
            url = f.urls[0] if f.urls else entry.homepage
            sha = f"`{f.sha256}`" if f.sha256 else "not pinned"
            lines.append(f"| {name} | `{f.filename}` | {f.kind} | <{url}> | {sha} |")
    return lines + [""]


def build_course_editions(root: Path) -> Path:
    """Student/instructor editions and autograder zips of the course notebooks into
    ``_build/editions`` (``tools/editions.py``, otter-grader); the book copies them to ``editions/``."""
    out = root / "_build" / "editions"
    cmd = [sys.executable, str(root / "tools" / "editions.py"), "--editions", str(out)]
    print("krepes: course editions:", " ".join(cmd), flush=True)
    if subprocess.run(cmd, cwd=root).returncode != 0:
        raise SystemExit("krepes: writing the course editions failed; see the error above.")
    return out


def drop_widget_outputs(nb) -> None:
    """Remove widget outputs (progress bars: tqdm with an explicit ``disable=`` ignores
    TQDM_DISABLE) and the saved widget state: the book could only draw them with the widget
    JavaScript from a CDN, and a finished progress bar is not a result."""
    widget = "application/vnd.jupyter.widget-view+json"
    for cell in nb.cells:
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if widget not in o.get("data", {})]
    nb.metadata.pop("widgets", None)


def library_warnings() -> set[str]:
    """Names of the warning classes krepes_lib defines: the library telling the reader about a
    run (a CG cap, a step that raised its loss, concentrated influence, an unverified file)."""
    pkg = Path(__file__).resolve().parent
    return {m for f in pkg.rglob("*.py") for m in re.findall(r"^class (\w+Warning)\(", f.read_text(), re.M)}


def unfit_outputs(executed: Path) -> tuple[list[str], list[str]]:
    """``(refused, notices)`` over the executed notebooks' outputs. Refused: anything on stderr or
    a printed warning other than the library's own (:func:`library_warnings`, issued from
    krepes_lib) — e.g. the ``TqdmWarning`` of a missing ipywidgets, a NumPy RuntimeWarning —, an
    error, a widget (it needs the widget JavaScript from a CDN). Notices: the library's
    warnings, one line each."""
    import nbformat

    bad, notices, ours = [], [], library_warnings()
    for path in sorted(executed.glob("*.ipynb")):
        if path.name.startswith(".") or path.name.endswith(".failed.ipynb"):
            continue
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(nb.cells):
            for out in cell.get("outputs", []):
                text = "".join(out.get("text", "")) if out.get("output_type") == "stream" else ""
                if out.get("name") == "stderr" or "Warning" in text or out.get("output_type") == "error":
                    kinds = re.findall(r"^(\S+):\d+: (\w+): ", text, re.M)
                    what = (text.strip().splitlines() or [out.get("ename", "")])[0][:100]
                    line = f"{path.name} cell {i}: {out.get('output_type')} {what!r}"
                    ok = out.get("output_type") == "stream" and kinds and all(
                        "krepes_lib" in Path(f).parts and k in ours for f, k in kinds)
                    (notices if ok else bad).append(line)
                elif "application/vnd.jupyter.widget-view+json" in out.get("data", {}):
                    bad.append(f"{path.name} cell {i}: a widget output (a progress bar?)")
    return bad, notices


def build_book(root: Path) -> Path:
    """``jupyter-book build`` with warnings as errors; returns ``_build/html/index.html``."""
    bad, notices = unfit_outputs(root / EXECUTED)
    for line in notices:
        print(f"krepes: note, a notebook prints a library warning: {line}")
    if bad:
        raise SystemExit("krepes: executed notebooks have output the book must not show (rerun them with "
                         "--force; a warning is fixed in the notebook or the library):\n  " + "\n  ".join(bad))
    build_course_editions(root)
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(root), "--path-output",
           str(root), "-W", "-n", "--keep-going", "--all"]
    print("krepes: building the book:", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=root)
    if proc.returncode != 0:
        raise SystemExit(f"krepes: the book build failed (exit {proc.returncode}); see the warnings above.")
    index = root / "_build" / "html" / "index.html"
    check = [sys.executable, str(root / "tools" / "editions.py"), "--check-html", str(index.parent)]
    if subprocess.run(check, cwd=root).returncode != 0:
        raise SystemExit("krepes: the course editions quote equation/exercise numbers the book does not print "
                         "(see above); regenerate them: python tools/editions.py --editions DIR.")
    print(f"krepes: book written to {index}")
    return index


def notebooks_table(exp: dict | None = None) -> str:
    """The README's notebook table (markdown), generated from experiments.yml."""
    exp = exp or load_experiments()
    rows = ["| notebook | what it reproduces | CPU runtime (ci / quick) |", "|---|---|---|"]
    for name, meta in exp["notebooks"].items():
        rt = meta.get("cpu_runtime") or {}
        rows.append(f"| `{name}` | {meta['title']} | {rt.get('ci', '?')} / {rt.get('quick', '?')} |")
    return "\n".join(rows)


def _experiments() -> dict:
    try:
        return load_experiments()
    except ParameterError as err:
        raise SystemExit(f"krepes: {err}") from None


def cmd_list(args) -> int:
    exp = _experiments()
    if args.markdown:
        print(notebooks_table(exp))
        return 0
    print("Profiles:")
    for p, desc in exp["profiles"].items():
        print(f"  {p:<7} {desc}")
    print("\nNotebooks:")
    for name, meta in exp["notebooks"].items():
        rt = ", ".join(f"{k}: {v}" for k, v in (meta.get("cpu_runtime") or {}).items())
        print(f"  {name}\n      {meta['title']} ({rt})\n      {meta['reproduces']}")
    return 0


def cmd_reproduce(args) -> int:
    from tqdm.auto import tqdm

    root = find_root(args.root)
    if args.timeout is not None and args.timeout <= 0:
        raise SystemExit(f"krepes: --timeout {args.timeout}: give a positive number of seconds "
                         "per cell, or leave it out for no limit.")
    exp = _experiments()
    names = list(exp["notebooks"])
    if args.only:
        bad = sorted(set(args.only) - set(names))
        if bad:
            raise SystemExit(f"krepes: --only {bad} unknown; notebooks are {names}.")
        names = [n for n in names if n in args.only]
    try:  # check every notebook's parameters before running anything
        for n in names:
            resolve_parameters(n, args.profile, exp, root / "notebooks" / f"{n}.ipynb")
    except ParameterError as err:
        raise SystemExit(f"krepes: {err}") from None
    absolutize_env()  # relative to where krepes was started, before any cwd change
    try:  # KREPES_BACKEND=cupy without a GPU (or a nonsense value) stops here, before any run
        deps = RunContext.now()
    except (ValueError, RuntimeError) as err:
        raise SystemExit(f"krepes: {err}") from None
    t0 = time.time()
    if args.jobs < 1:
        raise SystemExit(f"krepes: --jobs {args.jobs}: give a positive number of notebooks to run at once.")
    if args.jobs == 1:
        bar = tqdm(names, desc=f"notebooks ({args.profile})", unit="nb")
        for n in bar:
            bar.set_postfix_str(n)
            t = time.time()
            status = run_notebook(root, n, args.profile, exp, force=args.force, timeout=args.timeout,
                                  deps=deps)
            tqdm.write(f"krepes: {n}: {status} in {time.time() - t:.1f} s")
    else:
        _run_parallel(root, names, args, exp, deps)
    report = write_report(root, exp, args.profile, deps)
    print(f"krepes: report written to {report}")
    if not args.no_book:
        build_book(root)
    print(f"krepes: done in {time.time() - t0:.1f} s")
    return 0


THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _share_cores(jobs: int) -> None:
    """Initializer of a ``--jobs`` worker: its notebooks' kernels (which inherit this environment)
    get cores // jobs BLAS/OpenMP/torch threads each, so N notebooks do not each start one thread
    per core and fight over them. A thread count the user set is left alone."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for var in THREAD_VARS:
        os.environ.setdefault(var, str(max(1, cores // max(1, int(jobs)))))


def _run_one(root: Path, name: str, profile: str, exp: dict, force: bool, timeout, deps) -> tuple:
    """One notebook in a worker process of ``--jobs``: (status, seconds) or the failure text."""
    t = time.time()
    try:
        return run_notebook(root, name, profile, exp, force=force, timeout=timeout, deps=deps,
                            progress=False), time.time() - t
    except SystemExit as err:  # run_notebook's message (failed cell, time-out, ...)
        return f"failed: {err}", time.time() - t


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(?:CPU-)?(min|s)\b")


def expected_seconds(entry: dict, profile: str) -> float:
    """The longest duration written in a notebook's ``cpu_runtime`` for ``profile`` (e.g. "2.4 min
    warm network cache (13.5 min cold)" → 810 s); 0 where none is written. Only the order in
    which ``--jobs`` starts notebooks depends on it."""
    text = str((entry.get("cpu_runtime") or {}).get(profile, ""))
    return max((float(v) * (60.0 if u == "min" else 1.0) for v, u in _DURATION.findall(text)), default=0.0)


def _run_parallel(root: Path, names, args, exp: dict, deps) -> None:
    """``--jobs N``: notebooks run in N worker processes (each its own kernel and environment,
    with cores // N BLAS/OpenMP threads unless the user set them: :func:`_share_cores`).

    Notebooks are independent: each writes only its own executed notebook and results file
    (atomically). What they share is the network cache, whose per-network lock
    (:func:`krepes_lib.neural.ssl.load_or_train`) lets one process train a network while the
    others wait for it, so no network is trained twice. Every notebook is run even when
    another fails; the failures are then reported together (exit status 1, no report or book).
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    failed = []
    # longest first (LPT): a long notebook started last would run alone at the end
    order = sorted(names, key=lambda n: -expected_seconds(exp["notebooks"][n], args.profile))
    with ProcessPoolExecutor(max_workers=min(args.jobs, len(names)) or 1, initializer=_share_cores,
                             initargs=(args.jobs,)) as pool:
        futures = {pool.submit(_run_one, root, n, args.profile, exp, args.force, args.timeout, deps): n
                   for n in order}
        bar = tqdm(total=len(futures), desc=f"notebooks ({args.profile}, {args.jobs} at once)", unit="nb")
        for fut in as_completed(futures):
            n = futures[fut]
            status, secs = fut.result()
            bar.update(1)
            tqdm.write(f"krepes: {n}: {status} in {secs:.1f} s")
            if status.startswith("failed"):
                failed.append(status[len("failed: "):])
        bar.close()
    if failed:
        raise SystemExit("\n".join(failed))


def cmd_fetch(args) -> int:
    """Delegate to ``python -m data_scripts.fetch`` with the same arguments (``--help`` lists them)."""
    from data_scripts import fetch as F

    return F.main(list(args.rest)) or 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="krepes", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list notebooks and profiles")
    p.add_argument("--markdown", action="store_true", help="print the README's notebook table")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("reproduce", help="execute every notebook with papermill, then build the book")
    p.add_argument("--profile", default="quick", help="ci | quick (default) | paper")
    p.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="run only these notebooks")
    p.add_argument("--force", action="store_true", help="re-run notebooks whose output is up to date")
    p.add_argument("--no-book", action="store_true", help="skip the Jupyter Book build")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="run N notebooks at once, in separate processes (default 1); a network "
                        "needed by two notebooks is trained once (the network cache's lock)")
    p.add_argument("--timeout", type=int, default=None,
                   help="per-cell timeout in seconds (default: none)")
    p.add_argument("--root", default=None, help="repository root (default: found from the cwd)")
    p.set_defaults(func=cmd_reproduce)
    p = sub.add_parser("fetch-data", add_help=False,
                       help="download and verify datasets (same arguments as python -m data_scripts.fetch)")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_fetch)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["fetch-data"]:  # every argument goes to data_scripts.fetch unchanged
        return cmd_fetch(argparse.Namespace(rest=argv[1:]))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `krepes list | head`: the reader left; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout
        os.close(devnull)
        return 141  # 128 + SIGPIPE, what a shell tool killed by SIGPIPE reports


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
