"""The evidence scoreboard: the seed's nine-row table, rebuilt from your own measurements.

For each row it shows both claims, the verdict your measurement reached, its key numbers, and
where they came from: an experiment run earlier in this kernel (``statelab.experiments.latest()``),
evidence you passed in, or a quick re-run made by the scoreboard itself
(``row.experiment.run(quick=True)``). A row whose experiment module does not exist yet reads
"not measured yet (module missing)"; a row whose experiment fails shows the error in its cell.
Nothing here raises into the notebook.

The widget is updated by setting values (``HTML.value``, ``IntProgress.value``), so it updates
live in JupyterLab while it re-runs, and works headless (``board.fill()``, ``button.click()``).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import ipywidgets as W

from ..experiments import VERDICTS, Evidence, latest
from ..table import ROWS, Row
from ._base import BORDER, FG, FG_DIM, GREEN, GREY, ORANGE, RED, box, button, error_line, esc, pill

LINK = "var(--jp-content-link-color, #1976d2)"
VERDICT_TINT = {"holds": GREEN, "holds with nuance": ORANGE, "does not hold": RED}
STATUS_TEXT = {
    "pending": "not measured yet",
    "running": "measuring...",
    "missing": "not measured yet (module missing)",
    "failed": "could not measure",
}


@dataclass
class RowResult:
    """One row of the scoreboard: the evidence (if any), its status and where it came from."""

    row: Row
    evidence: Evidence | None = None
    status: str = "pending"  # "measured" | "pending" | "running" | "missing" | "failed"
    source: str = ""
    error: str = ""

    @property
    def verdict(self) -> str:
        """The measured verdict, or what stands in for it ("not measured yet (module missing)", ...)."""
        if self.evidence is not None and self.status == "measured":
            return self.evidence.verdict
        return STATUS_TEXT.get(self.status, self.status)


def _key_numbers(ev: Evidence) -> list[tuple[str, str]]:
    """(name, value) pairs the experiment chose to headline (``ev.extra["key_numbers"]``), if any."""
    chosen = ev.extra.get("key_numbers") if isinstance(ev.extra, dict) else None
    if not isinstance(chosen, Mapping):
        return []
    return [(str(name), _fmt(value)) for name, value in chosen.items()]


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


@contextlib.contextmanager
def _quietly() -> Iterator[None]:
    """Keep an experiment's own progress bar and prints out of the scoreboard's cell output."""
    ip = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    if ip is None or getattr(ip, "kernel", None) is None:
        yield
        return
    from IPython.utils.capture import capture_output

    with capture_output(stdout=True, stderr=False, display=True):
        yield


def _evidence_from(evidence_by_row: Mapping[str, Evidence] | None) -> tuple[dict[str, Evidence], str]:
    """Validated evidence by row key, and the words for where it came from."""
    if evidence_by_row is None:
        return latest(), "run earlier in this kernel"
    if not isinstance(evidence_by_row, Mapping):
        raise TypeError("evidence_by_row must be a dict of row key -> Evidence, for example "
                        "statelab.experiments.latest(), not " + type(evidence_by_row).__name__)
    keys = {r.key for r in ROWS}
    out = {}
    for key, ev in evidence_by_row.items():
        if not isinstance(ev, Evidence):
            raise TypeError(f"evidence_by_row[{key!r}] must be an Evidence (what run() returns), "
                            f"not {type(ev).__name__}")
        if key not in keys:
            continue  # e.g. "choosing": evidence that is not one of the nine rows
        if ev.row != key:
            raise ValueError(f"evidence_by_row[{key!r}] is evidence for row {ev.row!r}")
        out[key] = ev
    return out, "evidence you passed in"


class Scoreboard(W.VBox):
    """The widget :func:`scoreboard` returns: a progress bar, a re-measure button and the table.

    ``.results`` holds a :class:`RowResult` per row key; ``.verdicts`` the verdict (or status) by
    row; ``.fill()`` quick-runs the rows not measured yet; ``.rerun()`` quick-runs them all.
    """

    def __init__(self, evidence_by_row: Mapping[str, Evidence] | None = None) -> None:
        evidence, source = _evidence_from(evidence_by_row)
        self.results: dict[str, RowResult] = {}
        for row in ROWS:
            ev = evidence.get(row.key)
            self.results[row.key] = RowResult(row, ev, "measured", self._source(source, ev)) if ev else RowResult(row)
        self.bar = W.IntProgress(value=0, min=0, max=len(ROWS), description="quick re-runs",
                                 style={"description_width": "initial"}, layout=W.Layout(width="260px"))
        self.status = W.HTML()
        self.message = W.HTML()
        self.table = W.HTML()
        self.rerun_button = button("Re-measure all (quick)", "re-run every row's experiment with quick=True")
        self.rerun_button.on_click(self._on_rerun)
        self._shown_in: int | None = None
        super().__init__([W.HBox([self.rerun_button, self.bar, self.status],
                                 layout=W.Layout(align_items="center", flex_flow="row wrap")),
                          self.message, self.table], layout=W.Layout(width="100%", max_width="1400px"))
        self.refresh()

    # --- what it holds ---------------------------------------------------------------------
    @staticmethod
    def _source(words: str, ev: Evidence | None) -> str:
        if ev is None:
            return ""
        size = {True: ", quick size", False: ", default size"}.get(ev.extra.get("quick"), "")
        return f"{words} ({ev.seconds:.1f} s{size})"

    @property
    def pending(self) -> list[str]:
        """Row keys not measured yet (whose experiment has not been tried)."""
        return [k for k, r in self.results.items() if r.status == "pending"]

    @property
    def verdicts(self) -> dict[str, str]:
        """Row key -> the measured verdict, or the status that stands in for it."""
        return {k: r.verdict for k, r in self.results.items()}

    @property
    def evidence(self) -> dict[str, Evidence]:
        """Row key -> Evidence, for the rows measured so far."""
        return {k: r.evidence for k, r in self.results.items() if r.status == "measured" and r.evidence}

    # --- measuring --------------------------------------------------------------------------
    def fill(self) -> Scoreboard:
        """Quick-run every row not measured yet, updating the table row by row; return the board."""
        return self._run(self.pending)

    def rerun(self, keys: Iterable[str] | None = None) -> Scoreboard:
        """Quick-run the rows ``keys`` (default: all nine) again, replacing their evidence."""
        keys = list(self.results) if keys is None else list(keys)
        unknown = [k for k in keys if k not in self.results]
        if unknown:
            raise KeyError(f"no row {unknown[0]!r}; rows are {list(self.results)}")
        return self._run(keys)

    def _on_rerun(self, _button: Any = None) -> None:
        try:
            self.rerun()
        except Exception as e:  # a button never raises into the notebook
            self.message.value = error_line(f"{type(e).__name__}: {e}")

    def _run(self, keys: list[str]) -> Scoreboard:
        self.bar.max, self.bar.value, self.bar.bar_style = max(len(keys), 1), 0, ""
        self.rerun_button.disabled = True
        try:
            for i, key in enumerate(keys):
                self.results[key].status = "running"
                self.refresh()
                self.results[key] = self._measure(self.results[key].row)
                self.bar.value = i + 1
                self.refresh()
        finally:
            self.rerun_button.disabled = False
            self.bar.bar_style = "success" if all(self.results[k].status == "measured" for k in keys) else "warning"
        return self

    @staticmethod
    def _measure(row: Row) -> RowResult:
        """Quick-run one row's experiment; never raises (a missing module or a failure is data)."""
        module_name = f"statelab.experiments.{row.key}"
        try:
            importlib.invalidate_caches()  # a module written since this kernel started is found
            module = row.experiment
        except ModuleNotFoundError as e:
            if e.name == module_name:
                return RowResult(row, status="missing", source=f"{module_name} does not exist yet")
            return RowResult(row, status="failed", error=f"importing it failed: {e}")
        except Exception as e:
            return RowResult(row, status="failed", error=f"importing it failed: {type(e).__name__}: {e}")
        run = getattr(module, "run", None)
        if not callable(run):
            return RowResult(row, status="failed", error=f"{module_name} has no run() function")
        began = time.perf_counter()
        try:
            with _quietly():
                ev = run(quick=True)
        except Exception as e:
            return RowResult(row, status="failed", error=f"run(quick=True) raised {type(e).__name__}: {e}")
        seconds = time.perf_counter() - began
        if not isinstance(ev, Evidence) or ev.row != row.key or ev.verdict not in VERDICTS:
            return RowResult(row, status="failed", error=f"run(quick=True) returned {ev!r:.80}, not its row's Evidence")
        if isinstance(ev.extra, dict):
            ev.extra.setdefault("quick", True)  # so a later board reading latest() can say so too
        return RowResult(row, ev, "measured", f"quick re-run by the scoreboard just now ({seconds:.1f} s)")

    # --- showing it -------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-render the table and the summary from ``results``."""
        self.table.value = self._table_html()
        counts = {v: sum(1 for r in self.results.values() if r.status == "measured" and r.verdict == v)
                  for v in VERDICTS}
        measured = sum(counts.values())
        parts = [pill(f"{n} {v}", VERDICT_TINT[v]) for v, n in counts.items() if n]
        parts.append(f"{measured}/{len(self.results)} rows measured")
        self.status.value = box(" &nbsp;".join(parts), padding="0 8px")

    def _table_html(self) -> str:
        cell = f"border-bottom:1px solid {BORDER}; padding:4px 6px; vertical-align:top; text-align:left; color:{FG}"
        head = "".join(f'<th style="{cell}">{h}</th>' for h in
                       ("row", "stateful claim", "stateless claim", "measured verdict", "key numbers", "source"))
        body = "".join(self._row_html(r, cell) for r in self.results.values())
        return box(f'<table style="border-collapse:collapse; width:100%"><thead><tr>{head}</tr></thead>'
                   f"<tbody>{body}</tbody></table>")

    @staticmethod
    def _row_html(r: RowResult, cell: str) -> str:
        row = r.row
        link = f'<a href="{esc(row.notebook)}" target="_blank" style="color:{LINK}">{esc(row.title)}</a>'
        if r.status == "measured" and r.evidence is not None:
            ev = r.evidence
            verdict = pill(ev.verdict, VERDICT_TINT[ev.verdict])
            chosen = _key_numbers(ev)
            if chosen:  # the experiment's headline numbers, with its reading one click away
                numbers = "<br>".join(f"{esc(k)}: <b>{esc(v)}</b>" for k, v in chosen)
                numbers += (f'<details><summary style="color:{FG_DIM}; cursor:pointer">reading</summary>'
                            f"{esc(ev.reading)}</details>")
            else:  # the reading is built from the measured numbers: it is the key numbers, in words
                numbers = f'<span style="font-size:12px">{esc(ev.reading)}</span>'

        else:
            tint = RED if r.status == "failed" else GREY
            verdict = pill(STATUS_TEXT["pending"] if r.status == "missing" else r.verdict, tint)
            if r.status == "missing":  # the pill stays short; the reason goes under it
                verdict += f'<br><span style="color:{FG_DIM}; font-size:12px">(module missing)</span>'
            numbers = esc(r.error) if r.error else f'<span style="color:{FG_DIM}">-</span>'
        source = esc(r.source) if r.source else f'<span style="color:{FG_DIM}">-</span>'
        cells = (link, esc(row.stateful), esc(row.stateless), verdict, numbers, source)
        widths = ("10%", "15%", "15%", "10%", "36%", "14%")
        return "<tr>" + "".join(f'<td style="{cell}; width:{w}">{c}</td>' for c, w in zip(cells, widths,
                                                                                            strict=True)) + "</tr>"

    # --- display ----------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        """Show the board, unless :func:`scoreboard` already showed it in this same cell run."""
        from IPython import get_ipython
        from IPython.display import display

        ip = get_ipython()
        if self._shown_in is not None and ip is not None and ip.execution_count == self._shown_in:
            self._shown_in = None
            return
        display(self._repr_mimebundle_(), raw=True)

    def __repr__(self) -> str:
        return f"<Scoreboard {sum(r.status == 'measured' for r in self.results.values())}/{len(self.results)} measured>"


def scoreboard(evidence_by_row: Mapping[str, Evidence] | None = None, rerun_missing: bool = True) -> Scoreboard:
    """The nine-row table rebuilt from measured evidence.

    ``evidence_by_row`` defaults to this kernel's ``statelab.experiments.latest()``. With
    ``rerun_missing``, each row without evidence is re-run now with ``quick=True`` (about a
    second each); in a notebook the board appears first and fills in row by row.
    """
    board = Scoreboard(evidence_by_row)
    if rerun_missing and board.pending:
        ip = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
        if ip is not None and getattr(ip, "kernel", None) is not None:
            from IPython.display import display

            display(board._repr_mimebundle_(), raw=True)  # show it now, so the learner watches it fill
            board._shown_in = ip.execution_count
        board.fill()
    return board
