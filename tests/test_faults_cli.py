"""Issue 12, fault-table rows of ``krepes`` (cli) and the relative data directory (issue 8).

Uses tiny throw-away notebooks in temporary folders (one kernel start per execution, a few
seconds each); no real notebook and no network.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import krepes_lib
from krepes_lib import cli
from krepes_lib import data as D

ROOT = Path(__file__).resolve().parents[1]
EXP = {"profiles": {"ci": "tiny"}, "notebooks": {"toy": {"profiles": {"ci": {"n": 2}}}}}


def _notebook(root: Path, body: str) -> Path:
    """``root/notebooks/toy.ipynb``: a parameters cell (n = 1) and one code cell."""
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("n = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = root / "notebooks" / "toy.ipynb"
    nbformat.write(nb, path)
    return path


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _outputs(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


# --- library or data changed after a run: reproduce re-runs --------------------------------
def test_library_change_changes_the_code_fingerprint(tmp_path, monkeypatch):
    pkg = tmp_path / "krepes_lib"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("x = 1\n")
    (pkg / "sub" / "mod.py").write_text("def f():\n    return 1\n")
    (pkg / "experiments.yml").write_text("profiles: {}\n")
    monkeypatch.setattr(krepes_lib, "__file__", str(pkg / "__init__.py"))
    f0 = cli.code_fingerprint()
    assert cli.code_fingerprint() == f0  # deterministic
    (pkg / "sub" / "mod.py").write_text("def f():\n    return 2\n")  # a library fix
    f1 = cli.code_fingerprint()
    (pkg / "experiments.yml").write_text("profiles: {ci: x}\n")
    f2 = cli.code_fingerprint()
    (pkg / "sub" / "new.py").write_text("")
    f3 = cli.code_fingerprint()
    (pkg / "notes.txt").write_text("not code")
    assert len({f0, f1, f2, f3}) == 4 and cli.code_fingerprint() == f3


def test_data_change_changes_the_data_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setenv("KREPES_DATA", str(tmp_path))
    f0 = cli.data_fingerprint()
    (tmp_path / "adult").mkdir()
    data = tmp_path / "adult" / "adult.data"
    data.write_text("a,b\n")
    f1 = cli.data_fingerprint()
    os.utime(data, ns=(1, 1))  # same bytes count, another modification time
    f2 = cli.data_fingerprint()
    data.write_text("a,b,c\n")
    f3 = cli.data_fingerprint()
    monkeypatch.setenv("KREPES_DATA", str(tmp_path / "elsewhere"))
    f4 = cli.data_fingerprint()
    assert len({f0, f1, f2, f3, f4}) == 5


def test_reproduce_reruns_on_change_removes_stale_failure_and_writes_0644(tmp_path, monkeypatch):
    """Fail, fix, skip, re-run on a library/data change; the kernel sees an absolute KREPES_DATA."""
    root = tmp_path / "book_root"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KREPES_DATA", "my_data")  # relative to where krepes was started
    os.umask(0o022)
    _notebook(root, "raise RuntimeError('boom')")
    with pytest.raises(SystemExit, match="failed in cell") as err:
        cli.run_notebook(root, "toy", "ci", EXP, deps="v1")
    failed = root / cli.EXECUTED / "toy.failed.ipynb"
    assert failed.is_file() and "boom" in str(err.value) and _mode(failed) == 0o644
    _notebook(root, "import os\nprint('DATA=' + os.environ['KREPES_DATA'])")
    assert cli.run_notebook(root, "toy", "ci", EXP, deps="v1") == "ran"
    out = root / cli.EXECUTED / "toy.ipynb"
    assert not failed.exists(), "a successful run must remove the stale NAME.failed.ipynb"
    assert _mode(out) == 0o644
    assert f"DATA={tmp_path / 'my_data'}" in _outputs(out)
    assert cli.run_notebook(root, "toy", "ci", EXP, deps="v1") == "skipped"
    assert cli.run_notebook(root, "toy", "ci", EXP, deps="v2") == "ran"  # library/data changed


def test_timeout_is_a_clear_message(tmp_path):
    _notebook(tmp_path, "import time\ntime.sleep(60)")
    with pytest.raises(SystemExit) as err:
        cli.run_notebook(tmp_path, "toy", "ci", EXP, timeout=1, deps="x")
    msg = str(err.value)
    assert "toy" in msg and "timed out in cell" in msg and "--timeout" in msg
    assert "`import time`" in msg and "CellTimeoutError" not in msg
    assert (tmp_path / cli.EXECUTED / "toy.failed.ipynb").is_file()
    with pytest.raises(SystemExit, match="--timeout 0"):
        cli.main(["reproduce", "--root", str(ROOT), "--timeout", "0", "--no-book"])


# --- unwritable directories -----------------------------------------------------------------
def test_fetch_data_into_unwritable_dir_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KREPES_DATA", str(tmp_path / "empty"))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    rc = cli.main(["fetch-data", "adult", "--no-progress", "--data-dir", str(blocker / "data")])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot write to" in err and "--data-dir" in err
    assert "Traceback" not in err and "PermissionError" not in err and "NotADirectoryError" not in err


def test_reproduce_into_unwritable_folder_is_a_clear_error(tmp_path):
    _notebook(tmp_path, "x = 1")
    (tmp_path / "book").write_text("a file where book/executed/ should go")
    with pytest.raises(SystemExit, match="cannot write the executed notebooks to") as err:
        cli.run_notebook(tmp_path, "toy", "ci", EXP, deps="x")
    assert "--root" in str(err.value)


# --- relative KREPES_DATA (issue 8): library, child processes, pytest/nbval -------------------
def test_relative_data_dir_is_relative_to_the_cwd_of_the_call(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    monkeypatch.setenv("KREPES_DATA", f"../data{os.pathsep}~/x")
    assert D.data_dirs() == [tmp_path / "data", Path("~/x").expanduser()]
    env = {"KREPES_DATA": "../data"}
    assert D.absolutize_data_env(env) == str(tmp_path / "data") == env["KREPES_DATA"]
    assert D.absolutize_data_env({}) is None


def test_child_processes_inherit_absolute_data_dirs(tmp_path):
    """What krepes reproduce and the root conftest do, checked in a child with another cwd."""
    start, other = tmp_path / "start", tmp_path / "start" / "notebooks"
    other.mkdir(parents=True)
    env = {**os.environ, "KREPES_DATA": "../shared/data",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = ("import runpy, os, subprocess, sys; runpy.run_path(sys.argv[1]); "
            "print(subprocess.run([sys.executable, '-c', 'import os; "
            "print(os.environ[\"KREPES_DATA\"])'], cwd=sys.argv[2], capture_output=True, "
            "text=True).stdout.strip())")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "conftest.py"), str(other)],
                         cwd=start, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == str(tmp_path / "shared" / "data")
