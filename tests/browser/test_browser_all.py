"""A few notebooks and a lab solution in a real JupyterLab in headless Chromium: Run All, no trouble, clicks work.

Every notebook and lab solution is executed in a kernel once per run (tests/kernels.py). A browser adds what a
learner meets on top of that: widgets that render (no "Error displaying widget"), no console error, no traceback
in any output, clicks that reach the kernel. That is checked on a representative set (tests/browser.py:
BROWSER_NOTEBOOKS): the start page with its dashboard clicked through (test_browser.py), and here one row
notebook with a cluster dashboard and plots and notebook 01 (Run All, then a Kill click on the first dashboard),
and one lab solution (Run All). A test
in test_notebooks.py checks that these show every kind of output (MIME type, widget model) that any notebook
shows, so the others hold nothing a browser has not rendered here.

The dashboard is also checked once in the Notebook 7 interface (``/notebooks/...``), which some learners and
JupyterHub deployments use instead of JupyterLab: it renders and a Kill click reaches the kernel.
Times per notebook go to test-artifacts/browser-times.txt.
"""

from __future__ import annotations

import re
import shutil
import time
import urllib.parse

import pytest

from browser import (
    ARTIFACTS,
    BROWSER_NOTEBOOKS,
    CODE_PROMPTS,
    ROOT,
    START_HERE,
    axe,
    axe_blocking,
    collect_problems,
    jupyter_lab,
    open_and_run_all,
    require_browser,
    screenshot,
    watch_console,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# test_browser.py opens the start page in JupyterLab and clicks its dashboard through; here, the others
RUN_ALL = [name for name in BROWSER_NOTEBOOKS if name != START_HERE]
WAIT_MS = 15_000  # a click travels page -> kernel -> widget state -> page; seconds on a busy 2-core machine

# Console errors of the Notebook 7 interface itself, as (pattern, the reason it is safe to ignore). They show on
# every Notebook 7 page, /tree with no notebook open included, with or without our extensions and settings.
NOTEBOOK7_BENIGN = [
    (re.compile(r"Cannot read properties of undefined \(reading 'schema'\)"),
     "Notebook 7.6's bundled shortcuts plugin reads the schema of a settings plugin it does not load"),
    (re.compile(r"Command 'filebrowser:open-path' not registered"),
     "now and then on a busy machine: Notebook 7's file-browser restore runs on the first route before the "
     "file-browser plugin has registered that command (a race at page load; nothing is left undone)"),
]
SECONDS: dict[str, float] = {}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One JupyterLab for the module, serving a copy of notebooks/ and labs/ (the repo's files stay untouched)."""
    require_browser()
    tmp = tmp_path_factory.mktemp("all")
    root = tmp / "root"
    for folder in ("notebooks", "labs"):
        if (ROOT / folder).is_dir():
            shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    start = time.perf_counter()
    with jupyter_lab(root, tmp / "home") as running:
        yield running
    _write_times(time.perf_counter() - start)


def _write_times(total: float) -> None:
    lines = [f"{seconds:6.1f} s  {name}" for name, seconds in SECONDS.items()]
    lines.append(f"{sum(SECONDS.values()):6.1f} s  sum of {len(SECONDS)} notebooks; {total:.1f} s with JupyterLab")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "browser-times.txt").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))


def _shut_down_kernels(lab) -> None:
    """End every session (and its kernel, and the servers it started) so the next notebook starts alone."""
    for session in lab.api("/api/sessions"):
        lab.api(f"/api/sessions/{session['id']}", method="DELETE")


def test_found_the_notebooks_to_open():
    assert RUN_ALL, "no notebook to open in the browser"
    missing = [name for name in BROWSER_NOTEBOOKS if not (ROOT / name).is_file()]
    assert not missing, f"BROWSER_NOTEBOOKS names files that do not exist: {missing}"
    assert any(n.startswith("labs/solutions/") for n in RUN_ALL) and any(n.startswith("notebooks/") for n in RUN_ALL)


def _first_server_card(page):
    """The first server card (an innermost box with a Kill button) of the first dashboard on the page."""
    dashboard = page.locator(".jp-OutputArea-output").filter(has_text="statelab dashboard").first
    dashboard.scroll_into_view_if_needed()
    card = dashboard.locator(".widget-vbox").filter(has=page.get_by_role("button", name="Kill", exact=True)) \
        .filter(has_not=page.locator(".widget-vbox")).first
    return card


