"""The two rules that keep another site's form out (issue 8 deliver 8, issue 9 item 3).

A state-changing request must send its body as ``application/json`` (415 otherwise: a cross-site
``<form>`` can only send form types or ``text/plain``, and JavaScript on another origin cannot set a JSON
type without a CORS preflight this server never grants), and, when it carries an ``Origin``, come from the
server's own origin (403 otherwise). ``csrf_guard=False`` switches both off, so a lesson can show the
attack first. Real servers on loopback; the browser's part is played by raw requests with the headers a
browser sends (Chromium itself is driven in tests/browser/test_proxy_page.py, through jupyter-server-proxy).
"""

from __future__ import annotations

import pytest
import requests

import statelab as sl
from statelab.shop.app import same_origin

ATTACKER = "http://127.0.0.1:9"  # another port of the same host: same *site*, another *origin*


def _session() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    return http


def form_post(http: requests.Session, url: str, body: str, origin: str | None = ATTACKER) -> requests.Response:
    """What ``<form method=post enctype="text/plain">`` on another page sends, with the victim's cookies:
    a JSON-shaped body (``name={"item": ...}`` with a crafted name) typed text/plain, and the page's Origin."""
    headers = {"Content-Type": "text/plain"}
    if origin is not None:
        headers["Origin"] = origin
    return http.post(url, data=body.encode(), headers=headers, timeout=10)


@pytest.mark.parametrize("mode", ["stateful", "cookie"])
def test_a_cross_site_text_plain_form_is_refused_with_the_guard_and_accepted_without(mode):
    """The attack of issue 8 item 4: the victim is logged in; another page posts JSON-shaped text to /cart."""
    for guard, expected in ((True, {403}), (False, {200})):
        with sl.Server(mode, csrf_guard=guard) as shop:
            shop.start()
            victim = _session()
            assert victim.post(f"{shop.url}/login", json={"user": "alice"}, timeout=10).status_code == 200
            r = form_post(victim, f"{shop.url}/cart", '{"item": "sre", "qty": 99}')
            assert r.status_code in expected, (guard, r.status_code, r.text)
            assert r.headers["Content-Type"].startswith("application/json") and isinstance(r.json(), dict)
            cart = victim.get(f"{shop.url}/cart", timeout=10).json()["cart"]
            assert (cart == [{"item": "sre", "qty": 99}]) is (not guard)  # the attack worked only without it
            if guard:
                assert "cross-origin" in r.json()["error"]


def test_text_plain_without_origin_is_415_with_the_guard_only(stateful):
    http = _session()
    r = form_post(http, f"{stateful.url}/login", '{"user": "mallory"}', origin=None)
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    assert http.cookies.get(stateful.cookie_name) is None
    stateful.csrf_guard = False  # switchable while the server runs
    r = form_post(http, f"{stateful.url}/login", '{"user": "mallory"}', origin=None)
    assert r.status_code == 200 and r.json() == {"user": "mallory"}
    stateful.csrf_guard = True
    assert form_post(http, f"{stateful.url}/logout", "x", origin=None).status_code == 415


@pytest.mark.parametrize("ctype", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                   "text/plain;charset=UTF-8", "", "application/jsonp", "text/json"])
def test_every_non_json_body_type_is_415(stateless, ctype):
    r = requests.post(f"{stateless.url}/login", data=b'{"user": "alice"}', headers={"Content-Type": ctype},
                      timeout=10)
    assert r.status_code == 415, (ctype, r.status_code)


@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=utf-8", "Application/JSON",
                                   "application/merge-patch+json"])
def test_json_types_pass(stateless, ctype):
    r = requests.post(f"{stateless.url}/login", data=b'{"user": "alice"}', headers={"Content-Type": ctype},
                      timeout=10)
    assert r.status_code == 200, (ctype, r.text)


def test_a_post_without_a_body_needs_no_type(stateful):
    http = _session()
    http.post(f"{stateful.url}/login", json={"user": "alice"}, timeout=10)
    assert http.post(f"{stateful.url}/logout", timeout=10).json() == {"logged_out": True}


@pytest.mark.parametrize("origin", [ATTACKER, "null", "http://127.0.0.1.evil.example", "https://localhost",
                                    "http://[::1]:80", "file://", "garbage", "http://127.0.0.1:1/path"])
def test_another_origin_is_403_on_every_write(stateful, origin):
    for path, body in (("/login", {"user": "alice"}), ("/cart", {"item": "book"}), ("/logout", None)):
        r = requests.post(f"{stateful.url}{path}", json=body, headers={"Origin": origin}, timeout=10)
        assert r.status_code == 403, (origin, path, r.status_code)
        assert r.headers["Content-Type"].startswith("application/json") and "error" in r.json()


