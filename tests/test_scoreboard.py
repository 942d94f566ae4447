"""The evidence scoreboard, headless: the nine rows from given evidence, quick re-runs, missing modules."""

from __future__ import annotations

import pytest

from statelab.experiments import VERDICTS, Evidence
from statelab.table import ROWS, Row
from statelab.ui.scoreboard import Scoreboard, scoreboard

OTHERS = [r.key for r in ROWS if r.key != "development_focus"]


def evidence(row: str, verdict: str = "holds with nuance", **extra) -> Evidence:
    """Evidence as an experiment returns it (a plain record: nothing here is mocked)."""
    return Evidence(row=row, measurements={"n": 3}, checks={"something held": True}, verdict=verdict,
                    reading=f"<b>{row}</b> measured 3 of 3", seconds=0.4, extra=dict(extra))


def test_given_evidence_fills_its_rows_and_the_rest_wait():
    board = scoreboard({"scalability": evidence("scalability", key_numbers={"share found": "35%"}),
                        "caching": evidence("caching", "does not hold"),
                        "choosing": evidence("choosing")},   # not one of the nine: ignored
                       rerun_missing=False)
    assert isinstance(board, Scoreboard) and list(board.results) == [r.key for r in ROWS]
    assert board.verdicts["scalability"] == "holds with nuance" and board.verdicts["caching"] == "does not hold"
    assert board.verdicts["load_balancing"] == "not measured yet" and len(board.pending) == 7
    html = board.table.value
    assert html.count("<tr>") == 1 + len(ROWS)
    assert "share found: <b>35%</b>" in html                        # the numbers the experiment chose
    assert "&lt;b&gt;caching&lt;/b&gt; measured 3 of 3" in html     # else its reading, escaped
    assert "evidence you passed in (0.4 s)" in html
    assert "Horizontal scaling is straightforward" in html           # the seed's claim, side by side
    assert "2/9 rows measured" in board.status.value


def test_fill_quick_runs_what_is_missing_and_says_where_it_came_from():
    board = scoreboard({k: evidence(k) for k in OTHERS}, rerun_missing=True)
    result = board.results["development_focus"]
    assert result.status == "measured" and result.verdict in VERDICTS
    assert result.evidence.row == "development_focus" and result.evidence.extra["quick"] is True
    assert result.source.startswith("quick re-run by the scoreboard just now")
    assert board.bar.value == board.bar.max == 1 and board.bar.bar_style == "success"
    assert not board.pending and "9/9 rows measured" in board.status.value
    assert "stolen token accepted after logout" in board.table.value
    assert board.evidence["development_focus"] is result.evidence


def test_a_missing_module_is_shown_not_raised():
    ghost = Row("no_such_row", "Ghost", "a stateful claim", "a stateless claim", "99_ghost.ipynb", ())
    result = Scoreboard._measure(ghost)
    assert result.status == "missing" and result.verdict == "not measured yet (module missing)"
    assert "does not exist yet" in result.source


def test_a_module_without_run_is_a_failure_in_its_cell():
    helper = Row("crowd", "Crowd", "-", "-", "-", ())   # statelab.experiments.crowd: a helper, no run()
    result = Scoreboard._measure(helper)
    assert result.status == "failed" and "has no run()" in result.error


def test_the_button_re_measures_and_shows_a_failure_inline():
    board = scoreboard({k: evidence(k) for k in [r.key for r in ROWS]}, rerun_missing=False)
    old = board.results["development_focus"].evidence
    board.results = {"development_focus": board.results["development_focus"]}   # keep the click short
    board.rerun_button.click()
    assert board.results["development_focus"].evidence is not old
    assert board.results["development_focus"].status == "measured" and not board.rerun_button.disabled
    board.results = {"nope": board.results["development_focus"]}
    board.results["nope"].row = Row("no_such_row", "Ghost", "-", "-", "-", ())
    board.rerun_button.click()
    assert board.results["nope"].status == "missing" and "module missing" in board.table.value


def test_bad_input_gets_a_clear_error():
    with pytest.raises(TypeError, match="dict of row key"):
        scoreboard(["scalability"])
    with pytest.raises(TypeError, match="must be an Evidence"):
        scoreboard({"scalability": "holds"})
    with pytest.raises(ValueError, match="evidence for row 'caching'"):
        scoreboard({"scalability": evidence("caching")})
    with pytest.raises(KeyError, match="no row 'speed'"):
        scoreboard({}, rerun_missing=False).rerun(["speed"])
