"""The course pages in a real browser (headless Chromium driven by Playwright).

A small book is built once for this module (~1 min): the real ``_config.yml`` and book sources,
a table of contents with the intro and the course part only, and the course notebooks
unexecuted (the exercise blocks are markdown; outputs are not what is tested here). Its HTML is
served on 127.0.0.1 and every request to another host is blocked and recorded, so the test
also shows what the pages need from the network (nothing). ``KREPES_BOOK_HTML=_build/html``
tests an already built book instead.

Checked: on every course page each solution is folded (present, hidden, shown by a click);
the Colab buttons of the course notebooks open their committed student editions; the
stepwise chapter's in-browser notebook opens in JupyterLite, its first code cell runs in the
Pyodide kernel served by the book and prints the step times.

Needs Chromium: Debian's ``/usr/bin/chromium`` (``apt-get install chromium``) or any Chromium
or Chrome binary named by ``KREPES_CHROMIUM``. ``KREPES_SCREENS=DIR`` saves screenshots there.
"""
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import editions  # noqa: E402

CHROMIUM = os.environ.get("KREPES_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = ["book/teaching", "book/stepwise", "book/kpca_gradient", "book/executed/11_stepwise_ssl",
         "book/executed/12_kpca_gradient"]
BROWSER_NB = "course/browser/stepwise_closed_form.ipynb"


def _small_book(dest: Path) -> Path:
    """Copy what the course pages need into ``dest`` and build it with jupyter-book."""
    for d in ("book", "course", "tools"):
        shutil.copytree(ROOT / d, dest / d, ignore=shutil.ignore_patterns("executed", "__pycache__"))
    shutil.copy(ROOT / "_config.yml", dest)
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    toc["parts"] = [p for p in toc["parts"] if p["caption"] == "Course"]
    (dest / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    (dest / "book" / "executed").mkdir()
    for name in editions.COURSE:
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", dest / "book" / "executed")
    exe = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(exe) if exe.exists() else "jupyter-book", "build", str(dest), "--path-output",
                           str(dest)], cwd=dest, capture_output=True, text=True, timeout=900)
    html = dest / "_build" / "html"
    assert proc.returncode == 0 and (html / "book" / "stepwise.html").is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return html


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    given = os.environ.get("KREPES_BOOK_HTML")
    return Path(given).resolve() if given else _small_book(tmp_path_factory.mktemp("book"))


@pytest.fixture(scope="module")
def served(book):
    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                          ".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript"}

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(book)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser(served, tmp_path_factory):
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium, or set KREPES_CHROMIUM=/path/to/chrome")
    from playwright.sync_api import sync_playwright

    outside = []
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path_factory.mktemp("profile")), executable_path=CHROMIUM,
                                                   args=ARGS, headless=True, viewport={"width": 1280, "height": 900})

        def route(r):
            if r.request.url.startswith((served, "data:", "blob:")):
                r.continue_()
            else:
                outside.append(r.request.url)
                r.abort()

        ctx.route("**/*", route)
        yield ctx, outside
        ctx.close()


def _shot(page, name):
    if os.environ.get("KREPES_SCREENS"):
        Path(os.environ["KREPES_SCREENS"]).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(os.environ["KREPES_SCREENS"]) / name), full_page=False)


@pytest.mark.parametrize("page_name", PAGES)
def test_course_page_has_its_solutions_folded(browser, served, page_name):
    ctx, outside = browser
    page = ctx.new_page()
    page.goto(served + page_name + ".html", wait_until="load")
    exercises = page.locator("div.exercise")
    solutions = page.locator("div.solution")
    assert exercises.count() >= 2, f"{page_name}: no exercises"
    assert solutions.count() == exercises.count(), f"{page_name}: {exercises.count()} exercises, {solutions.count()} solutions"
    page.wait_for_selector("div.solution button.toggle-button", state="attached")
    for i in range(solutions.count()):
        body = solutions.nth(i).locator("section#solution-content, section").first
        assert body.count() == 1 and not body.is_visible(), f"{page_name}: solution {i + 1} is not folded"
    if page_name == "book/stepwise":
        page.locator("div.solution").first.scroll_into_view_if_needed()
        _shot(page, "course_page_folded.png")
    first = solutions.first
    first.locator(".admonition-title").click()
    first.locator("section").first.wait_for(state="visible", timeout=10000)
    assert outside == [], f"{page_name} asked for {outside[:5]}"
    page.close()


