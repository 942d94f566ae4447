"""The evidence scoreboard, headless: half-row and benefit verdicts, quick re-runs, the corrected table."""

from __future__ import annotations

import importlib

import pytest

from statelab.experiments import VERDICTS, Evidence, Judgement
from statelab.table import BENEFITS, ROWS, Row
from statelab.ui.scoreboard import MARK, NOT_JUDGED, RowResult, Scoreboard, scoreboard

FASTEST = "development_focus"   # the quickest row to re-run for real (the one real run here)
GHOST = Row("no_such_row", "Ghost", "a stateful claim", "a stateless claim", "99_ghost.ipynb", ())


def judged(row: str, stateful: bool = True, stateless: bool = True, nuance: bool = False,
           benefits: tuple[str, ...] = (), **extra) -> Evidence:
    """Evidence as a converted experiment returns it: each half judged from named checks (nothing mocked)."""
    checks = {"stateful fact": stateful, "stateless fact": stateless, "a limit": nuance}
    claims = {"stateful": Judgement(supports=("stateful fact",), corrected=f"{row}: 2 of 3 | <lost>."),
              "stateless": Judgement(supports=("stateless fact",), qualifies=("a limit",),
                                     corrected=f"{row}: stateless corrected.")}
    claims.update({code: Judgement(supports=("stateless fact",), corrected=f"{code} measured.") for code in benefits})
    return Evidence(row=row, measurements={"n": 3}, checks=checks, claims=claims,
                    reading=f"<b>{row}</b> measured 3 of 3", seconds=0.4, extra=dict(extra))


def one_half(row: str) -> Evidence:
    """Evidence that judges only the stateful half (and none of its row's benefits): the rest says so."""
    return Evidence(row=row, measurements={"n": 3}, checks={"something held": False},
                    claims={"stateful": Judgement(supports=("something held",))},
                    reading=f"{row} measured", seconds=0.2)


def test_evidence_has_no_single_verdict_for_a_whole_row():
    with pytest.raises(TypeError):
        Evidence(row="caching", measurements={}, checks={}, verdict="holds")   # one word for two claims: gone
    assert not hasattr(judged("caching"), "verdict")


def test_each_half_and_each_benefit_gets_its_own_verdict():
    board = scoreboard({"fault_tolerance": judged("fault_tolerance", stateful=False, nuance=True,
                                                  benefits=("5b", "4a"), key_numbers={"carts lost": "4 of 12"}),
                        "caching": one_half("caching"),
                        "choosing": judged("choosing")})   # not one of the nine rows: left out
    assert isinstance(board, Scoreboard) and list(board.results) == [r.key for r in ROWS]
    assert board.verdicts["fault_tolerance"] == {"stateful": "does not hold", "stateless": "holds with nuance"}
    assert board.verdicts["caching"] == {"stateful": "does not hold", "stateless": NOT_JUDGED}
    assert board.verdicts["scalability"] == {"stateful": "not measured yet", "stateless": "not measured yet"}
    assert board.benefits["5b"] == board.benefits["4a"] == "holds"
    assert board.benefits["4c"] == NOT_JUDGED                            # caching's evidence did not judge it
    assert board.benefits["5a"] == "not measured yet" and set(board.benefits) == set(BENEFITS)
    assert len(board.pending) == 7


def test_the_table_shows_seed_claims_verdicts_in_words_and_symbols_and_corrected_sentences():
    board = scoreboard({"fault_tolerance": judged("fault_tolerance", stateful=False, nuance=True,
                                                  benefits=("5b",), key_numbers={"carts lost": "4 of 12"}),
                        "caching": one_half("caching")})
    html = board.table.value
    assert html.count("<tr>") == 1 + len(ROWS)
    assert "Failure in one server affects sessions stored on others" in html      # the seed's claim
    assert f"{MARK['does not hold']} does not hold" in html and f"{MARK['holds with nuance']} holds with nuance" in html
    assert "fault_tolerance: 2 of 3 | &lt;lost&gt;." in html                      # the corrected sentence, escaped
    assert "carts lost: <b>4 of 12</b>" in html and "&lt;b&gt;fault_tolerance&lt;/b&gt; measured" in html
    assert NOT_JUDGED in html                                                   # a half its row did not judge
    assert "evidence you passed in (0.4 s)" in html
    benefits = board.benefit_table.value
    assert benefits.count("<tr>") == 1 + len(BENEFITS) and "5b measured." in benefits
    assert "2 of 9 rows measured" in board.status.value
    assert "\u2713 1 holds" in board.status.value                               # counts in words, not colour
    for control in (board.fill_button, board.rerun_button, board.bar):
        assert control.description                                              # every control has a label


