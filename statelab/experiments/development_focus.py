"""Row "Development Focus": which concerns land on the developer's desk, on each side?

The source text says: stateful, "Developers need to manage session-related issues"; stateless,
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

Every question is asked of three designs: the stateful one (a session id in a cookie, sessions in a shared
store; in memory for the "every server" question) and *both* stateless ones, token + cart in token and
token + cart in db. The checklist shows who carries each concern, with a count per design; no verdict is
taken from a count (the list is ours, and "keep the credential small" lands on the stateless side only when
the cart rides in the token). Each half is judged by one rule, per concern shown live: the session concerns
its sentence names must be observed as it says (on the stateful side, needing the developer; on both
stateless designs, gone), and the concerns its sentence leaves out, observed on its side, are its nuance.

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
from ..topology.cluster import Cluster, shared_store
from . import Check, Evidence, Judgement, check_size, checks, conditions, judged, progress, record

ROW = "development_focus"
#: The designs each concern is asked of: the stateful one and both stateless ones.
SIDES = ("stateful", "token + cart in token", "token + cart in db")
STATELESS_SIDES = SIDES[1:]
#: Measurement-key prefix of each stateless design ("" for the token with the cart in it, "db_" for cart in db).
PREFIX = {"token + cart in token": "", "token + cart in db": "db_"}
#: The concerns asked of both sides, in the order they are shown.
CONCERNS = ("clean up expired state", "renew the credential at login", "reach state from every server",
            "revoke a stolen credential at logout", "refuse cross-site forged writes (CSRF)",
            "keep the credential from page scripts (XSS)", "manage and rotate signing keys",
            "keep the credential small")
#: The concerns the source text's two sentences are about: the session-related ones.
SESSION_CONCERNS = CONCERNS[:3]
FORGED = '{"item": "forged", "qty": 1}'  # what a form with enctype="text/plain" can post, JSON-shaped

CHECKS = checks("""
expired_stored, mechanism: stateful: expired sessions stay stored until a clean-up job purges them
fixation, mechanism: stateful: a login that keeps a planted id lets the attacker in; a new id at login does not
memory_missed, mechanism: stateful: sessions in each server's memory are missed under round robin
csrf_guard, mechanism: stateful: with the CSRF guard off a cross-site form post rides on the cookie; with it on it is
    refused
signed_cookie_forged, mechanism: a stateless signed cookie is forged cross-site just like a session cookie (guard off)
httponly, mechanism: stateful: the session cookie is HttpOnly: page scripts cannot read it
logout_revokes, mechanism: stateful: logout revokes a stolen session id on every server sharing the store
cache_serves_after_logout, mechanism: stateful: a shared cache keeping per-user answers still serves them to a stolen
    cookie after logout
