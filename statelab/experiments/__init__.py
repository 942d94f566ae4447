"""One experiment per row of the comparison table (see :mod:`statelab.table`).

Each module has ``run(...) -> Evidence``: it starts the servers it needs, drives them,
measures, stops them, and *computes* from the numbers a verdict on each half of its row (the
stateful claim and the stateless claim, each a :class:`Judgement`) and on each benefit of the source text
the row tests. Nothing here types a verdict in by hand, and every default is sized to finish in a
few seconds on one busy CPU (Binder), with verdicts that stay the same from run to run.
"""

from __future__ import annotations

import hashlib
import html
import importlib.util
import operator
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import journal, kernel

#: The verdicts an experiment can reach about one claim of the source text (a half-row or a benefit).
VERDICTS = ("holds", "holds with nuance", "does not hold")

#: The four designs the rows compare: two choices, who you are (session id or token) and where the cart
#: lives (in the session, in the token, or in a shared database). Values are ``Cluster`` keyword arguments.
DESIGNS: dict[str, dict[str, Any]] = {
    "session + memory": {"mode": "stateful", "store": "memory", "cart": "session"},
    "session + shared store": {"mode": "stateful", "store": "sqlite", "cart": "session"},
    "token + cart in token": {"mode": "stateless", "cart": "token"},
    "token + cart in db": {"mode": "stateless", "cart": "db"},
}

#: The halves of a row, in the source text's order.
HALVES = ("stateful", "stateless")


def design_options(design: str, store: str = "sqlite") -> dict[str, Any]:
    """``Cluster`` keyword arguments for ``design`` (a key of :data:`DESIGNS`) with its shared parts in ``store``.

    ``store="valkey"`` (ask :func:`statelab.topology.cluster.shared_store` which one this machine has)
    keeps the sessions of "session + shared store" and the cart table of "token + cart in db" in a real
    Valkey, a network service as in production: both production designs then keep their data in the same
    kind of store, like for like. ``"sqlite"`` keeps :data:`DESIGNS` as it is (a file on this machine).
    """
    if store not in ("sqlite", "valkey"):
        raise ValueError(f"store must be 'sqlite' or 'valkey', not {store!r}")
    options = dict(DESIGNS[design])
    if store == "valkey" and design in ("session + shared store", "token + cart in db"):
        options["store"] = "valkey"  # a token design's cart table goes into the cluster's Valkey with it
    return options


_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq}


@dataclass(frozen=True)
class Check:
    """One named fact an experiment computes: a short ``id`` and a label built from its threshold.

    The id is what notebooks, tests and :class:`Judgement` use (``ev.checks["store_lookup"]``,
    ``ev.require("store_lookup")``), so rewording a label never breaks a notebook. The threshold is
    written once, here: the label says it (``text`` holds ``{t}`` where the number goes) and calling the
    check compares a measured value with it, so the sentence and the computation cannot disagree.

    ``mechanism=True`` marks a count or a status (who lost what, which answer came back) that any
    machine must reproduce; a notebook's self-check asserts those (:meth:`Evidence.require_mechanisms`),
    never a comparison of timings, which another machine may measure otherwise (a finding, not an error).
    """

    id: str
    text: str
    threshold: float | None = None
    op: str = ">"
    unit: str = ""
    mechanism: bool = False

    def __post_init__(self) -> None:
        if not self.id or not self.id.replace("_", "").isalnum() or self.id != self.id.lower():
            raise ValueError(f"a check id is short, lower case and snake_case, not {self.id!r}")
        if self.op not in _COMPARE:
            raise ValueError(f"op must be one of {list(_COMPARE)}, not {self.op!r}")

    @property
    def label(self) -> str:
        """The check in words, with its threshold written in."""
        return self.text.format(t=_number(self.threshold)) if self.threshold is not None else self.text

    def __call__(self, value: Any = None, *, ok: bool | None = None, shown: str = "") -> Outcome:
        """The outcome for a measured ``value`` (compared with the threshold), or for ``ok`` computed by the caller.

        ``shown`` says what was measured, in words; by default the value and the threshold,
        ``"12.3x (needs > 10x)"``.
        """
        if ok is None:
            if self.threshold is None:
                raise ValueError(f"check {self.id!r} has no threshold: pass ok=")
            ok = _COMPARE[self.op](value, self.threshold)
            shown = shown or f"{_number(value)}{self.unit} (needs {self.op} {_number(self.threshold)}{self.unit})"
        elif not shown and value is not None:
            shown = _number(value) + self.unit
        return Outcome(self, bool(ok), shown)