@pytest.mark.parametrize("name", ["11_stepwise_ssl", "12_kpca_gradient"])
def test_colab_button_opens_the_student_edition(browser, served, name):
    ctx, _ = browser
    page = ctx.new_page()
    page.goto(served + f"book/executed/{name}.html")
    hrefs = page.eval_on_selector_all("a[href*='colab.research.google.com']", "els => els.map(e => e.href)")
    repo = editions.repository_url().split("github.com/")[-1]
    assert hrefs and set(hrefs) == {f"https://colab.research.google.com/github/{repo}/blob/main/course/student/{name}.ipynb"}
    assert (ROOT / "course" / "student" / f"{name}.ipynb").is_file()
    page.close()


def test_in_browser_notebook_runs_a_cell_offline(browser, served):
    ctx, outside = browser
    page = ctx.new_page()
    page.goto(served + "book/stepwise.html")
    button = page.locator(f"button[onclick*='path={BROWSER_NB}']")
    assert button.count() == 1, "the stepwise chapter has no button that opens the in-browser notebook"
    with ctx.expect_page() as opened:  # the button opens JupyterLite in a new tab
        button.click()
    page.close()
    page = opened.value
    page.wait_for_selector(".jp-Notebook .jp-CodeCell .cm-content", timeout=120000)
    t0 = time.time()
    # the Pyodide kernel starts in the page (~20 s idle, minutes on a loaded machine)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=420000)
    cell = page.locator(".jp-Notebook .jp-CodeCell").first
    out = cell.locator(".jp-OutputArea-output")
    for attempt in range(2):  # a keystroke that reached no cell is retried once
        cell.locator(".cm-content").click()
        page.keyboard.press("Shift+Enter")
        try:
            out.wait_for(timeout=180000)
            break
        except Exception:
            prompt = cell.locator(".jp-InputPrompt").inner_text()
            if "*" in prompt:  # queued or running: give it longer
                out.wait_for(timeout=240000)
                break
            if attempt:
                raise AssertionError(f"no output after {time.time() - t0:.0f} s (prompt {prompt!r})") from None
    text = out.inner_text()
    page.wait_for_timeout(500)
    _shot(page, "in_browser_notebook.png")
    assert "t1 = 41.3 steps, t2 = 78.2 steps, t2/t1 = 1.89" in text, text
    assert outside == [], f"the in-browser notebook asked for {outside[:5]} ({time.time() - t0:.0f} s)"
    page.close()


def test_launch_buttons_elsewhere_lose_colab():
    """Jupyter Book's Colab button would open book/executed/NAME.ipynb (not committed)."""
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    import course_links

    class App:
        class config:
            html_theme_options = {"repository_url": "https://github.com/o/r"}

    def ctx():
        return {"header_buttons": [{"label": "launch-buttons", "buttons": [
            {"text": "Colab", "url": "https://colab.research.google.com/github/o/r/blob/main/book/executed/x.ipynb"}]}]}

    c = ctx()
    course_links._launch_buttons(App, "book/executed/13_scaling", None, c, None)
    assert c["header_buttons"] == []
    c = ctx()
    course_links._launch_buttons(App, "book/executed/11_stepwise_ssl", None, c, None)
    assert c["header_buttons"][0]["buttons"][0]["url"] == \
        "https://colab.research.google.com/github/o/r/blob/main/course/student/11_stepwise_ssl.ipynb"
