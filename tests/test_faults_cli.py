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

from krepes_lib import cli, provenance
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
    monkeypatch.setattr(provenance, "LIB_ROOT", pkg)
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


# --- issue 21 (second fault round, ../shared/reviews/faults-round2.md) ----------------------
def _real_experiments():
    import yaml

    return yaml.safe_load((ROOT / "krepes_lib" / "experiments.yml").read_text())


def test_d4_profile_typo_is_refused_not_run_as_the_defaults():
    """#56: `quik:` for `quick:` ran the ci defaults labelled "quick"."""
    exp = _real_experiments()
    nb = exp["notebooks"]["09_alignment_gap"]
    nb["profiles"]["quik"] = nb["profiles"].pop("quick")
    with pytest.raises(cli.ParameterError, match="does not declare profile 'quick'"):
        cli.resolve_parameters("09_alignment_gap", "quick", exp, ROOT / "notebooks" / "09_alignment_gap.ipynb")
    with pytest.raises(cli.ParameterError, match=r"\['quik'\] are not among the profiles"):
        cli.validate_experiments(exp)


@pytest.mark.parametrize("mutate, msg", [
    (lambda nb: nb["profiles"].pop("paper"), r"profile\(s\) \['paper'\] are not declared.*paper: \{\}"),
    (lambda nb: nb["profiles"].update(ci=None), "write `{}`"),
    (lambda nb: nb.update(damping=0.1), r"unknown key\(s\) \['damping'\]"),
    (lambda nb: nb.pop("title"), r"missing key\(s\) \['title'\]"),
    (lambda nb: nb.update(cpu_runtime={"fast": "1 s"}), "cpu_runtime"),
])
def test_d4_experiments_schema(mutate, msg):
    exp = _real_experiments()
    cli.validate_experiments(exp)  # the committed file is valid
    mutate(exp["notebooks"]["09_alignment_gap"])
    with pytest.raises(cli.ParameterError, match=msg):
        cli.validate_experiments(exp)


def test_yaml_string_that_looks_like_a_number_is_named():
    """#57: `damping: 1e-3` is a str to YAML; the notebook failed with an unrelated TypeError."""
    import yaml

    exp = _real_experiments()
    nb = exp["notebooks"]["09_alignment_gap"]
    path = ROOT / "notebooks" / "09_alignment_gap.ipynb"
    nb["profiles"]["ci"] = yaml.safe_load("{damping: 1e-3}")
    with pytest.raises(cli.ParameterError, match=r"damping='1e-3'.*YAML.*write 1.0e-3"):
        cli.resolve_parameters("09_alignment_gap", "ci", exp, path)
    nb["profiles"]["ci"] = {"n_train": 2000.5}
    with pytest.raises(cli.ParameterError, match=r"n_train=2000.5 is of type float.*default is 2000"):
        cli.resolve_parameters("09_alignment_gap", "ci", exp, path)
    nb["profiles"]["ci"] = {"damping": 1, "n_train": None, "losses": ["simclr"]}  # int for float, null: fine
    assert cli.resolve_parameters("09_alignment_gap", "ci", exp, path)["damping"] == 1


def test_list_into_a_closed_pipe_is_quiet(tmp_path, monkeypatch):
    """#59: `krepes list | head -3` ended in a BrokenPipeError traceback."""
    class ClosedPipe:
        def __init__(self, fd):
            self.fd = fd

        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

        def fileno(self):
            return self.fd

    with open(tmp_path / "out", "w") as f:
        monkeypatch.setattr(sys, "stdout", ClosedPipe(f.fileno()))
        assert cli.main(["list"]) == 141


NB = "09_alignment_gap"  # a notebook name the spec §7 table knows (claims matching "Alignment")
EXP2 = {"profiles": {"ci": "tiny", "quick": "small"},
        "notebooks": {NB: {"title": "Toy", "reproduces": "a toy", "profiles": {"ci": {"n": 2}, "quick": {}}}}}
TOY = """import os
from krepes_lib.studies.results import save_results
print('CACHE=' + os.environ.get('KREPES_CACHE', '') + ' VCACHE=' + os.environ.get('KREPES_VERIFY_CACHE', ''))
save_results('%s', {'claims': [{'claim': 'Alignment gap of sex', 'paper': '>', 'ours': str(n),
              'rule': 'r', 'verdict': 'holds'}]}, {'n': n})
""" % NB


def _section(text: str) -> str:
    return text.split("## Toy")[1].split("\n## ")[0]


def _glance(text: str) -> str:
    return next(ln for ln in text.split("(spec §7) at a glance")[1].splitlines() if "Alignment Gap" in ln)