class Checks(Mapping[str, Check]):
    """A row's checks by id, declared once as a table (:func:`checks`): ``CHECKS.store_kept(ok=...)``.

    A mapping too, for ids built at run time (``CHECKS[f"{design}_catalog_hits"]``) and for going through them all.
    """

    def __init__(self, found: Iterable[Check]) -> None:
        self._by_id: dict[str, Check] = {}
        for check in found:
            if check.id in self._by_id:
                raise ValueError(f"check {check.id!r} is declared twice")
            self._by_id[check.id] = check

    def __getitem__(self, key: str) -> Check:
        return self._by_id[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __getattr__(self, name: str) -> Check:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._by_id[name]
        except KeyError:
            raise AttributeError(f"no check {name!r}; the checks are {sorted(self._by_id)}") from None


_ROW = re.compile(r"(?P<id>[a-z0-9_{}]+)"
                  r"(?:\s+(?P<op>[<>]=?|==)\s*(?P<threshold>\d+(?:\.\d+)?|[A-Za-z_]\w*)(?P<unit>[^,]*))?"
                  r"(?P<mechanism>,\s*mechanism)?")


def checks(table: str, *, each: Iterable[str] = (), **thresholds: float) -> Checks:
    """A row's :class:`Check` declarations, one row of ``table`` each, in the words of the labels they make::

        store_lookup > 10x: a shared-store lookup, with no distance, costs over {t}x a memory lookup
        hung_unchecked >= HANG_TIMEOUT s, mechanism: a hung new version put back unchecked: every request sent
            to it waited the balancer's timeout ({t} s) and failed
        store_kept, mechanism: session + shared store: no deploy logged out anyone

    A row is the check's id, then (when a measured value is compared) the comparison, its threshold (a number, or
    the name of one of ``thresholds``) and its unit as the label prints it (``10x``, ``25%``, `` ms``); then
    ``mechanism`` when it is a count or a status any machine must reproduce; after the colon, the label, ``{t}``
    where the threshold goes. An indented line goes on with the label above it. A row whose id holds ``{each}``
    stands for one check per item of ``each``, the item written in for ``{each}`` in the id and the label.

    Why a table: an experiment's checks are data; a row says each fact once, with no Python around it to copy
    from the row before, and the whole list reads as what the row measures.
    """
    rows: list[str] = []
    for line in table.strip("\n").splitlines():
        if line[:1].isspace() and rows:
            rows[-1] += " " + line.strip()
        elif line.strip():
            rows.append(line.strip())
    found = []
    for row in rows:
        head, colon, text = row.partition(": ")
        match = _ROW.fullmatch(head)
        if not colon or not match:
            raise ValueError(f"a check row reads 'id [op threshold unit][, mechanism]: label', not {row!r}")
        options: dict[str, Any] = {"mechanism": bool(match["mechanism"])}
        if match["threshold"]:
            name = match["threshold"]
            if name[0].isdigit():
                threshold: float = float(name) if "." in name else int(name)
            elif name in thresholds:
                threshold = thresholds[name]
            else:
                raise ValueError(f"check row {match['id']!r} names a threshold {name!r} that was not given")
            options.update(threshold=threshold, op=match["op"], unit=match["unit"].rstrip())
        items = each if "{each}" in match["id"] else ("",)
        found += [Check(match["id"].replace("{each}", item), text.replace("{each}", item), **options)
                  for item in items]
    return Checks(found)


@dataclass(frozen=True)
class Outcome:
    """A :class:`Check` judged on one run: whether it held, and what was measured (in words)."""

    check: Check
    ok: bool
    shown: str = ""


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}" if abs(value) < 1e15 else f"{value:g}"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def conditions(*, designs: Iterable[str], distance: str = "none: every part on one machine, over loopback",
               servers: str = "threads of one process (the notebook's)", crowd: str = "",
               **more: str) -> dict[str, str]:
    """The conditions a verdict was measured under, in words, for :attr:`Evidence.conditions`.

    A verdict holds under its conditions, not in general: the distance between the tiers, whether
    the servers are threads of one process or processes, the cores, how many users, which designs.
    The cores are read from this process's CPU affinity (what it may really use), not assumed.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    found = {"designs compared": ", ".join(designs), "distance between tiers": distance, "servers": servers,
             "cores": f"{cores} usable by this kernel, shared with the load it makes"}
    if crowd:
        found["crowd"] = crowd
    found.update(more)
    return found


@dataclass(frozen=True)
class Judgement:
    """How one claim of the source text is judged: from named checks, never typed in.

    ``supports`` are the checks the claim needs: if any is false, the claim does not hold.
    ``qualifies`` are checks that, when true, show a limit the claim leaves out: the claim
    holds with nuance. ``corrected`` is the sentence that says what was measured instead,
    rendered from the numbers by the experiment.
    """

    supports: tuple[str, ...]
    qualifies: tuple[str, ...] = ()
    corrected: str = ""

    def __post_init__(self) -> None:  # checks may be named by their Check objects: keep their ids
        object.__setattr__(self, "supports", tuple(getattr(c, "id", c) for c in self.supports))
        object.__setattr__(self, "qualifies", tuple(getattr(c, "id", c) for c in self.qualifies))

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

    ``checks`` are named facts, each a bool computed from ``measurements``: pass a list of
    :class:`Outcome` (``[CHECKS.store_lookup(ratio), CHECKS.minted(ok=..., shown=...)]``) and each is kept by its
    check's id, with its label (``labels``) and what was measured (``shown``). ``conditions`` says
    what the run was measured under (:func:`conditions`); the conclusion opens with it. ``claims`` judges
    each half of the row (``"stateful"``, ``"stateless"``) and each benefit the row tests
    (``"5b"``, ...) from those checks, so the two halves get their own verdicts: one verdict
    for a whole row would compress two claims into one word. ``reading`` is the paragraph of
    what was measured, rendered from the numbers.
    """

    row: str
    measurements: dict[str, Any]
    checks: dict[str, bool] | list[Outcome]
    claims: dict[str, Judgement] = field(default_factory=dict)
    reading: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    conditions: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    shown: dict[str, str] = field(default_factory=dict)
    mechanisms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.checks, dict):
            outcomes = list(self.checks)
            ids = [o.check.id for o in outcomes]
            if len(set(ids)) != len(ids):
                raise ValueError(f"each check once: {ids}")
            self.checks = {o.check.id: o.ok for o in outcomes}
            self.labels = {**{o.check.id: o.check.label for o in outcomes}, **self.labels}
            self.shown = {**{o.check.id: o.shown for o in outcomes if o.shown}, **self.shown}
            self.mechanisms = tuple(dict.fromkeys((*self.mechanisms, *(o.check.id for o in outcomes
                                                                       if o.check.mechanism))))
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
        """Benefit code -> verdict, for the benefits of the source text this row tests."""
        return {k: j.verdict(self.checks) for k, j in self.claims.items() if k not in HALVES}

    def label(self, check: str) -> str:
        """A check's label (its id when the experiment gave none)."""
        return self.labels.get(check, check)

    def require(self, *checks: str | Check) -> None:
        """Assert that each named check held; the error names its label and what was measured.

        For a notebook's self-check: name the mechanisms (counts, statuses), never a verdict.
        """
        for check in checks:
            key = getattr(check, "id", check)
            if key not in self.checks:
                raise KeyError(f"{self.row} has no check {key!r}; its checks are {sorted(self.checks)}")
            if not self.checks[key]:
                measured = f" (measured: {self.shown[key]})" if key in self.shown else ""
                raise AssertionError(f"{self.row}: expected {self.label(key)}{measured}")

    def require_mechanisms(self) -> list[str]:
        """Assert every check the experiment marked a mechanism (``Check(mechanism=True)``); returns their ids."""
        if not self.mechanisms:
            raise AssertionError(f"{self.row}: this run declares no mechanism to check")
        self.require(*self.mechanisms)
        return list(self.mechanisms)

    def conclusion(self) -> Conclusion:
        """The measured conclusion as Markdown: display it (``display(ev.conclusion())``)."""
        return Conclusion(self)

    def answer(self) -> Any:
        """What this run measured, in the words of its notebook's prediction choices: the row module's
        ``answer(ev)``, so a "you predicted; you measured" cell is one line:
        ``sl.ui.reveal(row, ev.answer(), why=module.WHY)``."""
        import importlib

        module = importlib.import_module(f"statelab.experiments.{self.row}")
        if not hasattr(module, "answer"):
            raise AttributeError(f"the {self.row} experiment has no answer(ev) for a prediction")
        return module.answer(self)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>"
                       for k, v in self.measurements.items())
        checks = "".join(f"<li>{_mark(ok)} {html.escape(self.label(name))}{_shown_html(self.shown.get(name))}</li>"
                         for name, ok in self.checks.items())
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


