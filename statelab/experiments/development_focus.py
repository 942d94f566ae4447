"""Row "Development Focus": which concerns land on the developer's desk, on each side?

The seed says: stateful, "Developers need to manage session-related issues"; stateless,
"Developers can focus more on business logic without session concerns". This experiment lists
the concerns a developer meets on each side and *observes* each one against local servers:

stateful (sessions in a store)
  * expired sessions stay stored until a clean-up job purges them (short ``session_ttl``);
  * session fixation: a login that keeps the id the browser already had hands the session to
    whoever planted that id; a new id at login keeps them out;
  * state must reach every server (shared store or affinity), or round robin loses it;
  * logout revokes at once: deleting the session kills every stolen copy (benefit 4d).

stateless (JWT carrying the user and cart)
  * logout does not revoke: a stolen copy of the token works until ``exp``;
  * a deny list of ``jti`` (:func:`deny_list`, a plugin) fixes that, and brings server-side state
    back: one entry per logout, kept until the token expires, shared by every server (a list each
    server keeps alone lets the token through elsewhere);
  * signing keys must be rotated by a script: retiring a key logs out everyone holding a token it
    signed, so the order (rotate, wait a token lifetime, retire) is the developer's job;
  * the token grows with what it carries; the session id does not.

The verdict counts the concerns observed on each side. It is computed, never typed in: if the
stateless side shows as many concerns as the stateful one, the claim "without session concerns"
does not hold; it trades session concerns for token concerns.
"""

from __future__ import annotations

import html
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from typing import Any

from flask import Flask, jsonify, request

from ..client import Client, Exchange
from ..shop.app import NAME_RE
from ..shop.sessions import SqliteStore
from ..shop.tokens import TokenError, inspect_token
from ..topology.cluster import Cluster
from . import Evidence, progress, record

ROW = "development_focus"
COOKIE_LIMIT = 4096  # bytes a browser keeps for one cookie (RFC 6265 asks for at least this much)


# --------------------------------------------------------------------------- the stateless fix

class DenyList:
    """Token ids (``jti``) revoked at logout, each kept until its token's ``exp``.

    This is the state a stateless design needs to make logout mean something: one entry per
    logout, which every server must see (a database or Redis in production; a shared object here).
    """

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, jti: str, exp: float) -> None:
        with self._lock:
            self._until[jti] = float(exp)

    def __contains__(self, jti: object) -> bool:
        with self._lock:
            return isinstance(jti, str) and self._until.get(jti, 0.0) > time.time()

    def __len__(self) -> int:
        with self._lock:
            return len(self._until)

    def purge_expired(self) -> int:
        """Drop entries whose token has expired anyway; return how many went."""
        now = time.time()
        with self._lock:
            dead = [jti for jti, exp in self._until.items() if exp <= now]
            for jti in dead:
                del self._until[jti]
        return len(dead)

    def kept_for(self) -> float:
        """Seconds until the last entry may be dropped (0 when empty)."""
        with self._lock:
            return max((exp - time.time() for exp in self._until.values()), default=0.0)

    def __repr__(self) -> str:
        return f"<DenyList {len(self)} revoked token ids>"


def deny_list(shared: DenyList | None = None) -> Callable[[Flask], None]:
    """A plugin for stateless servers: ``POST /logout`` revokes the token's ``jti``; revoked tokens get 401.

    Pass one :class:`DenyList` to every server of a cluster (``Cluster(..., plugins=[deny_list(d)])``)
    and they share it. Without ``shared``, each server keeps its own list, and forgets it on restart.
    """

    def plugin(app: Flask) -> None:
        state = app.extensions["statelab"]
        if state["mode"] != "stateless":
            raise ValueError("deny_list() is for stateless servers (it revokes JWTs by jti)")
        denied = shared if shared is not None else DenyList()
        state["deny_list"] = denied
        keyring = state["keyring"]

        @app.before_request
        def refuse_revoked():
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer "):
                return None
            try:
                claims = keyring.verify(auth[7:].strip())
            except TokenError:
                return None  # the route itself answers 401 and says why
            if claims["jti"] in denied:
                return jsonify(error="token was revoked at logout (it is on the deny list)"), 401
            if request.method == "POST" and request.path == "/logout":
                denied.add(claims["jti"], claims["exp"])
            return None

    return plugin


