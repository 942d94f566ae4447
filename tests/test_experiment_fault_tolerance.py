"""Row "Fault Tolerance": the experiment's verdict and checks, the outage store, and the crowd helpers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import statelab as sl  # noqa: E402
from statelab.experiments import VERDICTS, Evidence, crowd, fault_tolerance  # noqa: E402
from statelab.experiments.fault_tolerance import OutageStore, StoreUnavailable, store_errors_as_503  # noqa: E402


@pytest.fixture(scope="module")
def ev() -> Evidence:
    return fault_tolerance.run(quick=True)


def test_quick_run_reaches_a_verdict_from_its_checks(ev):
    assert ev.row == "fault_tolerance"
    assert ev.verdict in VERDICTS
    assert all(ev.checks.values()), {k: v for k, v in ev.checks.items() if not v}
    # the stateless side holds; the stateful wording ("sessions stored on others") does not
    assert ev.verdict == "holds with nuance"


def test_a_crash_loses_exactly_the_sessions_on_the_crashed_server(ev):
    m = ev.measurements
    assert m["memory: sessions on the crashed server"] > 0
    assert m["memory: lost among them"] == m["memory: sessions on the crashed server"]
    assert m["memory: lost among those"] == 0
    assert m["users who lost their cart"] == {"memory": m["memory: lost among them"], "sqlite": 0, "stateless": 0}
    assert m["store outage: stateful users affected"] == m["users per design"]
    assert m["store outage: servers that answered with an error"] == ["server-0", "server-1", "server-2"]
    assert str(m["memory: lost among them"]) in ev.reading


def test_plot_draws_one_figure(ev):
    fig = fault_tolerance.plot(ev)
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel()
    assert len(fig.axes[0].patches) == 3 * 4  # three designs, four groups


def test_outage_store_fails_every_call_then_comes_back_with_its_data(tmp_path):
    store = OutageStore(sl.SqliteStore(tmp_path / "s.sqlite3"))
    try:
        sid = store.create({"user": "alice", "cart": []}, 60)
        with store.outage():
            for call in (lambda: store.get(sid), lambda: store.count(), lambda: store.create({}, 60),
                         lambda: store.update(sid, dict), lambda: store.delete(sid)):
                with pytest.raises(StoreUnavailable):
                    call()
        assert store.get(sid) == {"user": "alice", "cart": []}
    finally:
        store.close()


def test_servers_answer_503_json_while_the_store_is_down(tmp_path):
    store = OutageStore(sl.SqliteStore(tmp_path / "s.sqlite3"))
    try:
        with sl.Cluster(2, "stateful", store=store, plugins=[store_errors_as_503]) as c:
            alice = sl.Client(c.url)
            assert alice.login("alice").ok and alice.add_to_cart("book").ok
            with store.outage():
                ex = alice.cart()
                assert ex.status == 503 and "unreachable" in ex.body["error"]
            assert alice.cart().body == {"cart": [{"item": "book", "qty": 1}]}
    finally:
        store.close()


def test_crowd_tallies_each_request_by_phase_and_group():
    with sl.Cluster(3, "stateful", balancer="sticky") as c:
        users = crowd.log_in(c.url, 6, group="g")
        try:
            assert [u.group for u in users] == ["g"] * 6 and {u.home for u in users} == {"server-0", "server-1",
                                                                                      "server-2"}
            traffic = crowd.shop_while(users, lambda: c.kill(0), workers=2)
            # every user asked before and after; the users whose session was on server-0 were logged out after
            assert traffic.count("ok", phase="before") >= 4
            on_0 = sum(u.home == "server-0" for u in users)
            assert traffic.count("logged out", phase="after") >= on_0
            assert traffic.requests_of("g") == traffic.requests
            lost = crowd.lost_carts(users)
            assert {u.home for u in lost} == {"server-0"} and len(lost) == on_0
            table = crowd.by_home(users, lost)
            assert table["server-0"] == (on_0, on_0)
            assert [k for _, k in table.values()] == [on_0, 0, 0] and sum(u for u, _ in table.values()) == 6
        finally:
            crowd.close(users)


def test_outcome_classifies_answers():
    assert crowd.outcome(sl.Exchange("GET", "/cart", status=200)) == "ok"
    assert crowd.outcome(sl.Exchange("GET", "/cart", status=401)) == "logged out"
    assert crowd.outcome(sl.Exchange("GET", "/cart", status=502)) == "failed"
    assert crowd.outcome(sl.Exchange("GET", "/cart", error="connection refused")) == "failed"
    assert crowd.outcome(sl.Exchange("GET", "/cart", status=404)) == "other"


def test_bad_sizes_get_a_clear_error():
    with pytest.raises(ValueError, match="users must be"):
        fault_tolerance.run(users=1)
    with pytest.raises(ValueError, match="empty"):
        crowd.shop_while([], lambda: None)