def _shown_html(shown: str | None) -> str:
    return f" &mdash; measured {html.escape(shown)}" if shown else ""


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
    """The source text's own words for a half-row or a benefit (empty when the row is not in the table)."""
    from ..table import BENEFITS, CHOOSING, ROWS

    if key in BENEFITS:
        return BENEFITS[key][1]
    for r in (*ROWS, CHOOSING):
        if r.key == row:
            return getattr(r, key)
    return ""


#: The plain sentence each verdict opens with, before the corrected sentence and the checks behind it: a learner
#: reads what the verdict means before reading how it was reached.
PLAIN = {
    "holds": "What the source text says is what you measured.",
    "holds with nuance": "What the source text says happened, with a limit it does not mention (the limit checks "
                         "below).",
    "does not hold": "Not what you measured: a check this claim needs came out false (below).",
}


class Conclusion:
    """An Evidence's conclusion, rendered from its checks: Markdown in a notebook, text elsewhere.

    Per claim: the verdict and one plain sentence first (``PLAIN``), then the sentence the numbers wrote, then the
    checks ("needs" and "limit") it was computed from."""

    def __init__(self, evidence: Evidence) -> None:
        self.evidence = evidence

    def _lines(self) -> list[str]:
        ev = self.evidence
        lines: list[str] = []
        if ev.conditions:
            lines += ["Measured under these conditions (a verdict holds under them, not in general): "
                      + "; ".join(f"{_md(k)}: {_md(v)}" for k, v in ev.conditions.items()) + ".", ""]
        for key, judgement in ev.claims.items():
            verdict = judgement.verdict(ev.checks)
            who = f"The **{key}** half" if key in HALVES else f"Benefit **{key}**"
            words = _seed_words(ev.row, key)
            quoted = f' ("{_md(words)}")' if words else ""
            plain = PLAIN.get(verdict, "")
            lines.append(f"- {who}{quoted}: **{verdict}**. {plain} {_md(judgement.corrected)}".rstrip())
            for name in (*judgement.supports, *judgement.qualifies):
                role = "needs" if name in judgement.supports else "limit"
                outcome = "yes" if ev.checks[name] else "no"
                measured = f" (measured {_md(ev.shown[name])})" if name in ev.shown else ""
                lines.append(f"    - {role}: {_md(ev.label(name))}: **{outcome}**{measured}")
        if ev.reading:
            lines += ["", f"Measured: {_md(ev.reading)}"]
        return lines

    def _repr_markdown_(self) -> str:
        return "\n".join(self._lines())

    def __str__(self) -> str:
        text = self._repr_markdown_().replace("**", "")
        for escaped, plain in (("\\*", "*"), ("\\_", "_"), ("\\[", "["), ("\\`", "`")):
            text = text.replace(escaped, plain)
        return html.unescape(text)

    def __repr__(self) -> str:
        return str(self)


