"""The evidence scoreboard: the source text's nine-row table, corrected from your own measurements.

Each row has two claims, so each row gets two verdicts: the stateful half's and the stateless
half's (``ev.verdicts``), each with the sentence its experiment rendered from the numbers to say
what was measured instead (``Judgement.corrected``). Each of the source text's eight benefits gets the
verdict of the one row that judges it (``statelab.table.benefit_row``).

The evidence comes from an experiment run earlier in this kernel (``statelab.experiments.latest()``),
from a run saved by another notebook's kernel (``statelab.journal``), from evidence you
pass in, or from a quick re-run the scoreboard makes when asked (a button, or
``board.fill()``; a few seconds per row). A row not measured yet says so; a row whose experiment
fails shows the error in its cell. Nothing here raises into the notebook.

Meaning is never carried by colour alone: every verdict is written out and marked with a symbol
(``MARK``), and every control has a text label. ``board.corrected_table()`` is the same table as
Markdown (and plain text with ``str()``), for a notebook's last cell or your notes.
"""

from __future__ import annotations

import contextlib
import html
import importlib
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import ipywidgets as W

from .. import experiments, kernel
from ..experiments import HALVES, VERDICTS, Evidence, latest
from ..table import BENEFITS, ROWS, Row, benefit_row
from ._base import BORDER, FG, FG_DIM, GREEN, GREY, ORANGE, RED, box, button, error_line, esc, pill

LINK = "var(--jp-content-link-color, #1976d2)"
VERDICT_TINT = {"holds": GREEN, "holds with nuance": ORANGE, "does not hold": RED}
#: A symbol beside every verdict's words, so no verdict is told by colour alone.
MARK = {"holds": "\u2713", "holds with nuance": "\u2248", "does not hold": "\u2717"}
CELL = f"border-bottom:1px solid {BORDER}; padding:4px 6px; vertical-align:top; text-align:left; color:{FG}"
NOT_YET = "\u2013"   # en dash: nothing measured
STATUS_TEXT = {
    "pending": "not measured yet",
    "running": "measuring...",
    "missing": "not measured yet (module missing)",
    "failed": "could not measure",
}
NOT_JUDGED = "not judged by its row"


def marked(verdict: str) -> str:
    """A verdict (or a status) with its symbol: ``"\u2248 holds with nuance"``."""
    return f"{MARK.get(verdict, NOT_YET)} {verdict}"


@dataclass
class RowResult:
    """One row of the scoreboard: the evidence (if any), its status and where it came from."""

    row: Row
    evidence: Evidence | None = None
    status: str = "pending"  # "measured" | "pending" | "running" | "missing" | "failed"
    source: str = ""
    error: str = ""

    @property
    def measured(self) -> bool:
        return self.status == "measured" and self.evidence is not None

    @property
    def verdicts(self) -> dict[str, str]:
        """``{"stateful": ..., "stateless": ...}``: each half's measured verdict, or what stands in for it."""
        if not self.measured:
            return {half: STATUS_TEXT.get(self.status, self.status) for half in HALVES}
        judged = self.evidence.verdicts
        return {half: judged.get(half, NOT_JUDGED) for half in HALVES}

    def corrected(self, key: str) -> str:
        """The sentence the experiment rendered for claim ``key`` (a half or a benefit code), or ""."""
        if not self.measured or key not in self.evidence.claims:
            return ""
        return self.evidence.claims[key].corrected


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
    if not kernel.in_a_notebook():
        yield
        return
    from IPython.utils.capture import capture_output

    with capture_output(stdout=True, stderr=False, display=True):
        yield


