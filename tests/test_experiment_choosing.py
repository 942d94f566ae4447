"""Notebook 12, choosing: the shared-store design against the two pure ones, on the same axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import statelab as sl  # noqa: E402
from statelab.experiments import VERDICTS, Evidence, choosing  # noqa: E402


@pytest.fixture(scope="module")
def ev() -> Evidence:
    return choosing.run(quick=True)


def test_run_quick_reaches_a_verdict_from_its_checks(ev):
    assert ev.row == "choosing" and ev.verdict in VERDICTS
    assert ev.checks and all(ev.checks.values()), ev.checks
    m = ev.measurements
    assert m["lost_on_crash"]["shared"] == 0 < m["lost_on_crash"]["sticky"]
    assert m["found_share_round_robin"]["shared"] == 1.0 > m["found_share_round_robin"]["sticky"]
    assert m["replays_accepted_after_logout"] == {"sticky": 0, "tokens": m["replays"], "shared": 0}
    assert m["store_trips_per_request"]["shared"] >= 1 and m["store_trips_per_request"]["tokens"] == 0
    assert ev.verdict == "holds with nuance"     # every feature holds, at the price of the store trips


def test_table_and_plot(ev):
    table = choosing.table_html(ev)
    assert all(label in table for label in choosing.DESIGNS.values())
    assert table.count("<tr>") == 6
    fig = choosing.plot(ev)
    assert fig.axes[0].get_ylabel() == "share" and len(fig.axes[0].patches) == 9


def test_run_refuses_silly_sizes():
    with pytest.raises(ValueError, match="users"):
        choosing.run(users=1)


def test_counting_store_counts_what_the_servers_ask(tmp_path):
    store = choosing.CountingStore(sl.SqliteStore(tmp_path / "s.sqlite3"))
    with sl.Server("stateful", store=store) as server:
        server.start()
        alice = sl.Client(server.url)
        alice.login("alice")          # create
        alice.cart()                  # get
        alice.add_to_cart("book")     # get + update
        alice.logout()                # delete
        assert store.trips == 5 and store.count() == 0
    store.inner.close()
