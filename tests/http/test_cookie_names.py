"""Cookies are per host, not per port (issue 9 item 1).

A browser sends a cookie set by 127.0.0.1:8001 to 127.0.0.1:8002 too, and a cookie of the same name set
by :8002 overwrites it. So each standalone server names its session cookie after its port (stable across
restarts), and the servers of one cluster share one name tied to that cluster. Here one
``requests.Session`` plays the browser: like a browser, it keeps cookies per host.
"""

from __future__ import annotations

import re

import pytest
import requests

import statelab as sl


def browser() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    return http


@pytest.mark.parametrize("mode", ["stateful", "cookie"])
def test_two_servers_opened_directly_in_one_browser_keep_their_own_login(mode):
    with sl.Server(mode) as a, sl.Server(mode) as b:
        a.start()
        b.start()
        tab = browser()  # one browser, two tabs: the cookie jar is shared by host
        assert tab.post(f"{a.url}/login", json={"user": "alice"}, timeout=10).status_code == 200
        assert tab.post(f"{b.url}/login", json={"user": "bob"}, timeout=10).status_code == 200
        assert tab.get(f"{a.url}/me", timeout=10).json() == {"user": "alice"}
        assert tab.get(f"{b.url}/me", timeout=10).json() == {"user": "bob"}
        assert a.cookie_name != b.cookie_name
        assert {c.name for c in tab.cookies} == {a.cookie_name, b.cookie_name}


def test_the_name_contains_the_port_and_survives_a_restart(stateful):
    assert re.fullmatch(rf"sid-{stateful.port}", stateful.cookie_name)
    tab = browser()
    tab.post(f"{stateful.url}/login", json={"user": "alice"}, timeout=10)
    assert set(tab.cookies.keys()) == {stateful.cookie_name}
    before = stateful.cookie_name
    stateful.restart()
    assert stateful.cookie_name == before
    r = tab.post(f"{stateful.url}/login", json={"user": "alice"}, timeout=10)
    assert r.headers["Set-Cookie"].startswith(f"{before}=")


def test_modes_name_their_cookie(stateless):
    with sl.Server("cookie") as jar:
        jar.start()
        assert jar.cookie_name == f"sid-{jar.port}-signed"
    assert stateless.cookie_name is None  # a stateless client holds a token, not a cookie
    assert sl.Server("stateful", cookie_name="shop").cookie_name == "shop"
    assert sl.Server("stateful").cookie_name is None  # no port yet: named at the first start


@pytest.mark.parametrize("mode", ["stateful", "cookie"])
def test_a_clusters_servers_share_one_name_and_two_clusters_do_not(cluster, mode):
    one, two = cluster(2, mode, store="sqlite" if mode == "stateful" else "memory"), cluster(2, mode)
    assert one.cookie_name != two.cookie_name
    assert {s.cookie_name for s in one.servers} == {one.cookie_name}
    tab = browser()
    tab.post(f"{one.url}/login", json={"user": "alice"}, timeout=10)
    for server in one.servers:  # any server of the cluster, even directly, knows the cookie
        assert tab.get(f"{server.url}/me", timeout=10).json() == {"user": "alice"}
    one.restart(0)
    assert one.servers[0].cookie_name == one.cookie_name
    tab.post(f"{two.url}/login", json={"user": "bob"}, timeout=10)
    assert tab.get(f"{one.url}/me", timeout=10).json() == {"user": "alice"}  # not overwritten by the other cluster