def test_report_marks_stale_failed_foreign_and_unreadable_sections(tmp_path, monkeypatch):
    """#60 stale/failed numbers kept unmarked (also in §7), #61 a stray NAME.old.json overriding
    NAME.json, #64/#65 an environment change ignored, #62/#63 partial files crashing the report,
    #52 a relative KREPES_CACHE meaning notebooks/.krepes_cache to the kernel."""
    import json as _json

    root = tmp_path / "root"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KREPES_CACHE", ".krepes_cache")
    monkeypatch.setenv("KREPES_VERIFY_CACHE", "v/verified.json")
    monkeypatch.delenv("KREPES_DTYPE", raising=False)
    (root / "notebooks").mkdir(parents=True)
    _notebook(root, TOY)
    (root / "notebooks" / "toy.ipynb").rename(root / "notebooks" / f"{NB}.ipynb")
    ex = root / cli.EXECUTED
    assert cli.run_notebook(root, NB, "ci", EXP2) == "ran"
    assert f"CACHE={tmp_path / '.krepes_cache'} VCACHE={tmp_path / 'v' / 'verified.json'}" in \
        _outputs(ex / f"{NB}.ipynb")  # #52: absolute for the kernel in notebooks/
    text = cli.write_report(root, EXP2, "ci").read_text()
    assert "**current** (profile **ci**, run " in _section(text) and "| 2 | r | holds |" in _section(text)
    assert "| reproduced |" in _glance(text)

    # #61: a backup copy with other numbers beside the current file is never read
    res = ex / "results" / f"{NB}.json"
    old = _json.loads(res.read_text())
    old["results"]["claims"][0]["ours"], old["written"] = "999", "2020-01-01 00:00:00 UTC"
    (ex / "results" / f"{NB}.old.json").write_text(_json.dumps(old))
    text = cli.write_report(root, EXP2, "ci").read_text()
    assert "999" not in text and "2020-01-01" not in text and "**current**" in _section(text)

    # other profile: the ci run in a quick report
    text = cli.write_report(root, EXP2, "quick").read_text()
    assert "**OTHER PROFILE**" in _section(text) and "ran with profile 'ci'" in _section(text)
    assert "no current result" in _glance(text) and "| reproduced |" not in _glance(text)

    # #64/#65: the environment changed: stale in the report, and reproduce re-runs
    monkeypatch.setenv("KREPES_DTYPE", "float64")
    text = cli.write_report(root, EXP2, "ci").read_text()
    assert "**STALE**" in _section(text) and "KREPES_DTYPE float32 → float64" in _section(text)
    assert "no current result: 09_alignment_gap (stale)" in _glance(text)
    assert f"rerun with `krepes reproduce --only {NB} --profile ci`" in _section(text)  # a rerun is not skipped

    # #60: a rerun after the change fails: its old numbers are marked FAILED, out of §7
    _notebook(root, "raise RuntimeError('boom')")
    (root / "notebooks" / "toy.ipynb").replace(root / "notebooks" / f"{NB}.ipynb")
    with pytest.raises(SystemExit, match="failed in cell"):
        cli.run_notebook(root, NB, "ci", EXP2)
    text = cli.write_report(root, EXP2, "ci").read_text()
    assert "**FAILED**" in _section(text) and f"{NB}.failed.ipynb" in _section(text)
    assert "since then KREPES_DTYPE float32 → float64" in _section(text)
    # the advice works even once the change is undone and the old executed notebook is current again
    assert f"rerun with `krepes reproduce --only {NB} --profile ci --force`" in _section(text)
    assert "| reproduced |" not in _glance(text)

    # #63 a truncated executed notebook, #62 a partial results file: named, no traceback
    nbfile = ex / f"{NB}.ipynb"
    nbfile.write_text(nbfile.read_text()[:300])
    text = cli.write_report(root, EXP2, "ci").read_text()
    assert "**UNREADABLE**" in _section(text) and str(nbfile) in _section(text)
    res.write_text('{"notebook": "x", ')
    text = cli.write_report(root, EXP2, "ci").read_text()
    assert "**UNREADABLE**" in _section(text) and str(res) in _section(text)
    assert "JSONDecodeError" in _section(text)


def test_edited_results_file_is_unverified(tmp_path, monkeypatch):
    """A results file edited after its run (the #61 copy's trick, applied in place)."""
    import json as _json

    from krepes_lib.provenance import PROVENANCE_ENV
    from krepes_lib.studies.results import save_results

    monkeypatch.setenv("KREPES_RESULTS", str(tmp_path / cli.EXECUTED / "results"))
    monkeypatch.setenv(PROVENANCE_ENV, _json.dumps({"key": "k", "config": {"profile": "ci"}}))
    path = save_results(NB, {"claims": []}, {"n": 2})
    data = _json.loads(path.read_text())
    data["results"]["claims"] = [{"claim": "Alignment", "verdict": "holds"}]
    path.write_text(_json.dumps(data))
    st = cli.section_states(tmp_path, EXP2, "ci", deps="x")[NB]
    assert st.status == "unverified" and "checksum fails" in st.reasons[0]


