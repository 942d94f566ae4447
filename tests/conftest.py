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


# --- the fresh Binder environment (tests/production/test_binder.py): installed in the background, judged last
_FRESH_BINDER = pytest.StashKey[object]()
_FRESH_BINDER_TEST = "test_fresh_binder_environment_starts_a_kernel_that_finds_every_import"


def pytest_collection_finish(session: pytest.Session) -> None:
    """When the fresh-Binder test is selected: run it last, and start its install now, in the background."""
    fresh = [item for item in session.items if item.name == _FRESH_BINDER_TEST]
    if not fresh or session.config.option.collectonly:
        return
    session.items[:] = [item for item in session.items if item not in fresh] + fresh
    from test_binder import FreshInstall

    session.config.stash[_FRESH_BINDER] = FreshInstall(Path(tempfile.mkdtemp(prefix="statelab-binder-")))


@pytest.fixture(scope="session")
def fresh_binder_install(request: pytest.FixtureRequest):
    """binder/ being installed into a fresh virtualenv since collection (tests/production/test_binder.py's
    FreshInstall)."""
    if _FRESH_BINDER not in request.config.stash:
        from test_binder import FreshInstall

        request.config.stash[_FRESH_BINDER] = FreshInstall(Path(tempfile.mkdtemp(prefix="statelab-binder-")))
    return request.config.stash[_FRESH_BINDER]


def pytest_sessionfinish(session: pytest.Session) -> None:
    install = session.config.stash.get(_FRESH_BINDER, None)
    if install is not None:
        install.close()
    sl.stop_all()
    shutil.rmtree(_JUPYTER_HOME, ignore_errors=True)
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