def _md(text: Any) -> str:
    """Text made safe inside Markdown: no HTML, and no emphasis or link syntax from measured strings."""
    escaped = html.escape(str(text), quote=False)
    return escaped.replace("*", "\\*").replace("_", "\\_").replace("[", "\\[").replace("`", "\\`")


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
        if not kernel.in_a_notebook():  # a script or a test: no bar, no stray output
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

    In a notebook kernel it is also saved to the learner's journal (:mod:`statelab.journal`), so notebook 12,
    which runs in a kernel of its own, can show the runs made in the other notebooks.
    """
    _latest[evidence.row] = evidence
    if kernel.in_a_notebook():
        save(evidence)
    return evidence


# --------------------------------------------------------------------------- the journal (statelab.journal)

SCHEMA = 2
KEPT_EXTRA = ("quick", "key_numbers")   # the only parts of ``extra`` worth showing later, and safe to keep


def fingerprint(row: str) -> str:
    """A short hash of the source of ``statelab.experiments.<row>`` ("" when there is no such module).

    A saved run is read back only while the experiment module that made it is unchanged: a run of an older
    experiment could carry checks the current one no longer makes."""
    try:
        spec = importlib.util.find_spec(f"{__name__}.{row}")
        origin = spec.origin if spec is not None else None
        return hashlib.sha256(Path(origin).read_bytes()).hexdigest()[:16] if origin else ""
    except (ImportError, OSError, ValueError):
        return ""


def as_record(ev: Evidence) -> dict[str, Any]:
    """``ev`` as the journal keeps it: plain JSON data, never cookies, tokens or other objects from ``extra``."""
    extra = ev.extra if isinstance(ev.extra, dict) else {}
    return {
        "schema": SCHEMA, "fingerprint": fingerprint(ev.row),
        "row": ev.row, "measurements": ev.measurements, "checks": ev.checks,
        "claims": {k: {"supports": list(j.supports), "qualifies": list(j.qualifies), "corrected": j.corrected}
                   for k, j in ev.claims.items()},
        "reading": ev.reading, "seconds": ev.seconds, "conditions": ev.conditions, "labels": ev.labels,
        "shown": ev.shown, "mechanisms": list(ev.mechanisms),
        "extra": {k: extra[k] for k in KEPT_EXTRA if k in extra},
    }


def from_record(data: Any) -> Evidence | None:
    """The Evidence a journal record holds; None when it is from another schema or another version of its
    experiment, or is not a record at all."""
    try:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            return None
        if data.get("fingerprint") != fingerprint(str(data.get("row"))):
            return None   # made by another version of the experiment
        claims = {k: Judgement(tuple(j["supports"]), tuple(j["qualifies"]), j["corrected"])
                  for k, j in data["claims"].items()}
        extra = {**data.get("extra", {}), "saved": data.get("saved")}
        return Evidence(row=data["row"], measurements=data["measurements"], checks=data["checks"], claims=claims,
                        reading=data["reading"], seconds=float(data["seconds"]), extra=extra,
                        conditions=data.get("conditions", {}), labels=data.get("labels", {}),
                        shown=data.get("shown", {}), mechanisms=tuple(data.get("mechanisms", ())))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def save(ev: Evidence) -> Path | None:
    """Keep ``ev`` in the learner's journal as its row's latest run (atomically); None if not kept."""
    if not isinstance(ev, Evidence):
        return None
    return journal.save(ev.row, as_record(ev))


def saved() -> dict[str, Evidence]:
    """Every row's latest run saved in the journal (by any notebook's kernel), by row key."""
    found = {}
    for name, data in journal.load().items():
        ev = from_record(data)
        if ev is not None and ev.row == name:
            found[name] = ev
    return found


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
