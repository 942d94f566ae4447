"""Shared fixtures: real statelab servers on loopback, and a guard against leaked threads.

Kept small on purpose: every test module of the project loads it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

# The helpers every room imports by name (kernels, browser, prose, and this conftest's own functions): found from
# tests/<room>/ as from tests/, whatever import mode pytest uses.
sys.path.insert(0, str(Path(__file__).resolve().parent))
# Charts draw off screen in every test: set once, here, for this process only. Not through MPLBACKEND: kernels the
# tests start inherit the environment, and a kernel with MPLBACKEND=Agg shows no chart at all (ipykernel sets its
# inline backend only when MPLBACKEND is unset), which the book and the browser tests would then miss.
import matplotlib  # noqa: E402

matplotlib.use("Agg")

# Tests must never read or write the user's own Jupyter and IPython settings. Set at import time,
# before anything imports jupyter_core, so kernels started by nbclient/nbval inherit it too.
_TEMP_BEFORE = {p.name for p in Path(tempfile.gettempdir()).glob("statelab-*")}  # judged at the session's end
_JUPYTER_HOME = tempfile.mkdtemp(prefix="statelab-tests-jupyter-")
from statelab.kernel import use_private_jupyter_home  # noqa: E402  (imports no Jupyter module)

use_private_jupyter_home(_JUPYTER_HOME)

import statelab as sl  # noqa: E402  (after the environment above)


def statelab_threads() -> list[threading.Thread]:
    """Live threads that statelab started (its threads are all named ``statelab-...``)."""
    return [t for t in threading.enumerate() if t.name.startswith("statelab-") and t.is_alive()]


@pytest.fixture(autouse=True, scope="module")
def _no_statelab_thread_survives():
    """Whatever a test module starts, it stops: no statelab thread outlives the module."""
    yield
    deadline = time.monotonic() + 2.0
    while statelab_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    left = [t.name for t in statelab_threads()]
    if left:
        sl.stop_all()  # do not let one leaky module fail every module after it
    assert not left, f"statelab threads still running after the module: {left}"


@pytest.fixture
def stateful():
    """One stateful server with in-memory sessions, stopped after the test."""
    with sl.Server("stateful") as server:
        server.start()
        yield server


@pytest.fixture
def stateless():
    """One stateless (JWT) server, stopped after the test."""
    with sl.Server("stateless") as server:
        server.start()
        yield server


@pytest.fixture
def cluster():
    """Factory: ``cluster(servers=3, mode=..., ...)`` starts a Cluster; all are stopped after the test."""
    started: list[sl.Cluster] = []

    def make(*args, **kwargs) -> sl.Cluster:
        c = sl.Cluster(*args, **kwargs)
        started.append(c)
        return c

    yield make
    for c in started:
        c.stop()



# --- browser fixtures shared by the browser test modules (tests/browser.py has the helpers) -------
@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for one test module (skipped without one; a failure under STATELAB_REQUIRE_BROWSER=1)."""
    from browser import chromium, require_browser

    require_browser()
    with chromium() as running:
        yield running


