"""Lab 04 · Rotate keys without logging anyone out: checkers for a signing-key rotation.

The learner writes ``rotate_with_grace(keyring)`` (a new key signs, the old one still verifies),
a plugin ``resign_old_tokens(app)`` (an ``after_request`` hook that hands active users a token
under the new key), and ``still_needed(tokens, old_kid)`` (how many users retiring the old key
would log out). The checkers log a crowd in on a real stateless cluster, rotate, and count 401s.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

import jwt

from ..client import Client
from ..shop.tokens import Keyring, inspect_token
from ..topology.cluster import Cluster
from .crash import shoppers
from .report import Report, blame, call, checker


def forge_with(keyring: Keyring, kid: str, sub: str, ttl: float = 3600) -> str:
    """A token for ``sub`` signed with the key ``kid``, as an attacker who stole that key signs one (HS256 here).

    No server issued it: its ``jti`` was never handed out, so no deny list knows it. It is valid for
    exactly as long as some server still accepts ``kid``: the grace period of a scheduled rotation keeps
    it valid; retiring the key at once (the procedure for a compromised key) ends it.
    """
    key = keyring.verification_key(kid)
    if key is None or keyring.algorithm != "HS256":
        raise ValueError(f"no HS256 key {kid!r} in this keyring to forge with")
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + int(ttl), "jti": secrets.token_hex(8), "auth_time": now,
              "cart": [{"item": "tcp-ip", "qty": 99}]}
    return jwt.encode(claims, key, algorithm="HS256", headers={"kid": kid})


def _kid(token: Any) -> Any:
    return inspect_token(token).header.get("kid")


def _tampered(token: str) -> str:
    """The same token with a richer cart written into its claims, signature unchanged."""
    header, claims, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    data["cart"] = [{"item": "tcp-ip", "qty": 99}]
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _shown(token: Any) -> str:
    """A token as a line can show it: its start, and the claims that tell two tokens apart."""
    if not isinstance(token, str):
        return repr(token)[:60]
    report = inspect_token(token)
    claims = report.claims or {}
    return (f"{token[:12]}...{token[-6:]} (kid {report.header.get('kid')}, jti {claims.get('jti')}, "
            f"auth_time {claims.get('auth_time')}, exp {claims.get('exp')})")


def _has_book(ex: Any) -> bool:
    return ex.ok and isinstance(ex.body, dict) and {"item": "book", "qty": 1} in (ex.body.get("cart") or [])


# --------------------------------------------------------------------------- task 1

@checker("Task 1 · rotate the signing key with a grace period")
def check_rotation_keeps_users(report: Report, rotate_with_grace: Any) -> None:
    """Thirty users hold tokens under the old key; after the learner's rotation all must still be let in."""
    users = 30
    with Cluster(3, "stateless", balancer="round_robin") as cluster:
        keyring = cluster.keyring
        clients = shoppers(cluster.url, users, "user")
        old = keyring.current_kid
        returned = call("rotate_with_grace(keyring)", rotate_with_grace, keyring)
        report.require("rotate_with_grace(keyring) returns the key id that signed until now", returned == old,
                       repr(old), f"rotate_with_grace(keyring) returned {returned!r}"[:120])
        report.require("a new key now signs", keyring.current_kid != old, f"a kid other than {old!r}",
                       repr(keyring.current_kid))
        report.expect("the old key still verifies", old in keyring.kids, f"{old!r} in keyring.kids", keyring.kids)
        accepted = {s.name: 0 for s in cluster.servers}
        for c in clients:
            for s in cluster.servers:
                probe = Client(s.url)
                probe.token = c.token
                accepted[s.name] += probe.me().ok
        report.expect("every logged-in user is still let in, by every server",
                      all(v == users for v in accepted.values()), f"{users} on each server", accepted)
        fresh = Client(cluster.url)
        fresh.login("newcomer")
        report.expect("a new login gets a token signed with the new key", _kid(fresh.token) == keyring.current_kid,
                      repr(keyring.current_kid), repr(_kid(fresh.token)))


# --------------------------------------------------------------------------- task 2

