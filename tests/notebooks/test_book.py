"""The book (tools/build_book.py), built from the notebooks this test session executed (tests/kernels.py, once
each): a page per notebook and lab, the measured numbers and figures on them, links that resolve, a note on when
and where they were measured with a Binder link, and pages that open in Chromium with no console error.

Building costs about 10 s (Sphinx reading 34 executed notebooks); executing them again is not needed and
not done.
"""

from __future__ import annotations

import functools
import html
import importlib.util
import os
import re
import threading
import urllib.parse
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kernels import NAMES, ROOT

if os.environ.get("CI", "").lower() in ("1", "true"):  # in CI a book that cannot be built is a failure
    import jupyter_book  # noqa: F401
else:
    pytest.importorskip("jupyter_book", reason="pip install -r requirements-test.txt (jupyter-book builds the book)")

TOOL = ROOT / "tools" / "build_book.py"
REF = "0123456789abcdef0123456789abcdef01234567"  # the version the Binder links name: any fixed commit will do
VERDICT = re.compile(r"holds with nuance|does not hold|\bholds\b(?! with)")
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")


def _tool():
    spec = importlib.util.spec_from_file_location("build_book", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(request, tmp_path_factory):
    """(the tool, the html folder, the executed notebooks): the book of this session's executions, or of those
    saved in $STATELAB_BOOK_EXECUTED (``OUT/executed`` of ``tools/build_book.py``: to work on the book alone)."""
    tool = _tool()
    if os.environ.get("STATELAB_BOOK_EXECUTED"):
        executed = tool.load_executed(Path(os.environ["STATELAB_BOOK_EXECUTED"]))
    else:
        notebook_runs = request.getfixturevalue("notebook_runs")  # only here: not when the saved ones are used
        notebook_runs.prefetch(NAMES)  # all at once, two kernels at a time, when this module runs alone
        runs = {name: notebook_runs.result(name) for name in NAMES}
        failed = [f"{name}: {run.failed} {run.error[:200]}" for name, run in runs.items() if run.executed is None]
        if failed:
            pytest.fail(f"not executed, so no book: {failed}")
        executed = {name: run.executed for name, run in runs.items()}
        # Each notebook ran in its own copy, with its own journal: 12 again, reading the rows' runs (03-11), as
        # the tool's own build does (issue 20: the capstone page said "0 of 9 rows measured").
        rows = [runs[name].workdir / ".statelab-evidence" for name in sorted(runs)
                if Path(name).name.startswith(tool.ROW_NOTEBOOKS) and runs[name].workdir is not None]
        capstone = next(name for name in runs if Path(name).name.startswith(tool.CAPSTONE))
        executed[capstone] = tool.execute_capstone(rows, tmp_path_factory.mktemp("capstone"))
    html_dir = tool.build(tmp_path_factory.mktemp("book"), executed=executed, ref=REF)
    return tool, html_dir, executed


class _Page(HTMLParser):
    """A page's text, ids, links (href/src) and images."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.images: list[dict] = []
        self.mermaid = 0
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for key in ("href", "src"):
            if a.get(key):
                self.links.append(a[key])
        if tag == "img":
            self.images.append(a)
        if tag == "pre" and "mermaid" in (a.get("class") or "").split():
            self.mermaid += 1
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


@functools.cache
def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def page_of(html_dir: Path, name: str) -> Path:
    return html_dir / Path(name).with_suffix(".html")


def output_numbers(nb) -> set[str]:
    """The numbers a notebook's run printed (stream outputs: measurements, verdicts, self-checks)."""
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.output_type == "stream")
    return set(NUMBER.findall(text))



def test_every_notebook_and_lab_has_a_page(built):
    tool, html_dir, _ = built
    assert (html_dir / "index.html").is_file()
    expected = [*NAMES, *(p.relative_to(ROOT).as_posix() for p in tool.STUDENT_LABS)]
    assert len(expected) >= 20, expected
    missing = [name for name in expected if not page_of(html_dir, name).is_file()]
    assert missing == [], f"no page for {missing}"
    assert (html_dir / "labs" / "README.html").is_file() and (html_dir / "instructors.html").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_an_executed_page_shows_its_measured_numbers(built, name):
    _, html_dir, executed = built
    numbers = output_numbers(executed[name])
    assert len(numbers) >= 3, f"{name} printed almost no numbers: {sorted(numbers)}"
    shown = set(NUMBER.findall(html.unescape(" ".join(parse(page_of(html_dir, name)).text))))
    assert numbers - shown == set(), f"{name}: numbers the run printed that its page lacks: {sorted(numbers - shown)}"


ROWS = [n for n in NAMES if re.match(r"notebooks/(0[3-9]|1[0-2])_", n)]  # the table's rows, and 12's scoreboard


