"""Row "Fault Tolerance": per-half verdicts from named checks, the outage store, the write plugins and the crowd."""

from __future__ import annotations

import threading

import pytest

import statelab as sl
from statelab.experiments import DESIGNS, Evidence, crowd, fault_tolerance
from statelab.plots import fault_tolerance as plots
from statelab.service import wait_until
from statelab.shop.plugins import (
    IdempotencyKeys,
    InFlight,
    idempotent_writes,
    slow_writes,
    store_errors_as_503,
)
from statelab.shop.sessions import OutageStore, StoreUnavailable


@pytest.fixture(scope="module")
def ev() -> Evidence:
    return fault_tolerance.run(quick=True)


def test_each_half_and_benefit_is_judged_from_named_checks(ev):
    assert ev.row == "fault_tolerance"
    assert ev.verdicts == {"stateful": "does not hold", "stateless": "holds with nuance"}
    assert ev.benefits == {"5b": "holds with nuance", "4a": "holds with nuance"}
    wrong = {k: v for k, v in ev.checks.items() if v != (k != fault_tolerance.CHECKS.mem_lost_others.id)}
    assert not wrong, wrong
    md = ev.conclusion()._repr_markdown_()
    assert "Failure in one server affects sessions stored on others" in md and "**does not hold**" in md
    assert f"timeout ({fault_tolerance.HANG_TIMEOUT:g} s)" in md          # the threshold, written once, is shown
    assert "timeouts: balancer" in md and "designs compared" in md     # the conditions open the conclusion


def test_the_self_check_asserts_mechanisms_only(ev):
    ids = ev.require_mechanisms()
    assert fault_tolerance.CHECKS.mem_lost_others.id not in ids and fault_tolerance.CHECKS.individual.id not in ids
    assert {"hang_waited", "kill_instant", "store_outage", "outage_kept"} <= set(ids)
    assert fault_tolerance.answer(ev) == fault_tolerance.CHOICES[0]


def test_a_hung_server_costs_a_timeout_where_a_killed_one_costs_nothing(ev):
    m = ev.measurements
    for design in fault_tolerance.SHARED:
        assert m["server-1 killed: reads failed"][design] == 0
        assert m["server-1 hung: reads failed (502)"][design] == m["server-1 hung: reads routed to it"][design] >= 1
        assert m["server-1 hung: shortest wait of a failed read (ms)"][design] >= 1000 * fault_tolerance.HANG_TIMEOUT
        assert m["server-1 killed: slowest read (ms)"][design] < 1000 * fault_tolerance.HANG_TIMEOUT  # CI's machine


def test_a_store_restarted_without_persistence_loses_what_an_outage_keeps(ev):
    if not ev.extra["valkey"]:
        pytest.skip(ev.measurements["Valkey faults"])
    m, n = ev.measurements, ev.measurements["users per design"]
    assert m["after the outage: users with their cart back"] == {d: n for d in fault_tolerance.SHARED}
    assert m["Valkey hung: reads that got 503"] == m["Valkey hung: reads"] == 2 * n
    assert m["Valkey healed: users with their cart back"] == {d: n for d in fault_tolerance.SHARED}
    assert m["Valkey restarted without persistence: users logged out"] == {"session + shared store": n,
                                                                           "token + cart in db": 0}
    assert m["Valkey restarted without persistence: carts gone"] == {d: n for d in fault_tolerance.SHARED}
    assert ev.checks["store_restart_lost"] and "store_restart_lost" in ev.mechanisms


def test_link_in_front_of_a_server_hangs_it_and_route_directly_undoes_it():
    with sl.Cluster(2, "stateless") as c:
        c.balancer.timeout = 0.3
        link = fault_tolerance.link_in_front(c, 1)
        try:
            alice = sl.Client(c.url)
            alice.login("alice")
            assert [alice.cart().status for _ in range(2)] == [200, 200] and link.round_trips >= 1
            link.hang()
            answers = [alice.cart() for _ in range(2)]
            assert sorted(ex.status for ex in answers) == [200, 502]        # the one routed to server-1 timed out
            assert "may have been acted on" in next(ex for ex in answers if ex.status == 502).body["error"]
            fault_tolerance.route_directly(c, 1)
            through_link = link.connections
            answers = [alice.cart() for _ in range(4)]
            assert [ex.status for ex in answers] == [200] * 4
            assert {ex.served_by for ex in answers} == {"server-0", "server-1"}   # server-1 answers again
            assert link.connections == through_link                             # nothing went through the link
        finally:
            link.stop()


def test_a_crash_fails_plain_writes_in_flight_and_nothing_else(ev):
    m = ev.measurements
    assert list(m["failed unkeyed writes (502)"]) == list(DESIGNS)
    assert all(v >= 1 for v in m["failed unkeyed writes (502)"].values())
    assert set(m["failed keyed writes"].values()) == {0} and set(m["failed reads"].values()) == {0}
    assert set(m["keyed writes applied twice or missing"].values()) == {0}
    assert m["failed unkeyed writes that had been acted on"]["token + cart in token"] == 0  # the answer held it


def test_only_the_crashed_servers_memory_sessions_and_the_shared_stores_outages_cost_carts(ev):
    m = ev.measurements
    assert m["session + memory: lost among them"] == m["session + memory: sessions on the crashed server"] > 0
    assert m["session + memory: lost among those"] == 0
    lost = m["users who lost their cart in the crash"]
    assert lost["session + shared store"] == lost["token + cart in token"] == lost["token + cart in db"] == 0
    n = m["users per design"]
    assert m["store outage: users affected"] == {"token + cart in token": 0, "session + shared store": n,
                                                 "token + cart in db": n}
    assert m["cart seen on a second device"] == {d: d == "token + cart in db" for d in DESIGNS}
    assert str(m["session + memory: lost among them"]) in ev.reading


