"""Row "caching": the experiment's evidence, and the SharedCache it stands on (real HTTP on loopback)."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

import statelab as sl
from statelab.experiments import caching, latest
from statelab.shop.plugins import personal_headers
from statelab.topology.cache import SharedCache, parse_cache_control


@pytest.fixture(scope="module")
def ev():
    return caching.run(quick=True)


def test_each_half_and_benefit_4c_get_their_own_verdict(ev):
    assert ev.row == "caching"
    assert set(ev.verdicts) == {"stateful", "stateless"} and set(ev.benefits) == {"4c"}
    for design in caching.DESIGNS:
        table = ev.extra["table"][design]
        assert table["misconfigured"]["leaks"] > 0  # alice's data served to someone else
        assert table["correct"]["leaks"] == 0
        assert table["correct"]["personal hit ratio"] == 0
        assert table["correct"]["catalog hit ratio"] >= caching.CATALOG_HITS
        ev.require(caching.MISCONFIGURED[design], caching.NO_VARY[design], caching.PERSONAL[design])
    # one copy of /me per token: every cart change mints a new one
    assert ev.checks[caching.MORE_COPIES.id]
    # CI's machine: the commonest bug leaks the cookie shops and not the bearer shop, and every half
    # keeps the same three limits, so both halves hold with nuance
    assert ev.verdicts == {"stateful": "holds with nuance", "stateless": "holds with nuance"}
    assert ev.benefits == {"4c": "holds with nuance"}
    assert latest()["caching"] is ev


def test_the_commonest_bug_leaks_cookies_and_the_cache_steps_aside_for_authorization(ev):
    """RFC 9111 section 3.5, measured: max-age=60 with no private and no Vary on per-user answers."""
    table = ev.extra["table"]
    session, token, signed = (table[d][caching.MAX_AGE] for d in (*caching.DESIGNS, caching.SIGNED_COOKIE))
    assert session["leaks"] > 0 and session["personal hit ratio"] > 0   # bob got alice's answers, from the cache
    assert signed["leaks"] > 0                                          # a stateless cookie leaks the same way
    assert token["leaks"] == 0 and token["personal hit ratio"] == 0 and token["stored per-user copies"] == 0
    assert token["per-user answers the cache stepped aside for"] == token["per-user answers"]
    ev.require(caching.MAX_AGE_LEAKS, caching.MAX_AGE_SAFE, caching.SIGNED_COOKIE_LEAKS)
    assert set(ev.mechanisms) >= {caching.MAX_AGE_LEAKS.id, caching.MAX_AGE_SAFE.id}
    assert ev.require_mechanisms()
    # the halves are decided by this set-up, one rule for both
    assert caching.CLAIMS["stateful"].supports == (caching.MAX_AGE_LEAKS.id,)
    assert caching.CLAIMS["stateless"].supports == (caching.MAX_AGE_SAFE.id,)
    assert caching.CLAIMS["stateful"].qualifies == caching.CLAIMS["stateless"].qualifies


def test_the_conclusion_is_rendered_from_the_numbers(ev):
    md = ev.conclusion()._repr_markdown_()
    aged = ev.measurements["leaks, max-age without private or Vary"]
    session = aged[caching.DESIGN_NAMES["stateful"]]
    assert f"served another user's data {session} times to the session shop's users" in md
    assert "RFC 9111 section 3.5" in md and "Measured under these conditions" in md
    assert "needs: stateless: with the same headers the correct cache steps aside" in md
    assert "per user even when the cache or the headers are wrong" not in md   # the straw man is gone


def test_a_set_up_by_hand_through_statelabs_cache_leaks_the_cookie_shop_only():
    """The mechanism the row stands on, without the experiment: cache.py's section 3.5 rule."""
    for mode, leaks in (("stateful", True), ("cookie", True), ("stateless", False)):
        policy = {"personal": "max-age"}
        with sl.Server(mode, plugins=[personal_headers(policy)]) as server, SharedCache(server.start()) as good:
            alice, bob = sl.Client(good.url), sl.Client(good.url)
            alice.login("alice"), bob.login("bob")
            alice.add_to_cart("sicp")
            first = alice.cart()
            assert first.headers["Cache-Control"] == "max-age=60" and "Vary" not in first.headers
            got = bob.cart()
            assert (got.body["cart"] == [{"item": "sicp", "qty": 1}]) is leaks, mode
            assert x_cache(got) == ("HIT" if leaks else "BYPASS"), mode


def test_plot_says_leaks_in_words(ev):
    import matplotlib

    matplotlib.use("Agg")
    from statelab.plots import caching as chart

    fig = chart.plot(ev)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(t.endswith("leaks") for t in texts) and "no leak" in texts
    matplotlib.pyplot.close(fig)


