"""Row "Development Focus": which concerns land on the developer's desk, on each side?

The seed says: stateful, "Developers need to manage session-related issues"; stateless,
"Developers can focus more on business logic without session concerns". This experiment asks
the *same* list of concerns of both sides (:data:`CONCERNS`) and observes each answer against
local servers, so neither side is counted on a question the other was never asked:

``clean up expired state``        sessions whose idle time ran out stay stored until a purge; a
                                  stateless server holds no row per user
``renew the credential at login`` a login that keeps a planted session id hands the session to the
                                  attacker (session fixation); does a planted token do the same?
``reach state from every server`` sessions in one server's memory are missed under round robin;
                                  does a token verify on every server?
``revoke a stolen credential``    after logout, does a copy of the cookie or the token still work?
``refuse cross-site writes``      a cookie rides along with a form another site posts (CSRF), shown
                                  with the app's CSRF guard off and on; a bearer token does not
``keep it from page scripts``     an HttpOnly cookie is out of a page script's reach; a token handed
                                  to the page's script is readable by any script on the page (XSS)
``manage signing keys``           retiring a key logs out every holder of a token it signed
``keep the credential small``     the token grows with the cart it carries; the session id does not
                                  (nor does a token whose cart lives in a table, ``cart="db"``)

Revocation is measured with what the library has: deleting the session, a short token lifetime,
and retiring a signing key; a shared cache in front shows that none of them is immediate
everywhere. (The usual stateless fix, a deny list of token ids, is what lab 02 asks learners to
build: it is not in the library.) Counts and bytes only, no timings: the verdicts hold on a busy machine.
"""

from __future__ import annotations

import html
import sqlite3
import threading
import time
from contextlib import closing
from typing import Any

from ..client import Client, Exchange
from ..shop.plugins import login_keeping_the_id, personal_headers
from ..shop.server import Server
from ..shop.sessions import SqliteStore
from ..shop.tokens import inspect_token
from ..topology.cache import SharedCache
from ..topology.cluster import Cluster
from . import Evidence, Judgement, check_size, judged, progress, record

ROW = "development_focus"
SIDES = ("stateful", "stateless")
#: The concerns asked of both sides, in the order they are shown.
CONCERNS = ("clean up expired state", "renew the credential at login", "reach state from every server",
            "revoke a stolen credential at logout", "refuse cross-site forged writes (CSRF)",
            "keep the credential from page scripts (XSS)", "manage and rotate signing keys",
            "keep the credential small")
FORGED = '{"item": "forged", "qty": 1}'  # what a form with enctype="text/plain" can post, JSON-shaped

C_EXPIRED_STORED = "stateful: expired sessions stay stored until a clean-up job purges them"
C_FIXATION = "stateful: a login that keeps a planted id lets the attacker in; a new id at login does not"
C_MEM_MISSED = "stateful: sessions in each server's memory are missed under round robin"
C_COOKIE_FORGED = "a stateless signed cookie is forged cross-site just like a session cookie (guard off)"
C_LOGOUT_REVOKES = "stateful: logout revokes a stolen session id on every server sharing the store"
C_CACHE_SERVES = "stateful: a shared cache keeping per-user answers still serves them to a stolen cookie after logout"
C_SHORT_TOKEN = "stateless: a short token lifetime bounds it: a stolen token is refused once it expired"
C_KEY_RETIRED = "stateless: retiring a signing key logs out every holder of a token it signed"
C_TOKEN_SAME_SIZE = "stateless: with the cart in a table the token stays the same size (it says only who you are)"
C_FEWER = "the stateless side leaves fewer of the listed concerns to the developer than the stateful side"
C_NONE_LEFT = "none of the stateful side's concerns is left to the stateless side"


# --------------------------------------------------------------------------- measuring helpers

def _accepted(answers: list[Exchange]) -> int:
    return sum(1 for a in answers if a.status == 200)


def _replay(url: str, n: int, *, sid: str | None = None, token: str | None = None, cookie: str | None = None,
            path: str = "/me") -> list[Exchange]:
    """A thief sends ``GET path`` ``n`` times with a stolen session id (in cookie ``cookie``) or token."""
    thief = Client(url)
    if sid is not None and cookie is not None:
        thief.set_cookie(cookie, sid)
    thief.token = token
    try:
        return [thief.get(path) for _ in range(n)]
    finally:
        thief.close()


