"""Evidence judges each half-row and benefit from named checks, and prose cannot contradict it."""

from __future__ import annotations

import json
import re

import pytest

from prose import check_prose, verdict_claims
from statelab.experiments import HALVES, VERDICTS, Evidence, Judgement, judged
from statelab.table import BENEFITS, CHOOSING, ROWS, benefit_row


def evidence(a: bool, b: bool, c: bool) -> Evidence:
    return Evidence(row="fault_tolerance", measurements={"lost": 3}, checks={"a": a, "b": b, "c": c},
                    claims={"stateful": Judgement(supports=("a",), corrected="3 of 3 lost."),
                            "stateless": Judgement(supports=("b",), qualifies=("c",)),
                            "5b": Judgement(supports=("b",))},
                    reading="3 users lost a cart.")


@pytest.mark.parametrize(("a", "b", "c", "stateful", "stateless"), [
    (True, True, False, "holds", "holds"),
    (False, True, True, "does not hold", "holds with nuance"),
    (True, False, True, "holds", "does not hold"),
])
def test_each_half_gets_its_own_verdict_from_its_checks(a, b, c, stateful, stateless):
    ev = evidence(a, b, c)
    assert ev.verdicts == {"stateful": stateful, "stateless": stateless}
    assert ev.benefits == {"5b": "holds" if b else "does not hold"}
    assert set(ev.verdicts.values()) <= set(VERDICTS)


def test_a_claim_may_only_name_measured_checks_and_known_keys():
    with pytest.raises(ValueError, match="not measured"):
        Evidence(row="x", measurements={}, checks={"a": True}, claims={"stateful": Judgement(supports=("zz",))})
    with pytest.raises(ValueError, match="keyed by"):
        Evidence(row="x", measurements={}, checks={"a": True}, claims={"9z": Judgement(supports=("a",))})


def test_the_conclusion_is_rendered_from_the_checks_in_words_not_colour():
    md = evidence(False, True, True).conclusion()._repr_markdown_()
    assert "**stateful** half" in md and "**does not hold**" in md and "**holds with nuance**" in md
    assert "Failure in one server affects sessions stored on others" in md   # the seed's words
    assert "needs: a: **no**" in md and "limit: c: **yes**" in md
    assert "3 of 3 lost." in md and "Measured: 3 users lost a cart." in md


def test_every_benefit_is_judged_in_exactly_one_row():
    judged = [code for r in ROWS for code in r.benefits]
    assert sorted(judged) == sorted(BENEFITS)
    assert benefit_row("5b").key == "fault_tolerance"


@pytest.mark.parametrize("row", [*ROWS, CHOOSING], ids=lambda r: r.key)
def test_each_experiment_declares_how_its_halves_and_benefits_are_judged(row):
    """Read without running anything: each half and each benefit its notebook tests has a rule, and every
    rule needs at least one check (a claim nothing can refute would always hold)."""
    rules = row.experiment.CLAIMS
    assert sorted(rules) == sorted([*HALVES, *row.benefits])
    for rule in rules.values():
        assert rule.supports and not rule.corrected
        assert all(isinstance(name, str) and name for name in (*rule.supports, *rule.qualifies))


def test_judged_adds_one_measured_sentence_to_each_rule_and_refuses_a_missing_one():
    rules = {"stateful": Judgement(supports=("a",)), "5b": Judgement(supports=("b",), qualifies=("c",))}
    claims = judged(rules, {"stateful": "3 of 3 lost.", "5b": "none lost."})
    assert claims["5b"] == Judgement(supports=("b",), qualifies=("c",), corrected="none lost.")
    assert rules["stateful"].corrected == ""  # the module's rules are not changed by a run
    with pytest.raises(ValueError, match="one corrected sentence per claim"):
        judged(rules, {"stateful": "3 of 3 lost."})


@pytest.mark.parametrize(("text", "keys", "claimed"), [
    ("**The stateful cell of the seed's table is wrong as written.** A crash took...", ("stateful",),
     ("does not hold",)),
    ("The stateless cell holds.", ("stateless",), ("holds",)),
    ("So the stateless claim holds with nuance here.", ("stateless",), ("holds with nuance",)),
    ("Benefit 5b does not hold for the shared store.", ("5b",), ("does not hold",)),
])
def test_sentences_that_state_a_verdict_are_found(text, keys, claimed):
    (claim,) = verdict_claims(text)
    assert claim.keys == keys and claim.claimed == claimed


@pytest.mark.parametrize("text", [
    "The server holds the session in memory.",            # "holds" as a verb of mechanism
    "Does the stateless claim hold?",                     # a question
    'The seed says "failures are isolated".',
    "`ev.verdicts['stateful']` is computed from the checks.",
])
def test_mechanism_prose_is_not_a_verdict(text):
    assert verdict_claims(text) == []


def write_notebook(tmp_path, *markdown: str):
    cells = [{"cell_type": "markdown", "metadata": {}, "source": m} for m in markdown]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_check_prose_fails_on_a_contradiction_and_passes_when_prose_agrees(tmp_path):
    ev = evidence(False, True, True)   # stateful: does not hold; stateless: holds with nuance
    bad = write_notebook(tmp_path, "# T", "The stateful cell holds as written. The stateless claim holds.")
    with pytest.raises(AssertionError, match="stateful claim 'holds'.*'does not hold'"):
        check_prose(bad, ev)
    good = write_notebook(tmp_path, "# T", "The stateful cell is wrong as written.", "A server holds sessions.")
    assert check_prose(good, ev) == 1