# --------------------------------------------------------------------------- the stateful bug

def login_keeping_the_id(app: Flask) -> None:
    """A plugin adding ``POST /login-naive``: a login that keeps the session id the browser had.

    This is the bug session fixation exploits (frameworks that write the user into the existing
    session without issuing a new id). It exists only to show, against our own server, what the
    real ``/login`` defends against.
    """
    state = app.extensions["statelab"]

    @app.post("/login-naive")
    def login_naive():
        data = request.get_json(force=True, silent=True)
        user = data.get("user") if isinstance(data, dict) else None
        if not isinstance(user, str) or not NAME_RE.fullmatch(user):
            return jsonify(error="user must be 1-64 characters: letters, digits, '.', '_' or '-'"), 400
        store, name = state["store"], state["cookie_name"]
        old = request.cookies.get(name, "")
        fresh = {"user": user, "cart": []}
        if 0 < len(old) <= 256 and store.update(old, lambda _: fresh) is not None:
            sid = old  # the bug: the session that existed before login now belongs to `user`
        else:
            sid = store.create(fresh, state["session_ttl"])
        response = jsonify(user=user)
        response.set_cookie(name, sid, httponly=True, samesite="Lax", path="/")
        return response


# --------------------------------------------------------------------------- measuring helpers

def _accepted(answers: list[Exchange]) -> int:
    return sum(1 for a in answers if a.status == 200)


def _replay(url: str, n: int, *, sid: str | None = None, token: str | None = None,
            cookie: str = "sid") -> list[Exchange]:
    """A thief sends ``GET /me`` ``n`` times with a stolen session id (in cookie ``cookie``) or token."""
    thief = Client(url)
    if sid is not None:
        thief.set_cookie(cookie, sid)
    thief.token = token
    try:
        return [thief.me() for _ in range(n)]
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


# --------------------------------------------------------------------------- the concerns, one by one

def _start_idle_sessions(cluster: Cluster, users: int, m: dict[str, Any]) -> None:
    """Log ``users`` users in, then leave them idle (checked later, once session_ttl has passed)."""
    for i in range(users):
        _logged_in(cluster.url, f"idle{i}").close()
    m["_idle_since"] = time.time()


def _fixation(cluster: Cluster, m: dict[str, Any]) -> None:
    """Mallory plants her own live session id in alice's browser; alice logs in."""
    for route, key in (("/login-naive", "naive"), ("/login", "safe")):
        mallory = _logged_in(cluster.url, "mallory")
        planted = mallory.cookies[cluster.cookie_name]
        alice = Client(cluster.url)
        alice.set_cookie(cluster.cookie_name, planted)
        alice.post(route, {"user": "alice"})
        seen = mallory.me()  # mallory, still holding the planted id
        m[f"fixation_{key}_id_kept"] = alice.cookies.get(cluster.cookie_name) == planted
        m[f"fixation_{key}_mallory_sees"] = seen.body.get("user") if seen.ok else f"{seen.status}"
        mallory.close()
        alice.close()


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


def _unshared_sessions(cluster: Cluster, replays: int, m: dict[str, Any]) -> None:
    """Sessions in each server's own memory, round robin: how often does a request find its session?"""
    bob = _logged_in(cluster.url, "bob")
    found = _accepted([bob.me() for _ in range(replays)])
    m["memory_round_robin_found_share"] = found / replays
    bob.close()


