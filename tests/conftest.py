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
# The order units are handed out in. The notebook unit first: its kernels keep about 1.6 cores busy for three
# minutes, so the next units are the light ones that mostly wait on sockets and timers (http/, experiments/),
# which the other worker runs beside it. Then the heavy units, longest first (seconds in a CI run on the 2-core
# machine: the labs' checkers 144 s, the browser's Run All 101 s, the hub 42 s), so that no long one starts last
# while the other worker waits; unit/ then, small units that fill the end. (Heavy units first and the light rooms
# last, measured: the last two minutes kept only 1.0-1.6 cores busy, and the run took 626 s, not 535 s.)
# The fresh Binder install's test goes last: its install runs in the background from the start (FRESH_BINDER_TEST).
_FIRST = (NOTEBOOK_RUNS, "tests/http/", "tests/experiments/", "tests/notebooks/test_labs.py",
          "tests/browser/test_browser_all.py", "tests/production/test_hub.py", "tests/browser/",
          "tests/production/", "tests/notebooks/", "tests/unit/")
_LAST = ("tests/production/test_binder.py",)


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
        if name in _LAST:
            return len(_FIRST) + 1
        return next((i for i, first in enumerate(_FIRST) if name.startswith(first)), len(_FIRST))

    items.sort(key=rank)  # stable: a file's tests keep their order


# --- the fresh Binder environment (tests/production/test_binder.py): installed in the background, judged last
FRESH_BINDER_TEST = ("tests/production/test_binder.py::"
                     "test_fresh_binder_environment_starts_a_kernel_that_finds_every_import")
_FRESH_BINDER = pytest.StashKey[object]()


def _fresh_install(folder: Path, *, start: bool):
    """tests/production/test_binder.py's FreshInstall, also where that file was not collected (xdist's controller)."""
    import importlib.util

    module = sys.modules.get("test_binder")
    if module is None or not hasattr(module, "FreshInstall"):
        spec = importlib.util.spec_from_file_location("statelab_tests_binder", _ROOT / FRESH_BINDER_TEST.split("::")[0])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.FreshInstall(folder, start=start)


def _binder_folder(testrunuid: str) -> Path:
    """Where xdist's controller installs it: named by the run's id (random), which only this run's workers know."""
    return Path(tempfile.gettempdir()) / f"statelab-binder-{testrunuid}"


def pytest_collection_finish(session: pytest.Session) -> None:
    """A run in one process: when the fresh-Binder test is selected, start its install now, in the background."""
    if WORKER or session.config.option.collectonly or _FRESH_BINDER in session.config.stash:
        return
    if any(item.nodeid == FRESH_BINDER_TEST for item in session.items):
        folder = Path(tempfile.mkdtemp(prefix="statelab-binder-"))
        session.config.stash[_FRESH_BINDER] = _fresh_install(folder, start=True)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids) -> None:
    """pytest-xdist's controller: when the first worker's collection holds the fresh-Binder test, start its install
    here, once (every worker collects every test); the worker that runs the test watches its folder."""
    config = node.config
    if _FRESH_BINDER in config.stash or config.option.collectonly or FRESH_BINDER_TEST not in ids:
        return
    folder = _binder_folder(node.workerinput["testrunuid"])
    folder.mkdir(mode=0o700)  # fails if it exists: nobody else may have made it first
    config.stash[_FRESH_BINDER] = _fresh_install(folder, start=True)


@pytest.fixture(scope="session")
def fresh_binder_install(request: pytest.FixtureRequest):
    """binder/ being installed into a fresh virtualenv since collection (test_binder.py's FreshInstall): started by
    this process, or under pytest-xdist by the controller, whose folder this worker watches."""
    config = request.config
    if _FRESH_BINDER not in config.stash:
        if WORKER:
            folder = _binder_folder(config.workerinput["testrunuid"])
            if not folder.is_dir():
                pytest.fail(f"pytest-xdist's controller started no Binder install in {folder}")
            config.stash[_FRESH_BINDER] = _fresh_install(folder, start=False)
        else:
            config.stash[_FRESH_BINDER] = _fresh_install(Path(tempfile.mkdtemp(prefix="statelab-binder-")),
                                                          start=True)
    return config.stash[_FRESH_BINDER]


def pytest_sessionfinish(session: pytest.Session) -> None:
    install = session.config.stash.get(_FRESH_BINDER, None)
    if install is not None and not WORKER:  # the process that started it stops it and removes its folder
        install.close()
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