def _stored_rows(store: SqliteStore) -> int:
    """Rows in the session table, expired or not: what the store really holds on disk."""
    with closing(sqlite3.connect(store.path, timeout=30)) as db:
        return int(db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])


def _logged_in(url: str, user: str) -> Client:
    client = Client(url)
    ex = client.login(user)
    if not ex.ok:
        raise RuntimeError(f"could not log {user} in: {ex.summary()}")
    return client


def forged_form_post(victim: Client, attacker_origin: str) -> Exchange:
    """What the victim's browser sends when a page at ``attacker_origin`` posts a form to the shop.

    The browser attaches the shop's cookies by itself (another port of 127.0.0.1 is the *same
    site*, so even ``SameSite=Lax`` cookies go along), sends the page's ``Origin``, and posts the
    body as ``text/plain``: a form cannot send ``application/json`` or an ``Authorization`` header.
    So the victim's cookies are copied, and any token the victim's page script holds is not.
    """
    browser = Client(victim.url)
    try:
        for name, value in victim.cookies.items():
            browser.set_cookie(name, value)
        return browser.post("/cart", data=FORGED, headers={"Content-Type": "text/plain", "Origin": attacker_origin})
    finally:
        browser.close()


def _forged_cart_accepted(ex: Exchange) -> bool:
    lines = ex.body.get("cart", []) if ex.ok and isinstance(ex.body, dict) else []
    return any(isinstance(line, dict) and line.get("item") == "forged" for line in lines)


# --------------------------------------------------------------------------- the concerns, one by one

def _start_idle_sessions(cluster: Cluster, users: int, m: dict[str, Any]) -> None:
    """Log ``users`` users in, then leave them idle (checked later, once session_ttl has passed)."""
    for i in range(users):
        _logged_in(cluster.url, f"idle{i}").close()
    m["_idle_since"] = time.time()


def _short_token(cluster: Cluster, m: dict[str, Any]) -> None:
    """A token with a one-second lifetime is stolen; replayed now, and again after it expired (at the end).

    ``exp`` is a whole second, so a token issued late in a second has only a moment to live: log in
    again until the token has at least half a second left, so "accepted before exp" is never a race.
    """
    alice = _logged_in(cluster.url, "alice")
    while (inspect_token(alice.token).expires_in or 0.0) < 0.5:
        time.sleep(max(0.0, inspect_token(alice.token).expires_in or 0.0) + 0.01)
        alice.login("alice")
    m["_short_token"] = alice.token
    m["short_token_ttl_s"] = round(inspect_token(alice.token).expires_in or 0.0, 2)
    m["short_token_accepted_before_exp"] = _accepted(_replay(cluster.url, 1, token=alice.token)) == 1
    alice.close()


def _fixation(stateful: Cluster, stateless: Cluster, m: dict[str, Any]) -> None:
    """Mallory plants her own live credential in alice's browser; alice logs in; whom does mallory's copy name?"""
    for route, key in (("/login-naive", "naive"), ("/login", "safe")):
        mallory = _logged_in(stateful.url, "mallory")
        planted = mallory.cookies[stateful.cookie_name]
        alice = Client(stateful.url)
        alice.set_cookie(stateful.cookie_name, planted)
        alice.post(route, {"user": "alice"})
        seen = mallory.me()  # mallory, still holding the planted id
        m[f"fixation_{key}_id_kept"] = alice.cookies.get(stateful.cookie_name) == planted
        m[f"fixation_{key}_mallory_sees"] = seen.body.get("user") if seen.ok else f"{seen.status}"
        mallory.close()
        alice.close()
    mallory = _logged_in(stateless.url, "mallory")
    alice = Client(stateless.url)
    alice.token = mallory.token  # planted in alice's page
    alice.login("alice")
    seen = mallory.me()
    m["token_fixation_mallory_sees"] = seen.body.get("user") if seen.ok else f"{seen.status}"
    m["token_fixation_alice_got_new_token"] = alice.token != mallory.token
    mallory.close()
    alice.close()


