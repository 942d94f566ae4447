"""Predict, then measure: ``sl.ui.predict(...)`` before an experiment, ``sl.ui.reveal(...)`` after it.

Learners remember what they predicted and got wrong. A prediction is a labelled set of radio buttons;
the learner's choice is recorded in the kernel (:func:`predictions`) and, in a notebook kernel, saved
beside the evidence journal (``<journal>/predictions/<key>.json``) so notebook 12's scoreboard, in a
kernel of its own, can show each prediction beside its measurement.

    sl.ui.predict("Which design loses carts when server-1 crashes?", [...], key="fault_tolerance")
    ...                                                   # the experiment runs
    sl.ui.reveal("fault_tolerance", measured, why="...")  # measured is computed from the evidence

``measured`` is the choice (or the list of choices) the evidence points to, computed by the notebook
from ``ev.checks`` or ``ev.measurements``; never typed. A prediction left unanswered never blocks a
run (Run All, nbval, CI): the reveal then says "you did not predict" and shows the measurement, and it
updates itself when the learner answers later. Widgets are updated by setting values only, so a test
drives them headless by setting ``prediction.choice.value``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ipywidgets as W

from .. import journal, kernel
from ._base import BORDER, GREY, box, esc, pill

#: Words and a symbol for each outcome, so no outcome is told by colour alone.
MATCH, MISS, NONE = "\u2713 as you predicted", "\u2717 not what you predicted", "\u2013 no prediction"
NOT_YET = "not answered yet: choose one (the notebook runs on without it)"


@dataclass
class Record:
    """One prediction: the question, the choices, what the learner chose and what was measured."""

    key: str
    question: str
    choices: list[str]
    predicted: str | None = None
    measured: list[str] = field(default_factory=list)
    why: str = ""
    saved: float = 0.0

    @property
    def matched(self) -> bool | None:
        """True/False once both a prediction and a measurement exist, else None."""
        if self.predicted is None or not self.measured:
            return None
        return self.predicted in self.measured


_records: dict[str, Record] = {}


def predictions() -> dict[str, Record]:
    """This kernel's predictions by key, plus those saved by other notebooks' kernels (this kernel's win)."""
    return {**saved(), **_records}


# --- the journal beside the evidence ---------------------------------------------------------------

def _folder() -> Path | None:
    base = journal.directory()
    return None if base is None else base / "predictions"


def _save(record: Record) -> None:
    """Write the record where notebook 12 can read it, only in a notebook kernel; never raises."""
    folder = _folder()
    if folder is None or not kernel.in_a_notebook() or not record.key.replace("_", "").isalnum():
        return
    record.saved = time.time()
    with contextlib.suppress(OSError, TypeError, ValueError):
        journal.write_file(folder, record.key, json.dumps(asdict(record), ensure_ascii=False))


def saved() -> dict[str, Record]:
    """The predictions other notebooks saved (unreadable files are left out)."""
    found: dict[str, Record] = {}
    for path, text in journal.read_files(_folder()):
        try:
            record = Record(**json.loads(text))
        except (ValueError, TypeError):
            continue
        if record.key == path.stem:
            found[record.key] = record
    return found


def forget() -> int:
    """Forget every prediction, in this kernel and on disk; returns how many files were removed."""
    _records.clear()
    return journal.remove_files(_folder())


# --- the widgets ------------------------------------------------------------------------------------

class Prediction(W.VBox):
    """The question, the choices as labelled radio buttons, and a line that says what was recorded."""

    def __init__(self, question: str, choices: Sequence[str], key: str) -> None:
        choices = [str(c) for c in choices]
        if len(choices) < 2 or len(set(choices)) != len(choices):
            raise ValueError("a prediction needs at least two different choices")
        old = _records.get(key)
        self.record = Record(key, question, choices)
        if old is not None and old.question == question and old.predicted in choices:
            self.record.predicted = old.predicted   # re-running the cell keeps the learner's answer
        _records[key] = self.record
        self.question = W.HTML(box(f"<b>Predict before you measure.</b> {esc(question)}"))
        self.choice = W.RadioButtons(options=choices, value=self.record.predicted, description="Your prediction:",
                                     style={"description_width": "initial"}, layout=W.Layout(width="auto"))
        self.status = W.HTML()
        self.choice.observe(self._chosen, names="value")
        super().__init__([self.question, self.choice, self.status],
                         layout=W.Layout(border=f"1px solid {BORDER}", padding="4px 8px", margin="4px 0"))
        self._show()

    def _chosen(self, change: dict) -> None:
        self.record.predicted = change["new"]
        _save(self.record)
        self._show()

    def _show(self) -> None:
        if self.record.predicted is None:
            self.status.value = box(esc(NOT_YET), font_style="italic")
        else:
            self.status.value = box(f"Recorded: you predicted <b>{esc(self.record.predicted)}</b>. "
                                    "Run the experiment below; the notebook compares after it.")


class Reveal(W.HTML):
    """"You predicted X; you measured Y", with one sentence on why; follows the prediction if it changes."""

    def __init__(self, record: Record, prediction: Prediction | None) -> None:
        super().__init__()
        self.record = record
        if prediction is not None:
            prediction.choice.observe(lambda _change: self._show(), names="value")
        self._show()

    def _show(self) -> None:
        r = self.record
        outcome = {True: MATCH, False: MISS, None: NONE}[r.matched]
        if r.matched is None:
            lead = (f"You did not predict. You measured: <b>{esc(' and '.join(r.measured))}</b>. "
                    "(Choose an answer above and this line updates.)")
        else:
            lead = (f"You predicted <b>{esc(r.predicted)}</b>; you measured "
                    f"<b>{esc(' and '.join(r.measured))}</b>.")
        self.value = box(f"{pill(outcome, GREY)} {lead}<br>Why: {esc(r.why)}", padding="4px 8px",
                         border_left=f"4px solid {BORDER}", margin="4px 0")


_widgets: dict[str, Prediction] = {}


def predict(question: str, choices: Sequence[str], key: str) -> Prediction:
    """Ask the learner to predict an outcome before the experiment; the choice is recorded under ``key``."""
    widget = Prediction(question, choices, key)
    _widgets[key] = widget
    return widget


def reveal(key: str, measured: str | Sequence[str], why: str) -> Reveal:
    """Show "you predicted X; you measured Y" for prediction ``key``, and why.

    ``measured`` is the choice the evidence points to (or several, or an empty list for none),
    computed from the evidence. A measurement outside the choices is shown as it is.
    """
    record = _records.get(key) or saved().get(key)
    if record is None:
        raise KeyError(f"no prediction {key!r} in this kernel: run the prediction cell above first")
    record.measured = [measured] if isinstance(measured, str) else [str(m) for m in measured]
    if not record.measured:
        record.measured = ["none of them"]
    record.why = why
    _records[key] = record
    _save(record)
    widget = _widgets.get(key)
    return Reveal(record, widget if widget is not None and widget.record is record else None)
