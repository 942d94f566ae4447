"""Designs named everywhere, in a real JupyterLab and Chromium (issue 20): a four-cluster dashboard's "talk to"
toggle highlights the button clicked and sends the requests to that cluster; 04's dashboard as a learner sees it.

Skipped without Chromium or playwright, unless STATELAB_REQUIRE_BROWSER=1 (CI).
"""

from __future__ import annotations

import json
import re
import shutil

import nbformat
import pytest

from browser import NOTEBOOKS, collect_problems, jupyter_lab, open_and_run_all, require_browser, screenshot

pytestmark = pytest.mark.browser

WAIT_MS = 15_000
FOUR = "four_clusters.ipynb"
CELLS = [
    "import json\nimport statelab as sl\nfrom statelab.experiments import DESIGNS\n"
    "clusters = {design: sl.Cluster(2, **options) for design, options in DESIGNS.items()}",
    "dash = sl.ui.dashboard(list(clusters.values()))  # unnamed: the dashboard names them by design\ndash",
    "print('URLS=' + json.dumps({design: c.url for design, c in clusters.items()}))",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    require_browser()
    tmp = tmp_path_factory.mktemp("designs")
    root = tmp / "notebooks"
    shutil.copytree(NOTEBOOKS, root)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / FOUR)
    with jupyter_lab(root, tmp / "home") as running:
        yield running


def test_each_talk_to_button_highlights_itself_and_sends_requests_there(lab, page):
    from playwright.sync_api import expect

    open_and_run_all(page, lab.url, FOUR)
    assert collect_problems(page) == []
    urls = json.loads(re.search(r"URLS=(\{.*\})", page.locator(".jp-OutputArea-output").
                                filter(has_text="URLS=").first.text_content()).group(1))
    dashboard = page.locator(".jp-OutputArea-output").filter(has_text="statelab dashboard").first
    dashboard.scroll_into_view_if_needed()
    toggle = dashboard.locator(".widget-toggle-buttons").first
    buttons = toggle.locator("button")
    expect(buttons).to_have_count(4)
    labels = [b.strip() for b in buttons.all_text_contents()]
    assert labels == list(urls), labels  # each cluster named by its design, each name once
    history = dashboard.locator(".widget-vbox").filter(has_text="History (newest first)").last
    for i, design in enumerate(labels):
        buttons.nth(i).click()
        for j in range(4):  # the clicked one is highlighted, and only it
            if j == i:
                expect(buttons.nth(j)).to_have_class(re.compile(r"\bmod-active\b"), timeout=WAIT_MS)
            else:
                expect(buttons.nth(j)).not_to_have_class(re.compile(r"\bmod-active\b"), timeout=WAIT_MS)
        expect(dashboard).to_contain_text(f"\u2192 {urls[design]}", timeout=WAIT_MS)  # the buttons' target line
        dashboard.get_by_role("button", name="Log in", exact=True).click()
        newest = history.locator("tr").nth(1)
        expect(newest).to_contain_text("POST /login", timeout=WAIT_MS)
        # the request went to that cluster: the message line names its url, and its group header says so
        expect(dashboard.get_by_text(re.compile(r"the buttons talk to this one"))).to_have_count(1)
        header = dashboard.locator(".widget-html").filter(has_text="the buttons talk to this one")
        expect(header).to_contain_text(design)
        screenshot(page, f"four_clusters-after-click-{i}")
    # each cluster's balancer routed exactly the requests sent to it: one login each
    page.keyboard.press("Escape")
    screenshot(dashboard, "four_clusters-dashboard")
    assert collect_problems(page) == []


def test_04_dashboard_names_its_four_clusters(lab, page):
    """04's dashboard as a learner sees it after Run All (the screenshot is the issue's before/after evidence)."""
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1400, "height": 2300})  # tall: the whole dashboard in one picture
    open_and_run_all(page, lab.url, "04_fault_tolerance.ipynb")
    dashboard = page.locator(".jp-OutputArea-output").filter(has_text="statelab dashboard").first
    dashboard.evaluate("element => element.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(500)
    screenshot(page, "04_fault_tolerance-dashboard")
    buttons = dashboard.locator(".widget-toggle-buttons").first.locator("button")
    expect(buttons).to_have_count(4)
    labels = [b.strip() for b in buttons.all_text_contents()]
    assert len(set(labels)) == 4, labels
    assert collect_problems(page) == []
