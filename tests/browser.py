"""Helpers for browser tests: a throwaway JupyterLab, headless Chromium, and "open, Run All, look for trouble".

Browser tests meet what a learner meets: JupyterLab renders the notebook, the kernel runs every cell, the
widgets draw in a real page and real clicks reach the kernel. Everything runs in a temporary folder: a copy of
the notebooks (autosave or kernel output never touches the repo) and Jupyter/IPython directories of our own
(the test never reads or writes the user's settings).

    with jupyter_lab(copy_of_notebooks, tmp) as lab, chromium() as browser:
        page = browser.new_page(viewport=VIEWPORT)
        open_and_run_all(page, lab.url, "00_start_here.ipynb")
        assert collect_problems(page) == []
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from statelab.kernel import jupyter_home

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
# The notebooks opened in a real browser (JupyterLab, Run All): the start page with its dashboard clicked through
# (test_browser.py); notebook 01 (the only one with a checkbox), one row notebook with a cluster dashboard and
# plots, notebook 05 (the distance control of a cluster whose store is behind a network link), and one lab
# solution (test_browser_all.py). Every notebook is executed in a kernel by tests/kernels.py;
# test_notebooks.py checks that these few show every kind of output (MIME type, widget model) that any notebook
# shows, so what a browser could get wrong about the rest is rendered here too.
START_HERE = "notebooks/00_start_here.ipynb"
BROWSER_NOTEBOOKS = (START_HERE, "notebooks/01_stateful_sessions.ipynb", "notebooks/04_fault_tolerance.ipynb",
                     "notebooks/05_performance.ipynb", "labs/solutions/01_survive_a_crash.ipynb")
ARTIFACTS = ROOT / "test-artifacts"  # gitignored: screenshots and logs a failing CI run leaves behind
CHROMIUM = Path(os.environ.get("STATELAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1280, "height": 900}  # the design promises a readable dashboard at 1280 px

# Settings of the throwaway JupyterLab, written under its own JUPYTER_CONFIG_DIR: no news toast and no update
# check (both would reach the internet and cover the page), no autosave (the copy stays as the kernel left it).
USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}
# No "build recommended" prompt: it is page configuration, not a setting (jupyterlab reads labconfig/).
PAGE_CONFIG = {"buildCheck": False, "buildAvailable": False,
               # nbgrader (a test dependency, for the labs) adds its own panels and server calls to
               # every JupyterLab in the environment; the browser tests are about our notebooks.
               "disabledExtensions": {"@jupyter/nbgrader": True}}
SERVER_CONFIG = {"ServerApp": {"jpserver_extensions": {
    f"nbgrader.server_extensions.{name}": False
    for name in ("formgrader", "validate_assignment", "assignment_list", "course_list")}}}

# Console errors that say nothing about our notebooks, as (pattern, the reason it is safe to ignore). Empty on
# purpose: JupyterLab 4.6 + ipywidgets 8.1 log no console error for our notebooks. Add one only with its reason.
BENIGN_CONSOLE: list[tuple[re.Pattern[str], str]] = []


def missing_browser() -> str | None:
    """Why browser tests cannot run here, or None when Chromium and playwright are both available."""
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install -r requirements-test.txt)"
    return None


def require_browser() -> None:
    """Skip the calling test when there is no browser, or fail it when STATELAB_REQUIRE_BROWSER=1 (CI)."""
    reason = missing_browser()
    if reason is None:
        return
    if os.environ.get("STATELAB_REQUIRE_BROWSER") == "1":
        pytest.fail(f"STATELAB_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


# --- JupyterLab -------------------------------------------------------------------------------------------------

@dataclass
class Lab:
    """A running JupyterLab: ``url`` carries the token (``http://127.0.0.1:PORT/lab?token=...``)."""

    url: str
    base: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen

    def api(self, path: str, method: str = "GET") -> Any:
        """Call the Jupyter server's REST API (``/api/...``) with the token; the JSON answer."""
        request = urllib.request.Request(f"{self.base}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def jupyter_env(home: Path) -> dict[str, str]:
    """Environment for Jupyter and its kernels with every config/data/runtime directory inside ``home``."""
    env = {**os.environ, **jupyter_home(home)}
    env.pop("JUPYTERLAB_SETTINGS_DIR", None)  # user settings then live under our JUPYTER_CONFIG_DIR
    env.pop("JUPYTERLAB_WORKSPACES_DIR", None)
    config = home / "config"
    for plugin, values in USER_SETTINGS.items():
        path = config / "lab" / "user-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))
    (config / "labconfig").mkdir(exist_ok=True)
    (config / "labconfig" / "page_config.json").write_text(json.dumps(PAGE_CONFIG))
    (config / "jupyter_server_config.json").write_text(json.dumps(SERVER_CONFIG))
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def jupyter_lab(root: Path, home: Path, startup_timeout: float = 60) -> Iterator[Lab]:
    """Run JupyterLab on 127.0.0.1 (a free port, a random token) serving ``root``; stop it and its kernels after.

    ``home`` is a temporary folder for Jupyter's own directories and the server log.
    """
    env = jupyter_env(home)
    token = secrets.token_hex(16)
    log = home / "jupyterlab.log"
    for _attempt in range(3):  # another program may grab the free port before the server binds it
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                   f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
                   f"--ServerApp.root_dir={root}"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")  # JupyterLab refuses root without it; learners do not run as root
        with open(log, "wb") as out:
            process = subprocess.Popen(command, env=env, cwd=root, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT)
        lab = Lab(f"{base}/lab?token={token}", base, token, root, log, process)
        if _wait_until_up(lab, startup_timeout):
            break
        _stop(lab)
        if "already in use" not in lab.log_tail():
            raise RuntimeError(f"JupyterLab did not start within {startup_timeout:.0f} s:\n{lab.log_tail()}")
    else:
        raise RuntimeError(f"JupyterLab found no free port:\n{lab.log_tail()}")
    try:
        yield lab
    finally:
        _stop(lab)
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copyfile(log, ARTIFACTS / "jupyterlab.log")


def _wait_until_up(lab: Lab, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and lab.process.poll() is None:
        try:
            lab.api("/api/status")
            return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    return False


def _stop(lab: Lab) -> None:
    """Shut JupyterLab down the way a user would (kernels included), then make sure the process is gone."""
    if lab.process.poll() is None:
        try:
            lab.api("/api/shutdown", method="POST")
            lab.process.wait(timeout=15)
        except (urllib.error.URLError, ConnectionError, TimeoutError, subprocess.TimeoutExpired):
            lab.process.terminate()
            try:
                lab.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                lab.process.kill()
                lab.process.wait()


# --- Chromium -----------------------------------------------------------------------------------------------------

@contextmanager
def chromium() -> Iterator[Any]:
    """Headless Debian Chromium driven by playwright (never a browser downloaded by ``playwright install``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


_console: dict[Any, list[str]] = {}


def watch_console(page: Any) -> list[str]:
    """Start recording the page's console errors and uncaught exceptions (``collect_problems`` reports them)."""
    if page not in _console:
        seen: list[str] = []
        _console[page] = seen
        page.on("console", lambda msg: seen.append(f"console error: {msg.text}") if msg.type == "error" else None)
        page.on("pageerror", lambda error: seen.append(f"uncaught exception in the page: {error}"))
        page.on("close", lambda _page: _console.pop(page, None))
    return _console[page]


def notebook_url(lab_url: str, notebook: str) -> str:
    """``/lab/tree/<notebook>?reset`` on the server of ``lab_url``, keeping its token."""
    parts = urllib.parse.urlsplit(lab_url)
    prefix = parts.path.split("/lab", 1)[0].rstrip("/")
    query = [("reset", "")] + [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k == "token"]
    path = f"{prefix}/lab/tree/{urllib.parse.quote(notebook)}"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, urllib.parse.urlencode(query), ""))


STATUS_BAR = "#jp-main-statusbar"
CODE_PROMPTS = ".jp-Notebook .jp-CodeCell .jp-InputPrompt"
ERROR_OUTPUT = ('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"],'
                ' .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')

# Done when the kernel is idle, no cell waits ("[*]"), and either every code cell shows a number newer than before
# Run All, or something went to stderr (JupyterLab stops a Run All at the first error: the cells after it never get
# a number, and an error renders as stderr output).
_RUN_FINISHED = """([before, prompts, status, errors]) => {
  const idle = (document.querySelector(status)?.textContent ?? "").includes("| Idle");
  const texts = [...document.querySelectorAll(prompts)].map(p => p.textContent);
  if (!idle || texts.length === 0 || texts.some(t => t.startsWith("[*]"))) return false;
  if (document.querySelector(errors)) return true;
  return texts.every(t => Number((t.match(/^\\[(\\d+)\\]/) ?? [])[1] ?? -1) > before);
}"""


def _execution_counts(page: Any) -> list[int]:
    texts = page.locator(CODE_PROMPTS).all_text_contents()
    return [int(m.group(1)) for t in texts if (m := re.match(r"\[(\d+)\]", t))]


def open_and_run_all(page: Any, lab_url: str, notebook: str, timeout_s: float = 90) -> None:
    """Open ``notebook`` in JupyterLab, wait for its kernel, Run All Cells from the menu, and wait until every
    code cell has run and the kernel is idle again (or an error output shows up: see ``collect_problems``)."""
    from playwright.sync_api import expect

    watch_console(page)
    page.goto(notebook_url(lab_url, notebook))
    # The status bar's "| Idle" is the kernel really being ready; the toolbar's indicator says idle too early,
    # and a Run All before this starts a second kernel.
    expect(page.locator(STATUS_BAR)).to_contain_text("| Idle", timeout=timeout_s * 1000)
    expect(page.locator(CODE_PROMPTS).first).to_be_visible()
    before = max(_execution_counts(page), default=0)
    page.locator("#jp-MainMenu").get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_for_function(_RUN_FINISHED, arg=[before, CODE_PROMPTS, STATUS_BAR, ERROR_OUTPUT],
                           timeout=timeout_s * 1000, polling=100)
    # Widget views render a moment after their cell finished: wait until none says it is still loading.
    page.wait_for_function("() => !document.body.innerText.includes('Loading widget')", timeout=10_000)


def collect_problems(page: Any) -> list[str]:
    """Everything on the page a learner should never see: tracebacks and error outputs, widgets that failed to
    render, cells that did not run, and console errors (minus the known benign ones in ``BENIGN_CONSOLE``)."""
    problems: list[str] = []
    for text in page.locator(ERROR_OUTPUT).all_text_contents():
        problems.append(f"stderr or error output: {text.strip()[:800]}")
    for text in page.locator(".jp-OutputArea-output").all_text_contents():
        if "Traceback (most recent call last)" in text and not any(text.strip()[:800] in p for p in problems):
            problems.append(f"traceback in an output: {text.strip()[:800]}")
        if "Error displaying widget" in text or "Error rendering" in text:
            problems.append(f"a widget failed to render: {text.strip()[:300]}")
    for text in page.locator(".Toastify__toast-container .Toastify__toast").all_inner_texts():
        problems.append(f"a notification toast covers the page: {text.strip()[:300]}")
    prompts = page.locator(CODE_PROMPTS).all_text_contents()
    unrun = [i for i, t in enumerate(prompts) if not re.match(r"\[\d+\]", t)]
    if unrun:
        problems.append(f"code cells {unrun} did not run (prompts {[prompts[i] for i in unrun]})")
    for message in watch_console(page):
        if not any(pattern.search(message) for pattern, _reason in BENIGN_CONSOLE):
            problems.append(message)
    return problems


def screenshot(target: Any, name: str, **options: Any) -> Path | None:
    """Save a PNG of a page (or of one element: a locator) under test-artifacts/ (gitignored); its path.

    A screenshot is evidence for a person, not a check: when Chromium cannot take one (it answered "Unable to
    capture screenshot" once, on a busy machine, for a tab about to close) the test goes on and this returns None.
    """
    from playwright.sync_api import Error as PlaywrightError

    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    try:
        target.screenshot(path=str(path), **options)
    except PlaywrightError as error:
        print(f"no screenshot {name}: {error}")
        return None
    return path


# --- accessibility ----------------------------------------------------------------------------------------------

#: axe-core impacts that fail a scan.
AXE_BLOCKING = ("serious", "critical")


def axe(page: Any, selector: str) -> dict:
    """axe-core's violations within ``selector`` (each match scrolled into view first, so it is painted), with
    axe.min.js as the pip package axe-playwright-python ships it: no network."""
    try:
        import axe_playwright_python
    except ImportError:
        pytest.fail("axe-playwright-python is not installed (pip install -r requirements-test.txt)")
    for element in page.locator(selector).all():
        element.scroll_into_view_if_needed()
    page.add_script_tag(content=(Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text("utf-8"))
    return page.evaluate("async (s) => await axe.run({include: [[s]]}, {resultTypes: ['violations']})", selector)


def axe_blocking(results: dict) -> list[str]:
    """The violations that fail a scan, one line each."""
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:4]}"
            for v in results["violations"] if v["impact"] in AXE_BLOCKING]