def test_run_refuses_silly_sizes():
    with pytest.raises(ValueError):
        caching.run(users=1)


def test_parse_cache_control():
    assert parse_cache_control('public, max-age=60, no-cache="Set-Cookie"') == {
        "public": None, "max-age": "60", "no-cache": "Set-Cookie"}
    assert parse_cache_control(None) == {}


@pytest.fixture
def shop():
    """A stateful server whose per-user headers a test can switch, and both kinds of cache in front."""
    policy = {"personal": "private"}
    with sl.Server("stateful", plugins=[personal_headers(policy)]) as server:
        server.start()
        with SharedCache(server) as good, SharedCache(server, honour_headers=False) as bad:
            yield server, policy, good, bad


def x_cache(ex: sl.Exchange) -> str | None:
    return ex.headers.get("X-Cache")


def test_correct_cache_keeps_public_answers_and_revalidates_with_etag(shop):
    server, _, good, _ = shop
    alice = sl.Client(good.url)
    assert x_cache(alice.catalog()) == "MISS"
    first = server.requests
    hit = alice.catalog()
    assert x_cache(hit) == "HIT" and hit.status == 200 and server.requests == first  # the server was not asked
    assert hit.served_by == server.name and "Age" in hit.headers
    etag = hit.headers["ETag"]
    assert alice.get("/catalog", headers={"If-None-Match": etag}).status == 304  # answered by the cache
    assert good.expire() == 1
    again = alice.catalog()
    assert x_cache(again) == "REVALIDATED" and again.status == 200 and again.body["catalog"]
    assert good.stats["upstream_304"] == 1 and server.requests == first + 1
    assert good.hit_ratio("/catalog") == pytest.approx(2 / 4)


def test_private_answers_are_never_stored_and_vary_splits_per_user(shop):
    _, policy, good, _ = shop
    alice, bob = sl.Client(good.url), sl.Client(good.url)
    alice.login("alice"), bob.login("bob")
    assert x_cache(alice.me()) == "BYPASS" and x_cache(alice.me()) == "BYPASS"
    assert "/me" not in good.entries
    policy["personal"] = "public+vary"
    assert alice.me().body == {"user": "alice"} and bob.me().body == {"user": "bob"}
    again = bob.me()
    assert x_cache(again) == "HIT" and again.body == {"user": "bob"}
    assert good.entries["/me"] == 2  # one stored copy per Cookie value
    alice.cart()
    assert "/cart" in good.entries
    alice.add_to_cart("sicp")  # a POST to /cart drops what the cache held for /cart
    assert "/cart" not in good.entries
    assert alice.cart().body["cart"] == [{"item": "sicp", "qty": 1}]


def test_without_vary_even_a_correct_cache_leaks(shop):
    _, policy, good, _ = shop
    policy["personal"] = "public"
    alice, bob = sl.Client(good.url), sl.Client(good.url)
    alice.login("alice"), bob.login("bob")
    alice.me()
    assert bob.me().body == {"user": "alice"}


def test_misconfigured_cache_serves_alices_cart_to_bob(shop):
    _, _, _, bad = shop
    alice, bob = sl.Client(bad.url), sl.Client(bad.url)
    alice.login("alice"), bob.login("bob")
    alice.add_to_cart("sicp")
    alice.cart()
    leaked = bob.cart()
    assert x_cache(leaked) == "HIT" and leaked.body["cart"] == [{"item": "sicp", "qty": 1}]
    assert bad.hit_ratio("/cart") == 0.5 and bad.stats["BYPASS"] == 3  # logins and the POST passed through


def test_authorized_requests_are_not_stored_unless_public():
    policy = {"personal": "private"}
    with sl.Server("stateless", plugins=[personal_headers(policy)]) as server, \
            SharedCache(server.start()) as good:
        alice = sl.Client(good.url)
        alice.login("alice")
        policy["personal"] = "public+vary"
        alice.me()
        assert x_cache(alice.me()) == "HIT"  # public: allowed, keyed by Authorization
        assert good.entries["/me"] == 1


def test_bad_upstream_and_dead_upstream_are_clear_errors():
    with pytest.raises(ValueError, match="upstream"):
        SharedCache("http://example.com:80", start=False)
    server = sl.Server("stateful").start()
    with SharedCache(server) as cache:
        server.stop()
        parts = urlsplit(cache.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        conn.request("GET", "/catalog")
        answer = conn.getresponse()
        assert answer.status == 502 and "error" in json.loads(answer.read())
        conn.close()
