"""Sphinx glue for the course pages: a ``{colab}`NAME``` role (Colab link to the committed
student edition at ``repository.url`` of _config.yml) and the editions directory.

``krepes reproduce`` writes the student/instructor editions and autograder zips to
``_build/editions`` before the book is built (tools/editions.py); when that folder exists it is
copied into the HTML output as ``editions/`` when the build has finished.
"""
import shutil
from pathlib import Path

from docutils import nodes


def _repo(app):
    url = (app.config.html_theme_options or {}).get("repository_url") or ""
    return url.rstrip("/")


def colab_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    app = inliner.document.settings.env.app
    gh = _repo(app).split("github.com/")[-1]
    url = f"https://colab.research.google.com/github/{gh}/blob/main/course/student/{text}.ipynb"
    return [nodes.reference(rawtext, f"Open {text} in Colab", refuri=url)], []


def _copy_editions(app, error):
    editions = Path(app.confdir) / "_build" / "editions"
    if error is None and app.builder.format == "html" and editions.is_dir():
        shutil.copytree(editions, Path(app.outdir) / "editions", dirs_exist_ok=True)


def setup(app):
    app.add_role("colab", colab_role)
    app.connect("build-finished", _copy_editions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
