"""The start-here notebook in a real JupyterLab and a real (headless) Chromium: Run All, then use the dashboard.

What only a browser shows: the widgets render (no "Error displaying widget"), the page logs no error, and a
click on a dashboard button reaches the kernel and changes the view. Skipped without Chromium or playwright,
unless STATELAB_REQUIRE_BROWSER=1 (CI), which makes a missing browser a failure.
"""

from __future__ import annotations

import re
import time

import pytest

from browser import (
    collect_problems,
    open_and_run_all,
    screenshot,
)

pytestmark = pytest.mark.browser

START = "00_start_here.ipynb"
WAIT_MS = 15_000  # a click travels page -> kernel -> widget state -> page; seconds on a busy 2-core machine


def test_start_here_runs_and_its_dashboard_answers_clicks(lab, page):
    from playwright.sync_api import expect

    assert (lab.root / START).exists(), f"{START} is missing from notebooks/"
    start = time.perf_counter()
    open_and_run_all(page, lab.url, START)
    ran = time.perf_counter() - start
    screenshot(page, "00_start_here-run-all")
    assert collect_problems(page) == []

    dashboard = page.locator(".jp-OutputArea-output").filter(has_text="statelab dashboard").first
    dashboard.scroll_into_view_if_needed()
    # A server card is an innermost box holding a Kill button (the dashboard around it holds boxes too).
    card = dashboard.locator(".widget-vbox").filter(has=page.get_by_role("button", name="Kill", exact=True)) \
        .filter(has_not=page.locator(".widget-vbox")).first
    expect(card).to_contain_text("alive")
    card.scroll_into_view_if_needed()  # JupyterLab paints only what is on screen: inner_text() is "" elsewhere
    name = card.inner_text().split()[0]  # the card opens with the server's name
    up, total = map(int, re.search(r"(\d+)/(\d+) servers up", dashboard.inner_text()).groups())
    history = dashboard.locator(".widget-vbox").filter(has_text="History (newest first)").last

    card.get_by_role("button", name="Kill", exact=True).click()
    expect(card).to_contain_text("down", timeout=WAIT_MS)
    expect(card.get_by_role("button", name="Kill", exact=True)).to_be_disabled()
    expect(dashboard).to_contain_text(f"{up - 1}/{total} servers up")

    rows = history.locator("tr")  # a head row, then the exchanges newest first (no table before the first one)
    count = max(rows.count(), 1) + 1
    dashboard.get_by_role("button", name="Me", exact=True).click()
    expect(rows).to_have_count(count, timeout=WAIT_MS)
    newest = rows.nth(1)
    expect(newest).to_contain_text("GET /me")
    row = newest.inner_text()
    # Alone, the killed server cannot answer; behind a balancer another server answers instead.
    assert "connection refused" in row or (re.search(r"\b[2-5]\d\d\b", row) and name not in row), row

    card.get_by_role("button", name="Restart", exact=True).click()
    expect(card).to_contain_text("alive", timeout=WAIT_MS)
    expect(dashboard).to_contain_text(f"{up}/{total} servers up")
    screenshot(page, "00_start_here-after-clicks")
    screenshot(dashboard, "00_start_here-dashboard")
    assert collect_problems(page) == []
    print(f"\n{START}: opened and ran in JupyterLab in {ran:.1f} s; clicks checked in "
          f"{time.perf_counter() - start - ran:.1f} s more")
