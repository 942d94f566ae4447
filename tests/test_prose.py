"""Typed prose cannot claim a verdict the measurement does not give (issue 8, deliver 4).

A notebook's markdown is typed once; its numbers are measured every run. So every experiment
notebook (03-12) ends with a self-check that calls ``sl.experiments.check_prose(<its own file>, ev)``,
which fails when a sentence of its markdown states a verdict its evidence does not give; and no
notebook (00-13) may state a verdict without naming the half or benefit it is about, since such a
sentence cannot be checked at all. These tests read the notebooks without running them.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import pytest

from statelab.experiments import Evidence, Judgement, check_prose
from statelab.experiments.prose import verdict_claims

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ALL = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
EXPERIMENTS = [p for p in ALL if 3 <= int(p.name[:2]) <= 12]


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_the_notebooks_are_found():
    assert [p.name[:2] for p in ALL] == [f"{i:02d}" for i in range(15)], [p.name for p in ALL]
    assert len(EXPERIMENTS) == 10


def check_prose_calls(code: str) -> list[ast.Call]:
    """Calls of ``sl.experiments.check_prose(...)`` in a code cell (comments and strings do not count)."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines())
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "sl.experiments.check_prose"]


@pytest.mark.parametrize("notebook", EXPERIMENTS, ids=lambda p: p.name)
def test_each_experiment_notebook_checks_its_own_prose_in_its_self_check(notebook):
    in_self_check = False
    found = []
    for cell in cells(notebook):
        text = source(cell)
        if cell["cell_type"] == "markdown" and re.search(r"^#+ .*", text, re.M):
            in_self_check = bool(re.search(r"^#+ .*self-check", text, re.M | re.I))
        elif cell["cell_type"] == "code" and in_self_check:
            for call in check_prose_calls(text):
                names = [a.value for a in call.args[:1] if isinstance(a, ast.Constant)]
                found.append((names, len(call.args) - 1))
    assert found, (f"{notebook.name}: no `sl.experiments.check_prose(...)` call in the cells under its "
                   "'Self-check' heading")
    assert all(names == [notebook.name] and evidences >= 1 for names, evidences in found), (
        f"{notebook.name}: check_prose must be given its own file name, then its Evidence: {found}")


@pytest.mark.parametrize("notebook", ALL, ids=lambda p: p.name)
def test_no_markdown_states_a_verdict_that_names_no_half(notebook):
    unnamed = [claim.sentence for i, cell in enumerate(cells(notebook)) if cell["cell_type"] == "markdown"
               for claim in verdict_claims(source(cell), i) if not claim.keys]
    assert not unnamed, (f"{notebook.name} states a verdict without naming the half or benefit (render it "
                         f"from the evidence with ev.conclusion() instead): {unnamed}")


def test_check_prose_catches_a_contradiction_typed_into_a_real_notebook(tmp_path):
    """A real notebook file (sources stored as lists of lines) with one typed sentence that contradicts."""
    notebook = tmp_path / EXPERIMENTS[-1].name
    shutil.copy(EXPERIMENTS[-1], notebook)
    ev = Evidence(row="choosing", measurements={}, checks={"fact": True, "limit": True},
                  claims={"stateful": Judgement(supports=("fact",)),
                          "stateless": Judgement(supports=("fact",), qualifies=("limit",))})
    assert ev.verdicts == {"stateful": "holds", "stateless": "holds with nuance"}
    check_prose(notebook, ev)                      # as committed: no sentence contradicts
    data = json.loads(notebook.read_text(encoding="utf-8"))
    data["cells"].insert(1, {"cell_type": "markdown", "metadata": {},
                             "source": ["So the stateless claim holds as written,\n", "whatever you measure.\n"]})
    notebook.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(AssertionError, match="stateless claim 'holds'.*'holds with nuance'"):
        check_prose(notebook, ev)