def _evidence_from(evidence_by_row: Mapping[str, Evidence] | None) -> dict[str, tuple[Evidence, str]]:
    """Validated evidence by row key, each with the words for where it came from.

    By default: this kernel's runs (``latest()``), and for the other rows the runs saved in the
    learner's journal by the other notebooks' kernels (:mod:`statelab.journal`).
    """
    keys = {r.key for r in ROWS}
    if evidence_by_row is None:
        saved = {k: (ev, f"your run, saved {_when(ev.extra.get('saved'))}") for k, ev in experiments.saved().items()}
        here = {k: (ev, "run earlier in this kernel") for k, ev in latest().items()}
        return {k: v for k, v in {**saved, **here}.items() if k in keys}
    if not isinstance(evidence_by_row, Mapping):
        raise TypeError("evidence_by_row must be a dict of row key -> Evidence, for example "
                        "statelab.experiments.latest(), not " + type(evidence_by_row).__name__)
    out = {}
    for key, ev in evidence_by_row.items():
        if not isinstance(ev, Evidence):
            raise TypeError(f"evidence_by_row[{key!r}] must be an Evidence (what run() returns), "
                            f"not {type(ev).__name__}")
        if key not in keys:
            continue  # e.g. "choosing": evidence that is not one of the nine rows
        if ev.row != key:
            raise ValueError(f"evidence_by_row[{key!r}] is evidence for row {ev.row!r}")
        out[key] = (ev, "evidence you passed in")
    return out


def _when(saved: Any) -> str:
    """A saved run's time as a learner reads it: "11:32" today, "2026-11-30 11:32" another day."""
    if not isinstance(saved, (int, float)):
        return "earlier"
    stamp = time.localtime(saved)
    same_day = time.strftime("%Y-%m-%d", stamp) == time.strftime("%Y-%m-%d")
    return time.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M", stamp)


def _reached_a_verdict(ev: Evidence) -> bool:
    return bool(ev.verdicts)


