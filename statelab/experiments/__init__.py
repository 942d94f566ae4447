"""One experiment per row of the comparison table (see :mod:`statelab.table`).

Each module has ``run(...) -> Evidence``: it starts the servers it needs, drives them,
measures, stops them, and *computes* from the numbers a verdict on each half of its row (the
stateful claim and the stateless claim, each a :class:`Judgement`) and on each benefit of the seed
the row tests. Nothing here types a verdict in by hand, and every default is sized to finish in a
few seconds on one busy CPU (Binder), with verdicts that stay the same from run to run.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

#: The verdicts an experiment can reach about one claim of the seed (a half-row or a benefit).
VERDICTS = ("holds", "holds with nuance", "does not hold")

#: The four designs the rows compare: two choices, who you are (session id or token) and where the cart
#: lives (in the session, in the token, or in a shared database). Values are ``Cluster`` keyword arguments.
DESIGNS: dict[str, dict[str, Any]] = {
    "session + memory": {"mode": "stateful", "store": "memory", "cart": "session"},
    "session + shared store": {"mode": "stateful", "store": "sqlite", "cart": "session"},
    "token + cart in token": {"mode": "stateless", "cart": "token"},
    "token + cart in db": {"mode": "stateless", "cart": "db"},
}

#: The halves of a row, in the seed's order.
HALVES = ("stateful", "stateless")


@dataclass(frozen=True)
class Judgement:
    """How one claim of the seed is judged: from named checks, never typed in.

    ``supports`` are the checks the claim needs: if any is false, the claim does not hold.
    ``qualifies`` are checks that, when true, show a limit the claim leaves out: the claim
    holds with nuance. ``corrected`` is the sentence that says what was measured instead,
    rendered from the numbers by the experiment.
    """

    supports: tuple[str, ...]
    qualifies: tuple[str, ...] = ()
    corrected: str = ""

    def verdict(self, checks: dict[str, bool]) -> str:
        """The verdict these checks give (see the class docstring for the rule)."""
        if not all(checks[name] for name in self.supports):
            return "does not hold"
        if any(checks[name] for name in self.qualifies):
            return "holds with nuance"
        return "holds"


def judged(rules: dict[str, Judgement], corrected: dict[str, str]) -> dict[str, Judgement]:
    """An experiment's claims: each of its ``rules`` with the sentence ``corrected`` gives it.

    An experiment declares once, as data (its module's ``CLAIMS``), which checks judge each claim; what a
    run adds is what only a run can: the sentences rendered from its numbers, one per claim.
    """
    if corrected.keys() != rules.keys():
        raise ValueError(f"one corrected sentence per claim: the claims are {list(rules)}, "
                         f"the sentences are for {list(corrected)}")
    return {key: replace(rule, corrected=corrected[key]) for key, rule in rules.items()}


@dataclass
class Evidence:
    """What one experiment measured and what that says about its row of the table.

    ``checks`` are named facts, each a bool computed from ``measurements``. ``claims`` judges
    each half of the row (``"stateful"``, ``"stateless"``) and each benefit the row tests
    (``"5b"``, ...) from those checks, so the two halves get their own verdicts: one verdict
    for a whole row would compress two claims into one word. ``reading`` is the paragraph of
    what was measured, rendered from the numbers.
    """

    row: str
    measurements: dict[str, Any]
    checks: dict[str, bool]
    claims: dict[str, Judgement] = field(default_factory=dict)
    reading: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, judgement in self.claims.items():
            if key not in HALVES and key not in _benefit_codes():
                raise ValueError(f"claims are keyed by {HALVES} or a benefit code, not {key!r}")
            unknown = [n for n in (*judgement.supports, *judgement.qualifies) if n not in self.checks]
            if unknown:
                raise ValueError(f"claim {key!r} names checks that were not measured: {unknown}")

    @property
    def verdicts(self) -> dict[str, str]:
        """``{"stateful": ..., "stateless": ...}``: the verdict on each half of the row."""
        return {k: j.verdict(self.checks) for k, j in self.claims.items() if k in HALVES}

    @property
    def benefits(self) -> dict[str, str]:
        """Benefit code -> verdict, for the benefits of the seed this row tests."""
        return {k: j.verdict(self.checks) for k, j in self.claims.items() if k not in HALVES}

    def conclusion(self) -> Conclusion:
        """The measured conclusion as Markdown: display it (``display(ev.conclusion())``)."""
        return Conclusion(self)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>"
                       for k, v in self.measurements.items())
        checks = "".join(f"<li>{_mark(ok)} {html.escape(name)}</li>" for name, ok in self.checks.items())
        verdicts = "; ".join(f"{html.escape(_claim_name(k))}: <b>{html.escape(v)}</b>"
                             for k, v in {**self.verdicts, **self.benefits}.items())
        return (f"<div><b>{html.escape(self.row)}</b>: {verdicts} (measured in {self.seconds:.1f} s)"
                f"<p>{html.escape(self.reading)}</p><table>{rows}</table><ul>{checks}</ul></div>")


def check_size(name: str, value: Any, low: float, high: float, *, whole: bool = True) -> None:
    """Refuse a ``run()`` argument outside ``low``..``high`` (or not a whole number, when ``whole``) in words."""
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        what = "a whole number" if whole else "a number"
        raise ValueError(f"{name} must be {what} from {low:g} to {high:g}, not {value!r}")


def _mark(ok: bool) -> str:
    """A check's outcome in words and a symbol, never by colour alone."""
    return "&#10003; yes:" if ok else "&#10007; no:"


def _benefit_codes() -> dict[str, tuple[str, str]]:
    from ..table import BENEFITS

    return BENEFITS


def _claim_name(key: str) -> str:
    if key in HALVES:
        return f"{key} half"
    return f"benefit {key}"


def _seed_words(row: str, key: str) -> str:
    """The seed's own words for a half-row or a benefit (empty when the row is not in the table)."""
    from ..table import BENEFITS, CHOOSING, ROWS

    if key in BENEFITS:
        return BENEFITS[key][1]
    for r in (*ROWS, CHOOSING):
        if r.key == row:
            return getattr(r, key)
    return ""


class Conclusion:
    """An Evidence's conclusion, rendered from its checks: Markdown in a notebook, text elsewhere."""

    def __init__(self, evidence: Evidence) -> None:
        self.evidence = evidence

    def _lines(self) -> list[str]:
        ev = self.evidence
        lines: list[str] = []
        for key, judgement in ev.claims.items():
            verdict = judgement.verdict(ev.checks)
            who = f"The **{key}** half" if key in HALVES else f"Benefit **{key}**"
            words = _seed_words(ev.row, key)
            quoted = f' ("{words}")' if words else ""
            lines.append(f"- {who}{quoted}: **{verdict}**. {judgement.corrected}".rstrip())
            for name in (*judgement.supports, *judgement.qualifies):
                role = "needs" if name in judgement.supports else "limit"
                outcome = "yes" if ev.checks[name] else "no"
                lines.append(f"    - {role}: {name}: **{outcome}**")
        if ev.reading:
            lines += ["", f"Measured: {ev.reading}"]
        return lines

    def _repr_markdown_(self) -> str:
        return "\n".join(self._lines())

    def __str__(self) -> str:
        return self._repr_markdown_().replace("**", "")

    def __repr__(self) -> str:
        return str(self)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value)


