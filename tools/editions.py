"""Book notebook, student and instructor editions, all from one ``# %%`` source.

    python tools/editions.py notebooks/src/11_stepwise_ssl.py notebooks/11_stepwise_ssl.ipynb
    python tools/editions.py --editions OUT [NAME ...]     # OUT/{student,instructor,autograder}

A source in ``notebooks/src/NAME.py`` is a jupytext *percent* script. Exercises follow the
otter-grader "assign" format (raw cells ``# BEGIN QUESTION`` / ``# BEGIN SOLUTION`` /
``# BEGIN TESTS`` …; lines ending in ``# SOLUTION`` are replaced by ``...`` for students).
From it we write

* the **book notebook** ``notebooks/NAME.ipynb`` (what papermill, nbval and the book run):
  every question becomes a sphinx-exercise ``exercise`` directive, its solution a folded
  ``solution-start``/``solution-end`` block (markdown and code cells: the answer is computed
  by the run), and its test cells stay as ordinary code cells tagged ``remove-cell``, so the
  executed notebook asserts the instructor's answers;
* the **editions** (``--editions``): the markdown is turned into plain Jupyter markdown
  (equation references become "(N) in *Chapter*" with the number the book gives them, ``{doc}``
  and ``{cite}`` roles become text, nothing MyST-only is left), a header with the Colab link
  and the install line is added, then ``otter assign`` writes the student notebook (solutions
  removed, ``grader.check`` answer cells, public tests in its metadata), the instructor
  notebook (otter's autograder notebook, with the solutions) and the autograder zip that
  ``otter run`` grades a submission with.

Only the course notebooks listed in :data:`COURSE` have editions; every other source is a
plain notebook (no exercise blocks are required).
"""
from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: notebooks that a lecture sets: they get student and instructor editions
COURSE = ["01_nystrom_pc", "02_main_results", "11_stepwise_ssl", "12_kpca_gradient"]
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
#: MyST syntax that must not reach a plain edition
MYST_LEFTOVERS = re.compile(r"\{[a-z:-]+\}`|^\s*(```|~~~|:::)\s*\{|^:class:|\(\w[\w-]*\)=\s*$", re.M)
ROLE = re.compile(r"\{(eq|doc|cite|cite:t|cite:p|ref|numref)\}`([^`]+)`")
BLOCK = re.compile(r"#\s*(BEGIN|END)\s+(QUESTION|SOLUTION|TESTS|PROMPT)\b", re.I)


# --------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------
def read_master(src) -> nbformat.NotebookNode:
    """The source as a notebook (jupytext percent format), with a Python kernelspec."""
    nb = jupytext.read(str(src), fmt="py:percent")
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    for c in nb.cells:
        c.metadata.pop("lines_to_next_cell", None)
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    return nb


def _raw_kind(cell):
    """('BEGIN'|'END', 'QUESTION'|...) for an otter block boundary, or ('CONFIG', None)."""
    if cell.cell_type != "raw":
        return None
    first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
    if re.match(r"#\s*ASSIGNMENT\s+CONFIG", first, re.I):
        return ("CONFIG", None)
    m = BLOCK.match(first)
    return (m.group(1).upper(), m.group(2).upper()) if m else None


def questions(nb) -> list[dict]:
    """The otter questions of a master notebook: name, manual, and the cell indices of
    prompt, solution and tests."""
    out, cur, part = [], None, None
    for i, c in enumerate(nb.cells):
        kind = _raw_kind(c)
        if kind == ("BEGIN", "QUESTION"):
            cfg = yaml.safe_load("\n".join(c.source.splitlines()[1:])) or {}
            cur = dict(name=cfg["name"], manual=bool(cfg.get("manual")), points=cfg.get("points"),
                       prompt=[], solution=[], tests=[], start=i)
            part = "prompt"
        elif kind == ("END", "QUESTION"):
            cur["end"] = i
            out.append(cur)
            cur = part = None
        elif kind and kind[0] == "BEGIN":
            part = kind[1].lower()
        elif kind and kind[0] == "END":
            part = "after"
        elif cur is not None and part in ("prompt", "solution", "tests"):
            cur[part].append(i)
    return out