class Scoreboard(W.VBox):
    """The widget :func:`scoreboard` returns: two labelled buttons, a progress bar, the rows and the benefits.

    ``.results`` holds a :class:`RowResult` per row key; ``.verdicts`` each row's two half-verdicts;
    ``.benefits`` the verdict on each of the eight benefits; ``.fill()`` quick-runs the rows not
    measured yet; ``.rerun()`` quick-runs them all; ``.corrected_table()`` is the table as Markdown.
    """

    def __init__(self, evidence_by_row: Mapping[str, Evidence] | None = None) -> None:
        evidence = _evidence_from(evidence_by_row)
        self.results: dict[str, RowResult] = {}
        for row in ROWS:
            ev, source = evidence.get(row.key, (None, ""))
            self.results[row.key] = RowResult(row, ev, "measured", self._source(source, ev)) if ev else RowResult(row)
        self.bar = W.FloatProgress(value=0, min=0, max=len(ROWS), description="quick re-runs",
                                 style={"description_width": "initial"}, layout=W.Layout(width="260px"))
        self.status = W.HTML()
        self.message = W.HTML()
        self.table = W.HTML()
        self.benefit_table = W.HTML()
        self.prediction_table = W.HTML()
        self.fill_button = button("Measure the rows not measured yet (quick)",
                                  "run each missing row's experiment with quick=True, a few seconds each")
        self.fill_button.on_click(self._guarded(self.fill))
        self.rerun_button = button("Re-measure all nine (quick)", "re-run every row's experiment with quick=True")
        self.rerun_button.on_click(self._guarded(self.rerun))
        self._shown_in: int | None = None
        self._shown_tables: list[Any] = []  # display handles of corrected tables shown: refresh() updates them
        super().__init__([W.HBox([self.fill_button, self.rerun_button, self.bar],
                                 layout=W.Layout(align_items="center", flex_flow="row wrap")),
                          self.status, self.message, self.table, self.benefit_table, self.prediction_table],
                         layout=W.Layout(width="100%", max_width="1400px"))
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
    def verdicts(self) -> dict[str, dict[str, str]]:
        """Row key -> ``{"stateful": ..., "stateless": ...}``: each half's verdict, or the status in its place."""
        return {k: r.verdicts for k, r in self.results.items()}

    @property
    def benefits(self) -> dict[str, str]:
        """Benefit code -> the verdict of the row that judges it, or the status in its place."""
        return {code: self._benefit(code)[0] for code in BENEFITS}

    def _benefit(self, code: str) -> tuple[str, RowResult | None]:
        r = self.results.get(benefit_row(code).key)
        if r is None:
            return STATUS_TEXT["pending"], None
        if not r.measured:
            return STATUS_TEXT.get(r.status, r.status), r
        if code in r.evidence.benefits:
            return r.evidence.benefits[code], r
        return NOT_JUDGED, r

    @property
    def evidence(self) -> dict[str, Evidence]:
        """Row key -> Evidence, for the rows measured so far."""
        return {k: r.evidence for k, r in self.results.items() if r.measured}

    # --- measuring --------------------------------------------------------------------------
    def fill(self, quick: bool = True) -> Scoreboard:
        """Run every row not measured yet (at quick size unless ``quick=False``), updating the table row by row."""
        return self._run([k for k, r in self.results.items() if not r.measured], quick)

    def rerun(self, keys: Iterable[str] | None = None, quick: bool = True) -> Scoreboard:
        """Run the rows ``keys`` (default: all nine) again, at quick size unless ``quick=False``."""
        keys = list(self.results) if keys is None else list(keys)
        unknown = [k for k in keys if k not in self.results]
        if unknown:
            raise KeyError(f"no row {unknown[0]!r}; rows are {list(self.results)}")
        return self._run(keys, quick)

    def _guarded(self, action: Any) -> Any:
        def on_click(_button: Any = None) -> None:
            self.message.value = ""
            try:
                action()
            except Exception as e:  # a button never raises into the notebook
                self.message.value = error_line(f"{type(e).__name__}: {e}")
        return on_click

    def _run(self, keys: list[str], quick: bool = True) -> Scoreboard:
        self.bar.max, self.bar.value, self.bar.bar_style = max(len(keys), 1), 0, ""
        self.fill_button.disabled = self.rerun_button.disabled = True
        try:
            for i, key in enumerate(keys):
                self.results[key].status = "running"
                self.refresh()
                self.results[key] = self._measure(self.results[key].row, quick)
                self.bar.value = i + 1
                self.refresh()
        finally:
            self.fill_button.disabled = self.rerun_button.disabled = False
            self.bar.bar_style = "success" if all(self.results[k].measured for k in keys) else "warning"
            self.refresh()
        return self

    @staticmethod
    def _measure(row: Row, quick: bool = True) -> RowResult:
        """Run one row's experiment (quick size by default); never raises (a missing module or a failure is data)."""
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
                ev = run(quick=quick)
        except Exception as e:
            return RowResult(row, status="failed", error=f"run(quick={quick}) raised {type(e).__name__}: {e}")
        seconds = time.perf_counter() - began
        if not isinstance(ev, Evidence) or ev.row != row.key or not _reached_a_verdict(ev):
            return RowResult(row, status="failed",
                             error=f"run(quick={quick}) returned {ev!r:.80}, not its row's Evidence")
        if isinstance(ev.extra, dict):
            ev.extra.setdefault("quick", quick)  # so a later board reading latest() can say so too
        how = "quick re-run" if quick else "full-size run"
        return RowResult(row, ev, "measured", f"{how} by the scoreboard just now ({seconds:.1f} s)")

    # --- showing it -------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-render the tables and the summary from ``results``."""
        self.table.value = self._table_html()
        self.benefit_table.value = self._benefits_html()
        self.prediction_table.value = self._predictions_html()
        halves = [v for r in self.results.values() for v in r.verdicts.values()]
        benefits = list(self.benefits.values())
        measured = sum(r.measured for r in self.results.values())

        def counts(verdicts: list[str]) -> str:
            parts = [pill(f"{MARK[v]} {n} {v}", VERDICT_TINT[v]) for v in VERDICTS if (n := verdicts.count(v))]
            return " ".join(parts) or "none yet"

        self.status.value = box(f"<b>{measured} of {len(self.results)} rows measured.</b> "
                                f"Half-row verdicts: {counts(halves)} &nbsp; Benefit verdicts: {counts(benefits)}",
                                padding="2px 0")
        self._update_tables()

    def _update_tables(self) -> None:
        """Re-render every corrected table this board displayed (in its own output, by display id): a table shown
        in a cell below keeps up when the board measures, without running that cell again."""
        if not getattr(self, "_shown_tables", None):
            return
        from IPython.display import Markdown

        text = CorrectedTable(self)._repr_markdown_()
        for handle in list(self._shown_tables):
            try:
                handle.update(Markdown(text))
            except Exception:  # no kernel to send it to any more: forget that display
                self._shown_tables.remove(handle)

    def _verdict_html(self, verdict: str, corrected: str, tint: str | None = None) -> str:
        if verdict in VERDICTS:
            out = pill(marked(verdict), VERDICT_TINT[verdict])
            if corrected:
                out += f'<div style="font-size:12px; margin-top:3px">{esc(corrected)}</div>'
            return out
        return pill(marked(verdict), tint or (RED if verdict == STATUS_TEXT["failed"] else GREY))

    def _table_html(self) -> str:
        cell = CELL
        head = "".join(f'<th style="{cell}">{h}</th>' for h in
                       ("row", "stateful architecture: the source text, then your verdict",
                        "stateless architecture: the source text, then your verdict", "numbers and source"))
        body = "".join(self._row_html(r, cell) for r in self.results.values())
        return box("<b>The nine rows</b>"
                   f'<table style="border-collapse:collapse; width:100%"><thead><tr>{head}</tr></thead>'
                   f"<tbody>{body}</tbody></table>")

    def _row_html(self, r: RowResult, cell: str) -> str:
        row = r.row
        link = f'<a href="{esc(row.notebook)}" target="_blank" style="color:{LINK}">{esc(row.title)}</a>'
        halves = []
        for half in HALVES:
            seed = f'<div style="color:{FG_DIM}; font-style:italic">"{esc(getattr(row, half))}"</div>'
            halves.append(seed + self._verdict_html(r.verdicts[half], r.corrected(half)))
        if r.measured:
            ev = r.evidence
            chosen = _key_numbers(ev)
            numbers = "<br>".join(f"{esc(k)}: <b>{esc(v)}</b>" for k, v in chosen)
            numbers += (f'<details><summary style="color:{FG_DIM}; cursor:pointer">what was measured</summary>'
                        f'<span style="font-size:12px">{esc(ev.reading)}</span></details>')
        elif r.error:
            numbers = esc(r.error)
        else:
            numbers = ""
        status = STATUS_TEXT.get(r.status, r.status)
        source = esc(r.source) if r.source else f'<span style="color:{FG_DIM}">{esc(status)}</span>'
        if r.status == "missing":
            source += f'<br><span style="color:{FG_DIM}; font-size:12px">(module missing)</span>'
        cells = (link, *halves, f'{numbers}<div style="font-size:12px; color:{FG_DIM}">{source}</div>')
        widths = ("12%", "33%", "33%", "22%")
        return "<tr>" + "".join(f'<td style="{cell}; width:{w}">{c}</td>' for c, w in zip(cells, widths,
                                                                                            strict=True)) + "</tr>"

    def _benefits_html(self) -> str:
        cell = CELL
        head = "".join(f'<th style="{cell}">{h}</th>'
                       for h in ("benefit", "the source text says", "judged in", "your verdict"))
        body = ""
        for code, (side, words) in BENEFITS.items():
            verdict, r = self._benefit(code)
            row = benefit_row(code)
            where = f'<a href="{esc(row.notebook)}" target="_blank" style="color:{LINK}">{esc(row.title)}</a>'
            corrected = r.corrected(code) if r is not None else ""
            cells = (f"<b>{esc(code)}</b> ({esc(side)})", esc(words), where, self._verdict_html(verdict, corrected))
            body += "<tr>" + "".join(f'<td style="{cell}">{c}</td>' for c in cells) + "</tr>"
        return box("<b>The eight benefits</b>"
                   f'<table style="border-collapse:collapse; width:100%"><thead><tr>{head}</tr></thead>'
                   f"<tbody>{body}</tbody></table>", margin_top="8px")

    @property
    def predictions(self) -> dict[str, Any]:
        """Your predictions (``sl.ui.predict``) by key, from this kernel and the other notebooks' kernels."""
        from .prediction import predictions

        return predictions()

    def _predictions_html(self) -> str:
        """Each prediction beside its measurement, in words and a symbol (never colour alone)."""
        from .prediction import MATCH, MISS, NONE

        records = self.predictions
        if not records:
            return box("<b>Your predictions</b>: none yet. Notebooks 00, 03-11, 13 and 14 ask for one before each "
                       "experiment; answer it there and run the notebook, then show this board again.",
                       margin_top="8px")
        cell = CELL
        head = "".join(f'<th style="{cell}">{h}</th>' for h in ("notebook", "the question", "you predicted",
                                                                  "you measured", "outcome"))
        titles = {row.key: (row.notebook, row.title) for row in ROWS}
        titles["into_production"] = ("13_into_production.ipynb", "Into production")   # no row of the table
        titles.update({key: ("14_distributed_store.ipynb", "When the store is distributed")
                       for key in ("distributed_lag", "distributed_failover", "distributed_restart")})
        body = ""
        for key, r in sorted(records.items(), key=lambda kv: titles.get(kv[0], ("00", ""))[0]):
            notebook, title = titles.get(key, ("00_start_here.ipynb", "Start here"))
            where = f'<a href="{esc(notebook)}" target="_blank" style="color:{LINK}">{esc(title)}</a>'
            outcome = {True: MATCH, False: MISS, None: NONE}[r.matched]
            cells = (where, esc(r.question), esc(r.predicted or "no prediction"),
                     esc(" and ".join(r.measured) or "not measured yet"), esc(outcome))
            body += "<tr>" + "".join(f'<td style="{cell}">{c}</td>' for c in cells) + "</tr>"
        right = sum(r.matched is True for r in records.values())
        judged = sum(r.matched is not None for r in records.values())
        return box(f"<b>Your predictions beside your measurements</b> ({right} of {judged} as predicted)"
                   f'<table style="border-collapse:collapse; width:100%"><thead><tr>{head}</tr></thead>'
                   f"<tbody>{body}</tbody></table>", margin_top="8px")

    def corrected_table(self) -> CorrectedTable:
        """The learner's corrected nine-row table, and the eight benefits, as Markdown (text with ``str()``)."""
        return CorrectedTable(self)

    # --- display ----------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        """Show the board, unless :func:`scoreboard` already showed it in this same cell run."""
        from IPython.display import display

        ip = kernel.shell()
        if self._shown_in is not None and ip is not None and ip.execution_count == self._shown_in:
            self._shown_in = None
            return
        display(self._repr_mimebundle_(), raw=True)

    def __repr__(self) -> str:
        return f"<Scoreboard {sum(r.measured for r in self.results.values())}/{len(self.results)} rows measured>"


