"""Lab 02 · Log out for real: checkers for a ``jti`` deny list on stateless servers.

The learner writes ``DenyList(path)`` (token ids revoked until their token expires, in the SQLite
file ``path`` that every server process opens), a plugin factory ``revoke_on_logout(denied)`` (a
``before_request`` hook on every server), a measurement ``replays_accepted(servers, token)``, and
``RefreshStore(path)`` (refresh tokens rotated once, reuse ending the login's family). The checkers
log users out and replay their tokens against every server of a real cluster, and run the list and
the store from two OS processes on one file (:func:`~statelab.labs.processes.race`): a revocation
made in one process must be seen by the other, and of two processes refreshing one token at once,
exactly one must win. A ``threading.Lock`` around a dict passes every check made with servers that
are threads of one process, and fails those two.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from ..client import Client
from ..service import cleanup
from ..shop.lifecycle import token_lifecycle
from ..shop.server import Server
from ..shop.tokens import TokenError, inspect_token
from ..topology.cluster import Cluster
from .processes import Meeting, race
from .report import LearnerError, Report, blame, call, checker

UNSIGNED = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSJ9."  # {"alg":"none"}.{"sub":"alice"}.


def _replay(url: str, token: str) -> Any:
    thief = Client(url)
    thief.token = token
    return thief.me()


def _deny_list(DenyList: Any, path: str) -> Any:  # noqa: N803  (the learner's class)
    denied = call("DenyList(path)", DenyList, path)
    for method in ("add", "__contains__", "__len__"):
        if not callable(getattr(denied, method, None)):
            raise _missing(method)
    return denied


def _missing(method: str) -> Exception:
    return LearnerError(f"DenyList needs a method {method}() (see task 1)")


class _Remembers:
    """What the task 2 and 3 checks use while the learner's DenyList (task 1) is not ready.

    Deliberately *not* an answer to task 1: it ignores ``exp`` and never forgets an entry (the
    task 1 check fails it), and it has no lock. It is just enough to judge task 2's hook and task
    3's measurement on their own, so that a learner gets credit for each task separately.
    """

    def __init__(self, path: str = "") -> None:
        self.ids: set[object] = set()

    def add(self, jti: object, exp: object) -> None:
        self.ids.add(jti)

    def __contains__(self, jti: object) -> bool:
        return isinstance(jti, str) and jti in self.ids

    def __len__(self) -> int:
        return len(self.ids)


def _deny_list_or_stand_in(DenyList: Any, report: Report, path: str) -> Any:  # noqa: N803
    """The learner's DenyList class if it can be made, else a stand-in (so task 2 does not wait for task 1)."""
    try:
        _deny_list(DenyList, path)
        return DenyList
    except LearnerError as e:
        report.note(f"your DenyList is not ready ({e}); this check used a stand-in that never forgets an entry")
        return _Remembers


# --------------------------------------------------------------------------- task 1

@checker("Task 1 · a deny list of token ids, in a file every server process opens")
def check_deny_list(report: Report, DenyList: Any) -> None:  # noqa: N803
    """The list's behaviour, fed with real tokens from a real stateless server, in this order: a revoked id, one
    never revoked, things that are not ids, an expired entry, len(), purge_expired(); then two OS processes, each
    with its own DenyList on one file, each revoking ids and looking for the other's."""
    with cleanup.folder("statelab-lab02-") as tmp:
        _check_deny_list(report, DenyList, Path(tmp))