@pytest.mark.parametrize("name", ROWS)
def test_a_row_page_shows_the_verdicts_its_run_computed(built, name):
    """Each half-verdict the run rendered ("holds with nuance", "does not hold") is on the page, as often."""
    _, html_dir, executed = built
    rendered = " ".join(str(v) for c in executed[name].cells for o in c.get("outputs", [])
                        for k, v in o.get("data", {}).items() if k in ("text/html", "text/markdown"))
    wanted = VERDICT.findall(html.unescape(re.sub(r"<[^>]+>", " ", rendered)))
    assert wanted, f"{name}: its run rendered no verdict"
    shown = VERDICT.findall(" ".join(parse(page_of(html_dir, name)).text))
    for verdict in set(wanted):
        assert shown.count(verdict) >= wanted.count(verdict), (name, verdict, wanted.count(verdict), shown)


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("notebooks/")])
def test_a_notebook_page_has_a_figure_with_alt_text(built, name):
    _, html_dir, _ = built
    page = parse(page_of(html_dir, name))
    figures = [i for i in page.images if i.get("src", "").startswith(("data:image/", "../_images/"))]
    assert figures or page.mermaid, f"{name}: no chart and no diagram on its page"
    assert all(i.get("alt", "").strip() for i in figures), f"{name}: a chart without alt text"


@pytest.mark.parametrize("name", NAMES)
def test_an_executed_page_says_when_and_where_it_was_measured_and_links_to_binder(built, name):
    tool, html_dir, executed = built
    text = " ".join(parse(page_of(html_dir, name)).text)
    when = tool.measured_at(executed[name])
    assert f"Measured {when} on {tool.machine()}" in text, f"{name}: no 'Measured {when} on ...' note"
    binder = tool.binder_url(name, REF)
    assert binder.startswith("https://mybinder.org/v2/gh/") and f"/{REF}?urlpath=lab/tree/{name}" in binder
    assert binder in parse(page_of(html_dir, name)).links, f"{name}: no Binder link to itself at {REF}"


def test_every_internal_link_resolves(built):
    _, html_dir, _ = built
    pages = sorted(p for p in html_dir.rglob("*.html") if "_static" not in p.relative_to(html_dir).parts)
    broken, checked = [], 0
    for path in pages:
        for link in parse(path).links:
            parts = urllib.parse.urlsplit(link)
            if parts.scheme or link.startswith(("//", "#", "data:", "mailto:", "javascript:")):
                continue
            checked += 1
            target = (path.parent / urllib.parse.unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{path.relative_to(html_dir)}: {link}")
            elif parts.fragment and target.suffix == ".html" and parts.fragment not in parse(target).ids:
                broken.append(f"{path.relative_to(html_dir)}: {link} (no such anchor)")
    assert checked > 100, f"only {checked} internal links found: the parser saw nothing"
    assert broken == [], f"{len(broken)} broken internal links: {broken[:20]}"


def test_the_pages_load_nothing_from_another_host(built):
    """Scripts, styles and images come from the book's own folder: it works offline and leaks no reader."""
    _, html_dir, _ = built
    outside = {link for path in html_dir.rglob("*.html")
               for link in re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?:)?//([^"/]+)', path.read_text())}
    assert outside == set(), outside


def test_the_capstone_page_shows_every_row_measured_by_this_build(built):
    """Issue 20: 12's page said "0 of 9 rows measured" and every verdict "not measured yet"."""
    _, html_dir, _ = built
    text = " ".join("".join(parse(page_of(html_dir, "notebooks/12_choosing")).text).split())
    source = page_of(html_dir, "notebooks/12_choosing").read_text()
    assert "9 of 9 rows measured" in source, re.findall(r"\d of 9 rows measured", source)
    corrected = text.split("table once more", 1)[1].split("Self-check", 1)[0]  # the section, not the contents
    assert "9 of 9 rows measured" in corrected and "not measured yet" not in corrected, corrected[:600]
    assert "filled by the build, from its own runs of notebooks 03 to 11" in text  # marked as the build's


def test_a_saved_dashboard_is_a_snapshot_with_no_dead_loopback_link(built):
    """Issue 20: saved dashboards linked to the run's 127.0.0.1 ports, dead on a book page."""
    _, html_dir, _ = built
    source = page_of(html_dir, "notebooks/00_start_here").read_text()
    assert "statelab dashboard" in source and "Interactive on Binder" in source
    assert not re.search(r'href=\\?"https?://127\.0\.0\.1', source)


def test_freeze_dashboards_unlinks_loopback_and_says_interactive_on_binder():
    import nbformat

    tool = _tool()
    nb = nbformat.v4.new_notebook()
    card = '<b>server-0</b> <a href="http://127.0.0.1:4567/" target="_blank">http://127.0.0.1:4567/ &#8599;</a>'
    title = "<b>statelab dashboard</b> 4 designs"
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {
        "a": {"state": {"value": card}}, "b": {"state": {"value": title}}, "c": {"state": {"value": 3}}}}}
    assert tool.freeze_dashboards(nb, "https://mybinder.org/v2/gh/x/y/HEAD") == 1
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert "127.0.0.1:4567/ &#8599;" in state["a"]["state"]["value"] and "href" not in state["a"]["state"]["value"]
    assert "Interactive on Binder" in state["b"]["state"]["value"] and state["c"]["state"]["value"] == 3