def _md(text: str) -> str:
    """Text made safe inside a Markdown table cell (no HTML, no column breaks)."""
    return html.escape(" ".join(str(text).split()), quote=False).replace("|", "\\|")


class CorrectedTable:
    """A scoreboard's corrected table: Markdown in a notebook (the source text's own three columns), text elsewhere.

    Per row: the source text's two claims, your two verdicts, and the corrected sentence each experiment
    rendered from your numbers; then each benefit with its verdict. Rendered when displayed, so
    displaying it again after measuring more rows shows them.
    """

    def __init__(self, board: Scoreboard) -> None:
        self.board = board

    def _ipython_display_(self) -> None:
        """Shown as Markdown with a display id, which the board updates each time it measures."""
        from IPython.display import Markdown, display

        handle = display(Markdown(self._repr_markdown_()), display_id=True)
        if handle is not None:
            self.board._shown_tables.append(handle)

    def _half(self, r: RowResult, half: str, markdown: bool) -> str:
        verdict, seed, corrected = r.verdicts[half], getattr(r.row, half), r.corrected(half)
        if markdown:
            said = f'"{_md(seed)}"<br>**{_md(marked(verdict))}**'
            return said + (f": {_md(corrected)}" if corrected else "")
        return f'"{seed}" -> {marked(verdict)}' + (f". {corrected}" if corrected else "")

    def _repr_markdown_(self) -> str:
        b = self.board
        lines = ["| Parameter | Stateful architecture | Stateless architecture |", "|---|---|---|"]
        for r in b.results.values():
            title = f"[{_md(r.row.title)}]({r.row.notebook})"
            lines.append(f"| {title} | {self._half(r, 'stateful', True)} | {self._half(r, 'stateless', True)} |")
        lines += ["", "| Benefit | The source text says | Judged in | Your verdict |", "|---|---|---|---|"]
        for code, (side, words) in BENEFITS.items():
            verdict, r = b._benefit(code)
            corrected = r.corrected(code) if r is not None else ""
            row = benefit_row(code)
            lines.append(f"| **{code}** ({side}) | {_md(words)} | [{_md(row.title)}]({row.notebook}) | "
                         f"**{_md(marked(verdict))}**" + (f": {_md(corrected)}" if corrected else "") + " |")
        measured = sum(r.measured for r in b.results.values())
        lines += ["", f"{measured} of {len(b.results)} rows measured: "
                  + ("every row." if measured == len(b.results) else
                     "press *Measure the rows not measured yet (quick)* above: this table updates itself.")]
        return "\n".join(lines)

    def __str__(self) -> str:
        b = self.board
        out = []
        for r in b.results.values():
            where = r.source or STATUS_TEXT.get(r.status, r.status)
            out.append(f"{r.row.title} ({r.row.notebook}): {where}" + (f" ({r.error})" if r.error else ""))
            for half in HALVES:
                out.append(f"  {half + ':':10s} {self._half(r, half, False)}")
        out.append("Benefits:")
        for code, (side, words) in BENEFITS.items():
            verdict, r = b._benefit(code)
            corrected = r.corrected(code) if r is not None else ""
            out.append(f"  {code} ({side}) {words} [{benefit_row(code).notebook}] -> {marked(verdict)}"
                       + (f". {corrected}" if corrected else ""))
        return "\n".join(out)

    def __repr__(self) -> str:
        return str(self)


def scoreboard(evidence_by_row: Mapping[str, Evidence] | None = None, rerun_missing: bool = False) -> Scoreboard:
    """The nine-row table rebuilt from measured evidence, with a verdict per half-row and per benefit.

    ``evidence_by_row`` defaults to this kernel's ``statelab.experiments.latest()`` and, for the other
    rows, the runs the other notebooks saved in the learner's journal. Rows without
    evidence read "not measured yet"; the board's first button (or ``board.fill()``) quick-runs
    them. With ``rerun_missing=True`` they are quick-run now (a few seconds each); in a notebook
    the board appears first and fills in row by row.
    """
    board = Scoreboard(evidence_by_row)
    if rerun_missing and board.pending:
        ip = kernel.shell()
        if ip is not None:
            from IPython.display import display

            display(board._repr_mimebundle_(), raw=True)  # show it now, so the learner watches it fill
            board._shown_in = ip.execution_count
        board.fill()
    return board

