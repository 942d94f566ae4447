"""Row "Deployment Complexity": the experiment's verdict and checks, and the rolling-redeploy helper."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import statelab as sl  # noqa: E402
from statelab.experiments import VERDICTS, Evidence, deployment  # noqa: E402


@pytest.fixture(scope="module")
def ev() -> Evidence:
    return deployment.run(quick=True)


def test_quick_run_reaches_a_verdict_from_its_checks(ev):
    assert ev.row == "deployment"
    assert ev.verdict in VERDICTS
    assert all(ev.checks.values()), {k: v for k, v in ev.checks.items() if not v}
    # stateless deploys keep every session, but rotating the signing key is a chore of its own
    assert ev.verdict == "holds with nuance"


def test_measurements_say_who_was_logged_out(ev):
    m = ev.measurements
    n = m["users per design"]
    assert m["users logged out by the deploy (cart gone)"] == {"memory": n, "sqlite": 0, "stateless": 0}
    assert m["key rotation, old key dropped: users logged out"] == n
    assert m["key rotation with grace: users logged out"] == 0
    assert m["old key retired: active users logged out"] == 0
    assert m["old key retired: idle users logged out"] == n - n // 2
    assert all(v > 0 for v in m["requests during the deploy"].values())


def test_plot_draws_one_figure(ev):
    fig = deployment.plot(ev)
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 7


def test_redeploy_replaces_one_server_and_its_memory():
    with sl.Cluster(2, "stateful", balancer="sticky") as c:
        alice = sl.Client(c.url)
        alice.login("alice")
        home = alice.last.served_by
        index = [s.name for s in c.servers].index(home)
        url = c.servers[index].url
        deployment.redeploy(c, index, drain=0.01)
        assert c.servers[index].alive and c.servers[index].url == url
        assert sorted(c.balancer.backends) == ["server-0", "server-1"]
        assert c.servers[index].sessions == 0
        assert alice.me().status == 401  # the new process never heard of alice's session


def test_redeploy_keeps_shared_store_sessions_and_token_keys():
    with sl.Cluster(2, "stateful", store="sqlite") as stateful, sl.Cluster(2, "stateless") as stateless:
        bob, carol = sl.Client(stateful.url), sl.Client(stateless.url)
        bob.login("bob")
        carol.login("carol")
        deployment.rolling_restart(stateful, drain=0.01)
        deployment.rolling_restart(stateless, drain=0.01)
        assert [bob.me().status for _ in range(2)] == [200, 200]
        assert [carol.me().status for _ in range(2)] == [200, 200]


def test_bad_sizes_get_a_clear_error():
    with pytest.raises(ValueError, match="users must be"):
        deployment.run(users=2)
