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

from prose import verdict_claims
from statelab.experiments import DESIGNS
from statelab.table import BENEFITS

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
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
    assert "DESIGNS" in source and "sl.table.benefits_markdown()" in source, \
        "00 builds its servers and its benefit map from data"


#: The seed's own name for each benefit (its sections 4 and 5; statelab/table.json keeps them).
SEED_BENEFIT_NAMES = {"4a": "session persistence", "4b": "efficient resource use", "4c": "personalization",
                      "4d": "enhanced security", "5a": "high scalability", "5b": "fault tolerance",
                      "5c": "simplified load balancing", "5d": "better performance"}


def test_each_benefit_is_the_seeds_claim_not_a_measured_result():
    """A benefit states what the seed claims (a notebook then judges it); it must not promise what was measured
    otherwise, e.g. 4d is "centralized session management supports strong authentication and encryption",
    not "revoke a session at once" (notebook 11 shows revocation is central, not instant everywhere)."""
    assert {code: words.split(":")[0].lower() for code, (_, words) in BENEFITS.items()} == SEED_BENEFIT_NAMES
    security = BENEFITS["4d"][1].lower()
    assert "centralized session management" in security and "authentication" in security
    assert "at once" not in security and "revoke" not in security


@pytest.mark.parametrize("path", FOUNDATIONS, ids=[p.name for p in FOUNDATIONS])
def test_static_prose_states_no_verdict(path: Path):
    assert path.exists()
    claims = [claim for i, cell in enumerate(_markdown(path)) for claim in verdict_claims(cell, i)]
    assert not claims, f"static markdown states a verdict; render it from the measurement instead: {claims}"


@pytest.mark.browser
def test_the_diagram_renders_in_jupyterlab(tmp_path: Path):
    """JupyterLab 4 draws the Mermaid block as a picture whose text alternative is the diagram's accTitle; a syntax
    error would show Mermaid's error picture or the raw source instead. Only the markdown renders: no kernel runs."""
    import shutil

    from browser import VIEWPORT, chromium, jupyter_lab, notebook_url, require_browser, screenshot

    require_browser()
    shutil.copy(FOUNDATIONS[0], tmp_path / FOUNDATIONS[0].name)
    with jupyter_lab(tmp_path, tmp_path / "home") as lab, chromium() as browser:
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(notebook_url(lab.url, FOUNDATIONS[0].name))
        rendered = page.locator(".jp-RenderedMermaid").first
        rendered.wait_for(state="attached", timeout=60_000)
        picture = rendered.locator("img").first
        picture.wait_for(state="attached", timeout=10_000)
        assert picture.get_attribute("alt") == "Two axes of a design"
        assert "jp-mod-warning" not in (rendered.get_attribute("class") or ""), rendered.text_content()
        picture.scroll_into_view_if_needed()
        box = picture.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 150, box
        screenshot(picture, "00_start_here-two-axes")