def _reach(stateful: Cluster, stateless: Cluster, replays: int, m: dict[str, Any]) -> None:
    """Round robin over two servers: how often does a request find who is asking?"""
    for cluster, key in ((stateful, "memory_round_robin_found_share"), (stateless, "token_round_robin_found_share")):
        bob = _logged_in(cluster.url, "bob")
        m[key] = _accepted([bob.me() for _ in range(replays)]) / replays
        bob.close()


def _stateful_logout(cluster: Cluster, replays: int, m: dict[str, Any]) -> None:
    """A thief copies alice's session id; alice logs out; the thief tries the copy on every server."""
    alice = _logged_in(cluster.url, "alice")
    alice.add_to_cart("book")
    stolen = alice.cookies[cluster.cookie_name]
    before = _replay(cluster.url, 1, sid=stolen, cookie=cluster.cookie_name)
    alice.logout()
    after = _replay(cluster.url, replays, sid=stolen, cookie=cluster.cookie_name)
    m["stateful_copy_worked_before_logout"] = _accepted(before) == 1
    m["stateful_replays_accepted_after_logout"] = _accepted(after)
    m["stateful_replay_servers"] = len({a.served_by for a in after if a.served_by})
    alice.close()


def _stateless_logout(cluster: Cluster, replays: int, m: dict[str, Any]) -> None:
    """Alice logs in, adds a book (a new token), a thief copies the token, alice logs out."""
    alice = _logged_in(cluster.url, "alice")
    alice.add_to_cart("book")
    stolen = alice.token
    alice.logout()
    after = _replay(cluster.url, replays, token=stolen)
    m["stateless_replays_accepted_after_logout"] = _accepted(after)
    m["stateless_token_valid_for_s"] = round(inspect_token(stolen).expires_in or 0.0, 1)
    alice.close()


def _cached_after_logout(server: Server, replays: int, m: dict[str, Any]) -> None:
    """A shared cache keeps per-user answers (public, Vary: Cookie, max-age 60): does logout reach it?"""
    cache = SharedCache(server)
    try:
        alice = _logged_in(cache.url, "alice")
        alice.add_to_cart("book")
        alice.cart()  # stored by the cache, keyed by alice's cookie
        stolen = alice.cookies[server.cookie_name]
        alice.logout()
        through_cache = _replay(cache.url, replays, sid=stolen, cookie=server.cookie_name, path="/cart")
        direct = _replay(server.url, 1, sid=stolen, cookie=server.cookie_name, path="/cart")
        m["cache_replays_served_after_logout"] = _accepted(through_cache)
        m["cache_replays_hits"] = sum(a.headers.get("X-Cache") == "HIT" for a in through_cache)
        m["cache_direct_refused_after_logout"] = direct[0].status == 401
        alice.close()
    finally:
        cache.stop()


def _csrf(open_servers: dict[str, Server], guarded: Server, m: dict[str, Any]) -> None:
    """A page on another loopback port posts a form to the shop in the victim's browser."""
    attacker = f"http://127.0.0.1:{guarded.port}"  # any other port of 127.0.0.1: same site, other origin
    for key, server in open_servers.items():
        victim = _logged_in(server.url, "alice")
        forged = forged_form_post(victim, attacker)
        m[f"csrf_{key}_status"] = forged.status
        m[f"csrf_{key}_accepted"] = _forged_cart_accepted(forged)
        victim.close()
    victim = _logged_in(guarded.url, "alice")
    refused = forged_form_post(victim, f"http://127.0.0.1:{open_servers['stateful'].port}")
    no_origin = victim.post("/cart", data=FORGED, headers={"Content-Type": "text/plain"})
    m["csrf_guarded_status"], m["csrf_guarded_no_origin_status"] = refused.status, no_origin.status
    m["csrf_guarded_accepted"] = _forged_cart_accepted(refused) or _forged_cart_accepted(no_origin)
    victim.close()


