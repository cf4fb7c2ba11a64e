"""The ``krepes`` command: run the notebooks with papermill, then build the book.

``krepes list``                      notebooks, what each reproduces, the profiles
``krepes reproduce [--profile P]``   papermill every notebook into ``book/executed/``,
                                     write the reproduction report, build the book
                                     (Jupyter Book renders what papermill executed)
``krepes fetch-data [DATASET ...]``  download + verify datasets (``data_scripts.fetch``)

Profiles (``ci``, ``quick`` = default, ``paper``) and the parameters of every notebook
per profile live in one file, ``krepes_lib/experiments.yml``.

Up to date
----------
``reproduce`` skips a notebook whose executed copy carries the same fingerprint: the SHA-256
of the notebook, its parameters and profile, **the library code** (every ``*.py`` and
``experiments.yml`` under ``krepes_lib/`` and ``data_scripts/``, sorted paths) and **the
data it can read** (the data search path and, for every registered file present in it, its
path, size and mtime). A library fix or a changed data file therefore re-runs the
notebooks. A successful run removes a stale ``NAME.failed.ipynb``; executed notebooks are
written with the umask's permissions (0644 under the usual umask 022), not 0600.

Relative data directory: ``KREPES_DATA=../shared/data`` means relative to where
``krepes`` was started; its entries are made absolute before papermill runs the notebooks
in ``notebooks/``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import yaml

__all__ = ["main", "load_experiments", "notebook_parameters", "ParameterError",
           "code_fingerprint", "data_fingerprint"]

EXECUTED = Path("book") / "executed"


class ParameterError(ValueError):
    """A profile passes a parameter the notebook does not define."""


def load_experiments() -> dict:
    """The parsed ``experiments.yml`` (profiles and notebook × profile parameters)."""
    text = resources.files("krepes_lib").joinpath("experiments.yml").read_text()
    return yaml.safe_load(text)


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
    """The parameters of ``name`` under ``profile``, checked against the notebook's cell."""
    if profile not in exp["profiles"]:
        raise ParameterError(f"--profile {profile!r} is unknown; choose one of {sorted(exp['profiles'])}.")
    params = dict((exp["notebooks"][name].get("profiles") or {}).get(profile) or {})
    known = notebook_parameters(nb_path)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ParameterError(
            f"experiments.yml gives notebook {name!r} (profile {profile!r}) the unknown parameter(s) "
            f"{unknown}; the notebook's parameters cell defines {sorted(known)}. Fix the name in "
            "krepes_lib/experiments.yml or add it to the notebook's parameters cell."
        )
    return params