def test_reproduce_with_cupy_and_no_gpu_stops_before_running(tmp_path, monkeypatch):
    """#64: `KREPES_BACKEND=cupy krepes reproduce` said "skipped" and exited 0 on NumPy results."""
    from krepes_lib import backend

    if backend._cupy_or_none() is not None:
        pytest.skip("a GPU is present")
    (tmp_path / "_config.yml").write_text("title: t\n")
    _notebook(tmp_path, "x = 1")
    (tmp_path / "notebooks" / "toy.ipynb").rename(tmp_path / "notebooks" / f"{NB}.ipynb")
    monkeypatch.setenv("KREPES_BACKEND", "cupy")
    with pytest.raises(SystemExit, match="KREPES_BACKEND=cupy but no usable GPU"):
        cli.main(["reproduce", "--root", str(tmp_path), "--only", NB, "--profile", "ci", "--no-book"])
    assert not (tmp_path / cli.EXECUTED / f"{NB}.ipynb").exists()


# --- krepes reproduce --jobs N: notebooks side by side --------------------------------------
def _toy(root: Path, name: str, body: str) -> None:
    _notebook(root, body)
    (root / "notebooks" / "toy.ipynb").rename(root / "notebooks" / f"{name}.ipynb")


def test_jobs_run_notebooks_side_by_side_and_report_every_failure(tmp_path):
    """Each of two notebooks waits until the other has started: they pass only if they run at
    once. A third one fails; the other two still finish and the failure is reported."""
    import argparse

    flags = tmp_path / "flags"
    flags.mkdir()
    wait = ("import pathlib, time\nd = pathlib.Path({flags!r})\n(d / {me!r}).touch()\n"
            "t = time.time()\nwhile not (d / {other!r}).exists():\n"
            "    assert time.time() - t < 120, 'the other notebook never started: not run at once'\n"
            "    time.sleep(0.1)\nprint('met', {other!r})")
    _toy(tmp_path, "a", wait.format(flags=str(flags), me="a", other="b"))
    _toy(tmp_path, "b", wait.format(flags=str(flags), me="b", other="a"))
    _toy(tmp_path, "c", "raise RuntimeError('boom in c')")
    exp = {"profiles": {"ci": "tiny"},
           "notebooks": {n: {"profiles": {"ci": {}}} for n in ("a", "b", "c")}}
    args = argparse.Namespace(jobs=2, profile="ci", force=False, timeout=None)
    with pytest.raises(SystemExit, match="notebook c failed in cell") as err:
        cli._run_parallel(tmp_path, ["a", "b", "c"], args, exp, "v1")
    assert "boom in c" in str(err.value)
    for n, other in (("a", "b"), ("b", "a")):
        assert f"met {other}" in _outputs(tmp_path / cli.EXECUTED / f"{n}.ipynb")
    assert (tmp_path / cli.EXECUTED / "c.failed.ipynb").is_file()
    # nothing changed: both are skipped on a second parallel run
    assert cli._run_one(tmp_path, "a", "ci", exp, False, None, "v1")[0] == "skipped"
    with pytest.raises(SystemExit, match="--jobs 0"):
        cli.main(["reproduce", "--root", str(ROOT), "--jobs", "0", "--no-book"])


def test_jobs_start_the_longest_notebook_first(tmp_path):
    """``--jobs`` starts notebooks longest first by their cpu_runtime: with one worker the run order
    is the submission order, so the executed notebooks' finishing order shows it."""
    import argparse

    log = tmp_path / "order.txt"
    for n in ("a", "b", "c"):
        _toy(tmp_path, n, f"open({str(log)!r}, 'a').write({n!r})")
    exp = {"profiles": {"ci": "tiny"},
           "notebooks": {"a": {"cpu_runtime": {"ci": "20 s"}, "profiles": {"ci": {}}},
                         "b": {"cpu_runtime": {"ci": "2.4 min warm (13.5 min cold)"}, "profiles": {"ci": {}}},
                         "c": {"cpu_runtime": {"ci": "3 min"}, "profiles": {"ci": {}}}}}
    assert cli.expected_seconds(exp["notebooks"]["b"], "ci") == pytest.approx(810.0)
    assert cli.expected_seconds({"profiles": {}}, "ci") == 0.0
    args = argparse.Namespace(jobs=1, profile="ci", force=False, timeout=None)
    cli._run_parallel(tmp_path, ["a", "b", "c"], args, exp, "v1")
    assert log.read_text() == "bca"


def test_jobs_share_the_cores_between_notebooks(monkeypatch):
    """A --jobs worker gives its kernels cores // jobs threads, and keeps a count the user set."""
    cores = len(os.sched_getaffinity(0))
    for var in cli.THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "7")
    cli._share_cores(2)
    assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == str(max(1, cores // 2))
    assert os.environ["OPENBLAS_NUM_THREADS"] == "7"
