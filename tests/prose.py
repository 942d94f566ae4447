"""Static prose must not contradict the measured verdict.

A notebook's markdown explains mechanisms; what was measured is rendered from the evidence
(:meth:`Evidence.conclusion`). Because prose is typed once and measurements change, this
module reads a notebook's markdown cells, finds every sentence that states a verdict on a
half-row (``stateful``/``stateless``) or a benefit (``4a``..``5d``), and compares it with the
verdicts the experiment computed. tests/notebooks/test_prose.py runs it on every experiment notebook with the
Evidence its own executed run saved, so a lesson whose words drift from its numbers fails in CI. It lives with the
tests, not in the package: it is a linter of the course's text, which a learner has no reason to run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Phrases that state a verdict, and the verdict each states (longest first: "holds with nuance" before "holds").
PHRASES: tuple[tuple[str, str], ...] = (
    (r"holds,? with (?:a )?nuance", "holds with nuance"),
    (r"holds only in part", "holds with nuance"),
    (r"(?:does not|doesn't|no longer) hold", "does not hold"),
    (r"(?:is )?wrong as written", "does not hold"),
    (r"(?:is|was) (?:simply |plainly )?wrong\b", "does not hold"),
    (r"(?:is|was) (?:exactly |simply )?right\b", "holds"),
    (r"holds as written", "holds"),
    (r"(?:claim|cell|half|sentence|benefit\s+[45][a-d]|row)\b(?:\s+\w+){0,3}?\s+holds\b", "holds"),
)
_KEY = re.compile(r"\b(stateful|stateless|[45][a-d])\b", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n\s*[-*] ")


@dataclass(frozen=True)
class VerdictClaim:
    """One sentence of static markdown that states a verdict."""

    cell: int
    sentence: str
    keys: tuple[str, ...]
    claimed: tuple[str, ...]


def verdict_claims(markdown: str, cell: int = 0) -> list[VerdictClaim]:
    """Every sentence of ``markdown`` that states a verdict (quotes and code are skipped)."""
    text = re.sub(r"```.*?```|`[^`]*`", " ", markdown, flags=re.S)
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))
    found = []
    for sentence in _SENTENCE.split(text):
        sentence = " ".join(sentence.split())
        if not sentence or sentence.endswith("?"):
            continue
        unquoted = re.sub(r'"[^"]*"|“[^”]*”', " ", sentence)
        claimed = []
        for pattern, verdict in PHRASES:
            for _ in re.finditer(pattern, unquoted, flags=re.IGNORECASE):
                claimed.append(verdict)
            unquoted = re.sub(pattern, " ", unquoted, flags=re.IGNORECASE)
        if claimed:
            keys = tuple(dict.fromkeys(k.lower() for k in _KEY.findall(sentence)))
            found.append(VerdictClaim(cell, sentence, keys, tuple(claimed)))
    return found


def contradictions(markdown_cells: list[str], evidences: list[Any]) -> list[str]:
    """What in ``markdown_cells`` contradicts the verdicts of ``evidences`` (empty: none)."""
    computed: dict[str, set[str]] = {}
    for ev in evidences:
        for key, verdict in {**ev.verdicts, **ev.benefits}.items():
            computed.setdefault(key, set()).add(verdict)
    problems = []
    for i, source in enumerate(markdown_cells):
        for claim in verdict_claims(source, i):
            where = f"markdown cell {claim.cell}: {claim.sentence!r}"
            if not claim.keys:
                problems.append(f"{where} states a verdict without naming the half or benefit; "
                                "render it from the evidence (ev.conclusion()) instead")
            elif len(set(claim.claimed)) > 1:
                problems.append(f"{where} states several verdicts in one sentence; use one sentence per half")
            else:
                for key in claim.keys:
                    if key in computed and claim.claimed[0] not in computed[key]:
                        problems.append(f"{where} says the {key} claim {claim.claimed[0]!r}, "
                                        f"but the measurement says {' / '.join(sorted(computed[key]))!r}")
    return problems


def _markdown_cells(notebook: str | Path) -> list[str]:
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in cells if c["cell_type"] == "markdown"]


def check_prose(notebook: str | Path, *evidences: Any) -> int:
    """Raise AssertionError if ``notebook``'s static markdown contradicts ``evidences``' verdicts.

    Returns how many verdict-stating sentences it compared (0 is the goal: say it with
    ``ev.conclusion()``, not in typed prose).
    """
    if not evidences:
        raise ValueError("give the Evidence the notebook measured")
    cells = _markdown_cells(notebook)
    problems = contradictions(cells, list(evidences))
    if problems:
        raise AssertionError("the notebook's prose contradicts its measurement:\n- " + "\n- ".join(problems))
    return sum(len(verdict_claims(c)) for c in cells)
