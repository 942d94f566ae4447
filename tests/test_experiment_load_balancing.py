"""Row "Load Balancing": the experiment's verdict and checks, and its traffic helpers."""

from __future__ import annotations

import random

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import statelab as sl  # noqa: E402
from statelab.experiments import VERDICTS, Evidence, latest, load_balancing  # noqa: E402


@pytest.fixture(scope="module")
def ev() -> Evidence:
    return load_balancing.run(quick=True)


def test_quick_run_reaches_a_verdict_from_its_checks(ev):
    assert ev.row == "load_balancing"
    assert ev.verdict in VERDICTS
    assert all(ev.checks.values()), {k: v for k, v in ev.checks.items() if not v}
    assert ev.verdict == "holds with nuance"  # both claims hold; affinity has measured costs
    assert latest()["load_balancing"] is ev


def test_affinity_keeps_stateful_sessions_and_stateless_needs_none(ev):
    lost = ev.extra["share_lost"]
    assert lost["stateful"]["sticky"] == lost["stateful"]["ip_hash"] == 0
    assert lost["stateful"]["round_robin"] >= 0.5
    assert set(lost["stateless"].values()) == {0}
    uneven = ev.extra["unevenness"]
    assert uneven["round_robin"] < uneven["sticky"] and uneven["round_robin"] < uneven["ip_hash"]
    sf = ev.measurements["stateful events"]
    assert sf["ip_hash: remapped users who lost their session"] == sf["ip_hash: users remapped"] > 0
    assert sf["sticky: users re-pinned"] == sf["sticky: users pinned to the crashed server"] > 0


def test_plot_draws_each_strategy_for_both_modes(ev):
    fig = load_balancing.plot(ev)
    assert len(fig.axes) == 1 and fig.axes[0].get_xlabel()
    assert len(fig.axes[0].collections) == 2 * len(load_balancing.STRATEGIES) + 2  # + two legend markers


def test_zipf_counts_give_heavy_users_most_requests():
    counts = load_balancing.zipf_counts(20, 120)
    assert sum(counts[:3]) > 120 / 2
    for users, total in ((20, 120), (10, 32), (10, 40), (7, 100), (20, 20), (1, 7)):
        counts = load_balancing.zipf_counts(users, total)
        assert sum(counts) == total and min(counts) >= 1 and counts == sorted(counts, reverse=True)
    assert set(load_balancing.zipf_counts(20, 120, s=0.0)) == {6}  # no skew: everyone the same
    assert load_balancing.zipf_counts(5, 5) == [1] * 5
    with pytest.raises(ValueError, match="at least one request per user"):
        load_balancing.zipf_counts(10, 5)


def test_cv_and_random_ips():
    assert load_balancing.cv([5, 5, 5]) == 0.0
    assert load_balancing.cv([10, 0]) == pytest.approx(1.0)
    ips = load_balancing.random_ips(50, random.Random(2))
    assert len(set(ips)) == 50 and all(ip.startswith("10.") for ip in ips)


def test_drive_reports_users_who_lost_their_session():
    counts = [3, 2, 1, 1]
    with sl.Cluster(2, "stateful", balancer="sticky") as c:
        clients = [sl.Client(c.url, ip=f"10.0.0.{i}") for i in range(4)]
        assert load_balancing.drive(clients, counts, random.Random(3), workers=2) == set()
        assert sum(c.balancer.counts.values()) == 4 + sum(counts)
        c.strategy = "round_robin"
        clients = [sl.Client(c.url) for _ in range(4)]
        lost = load_balancing.drive(clients, [6, 6, 6, 6], random.Random(4), workers=2)
        assert len(lost) >= 3  # six requests each, alternating servers: almost surely some land elsewhere


def test_bad_sizes_get_a_clear_error():
    with pytest.raises(ValueError, match="servers must be"):
        load_balancing.run(servers=1)