def _check_deny_list(report: Report, DenyList: Any, base: Path) -> None:  # noqa: N803
    with Server("stateless") as shop:
        shop.start()
        tokens = []
        for user in ("alice", "bob"):
            c = Client(shop.url)
            c.login(user)
            tokens.append(c.token)
    claims = [inspect_token(t, shop.keyring).claims for t in tokens]
    alice, bob = claims
    denied = _deny_list(DenyList, str(base / "denied.sqlite3"))
    call("denied.add(jti, exp)", denied.add, alice["jti"], alice["exp"])
    has_alice = call("jti in denied", denied.__contains__, alice["jti"])
    has_bob = call("jti in denied", denied.__contains__, bob["jti"])
    report.expect("a revoked token id is in the list", has_alice is True, "True", has_alice)
    report.expect("a token id never revoked is not", has_bob is False, "False", has_bob)
    odd = [call("x in denied", denied.__contains__, x) for x in (None, 42, "")]
    report.expect("anything that is not a token id is simply not in the list", odd == [False, False, False],
                  "False for None, 42 and ''", odd)
    call("denied.add(jti, exp) for a token that expired", denied.add, "expired-jti", time.time() - 5)
    expired_in = call("jti in denied", denied.__contains__, "expired-jti")
    report.expect("an entry whose token has expired no longer counts", expired_in is False,
                  "False (the token is refused as expired anyway)", expired_in)
    size = call("len(denied)", len, denied)
    report.expect("len() counts the entries held", size == 2, "2 (alice's and the expired one)", size)
    purged = call("denied.purge_expired()", denied.purge_expired) if hasattr(denied, "purge_expired") else None
    left = call("len(denied)", len, denied)
    report.expect("purge_expired() drops entries whose token expired, and says how many", purged == 1 and left == 1,
                  "1 purged, 1 left", f"{purged} purged, {left} left")
    still = call("jti in denied", denied.__contains__, alice["jti"])
    report.expect("purging keeps entries whose token is still valid", still is True, "True", still)
    made, seen, problems, per_process = _revocations_from_processes(DenyList, str(base / "shared.sqlite3"))
    report.expect("two server processes on one file: a token revoked in one is refused by the other",
                  seen == made and not problems, f"{made} of {made} revocations seen by the other process",
                  "; ".join(problems) or f"{seen} of {made} seen by the other process (each process saw "
                  f"{'; '.join(per_process)})")
    report.note(f"two OS processes, each revoking {REVOKES} token ids in its own DenyList(path) on one file: the "
                f"other process saw {seen} of {made}. A set or dict (and its threading.Lock) lives inside one "
                "process: gunicorn's workers and servers on other machines would each keep a list of their own.")


REVOKES = 20       # token ids each of two processes revokes, then looks for in the other's list
REFRESHES = 12     # refresh tokens two processes refresh at the same moment
MEET = 5.0         # seconds a process waits for the other at a meeting point (then it goes on alone)
TRIES = 3          # runs in which the two processes never overlapped prove nothing: run again


def _revocations_from_processes(DenyList: Any, path: str) -> tuple[int, int, list[str], list[str]]:  # noqa: N803
    """Two OS processes, each with its own ``DenyList(path)``, each revoke ``REVOKES`` token ids; once both are
    done (they meet), each looks for the other's ids and its own. Returns (revocations made, revocations seen by
    the other process, what went wrong, what each process saw of the other's and of its own)."""
    exp = time.time() + 600
    with Meeting(MEET) as meeting:

        def work(i: int) -> str:  # in each child: another server process on the same file
            mine = DenyList(path)
            for k in range(REVOKES):
                mine.add(f"process{i}-{k}", exp)
            meeting.meet(i)  # the other process has made its revocations too
            theirs = sum(f"process{1 - i}-{k}" in mine for k in range(REVOKES))
            own = sum(f"process{i}-{k}" in mine for k in range(REVOKES))
            return f"{theirs}/{own}"

        outcome = race(work, 2, what=f"its {REVOKES} revocations")
    counts = [r.split("/") for r in outcome.results]
    seen = sum(int(theirs) for theirs, _ in counts)
    return 2 * REVOKES, seen, outcome.problems, [f"{theirs} of the other's {REVOKES} and {own} of its own"
                                                 for theirs, own in counts]


# --------------------------------------------------------------------------- task 2

