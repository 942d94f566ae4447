"""The load balancer's strategies and failure handling, with real backends on loopback."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import requests
from flask import Flask, jsonify, request

import statelab as sl
from statelab.service import wait_until
from statelab.topology.cache import SharedCache


def slow_route(app: Flask) -> None:
    """A plugin: GET or POST /slow?s=0.5 holds its backend busy for that long."""

    @app.route("/slow", methods=["GET", "POST"])
    def slow():
        seconds = min(float(request.args.get("s", "0.5")), 5.0)
        time.sleep(seconds)
        return jsonify(slept=seconds)


def in_background(fn, *args) -> tuple[threading.Thread, list]:
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn(*args)), name="test-slow-request")
    t.start()
    return t, out


def served(client: sl.Client, n: int, path: str = "/health") -> Counter:
    answers = [client.get(path) for _ in range(n)]
    assert all(ex.status == 200 for ex in answers), [ex.summary() for ex in answers if ex.status != 200]
    return Counter(ex.served_by for ex in answers)


def test_round_robin_spreads_evenly(cluster):
    c = cluster(3, mode="stateless", balancer="round_robin")
    c.balancer.reset_counts()
    seen = served(sl.Client(c.url), 30)
    assert seen == {"server-0": 10, "server-1": 10, "server-2": 10}
    assert c.balancer.counts == {"server-0": 10, "server-1": 10, "server-2": 10}
    assert sum(s.requests for s in c.servers) == 30


def test_round_robin_loses_memory_sessions_and_a_shared_store_fixes_it(cluster):
    # the lesson's starting point, as a contract: stateful + memory + round robin forgets you
    memory = sl.Client(cluster(2, mode="stateful", store="memory").url)
    memory.login("alice")
    assert memory.me().status == 401  # the next server has never heard of this session
    shared = sl.Client(cluster(2, mode="stateful", store="sqlite").url)
    shared.login("alice")
    assert [shared.me().status for _ in range(4)] == [200] * 4


def test_sticky_pins_via_cookie_and_repins_when_its_server_dies(cluster):
    c = cluster(3, mode="stateful", store="memory", balancer="sticky")
    alice = sl.Client(c.url)
    ex = alice.login("alice")
    pinned = ex.served_by
    COOKIE = c.balancer.cookie_name
    assert alice.cookies[COOKIE] == pinned
    cookie_header = [v for v in ex.headers.get("Set-Cookie", "").split(", ") if v.startswith(COOKIE)]
    assert cookie_header and "HttpOnly" in cookie_header[0] and "SameSite=Lax" in cookie_header[0]
    for _ in range(5):
        alice.add_to_cart("book")
    assert served(alice, 10, "/cart") == {pinned: 10}
    assert alice.cart().body == {"cart": [{"item": "book", "qty": 5}]}

    # different browsers land on different servers (the first answer is round robin)
    others = {sl.Client(c.url).health().served_by for _ in range(6)}
    assert len(others) >= 2

    c.kill(pinned)
    ex = alice.me()
    assert ex.status == 401  # re-pinned to a live server, which never saw the session: the lesson
    assert ex.served_by != pinned and ex.served_by in {s.name for s in c.servers if s.alive}
    assert alice.cookies[COOKIE] == ex.served_by
    alice.login("alice")
    repinned = alice.cookies[COOKIE]
    assert served(alice, 6, "/me") == {repinned: 6}


def test_sticky_ignores_a_forged_cookie(cluster):
    c = cluster(2, mode="stateless", balancer="sticky")
    browser = sl.Client(c.url)
    COOKIE = c.balancer.cookie_name
    browser._http.cookies.set(COOKIE, "server-99", domain="127.0.0.1", path="/")
    ex = browser.health()
    assert ex.status == 200 and ex.served_by in ("server-0", "server-1")
    assert browser.cookies[COOKIE] == ex.served_by


def test_ip_hash_is_stable_per_address_and_spreads(cluster):
    c = cluster(3, mode="stateless", balancer="ip_hash")
    home = sl.Client(c.url, ip="203.0.113.7")
    assert len(served(home, 10)) == 1
    again = sl.Client(c.url, ip="203.0.113.7")
    assert served(again, 3).keys() == served(home, 1).keys()  # another browser, same address

    by_ip = {}
    for i in range(150):
        ip = f"198.51.{i // 250}.{i % 250 + 1}"
        by_ip[ip] = sl.Client(c.url, ip=ip).health().served_by
    spread = Counter(by_ip.values())
    assert set(spread) == {"server-0", "server-1", "server-2"}
    assert min(spread.values()) >= 25, spread  # 50 each expected

    # a dead server moves only its own addresses
    c.kill(1)
    for ip, name in list(by_ip.items())[:30]:
        now = sl.Client(c.url, ip=ip).health()
        assert now.status == 200
        assert now.served_by == name if name != "server-1" else now.served_by != "server-1"


def test_least_connections_prefers_the_idle_backend(cluster):
    c = cluster(2, mode="stateless", balancer="least_connections", plugins=[slow_route])
    assert all(s.app.view_functions.get("slow") for s in c.servers)  # the plugin reached every server
    busy_thread, result = in_background(sl.Client(c.url).get, "/slow?s=1")
    assert wait_until(lambda: sum(c.balancer.in_flight.values()) == 1, timeout=2), c.balancer.in_flight
    busy = next(name for name, n in c.balancer.in_flight.items() if n == 1)
    idle = next(name for name in c.balancer.backends if name != busy)
    assert served(sl.Client(c.url), 8) == {idle: 8}

    c.strategy = "round_robin"  # the contrast: round robin ignores load and still sends half to the busy one
    assert served(sl.Client(c.url), 4) == {idle: 2, busy: 2}
    busy_thread.join(timeout=5)
    assert result[0].status == 200 and result[0].body == {"slept": 1.0}
    assert c.balancer.in_flight == {"server-0": 0, "server-1": 0}


def _crash_mid_request(cluster, method: str):
    c = cluster(2, mode="stateless", plugins=[slow_route])
    client = sl.Client(c.url)
    thread, result = in_background(client.request, method, "/slow?s=0.6")
    assert wait_until(lambda: sum(c.balancer.in_flight.values()) == 1, timeout=2)
    busy = next(name for name, n in c.balancer.in_flight.items() if n == 1)
    c.kill(busy)
    thread.join(timeout=5)
    assert sl.Client(c.url).health().status == 200  # the balancer carries on
    return busy, result[0], c


def test_a_get_cut_by_a_crash_is_repeated_on_another_backend(cluster):
    busy, ex, c = _crash_mid_request(cluster, "GET")
    assert ex.status == 200 and ex.body == {"slept": 0.6}
    assert ex.served_by != busy and ex.served_by in c.balancer.backends


def test_a_post_cut_by_a_crash_gets_502_not_a_silent_repeat(cluster):
    busy, ex, _ = _crash_mid_request(cluster, "POST")
    assert ex.status == 502 and ex.served_by == "balancer" and busy in ex.body["error"]


def test_a_dead_backend_is_skipped_without_a_client_visible_error(cluster):
    c = cluster(3, mode="stateful", store="sqlite")
    alice = sl.Client(c.url)
    alice.login("alice")
    c.kill(1)
    answers = [alice.add_to_cart("book") for _ in range(12)]
    assert all(ex.status == 200 for ex in answers), [ex.summary() for ex in answers]
    assert {ex.served_by for ex in answers} == {"server-0", "server-2"}
    assert alice.cart().body == {"cart": [{"item": "book", "qty": 12}]}  # POSTs retried once each, never twice
    c.restart(1)
    assert "server-1" in served(alice, 3, "/me")  # back in the rotation at once


def test_no_live_backend_gives_503_json(cluster):
    c = cluster(2, mode="stateless")
    for i in range(2):
        c.kill(i)
    client = sl.Client(c.url)
    for ex in (client.health(), client.login("alice"), client.request("DELETE", "/nope")):
        assert ex.status == 503 and ex.served_by == "balancer"
        assert "down" in ex.body["error"]
        assert ex.headers["Content-Type"] == "application/json"
    c.restart(0)
    assert client.health().status == 200


def test_a_backend_marked_down_is_still_tried_before_a_503(cluster):
    # Under load a mark can outlive its cause: a request refused just before a restart books the mark
    # after it. A 503 "every server is down" then would be false: the balancer tries those last, not never.
    c = cluster(3, mode="stateless")
    client = sl.Client(c.url)
    c.kill(1)
    c.kill(2)
    assert [client.health().served_by for _ in range(2)] == ["server-0"] * 2  # 1 and 2 refused: marked down
    c.servers[1].restart()  # back up, but without telling the balancer (cluster.restart would): a stale mark
    c.servers[2].restart()
    c.kill(0)
    answers = [client.health() for _ in range(3)]
    assert all(ex.status == 200 for ex in answers), [ex.summary() for ex in answers]
    assert {ex.served_by for ex in answers} <= {"server-1", "server-2"}


def test_balancer_without_backends_gives_503():
    with sl.LoadBalancer([]) as lb:
        ex = sl.Client(lb.url).health()
        assert ex.status == 503 and ex.body == {"error": "no backend servers are configured"}


def test_per_backend_counts(cluster):
    c = cluster(3, mode="stateless")
    client = sl.Client(c.url)
    c.balancer.reset_counts()
    assert c.balancer.counts == {"server-0": 0, "server-1": 0, "server-2": 0}
    seen = served(client, 12)
    assert c.balancer.counts == dict(seen)
    c.kill(2)
    served(client, 6)
    counts = c.balancer.counts
    assert sum(counts.values()) == 18 and counts["server-2"] == 4  # a refused connection is not counted
    c.balancer.reset_counts()
    assert set(c.balancer.counts.values()) == {0}


def test_strategy_is_validated_and_can_change_live(cluster):
    c = cluster(2, mode="stateless")
    with pytest.raises(ValueError, match="round_robin"):
        c.strategy = "random"
    with pytest.raises(ValueError):
        sl.Cluster(2, balancer="fastest")
    c.strategy = "sticky"
    client = sl.Client(c.url)
    assert len(served(client, 4)) == 1
    c.strategy = "round_robin"
    assert len(served(client, 4)) == 2


# --------------------------------------------------------------------------- what the balancer relays

# A backend's broken answers (a folded header among them) are judged in test_proxies_faithful.py, on the balancer
# and the cache alike.


@pytest.mark.parametrize("path", ["/me%3Fa=b", "/catalog%3Fx", "/%63atalog", "/catalog?q=%26%3D"])
def test_the_path_is_forwarded_as_sent_not_decoded_twice(cluster, path):
    c = cluster(1, mode="stateless")
    direct = requests.get(c.servers[0].url + path, timeout=5)
    through = requests.get(c.url + path, timeout=5)
    assert (through.status_code, through.content) == (direct.status_code, direct.content)
    with SharedCache(c) as cache:  # the cache relays the same way
        cached = requests.get(cache.url + path, timeout=5)
    assert (cached.status_code, cached.content) == (direct.status_code, direct.content)


def test_head_through_the_balancer_keeps_the_real_content_length(cluster):
    c = cluster(1, mode="stateless")
    get = requests.get(c.url + "/catalog", timeout=5)
    direct = requests.head(c.servers[0].url + "/catalog", timeout=5)
    through = requests.head(c.url + "/catalog", timeout=5)
    assert through.status_code == direct.status_code == 200 and through.content == b""
    assert through.headers["Content-Length"] == direct.headers["Content-Length"] == str(len(get.content))


def test_waiting_for_a_slow_backend_is_not_counted_as_the_client_s_time():
    with sl.Server("stateless", plugins=[slow_route]) as server:
        server.start()
        with sl.LoadBalancer([server], start=False) as lb:
            lb.body_timeout = 0.3  # the client sends its body at once; the backend then takes 0.8 s
            lb.start()
            answer = requests.post(lb.url + "/slow?s=0.8", json={"why": "a body starts the body deadline"}, timeout=5)
    assert answer.status_code == 200 and answer.json() == {"slept": 0.8}


def test_a_slow_view_is_not_counted_as_the_client_s_time():
    with sl.Server("stateless", plugins=[slow_route]) as server:
        server.body_timeout = 0.3  # the body arrives at once; the view (which never reads it) takes 0.8 s
        server.start()
        answer = requests.post(server.url + "/slow?s=0.8", json={"why": "a body starts the body deadline"}, timeout=5)
    assert answer.status_code == 200 and answer.json() == {"slept": 0.8}