# --------------------------------------------------------------------------------------
# the book notebook
# --------------------------------------------------------------------------------------
def book_notebook(src) -> nbformat.NotebookNode:
    """The notebook the book renders: otter blocks → sphinx-exercise directives."""
    nb = read_master(src)
    stem = Path(src).stem
    prefix = "nb" + stem.split("_")[0]
    qs = {q["start"]: q for q in questions(nb)}
    cells, skip = [], set()
    for i, c in enumerate(nb.cells):
        if i in skip:
            continue
        if i in qs:
            q = qs[i]
            label = f"{prefix}-{q['name']}"
            prompt = "\n\n".join(nb.cells[j].source for j in q["prompt"])
            cells.append(nbformat.v4.new_markdown_cell(f"````{{exercise}}\n:label: {label}\n\n{prompt}\n````"))
            if q["solution"]:
                cells.append(nbformat.v4.new_markdown_cell(
                    f"````{{solution-start}} {label}\n:class: dropdown\n````"))
                for j in q["solution"]:
                    cells.append(copy.deepcopy(nb.cells[j]))
                cells.append(nbformat.v4.new_markdown_cell("````{solution-end}\n````"))
            for j in q["tests"]:
                t = copy.deepcopy(nb.cells[j])
                t.metadata["tags"] = sorted(set(t.metadata.get("tags", [])) | {"remove-cell"})
                cells.append(t)
            skip.update(range(q["start"], q["end"] + 1))
            continue
        if c.cell_type == "raw" and _raw_kind(c):
            continue  # ASSIGNMENT CONFIG and stray boundaries
        cells.append(copy.deepcopy(c))
    for c in cells:  # '# SOLUTION' markers are for otter; the book shows clean code
        if c.cell_type == "code":
            c.source = re.sub(r"[ \t]*#\s*SOLUTION\s*$", "", c.source, flags=re.M)
    out = nbformat.v4.new_notebook(metadata=copy.deepcopy(nb.metadata))
    out.cells = cells
    for k, c in enumerate(out.cells):
        c.id = f"cell-{k:02d}"
    return out


# --------------------------------------------------------------------------------------
# plain markdown for Jupyter / Colab
# --------------------------------------------------------------------------------------
def _title(md: Path) -> str:
    for line in md.read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return md.stem


EQ_LABELLED = re.compile(r"\$\$(.+?)\$\$[ \t]*\(([A-Za-z0-9_-]+)\)", re.S)


def _page_texts(doc: str) -> list[str]:
    """The MyST text of one table-of-contents entry: ``book/X.md``, or for an executed
    notebook ``book/executed/NAME`` the markdown cells of ``notebooks/NAME.ipynb`` (the
    generated report is read when it exists)."""
    md = ROOT / f"{doc}.md"
    if md.is_file():
        return [md.read_text()]
    nb = ROOT / "notebooks" / f"{Path(doc).name}.ipynb"
    if nb.is_file():
        return [c.source for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "markdown"]
    return []


def _toc_docs(toc: Path = ROOT / "_toc.yml") -> list[str]:
    spec = yaml.safe_load(toc.read_text())
    return [spec["root"]] + [c["file"] for part in spec.get("parts", []) for c in part["chapters"]]


EXERCISE = re.compile(r"^(?:`{3,}|:{3,})\{exercise\}[^\n]*\n(?::label:\s*(\S+))?", re.M)


@functools.lru_cache(maxsize=4)
def exercise_labels(toc: Path = ROOT / "_toc.yml") -> dict:
    """exercise label → (page, number) as the book prints it. sphinx-exercise numbers exercises
    consecutively through the whole book in table-of-contents order ("Exercise 27" is the first
    of the stepwise chapter), so the editions use the same numbers."""
    out, n = {}, 0
    for doc in _toc_docs(toc):
        for text in _page_texts(doc):
            for m in EXERCISE.finditer(text):
                n += 1
                out[m.group(1) or f"{Path(doc).stem}#{n}"] = (Path(doc).stem, n)
    return out


def exercise_index(toc: Path = ROOT / "_toc.yml") -> dict:
    """page → the number the book prints for its first exercise (:func:`exercise_labels`)."""
    first = {}
    for page, n in exercise_labels(toc).values():
        first.setdefault(page, n)
    return first


def equation_index(toc: Path = ROOT / "_toc.yml") -> dict:
    """label → (page, number, page title) for every labelled display equation of the book.

    Jupyter Book numbers labelled equations consecutively through the whole book in
    table-of-contents order (chapter 1's are 1..k, the next chapter continues at k+1), so
    the number of an equation depends on every page before it: the editions quote exactly
    the number the built book prints (tests/test_browser.py compares them with the HTML)."""
    index, n = {}, 0
    for doc in _toc_docs(toc):
        md = ROOT / f"{doc}.md"
        title = _title(md) if md.is_file() else Path(doc).name
        for text in _page_texts(doc):
            for m in EQ_LABELLED.finditer(text):
                n += 1
                index[m.group(2)] = (Path(doc).stem, n, title)
    return index


def bibliography(path: Path = ROOT / "book" / "references.bib") -> dict:
    """key → (authors for the text, year) from the book's BibTeX file."""
    from pybtex.database import parse_file

    out = {}
    for key, e in parse_file(str(path)).entries.items():
        last = [p.last_names[0] if p.last_names else str(p) for p in e.persons.get("author", [])]
        who = last[0] if len(last) == 1 else (" and ".join(last) if len(last) == 2 else f"{last[0]} et al.")
        out[key] = (who.replace("{", "").replace("}", ""), e.fields.get("year", "n.d."))
    return out