def _stateless_logout(cluster: Cluster, replays: int, m: dict[str, Any], prefix: str) -> None:
    """Alice logs in, adds a book (a new token), a thief copies the token, alice logs out."""
    alice = _logged_in(cluster.url, "alice")
    first = alice.token
    alice.add_to_cart("book")
    stolen = alice.token
    logout = alice.logout()
    after = _replay(cluster.url, replays, token=stolen)
    m[f"{prefix}_replays_accepted_after_logout"] = _accepted(after)
    m[f"{prefix}_accepting_servers"] = sorted({a.served_by for a in after if a.ok and a.served_by})
    m[f"{prefix}_logout_served_by"] = logout.served_by
    if prefix == "stateless":
        m["stateless_token_valid_for_s"] = round(inspect_token(stolen).expires_in or 0.0, 1)
    if prefix == "shared_deny":
        m["shared_deny_earlier_token_accepted"] = _accepted(_replay(cluster.url, 1, token=first)) == 1
    alice.close()


def _deny_list_growth(cluster: Cluster, denied: DenyList, users: int, m: dict[str, Any]) -> None:
    """``users`` more users log in and out: how many entries must the deny list hold, for how long?"""
    for i in range(users):
        client = _logged_in(cluster.url, f"user{i}")
        client.logout()
        client.close()
    m["logouts"] = users + 1  # plus alice's, in _stateless_logout
    m["deny_list_entries"] = len(denied)
    m["deny_list_purged_now"] = denied.purge_expired()
    m["deny_list_kept_for_s"] = round(denied.kept_for(), 1)


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


def _sizes(stateful: Cluster, stateless: Cluster, lines: int, m: dict[str, Any]) -> None:
    """Add different books on each side: what does each request carry afterwards?

    The token side gets ``lines`` books; the session side a few (each is a write to the SQLite
    store, about 10 ms here, and the cookie cannot change whatever the cart holds).
    """
    shopper, holder = _logged_in(stateful.url, "reader"), _logged_in(stateless.url, "reader")
    sid_before, token_before = len(shopper.cookies[stateful.cookie_name]), len(holder.token or "")
    sid_lines = min(lines, 5)
    for i in range(lines):
        holder.add_to_cart(f"book-{i}")
        if i < sid_lines:
            shopper.add_to_cart(f"book-{i}")
    cart, session_cart = holder.cart(), shopper.cart()
    m["cart_lines"], m["sid_cart_lines"] = lines, sid_lines
    m["sid_cart_lines_kept"] = len(session_cart.body.get("cart", [])) if session_cart.ok else 0
    m["cart_lines_kept"] = len(cart.body.get("cart", [])) if cart.ok else 0
    m["sid_bytes_before"], m["sid_bytes_after"] = sid_before, len(shopper.cookies[stateful.cookie_name])
    m["token_bytes_before"], m["token_bytes_after"] = token_before, len(holder.token or "")
    per_line = (m["token_bytes_after"] - token_before) / lines
    m["token_bytes_per_line"] = round(per_line, 1)
    m["lines_until_cookie_limit"] = int((COOKIE_LIMIT - token_before) / per_line) if per_line > 0 else None
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


def _finish_expiry(cluster: Cluster, ttl: float, m: dict[str, Any]) -> None:
    """Once ``ttl`` has passed: how many sessions live, how many rows are still stored, and the purge."""
    wait = m.pop("_idle_since") + ttl + 0.05 - time.time()
    if wait > 0:
        time.sleep(wait)
    store = cluster.store
    assert isinstance(store, SqliteStore)
    with Client(cluster.url) as probe:
        health = probe.health()
    m["expired_live_sessions"] = health.body.get("sessions") if health.ok else None
    m["expired_rows_before_purge"] = _stored_rows(store)
    m["expired_purged"] = store.purge_expired()
    m["expired_rows_after_purge"] = _stored_rows(store)


# --------------------------------------------------------------------------- the experiment

