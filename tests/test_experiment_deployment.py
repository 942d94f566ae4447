"""Row "Deployment Complexity": per-half verdicts, draining, and the rolling-redeploy helper."""

from __future__ import annotations

import threading

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import statelab as sl  # noqa: E402
from statelab.experiments import DESIGNS, Evidence, deployment  # noqa: E402
from statelab.plots import deployment as plots  # noqa: E402
from statelab.shop.plugins import InFlight, slow_writes  # noqa: E402


@pytest.fixture(scope="module")
def ev() -> Evidence:
    return deployment.run(quick=True)


def test_each_half_is_judged_from_named_checks(ev):
    assert ev.row == "deployment" and ev.benefits == {}
    assert ev.verdicts == {"stateful": "holds with nuance", "stateless": "holds with nuance"}
    assert all(ev.checks.values()), {k: v for k, v in ev.checks.items() if not v}
    assert set(ev.require_mechanisms()) >= {"mem_logged_out", "held_at_stop", "hung_unchecked", "hung_checked"}
    assert "drained_fewer" not in ev.mechanisms                      # a comparison, not a mechanism
    md = ev.conclusion()._repr_markdown_()
    assert "even with connection draining" in md and "session draining" in md   # the two drainings, named apart
    assert f"timeout ({deployment.HANG_TIMEOUT:g} s)" in md and "deploy: 3 servers replaced" in md


def test_a_hung_new_version_costs_timeouts_unless_a_readiness_check_keeps_it_out(ev):
    m = ev.measurements
    sent = m["hung new version, put back unchecked: reads sent to it"]
    assert m["hung new version, put back unchecked: reads failed (502)"] == sent >= 1
    waited = m["hung new version, put back unchecked: shortest wait of a failed read (ms)"]
    assert waited >= 1000 * deployment.HANG_TIMEOUT
    assert m["hung new version, readiness check: put back"] is False
    assert m["hung new version, readiness check: reads failed"] == 0


def test_ready_says_whether_a_server_answers_its_health_check():
    with sl.Server("stateless") as server:
        server.start()
        assert deployment.ready(server.url)
    assert not deployment.ready("http://127.0.0.1:9", timeout=0.2)     # nothing listens there


def test_draining_is_what_keeps_plain_writes_from_failing(ev):
    m = ev.measurements
    cut, drained = m["failed plain writes (502), without draining"], m["failed plain writes (502), connection draining"]
    assert list(cut) == list(DESIGNS) and all(v >= 1 for v in cut.values())
    assert set(drained.values()) == {0}
    assert m["failed reads and keyed writes (both deploys)"] == 0


def test_measurements_say_who_was_logged_out(ev):
    m = ev.measurements
    n = m["users per design (per deploy)"]
    assert m["session + memory: sessions the replaced servers held when they stopped"] == {"undrained": n, "drained": n}
    for key in ("users logged out (cart gone), without draining", "users logged out (cart gone), connection draining"):
        assert m[key] == {"session + memory": n, "session + shared store": 0, "token + cart in token": 0,
                          "token + cart in db": 0}
    assert m["key rotation, old key dropped: users logged out"] == n
    assert m["key rotation with grace: users logged out"] == 0
    assert m["old key retired: active users logged out"] == 0
    assert m["old key retired: idle users logged out"] == n - n // 2


def test_plot_draws_three_panels(ev):
    fig = plots.plot(ev)
    assert len(fig.axes) == 3 and all(ax.get_ylabel() for ax in fig.axes)


@pytest.mark.parametrize(("drain", "status"), [(0, 502), (2.0, 200)])
def test_a_write_in_flight_fails_without_draining_and_finishes_with_it(drain, status):
    watch = InFlight()
    with sl.Cluster(2, "stateful", store="sqlite", plugins=[slow_writes(0.3), watch]) as c:
        alice = sl.Client(c.url)
        alice.login("alice")
        answers = []
        writer = threading.Thread(target=lambda: answers.append(alice.add_to_cart("pen")))
        writer.start()
        names = [s.name for s in c.servers]
        assert watch.wait(lambda: any(watch.now(name, "write") for name in names), 5)
        index = next(i for i, name in enumerate(names) if watch.now(name, "write"))
        deployment.redeploy(c, index, drain=drain, in_flight=watch)
        writer.join()
        assert answers[0].status == status
        assert c.servers[index].alive and sorted(c.balancer.backends) == ["server-0", "server-1"]
        assert alice.cart().body["cart"][0] == {"item": "pen", "qty": 1}  # acted on either way


def test_redeploy_replaces_one_server_and_its_memory():
    with sl.Cluster(2, "stateful", balancer="sticky") as c:
        alice = sl.Client(c.url)
        alice.login("alice")
        index = [s.name for s in c.servers].index(alice.last.served_by)
        url = c.servers[index].url
        deployment.redeploy(c, index, drain=0.01)
        assert c.servers[index].alive and c.servers[index].url == url
        assert c.servers[index].sessions == 0
        assert alice.me().status == 401  # the new process never heard of alice's session


def test_redeploy_keeps_shared_store_sessions_and_token_keys():
    with sl.Cluster(2, "stateful", store="sqlite") as stateful, sl.Cluster(2, "stateless") as stateless:
        bob, carol = sl.Client(stateful.url), sl.Client(stateless.url)
        bob.login("bob")
        carol.login("carol")
        deployment.rolling_restart(stateful, drain=0.01)
        deployment.rolling_restart(stateless, drain=0)
        assert [bob.me().status for _ in range(2)] == [200, 200]
        assert [carol.me().status for _ in range(2)] == [200, 200]


def test_bad_sizes_get_a_clear_error():
    with pytest.raises(ValueError, match="users must be"):
        deployment.run(users=2)
    with pytest.raises(ValueError, match="drain must be"):
        deployment.run(drain=0)


def test_restarting_the_shared_store_without_persistence_is_a_deploy_that_loses_data(ev):
    m, n = ev.measurements, ev.measurements["users per design (per deploy)"]
    if not isinstance(m["shared Valkey restarted without persistence: users logged out"], dict):
        pytest.skip(m["shared Valkey restarted without persistence: users logged out"])
    assert m["shared Valkey restarted without persistence: users logged out"] == {"session + shared store": n,
                                                                                   "token + cart in db": 0}
    assert m["shared Valkey restarted without persistence: carts gone"] == {"session + shared store": n,
                                                                             "token + cart in db": n}
    assert "store_restart" in ev.mechanisms and "Valkey" in ev.conditions["stores"]
