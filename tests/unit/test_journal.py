"""The evidence journal: runs recorded in one notebook's kernel reach notebook 12's scoreboard."""

from __future__ import annotations

import json

import nbformat
import pytest

from statelab import journal
from statelab.experiments import Evidence, Judgement, forget, record, save, saved
from statelab.ui.scoreboard import scoreboard


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("STATELAB_EVIDENCE_DIR", str(tmp_path / "evidence"))
    return tmp_path / "evidence"


def evidence(row: str = "performance") -> Evidence:
    return Evidence(row=row, measurements={"p50 ms": {"memory": 0.7}, "n": 3},
                    checks={"fast": True, "a limit": True},
                    claims={"stateful": Judgement(("fast",), ("a limit",), "0.7 ms, measured."),
                            "stateless": Judgement(("fast",)), "5d": Judgement(("fast",), (), "5d said.")},
                    reading="measured 3", seconds=1.5,
                    extra={"quick": True, "key_numbers": {"p50": "0.7 ms"}, "token": "eyJ.secret", "cluster": object()})


def test_a_saved_run_reads_back_with_its_verdicts_and_sentences_and_nothing_else(folder):
    path = save(evidence())
    assert path == folder / "performance.json" and not list(folder.glob("*.tmp"))
    assert "eyJ.secret" not in path.read_text() and "cluster" not in path.read_text()   # only what is shown later
    back = saved()["performance"]
    assert back.verdicts == {"stateful": "holds with nuance", "stateless": "holds"} and back.benefits == {"5d": "holds"}
    assert back.claims["stateful"].corrected == "0.7 ms, measured." and back.measurements["p50 ms"] == {"memory": 0.7}
    assert back.extra["quick"] is True and back.extra["key_numbers"] == {"p50": "0.7 ms"} and "saved" in back.extra
    assert journal.clear() == 1 and saved() == {}


def test_runs_it_cannot_trust_are_left_out(folder):
    save(evidence())
    data = json.loads((folder / "performance.json").read_text())
    (folder / "performance.json").write_text(json.dumps({**data, "fingerprint": "an older experiment"}))
    (folder / "caching.json").write_text("{ half a file")
    save(evidence("no_such_row"))   # no module: saved with an empty fingerprint, read back only as such
    assert set(saved()) == {"no_such_row"}


def test_no_journal_when_the_folder_is_set_empty_and_none_outside_a_notebook(folder, monkeypatch):
    record(evidence("no_such_row"))         # a test or script: not a notebook kernel, so nothing is written
    assert not folder.exists()
    monkeypatch.setenv("STATELAB_EVIDENCE_DIR", "")
    assert journal.directory() is None and save(evidence()) is None and saved() == {}


def test_the_scoreboard_shows_a_saved_run_and_says_so(folder):
    forget("deployment")                    # whatever another test of this session ran in this process
    save(evidence("deployment"))
    board = scoreboard()
    result = board.results["deployment"]
    assert result.measured and result.verdicts["stateful"] == "holds with nuance"
    assert result.source.startswith("your run, saved ") and "quick size" in result.source
    assert "0.7 ms, measured." in board.table.value


def test_a_run_in_a_notebook_kernel_is_saved_for_the_next_kernel(folder, tmp_path):
    """A real kernel (as in JupyterLab) records a run; this process, another 'kernel', reads it back."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from statelab.experiments import Evidence, Judgement, record\n"
        "record(Evidence(row='caching', measurements={}, checks={'ok': True},\n"
        "                claims={'stateful': Judgement(('ok',), (), 'saved from a kernel.')}))")]
    NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert (folder / "caching.json").exists()
    assert saved()["caching"].claims["stateful"].corrected == "saved from a kernel."


def test_by_default_the_journal_sits_beside_the_notebooks(tmp_path, monkeypatch):
    monkeypatch.delenv("STATELAB_EVIDENCE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)              # a kernel's working directory is its notebook's folder
    assert journal.directory() == tmp_path / ".statelab-evidence"
