"""Write a notebook from a plain Python source with ``# %%`` cell markers (dev helper).

    python tools/nbbuild.py notebooks/src/01_nystrom_pc.py notebooks/01_nystrom_pc.ipynb

``# %% [markdown]`` starts a markdown cell (its lines are written as ``# text``);
``# %% tags=["parameters"]`` starts the papermill parameters cell. Outputs are never stored.
The committed ``.ipynb`` is what papermill and nbval run; tests/test_notebooks.py checks
that each one matches its source here, so edit the source and re-run this script.
"""
import json
import re
import sys

import nbformat


def parse(text):
    cells = []
    for chunk in re.split(r"^# %%", text, flags=re.M)[1:]:
        header, _, body = chunk.partition("\n")
        body = body.strip("\n")
        if "[markdown]" in header:
            md = "\n".join(re.sub(r"^# ?", "", ln) for ln in body.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(md))
        else:
            cell = nbformat.v4.new_code_cell(body)
            m = re.search(r"tags=(\[.*?\])", header)
            if m:
                cell.metadata["tags"] = json.loads(m.group(1))
            cells.append(cell)
    return cells


def build(src, dst=None):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    with open(src) as f:
        nb.cells = parse(f.read())
    for i, c in enumerate(nb.cells):
        c.id = f"cell-{i:02d}"
    if dst:
        nbformat.write(nb, dst)
    return nb


if __name__ == "__main__":
    build(sys.argv[1], sys.argv[2])