def test_the_corrected_table_is_markdown_in_the_seeds_three_columns_and_text():
    board = scoreboard({"fault_tolerance": judged("fault_tolerance", stateful=False, benefits=("5b", "4a"))})
    md = board.corrected_table()._repr_markdown_()
    lines = md.splitlines()
    assert lines[0] == "| Parameter | Stateful architecture | Stateless architecture |"
    ft = next(line for line in lines if line.startswith("| [Fault Tolerance]"))
    assert '"Failure in one server affects sessions stored on others"<br>**\u2717 does not hold**' in ft
    assert "2 of 3 \\| &lt;lost&gt;." in ft and ft.count(" | ") == 2           # a pipe cannot break the table
    assert "| **5b** (stateless) |" in md and "**\u2713 holds**: 5b measured." in md
    assert "1 of 9 rows measured: press *Measure the rows not measured yet (quick)*" in md
    text = str(board.corrected_table())
    assert 'stateful:  "Failure in one server affects sessions stored on others" -> \u2717 does not hold.' in text
    assert "not measured yet" in text and "**" not in text


def test_the_fill_button_quick_runs_what_is_missing_and_says_where_it_came_from():
    board = scoreboard({k: judged(k) for k in [r.key for r in ROWS] if k != FASTEST})
    assert board.pending == [FASTEST]
    board.fill_button.click()
    result = board.results[FASTEST]
    assert result.measured and result.evidence.row == FASTEST and result.evidence.extra["quick"] is True
    assert all(v in VERDICTS for v in result.verdicts.values())
    assert result.source.startswith("quick re-run by the scoreboard just now")
    assert board.bar.value == board.bar.max == 1 and board.bar.bar_style == "success"
    assert not board.pending and "9 of 9 rows measured" in board.status.value
    assert board.evidence[FASTEST] is result.evidence and not board.fill_button.disabled


def test_rerun_missing_measures_on_creation(monkeypatch):
    module = importlib.import_module("statelab.ui.scoreboard")   # (statelab.ui.scoreboard is also the function)
    monkeypatch.setattr(module, "ROWS", (GHOST,))
    board = scoreboard({}, rerun_missing=True)
    assert list(board.results) == ["no_such_row"] and board.results["no_such_row"].status == "missing"
    assert board.bar.value == board.bar.max == 1


def test_a_missing_module_is_shown_not_raised():
    result = Scoreboard._measure(GHOST)
    assert result.status == "missing" and "does not exist yet" in result.source
    assert result.verdicts == {"stateful": "not measured yet (module missing)",
                               "stateless": "not measured yet (module missing)"}


def test_a_module_without_run_is_a_failure_in_its_cell():
    helper = Row("crowd", "Crowd", "-", "-", "-", ())   # statelab.experiments.crowd: a helper, no run()
    result = Scoreboard._measure(helper)
    assert result.status == "failed" and "has no run()" in result.error


def test_the_rerun_button_re_measures_and_shows_what_it_could_not_measure():
    board = scoreboard({k: judged(k) for k in [r.key for r in ROWS]})
    board.results = {"nope": RowResult(GHOST, judged("caching"), "measured")}   # keep the click short
    board.rerun_button.click()
    assert board.results["nope"].status == "missing" and "module missing" in board.table.value
    assert board.bar.bar_style == "warning" and not board.rerun_button.disabled


def test_bad_input_gets_a_clear_error():
    with pytest.raises(TypeError, match="dict of row key"):
        scoreboard(["scalability"])
    with pytest.raises(TypeError, match="must be an Evidence"):
        scoreboard({"scalability": "holds"})
    with pytest.raises(ValueError, match="evidence for row 'caching'"):
        scoreboard({"scalability": judged("caching")})
    with pytest.raises(KeyError, match="no row 'speed'"):
        scoreboard({}).rerun(["speed"])



def test_a_shown_corrected_table_updates_when_the_board_measures(monkeypatch):
    """Issue 20: 12's corrected table still said 7 rows "not measured yet" after the scoreboard measured all 9."""
    import IPython.display

    shown = []

    class Handle:
        def __init__(self, obj):
            self.text = obj.data
            shown.append(self)

        def update(self, obj):
            self.text = obj.data

    monkeypatch.setattr(IPython.display, "display", lambda obj, display_id=None, **kw: Handle(obj))
    board = scoreboard({k: judged(k) for k in [r.key for r in ROWS] if k != FASTEST})
    board.corrected_table()._ipython_display_()
    assert "8 of 9 rows measured" in shown[0].text
    board.fill_button.click()                       # the board measures the missing row...
    assert "9 of 9 rows measured" in shown[0].text  # ...and the table shown below it says so, with no re-run
