"""The foundation notebooks (00-02) teach the two axes and state no measured outcome in static prose.

Executing them is test_notebooks.py's job (and nbval's); this module reads their text: 00 draws the two axes as a
Mermaid diagram and names the four designs exactly as ``statelab.experiments.DESIGNS`` does, and no markdown cell of
00-02 states a verdict (those are rendered from measurements, in the experiment notebooks).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from statelab.experiments import DESIGNS
from statelab.experiments.prose import verdict_claims

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
FOUNDATIONS = [NOTEBOOKS / name for name in
               ("00_start_here.ipynb", "01_stateful_sessions.ipynb", "02_stateless_tokens.ipynb")]


def _markdown(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]


def test_start_here_draws_the_two_axes_and_names_the_four_designs():
    text = "\n".join(_markdown(FOUNDATIONS[0]))
    diagrams = re.findall(r"```mermaid\n(.*?)```", text, flags=re.S)
    assert len(diagrams) == 1, "00 draws the two axes as one Mermaid diagram (JupyterLab 4 renders it)"
    diagram = diagrams[0]
    for choice in ("session id cookie", "JWT bearer token", "signed cookie",
                   "server-side session", "inside the token", "shared database"):
        assert choice in diagram, f"the diagram does not show {choice!r}"
    for design in DESIGNS:
        assert design in diagram, f"the diagram does not name the design {design!r}"
        assert text.count(design) >= 2, f"the grid table does not name {design!r}"
    source = "\n".join(c.source for c in nbformat.read(FOUNDATIONS[0], as_version=4).cells if c.cell_type == "code")
    assert "DESIGNS" in source and "benefit_row" in source, "00 builds its servers and its benefit map from data"


@pytest.mark.parametrize("path", FOUNDATIONS, ids=[p.name for p in FOUNDATIONS])
def test_static_prose_states_no_verdict(path: Path):
    assert path.exists()
    claims = [claim for i, cell in enumerate(_markdown(path)) for claim in verdict_claims(cell, i)]
    assert not claims, f"static markdown states a verdict; render it from the measurement instead: {claims}"
