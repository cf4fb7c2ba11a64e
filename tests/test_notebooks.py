"""Notebook hygiene and the main job's bookkeeping (papermill itself runs under nbval/CI)."""
import json
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from krepes_lib import cli

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
sys.path.insert(0, str(ROOT / "tools"))
import editions  # noqa: E402


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs_and_with_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_matches_its_source(path):
    src = ROOT / "notebooks" / "src" / f"{path.stem}.py"
    assert src.is_file(), f"{path.name} has no source {src} (edit the source, run tools/editions.py)"
    built = editions.book_notebook(src)
    nb = nbformat.read(path, as_version=4)
    assert [(c.cell_type, c.source) for c in nb.cells] == [(c.cell_type, c.source) for c in built.cells], (
        f"{path.name} differs from {src.name}: run python tools/editions.py {src} {path}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_listed_in_experiments_toc_and_readme(path):
    exp = cli.load_experiments()
    assert path.stem in exp["notebooks"]
    assert f"book/executed/{path.stem}" in (ROOT / "_toc.yml").read_text()
    assert path.stem in (ROOT / "README.md").read_text()


def test_readme_table_is_generated_from_experiments():
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- notebooks-table -->")[1].split("<!-- /notebooks-table -->")[0].strip()
    assert block == cli.notebooks_table(), "regenerate it with: krepes list --markdown"


@pytest.mark.parametrize("profile", ["ci", "quick", "paper"])
def test_every_profile_uses_known_parameters(profile):
    exp = cli.load_experiments()
    for name in exp["notebooks"]:
        cli.resolve_parameters(name, profile, exp, ROOT / "notebooks" / f"{name}.ipynb")


def test_unknown_parameter_is_refused_with_names():
    exp = cli.load_experiments()
    name = next(iter(exp["notebooks"]))
    exp["notebooks"][name]["profiles"]["quick"] = {"no_such_parameter": 1}
    with pytest.raises(cli.ParameterError, match=r"unknown parameter\(s\) \['no_such_parameter'\]"):
        cli.resolve_parameters(name, "quick", exp, ROOT / "notebooks" / f"{name}.ipynb")
    with pytest.raises(cli.ParameterError, match="--profile 'huge' is unknown"):
        cli.resolve_parameters(name, "huge", exp, ROOT / "notebooks" / f"{name}.ipynb")


def test_report_is_generated_from_result_files(tmp_path, monkeypatch):
    from krepes_lib.studies.results import save_results

    monkeypatch.setenv("KREPES_RESULTS", str(tmp_path / "book" / "executed" / "results"))
    exp = {"notebooks": {"nb_a": {"title": "A", "reproduces": "a thing"},
                         "nb_b": {"title": "B", "reproduces": "b thing"}}}
    save_results("nb_a", {"claims": [{"claim": "x | y", "paper": "1", "ours": "2", "rule": "t-test",
                                      "verdict": "holds"}]}, parameters={"m": 3})
    text = cli.write_report(tmp_path, exp, "ci").read_text()
    assert "| x \\| y | 1 | 2 | t-test | holds |" in text
    # every spec §7 number is listed with a status (here: nothing ran, so all "not attempted")
    from krepes_lib.studies.results import SPEC7

    section = text.split("(spec §7) at a glance")[1].split("\n## ")[0]
    assert section.count("| not attempted") == len(SPEC7)
    assert "FairFace is not among the offline data sets" in section
    assert "*Not run in this build.*" in text  # nb_b wrote nothing
    assert '"m": 3' in text
    # the datasets section states what the loaders do (krepes_lib.data.verify), no more
    assert "checks each file it reads against the SHA-256 below" in text


def test_cli_list_runs(capsys):
    assert cli.main(["list"]) == 0
    assert "01_nystrom_pc" in capsys.readouterr().out


def test_cli_fetch_data_passes_arguments_through(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("KREPES_DATA", str(tmp_path))
    assert cli.main(["fetch-data", "--list"]) == 0
    assert "mnist" in capsys.readouterr().out


def test_atomic_path_leaves_nothing_half_written(tmp_path):
    from krepes_lib.files import atomic_path

    final = tmp_path / "r.json"
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp, open(tmp, "w") as f:
            f.write("partial")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(final) as tmp, open(tmp, "w") as f:
        f.write("done")
    assert final.read_text() == "done" and list(tmp_path.iterdir()) == [final]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_sees_every_parameter(path):
    """papermill's inspection silently drops an assignment whose comment holds '=';
    every name assigned in the parameters cell must be visible to it (else profiles fail)."""
    import ast

    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assigned = {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert assigned == set(cli.notebook_parameters(path)), assigned ^ set(cli.notebook_parameters(path))
