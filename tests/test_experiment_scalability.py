"""Row "Scalability": the experiment's verdict and checks, and the helpers it is built from."""

from __future__ import annotations

import random

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import statelab as sl  # noqa: E402
from statelab.experiments import VERDICTS, Evidence, latest, scalability  # noqa: E402


@pytest.fixture(scope="module")
def ev() -> Evidence:
    return scalability.run(quick=True)


def test_quick_run_reaches_a_verdict_from_its_checks(ev):
    assert ev.row == "scalability"
    assert ev.verdict in VERDICTS
    assert all(ev.checks.values()), {k: v for k, v in ev.checks.items() if not v}
    # stateless scales as claimed; stateful scales too, without synchronization, with sticky routing
    assert ev.verdict == "holds with nuance"
    assert latest()["scalability"] is ev


def test_round_robin_share_falls_with_servers_and_every_fix_keeps_all(ev):
    m = ev.measurements
    shares = m["share found, memory + round robin"]
    assert list(shares) == [1, 2, 3, 4] and shares[1] == 1.0 and shares[4] < 0.6
    for fix in ("memory + sticky", "shared store + round robin", "tokens + round robin"):
        assert set(m[f"share found, {fix}"].values()) == {1.0}, fix
    assert m["shared store: servers that answered 503 during the outage"] == 4
    assert m["token: refused by a server with its own key"] == m["token: sent to a server with its own key"] > 0
    assert f"{shares[4]:.0%}" in ev.reading


def test_plot_draws_one_line_per_setup_and_the_1_over_n_reference(ev):
    fig = scalability.plot(ev)
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel()
    assert len(fig.axes[0].lines) == len(scalability.SETUPS) + 1


def test_share_found_counts_requests_that_reach_the_session():
    rng = random.Random(1)
    with sl.Cluster(1, "stateful") as one, sl.Cluster(3, "stateful") as three:
        share, clients, ms = scalability.share_found(one.url, 3, 3, rng)
        assert share == 1.0 and len(clients) == 3 and len(ms) == 9
        share, _, _ = scalability.share_found(three.url, 6, 4, rng)
        assert share < 0.75  # about a third land on the server that holds the session


def test_per_call_us_times_one_call():
    assert 0 < scalability.per_call_us(lambda: sum(range(100)), calls=50, rounds=3) < 1e5


def test_bad_sizes_get_a_clear_error():
    with pytest.raises(ValueError, match="servers must be"):
        scalability.run(servers=1)