def plain_markdown(text: str, eqs: dict | None = None, bib: dict | None = None) -> str:
    """MyST → plain Jupyter markdown; raises if MyST-only syntax would be left."""
    eqs = equation_index() if eqs is None else eqs
    bib = bibliography() if bib is None else bib
    pages = {Path(p).stem: _title(p) for p in (ROOT / "book").glob("*.md")}
    exercises = exercise_labels()

    def role(m):
        kind, arg = m.group(1), m.group(2)
        if kind == "eq":
            if arg not in eqs:
                raise KeyError(f"equation label {arg!r} is not defined in book/*.md")
            page, n, title = eqs[arg]
            return f"({n}) in *{title}*"
        if kind == "doc":
            inner = re.match(r"(.*?)\s*<(.+)>$", arg)
            return inner.group(1) if inner else f"*{pages.get(Path(arg).stem, arg)}*"
        if kind == "numref":
            inner = re.match(r"(.*?)\s*<(.+)>$", arg)
            fmt, label = (inner.group(1), inner.group(2)) if inner else ("Exercise %s", arg)
            if label not in exercises:
                raise KeyError(f"numref {label!r} is not an exercise label of the book")
            return fmt.replace("%s", str(exercises[label][1]))
        if kind.startswith("cite"):
            keys = [k.strip() for k in arg.split(",")]
            missing = [k for k in keys if k not in bib]
            if missing:
                raise KeyError(f"citation key(s) {missing} are not in book/references.bib")
            if kind == "cite:t":
                return "; ".join(f"{bib[k][0]} ({bib[k][1]})" for k in keys)
            return "(" + "; ".join(f"{bib[k][0]} {bib[k][1]}" for k in keys) + ")"
        return arg

    out = ROLE.sub(role, text)
    left = MYST_LEFTOVERS.search(out)
    if left:
        raise ValueError(f"MyST-only syntax left in a plain edition: {left.group(0)!r} in\n{out}")
    return out


def repository_url(config: Path = ROOT / "_config.yml") -> str:
    """The repository URL the book and the editions link to (``repository.url`` in _config.yml)."""
    return yaml.safe_load(config.read_text())["repository"]["url"].rstrip("/")


def header_cell(name: str, edition: str) -> nbformat.NotebookNode:
    """Colab link, install line and what the edition is."""
    url = repository_url()
    gh = url.split("github.com/")[-1]
    colab = f"https://colab.research.google.com/github/{gh}/blob/main/course/student/{name}.ipynb"
    what = ("**Student edition**: the exercises at the end have answer cells (`...`) and "
            "`grader.check(\"exN\")` cells that test a numeric answer." if edition == "student" else
            "**Instructor edition**: every exercise with its worked solution and the tests the "
            "autograder runs.")
    return nbformat.v4.new_markdown_cell(
        f"{what} [Open in Colab]({colab}).\n\n"
        f"Setup, once: `pip install \"krepes-companion[course] @ git+{url}\"` (on Colab: "
        f"`!pip install ...` in a first cell; torch is preinstalled there), and for the MNIST "
        f"notebooks `krepes fetch-data mnist`. Locally, from a clone: "
        f"`pip install -e \".[course]\" && jupyter lab course/student`.")


def plain_master(src, eqs=None, bib=None) -> nbformat.NotebookNode:
    """The master notebook with every markdown cell in plain Jupyter markdown."""
    nb = read_master(src)
    eqs, bib = eqs or equation_index(), bib or bibliography()
    for c in nb.cells:
        if c.cell_type == "markdown":
            c.source = plain_markdown(c.source, eqs, bib)
    return nb


ASSIGN_CONFIG = """# ASSIGNMENT CONFIG
init_cell: true
check_all_cell: false
export_cell: false
run_tests: false
generate: true
"""


def _numbered_prompts(nb, name):
    """'**Exercise k.**' in front of each prompt, k as the book numbers it (:func:`exercise_index`)."""
    for k, q in enumerate(questions(nb), exercise_index()[name]):
        first = nb.cells[q["prompt"][0]]
        first.source = re.sub(r"^\s*\d+\.\s*", "", first.source)
        first.source = f"**Exercise {k}.** " + first.source


def _otter_master(name, eqs, bib) -> nbformat.NotebookNode:
    nb = plain_master(ROOT / "notebooks" / "src" / f"{name}.py", eqs, bib)
    if not questions(nb):
        raise ValueError(f"{name} has no otter exercise blocks; only {COURSE} have editions")
    nb.cells = [c for c in nb.cells if _raw_kind(c) != ("CONFIG", None)]
    nb.cells.insert(0, nbformat.v4.new_raw_cell(ASSIGN_CONFIG))
    _numbered_prompts(nb, name)
    return nb


