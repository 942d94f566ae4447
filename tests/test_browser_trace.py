"""A drawn trace (sl.ui.trace) renders in a real JupyterLab: a Mermaid picture whose alt text is the trace's title,
and no syntax-error picture. The output is made here from real traffic and stored in a notebook, so no kernel runs."""

from __future__ import annotations

from pathlib import Path

import pytest

import statelab as sl

pytestmark = pytest.mark.browser


def test_a_trace_output_renders_as_a_sequence_diagram_in_jupyterlab(lab, page):
    import nbformat

    from browser import notebook_url

    with sl.Cluster(2, "stateful", store="sqlite") as cluster:
        alice = sl.Client(cluster.url, traced=True)
        alice.login("alice")
        cluster.kill(1)
        answers = [alice.cart() for _ in range(2)]
    view = sl.ui.trace(answers)
    assert view.resends, "the crashed server was never tried: nothing re-sent to draw"
    shown = nbformat.v4.new_output("display_data", data={"text/markdown": view._repr_markdown_(),
                                                         "text/plain": str(view)})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("sl.ui.trace(answers)", outputs=[shown])])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, Path(lab.root) / "a_trace.ipynb")
    page.goto(notebook_url(lab.url, "a_trace.ipynb"))
    page.wait_for_function("() => document.querySelectorAll('.jp-RenderedMermaid img').length >= 1", timeout=60_000)
    drawn = page.locator(".jp-RenderedMermaid").first
    assert drawn.locator("img").first.get_attribute("alt") == view.title
    assert "jp-mod-warning" not in (drawn.get_attribute("class") or "")
