"""Sphinx glue for the course pages.

* a ``{colab}`NAME``` role: a Colab link to the committed student edition
  ``course/student/NAME.ipynb`` at ``repository.url`` of _config.yml;
* Jupyter Book's own Colab launch button would open ``book/executed/NAME.ipynb``, which is not
  committed: on the pages of the course notebooks (``tools/editions.py:COURSE``) it is pointed
  at the student edition, on every other page it is removed;
* ``krepes reproduce`` writes the student/instructor editions and autograder zips to
  ``_build/editions`` before the book is built (tools/editions.py); when that folder exists it is
  copied into the HTML output as ``editions/`` when the build has finished;
* the in-browser pages (jupyterlite-sphinx): the Pyodide distribution and the kernel's wheels are
  served by the book itself (``tools/pyodide_dist.py`` fetches them once, verifies them against
  pinned SHA-256 and caches them), passed to ``jupyter lite build`` as ``--pyodide`` and
  ``--piplite-wheels``.
"""
import shutil
import sys
from pathlib import Path

from docutils import nodes
from sphinx.errors import ExtensionError

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def _tool(name):
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    return __import__(name)


def _repo(app):
    url = (app.config.html_theme_options or {}).get("repository_url") or ""
    return url.rstrip("/")


def colab_url(app, name):
    gh = _repo(app).split("github.com/")[-1]
    return f"https://colab.research.google.com/github/{gh}/blob/main/course/student/{name}.ipynb"


def colab_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    app = inliner.document.settings.env.app
    return [nodes.reference(rawtext, f"Open {text} in Colab", refuri=colab_url(app, text))], []


def _launch_buttons(app, pagename, templatename, context, doctree):
    """Colab button → the student edition on course notebook pages, gone elsewhere."""
    course = _tool("editions").COURSE
    name = pagename.rsplit("/", 1)[-1]
    groups = context.get("header_buttons", [])
    for group in list(groups):
        if group.get("label") != "launch-buttons":
            continue
        kept = []
        for button in group.get("buttons", []):
            if button.get("text") == "Colab":
                if not (pagename.startswith("book/executed/") and name in course):
                    continue
                button = {**button, "url": colab_url(app, name),
                          "tooltip": "Open the student edition in Colab"}
            kept.append(button)
        group["buttons"] = kept
        if not kept:
            groups.remove(group)


def _copy_editions(app, error):
    editions = Path(app.confdir) / "_build" / "editions"
    if error is None and app.builder.format == "html" and editions.is_dir():
        shutil.copytree(editions, Path(app.outdir) / "editions", dirs_exist_ok=True)


def _lite(app, config):
    """Offline Pyodide for jupyterlite-sphinx (see tools/pyodide_dist.py)."""
    if "jupyterlite_sphinx" not in config.extensions:
        return
    # jupyterlite-sphinx adds a Google font (for its "try examples" buttons, unused here):
    # every page would ask fonts.googleapis.com for it
    app.registry.css_files = [(f, a) for f, a in app.registry.css_files if "fonts.googleapis.com" not in f]
    try:
        dist = _tool("pyodide_dist").ensure()
    except SystemExit as err:
        raise ExtensionError(f"course_links: the in-browser pages need Pyodide: {err}") from None
    opts = dict(config.jupyterlite_build_command_options or {})
    opts.setdefault("pyodide", str(dist / "pyodide"))
    wheels = sorted((dist / "piplite").glob("*.whl"))
    if wheels:
        opts.setdefault("piplite-wheels", str(wheels[0]))
    config.jupyterlite_build_command_options = opts
    lite_dir = Path(app.srcdir) / config.jupyterlite_dir
    lite_dir.mkdir(parents=True, exist_ok=True)


def setup(app):
    app.add_role("colab", colab_role)
    app.connect("config-inited", _lite)
    app.connect("html-page-context", _launch_buttons, priority=600)
    app.connect("build-finished", _copy_editions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