@pytest.fixture
def page(browser):
    """A fresh page in its own browser context (own cookies) at the design's 1280 px width, closed after."""
    from browser import VIEWPORT

    context = browser.new_context(viewport=VIEWPORT)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a copy of notebooks/ (autosave or a kernel never touches the repo's files), for the
    browser tests of one module; a module that needs another folder defines its own ``lab``."""
    import shutil

    from browser import NOTEBOOKS, jupyter_lab, require_browser

    require_browser()
    tmp = tmp_path_factory.mktemp("lab")
    shutil.copytree(NOTEBOOKS, tmp / "notebooks")
    with jupyter_lab(tmp / "notebooks", tmp / "home") as running:
        yield running


# --- sharing the work between pytest-xdist's workers (pyproject.toml: -n auto) --------------------------------------
# A unit of work is a test file, except that every test that judges executed notebooks is in one unit,
# NOTEBOOK_RUNS, so that notebook_runs executes each notebook once, in one worker. The controller hands units out
# by node id alone (it collects nothing), hence the rule by file below; each worker checks it against what its
# tests really ask for (pytest_collection_modifyitems), so a new test that judges a notebook elsewhere fails at
# once instead of executing every notebook a second time.
# (Not xdist's own --dist loadgroup: with pytest 9.2 its group marks have no effect, measured: xdist 3.8 renames
# item._nodeid, which pytest 9.2 no longer reads, and each file's tests were spread over both workers.)
NOTEBOOK_RUNS = "notebook-runs"
_NOTEBOOK_FILES = ("tests/notebooks/test_book.py", "tests/notebooks/test_notebooks.py",
                   "tests/notebooks/test_core_cells.py", "tests/notebooks/test_prose.py")
_NOTEBOOK_TESTS = ("tests/notebooks/test_labs.py::test_solution_passes_every_check",)
WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ... in a worker; None in the controller or a plain run
_ROOT = Path(__file__).resolve().parent.parent
# Units are handed out longest first, so that no long one starts last while the other worker waits (seconds each
# took in a serial run on the 2-core machine): the notebooks' kernels and the tests that judge them (about 215 s),
# the labs' checkers (106 s), the browser's Run All (82 s), the fresh Binder install (40 s), then room by room.
_FIRST = (NOTEBOOK_RUNS, "tests/notebooks/test_labs.py", "tests/browser/test_browser_all.py",
          "tests/production/test_binder.py", "tests/browser/", "tests/production/", "tests/experiments/",
          "tests/notebooks/", "tests/http/", "tests/unit/")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: a worker per CPU this process may use (logical ones: a 2-vCPU machine gets two, where xdist's
    default counts physical cores), at most 4 (one unit holds every notebook; more workers only add JupyterLabs
    and Chromiums). ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when it is set; ``-n 0`` runs in one process."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cpus))


def unit_of(nodeid: str) -> str:
    """The unit of work of a test, from its node id (``tests/room/test_x.py::test_y[param]``)."""
    path, _, name = nodeid.partition("::")
    if path in _NOTEBOOK_FILES or f"{path}::{name.split('[')[0]}" in _NOTEBOOK_TESTS:
        return NOTEBOOK_RUNS
    return path


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """pytest-xdist's controller: hand out whole units (``unit_of``), in collection order (longest first)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    config.option.loadscopereorder = False  # keep this file's order, not "most tests first"
    return ByUnit(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long units first (``_FIRST``); and every test that asks for notebook_runs is in NOTEBOOK_RUNS."""
    strays = [item.nodeid for item in items
              if "notebook_runs" in getattr(item, "fixturenames", ()) and unit_of(item.nodeid) != NOTEBOOK_RUNS]
    if strays:
        raise pytest.UsageError(f"tests that judge executed notebooks outside tests/conftest.py's NOTEBOOK_RUNS unit "
                                f"(add their file to _NOTEBOOK_FILES or _NOTEBOOK_TESTS): {strays[:5]}")

    def rank(item: pytest.Item) -> int:
        name = unit_of(item.nodeid)
        return next((i for i, first in enumerate(_FIRST) if name.startswith(first)), len(_FIRST))

    items.sort(key=rank)  # stable: a file's tests keep their order


def pytest_sessionfinish(session: pytest.Session) -> None:
    sl.stop_all()
    shutil.rmtree(_JUPYTER_HOME, ignore_errors=True)
    if WORKER:  # judged once, by the controller, when every worker has finished
        return
    left = _statelab_temp_left()
    if left:
        print(f"\nstatelab folders left in {tempfile.gettempdir()} by this run: {left}")
        if os.environ.get("CI"):  # in CI the run is alone on the machine: a folder left is ours, and a failure
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _statelab_temp_left(seconds: float = 5.0) -> list[str]:
    """``statelab-*`` entries of the temp folder that this run made and nothing removed (guards get a moment)."""
    deadline = time.monotonic() + seconds
    while True:
        left = sorted({p.name for p in Path(tempfile.gettempdir()).glob("statelab-*")} - _TEMP_BEFORE)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)