def _assign(name, nb, out: Path) -> dict:
    """``otter assign`` one master notebook; student/instructor editions and the zip into ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        master = Path(tmp) / f"{name}.ipynb"
        nbformat.write(nb, master)
        proc = subprocess.run([sys.executable, "-m", "otter", "assign", str(master), str(Path(tmp) / "dist")],
                              capture_output=True, text=True, cwd=tmp)
        if proc.returncode:
            raise RuntimeError(f"otter assign failed on {name}:\n{proc.stdout}\n{proc.stderr}")
        dist = Path(tmp) / "dist"
        for edition, sub in (("student", "student"), ("instructor", "autograder")):
            ed = nbformat.read(dist / sub / f"{name}.ipynb", as_version=4)
            if edition == "instructor":  # the solution follows; no "type your answer" line
                ed.cells = [c for c in ed.cells if "otter_answer_cell" not in c.metadata.get("tags", [])]
            ed.cells.insert(1, header_cell(name, edition))
            for k, c in enumerate(ed.cells):
                c.id = f"cell-{k:02d}"
                if c.cell_type == "code":
                    c.outputs, c.execution_count = [], None
            (out / edition).mkdir(parents=True, exist_ok=True)
            nbformat.write(ed, out / edition / f"{name}.ipynb")
        (out / "autograder").mkdir(parents=True, exist_ok=True)
        zips = sorted((dist / "autograder").glob("*.zip"))
        shutil.copyfile(zips[-1], out / "autograder" / f"{name}-autograder.zip")
    done = {e: out / e / f"{name}.ipynb" for e in ("student", "instructor")}
    done["autograder"] = out / "autograder" / f"{name}-autograder.zip"
    return done


def write_editions(names, out: Path, quiet: bool = True, jobs: int | None = None) -> dict:
    """Student + instructor notebooks and autograder zips under ``out`` (``otter assign``, one
    process per notebook, ``jobs`` at a time: default the number of CPUs)."""
    from concurrent.futures import ThreadPoolExecutor

    out = Path(out)
    eqs, bib = equation_index(), bibliography()
    masters = {name: _otter_master(name, eqs, bib) for name in names}
    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        futures = {name: pool.submit(_assign, name, nb, out) for name, nb in masters.items()}
        done = {name: f.result() for name, f in futures.items()}
    if not quiet:
        for name in done:
            print(f"editions: {name} → {out}/{{student,instructor,autograder}}")
    return done


def html_numbers(html: Path) -> tuple[dict, dict]:
    """(equation label → number, page → first exercise number) as a built book prints them."""
    eqs, first = {}, {}
    for page in Path(html).rglob("*.html"):
        text = page.read_text(errors="replace")
        for m in re.finditer(r'<span class="eqno">\((\d+)\)<a class="headerlink" href="#equation-([^"]+)"', text):
            eqs[m.group(2)] = int(m.group(1))
        nums = [int(x) for x in re.findall(r'<span class="caption-number">Exercise (\d+) ', text)]
        if nums:
            first[page.stem] = min(nums)
    return eqs, first


def check_numbers(html: Path) -> list[str]:
    """Where the numbers the editions quote differ from the built book's (empty: none)."""
    eqs, first = html_numbers(html)
    bad = [f"equation {k}: editions say ({n}), the book ({eqs.get(k.lower())})"
           for k, (_, n, _) in equation_index().items() if k.lower() in eqs and eqs[k.lower()] != n]
    bad += [f"first exercise of {page}: editions say {exercise_index()[page]}, the book {n}"
            for page, n in first.items() if exercise_index().get(page) != n]
    if not eqs or not first:
        bad.append(f"{html} has no numbered equations or exercises: not a built book?")
    return bad


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("paths", nargs="*", help="SRC.py DST.ipynb (book notebook), or course notebook names with --editions")
    p.add_argument("--editions", metavar="OUT", help="write student/instructor editions and autograder zips here")
    p.add_argument("--check-html", metavar="HTML", help="compare the equation and exercise numbers with a built book")
    a = p.parse_args(argv)
    if a.check_html:
        bad = check_numbers(Path(a.check_html))
        for line in bad:
            print("editions:", line, file=sys.stderr)
        return 1 if bad else 0
    if a.editions:
        write_editions(a.paths or COURSE, Path(a.editions), quiet=False)
        return 0
    if len(a.paths) != 2:
        p.error("give SRC.py DST.ipynb, or --editions OUT [NAME ...]")
    nbformat.write(book_notebook(a.paths[0]), a.paths[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
