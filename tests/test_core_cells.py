"""Issue 21: each row notebook shows its experiment's core in one short cell, and traces drawn from real traffic.

The static tests read the committed notebooks (fast, always run); the executed ones read what the notebook harness
ran (tests/kernels.py), so they cost nothing extra when test_notebooks.py runs the same notebooks.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ROWS = ["03", "04", "05", "06", "07", "08", "09", "10", "11", "13"]
TRACED = ["01", "03", "04", "05", "07", "08", "09", "10", "13"]
MAX_LINES = 20
#: calls that send a request (a client's methods) or make a crowd send them (statelab/crowd.py)
REQUESTS = {"login", "me", "cart", "add_to_cart", "get", "post", "request", "logout", "logged_in", "each", "at_once",
            "books"}


def _path(number: str) -> Path:
    (path,) = NOTEBOOKS.glob(f"{number}_*.ipynb")
    return path


def _cells(number: str) -> list[dict]:
    return json.loads(_path(number).read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _core(number: str) -> tuple[dict, dict]:
    cells = _cells(number)
    found = [i for i, c in enumerate(cells) if c.get("id") == f"core-{number}"]
    assert found, f"{number}: no core cell (a code cell with id core-{number})"
    return cells[found[0] - 1], cells[found[0]]


def _calls(node: ast.AST) -> set[str]:
    return {n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
            for n in ast.walk(node) if isinstance(n, ast.Call)}


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


@pytest.mark.parametrize("number", ROWS)
def test_each_row_notebook_has_a_short_core_cell_that_sends_requests_and_prints_what_they_gave(number):
    intro, core = _core(number)
    source = _source(core)
    assert len(source.strip().splitlines()) <= MAX_LINES, f"{number}: the core cell is over {MAX_LINES} lines"
    tree = ast.parse(source)
    assert _calls(tree) & REQUESTS, f"{number}: the core cell sends no request"
    # names bound from requests (directly, or in a loop over them), then printed: the numbers come from them
    measured: set[str] = set()
    for _ in range(3):  # a name bound from a measured name is measured too
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.For, ast.comprehension)):
                value = node.iter if isinstance(node, (ast.For, ast.comprehension)) else node.value
                if _calls(value) & REQUESTS or _names(value) & measured:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    measured |= set().union(*(_names(t) for t in targets))
    printed = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "print"]
    assert printed, f"{number}: the core cell prints nothing"
    assert any(_names(p) & measured or _calls(p) & REQUESTS for p in printed), \
        f"{number}: what the core cell prints does not come from its requests"
    text = _source(intro)
    assert "run()" in text or "measure" in text, f"{number}: the sentence before the core does not say what run adds"
    links = re.findall(r"\]\((\.\./statelab/[^)]+\.py)\)", text)
    assert links and all((NOTEBOOKS / link).resolve().exists() for link in links), \
        f"{number}: the sentence before the core links to no library source"


def test_eight_or_more_notebooks_draw_a_trace_in_a_code_cell():
    drawing = [n for n in TRACED if any(c["cell_type"] == "code" and "sl.ui.trace(" in _source(c)
                                        for c in _cells(n))]
    assert len(drawing) >= 8, drawing


@pytest.mark.parametrize("number", TRACED)
def test_the_trace_is_an_output_of_the_executed_cell(notebook_runs, number):
    run = notebook_runs.result(_path(number).relative_to(ROOT).as_posix())
    if run.executed is None:
        pytest.fail(f"{number} did not run: {run.error}")
    shown = [o.get("data", {}).get("text/markdown", "") for c in run.executed.cells if c.cell_type == "code"
             for o in c.outputs if o.get("output_type") in ("display_data", "execute_result")]
    drawn = [s for s in shown if "sequenceDiagram" in s]
    if number == "13" and not drawn and "skipped" in json.dumps(run.executed.cells[4].get("outputs", [])):
        pytest.skip("13 draws its trace only where Valkey and gunicorn are installed")
    assert drawn, f"{number}: no sequenceDiagram among the outputs"
    assert all("accDescr {" in d and "```mermaid" in d for d in drawn)