def test_check_prose_refuses_a_verdict_that_names_no_half(tmp_path):
    nb = write_notebook(tmp_path, "The claim holds as written.")
    with pytest.raises(AssertionError, match="without naming"):
        check_prose(nb, evidence(True, True, False))


def test_check_size_refuses_what_a_run_cannot_use_in_words():
    from statelab.experiments import check_size

    check_size("users", 3, 1, 10)
    check_size("session_ttl", 0.5, 0.05, 10, whole=False)
    for bad in (0, 11, 2.5, True, "3", None):
        with pytest.raises(ValueError, match=r"users must be a whole number from 1 to 10, not "):
            check_size("users", bad, 1, 10)
    with pytest.raises(ValueError, match=r"session_ttl must be a number from 0.05 to 10, not 'soon'"):
        check_size("session_ttl", "soon", 0.05, 10, whole=False)


# --------------------------------------------------------------------------- checks by id, thresholds in one place

from statelab.experiments import Check, conditions  # noqa: E402

FAST = Check("fast", "a lookup costs over {t}x a memory lookup", 10)
LOST = Check("none_lost", "no acknowledged write was lost", mechanism=True)


def _by_id(ratio: float, lost: int) -> Evidence:
    return Evidence(row="performance", measurements={"ratio": ratio},
                    checks=[FAST(ratio), LOST(ok=lost == 0, shown=f"{lost} lost")],
                    claims={"stateful": Judgement(supports=(FAST,), corrected="measured.")},
                    conditions=conditions(designs=["a", "b"], crowd="3 users"))


def test_a_check_is_kept_by_id_with_its_threshold_in_its_label_and_its_measurement():
    ev = _by_id(12.5, 0)
    assert ev.checks == {"fast": True, "none_lost": True}
    assert ev.label("fast") == "a lookup costs over 10x a memory lookup"
    assert ev.shown["fast"] == "12.5 (needs > 10)" and ev.shown["none_lost"] == "0 lost"
    assert ev.verdicts == {"stateful": "holds"} and _by_id(9.0, 0).verdicts == {"stateful": "does not hold"}
    text = str(ev.conclusion())
    assert text.startswith("Measured under these conditions") and "designs compared: a, b" in text
    assert "a lookup costs over 10x a memory lookup: yes (measured 12.5 (needs > 10))" in text
    assert "cores:" in text and "crowd: 3 users" in text


def test_require_names_the_label_and_what_was_measured_and_mechanisms_are_asserted_alone():
    ev = _by_id(9.0, 2)   # a slow machine (a finding) and a lost write (a broken mechanism)
    with pytest.raises(AssertionError, match=r"no acknowledged write was lost \(measured: 2 lost\)"):
        ev.require_mechanisms()
    assert _by_id(9.0, 0).require_mechanisms() == ["none_lost"]   # a verdict that differs is not an error
    with pytest.raises(KeyError, match="has no check 'nope'"):
        ev.require("nope")
    with pytest.raises(AssertionError, match="declares no mechanism"):
        Evidence(row="x", measurements={}, checks=[FAST(20)]).require_mechanisms()


def test_check_ids_are_short_and_a_duplicate_is_refused():
    with pytest.raises(ValueError):
        Check("A sentence as a key", "x")
    with pytest.raises(ValueError, match="each check once"):
        Evidence(row="x", measurements={}, checks=[FAST(20), FAST(30)])


def test_the_conclusion_escapes_what_it_renders():
    ev = Evidence(row="x", measurements={}, checks=[Check("c", "<b>bold</b> *x*")(ok=True)],
                  claims={"stateful": Judgement(supports=("c",), corrected="<img src=x onerror=alert(1)> [a](b)")})
    md = ev.conclusion()._repr_markdown_()
    assert "<img" not in md and "<b>" not in md and "&lt;img" in md and "\\[a](b)" in md
    assert "<img src=x onerror=alert(1)> [a](b)" in str(ev.conclusion())


def test_each_verdict_opens_with_one_plain_sentence_before_its_checks():
    """Issue 20: verdicts were needs/limit checklists with no plain first sentence."""
    from statelab.experiments import PLAIN, VERDICTS

    assert set(PLAIN) == set(VERDICTS)
    assert all(s.count(". ") == 0 and s.endswith(".") for s in PLAIN.values())  # one sentence each
    from statelab.experiments import transaction_integrity as ti

    ev = ti.run(quick=True)
    lines = ev.conclusion()._repr_markdown_().splitlines()
    verdict_lines = [line for line in lines if line.startswith("- ")]
    assert verdict_lines
    for line in verdict_lines:
        verdict = re.search(r": \*\*(holds with nuance|does not hold|holds)\*\*\. ", line).group(1)
        after = line.split(f"**{verdict}**. ", 1)[1]
        assert after.startswith(PLAIN[verdict]), line
