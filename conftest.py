"""Root conftest: sees every test item, notebooks included (tests/conftest.py sees only tests/).

* ``notebook_runs``: the session's one executor of notebooks (tests/kernels.py). The first test that asks for
  a notebook's run runs every notebook the selected tests need and waits for them all; each notebook is executed
  once per session however many tests judge it. Under pytest-xdist every test that asks for it is in one worker
  (tests/conftest.py), whose summary reaches the controller's report. A notebook that nbval collects in this session
  (``python -m pytest notebooks/03_scalability.ipynb tests/...``) is left to nbval.
* nbval (only for notebooks named on the command line: ``testpaths`` holds tests/ alone): each notebook's cell
  times are added up and a notebook over the time budget fails the session.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
NBVAL_SECONDS: dict[str, float] = {}
_NBVAL_FAILED: list[str] = []


def _budget_s() -> float:
    return float(os.environ.get("STATELAB_NOTEBOOK_TIMEOUT", "30"))


def _nbval_notebooks(session: pytest.Session) -> frozenset[str]:
    found = set()
    for item in session.items:
        if type(item).__module__.startswith("nbval"):
            found.add(Path(str(item.path)).resolve().relative_to(ROOT).as_posix())
    return frozenset(found)


@pytest.fixture(scope="session")
def notebook_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Each notebook run once in its own kernel, Run All twice (see tests/kernels.py); ``.result(name)``."""
    from kernels import NAMES, NotebookRuns

    runs = NotebookRuns(tmp_path_factory, skip=_nbval_notebooks(request.session))
    wanted: list[str] = []
    for item in request.session.items:  # start, in test order, what the selected tests will ask for
        if "notebook_runs" not in getattr(item, "fixturenames", ()):
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        for value in params.values():
            if isinstance(value, Path) and value.is_relative_to(ROOT):
                value = value.relative_to(ROOT).as_posix()
            if value in NAMES and value not in wanted:
                wanted.append(value)
        if not params and item.get_closest_marker("all_notebooks"):
            wanted += [n for n in NAMES if n not in wanted]
    runs.prefetch(wanted)
    runs.wait()
    seconds = time.perf_counter() - runs.started
    yield runs
    runs.close()
    done = runs.done()
    if done:
        lines = [r.summary() for r in sorted(done, key=lambda r: r.name)]
        lines.append(f"{len(done)} notebooks executed (each Run All twice in one kernel), {runs.workers} at a time: "
                     f"{seconds:.0f} s before the first test that judges them (counted in its file's time below)")
        request.config.stash[_SUMMARY] = lines
        if hasattr(request.config, "workeroutput"):  # an xdist worker: hand the lines to the controller
            request.config.workeroutput["statelab_notebooks"] = lines


_SUMMARY = pytest.StashKey[list]()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist's controller: keep the notebook summary of the worker that executed them."""
    lines = getattr(node, "workeroutput", {}).get("statelab_notebooks")
    if lines:
        node.config.stash[_SUMMARY] = lines


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "all_notebooks: the test judges every executed notebook (notebook_runs)")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path, sep, _ = report.nodeid.partition(".ipynb::")
    if sep:
        NBVAL_SECONDS[path + ".ipynb"] = NBVAL_SECONDS.get(path + ".ipynb", 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    slow = {k: round(v, 1) for k, v in NBVAL_SECONDS.items() if v >= _budget_s()}
    if slow:
        _NBVAL_FAILED.append(f"over the {_budget_s():g} s budget under nbval: {slow}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(_SUMMARY, [])
    if lines:
        terminalreporter.section("notebooks executed")
        for line in lines:
            terminalreporter.write_line(line)
    if NBVAL_SECONDS:
        terminalreporter.section("nbval: seconds per notebook (sum of its cells)")
        for name, seconds in sorted(NBVAL_SECONDS.items()):
            terminalreporter.write_line(f"{seconds:6.1f} s  {name}")
        for line in _NBVAL_FAILED:
            terminalreporter.write_line("FAILED: " + line, red=True)
    by_file: dict[str, float] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if isinstance(report, pytest.TestReport):
                file = report.nodeid.split("::", 1)[0]
                by_file[file] = by_file.get(file, 0.0) + report.duration
    if len(by_file) > 1:
        terminalreporter.section("seconds per test file (setup + call + teardown)")
        for file, seconds in sorted(by_file.items(), key=lambda kv: -kv[1])[:25]:
            terminalreporter.write_line(f"{seconds:7.1f} s  {file}")
