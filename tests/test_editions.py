"""Student and instructor editions of the course notebooks (tools/editions.py, otter-grader).

The student edition must carry no solution text and no MyST-only syntax; the committed
course/student notebooks must be what the sources generate; the otter autograder must pass the
instructor's answers and fail a wrong one.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import editions  # noqa: E402

GRADED = "11_stepwise_ssl"  # built by otter and autograded here (the others share the code path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("editions")
    return out, editions.write_editions([GRADED], out)


def _markdown_students_see(name):
    """The markdown cells of the numbered plain master outside solutions and tests: what the
    student edition must carry verbatim (otter copies them)."""
    nb = editions._otter_master(name, editions.equation_index(), editions.bibliography())
    hidden = {i for q in editions.questions(nb) for i in q["solution"] + q["tests"]}
    return [c.source for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and i not in hidden]


def _solution_texts(name):
    """Every solution paragraph and solution code line of the source (what students must not see)."""
    master = editions.plain_master(ROOT / "notebooks" / "src" / f"{name}.py")
    texts = []
    for q in editions.questions(master):
        for i in q["solution"]:
            c = master.cells[i]
            if c.cell_type == "markdown":
                texts += [p.strip() for p in c.source.split("\n\n") if len(p.strip()) > 30]
            else:
                texts += [ln.split("#")[0].strip() for ln in c.source.splitlines() if ln.rstrip().endswith("# SOLUTION")]
    assert texts, name
    return texts


@pytest.mark.parametrize("name", editions.COURSE)
def test_student_edition_has_no_solution_and_no_myst(built, name):
    """The committed student edition (what students open; the fresh one for GRADED) and, for
    GRADED, the instructor edition."""
    out, _ = built
    where = out / "student" if name == GRADED else ROOT / "course" / "student"
    student = nbformat.read(where / f"{name}.ipynb", as_version=4)
    editions_ = [student]
    s_text = "\n".join(c.source for c in student.cells)
    for t in _solution_texts(name):
        assert t not in s_text, f"solution text reached the student edition: {t[:80]!r}"
    if name == GRADED:
        instructor = nbformat.read(out / "instructor" / f"{name}.ipynb", as_version=4)
        i_text = "\n".join(c.source for c in instructor.cells)
        assert all(t in i_text for t in _solution_texts(name)), "the instructor edition lacks a solution"
        editions_.append(instructor)
    hidden = json.dumps(student.metadata.get("otter", {}))
    assert "hidden" not in hidden.lower() or "BEGIN TEST CONFIG" not in hidden
    for nb in editions_:
        for c in nb.cells:
            if c.cell_type == "markdown":
                assert not editions.MYST_LEFTOVERS.search(c.source), c.source[:200]
                assert "{eq}" not in c.source and "{doc}" not in c.source and "{cite" not in c.source
    assert re.search(r"\(\d+\) in \*", s_text) or name == "02_main_results" or "{eq}" not in s_text
    assert 'grader.check("ex' in s_text or not any(not q["manual"] for q in editions.questions(
        editions.read_master(ROOT / "notebooks" / "src" / f"{name}.py")))


@pytest.mark.parametrize("name", editions.COURSE)
def test_committed_student_edition_is_current(built, name):
    """GRADED: the committed file is exactly what otter writes now. Every course notebook: each
    markdown cell students see (equation and exercise numbers included) is in the committed file."""
    out, _ = built
    committed = ROOT / "course" / "student" / f"{name}.ipynb"
    fix = f"{committed} is stale: python tools/editions.py --editions /tmp/ed && cp /tmp/ed/student/*.ipynb course/student/"
    assert committed.is_file(), fix
    old = nbformat.read(committed, as_version=4)
    have = [c.source for c in old.cells if c.cell_type == "markdown"]  # otter may add a marker comment
    missing = [m for m in _markdown_students_see(name) if not any(m in h for h in have)]
    assert not missing, fix + f"\n  e.g. {missing[0][:120]!r}"
    if name == GRADED:
        fresh = nbformat.read(out / "student" / f"{name}.ipynb", as_version=4)
        assert [(c.cell_type, c.source) for c in old.cells] == [(c.cell_type, c.source) for c in fresh.cells], fix


def test_equation_numbers_in_plain_text():
    eqs = editions.equation_index()
    page, n, title = eqs["sw-steptime"]
    assert page == "stepwise" and title == "SSL learns eigenmodes one at a time"
    assert editions.plain_markdown("eq. {eq}`sw-steptime`", eqs, {}) == f"eq. ({n}) in *{title}*"
    with pytest.raises(ValueError, match="MyST-only"):
        editions.plain_markdown("```{admonition} Solution\n:class: dropdown\nx\n```", eqs, {})


def _grade(zip_path, nb_path, tmp_path):
    out = tmp_path / f"graded-{nb_path.parent.name}"
    out.mkdir()
    env = {**os.environ, "KREPES_RESULTS": str(tmp_path / "results"), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "otter", "run", "-a", str(zip_path), "-o", str(out), str(nb_path)],
                          capture_output=True, text=True, cwd=ROOT / "notebooks", timeout=600, env=env)
    assert (out / "results.json").is_file(), proc.stdout + proc.stderr
    tests = json.loads((out / "results.json").read_text())["tests"]
    return {t["name"]: t["score"] for t in tests if "score" in t}


#: the graded submissions run notebook 11 at a small size (the answers do not depend on it)
SMALL = ('\nn, m, seeds, n_draws, epochs_factor = 150, 24, [0], 3, 1.0\n'
         'other_losses = {k: {**v, "epochs": 5} for k, v in other_losses.items()}\n')


def _submission(inst, path, wrong=False):
    nb = nbformat.read(inst, as_version=4)
    params = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "the instructor edition keeps the parameters cell"
    params[0].source += SMALL
    for c in nb.cells:  # a student who forgot the factor 2 in the exponent of c0 ∝ init_scale²
        if wrong and c.cell_type == "code" and c.source.startswith("shift = "):
            assert "shift = 2 * np.log(2)" in c.source
            c.source = c.source.replace("shift = 2 * np.log(2)", "shift = np.log(2)")
    path.parent.mkdir()
    nbformat.write(nb, path)
    return path


def test_autograder_passes_instructor_and_fails_wrong_answer(built, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    out, done = built
    inst = done[GRADED]["instructor"]
    good = _submission(inst, tmp_path / "right" / f"{GRADED}.ipynb")
    bad = _submission(inst, tmp_path / "wrong" / f"{GRADED}.ipynb", wrong=True)
    with ThreadPoolExecutor(2) as pool:  # two otter runs (two kernels) at once
        right, wrong = pool.map(lambda nb: _grade(done[GRADED]["autograder"], nb, tmp_path), (good, bad))
    assert right == {"ex1": 1.0, "ex2": 1.0}, right
    assert wrong == {"ex1": 0.0, "ex2": 1.0}, wrong