def code_fingerprint() -> str:
    """SHA-256 over every ``*.py`` and ``experiments.yml`` of ``krepes_lib`` and ``data_scripts``.

    Paths (relative to each package, sorted) and contents both enter the hash, so an edit,
    an added or a removed module changes it.
    """
    import data_scripts

    import krepes_lib

    h = hashlib.sha256()
    for pkg in (krepes_lib, data_scripts):
        base = Path(pkg.__file__).resolve().parent
        files = sorted(p for p in base.rglob("*")
                       if p.is_file() and (p.suffix == ".py" or p.name == "experiments.yml")
                       and "__pycache__" not in p.parts)
        for p in files:
            rel = f"{pkg.__name__}/{p.relative_to(base).as_posix()}"
            h.update(rel.encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def data_fingerprint() -> str:
    """SHA-256 over the data search path and (path, size, mtime_ns) of every registered file in it.

    Cheap (one ``stat`` per registered file and directory): a replaced, added or removed data
    file, or another ``KREPES_DATA``, changes it. The loaders check the files' SHA-256 when
    they read them.
    """
    from .data import registry

    from .data import data_dirs

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


def _fingerprint(nb_path: Path, params: dict, profile: str, deps: str | None = None) -> str:
    """Notebook bytes, parameters, profile and ``deps`` (library code + data; computed when None)."""
    if deps is None:
        deps = code_fingerprint() + data_fingerprint()
    h = hashlib.sha256(nb_path.read_bytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(profile.encode())
    h.update(deps.encode())
    return h.hexdigest()


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
                 timeout: int | None = None, deps: str | None = None) -> str:
    """Execute one notebook with papermill into ``book/executed/NAME.ipynb`` (atomically).

    Returns ``"ran"`` or ``"skipped"`` (output exists with the same fingerprint: notebook
    source, parameters, profile, library code and data files; ``deps`` is the library + data
    part, computed when None). Raises SystemExit naming the notebook and cell on failure or
    time-out (``timeout`` seconds per cell); the partly executed notebook is kept as
    ``NAME.failed.ipynb``, which a later successful run removes.
    """
    import nbformat
    import papermill
    from nbclient.exceptions import CellTimeoutError
    from papermill.exceptions import PapermillExecutionError

    from .data import absolutize_data_env

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
    absolutize_data_env()  # the kernel runs in notebooks/: ../shared/data must keep its meaning
    fp = _fingerprint(src, params, profile, deps)
    failed = out_dir / f"{name}.failed.ipynb"
    if not force and _up_to_date(out, fp):
        return "skipped"
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".ipynb")
    os.close(fd)
    env_before = os.environ.get("KREPES_RESULTS")
    os.environ["KREPES_RESULTS"] = str(out_dir / "results")
    try:
        papermill.execute_notebook(
            str(src), tmp, parameters=params, cwd=str(root / "notebooks"), progress_bar=True,
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
        if env_before is None:
            os.environ.pop("KREPES_RESULTS", None)
        else:
            os.environ["KREPES_RESULTS"] = env_before
    nb = nbformat.read(tmp, as_version=4)
    nb.metadata["krepes"] = {"fingerprint": fp, "profile": profile, "parameters": params}
    nbformat.write(nb, tmp)
    _readable_mode(tmp)
    os.replace(tmp, out)
    failed.unlink(missing_ok=True)  # a failure of an earlier run is no longer the state
    return "ran"


def write_report(root: Path, exp: dict, profile: str) -> Path:
    """Generate ``book/executed/report.md`` from the notebooks' result files."""
    from .files import atomic_path
    from .studies.results import load_all_results

    results = load_all_results(root / EXECUTED / "results")
    lines = [
        "# Reproduction report",
        "",
        f"Generated by `krepes reproduce --profile {profile}` from the JSON files the executed",
        "notebooks wrote; nothing on this page is typed by hand. *Paper* is the paper's number",
        "(spec §7) where it reports one, *ours* the number this run computed, *verdict* what the",
        "notebook concluded from its own numbers. Defaults that are the project's and not the",
        "paper's are listed in each notebook's *Setting* section. Every verdict follows the",
        "*rule* in its row, fixed before the run (paired tests over seeds, `krepes_lib.stats`).",
        "",
    ]
    lines += _spec7_section(results)
    for name, meta in exp["notebooks"].items():
        data = results.get(name)
        lines += [f"## {meta['title']}", "", f"Notebook: [{name}]({name}.ipynb). {meta['reproduces']}", ""]
        if data is None:
            lines += ["*Not run in this build.*", ""]
            continue
        claims = data["results"].get("claims", [])
        if claims:
            lines += ["| claim | paper | ours | rule | verdict |", "|---|---|---|---|---|"]
            for c in claims:
                cells = [str(c.get(k, "")).replace("|", "\\|").replace("\n", " ")
                         for k in ("claim", "paper", "ours", "rule", "verdict")]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        lines += [f"Run: {data['written']} on {data['machine']} ({data['cpu_count']} CPUs), "
                  f"parameters `{json.dumps(data['parameters'], sort_keys=True)}`.", ""]
    lines += _compute_section(root, exp) + _datasets_section()
    path = root / EXECUTED / "report.md"
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write("\n".join(lines))
    return path


def _spec7_section(results: dict) -> list[str]:
    """Every number of spec §7 with a status (reproduced / not reproduced / not attempted, why)."""
    from .studies.results import SPEC7, spec7_status

    lines = ["## The paper's numbers (spec §7) at a glance", "",
             "Each number the paper reports, with the status this build's notebooks give it (derived",
             "from their claim verdicts; details in the sections below). Nothing is left out: an item",
             "no notebook addresses says why.", "",
             "| paper (spec §7) | status | notebooks |", "|---|---|---|"]
    for item in SPEC7:
        status, rows = spec7_status(item, results)
        nbs = ", ".join(sorted({f"[{nb}]({nb}.ipynb)" for nb, _ in rows})) or "—"
        cells = [item["paper"], status, nbs]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines + [""]


def _compute_section(root: Path, exp: dict) -> list[str]:
    """Wall time, profile and device of every executed notebook (from its metadata)."""
    import nbformat

    lines = ["## Compute used", "",
             "Wall time of each executed notebook as papermill recorded it, the profile it ran",
             "with (machine and parameters are in each section above).", "",
             "| notebook | profile | wall time (s) | cells |", "|---|---|---|---|"]
    for name in exp["notebooks"]:
        path = root / EXECUTED / f"{name}.ipynb"
        if not path.is_file():
            lines.append(f"| {name} | not run | | |")
            continue
        nb = nbformat.read(path, as_version=4)
        pm = nb.metadata.get("papermill", {})
        prof = nb.metadata.get("krepes", {}).get("profile", "?")
        dur = pm.get("duration")
        lines.append(f"| {name} | {prof} | {dur:.1f} | {len(nb.cells)} |" if dur is not None
                     else f"| {name} | {prof} | ? | {len(nb.cells)} |")
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


def build_book(root: Path) -> Path:
    """``jupyter-book build`` with warnings as errors; returns ``_build/html/index.html``."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(root), "--path-output",
           str(root), "-W", "-n", "--keep-going", "--all"]
    print("krepes: building the book:", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=root)
    if proc.returncode != 0:
        raise SystemExit(f"krepes: the book build failed (exit {proc.returncode}); see the warnings above.")
    index = root / "_build" / "html" / "index.html"
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


def cmd_list(args) -> int:
    exp = load_experiments()
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
    exp = load_experiments()
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
    from .data import absolutize_data_env

    absolutize_data_env()  # relative to where krepes was started, before any cwd change
    deps = code_fingerprint() + data_fingerprint()
    t0 = time.time()
    bar = tqdm(names, desc=f"notebooks ({args.profile})", unit="nb")
    for n in bar:
        bar.set_postfix_str(n)
        t = time.time()
        status = run_notebook(root, n, args.profile, exp, force=args.force, timeout=args.timeout,
                              deps=deps)
        tqdm.write(f"krepes: {n}: {status} in {time.time() - t:.1f} s")
    report = write_report(root, exp, args.profile)
    print(f"krepes: report written to {report}")
    if not args.no_book:
        build_book(root)
    print(f"krepes: done in {time.time() - t0:.1f} s")
    return 0


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
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
