"""Sphinx glue for the course pages: a ``{colab}`NAME``` role (Colab link to the committed
student edition at ``repository.url`` of _config.yml) and the editions directory.

``krepes reproduce`` writes the student/instructor editions and autograder zips to
``_build/editions`` before the book is built (tools/editions.py); when that folder exists it is
copied into the HTML output as ``editions/``.
"""
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


def _extra_path(app, config):
    editions = Path(app.confdir) / "_build" / "editions"
    if editions.is_dir() and str(editions) not in config.html_extra_path:
        config.html_extra_path.append(str(editions.parent / "editions"))


def setup(app):
    app.add_role("colab", colab_role)
    app.connect("config-inited", _extra_path)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
