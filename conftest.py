"""Root conftest: sees every test item, notebooks included (tests/conftest.py sees only tests/).

nbval runs each notebook cell as a test item. We add up each notebook's cell times; the test
tests/test_notebooks.py::test_nbval_notebooks_within_budget, moved to run last, checks the sums.
"""

from __future__ import annotations

import pytest

NBVAL_SECONDS: dict[str, float] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.statelab_nbval_seconds = NBVAL_SECONDS  # read by the budget test


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path, sep, _ = report.nodeid.partition(".ipynb::")
    if sep:
        NBVAL_SECONDS[path + ".ipynb"] = NBVAL_SECONDS.get(path + ".ipynb", 0.0) + report.duration


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    last = [i for i in items if i.name == "test_nbval_notebooks_within_budget"]
    for item in last:
        items.remove(item)
        items.append(item)