def test_plot_draws_three_panels_with_hatches(ev):
    fig = plots.plot(ev)
    assert len(fig.axes) == 3 and all(ax.get_ylabel() for ax in fig.axes)
    assert {p.get_hatch() for p in fig.axes[1].patches} >= {"//", "..", "xx"}
    waits = fig.axes[2]
    assert {p.get_hatch() for p in waits.patches} == {"//", "xx"} and len(waits.patches) == 4
    assert any("timeout" in t.get_text() for t in waits.texts)                # the threshold in words, not colour


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


@pytest.mark.parametrize("mode", ["stateful", "stateless"])
def test_a_keyed_write_is_acted_on_once_per_user_and_key(mode):
    with sl.Server(mode, plugins=[idempotent_writes(IdempotencyKeys())]) as server:
        server.start()
        alice, bob = sl.Client(server.url), sl.Client(server.url)
        alice.login("alice")
        bob.login("bob")
        key = {"Idempotency-Key": "k-1"}
        first = alice.post("/cart", {"item": "ink"}, headers=key)
        again = alice.post("/cart", {"item": "ink"}, headers=key)
        assert first.status == again.status == 200 and again.headers.get("Idempotent-Replayed") == "true"
        assert again.body == first.body and alice.cart().body["cart"] == [{"item": "ink", "qty": 1}]
        assert bob.post("/cart", {"item": "ink"}, headers=key).headers.get("Idempotent-Replayed") is None
        assert alice.post("/cart", {"item": "ink"}, headers={"Idempotency-Key": "no spaces"}).status == 400
        assert alice.add_to_cart("ink").ok and alice.cart().body["cart"] == [{"item": "ink", "qty": 2}]


def test_slow_writes_keep_writes_in_flight_and_in_flight_counts_them():
    watch = InFlight()
    with sl.Server("stateful", plugins=[slow_writes(0.5), watch]) as server:
        server.start()
        alice, tab = sl.Client(server.url), sl.Client(server.url)
        alice.login("alice")
        tab.set_cookie(server.cookie_name, alice.cookies[server.cookie_name])   # a second tab, same session
        writer = threading.Thread(target=alice.add_to_cart, args=("pen",))
        writer.start()
        assert watch.wait(lambda: watch.now(server.name, "write") == 1, 2)
        # the change is made before the slow part: the cart shows it while the write is still in flight
        assert wait_until(lambda: tab.cart().body["cart"] == [{"item": "pen", "qty": 1}], 2)
        assert watch.now(server.name, "write") == 1
        writer.join()
        assert watch.now(server.name) == 0 and alice.history[-2].ok
    with pytest.raises(ValueError):
        slow_writes(-1)


def test_crowd_tallies_each_request_by_phase_group_and_kind():
    with sl.Cluster(3, "stateful", balancer="sticky") as c:
        users = crowd.log_in(c.url, 6, group="g")
        try:
            assert [u.name for u in users] == [f"user{i}" for i in range(6)]
            assert [u.group for u in users] == ["g"] * 6 and {u.home for u in users} == {"server-0", "server-1",
                                                                                      "server-2"}
            traffic = crowd.shop_while(users, lambda: c.kill(0), workers=2)
            assert traffic.count("ok", phase="before") >= 4
            assert traffic.count(op="read") and traffic.count(op="write") and traffic.count(op="keyed write")
            on_0 = sum(u.home == "server-0" for u in users)
            assert traffic.count("logged out", phase="after") >= on_0
            assert traffic.requests_of("g") == traffic.requests == sum(sum(u.sent.values()) for u in users)
            lost = crowd.lost_carts(users)
            assert {u.home for u in lost} == {"server-0"} and len(lost) == on_0
            assert crowd.by_home(users, lost)["server-0"] == (on_0, on_0)
            writes = crowd.landed(users)
            assert writes.users == 6 - on_0 and writes.gone == on_0
            assert writes.extra["write"] == writes.missing["write"] == 0  # nothing was in flight to cut here
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
    with pytest.raises(ValueError, match="workers must be"):
        fault_tolerance.run(workers=0)
    with pytest.raises(ValueError, match="empty"):
        crowd.shop_while([], lambda: None)
    with pytest.raises(ValueError, match="ops must be"):
        crowd.shop_while([crowd.Shopper("x", sl.Client("http://127.0.0.1:9"), None)], lambda: None, ops=("buy",))


@pytest.mark.parametrize(("lost", "expected"), [
    ({"session + memory": {"server-1": (4, 4), "server-0": (4, 0)}}, 0),
    ({"session + memory": {"server-1": (4, 4), "server-0": (4, 1)}}, 1),
    ({"session + memory": {"server-1": (4, 2)}, "session + shared store": {"server-0": (4, 1)}}, 2),
    ({"session + memory": {"server-1": (4, 0)}}, 3),
])
def test_answer_names_the_choice_the_run_measured(lost, expected):
    by_home = {d: lost.get(d, {"server-0": (4, 0)}) for d in DESIGNS}
    ev = Evidence(row="fault_tolerance", measurements={}, checks={},
                  extra={"by_home": by_home, "crashed": "server-1"})
    assert fault_tolerance.answer(ev) == fault_tolerance.CHOICES[expected]