def _page_scripts(stateful: Cluster, stateless: Cluster, cookie: Server, m: dict[str, Any]) -> None:
    """What the login answer gives the page: an HttpOnly cookie, or a token in the body for its script."""
    for key, url in (("stateful", stateful.url), ("stateless", stateless.url), ("cookie", cookie.url)):
        client = Client(url)
        login = client.login("alice")
        details = client.cookie_details()
        m[f"{key}_cookie_httponly"] = bool(details) and all(c["httponly"] for c in details)
        m[f"{key}_cookie_samesite"] = ", ".join(sorted({str(c["samesite"]) for c in details})) or "no cookie"
        m[f"{key}_token_in_login_body"] = isinstance(login.body, dict) and isinstance(login.body.get("token"), str)
        client.close()


def _key_rotation(cluster: Cluster, users: int, m: dict[str, Any]) -> None:
    """Rotate the signing key, then retire the old one while tokens it signed are still in use."""
    keyring = cluster.keyring
    assert keyring is not None
    holders = [_logged_in(cluster.url, f"holder{i}") for i in range(users)]
    old = keyring.current_kid
    new = keyring.rotate()
    m["rotation_accepted_after_rotate"] = _accepted([h.me() for h in holders])
    newcomer = _logged_in(cluster.url, "newcomer")
    m["rotation_new_token_uses_new_key"] = inspect_token(newcomer.token).header.get("kid") == new
    keyring.retire(old)
    m["rotation_accepted_after_retire"] = _accepted([h.me() for h in holders])
    m["rotation_new_token_accepted_after_retire"] = newcomer.me().ok
    m["rotation_users"] = users
    for client in [*holders, newcomer]:
        client.close()


def _sizes(stateful: Cluster, stateless: Cluster, in_db: Cluster, lines: int, m: dict[str, Any]) -> None:
    """Add different books on each side: what does each request carry afterwards?

    The token sides get ``lines`` books (the cart in the token, and in a table); the session side
    a few (each is a write to the SQLite store, and the cookie cannot change whatever the cart holds).
    """
    shopper, holder = _logged_in(stateful.url, "reader"), _logged_in(stateless.url, "reader")
    slim = _logged_in(in_db.url, "reader")
    sid_before, token_before = len(shopper.cookies[stateful.cookie_name]), len(holder.token or "")
    m["db_token_bytes_before"] = len(slim.token or "")
    sid_lines = min(lines, 5)
    for i in range(lines):
        holder.add_to_cart(f"book-{i}")
        slim.add_to_cart(f"book-{i}")
        if i < sid_lines:
            shopper.add_to_cart(f"book-{i}")
    m["db_token_bytes_after"] = len(slim.token or "")
    m["db_cart_lines_kept"] = len(slim.cart().body.get("cart", []))
    slim.close()
    cart, session_cart = holder.cart(), shopper.cart()
    m["cart_lines"], m["sid_cart_lines"] = lines, sid_lines
    m["sid_cart_lines_kept"] = len(session_cart.body.get("cart", [])) if session_cart.ok else 0
    m["cart_lines_kept"] = len(cart.body.get("cart", [])) if cart.ok else 0
    m["sid_bytes_before"], m["sid_bytes_after"] = sid_before, len(shopper.cookies[stateful.cookie_name])
    m["token_bytes_before"], m["token_bytes_after"] = token_before, len(holder.token or "")
    m["token_bytes_per_line"] = round((m["token_bytes_after"] - token_before) / lines, 1)
    m["sid_is_a_signed_token"] = not inspect_token(shopper.cookies[stateful.cookie_name]).problems
    shopper.close()
    holder.close()


def _stateless_rows(cluster: Cluster, m: dict[str, Any]) -> None:
    """What each stateless server says it holds per user (its /health ``sessions``)."""
    held = 0
    for server in cluster.servers:
        with Client(server.url) as probe:
            body = probe.health().body
            held += body.get("sessions", 0) if isinstance(body, dict) else 0
    m["stateless_sessions_held"] = held


def _finish(expiring: Cluster, brief: Cluster, ttl: float, m: dict[str, Any]) -> None:
    """Once ``ttl`` has passed: sessions live and rows stored, the purge; and the short token after its exp."""
    wait = max(m.pop("_idle_since") + ttl + 0.05, time.time() + m["short_token_ttl_s"] + 0.05) - time.time()
    if wait > 0:
        time.sleep(wait)
    store = expiring.store
    assert isinstance(store, SqliteStore)
    with Client(expiring.url) as probe:
        health = probe.health()
    m["expired_live_sessions"] = health.body.get("sessions") if health.ok else None
    m["expired_rows_before_purge"] = _stored_rows(store)
    m["expired_purged"] = store.purge_expired()
    m["expired_rows_after_purge"] = _stored_rows(store)
    late = _replay(brief.url, 1, token=m.pop("_short_token"))[0]
    m["short_token_refused_after_exp"] = late.status == 401 and "expired" in str(late.body)