def _kill_from_the_card(page, card) -> None:
    from playwright.sync_api import expect

    expect(card).to_contain_text("alive")
    card.get_by_role("button", name="Kill", exact=True).click()
    expect(card).to_contain_text("down", timeout=WAIT_MS)
    expect(card.get_by_role("button", name="Kill", exact=True)).to_be_disabled()


@pytest.mark.parametrize("notebook", RUN_ALL)
def test_runs_clean_in_jupyterlab(lab, page, notebook):
    """Run All shows no trouble and axe-core no serious violation in the outputs; in a notebook of notebooks/, a
    Kill click on its first dashboard reaches the kernel."""
    start = time.perf_counter()
    try:
        open_and_run_all(page, lab.url, notebook)
        problems = collect_problems(page)
        if problems:
            screenshot(page, "all-" + notebook.replace("/", "-"), full_page=True)
        assert problems == [], f"{notebook} in JupyterLab"
        results = axe(page, ".jp-OutputArea-output")  # our outputs: JupyterLab's own chrome is not ours to fix
        assert axe_blocking(results) == [], f"axe-core in {notebook}: {axe_blocking(results)}"
        if notebook.startswith("notebooks/"):  # each lesson has a dashboard
            card = _first_server_card(page)
            _kill_from_the_card(page, card)
            screenshot(page, "clicked-" + notebook.replace("/", "-"))
            assert collect_problems(page) == [], f"{notebook} after a Kill click"
    finally:
        SECONDS[notebook] = time.perf_counter() - start
        _shut_down_kernels(lab)


# --- Notebook 7 ---------------------------------------------------------------------------------------------------

_NB7_FINISHED = """([before, prompts]) => {
  const status = document.querySelector(".jp-Notebook-ExecutionIndicator")?.getAttribute("data-status");
  const texts = [...document.querySelectorAll(prompts)].map(p => p.textContent);
  if (status !== "idle" || texts.length === 0 || texts.some(t => t.startsWith("[*]"))) return false;
  if (document.querySelector(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")) return true;
  return texts.every(t => Number((t.match(/^\\[(\\d+)\\]/) ?? [])[1] ?? -1) > before);
}"""


def _kernel_idle(lab, path: str) -> bool:
    sessions = [s for s in lab.api("/api/sessions") if s.get("path") == path]
    return bool(sessions) and sessions[0]["kernel"]["execution_state"] == "idle"


def test_dashboard_works_in_notebook_7(lab, page):
    """The classic-style Notebook 7 interface: Run All, the dashboard renders, a Kill click changes its card."""
    from playwright.sync_api import expect

    pytest.importorskip("notebook", minversion="7", reason="Notebook 7 is not installed (pip install 'notebook>=7')")
    notebook = START_HERE
    start = time.perf_counter()
    seen = watch_console(page)
    try:
        page.goto(f"{lab.base}/notebooks/{urllib.parse.quote(notebook)}?token={lab.token}")
        expect(page.locator(CODE_PROMPTS).first).to_be_visible(timeout=60_000)
        # Notebook 7 has no status bar: ask the server whether the kernel is up and idle before Run All.
        deadline = time.monotonic() + 60
        while not _kernel_idle(lab, notebook):
            assert time.monotonic() < deadline, "the kernel of the Notebook 7 page did not become idle"
            time.sleep(0.1)
        page.locator("#jp-MainMenu").get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        page.wait_for_function(_NB7_FINISHED, arg=[0, CODE_PROMPTS], timeout=90_000, polling=100)
        page.wait_for_function("() => !document.body.innerText.includes('Loading widget')", timeout=10_000)

        card = _first_server_card(page)
        _kill_from_the_card(page, card)
        screenshot(page, "notebook7-00_start_here")

        seen[:] = [m for m in seen if not any(p.search(m) for p, _reason in NOTEBOOK7_BENIGN)]
        assert collect_problems(page) == [], "00_start_here.ipynb in Notebook 7"
    finally:
        SECONDS[f"{notebook} (Notebook 7)"] = time.perf_counter() - start
        _shut_down_kernels(lab)