@checker("Task 2 · logout revokes the token on every server")
def check_logout_revokes(report: Report, revoke_on_logout: Any, DenyList: Any) -> None:  # noqa: N803
    """Three stateless servers share one deny list; a stolen token replayed after logout must get 401 everywhere."""
    with cleanup.folder("statelab-lab02-") as tmp:
        path = str(Path(tmp) / "denied.sqlite3")
        _check_logout_revokes(report, revoke_on_logout, _deny_list(_deny_list_or_stand_in(DenyList, report, path),
                                                                   path))


def _check_logout_revokes(report: Report, revoke_on_logout: Any, denied: Any) -> None:
    plugin = call("revoke_on_logout(denied)", revoke_on_logout, denied)
    report.require("revoke_on_logout(denied) returns a plugin", callable(plugin),
                   "a function plugin(app) that adds the hook", f"{plugin!r}"[:80])
    with blame("the plugin revoke_on_logout(denied) returned"):
        cluster = Cluster(3, "stateless", balancer="round_robin", plugins=[plugin])
    with cluster:
        alice = Client(cluster.url)
        alice.login("alice")
        shopped = alice.add_to_cart("book")
        stolen = alice.token
        report.require("a logged-in user can still shop", shopped.ok and alice.me().ok, "200", shopped.summary())
        out = alice.logout()
        report.require("logout answers 200", out.ok, "200", out.summary())
        replays = {s.name: _replay(s.url, stolen) for s in cluster.servers}
        refused = {name: ex.status for name, ex in replays.items()}
        report.expect("the stolen token, replayed after logout, is refused by every server",
                      all(v == 401 for v in refused.values()), "401 from each", refused)
        json_error = all(isinstance(ex.body, dict) and "error" in ex.body for ex in replays.values())
        report.expect("the refusal is a JSON error", json_error, '{"error": "..."}', next(iter(replays.values())).body)
        bob = Client(cluster.url)
        bob.login("bob")
        report.expect("another user is not affected", all(bob.me().ok for _ in range(3)), "200, 200, 200",
                      bob.last.summary())
        again = Client(cluster.url)
        again.login("alice")
        report.expect("alice can log in again (a new token, a new jti)", again.me().ok, "200", again.last.summary())
        bad = {name: _replay(cluster.url, token).status for name, token in
               (("garbage", "garbage"), ("unsigned", UNSIGNED), ("empty", " "))}
        report.expect("bad tokens still get 401, not a server error", all(v == 401 for v in bad.values()),
                      "401 each", bad)
        anonymous = Client(cluster.url).logout()
        report.expect("logout without a token does not break the server", anonymous.status is not None
                      and anonymous.status < 500, "a 2xx or 4xx answer", anonymous.summary())
        entries = call("len(denied)", len, denied)
        report.expect("the list holds one entry per logout", entries == 1, "1", entries)


# --------------------------------------------------------------------------- task 3

@checker("Task 3 · why the list must be shared, and what it costs")
def check_shared_list(report: Report, replays_accepted: Any, revoke_on_logout: Any,
                      DenyList: Any) -> None:  # noqa: N803
    """The learner's measurement must tell a list per server from one shared list; then count the state."""
    with cleanup.folder("statelab-lab02-") as tmp:
        _check_shared_list(report, replays_accepted, revoke_on_logout, DenyList, Path(tmp))