RAW_TABLE_ROW = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*\|", re.M)


def test_no_page_shows_a_raw_markdown_table_row(built):
    """Issue 20: Markdown tables printed by cells showed as raw pipes (``|---|``) unless MyST renders them."""
    _, html_dir, _ = built
    raw = {}
    for path in sorted(html_dir.rglob("*.html")):
        text = "".join(parse(path).text)
        rows = RAW_TABLE_ROW.findall(text)
        if rows or "|---|" in text:
            raw[path.relative_to(html_dir).as_posix()] = rows[:2] or ["|---|"]
    assert raw == {}, f"raw Markdown table rows on {raw}"
    assert "<table" in page_of(html_dir, "notebooks/00_start_here").read_text()


# --- in a real browser ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(built):
    """The book over HTTP on 127.0.0.1 (a free port), as a reader's browser gets it."""
    _, html_dir, _ = built
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(html_dir))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="book-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.browser
@pytest.mark.parametrize("name", ["index", "notebooks/00_start_here", "notebooks/04_fault_tolerance",
                                  "labs/solutions/01_survive_a_crash"])
def test_a_page_opens_in_chromium_with_no_console_error(served, built, page, name):
    """No console error, no failed request; the saved widgets render, the diagrams draw; axe-core finds no
    serious violation in the content (``page``: a fresh context of the module's Chromium, tests/conftest.py)."""
    from browser import axe, axe_blocking, screenshot

    _, html_dir, _ = built
    source = (html_dir / f"{name}.html").read_text()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.goto(f"{served}/{name}.html", wait_until="networkidle")
    diagrams = source.count('<pre class="mermaid">')
    if diagrams:
        page.wait_for_function(f"() => document.querySelectorAll('pre.mermaid svg').length >= {diagrams}",
                               timeout=30_000)
    if "application/vnd.jupyter.widget-state+json" in source:
        page.wait_for_selector(".jupyter-widgets", state="attached", timeout=30_000)
    page.wait_for_timeout(500)  # a late error from a script that finished loading
    screenshot(page, f"book-{name.replace('/', '-')}")
    assert problems == [], problems
    results = axe(page, "main")  # the page's own content: the theme's navigation is the theme's
    assert axe_blocking(results) == [], axe_blocking(results)


@pytest.mark.browser
def test_a_quiz_on_a_book_page_answers_a_click_without_a_kernel(served, page):
    """Issue 20: on the book's pages a click on a quiz did nothing; the answers are in the saved HTML now."""
    from playwright.sync_api import expect

    from browser import screenshot

    page.goto(f"{served}/notebooks/00_start_here.html", wait_until="networkidle")
    answers = page.locator("details.statelab-quiz-answers").first
    answers.wait_for(state="attached", timeout=30_000)
    answers.scroll_into_view_if_needed()
    right = answers.locator("li").filter(has_text="\u2713 Right.")
    expect(right).to_be_hidden()
    answers.locator("summary").click()
    expect(right).to_be_visible(timeout=5_000)
    expect(answers.locator("li")).to_have_count(answers.locator("li").count())
    screenshot(answers, "book-00-quiz-answered")


@pytest.mark.browser
@pytest.mark.parametrize("name", ["notebooks/12_choosing", "notebooks/13_into_production"])
def test_capstone_pages_screenshots(served, built, page, name):
    """Evidence for a person: 12's and 13's pages as a reader sees them (tables rendered, not pipes)."""
    from browser import screenshot

    page.goto(f"{served}/{name}.html", wait_until="networkidle")
    page.wait_for_timeout(1000)
    screenshot(page, f"book-{name.replace('/', '-')}-full", full_page=True)
    assert "|---|" not in page.locator("main").inner_text()


def test_the_readme_links_the_published_book_and_shows_the_dashboard():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    readme = (ROOT / "README.md").read_text()
    assert f"]({urls['Documentation']})" in readme, "the README links the published book (pyproject's Documentation)"
    workflow = (ROOT / ".github" / "workflows" / "book.yml").read_text()
    assert "python tools/build_book.py" in workflow and "requirements-book.txt" in workflow
    images = re.findall(r"!\[([^\]]+)\]\(([^)]+\.png)\)", readme)
    assert any("dashboard" in alt and (ROOT / src).is_file() for alt, src in images), images


def test_a_book_missing_an_execution_is_refused_by_name(tmp_path):
    tool = _tool()
    executed = {name: None for name in NAMES if name != "notebooks/04_fault_tolerance.ipynb"}
    with pytest.raises(tool.BookError, match="not executed, so the book would lack them: "
                                             "notebooks/04_fault_tolerance.ipynb$"):
        tool.stage(tmp_path, executed, REF, "this machine")
