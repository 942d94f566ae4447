"""One experiment per row of the comparison table (see :mod:`statelab.table`).

Each module has ``run(...) -> Evidence``: it starts the servers it needs, drives them,
measures, stops them, and *computes* a verdict on the seed's claim from the numbers. Nothing
here types a verdict in by hand, and every default is sized to finish in a few seconds on
one busy CPU (Binder), with a verdict that stays the same from run to run.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

#: The verdicts an experiment can reach about the seed's claim for its row.
VERDICTS = ("holds", "holds with nuance", "does not hold")


@dataclass
class Evidence:
    """What one experiment measured and what that says about the table row.

    ``checks`` are the named qualitative facts the verdict rests on (each a bool computed
    from ``measurements``); a notebook's self-check cell asserts them.
    """

    row: str
    measurements: dict[str, Any]
    checks: dict[str, bool]
    verdict: str
    reading: str
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, not {self.verdict!r}")

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>"
                       for k, v in self.measurements.items())
        checks = "".join(f"<li>{'&#10003;' if ok else '&#10007;'} {html.escape(name)}</li>"
                         for name, ok in self.checks.items())
        return (f"<div><b>{html.escape(self.row)}</b>: verdict <b>{html.escape(self.verdict)}</b>"
                f" (measured in {self.seconds:.1f} s)<p>{html.escape(self.reading)}</p>"
                f"<table>{rows}</table><ul>{checks}</ul></div>")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value)


class progress:
    """A progress bar in a notebook (an ipywidgets bar updated by value), silent elsewhere.

    ``for step in progress(range(n), "measuring"): ...``
    """

    def __init__(self, steps: Any, description: str = "") -> None:
        self.steps = list(steps)
        self.bar = None
        try:
            from IPython import get_ipython

            if get_ipython() is not None and getattr(get_ipython(), "kernel", None) is not None:
                import ipywidgets as w
                from IPython.display import display

                self.bar = w.IntProgress(value=0, min=0, max=max(len(self.steps), 1), description=description,
                                         style={"description_width": "initial"})
                display(self.bar)
        except Exception:  # no kernel, no widgets: run without a bar
            self.bar = None

    def __iter__(self) -> Iterator[Any]:
        for i, step in enumerate(self.steps, 1):
            yield step
            if self.bar is not None:
                self.bar.value = i
        if self.bar is not None:
            self.bar.bar_style = "success"


_latest: dict[str, Evidence] = {}


def record(evidence: Evidence) -> Evidence:
    """Remember ``evidence`` as this kernel's latest for its row (the scoreboard reads it)."""
    _latest[evidence.row] = evidence
    return evidence


def latest() -> dict[str, Evidence]:
    """The latest Evidence recorded in this kernel, by row key."""
    return dict(_latest)