@checker("Task 2 · renew active users' tokens under the new key")
def check_resign(report: Report, resign_old_tokens: Any) -> None:
    """Active users must get a new-key token for the same login (same user, cart, jti, auth_time, within the
    login's absolute cap); forged or expired tokens must not, not even on a public page that answers 200."""
    max_age = 1200
    with blame("resign_old_tokens(app)"):
        cluster = Cluster(3, "stateless", balancer="round_robin", plugins=[resign_old_tokens], token_ttl=600,
                          token_max_age=max_age)
    with cluster:
        keyring = cluster.keyring
        clients = shoppers(cluster.url, 20, "user")
        active, idle = clients[:10], clients[10:]
        quiet = active[0].me()
        report.require("requests still work with the plugin", quiet.ok, "200", quiet.summary())
        report.expect("a token under the current key is left alone", "token" not in (quiet.body or {}),
                      "no new token in the answer", sorted(quiet.body) if isinstance(quiet.body, dict) else quiet.body)
        expired = keyring.issue("eve", -30, cart=[])  # signed with the old key, expired half a minute ago
        old_tokens = [c.token for c in active]
        before = [inspect_token(t, keyring).claims for t in old_tokens]
        old = keyring.current_kid
        keyring.rotate()
        answers = [c.me() for c in active]
        handed = [ex for ex in answers if isinstance(ex.body, dict) and "token" in ex.body]
        report.require("an active user with an old-key token gets a new token in the answer",
                       len(handed) == len(active), f"{len(active)} of {len(active)} answers carry 'token'",
                       f"{len(handed)} ({answers[0].summary()}, body keys {sorted(answers[0].body or {})})")
        kids = {_kid(c.token) for c in active}
        report.expect("the new tokens are signed with the new key", kids == {keyring.current_kid},
                      f"kid {keyring.current_kid}", f"returned {_shown(active[0].token)}")
        claims = [inspect_token(c.token, keyring).claims for c in active]
        same = all(cl.get("sub") == f"user{i}" and {"item": "book", "qty": 1} in (cl.get("cart") or [])
                   for i, cl in enumerate(claims))
        report.expect("each new token keeps its user and cart", same, "same sub, same cart",
                      f"returned {_shown(active[0].token)}, claims {claims[0]}"[:300])
        login = all(cl.get("jti") == b.get("jti") and cl.get("auth_time") == b.get("auth_time")
                    for cl, b in zip(claims, before, strict=True))
        report.expect("each new token is the same login: its jti and auth_time survive (keyring.renew)", login,
                      f"jti {before[0].get('jti')}, auth_time {before[0].get('auth_time')} (as the old token)",
                      f"returned {_shown(active[0].token)}")
        capped = all(isinstance(cl.get("exp"), int) and isinstance(b.get("auth_time"), int)
                     and cl["exp"] <= b["auth_time"] + max_age for cl, b in zip(claims, before, strict=True))
        report.expect("each new token ends within the login's absolute cap (auth_time + token_max_age)", capped,
                      f"exp <= {before[0].get('auth_time')} + {max_age}", f"returned {_shown(active[0].token)}")
        forged = Client(cluster.url)
        forged.token = _tampered(old_tokens[0])
        laundered = forged.me()
        report.expect("a tampered old token is refused, not re-signed", laundered.status == 401
                      and "token" not in (laundered.body or {}), "401, no token", laundered.summary())
        public = forged.get("/catalog")  # a page anyone may read answers 200 whatever the token says
        report.expect("a tampered old token sent to a public page (200) gets no token back",
                      public.ok and "token" not in (public.body or {}),
                      "200 with no 'token': only a token keyring.verify() accepted is renewed",
                      f"{public.summary()}, returned token: "
                      f"{_shown((public.body or {}).get('token')) if isinstance(public.body, dict) else None}")
        late = Client(cluster.url)
        late.token = expired
        stale = late.me()
        report.expect("an expired old token is refused, not re-signed", stale.status == 401
                      and "token" not in (stale.body or {}), "401, no token", stale.summary())
        keyring.retire(old)
        kept = sum(_has_book(c.cart()) for c in active)
        report.expect("after the old key is retired, active users are still in, carts intact", kept == len(active),
                      f"{len(active)} of {len(active)}", kept)
        out = sum(c.me().status == 401 for c in idle)
        report.expect("users idle through the whole grace period are logged out", out == len(idle),
                      f"{len(idle)} of {len(idle)} (their tokens only know the retired key)", out)
        report.note(f"{len(active)} active users moved to the new key without noticing; {out} idle users must "
                    "log in again: the grace period should outlast a token's lifetime")


# --------------------------------------------------------------------------- task 3

@checker("Task 3 · predict who retiring the old key logs out")
def check_prediction(report: Report, still_needed: Any) -> None:
    """The learner's prediction, made from the tokens alone, must match what retiring the key does."""
    with Cluster(3, "stateless", balancer="round_robin") as cluster:
        keyring = cluster.keyring
        n_expired, n_active = 3 + secrets.randbelow(4), 5 + secrets.randbelow(5)
        clients = shoppers(cluster.url, 24, "user")
        for i, c in enumerate(clients[:n_expired]):  # went home yesterday: their token expired
            c.token = keyring.issue(f"user{i}", -3600, cart=[])
        old = keyring.current_kid
        keyring.rotate()
        for c in clients[n_expired:n_expired + n_active]:
            c.add_to_cart("book")  # an answer with a token: now signed with the new key
        before = [c.me().ok for c in clients]
        tokens = [c.token for c in clients] + ["not-a-token", "a.b.c"]
        predicted = call("still_needed(tokens, old_kid)", still_needed, tokens, old)
        keyring.retire(old)
        after = [c.me().ok for c in clients]
        measured = sum(b and not a for b, a in zip(before, after, strict=True))
        report.require("still_needed(tokens, old_kid) returns a whole number",
                       isinstance(predicted, int) and not isinstance(predicted, bool), "an int",
                       f"still_needed(tokens, old_kid) returned {predicted!r}"[:120])
        report.expect("your prediction matches the users retiring the key logged out", predicted == measured,
                      f"{measured} (measured: let in before, 401 after)", predicted)
        report.note(f"of {len(clients)} users: {n_expired} had expired tokens anyway, {n_active} were re-signed "
                    f"while active, {measured} still needed the old key")