short_token: stateless: a short token lifetime bounds it: a stolen token is refused once it expired
token_grows, mechanism: token + cart in token: the token grows with the cart; the session id does not
db_token_same_size, mechanism: token + cart in db: the token stays the same size (it says only who you are)
stateful_other_concerns: stateful: other concerns of the list needed the developer too
stateless_other_concerns: stateless: concerns of their own needed the developer, in both token designs
""")


def _both(id_: str, text: str) -> dict[str, Check]:
    """One mechanism check per stateless design: ids ``token_<id>`` and ``db_token_<id>``."""
    return {side: Check(f"{PREFIX[side]}token_{id_}", f"{side}: {text}", mechanism=True) for side in STATELESS_SIDES}


LOGOUT_KEEPS = _both("outlives_logout", "logout does not revoke a stolen token; it works until exp")
KEY_RETIRED = _both("key_retired", "retiring a signing key logs out every holder of a token it signed")
IN_PAGE = _both("in_page_script", "login hands the token to the page's script, where any script on the page can "
                                  "read it")
NO_CSRF = _both("no_csrf", "a cross-site form post carries no bearer token (refused even with the guard off)")
NO_ROWS = _both("no_session_rows", "the servers store no session per user, so none to clean up")
NOT_FIXED = _both("not_fixed", "a token planted before login does not become the victim's")
EVERY_SERVER = _both("every_server", "every server accepts the token under round robin")

#: The checks that judge the halves: one rule, per concern shown live (see the module docstring).
SESSION_CONCERNS_NEEDED = Check(
    "session_concerns_needed", "stateful: each of the {t} session concerns (" + ", ".join(SESSION_CONCERNS)
    + ") needed the developer, shown live", threshold=len(SESSION_CONCERNS), op=">=")
SESSION_CONCERNS_GONE = Check(
    "session_concerns_gone", "stateless: none of those {t} session concerns needed the developer, in both token "
    "designs", threshold=len(SESSION_CONCERNS))


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


def _fixation(stateful: Cluster, stateless: dict[str, Cluster], m: dict[str, Any]) -> None:
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
    for side, cluster in stateless.items():
        p = PREFIX[side]
        mallory = _logged_in(cluster.url, "mallory")
        alice = Client(cluster.url)
        alice.token = mallory.token  # planted in alice's page
        alice.login("alice")
        seen = mallory.me()
        m[f"{p}token_fixation_mallory_sees"] = seen.body.get("user") if seen.ok else f"{seen.status}"
        m[f"{p}token_fixation_alice_got_new_token"] = alice.token != mallory.token
        mallory.close()
        alice.close()


def _reach(stateful: Cluster, stateless: dict[str, Cluster], replays: int, m: dict[str, Any]) -> None:
    """Round robin over two servers: how often does a request find who is asking?"""
    pairs = [(stateful, "memory_round_robin_found_share"),
             *((c, f"{PREFIX[side]}token_round_robin_found_share") for side, c in stateless.items())]
    for cluster, key in pairs:
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


def _stateless_logout(cluster: Cluster, replays: int, m: dict[str, Any], p: str = "") -> None:
    """Alice logs in, adds a book, a thief copies the token, alice logs out (``p``: the design's key prefix)."""
    alice = _logged_in(cluster.url, "alice")
    alice.add_to_cart("book")
    stolen = alice.token
    alice.logout()
    after = _replay(cluster.url, replays, token=stolen)
    m[f"{p}stateless_replays_accepted_after_logout"] = _accepted(after)
    m[f"{p}stateless_token_valid_for_s"] = round(inspect_token(stolen).expires_in or 0.0, 1)
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


def _page_scripts(stateful: Cluster, stateless: dict[str, Cluster], cookie: Server, m: dict[str, Any]) -> None:
    """What the login answer gives the page: an HttpOnly cookie, or a token in the body for its script."""
    pages = [("stateful", stateful.url), *((f"{PREFIX[side]}stateless", c.url) for side, c in stateless.items()),
             ("cookie", cookie.url)]
    for key, url in pages:
        client = Client(url)
        login = client.login("alice")
        details = client.cookie_details()
        m[f"{key}_cookie_httponly"] = bool(details) and all(c["httponly"] for c in details)
        m[f"{key}_cookie_samesite"] = ", ".join(sorted({str(c["samesite"]) for c in details})) or "no cookie"
        m[f"{key}_token_in_login_body"] = isinstance(login.body, dict) and isinstance(login.body.get("token"), str)
        client.close()


def _key_rotation(cluster: Cluster, users: int, m: dict[str, Any], p: str = "") -> None:
    """Rotate the signing key, then retire the old one while tokens it signed are still in use."""
    keyring = cluster.keyring
    assert keyring is not None
    holders = [_logged_in(cluster.url, f"holder{i}") for i in range(users)]
    old = keyring.current_kid
    new = keyring.rotate()
    m[f"{p}rotation_accepted_after_rotate"] = _accepted([h.me() for h in holders])
    newcomer = _logged_in(cluster.url, "newcomer")
    m[f"{p}rotation_new_token_uses_new_key"] = inspect_token(newcomer.token).header.get("kid") == new
    keyring.retire(old)
    m[f"{p}rotation_accepted_after_retire"] = _accepted([h.me() for h in holders])
    m[f"{p}rotation_new_token_accepted_after_retire"] = newcomer.me().ok
    m[f"{p}rotation_users"] = users
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


def _stateless_rows(cluster: Cluster, m: dict[str, Any], p: str = "") -> None:
    """What each stateless server says it holds per user (its /health ``sessions``)."""
    held = 0
    for server in cluster.servers:
        with Client(server.url) as probe:
            body = probe.health().body
            held += body.get("sessions", 0) if isinstance(body, dict) else 0
    m[f"{p}stateless_sessions_held"] = held
    m[f"{p}cart_rows"] = cluster.carts.count() if cluster.carts is not None else 0


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
        shop = start(Cluster(2, "stateful", shared_store(), plugins=[login_keeping_the_id]))
        unshared = start(Cluster(2, "stateful", "memory"))
        api = start(Cluster(2, "stateless"))
        api_db = start(Cluster(2, "stateless", cart="db"))
        cached = start(Server("stateful", name="cached-shop", plugins=[personal_headers({"personal": "public+vary"})]))
        open_servers = {mode: start(Server(mode, name=f"{mode}-no-guard", csrf_guard=False))
                        for mode in ("stateful", "stateless", "cookie")}
        open_servers["db_stateless"] = start(Server("stateless", name="stateless-db-no-guard", cart="db",
                                                    csrf_guard=False))
        tokens = dict(zip(STATELESS_SIDES, (api, api_db), strict=True))
        guarded = start(Server("stateful", name="stateful-guarded"))
        steps = [
            lambda: _short_token(brief, m),
            lambda: _start_idle_sessions(expiring, users, m),
            lambda: _fixation(shop, tokens, m),
            lambda: _reach(unshared, tokens, replays, m),
            lambda: _stateful_logout(shop, replays, m),
            lambda: _stateless_logout(api, replays, m),
            lambda: _stateless_logout(api_db, replays, m, "db_"),
            lambda: _cached_after_logout(cached, replays, m),
            lambda: _csrf(open_servers, guarded, m),
            lambda: _page_scripts(shop, tokens, open_servers["cookie"], m),
            lambda: _stateless_rows(api, m),
            lambda: _stateless_rows(api_db, m, "db_"),
            lambda: _sizes(shop, api, api_db, cart_lines, m),
            lambda: _key_rotation(api, users, m),
            lambda: _key_rotation(api_db, users, m, "db_"),
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


def _token_side(m: dict[str, Any], side: str) -> dict[str, tuple[bool, str]]:
    """Each concern asked of one stateless design: (must the developer handle it?, what was seen)."""
    p, n = PREFIX[side], m["replays"]
    in_token = side == "token + cart in token"
    users = m[f"{p}rotation_users"]
    rows = m[f"{p}cart_rows"]
    return {
        "clean up expired state": (
            m[f"{p}stateless_sessions_held"] > 0,
            f"servers hold {m[f'{p}stateless_sessions_held']} session rows; a token expires by itself"
            + (f" (the cart table keeps {rows} carts, on purpose: a cart outlives a login)" if rows else "")),
        "renew the credential at login": (
            m[f"{p}token_fixation_mallory_sees"] == "alice",
            f"a token planted before login still named {m[f'{p}token_fixation_mallory_sees']}; login minted a new one"),
        "reach state from every server": (
            m[f"{p}token_round_robin_found_share"] < 1,
            f"round robin: {m[f'{p}token_round_robin_found_share']:.0%} accepted (every server has the key"
            + ("" if in_token else ", every server reads the cart table") + ")"),
        "revoke a stolen credential at logout": (
            m[f"{p}stateless_replays_accepted_after_logout"] > 0,
            (f"{m[f'{p}stateless_replays_accepted_after_logout']}/{n} replays accepted after logout, valid "
             f"{m[f'{p}stateless_token_valid_for_s']:.0f} s more; lab 02 builds the fix")),
        "refuse cross-site forged writes (CSRF)": (
            m[f"csrf_{p}stateless_accepted"],
            f"guard off: the forged post carried no bearer token and got {m[f'csrf_{p}stateless_status']}"),
        "keep the credential from page scripts (XSS)": (
            m[f"{p}stateless_token_in_login_body"],
            ("login hands the token to the page's script: any script on the page can read it"
             if m[f"{p}stateless_token_in_login_body"] else "login hands the page no token")),
        "manage and rotate signing keys": (
            m[f"{p}rotation_accepted_after_retire"] < users,
            f"retiring the old key logged out {users - m[f'{p}rotation_accepted_after_retire']}/{users} token holders"),
        "keep the credential small": (
            (m["token_bytes_after"] > 2 * m["token_bytes_before"]) if in_token
            else m["db_token_bytes_after"] > m["db_token_bytes_before"],
            (f"the token grew from {m['token_bytes_before']} to {m['token_bytes_after']} bytes ({m['cart_lines']} "
             f"lines, {m['token_bytes_per_line']:.0f} bytes each)") if in_token else
            (f"the token stayed {m['db_token_bytes_after']} bytes ({m['cart_lines']} lines in the table, read on "
             "every request)")),
    }


def _concerns(m: dict[str, Any]) -> list[dict[str, Any]]:
    """Each concern of :data:`CONCERNS`, asked of every design of :data:`SIDES`: must the developer handle it?"""
    n = m["replays"]
    stateful = {
        "clean up expired state": (
            m["expired_rows_before_purge"] > (m["expired_live_sessions"] or 0),
            (f"SQLite: {m['expired_rows_before_purge']} rows still stored, {m['expired_live_sessions']} live, "
             f"until a purge removed {m['expired_purged']} (a store with TTLs, such as Valkey, expires them itself: "
             "then the concern is choosing and configuring it)")),
        "renew the credential at login": (
            m["fixation_naive_mallory_sees"] == "alice",
            (f"a login keeping the planted id let mallory in as {m['fixation_naive_mallory_sees']}; "
             f"a new id at login gave her {m['fixation_safe_mallory_sees']}")),
        "reach state from every server": (
            m["memory_round_robin_found_share"] < 1,
            (f"sessions in each server's memory, round robin: {m['memory_round_robin_found_share']:.0%} found "
             "(a shared store is the developer's fix)")),
        "revoke a stolen credential at logout": (
            m["stateful_replays_accepted_after_logout"] > 0,
            (f"deleting the session: {m['stateful_replays_accepted_after_logout']}/{n} replays accepted on "
             f"{m['stateful_replay_servers']} servers; a cache keeping per-user answers still served "
             f"{m['cache_replays_served_after_logout']}/{n}")),
        "refuse cross-site forged writes (CSRF)": (
            m["csrf_stateful_accepted"],
            (f"guard off: a forged form post answered {m['csrf_stateful_status']}"
             + (" and filled the cart" if m["csrf_stateful_accepted"] else "")
             + f"; guard on: {m['csrf_guarded_status']} (cross origin), {m['csrf_guarded_no_origin_status']} "
               "(text/plain)")),
        "keep the credential from page scripts (XSS)": (
            not m["stateful_cookie_httponly"],
            f"the session cookie is {'HttpOnly' if m['stateful_cookie_httponly'] else 'readable by scripts'}"),
        "manage and rotate signing keys": (
            m["sid_is_a_signed_token"], "the session id is random, not signed: no key to rotate"),
        "keep the credential small": (
            m["sid_bytes_after"] > m["sid_bytes_before"],
            f"the cookie stayed {m['sid_bytes_after']} bytes ({m['sid_cart_lines']} lines in the cart)"),
    }
    found = {"stateful": stateful, **{side: _token_side(m, side) for side in STATELESS_SIDES}}
    return [{"concern": c, "session concern": c in SESSION_CONCERNS,
             **{side: found[side][c][0] for side in SIDES}, **{f"{side} saw": found[side][c][1] for side in SIDES}}
            for c in CONCERNS]


#: Which checks judge each claim (see :class:`~statelab.experiments.Judgement`); ``_judge()`` computes those checks
#: and adds to each claim the sentence of what was measured. One rule for both halves: the session concerns the
#: source text's sentence names, observed as it says (supports); concerns it leaves out, observed on its side (nuance).
CLAIMS = {
    "stateful": Judgement(supports=(SESSION_CONCERNS_NEEDED,), qualifies=(CHECKS.stateful_other_concerns,)),
    "stateless": Judgement(supports=(SESSION_CONCERNS_GONE,), qualifies=(CHECKS.stateless_other_concerns,)),
    "4d": Judgement(supports=(CHECKS.logout_revokes,),
                    qualifies=(CHECKS.cache_serves_after_logout, CHECKS.short_token,
                               KEY_RETIRED["token + cart in token"])),
}


def _judge(m: dict[str, Any], quick: bool, seconds: float) -> Evidence:
    n = m["replays"]
    concerns = _concerns(m)
    on = {side: [c["concern"] for c in concerns if c[side]] for side in SIDES}
    for side in SIDES:
        m[f"concerns, {side}"] = len(on[side])
    m["stateful_concerns"], m["stateless_concerns"] = len(on["stateful"]), len(on["token + cart in token"])
    session_on = {side: [c for c in on[side] if c in SESSION_CONCERNS] for side in SIDES}
    others = {side: [c for c in on[side] if c not in SESSION_CONCERNS] for side in SIDES}
    outcomes = [
        CHECKS.expired_stored(ok=m["expired_live_sessions"] == 0 and m["expired_rows_before_purge"] >= m["idle_users"]
                              and m["expired_purged"] == m["expired_rows_before_purge"]
                              and m["expired_rows_after_purge"] == 0,
                              shown=f"{m['expired_rows_before_purge']} rows stored, {m['expired_live_sessions']} live, "
                                    f"{m['expired_purged']} purged"),
        CHECKS.fixation(ok=m["fixation_naive_id_kept"] and m["fixation_naive_mallory_sees"] == "alice"
                        and not m["fixation_safe_id_kept"] and m["fixation_safe_mallory_sees"] == "401",
                        shown=f"mallory saw {m['fixation_naive_mallory_sees']}, "
                              f"then {m['fixation_safe_mallory_sees']}"),
        CHECKS.memory_missed(ok=m["memory_round_robin_found_share"] < 1,
                             shown=f"{m['memory_round_robin_found_share']:.0%} found"),
        CHECKS.csrf_guard(ok=m["csrf_stateful_accepted"] and m["csrf_guarded_status"] == 403
                          and m["csrf_guarded_no_origin_status"] == 415 and not m["csrf_guarded_accepted"],
                          shown=f"guard off {m['csrf_stateful_status']}, on {m['csrf_guarded_status']} and "
                                f"{m['csrf_guarded_no_origin_status']}"),
        CHECKS.signed_cookie_forged(ok=m["csrf_cookie_accepted"], shown=f"answered {m['csrf_cookie_status']}"),
        CHECKS.httponly(ok=m["stateful_cookie_httponly"]),
        CHECKS.logout_revokes(ok=m["stateful_copy_worked_before_logout"]
                              and m["stateful_replays_accepted_after_logout"] == 0
                              and m["stateful_replay_servers"] >= 2,
                              shown=f"{m['stateful_replays_accepted_after_logout']}/{n} replays accepted on "
                                    f"{m['stateful_replay_servers']} servers"),
        CHECKS.cache_serves_after_logout(ok=m["cache_replays_served_after_logout"] == n == m["cache_replays_hits"]
                                         and m["cache_direct_refused_after_logout"],
                                         shown=f"{m['cache_replays_served_after_logout']}/{n} served"),
        CHECKS.short_token(ok=m["short_token_accepted_before_exp"] and m["short_token_refused_after_exp"]),
        CHECKS.token_grows(ok=m["token_bytes_after"] > 2 * m["token_bytes_before"]
                           and m["sid_bytes_after"] == m["sid_bytes_before"]
                           and m["cart_lines_kept"] == m["cart_lines"]
                           and m["sid_cart_lines_kept"] == m["sid_cart_lines"],
                           shown=f"{m['token_bytes_before']} to {m['token_bytes_after']} bytes"),
        CHECKS.db_token_same_size(ok=m["db_token_bytes_after"] == m["db_token_bytes_before"]
                                  and m["db_cart_lines_kept"] == m["cart_lines"],
                                  shown=f"{m['db_token_bytes_before']} to {m['db_token_bytes_after']} bytes"),
    ]
    for side in STATELESS_SIDES:
        p = PREFIX[side]
        users = m[f"{p}rotation_users"]
        outcomes += [
            LOGOUT_KEEPS[side](ok=m[f"{p}stateless_replays_accepted_after_logout"] == n
                               and m[f"{p}stateless_token_valid_for_s"] > 0,
                               shown=f"{m[f'{p}stateless_replays_accepted_after_logout']}/{n} accepted"),
            KEY_RETIRED[side](ok=m[f"{p}rotation_accepted_after_rotate"] == users
                              and m[f"{p}rotation_accepted_after_retire"] == 0
                              and m[f"{p}rotation_new_token_uses_new_key"]
                              and m[f"{p}rotation_new_token_accepted_after_retire"],
                              shown=f"{users - m[f'{p}rotation_accepted_after_retire']}/{users} logged out"),
            IN_PAGE[side](ok=m[f"{p}stateless_token_in_login_body"]),
            NO_CSRF[side](ok=not m[f"csrf_{p}stateless_accepted"] and m[f"csrf_{p}stateless_status"] == 401,
                          shown=f"answered {m[f'csrf_{p}stateless_status']}"),
            NO_ROWS[side](ok=m[f"{p}stateless_sessions_held"] == 0,
                          shown=f"{m[f'{p}stateless_sessions_held']} session rows"),
            NOT_FIXED[side](ok=m[f"{p}token_fixation_mallory_sees"] == "mallory"
                            and m[f"{p}token_fixation_alice_got_new_token"],
                            shown=f"mallory saw {m[f'{p}token_fixation_mallory_sees']}"),
            EVERY_SERVER[side](ok=m[f"{p}token_round_robin_found_share"] == 1,
                               shown=f"{m[f'{p}token_round_robin_found_share']:.0%} accepted"),
        ]
    gone = {side: len(SESSION_CONCERNS) - len(session_on[side]) for side in STATELESS_SIDES}
    outcomes += [
        SESSION_CONCERNS_NEEDED(len(session_on["stateful"]),
                                shown=f"{len(session_on['stateful'])} of {len(SESSION_CONCERNS)} "
                                      f"(needs all {len(SESSION_CONCERNS)})"),
        SESSION_CONCERNS_GONE(ok=not any(session_on[side] for side in STATELESS_SIDES),
                              shown="; ".join(f"{gone[side]} of {len(SESSION_CONCERNS)} gone with {side}"
                                              for side in STATELESS_SIDES)),
        CHECKS.stateful_other_concerns(ok=bool(others["stateful"]), shown=", ".join(others["stateful"]) or "none"),
        CHECKS.stateless_other_concerns(ok=all(others[side] for side in STATELESS_SIDES),
                                        shown="; ".join(f"{side}: {', '.join(others[side]) or 'none'}"
                                                        for side in STATELESS_SIDES)),
    ]
    counts = ", ".join(f"{len(on[side])} for {side}" for side in SIDES)
    claims = judged(CLAIMS, {
        "stateful": (f"{len(session_on['stateful'])} of {len(SESSION_CONCERNS)} session concerns needed the "
                     f"developer on the stateful side ({', '.join(session_on['stateful']) or 'none'}), and so did "
                     f"{', '.join(others['stateful']) or 'nothing else'}"
                     + (": CSRF comes with the cookie, not with the session (a stateless signed cookie was forged "
                        "the same way)." if m["csrf_cookie_accepted"] else ".")),
        "stateless": ("With either token design the session concerns went: "
                      + "; ".join(f"{side}, {gone[side]} of {len(SESSION_CONCERNS)}" for side in STATELESS_SIDES)
                      + ". Concerns of their own came: "
                      + "; ".join(f"{side}: {', '.join(others[side]) or 'none'}" for side in STATELESS_SIDES)
                      + f". The checklist counts {counts}; whether that leaves more time for business logic "
                        "depends on how you weigh each concern, which no count of our own list can decide."),
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
        f"Asked the same {len(concerns)} questions, the checklist counts {counts} (shown, not judged: the list "
        f"is ours). A stolen token still worked for {m['stateless_replays_accepted_after_logout']}/{n} requests "
        f"after logout with the cart in the token and {m['db_stateless_replays_accepted_after_logout']}/{n} with "
        f"it in db (valid {m['stateless_token_valid_for_s']:.0f} s more), a stolen session id for "
        f"{m['stateful_replays_accepted_after_logout']}/{n}, or {m['cache_replays_served_after_logout']}/{n} through "
        f"a cache that kept per-user answers. With the CSRF guard off a cross-site form post answered "
        f"{m['csrf_stateful_status']} with a session cookie, {m['csrf_cookie_status']} with a signed cookie and "
        f"{m['csrf_stateless_status']} with a bearer token; with it on, {m['csrf_guarded_status']}."
    )
    conds = conditions(
        designs=[f"session + shared store ({shared_store()}; SQLite for the expiry question, memory for the "
                 "every-server one)", *STATELESS_SIDES,
                 "a stateless signed cookie (CSRF only)"],
        servers="threads of one process (the notebook's); 2-server clusters behind round robin",
        crowd=f"{m['idle_users']} idle sessions and token holders, {n} replays of a stolen credential",
        concerns=f"{len(CONCERNS)}, our own list ({len(SESSION_CONCERNS)} of them the session concerns the source text "
                 "names); counted per design, never judged by the count")
    return Evidence(row=ROW, measurements=m, checks=outcomes, claims=claims, reading=reading, seconds=seconds,
                    conditions=conds, extra={"concerns": concerns, "quick": quick, "key_numbers": {
                        "concerns (stateful / cart in token / cart in db)":
                            " / ".join(str(len(on[side])) for side in SIDES) + f" of {len(concerns)}",
                        "stolen token accepted after logout": f"{m['stateless_replays_accepted_after_logout']}/{n}",
                        "stolen session id accepted after logout": f"{m['stateful_replays_accepted_after_logout']}/{n}",
                        "served from a cache after logout": f"{m['cache_replays_served_after_logout']}/{n}",
                    }})


# --------------------------------------------------------------------------- showing it

def concerns_html(ev: Evidence) -> str:
    """The checklist as an HTML table: who carries each concern, in words, for each design, with a count per design.

    The count is shown, never judged: the list is ours, and one row ("keep the credential small") lands on a
    stateless design only when the cart rides in the token.
    """
    def cell(flag: bool, saw: str) -> str:
        mark = "<b>yes</b>" if flag else "no"
        return f"<td>{mark}</td><td style='text-align:left'>{html.escape(saw)}</td>"

    def name(c: dict[str, Any]) -> str:
        tag = " <i>(session concern)</i>" if c["session concern"] else ""
        return f"<td style='text-align:left'>{html.escape(c['concern'])}{tag}</td>"

    rows = "".join(f"<tr>{name(c)}{''.join(cell(c[side], c[side + ' saw']) for side in SIDES)}</tr>"
                   for c in ev.extra["concerns"])
    m = ev.measurements
    total = ("<tr><td style='text-align:left'><b>concerns observed (a count, not a verdict)</b></td>"
             + "".join(f"<td><b>{m[f'concerns, {side}']}</b></td><td></td>" for side in SIDES) + "</tr>")
    heads = "".join(f"<th>{html.escape(side)}: must handle?</th><th style='text-align:left'>observed</th>"
                    for side in SIDES)
    return (f"<table><thead><tr><th style='text-align:left'>concern (asked of all three)</th>{heads}</tr></thead>"
            f"<tbody>{rows}{total}</tbody></table>")


#: Why the measured answer is what it is: the "you predicted; you measured" cell of notebook 11 shows it.
WHY = ("logout deletes the session every server looks up; a token is checked by its signature alone, so nothing the "
       "server deletes can stop it before its exp.")


def answer(ev: Evidence) -> str:
    """Which of notebook 11's prediction choices this run measured: which stolen credential still worked after
    logout."""
    sid_works = not ev.checks[CHECKS.logout_revokes.id]
    token_works = ev.checks[LOGOUT_KEEPS["token + cart in token"].id]
    return {(True, True): "both", (True, False): "the stolen session id", (False, True): "the stolen token",
            (False, False): "neither: logout ends both"}[(sid_works, token_works)]
