"""Typed prose cannot claim a verdict the measurement does not give (issue 8, deliver 4; issue 18).

A notebook's markdown is typed once; its numbers are measured every run. So for every experiment notebook
(03-12, and 14) this test takes the Evidence its own executed run saved in the run's journal and fails when a
sentence of its markdown states a verdict that evidence does not give; and no notebook (00-14) may state a
verdict without naming the half or benefit it is about, since such a sentence cannot be checked at all. The checker
(tests/prose.py) is a linter of the course's text, so it lives here, not in a learner's self-check cell.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kernels import ROOT
from prose import check_prose, verdict_claims
from statelab import experiments
from statelab.experiments import Evidence, Judgement
from statelab.topology.cluster import valkey_available

NOTEBOOKS = ROOT / "notebooks"
ALL = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
EXPERIMENTS = [p for p in ALL if 3 <= int(p.name[:2]) <= 12 or p.name.startswith("14_")]
#: notebooks whose markdown states no verdict at all: their conclusions are all rendered from the evidence
NO_TYPED_VERDICT = ("05_performance.ipynb", "07_caching.ipynb", "11_development_focus.ipynb")


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_the_notebooks_are_found():
    assert [p.name[:2] for p in ALL] == [f"{i:02d}" for i in range(15)], [p.name for p in ALL]
    assert len(EXPERIMENTS) == 11


@pytest.mark.parametrize("name", [p.relative_to(ROOT).as_posix() for p in EXPERIMENTS])
def test_each_experiment_notebooks_prose_agrees_with_what_its_run_measured(name, notebook_runs):
    run = notebook_runs.result(name)
    assert run.workdir and not run.failed, run.summary()
    row = Path(name).stem.split("_", 1)[1]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STATELAB_EVIDENCE_DIR", str(run.workdir / ".statelab-evidence"))
        ev = experiments.saved().get(row)
    if ev is None and row == "distributed_store" and not valkey_available():
        pytest.skip("notebook 14 measures nothing without a Valkey server (it says so and how to get one)")
    assert ev is not None, f"{name}: its run saved no evidence for {row!r} in its journal"
    typed = check_prose(ROOT / name, ev)
    if Path(name).name in NO_TYPED_VERDICT:
        assert typed == 0, f"{name} now types {typed} verdict sentence(s): render them with ev.conclusion()"


@pytest.mark.parametrize("notebook", ALL, ids=lambda p: p.name)
def test_a_learner_does_not_run_the_prose_linter(notebook):
    code = [source(c) for c in cells(notebook) if c["cell_type"] == "code"]
    assert not [c for c in code if "check_prose" in c], f"{notebook.name}: the prose check runs in tests/ only"


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