class progress:
    """A progress bar in a notebook (``tqdm.auto``: an ipywidgets bar in a kernel), silent elsewhere.

    ``for step in progress(range(n), "measuring"): ...``. A maintained library's bar rather than a
    hand-written one: it also shows the rate and the time left, in words as well as a bar.
    """

    def __init__(self, steps: Any, description: str = "") -> None:
        self.steps = list(steps)
        self.description = description

    def __iter__(self) -> Iterator[Any]:
        if not journal.in_a_notebook():  # a script or a test: no bar, no stray output
            yield from self.steps
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm missing: run without a bar
            yield from self.steps
            return
        with tqdm(self.steps, desc=self.description or None, total=len(self.steps)) as bar:
            yield from bar


_latest: dict[str, Evidence] = {}


def record(evidence: Evidence) -> Evidence:
    """Remember ``evidence`` as this kernel's latest for its row (the scoreboard reads it).

    In a notebook kernel it is also saved to the learner's journal (:mod:`.journal`), so notebook 12,
    which runs in a kernel of its own, can show the runs made in the other notebooks.
    """
    _latest[evidence.row] = evidence
    if journal.in_a_notebook():
        journal.save(evidence)
    return evidence


def latest() -> dict[str, Evidence]:
    """The latest Evidence recorded in this kernel, by row key."""
    return dict(_latest)


def forget(row: str | None = None) -> None:
    """Forget this kernel's latest evidence for ``row`` (every row when None): the scoreboard then
    falls back to a saved run or says the row is not measured yet."""
    if row is None:
        _latest.clear()
    else:
        _latest.pop(row, None)


from . import journal as journal  # noqa: E402  (needs Evidence defined above)
from .prose import check_prose as check_prose  # noqa: E402  (needs Evidence defined above)
