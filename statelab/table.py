"""The source text's comparison table as data: nine rows, each linked to its experiment and notebook.

The claims are quoted word for word from the source text the course sets out to test ("the seed";
``table.json`` is this repository's copy of its table and benefits, see docs/ARCHITECTURE.md) so a
notebook can show them side by side and then test them. ``benefits`` names the benefits of
sections 4 (stateful, ``4a``-``4d``) and 5 (stateless, ``5a``-``5d``) that the row's notebook
tests and judges: each benefit is judged in exactly one notebook, so the scoreboard has one verdict
for each of the eight.

The source text's words are data: they live in ``table.json`` next to this module (package data), read once at
import into the same :class:`Row` objects and ``BENEFITS`` tuples the notebooks use.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from importlib.resources import files
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class Row:
    """One row of the comparison table."""

    key: str
    title: str
    stateful: str
    stateless: str
    notebook: str
    benefits: tuple[str, ...]

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Row:
        """A row from its entry in ``table.json`` (every field named; ``benefits`` a list)."""
        return cls(**{**data, "benefits": tuple(data["benefits"])})

    @property
    def experiment(self) -> ModuleType:
        """The experiment module for this row (``statelab.experiments.<key>``)."""
        return importlib.import_module(f"statelab.experiments.{self.key}")


_TABLE = json.loads(files(__package__).joinpath("table.json").read_text(encoding="utf-8"))

#: The benefits of sections 4 and 5 of the source text: code -> (side, the source text's words).
BENEFITS: dict[str, tuple[str, str]] = {code: (b["side"], b["text"]) for code, b in _TABLE["benefits"].items()}

#: The nine rows, in the source text's order.
ROWS: tuple[Row, ...] = tuple(Row.from_data(r) for r in _TABLE["rows"])

#: Notebook 12 judges the source text's two definitions (sections 2 and 3) on all four designs at once: not a row of
#: the table, so not in ``ROWS``, but its claims are the source text's words like any row's.
CHOOSING = Row.from_data(_TABLE["choosing"])


def benefit_row(code: str) -> Row:
    """The row whose notebook judges benefit ``code`` (e.g. ``"5b"``)."""
    for r in ROWS:
        if code in r.benefits:
            return r
    raise KeyError(f"no row judges benefit {code!r}; benefits are {sorted(BENEFITS)}")


def row(key: str) -> Row:
    """The row called ``key`` (e.g. ``"scalability"``)."""
    for r in ROWS:
        if r.key == key:
            return r
    raise KeyError(f"no row {key!r}; rows are {[r.key for r in ROWS]}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def rows_markdown(link: bool = True) -> str:
    """The nine rows as a Markdown table: the source text's two claims, and the notebook that tests them."""
    lines = ["| Row | Stateful architecture | Stateless architecture | Tested in |", "|---|---|---|---|"]
    for r in ROWS:
        where = f"[{r.notebook[:2]}]({r.notebook})" if link else r.notebook[:2]
        lines.append(f"| **{_cell(r.title)}** | \"{_cell(r.stateful)}\" | \"{_cell(r.stateless)}\" | {where} |")
    return "\n".join(lines)


def benefits_markdown(link: bool = True) -> str:
    """The eight benefits as a Markdown table: code, side, the source text's words, and where each is judged."""
    lines = ["| Code | Benefit of | The source text says | Judged in |", "|---|---|---|---|"]
    for code, (side, claim) in BENEFITS.items():
        r = benefit_row(code)
        where = f"[{r.notebook[:2]} · {r.title}]({r.notebook})" if link else f"{r.notebook[:2]} · {r.title}"
        lines.append(f"| **{code}** | {side} | \"{_cell(claim)}\" | {where} |")
    return "\n".join(lines)