# --------------------------------------------------------------------------- the experiment

def _stop_all(services: list[Any]) -> None:
    """Stop clusters and servers side by side: each takes up to a poll interval to stop."""
    threads = [threading.Thread(target=s.stop, name=f"statelab-stop-{i}") for i, s in enumerate(services)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def run(*, quick: bool = False, users: int | None = None, replays: int | None = None,
        cart_lines: int | None = None, session_ttl: float | None = None) -> Evidence:
    """Ask both sides the same concerns (:data:`CONCERNS`), observe each against local servers, count them.

    ``users`` idle sessions and token holders (default 12, quick 6); ``replays`` requests a thief
    makes with a stolen credential (default 12, quick 6); ``cart_lines`` different books added to
    watch the credential grow (default 60, quick 20); ``session_ttl`` the idle timeout of the
    expiry check (default 0.6 s, quick 0.25 s). A stolen one-second token is replayed once it has
    expired, so a run takes at least a second.
    """
    users = users if users is not None else (6 if quick else 12)
    replays = replays if replays is not None else (6 if quick else 12)
    cart_lines = cart_lines if cart_lines is not None else (20 if quick else 60)
    ttl = session_ttl if session_ttl is not None else (0.25 if quick else 0.6)
    check_size("users", users, 1, 500)
    check_size("replays", replays, 3, 200)
    check_size("cart_lines", cart_lines, 2, 150)
    check_size("session_ttl", ttl, 0.05, 10, whole=False)
    began = time.perf_counter()
    m: dict[str, Any] = {}
    started: list[Any] = []

    def start(service: Any) -> Any:
        started.append(service)
        return service.start() if isinstance(service, Server) else service

    try:
        brief = start(Cluster(1, "stateless", token_ttl=1))
        expiring = start(Cluster(1, "stateful", "sqlite", session_ttl=ttl))
        shop = start(Cluster(2, "stateful", "sqlite", plugins=[login_keeping_the_id]))
        unshared = start(Cluster(2, "stateful", "memory"))
        api = start(Cluster(2, "stateless"))
        api_db = start(Cluster(2, "stateless", cart="db"))
        cached = start(Server("stateful", name="cached-shop", plugins=[personal_headers({"personal": "public+vary"})]))
        open_servers = {mode: start(Server(mode, name=f"{mode}-no-guard", csrf_guard=False))
                        for mode in ("stateful", "stateless", "cookie")}
        guarded = start(Server("stateful", name="stateful-guarded"))
        steps = [
            lambda: _short_token(brief, m),
            lambda: _start_idle_sessions(expiring, users, m),
            lambda: _fixation(shop, api, m),
            lambda: _reach(unshared, api, replays, m),
            lambda: _stateful_logout(shop, replays, m),
            lambda: _stateless_logout(api, replays, m),
            lambda: _cached_after_logout(cached, replays, m),
            lambda: _csrf(open_servers, guarded, m),
            lambda: _page_scripts(shop, api, open_servers["cookie"], m),
            lambda: _stateless_rows(api, m),
            lambda: _sizes(shop, api, api_db, cart_lines, m),
            lambda: _key_rotation(api, users, m),
            lambda: _finish(expiring, brief, ttl, m),
        ]
        for step in progress(steps, "development concerns"):
            step()
    finally:
        _stop_all(started)
    m["replays"] = replays
    m["idle_users"] = users
    m["session_ttl_s"] = ttl
    return record(_judge(m, quick, time.perf_counter() - began))


def _concerns(m: dict[str, Any]) -> list[dict[str, Any]]:
    """Each concern of :data:`CONCERNS`, asked of both sides: must the developer handle it, and what was seen?"""
    n = m["replays"]
    found = {
        "clean up expired state": (
            m["expired_rows_before_purge"] > (m["expired_live_sessions"] or 0),
            (f"{m['expired_rows_before_purge']} rows still stored, {m['expired_live_sessions']} live, "
             f"until a purge removed {m['expired_purged']}"),
            m["stateless_sessions_held"] > 0,
            f"servers hold {m['stateless_sessions_held']} rows per user; a token expires by itself"),
        "renew the credential at login": (
            m["fixation_naive_mallory_sees"] == "alice",
            (f"a login keeping the planted id let mallory in as {m['fixation_naive_mallory_sees']}; "
             f"a new id at login gave her {m['fixation_safe_mallory_sees']}"),
            m["token_fixation_mallory_sees"] == "alice",
            f"a token planted before login still named {m['token_fixation_mallory_sees']}; login minted a new one"),
        "reach state from every server": (
            m["memory_round_robin_found_share"] < 1,
            f"sessions in each server's memory, round robin: {m['memory_round_robin_found_share']:.0%} found",
            m["token_round_robin_found_share"] < 1,
            f"tokens, round robin: {m['token_round_robin_found_share']:.0%} accepted (every server has the key)"),
        "revoke a stolen credential at logout": (
            m["stateful_replays_accepted_after_logout"] > 0,
            (f"deleting the session: {m['stateful_replays_accepted_after_logout']}/{n} replays accepted on "
             f"{m['stateful_replay_servers']} servers; a cache keeping per-user answers still served "
             f"{m['cache_replays_served_after_logout']}/{n}"),
            m["stateless_replays_accepted_after_logout"] > 0,
            (f"{m['stateless_replays_accepted_after_logout']}/{n} replays accepted after logout, valid "
             f"{m['stateless_token_valid_for_s']:.0f} s more; lab 02 builds the fix")),
        "refuse cross-site forged writes (CSRF)": (
            m["csrf_stateful_accepted"],
            (f"guard off: a forged form post answered {m['csrf_stateful_status']}"
             + (" and filled the cart" if m["csrf_stateful_accepted"] else "")
             + f"; guard on: {m['csrf_guarded_status']} (cross origin), {m['csrf_guarded_no_origin_status']} "
               "(text/plain)"),
            m["csrf_stateless_accepted"],
            f"guard off: the forged post carried no bearer token and got {m['csrf_stateless_status']}"),
        "keep the credential from page scripts (XSS)": (
            not m["stateful_cookie_httponly"],
            f"the session cookie is {'HttpOnly' if m['stateful_cookie_httponly'] else 'readable by scripts'}",
            m["stateless_token_in_login_body"],
            ("login hands the token to the page's script: any script on the page can read it"
             if m["stateless_token_in_login_body"] else "login hands the page no token")),
        "manage and rotate signing keys": (
            m["sid_is_a_signed_token"],
            "the session id is random, not signed: no key to rotate",
            m["rotation_accepted_after_retire"] < m["rotation_users"],
            (f"retiring the old key logged out {m['rotation_users'] - m['rotation_accepted_after_retire']}/"
             f"{m['rotation_users']} token holders")),
        "keep the credential small": (
            m["sid_bytes_after"] > m["sid_bytes_before"],
            f"the cookie stayed {m['sid_bytes_after']} bytes ({m['sid_cart_lines']} lines in the cart)",
            m["token_bytes_after"] > 2 * m["token_bytes_before"],
            (f"the token grew from {m['token_bytes_before']} to {m['token_bytes_after']} bytes "
             f"({m['cart_lines']} lines, {m['token_bytes_per_line']:.0f} bytes each); with the cart in a table it "
             f"stayed {m['db_token_bytes_after']} bytes, and every request reads the table")),
    }
    return [{"concern": c, "stateful": found[c][0], "stateful_saw": found[c][1],
             "stateless": found[c][2], "stateless_saw": found[c][3]} for c in CONCERNS]


#: Which checks judge each claim (see :class:`~statelab.experiments.Judgement`); ``_judge()`` computes those checks
#: and adds to each claim the sentence of what was measured.
CLAIMS = {
    "stateful": Judgement(supports=(C_EXPIRED_STORED, C_FIXATION, C_MEM_MISSED), qualifies=(C_COOKIE_FORGED,)),
    "stateless": Judgement(supports=(C_FEWER,), qualifies=(C_NONE_LEFT, C_TOKEN_SAME_SIZE)),
    "4d": Judgement(supports=(C_LOGOUT_REVOKES,), qualifies=(C_CACHE_SERVES, C_SHORT_TOKEN, C_KEY_RETIRED)),
}


def _judge(m: dict[str, Any], quick: bool, seconds: float) -> Evidence:
    n = m["replays"]
    concerns = _concerns(m)
    on = {side: [c["concern"] for c in concerns if c[side]] for side in SIDES}
    m["stateful_concerns"], m["stateless_concerns"] = len(on["stateful"]), len(on["stateless"])
    checks = {
        C_EXPIRED_STORED:
            m["expired_live_sessions"] == 0 and m["expired_rows_before_purge"] >= m["idle_users"]
            and m["expired_purged"] == m["expired_rows_before_purge"] and m["expired_rows_after_purge"] == 0,
        C_FIXATION:
            m["fixation_naive_id_kept"] and m["fixation_naive_mallory_sees"] == "alice"
            and not m["fixation_safe_id_kept"] and m["fixation_safe_mallory_sees"] == "401",
        C_MEM_MISSED: m["memory_round_robin_found_share"] < 1,
        "stateful: with the CSRF guard off a cross-site form post rides on the cookie; with it on it is refused":
            m["csrf_stateful_accepted"] and m["csrf_guarded_status"] == 403
            and m["csrf_guarded_no_origin_status"] == 415 and not m["csrf_guarded_accepted"],
        C_COOKIE_FORGED: m["csrf_cookie_accepted"],
        "stateful: the session cookie is HttpOnly: page scripts cannot read it":
            m["stateful_cookie_httponly"],
        C_LOGOUT_REVOKES:
            m["stateful_copy_worked_before_logout"] and m["stateful_replays_accepted_after_logout"] == 0
            and m["stateful_replay_servers"] >= 2,
        C_CACHE_SERVES:
            m["cache_replays_served_after_logout"] == n == m["cache_replays_hits"]
            and m["cache_direct_refused_after_logout"],
        "stateless: logout does not revoke a stolen token; it works until exp":
            m["stateless_replays_accepted_after_logout"] == n and m["stateless_token_valid_for_s"] > 0,
        C_SHORT_TOKEN: m["short_token_accepted_before_exp"] and m["short_token_refused_after_exp"],
        C_KEY_RETIRED:
            m["rotation_accepted_after_rotate"] == m["rotation_users"] and m["rotation_accepted_after_retire"] == 0
            and m["rotation_new_token_uses_new_key"] and m["rotation_new_token_accepted_after_retire"],
        "stateless: the token grows with the cart; the session id does not":
            m["token_bytes_after"] > 2 * m["token_bytes_before"] and m["sid_bytes_after"] == m["sid_bytes_before"]
            and m["cart_lines_kept"] == m["cart_lines"] and m["sid_cart_lines_kept"] == m["sid_cart_lines"],
        "stateless: login hands the token to the page's script, where any script on the page can read it":
            m["stateless_token_in_login_body"],
        "stateless: a cross-site form post carries no bearer token (refused even with the guard off)":
            not m["csrf_stateless_accepted"] and m["csrf_stateless_status"] == 401,
        C_TOKEN_SAME_SIZE:
            m["db_token_bytes_after"] == m["db_token_bytes_before"] and m["db_cart_lines_kept"] == m["cart_lines"],
        "stateless: the servers store nothing per user, so nothing to clean up":
            m["stateless_sessions_held"] == 0,
        "stateless: a token planted before login does not become the victim's":
            m["token_fixation_mallory_sees"] == "mallory" and m["token_fixation_alice_got_new_token"],
        "stateless: every server accepts the token under round robin":
            m["token_round_robin_found_share"] == 1,
        C_FEWER: len(on["stateless"]) < len(on["stateful"]),
        C_NONE_LEFT: not set(on["stateful"]) & set(on["stateless"]),
    }
    traded = ", ".join(on["stateless"]) or "none"
    claims = judged(CLAIMS, {
        "stateful": (f"{len(on['stateful'])} of {len(concerns)} concerns needed the developer on the stateful side "
                     f"({', '.join(on['stateful']) or 'none'}). "
                     + ("CSRF comes with the cookie, not with the session: a stateless signed cookie was forged "
                        "the same way." if m["csrf_cookie_accepted"] else "")),
        "stateless": (f"Asked the same {len(concerns)} questions, the stateless side needed the developer on "
                      f"{len(on['stateless'])} ({traded}) and the stateful side on {len(on['stateful'])}"
                      + (": the session concerns go, token and browser concerns come."
                         if on["stateless"] and not set(on["stateful"]) & set(on["stateless"]) else ".")),
        "4d": (f"Deleting the session refused {n - m['stateful_replays_accepted_after_logout']}/{n} replays "
               f"on {m['stateful_replay_servers']} servers, but a shared cache keeping per-user answers "
               f"served {m['cache_replays_served_after_logout']}/{n} of them after logout (until its "
               "max-age runs out); a stateless design revokes by expiry (a one-second token was "
               + ("refused once expired" if m["short_token_refused_after_exp"] else "still accepted")
               + ") or by retiring a key, which logged out "
               f"{m['rotation_users'] - m['rotation_accepted_after_retire']}/{m['rotation_users']} holders "
               "at once. Revocation is central, not instant everywhere."),
    })
    reading = (
        f"Asked the same {len(concerns)} questions, the stateful side needed the developer on {len(on['stateful'])} "
        f"({', '.join(on['stateful']) or 'none'}) and the stateless side on {len(on['stateless'])} ({traded}). "
        f"A stolen token still worked for {m['stateless_replays_accepted_after_logout']}/{n} requests after logout "
        f"(valid {m['stateless_token_valid_for_s']:.0f} s more), a stolen session id for "
        f"{m['stateful_replays_accepted_after_logout']}/{n}, or {m['cache_replays_served_after_logout']}/{n} through "
        f"a cache that kept per-user answers. With the CSRF guard off a cross-site form post answered "
        f"{m['csrf_stateful_status']} with a session cookie, {m['csrf_cookie_status']} with a signed cookie and "
        f"{m['csrf_stateless_status']} with a bearer token; with it on, {m['csrf_guarded_status']}."
    )
    return Evidence(row=ROW, measurements=m, checks=checks, claims=claims, reading=reading,
                    seconds=seconds, extra={"concerns": concerns, "quick": quick, "key_numbers": {
                        "concerns (stateful / stateless)": f"{len(on['stateful'])} / {len(on['stateless'])} "
                                                           f"of {len(concerns)}",
                        "stolen token accepted after logout": f"{m['stateless_replays_accepted_after_logout']}/{n}",
                        "stolen session id accepted after logout": f"{m['stateful_replays_accepted_after_logout']}/{n}",
                        "served from a cache after logout": f"{m['cache_replays_served_after_logout']}/{n}",
                    }})


# --------------------------------------------------------------------------- showing it

def concerns_html(ev: Evidence) -> str:
    """The concern list as an HTML table: each side, observed yes/no in words, and what was seen."""
    def cell(flag: bool, saw: str) -> str:
        mark = "<b>yes</b>" if flag else "no"
        return f"<td>{mark}</td><td style='text-align:left'>{html.escape(saw)}</td>"

    rows = "".join(
        f"<tr><td style='text-align:left'>{html.escape(c['concern'])}</td>"
        f"{cell(c['stateful'], c['stateful_saw'])}{cell(c['stateless'], c['stateless_saw'])}</tr>"
        for c in ev.extra["concerns"])
    m = ev.measurements
    total = (f"<tr><td style='text-align:left'><b>concerns observed</b></td><td><b>{m['stateful_concerns']}</b></td>"
             f"<td></td><td><b>{m['stateless_concerns']}</b></td><td></td></tr>")
    return ("<table><thead><tr><th style='text-align:left'>concern (asked of both)</th><th>stateful: must handle?</th>"
            "<th style='text-align:left'>observed</th><th>stateless: must handle?</th>"
            f"<th style='text-align:left'>observed</th></tr></thead><tbody>{rows}{total}</tbody></table>")