def _stop_all(clusters: list[Cluster]) -> None:
    """Stop the clusters side by side: each server takes up to a poll interval to stop."""
    threads = [threading.Thread(target=c.stop, name=f"statelab-stop-{i}") for i, c in enumerate(clusters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _check_size(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name} must be a number from {low:g} to {high:g}, not {value!r}")


def run(*, quick: bool = False, users: int | None = None, replays: int | None = None,
        cart_lines: int | None = None, session_ttl: float | None = None) -> Evidence:
    """Observe each side's developer concerns against local servers and count them.

    ``users`` idle sessions, logouts and token holders (default 24, quick 6); ``replays`` requests
    a thief makes with a stolen credential (default 12, quick 6); ``cart_lines`` different books
    added to watch the credential grow (default 60, quick 20); ``session_ttl`` the idle timeout of
    the expiry check (default 0.6 s, quick 0.25 s). Counts and bytes, no timings: the verdict is
    the same on a busy machine.
    """
    users = users if users is not None else (6 if quick else 24)
    replays = replays if replays is not None else (6 if quick else 12)
    cart_lines = cart_lines if cart_lines is not None else (20 if quick else 60)
    ttl = session_ttl if session_ttl is not None else (0.25 if quick else 0.6)
    _check_size("users", users, 1, 500)
    _check_size("replays", replays, 3, 200)
    _check_size("cart_lines", cart_lines, 2, 150)
    _check_size("session_ttl", ttl, 0.05, 10)
    began = time.perf_counter()
    m: dict[str, Any] = {}
    started: list[Cluster] = []

    def cluster(*args: Any, **kwargs: Any) -> Cluster:
        started.append(Cluster(*args, **kwargs))
        return started[-1]

    try:
        expiring = cluster(1, "stateful", "sqlite", session_ttl=ttl)
        shop = cluster(2, "stateful", "sqlite", plugins=[login_keeping_the_id])
        unshared = cluster(2, "stateful", "memory")
        api = cluster(2, "stateless")
        denied = DenyList()
        guarded = cluster(2, "stateless", plugins=[deny_list(denied)])
        alone = cluster(2, "stateless", plugins=[deny_list()])  # each server its own list
        steps = [
            lambda: _start_idle_sessions(expiring, users, m),
            lambda: _fixation(shop, m),
            lambda: _stateful_logout(shop, replays, m),
            lambda: _unshared_sessions(unshared, replays, m),
            lambda: _stateless_logout(api, replays, m, "stateless"),
            lambda: _stateless_logout(guarded, replays, m, "shared_deny"),
            lambda: _stateless_logout(alone, replays, m, "own_deny"),
            lambda: _deny_list_growth(guarded, denied, users, m),
            lambda: _stateless_rows(api, m),
            lambda: _sizes(shop, api, cart_lines, m),
            lambda: _key_rotation(api, users, m),
            lambda: _finish_expiry(expiring, ttl, m),
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
    """Each concern with what was observed on each side: does the developer have to handle it?"""
    n = m["replays"]
    return [
        {"concern": "clean up expired state",
         "stateful": m["expired_rows_before_purge"] > m["expired_live_sessions"],
         "stateful_saw": (f"{m['expired_rows_before_purge']} rows still stored, {m['expired_live_sessions']} live, "
                          f"until a purge removed {m['expired_purged']}"),
         "stateless": m["stateless_sessions_held"] > 0,
         "stateless_saw": f"servers hold {m['stateless_sessions_held']} sessions; a token expires by itself"},
        {"concern": "session fixation at login",
         "stateful": m["fixation_naive_mallory_sees"] == "alice",
         "stateful_saw": (f"a login keeping the planted id let mallory in as "
                          f"{m['fixation_naive_mallory_sees']}; a new id at login gave her "
                          f"{m['fixation_safe_mallory_sees']}"),
         "stateless": False,
         "stateless_saw": "login mints a new signed token; there is no server-side id to plant"},
        {"concern": "state reachable from every server",
         "stateful": m["memory_round_robin_found_share"] < 1,
         "stateful_saw": (f"per-server memory + round robin: {m['memory_round_robin_found_share']:.0%} of requests "
                          "found the session (needs a shared store or affinity)"),
         "stateless": m["own_deny_replays_accepted_after_logout"] > 0,
         "stateless_saw": (f"once revocation exists, a deny list per server let "
                           f"{m['own_deny_replays_accepted_after_logout']}/{n} replays through"),
         },
        {"concern": "revoke a stolen credential at logout",
         "stateful": m["stateful_replays_accepted_after_logout"] > 0,
         "stateful_saw": (f"deleting the session: {m['stateful_replays_accepted_after_logout']}/{n} replays accepted,"
                          f" on {m['stateful_replay_servers']} servers"),
         "stateless": m["stateless_replays_accepted_after_logout"] > 0,
         "stateless_saw": (f"{m['stateless_replays_accepted_after_logout']}/{n} replays accepted after logout, "
                           f"valid {m['stateless_token_valid_for_s']:.0f} s more; a shared deny list "
                           f"({m['deny_list_entries']} entries) stopped it, "
                           + ("but not alice's earlier token" if m["shared_deny_earlier_token_accepted"]
                              else "and her earlier token too")),
         },
        {"concern": "manage and rotate signing keys",
         "stateful": m["sid_is_a_signed_token"],
         "stateful_saw": "the session id is random, not signed: no key to rotate",
         "stateless": m["rotation_accepted_after_retire"] < m["rotation_users"],
         "stateless_saw": (f"retiring the old key logged out "
                           f"{m['rotation_users'] - m['rotation_accepted_after_retire']}/{m['rotation_users']} "
                           "token holders"),
         },
        {"concern": "keep the credential small",
         "stateful": m["sid_bytes_after"] > m["sid_bytes_before"],
         "stateful_saw": f"the cookie stayed {m['sid_bytes_after']} bytes ({m['sid_cart_lines']} lines in the cart)",
         "stateless": m["token_bytes_after"] > 2 * m["token_bytes_before"],
         "stateless_saw": (f"the token grew from {m['token_bytes_before']} to {m['token_bytes_after']} bytes "
                           f"({m['cart_lines']} lines, {m['token_bytes_per_line']:.0f} bytes each)"),
         },
    ]


def _judge(m: dict[str, Any], quick: bool, seconds: float) -> Evidence:
    n = m["replays"]
    concerns = _concerns(m)
    stateful = [c["concern"] for c in concerns if c["stateful"]]
    stateless = [c["concern"] for c in concerns if c["stateless"]]
    m["stateful_concerns"], m["stateless_concerns"] = len(stateful), len(stateless)
    checks = {
        "stateful: expired sessions stay stored until a clean-up job purges them":
            m["expired_live_sessions"] == 0 and m["expired_rows_before_purge"] >= m["idle_users"]
            and m["expired_purged"] == m["expired_rows_before_purge"] and m["expired_rows_after_purge"] == 0,
        "stateful: a login that keeps a planted id lets the attacker in; a new id at login does not":
            m["fixation_naive_id_kept"] and m["fixation_naive_mallory_sees"] == "alice"
            and not m["fixation_safe_id_kept"] and m["fixation_safe_mallory_sees"] == "401",
        "stateful: logout revokes a stolen session id at once, on every server (benefit 4d)":
            m["stateful_copy_worked_before_logout"] and m["stateful_replays_accepted_after_logout"] == 0
            and m["stateful_replay_servers"] >= 2,
        "stateful: sessions in each server's memory are missed under round robin":
            m["memory_round_robin_found_share"] < 1,
        "stateless: logout does not revoke a stolen token; it works until exp":
            m["stateless_replays_accepted_after_logout"] == n and m["stateless_token_valid_for_s"] > 0,
        "stateless: a shared jti deny list revokes it, holding one entry per logout until exp":
            m["shared_deny_replays_accepted_after_logout"] == 0 and m["deny_list_entries"] == m["logouts"]
            and m["deny_list_purged_now"] == 0 and m["deny_list_kept_for_s"] > 0,
        "stateless: a jti deny list revokes every token of the login (a renewed token keeps its jti)":
            not m["shared_deny_earlier_token_accepted"],
        "stateless: a deny list each server keeps alone lets the stolen token through elsewhere":
            0 < m["own_deny_replays_accepted_after_logout"] < n
            and m["own_deny_logout_served_by"] not in m["own_deny_accepting_servers"],
        "stateless: retiring a signing key logs out every holder of a token it signed":
            m["rotation_accepted_after_rotate"] == m["rotation_users"] and m["rotation_accepted_after_retire"] == 0
            and m["rotation_new_token_uses_new_key"] and m["rotation_new_token_accepted_after_retire"],
        "stateless: the token grows with the cart; the session id does not":
            m["token_bytes_after"] > 2 * m["token_bytes_before"] and m["sid_bytes_after"] == m["sid_bytes_before"]
            and m["cart_lines_kept"] == m["cart_lines"] and m["sid_cart_lines_kept"] == m["sid_cart_lines"],
        "stateless: the servers store nothing per user, so nothing to clean up":
            m["stateless_sessions_held"] == 0,
    }
    if not stateless:
        verdict = "holds"
    elif len(stateless) < len(stateful):
        verdict = "holds with nuance"
    else:
        verdict = "does not hold"
    reading = (
        f"Stateful: {len(stateful)} of {len(concerns)} concerns needed the developer ({', '.join(stateful) or 'none'})."
        f" Stateless: {len(stateless)} ({', '.join(stateless) or 'none'}). A stolen token still worked for "
        f"{m['stateless_replays_accepted_after_logout']}/{n} requests after logout (valid "
        f"{m['stateless_token_valid_for_s']:.0f} s more), a stolen session id for "
        f"{m['stateful_replays_accepted_after_logout']}/{n}; the jti deny list that fixes it is server-side state again"
        f" ({m['deny_list_entries']} entries after {m['logouts']} logouts, shared by every server)."
    )
    return Evidence(row=ROW, measurements=m, checks=checks, verdict=verdict, reading=reading,
                    seconds=seconds, extra={"concerns": concerns, "quick": quick, "key_numbers": {
                        "concerns (stateful / stateless)": f"{len(stateful)} / {len(stateless)} of {len(concerns)}",
                        "stolen token accepted after logout": f"{m['stateless_replays_accepted_after_logout']}/{n}",
                        "stolen session id accepted after logout": f"{m['stateful_replays_accepted_after_logout']}/{n}",
                        "deny-list entries (one per logout)": m["deny_list_entries"],
                    }})


# --------------------------------------------------------------------------- showing it

def concerns_html(ev: Evidence) -> str:
    """The concern list as an HTML table: each side, observed yes/no, and what was seen."""
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
    return ("<table><thead><tr><th style='text-align:left'>concern</th><th>stateful: must handle?</th>"
            "<th style='text-align:left'>observed</th><th>stateless: must handle?</th>"
            f"<th style='text-align:left'>observed</th></tr></thead><tbody>{rows}{total}</tbody></table>")


def plot(ev: Evidence, ax: Any = None) -> Any:
    """Bars: share of a thief's replayed requests accepted after the victim logged out, per design."""
    import matplotlib.pyplot as plt

    m = ev.measurements
    n = m["replays"]
    labels = ["stateful\n(session deleted)", "stateless\n(plain JWT)", "stateless + deny list\nper server",
              "stateless + deny list\nshared"]
    values = [m["stateful_replays_accepted_after_logout"], m["stateless_replays_accepted_after_logout"],
              m["own_deny_replays_accepted_after_logout"], m["shared_deny_replays_accepted_after_logout"]]
    shares = [v / n for v in values]
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 2.8))
    else:
        fig = ax.figure
    colors = ["tab:green" if s == 0 else "tab:red" for s in shares]
    ax.barh(labels, shares, color=colors)
    for y, (share, v) in enumerate(zip(shares, values, strict=True)):
        ax.text(min(share, 0.85) + 0.02, y, f"{v}/{n}", va="center")
    ax.set_xlim(0, 1.05)
    ax.invert_yaxis()
    ax.set_xlabel("share of a thief's requests accepted after logout")
    ax.set_title("Does logout revoke a stolen credential?")
    fig.tight_layout()
    return fig