def _check_shared_list(report: Report, replays_accepted: Any, revoke_on_logout: Any, DenyList: Any,  # noqa: N803
                       base: Path) -> None:
    DenyList = _deny_list_or_stand_in(DenyList, report, str(base / "probe.sqlite3"))  # noqa: N806
    files = itertools.count()

    def own_list(app: Any) -> None:  # each server its own list (a file of its own): no shared store
        revoke_on_logout(DenyList(str(base / f"own{next(files)}.sqlite3")))(app)

    shared = _deny_list(DenyList, str(base / "shared.sqlite3"))
    results = {}
    for label, plugin in (("a list per server", own_list), ("one shared list", None)):
        with blame("revoke_on_logout(denied)"):
            cluster = Cluster(3, "stateless", plugins=[plugin or revoke_on_logout(shared)])
        with cluster:
            first = cluster.servers[0]
            alice = Client(first.url)
            alice.login("alice")
            stolen = alice.token
            alice.logout()  # through server-0 only
            truth = sum(_replay(s.url, stolen).ok for s in cluster.servers)
            counted = call("replays_accepted(cluster.servers, token)", replays_accepted, cluster.servers, stolen)
            results[label] = (counted, truth)
            report.expect(f"{label}: your count of servers that accept the replayed token", counted == truth,
                          f"{truth} (measured by the check)", counted)
            if label == "one shared list":
                users = 40
                tokens = []
                for i in range(users):
                    c = Client(cluster.url)
                    c.login(f"user{i}")
                    tokens.append(c.token)
                    c.logout()
                entries = call("len(denied)", len, shared)
                report.expect("the shared list grows by one entry per logout", entries == users + 1,
                              f"{users + 1} (alice + {users} users)", entries)
                leaked = sum(_replay(cluster.url, t).ok for t in tokens[:10])
                report.expect("every revoked token stays refused", leaked == 0, "0 of 10 replays accepted", leaked)
                exp = max(inspect_token(t).claims.get("exp", 0) for t in tokens)
                report.note(f"state brought back: {entries} entries, one per logout, shared by all "
                            f"{len(cluster.servers)} servers, each kept until its token expires "
                            f"(about {max(0.0, exp - time.time()):.0f} s from now)")
    per_server, shared_result = results.get("a list per server"), results.get("one shared list")
    if per_server and shared_result:
        report.note(f"a list per server let {per_server[1]} of 3 servers accept the stolen token; "
                    f"one shared list let {shared_result[1]}")


# --------------------------------------------------------------------------- task 4

def _post(url: str, path: str, body: dict[str, Any]) -> Any:
    return Client(url).post(path, body)


@checker("Task 4 · refresh tokens: rotation, reuse detection, logout, from two processes")
def check_refresh(report: Report, RefreshStore: Any) -> None:  # noqa: N803  (the learner's class)
    """The learner's store behind the shop's token-lifecycle endpoints on two servers, in this order: login, a
    refresh (rotation), the thief's replay of the spent token (401, and the family ends: alice's newer token too),
    another user's login untouched, logout ending its family, an unknown token; then two OS processes, each with
    its own RefreshStore on one file, refreshing the same tokens at the same moments."""
    with cleanup.folder("statelab-lab02-") as tmp:
        _check_refresh(report, RefreshStore, Path(tmp))