def test_same_origin_and_reads_pass(stateful):
    http = _session()
    own = {"Origin": stateful.url}
    assert http.post(f"{stateful.url}/login", json={"user": "alice"}, headers=own, timeout=10).status_code == 200
    assert http.post(f"{stateful.url}/cart", json={"item": "book"}, headers=own, timeout=10).status_code == 200
    # reads are not state-changing: a cross-origin GET is answered (the browser keeps the answer from the page)
    assert http.get(f"{stateful.url}/cart", headers={"Origin": ATTACKER}, timeout=10).status_code == 200
    # a routing error stays what it is
    assert requests.post(f"{stateful.url}/nope", data=b"x", headers={"Origin": ATTACKER}, timeout=10
                         ).status_code == 404


def test_same_origin_through_the_balancer(cluster):
    c = cluster(2, "stateless", cart="db")
    http = _session()
    own = {"Origin": c.url}
    r = http.post(f"{c.url}/login", json={"user": "alice"}, headers=own, timeout=10)
    assert r.status_code == 200
    auth = {**own, "Authorization": f"Bearer {r.json()['token']}"}
    for _ in range(4):  # round robin: each server sees the balancer's host in X-Forwarded-Host
        assert http.post(f"{c.url}/cart", json={"item": "book"}, headers=auth, timeout=10).status_code == 200
    backend = c.servers[0].url  # the backend's own origin is not the page the browser showed
    assert http.post(f"{c.url}/cart", json={"item": "book"}, headers={**auth, "Origin": backend}, timeout=10
                     ).status_code == 403


def test_same_origin_behind_jupyters_proxy(stateful):
    """jupyter-server-proxy passes the browser's Host and Origin through (its hub may add X-Forwarded-*)."""
    http = _session()
    proxied = {"Host": "hub.example.org", "Origin": "https://hub.example.org", "X-Forwarded-Proto": "https",
               "X-Forwarded-Prefix": "/user/alice/proxy/8888"}
    assert http.post(f"{stateful.url}/login", json={"user": "alice"}, headers=proxied, timeout=10).status_code == 200
    behind_lb = {"Host": "127.0.0.1:9999", "X-Forwarded-Host": "hub.example.org:443",
                 "Origin": "https://hub.example.org"}
    assert http.post(f"{stateful.url}/login", json={"user": "alice"}, headers=behind_lb, timeout=10
                     ).status_code == 200
    other_site = {**proxied, "Origin": "https://evil.example.org"}
    assert http.post(f"{stateful.url}/login", json={"user": "alice"}, headers=other_site, timeout=10
                     ).status_code == 403


def test_same_origin_rule():
    assert same_origin("http://127.0.0.1:8001", "127.0.0.1:8001")
    assert same_origin("https://hub.example.org", "hub.example.org", scheme="https")
    assert same_origin("https://hub.example.org", "hub.example.org:443", forwarded_proto="https")
    assert same_origin("http://HUB.example.org:80", "hub.example.org")
    assert same_origin("http://127.0.0.1:8001", "127.0.0.1:7000", "127.0.0.1:8001, proxy.internal")
    assert not same_origin("http://127.0.0.1:8002", "127.0.0.1:8001")
    assert not same_origin("http://127.0.0.1", "127.0.0.1:8001")
    assert not same_origin("null", "127.0.0.1:8001")
    assert not same_origin("http://127.0.0.1:8001/x", "127.0.0.1:8001")
    assert not same_origin("ftp://127.0.0.1:8001", "127.0.0.1:8001")
    assert not same_origin("http://127.0.0.1:99999", "127.0.0.1:99999")
    assert not same_origin("http://[::1", "[::1]")


def test_the_cluster_switch_reaches_every_server(cluster):
    c = cluster(2, "cookie", csrf_guard=False)
    assert c.csrf_guard is False and not any(s.csrf_guard for s in c.servers)
    r = requests.post(f"{c.url}/login", data=b'{"user": "a"}', headers={"Content-Type": "text/plain"}, timeout=10)
    assert r.status_code == 200
    c.csrf_guard = True
    assert all(s.app.extensions["statelab"]["csrf_guard"] for s in c.servers)
    r = requests.post(f"{c.url}/login", data=b'{"user": "a"}', headers={"Content-Type": "text/plain"}, timeout=10)
    assert r.status_code == 415


def test_the_cluster_reports_the_guard_its_servers_have(cluster):
    c = cluster(2, "stateful")
    assert c.csrf_guard is True
    c.servers[1].csrf_guard = False  # one weak server: the cluster as a whole is no longer guarded
    assert c.csrf_guard is False
    c.csrf_guard = True
    assert c.csrf_guard is True and c.add_server().csrf_guard is True
    c.csrf_guard = False
    assert c.add_server().csrf_guard is False and c.csrf_guard is False
