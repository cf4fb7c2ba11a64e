"""Run one notebook at a profile with papermill, or from its source when Jupyter is missing.

    python tools/run_notebook.py 01_nystrom_pc --profile paper --timeout 240 --out /tmp/nb

With papermill importable (the README's setup), this is ``papermill notebooks/NAME.ipynb`` with
the profile's parameters from ``krepes_lib/experiments.yml`` and ``--timeout`` seconds per
cell, the executed notebook written to ``--out``. Without it (a bare GPU image: PyTorch and
CuPy but no Jupyter), the notebook's source ``notebooks/src/NAME.py`` is executed cell by
cell (``# %%`` markers, markdown skipped) in one namespace from ``notebooks/``, the profile's
parameters assigned right after the ``parameters`` cell — what papermill injects — under a
wall-time limit of ``--timeout`` seconds for the whole run. Either way each cell's wall time
and output are printed, figures are saved under ``--out``, and the exit code is 0 (all cells
ran), 1 (a cell raised; the cell is named) or 124 (the time limit; the cell is named).
Used by ``tools/gpu_check.sh``.
"""
from __future__ import annotations

import argparse
import ast
import os
import re
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def source_cells(path: Path) -> list[tuple[str, str]]:
    """(kind, text) per ``# %%`` cell: kind is "markdown", "parameters" or "code"."""
    cells = []
    for chunk in re.split(r"^# %%", path.read_text(), flags=re.M)[1:]:
        header, _, body = chunk.partition("\n")
        kind = "markdown" if "[markdown]" in header else \
            "parameters" if "parameters" in header else "code"
        cells.append((kind, body))
    return cells


def profile_parameters(name: str, profile: str) -> dict:
    import yaml

    exp = yaml.safe_load((ROOT / "krepes_lib" / "experiments.yml").read_text())
    if profile not in exp["profiles"]:
        raise SystemExit(f"--profile {profile!r} is unknown; choose one of {sorted(exp['profiles'])}.")
    if name not in exp["notebooks"]:
        raise SystemExit(f"notebook {name!r} is not in experiments.yml; choose one of {sorted(exp['notebooks'])}.")
    return dict((exp["notebooks"][name].get("profiles") or {}).get(profile) or {})


def assigned_names(code: str) -> set:
    return {t.id for node in ast.parse(code).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


class _Timeout(Exception):
    pass


def run_source(name: str, params: dict, timeout: int | None, out: Path) -> int:
    src = ROOT / "notebooks" / "src" / f"{name}.py"
    cells = source_cells(src)
    pcells = [body for kind, body in cells if kind == "parameters"]
    known = assigned_names(pcells[0]) if pcells else set()
    unknown = sorted(set(params) - known)
    if unknown:
        raise SystemExit(f"the profile gives {name} unknown parameter(s) {unknown}; its parameters "
                         f"cell defines {sorted(known)}.")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.chdir(ROOT / "notebooks")
    ns = {"__name__": "__main__"}
    n_fig = [0]

    def save_open_figures():
        for num in plt.get_fignums():
            n_fig[0] += 1
            plt.figure(num).savefig(out / f"{name}-fig{n_fig[0]:02d}.png", dpi=80)
        plt.close("all")

    def on_alarm(signum, frame):
        raise _Timeout()

    if timeout:
        signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(int(timeout))
    t_all = time.perf_counter()
    i = 0
    try:
        for i, (kind, body) in enumerate(cells):
            if kind == "markdown":
                continue
            t0 = time.perf_counter()
            print(f"--- cell {i} ({kind}) ---", flush=True)
            exec(compile(body, f"{name}.py:cell{i}", "exec"), ns)
            if kind == "parameters" and params:
                ns.update(params)
                print(f"injected parameters: {params}", flush=True)
            save_open_figures()
            print(f"--- cell {i}: {time.perf_counter() - t0:.1f} s ---", flush=True)
    except _Timeout:
        print(f"TIMEOUT: {name} ran past {timeout} s in cell {i} "
              f"(after {time.perf_counter() - t_all:.0f} s)", flush=True)
        return 124
    except BaseException as err:  # noqa: BLE001 - report the cell, then fail
        import traceback

        traceback.print_exc()
        print(f"FAILED: {name}, cell {i}: {type(err).__name__}: {err}", flush=True)
        return 1
    finally:
        signal.alarm(0)
    print(f"{name}: all cells ran in {time.perf_counter() - t_all:.1f} s; {n_fig[0]} figure(s) in {out}")
    return 0


def print_outputs(path: Path, out: Path):
    """Each code cell's printed output and wall time, and its figures saved as PNG."""
    import base64

    import nbformat

    if not path.is_file():
        return
    nb = nbformat.read(str(path), as_version=4)
    n_fig = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("papermill", {})
        print(f"--- cell {i}: {meta.get('duration') or 0:.1f} s ---")
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream" and o.get("name") == "stdout":
                print(o.get("text", ""), end="")
            elif o.get("output_type") == "error":
                print(f"{o.get('ename')}: {o.get('evalue')}")
            png = o.get("data", {}).get("image/png") if "data" in o else None
            if png:
                n_fig += 1
                (out / f"{path.stem}-fig{n_fig:02d}.png").write_bytes(base64.b64decode(png))
    print(f"{n_fig} figure(s) saved in {out}")


def run_papermill(name: str, params: dict, timeout: int | None, out: Path) -> int:
    import papermill
    from nbclient.exceptions import CellTimeoutError
    from papermill.exceptions import PapermillExecutionError

    dst = out / f"{name}.ipynb"
    t0 = time.perf_counter()
    rc = 0
    try:
        papermill.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(dst),
                                   parameters=params, cwd=str(ROOT / "notebooks"),
                                   kernel_name="python3", execution_timeout=timeout,
                                   progress_bar=False)
    except CellTimeoutError:
        print(f"TIMEOUT: a cell of {name} ran past {timeout} s; partial notebook {dst}")
        rc = 124
    except PapermillExecutionError as err:
        print(f"FAILED: {name}, cell {err.cell_index}: {err.ename}: {err.evalue}; notebook {dst}")
        rc = 1
    print_outputs(dst, out)
    if rc == 0:
        print(f"{name}: executed by papermill in {time.perf_counter() - t0:.1f} s -> {dst}")
    return rc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", help="notebook name, e.g. 01_nystrom_pc")
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--timeout", type=int, default=None, help="seconds (per cell with papermill; "
                    "for the whole run from source)")
    ap.add_argument("--out", default=None, help="folder for figures / the executed notebook")
    ap.add_argument("--engine", choices=("auto", "papermill", "source"), default="auto")
    a = ap.parse_args(argv)
    out = Path(a.out or os.environ.get("KREPES_RESULTS") or ".").resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KREPES_RESULTS", str(out))
    sys.path.insert(0, str(ROOT))
    params = profile_parameters(a.name, a.profile)
    engine = a.engine
    if engine == "auto":
        try:
            import papermill  # noqa: F401
            import ipykernel  # noqa: F401
            engine = "papermill"
        except ImportError:
            engine = "source"
    print(f"# {a.name} at profile {a.profile!r} by {engine}, limit {a.timeout} s; parameters {params}",
          flush=True)
    run = run_papermill if engine == "papermill" else run_source
    return run(a.name, params, a.timeout, out)


if __name__ == "__main__":
    sys.exit(main())