def _check_refresh(report: Report, RefreshStore: Any, base: Path) -> None:  # noqa: N803
    store = call("RefreshStore(path)", RefreshStore, str(base / "refresh.sqlite3"))
    methods = [m for m in ("start", "rotate", "end") if not callable(getattr(store, m, None))]
    report.require("RefreshStore(path) has start, rotate and end", not methods,
                   "start(user), rotate(token), end(token)",
                   f"missing: {methods}" if methods else "all three")
    with blame("your RefreshStore, behind the lifecycle endpoints"), Cluster(
            2, "stateless", balancer="round_robin", plugins=[token_lifecycle(store, access_ttl=60)]) as cluster:
        url = cluster.url
        first = _post(url, "/auth/login", {"user": "alice"})
        report.require("login hands out a refresh token (your start(user))",
                       first.status == 200 and isinstance((first.body or {}).get("refresh_token"), str),
                       "200 with a refresh_token string", first.summary())
        bob = _post(url, "/auth/login", {"user": "bob"}).body or {}
        stolen = first.body["refresh_token"]
        second = _post(url, "/auth/refresh", {"refresh_token": stolen})
        new = (second.body or {}).get("refresh_token") if isinstance(second.body, dict) else None
        report.require("a refresh answers a new access token and the login's next refresh token (rotation)",
                       second.status == 200 and isinstance(new, str) and new != stolen,
                       "200 with another refresh_token", f"{second.summary()}; same token back: {new == stolen}")
        thief = _post(url, "/auth/refresh", {"refresh_token": stolen})
        report.expect("the thief replays the spent refresh token: refused", thief.status == 401,
                      "401 (raise sl.TokenError)", thief.summary())
        after = _post(url, "/auth/refresh", {"refresh_token": new})
        report.expect("reuse ends the whole family: alice's newer refresh token is refused too", after.status == 401,
                      "401: the server cannot tell the thief from alice, so both log in again", after.summary())
        other = _post(url, "/auth/refresh", {"refresh_token": bob.get("refresh_token", "")})
        report.expect("another login (bob's family) is untouched", other.status == 200, "200", other.summary())
        carol = _post(url, "/auth/login", {"user": "carol"}).body or {}
        _post(url, "/auth/logout", {"refresh_token": carol.get("refresh_token", "")})
        out = _post(url, "/auth/refresh", {"refresh_token": carol.get("refresh_token", "")})
        report.expect("logout ends the family: its refresh token is refused", out.status == 401, "401", out.summary())
        unknown = _post(url, "/auth/refresh", {"refresh_token": "x" * 43})
        report.expect("a refresh token the store never issued is refused", unknown.status == 401, "401",
                      unknown.summary())
        report.note("access requests made no lookup in your store; each refresh made one: the state a short-lived "
                    "access token brings back, one record per live login")
    raced, once, problems, detail = _refreshes_from_processes(RefreshStore, str(base / "shared.sqlite3"))
    report.expect("two server processes on one file refresh the same token at once: exactly one wins",
                  once == raced and not problems, f"{raced} of {raced} tokens refreshed by exactly one process",
                  "; ".join(problems) or f"{once} of {raced} ({detail})")
    report.note(f"two OS processes, each with its own RefreshStore(path) on one file, refreshed each of {raced} "
                f"tokens at the same moment: {once} of {raced} had exactly one winner ({detail}). \"Spend it once\" "
                "must be one atomic step in the shared store (UPDATE ... WHERE spent = 0, and count the rows): a "
                "threading.Lock orders the threads of one process only.")


def _refreshes_from_processes(RefreshStore: Any, path: str) -> tuple[int, int, list[str], str]:  # noqa: N803
    """Logins made through one ``RefreshStore(path)``; then two OS processes, each with its own
    ``RefreshStore(path)``, meet before each token and refresh it at the same moment. Returns (tokens raced,
    tokens refreshed by exactly one process, what went wrong, the wins per process and the tokens refreshed by
    both or by neither)."""
    for attempt in range(TRIES):
        issuer = call("RefreshStore(path)", RefreshStore, path)
        tokens = [call("start(user)", issuer.start, f"racer{attempt}-{k}") for k in range(REFRESHES)]
        with Meeting(MEET) as meeting:

            def work(i: int, meeting: Meeting = meeting, tokens: list[str] = tokens) -> str:  # in each child
                mine = RefreshStore(path)
                won = []
                for k, token in enumerate(tokens):
                    meeting.meet(i)  # both refresh token k now
                    try:
                        mine.rotate(token)
                        won.append(k)
                    except TokenError:
                        pass
                return ",".join(map(str, won))

            outcome = race(work, 2, what=f"its {REFRESHES} refreshes")
        wins = [{int(k) for k in r.split(",") if k} for r in outcome.results]
        counts = [sum(k in w for w in wins) for k in range(REFRESHES)]
        once = counts.count(1) if len(wins) == 2 else 0
        if outcome.overlapped or outcome.problems or once != REFRESHES:
            break
    detail = (f"wins per process: {[len(w) for w in wins]}; refreshed by both: {counts.count(2)}, by neither: "
              f"{counts.count(0)}" + (": a store that never saw the login refuses its token" if counts.count(0)
                                      else ""))
    return REFRESHES, once, outcome.problems, detail
