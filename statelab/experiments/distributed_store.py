"""Notebook 14: when the shared store is itself distributed (a replicated, persistent, sharded Valkey).

Every row notebook treats the shared store as one consistent object on this machine: a logout
is instant, an acknowledged write is never lost, and a store outage "keeps the data by
construction". Real session stores are replicated for fault tolerance, and replication is
asynchronous by default. This module measures, on real Valkey servers (see
:mod:`statelab.production.replication`), what that changes:

* :func:`measure_lag`: a logout (the session deleted on the primary) and a deny-list entry (a revoked
  token's id written to the primary) reach a replica only after the replication lag: until then a
  stolen session or token is still let through by anything that reads the replica. And a cart line
  added on the primary is not on the replica when read at once (read-your-writes breaks).
  :func:`measure_stolen_session` shows the same over HTTP, with a shop server that reads its
  sessions from the replica (:class:`~statelab.production.replication.ReplicaReads`).
* :func:`measure_failover`: the primary's machine fails while writes flow; the most up-to-date
  replica is promoted. Count the writes acknowledged to the client and now gone, without ``WAIT``
  and with ``WAIT 1`` after every write; and what each write costs.
* :func:`measure_persistence`: a server restarted after a crash (SIGKILL) with no persistence, an RDB
  snapshot, an append-only file fsynced every second, and at every write: what survives, and what
  each write costs.
* :func:`measure_sharding`: two primaries, each user's session on one of them by a hash of the user
  name; one shard fails: who is logged out.

:func:`judge` turns the numbers into :class:`~statelab.experiments.Evidence`, and :func:`revisited`
re-judges 04's fault tolerance, 08's logout and 09's lost updates against the replicated store.
"""

from __future__ import annotations

import statistics
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from ..production.redis import PERSISTENCE, RedisCartStore, RedisServer, RedisStore, server_binary
from ..production.replication import ReplicaSet, acknowledged_write, offset
from ..shop.sessions import StoreUnavailable
from . import Evidence, Judgement, check_size, checks, conditions, record

ROW = "distributed_store"
DELAY = 0.01  # seconds one way between the primary and each replica: two data centres close by
WAIT_FOR = (1, 200)  # WAIT 1 replica, at most 200 ms: a write no replica confirmed is refused, not acknowledged
SETTINGS = tuple(PERSISTENCE)  # none, rdb, aof-everysec, aof-always

# The checks: each threshold written once, here. Mechanisms are counts every machine must reproduce.
CHECKS = checks("""
logout_on_primary, mechanism: after a logout, the primary refused the session at once
replica_lag > 0 ms: a replica still let the logged-out session in for over {t} ms
wait_kept, mechanism: with WAIT on every write, no acknowledged write was lost at failover
loss_counted, mechanism: without WAIT, the acknowledged writes missing after failover were counted (0 or more) on the
    most up-to-date replica
async_lost > 0: without WAIT, failover lost over {t} acknowledged writes
wait_cost > 2x: WAIT made a write over {t}x slower
persisted, mechanism: after a crash, no persistence kept nothing, the RDB kept exactly its snapshot, appendfsync
    always kept every write
shard_isolated, mechanism: a shard's failure logged out exactly the users on that shard
shard_logout > 0: a shard's failure logged out over {t} users
""")

CLAIMS = {
    # 04 (benefit 5b): a failed server does not take user state with it, because the state is in the store.
    # Here the server that fails is the store's own primary.
    "5b": Judgement(supports=(CHECKS.wait_kept,), qualifies=(CHECKS.async_lost, CHECKS.wait_cost, CHECKS.shard_logout)),
    # 08 and 11 (benefit 4d): central session management, so a logout ends the session everywhere at once.
    "4d": Judgement(supports=(CHECKS.logout_on_primary,), qualifies=(CHECKS.replica_lag,)),
}


def available() -> str | None:
    """None when this machine can run the lesson; else one sentence saying what is missing and how to get it."""
    from ..production.redis import HOW_TO_GET, client_available

    if server_binary() is None:
        return HOW_TO_GET
    if not client_available():
        return "the redis client is missing: `pip install redis`, then run this cell again"
    return None


# --- 1. replica lag --------------------------------------------------------------------------------


@dataclass
class Lag:
    """What a replica showed after writes acknowledged by the primary."""

    delay_ms: float
    windows_ms: list[float]  # per logout: how long a replica still found the session
    let_in: int  # reads through the replica, after a logout was acknowledged, that still found the session
    refused_on_primary: int  # logouts after which the primary itself refused the session at once
    deny_windows_ms: list[float]  # per revoked token: how long the replica did not know it was revoked
    carts_missed: int  # cart lines added on the primary and not seen on the replica right after
    trials: int

    @property
    def window_ms(self) -> float:
        return statistics.median(self.windows_ms)

    @property
    def deny_window_ms(self) -> float:
        return statistics.median(self.deny_windows_ms)


def _until(found: Any, limit: float = 2.0) -> tuple[float, int]:
    """Seconds until ``found()`` turns false (from now), and how many reads still said true."""
    start, hits = time.perf_counter(), 0
    while time.perf_counter() - start < limit:
        if not found():
            break
        hits += 1
    return time.perf_counter() - start, hits


def measure_lag(group: ReplicaSet, trials: int = 5) -> Lag:
    """Log out, revoke a token and add to a cart on the primary; read each back at once from a replica."""
    check_size("trials", trials, 1, 50)
    prefix = f"lag{time.monotonic_ns()}"
    replica = group.replicas[0]
    sessions, copies = RedisStore(group.primary.url, prefix), RedisStore(replica.url, prefix)
    carts, cart_copies = RedisCartStore(group.primary.url, prefix), RedisCartStore(replica.url, prefix)
    primary, reader = group.primary.client(), replica.client()
    windows, denies, let_in, refused, missed = [], [], 0, 0, 0
    try:
        for i in range(trials):
            sid = sessions.create({"user": f"user{i}"}, ttl=600)
            group.wait_synced()  # the replica has the session: a stolen copy of the cookie works there
            sessions.delete(sid)  # logout, acknowledged by the primary
            refused += sessions.peek(sid) is None
            seconds, hits = _until(lambda sid=sid: copies.peek(sid) is not None)
            windows.append(seconds * 1000)
            let_in += hits
            jti = f"statelab:{prefix}:deny:{i}"
            primary.set(jti, "revoked", ex=900)  # the token's id on the deny-list
            seconds, _ = _until(lambda jti=jti: not reader.exists(jti))
            denies.append(seconds * 1000)
            carts.update(f"user{i}", lambda lines: [*lines, {"item": "pen", "qty": 1}])
            missed += not cart_copies.get(f"user{i}")
    finally:
        for store in (sessions, copies, carts, cart_copies):
            store.close()
    return Lag(group.delay * 1000, windows, let_in, refused, denies, missed, trials)


@dataclass
class Stolen:
    """Over HTTP: a shop server that reads sessions from a replica; Alice logs out, a thief replays her cookie."""

    before: int  # the thief's status before the logout (200: the stolen cookie works)
    logout: int  # the logout's status
    after: list[int]  # the thief's statuses right after the logout, in order, until a 401
    window_ms: float  # from the logout's answer to the thief's first 401


def measure_stolen_session(group: ReplicaSet, tries: int = 200) -> Stolen:
    """A real shop server (stateful, sessions in Valkey, reads from replica 0); Alice logs in, a thief copies her
    cookie; Alice logs out; the thief asks for the cart again at once, until it is refused."""
    from ..client import Client
    from ..production.replication import ReplicaReads
    from ..shop.server import serve

    store = ReplicaReads(group.primary.url, group.replicas[0].url, f"http{time.monotonic_ns()}")
    shop = serve("stateful", store=store, name="shop-reads-replica")
    try:
        alice, thief = Client(shop.url), Client(shop.url)
        alice.login("alice")
        group.wait_synced()
        for name, value in alice.cookies.items():
            thief.set_cookie(name, value)
        before = thief.cart().status
        logout = alice.logout().status
        start, after = time.perf_counter(), []
        while len(after) < tries:
            after.append(thief.cart().status)
            if after[-1] != 200:
                break
        return Stolen(before, logout, after, (time.perf_counter() - start) * 1000)
    finally:
        shop.stop()
        store.close()


# --- 2. failover -----------------------------------------------------------------------------------


@dataclass
class Failover:
    """One failover while writes flowed."""

    wait: bool
    attempted: int
    acknowledged: int
    refused: int  # writes the shop could not acknowledge (WAIT saw no replica, or the primary was gone)
    lost: int  # acknowledged, and missing on the promoted replica
    write_ms: float  # median time of one acknowledged write
    promoted: str
    offsets: dict[str, int]  # each replica's offset when the primary died
    best_promoted: bool  # the promoted replica had the highest offset


def measure_failover(wait: bool, seconds: float = 0.3, delay: float = DELAY,
                     group: ReplicaSet | None = None) -> Failover:
    """Write cart lines as fast as one client can for ``seconds``; then the primary's machine fails and the most
    up-to-date replica is promoted. Count what was acknowledged and is gone. ``wait`` adds ``WAIT 1 200``."""
    from redis.exceptions import RedisError

    check_size("seconds", seconds, 0.05, 5, whole=False)
    own = group is None
    group = group or ReplicaSet(2, delay, name="failover")
    try:
        client = group.primary.client()
        prefix = f"statelab:failover{time.monotonic_ns()}:cart:"
        acked: list[tuple[str, str]] = []
        times: list[float] = []
        attempted = refused = 0
        failure = threading.Timer(seconds, group.fail_primary)  # the machine fails while writes flow
        failure.start()
        deadline = time.perf_counter() + seconds + 5
        try:
            while time.perf_counter() < deadline:
                key, line = f"{prefix}user{attempted % 8}", f"line-{attempted}"
                t0 = time.perf_counter()
                attempted += 1
                try:
                    ok = acknowledged_write(client, key, line, WAIT_FOR if wait else None)
                except RedisError:  # the primary is gone: the shop answers 503, nothing acknowledged
                    refused += 1
                    break
                if ok:
                    acked.append((key, line))
                    times.append(time.perf_counter() - t0)
                else:
                    refused += 1
        finally:
            failure.join()
        offsets = {r.name: offset(r) for r in group.replicas}
        best = group.most_up_to_date()
        group.promote(best)
        survivor = best.client()
        kept: dict[str, set[str]] = {}
        for key, _ in acked:
            if key not in kept:
                kept[key] = set(survivor.lrange(key, 0, -1))
        lost = sum(1 for key, line in acked if line not in kept[key])
        client.close()
        return Failover(wait, attempted, len(acked), refused, lost,
                        statistics.median(times) * 1000 if times else 0.0, best.name, offsets,
                        offsets[best.name] == max(offsets.values()))
    finally:
        if own:
            group.stop()


# --- 3. persistence --------------------------------------------------------------------------------


@dataclass
class Restart:
    """One persistence setting: writes, a crash, a restart."""

    setting: str
    sessions: int  # sessions written (a login each)
    lines: int  # cart lines written
    snapshot: int  # sessions written before the RDB snapshot (rdb only; else 0)
    sessions_kept: int
    lines_kept: int
    write_us: float  # median microseconds of one cart write (a WATCH/MULTI/EXEC transaction)


def measure_persistence(writes: int = 40, settings: tuple[str, ...] = SETTINGS) -> dict[str, Restart]:
    """For each setting: ``writes`` logins and cart lines, a crash (SIGKILL), a restart; count what came back.

    With RDB, a snapshot (``BGSAVE``, what its ``save 60 1`` schedule does within a minute) is taken after half
    the writes: what came after it is what a crash between two snapshots loses."""
    check_size("writes", writes, 2, 2000)
    found = {}
    for setting in settings:
        server = RedisServer(f"persist-{setting}", persistence=setting)
        try:
            found[setting] = _crash_and_restart(server, setting, writes)
        finally:
            server.stop()
    return found


def _crash_and_restart(server: RedisServer, setting: str, writes: int) -> Restart:
    prefix = "persist"
    sessions, carts = RedisStore(server.url, prefix), RedisCartStore(server.url, prefix)
    sids, times, snapshot = [], [], 0
    for i in range(writes):
        if setting == "rdb" and i == writes // 2:
            _snapshot(server)
            snapshot = i
        sids.append(sessions.create({"user": f"user{i}"}, ttl=600))
        t0 = time.perf_counter()
        carts.update(f"user{i}", lambda lines: [*lines, {"item": "pen", "qty": 1}])
        times.append(time.perf_counter() - t0)
    sessions.close(), carts.close()
    server.kill()
    server.restart()
    sessions, carts = RedisStore(server.url, prefix), RedisCartStore(server.url, prefix)
    try:
        kept_sessions = sum(1 for sid in sids if sessions.peek(sid) is not None)
        kept_lines = sum(len(carts.get(f"user{i}")) for i in range(writes))
    finally:
        sessions.close(), carts.close()
    return Restart(setting, writes, writes, snapshot, kept_sessions, kept_lines, statistics.median(times) * 1e6)


def _snapshot(server: RedisServer, timeout: float = 5.0) -> None:
    client = server.client()
    client.bgsave()
    deadline = time.monotonic() + timeout
    time.sleep(0.005)
    while time.monotonic() < deadline:
        info = client.info("persistence")
        if not info["rdb_bgsave_in_progress"]:
            if info["rdb_last_bgsave_status"] != "ok":
                raise RuntimeError(f"the RDB snapshot failed: {server.log_tail()}")
            return
        time.sleep(0.005)
    raise TimeoutError(f"the RDB snapshot took over {timeout:g} s")


# --- 4. sharding -----------------------------------------------------------------------------------


@dataclass
class Shards:
    users: dict[int, list[str]]  # shard -> its users
    failed: int  # the shard that failed
    logged_out: list[str]  # users whose session could not be found after the failure
    answers: dict[str, str] = field(default_factory=dict)  # user -> "ok" / "store unavailable"


def shard_of(key: str, shards: int) -> int:
    """Where ``key`` lives: a stable hash of it, modulo the number of shards (Redis Cluster uses CRC16 slots)."""
    return zlib.crc32(key.encode()) % shards


def measure_sharding(users: int = 16, shards: int = 2, failed: int = 1) -> Shards:
    """``users`` log in, each on the shard their name hashes to; shard ``failed`` crashes; each asks for their
    session again."""
    check_size("users", users, 2, 500)
    servers = [RedisServer(f"shard-{i}") for i in range(shards)]
    stores = [RedisStore(s.url, "shop") for s in servers]
    try:
        names = [f"user{i}" for i in range(users)]
        sids = {n: stores[shard_of(n, shards)].create({"user": n}, ttl=600) for n in names}
        servers[failed].kill()
        answers = {}
        for n in names:
            try:
                answers[n] = "ok" if stores[shard_of(n, shards)].peek(sids[n]) is not None else "unknown session"
            except StoreUnavailable:
                answers[n] = "store unavailable"
        placed: dict[int, list[str]] = {i: [n for n in names if shard_of(n, shards) == i] for i in range(shards)}
        return Shards(placed, failed, [n for n, a in answers.items() if a != "ok"], answers)
    finally:
        for store in stores:
            store.close()
        for server in servers:
            server.stop()


# --- the evidence ----------------------------------------------------------------------------------


def judge(lag: Lag, failovers: dict[bool, Failover], restarts: dict[str, Restart], shards: Shards,
          seconds: float = 0.0, stolen: Stolen | None = None) -> Evidence:
    """The checks, claims and reading computed from the four measurements."""
    plain, waited = failovers[False], failovers[True]
    none, rdb, always = restarts["none"], restarts["rdb"], restarts["aof-always"]
    persisted = (none.sessions_kept == 0 and none.lines_kept == 0 and rdb.sessions_kept == rdb.snapshot
                 and rdb.lines_kept == rdb.snapshot and always.sessions_kept == always.sessions
                 and always.lines_kept == always.lines)
    kept = ", ".join(f"{r.setting} {r.sessions_kept}/{r.sessions}" for r in restarts.values())
    ratio = waited.write_ms / plain.write_ms if plain.write_ms else float("inf")
    failed_users = shards.users[shards.failed]
    checks = [
        CHECKS.logout_on_primary(ok=lag.refused_on_primary == lag.trials,
                                 shown=f"{lag.refused_on_primary}/{lag.trials}"),
        CHECKS.replica_lag(round(lag.window_ms, 1)),
        CHECKS.wait_kept(ok=waited.lost == 0 and waited.best_promoted,
                         shown=f"{waited.lost} of {waited.acknowledged} acknowledged writes lost"),
        CHECKS.loss_counted(ok=0 <= plain.lost <= plain.acknowledged and plain.best_promoted,
                            shown=f"{plain.lost} of {plain.acknowledged}"),
        CHECKS.async_lost(plain.lost),
        CHECKS.wait_cost(round(ratio, 1)),
        CHECKS.persisted(ok=persisted, shown=f"sessions kept after a crash: {kept}"),
        CHECKS.shard_isolated(ok=sorted(shards.logged_out) == sorted(failed_users),
                              shown=f"{len(shards.logged_out)} logged out, {len(failed_users)} on the failed shard"),
        CHECKS.shard_logout(len(shards.logged_out)),
    ]
    measurements = {
        "replica lag window, logout (median ms)": round(lag.window_ms, 1),
        "replica lag window, deny-list (median ms)": round(lag.deny_window_ms, 1),
        "reads let in after logout": lag.let_in,
        "cart lines not seen on the replica": f"{lag.carts_missed}/{lag.trials}",
        **({"stolen cookie let in after logout, over HTTP": f"{stolen.after.count(200)} request(s) in "
            f"{stolen.window_ms:.1f} ms"} if stolen else {}),
        "lost at failover, no WAIT": f"{plain.lost} of {plain.acknowledged} acknowledged",
        "lost at failover, WAIT 1": f"{waited.lost} of {waited.acknowledged} acknowledged",
        "write, no WAIT (median ms)": round(plain.write_ms, 3),
        "write, WAIT 1 (median ms)": round(waited.write_ms, 2),
        **{f"cart write, {r.setting} (median µs)": round(r.write_us) for r in restarts.values()},
        **{f"survived restart, {r.setting}": f"{r.sessions_kept}/{r.sessions} sessions, {r.lines_kept}/{r.lines} "
           f"cart lines" for r in restarts.values()},
        "logged out by one shard's failure": f"{len(shards.logged_out)} of {sum(map(len, shards.users.values()))}",
    }
    reading = (f"with the replicas {lag.delay_ms:g} ms away, a logout on the primary still let a stolen session "
               f"through a replica for {lag.window_ms:.1f} ms (median of {lag.trials}), a revoked token for "
               f"{lag.deny_window_ms:.1f} ms; {lag.carts_missed} of {lag.trials} cart lines were not on the replica "
               f"when read at once.{_stolen_words(stolen)} When the primary failed, {plain.lost} of "
               f"{plain.acknowledged} acknowledged writes "
               f"were gone without WAIT, {waited.lost} of {waited.acknowledged} with WAIT 1, which took "
               f"{waited.write_ms:.1f} ms a write instead of {plain.write_ms:.2f} ms. After a crash and restart, "
               f"sessions kept: {kept}. One shard of {len(shards.users)} failing logged out "
               f"{len(shards.logged_out)} of {sum(map(len, shards.users.values()))} users.")
    claims = {
        "5b": Judgement(CLAIMS["5b"].supports, CLAIMS["5b"].qualifies, corrected=(
            f"When the server that fails is the store's primary, an asynchronous failover lost {plain.lost} "
            f"acknowledged writes; WAIT on every write lost {waited.lost}, at {ratio:.0f}x the write time, and a "
            f"failed shard logged out {len(shards.logged_out)} users. User state survives a failure only as "
            f"far as the store's replication and persistence settings say.")),
        "4d": Judgement(CLAIMS["4d"].supports, CLAIMS["4d"].qualifies, corrected=(
            f"A logout is central on the primary only: reads from a replica let the session in for "
            f"{lag.window_ms:.1f} ms more.")),
    }
    return record(Evidence(  # kept like every row's run: the journal, and the prose test, read it back
        ROW, measurements, checks, claims, reading, seconds,
        extra={"lag": lag, "failovers": failovers, "restarts": restarts, "shards": shards},
        conditions=conditions(
            designs=["session + shared store on Valkey: a primary and 2 asynchronous replicas",
                     "the same with WAIT 1 after every write", "4 persistence settings", "2 shards"],
            distance=f"{lag.delay_ms:g} ms one way between the primary and each replica (a Link); the client "
                     f"reaches each server over a Unix socket",
            servers="Valkey server processes of this notebook; the shop's stores are the client, in the notebook",
            crowd="one client writing as fast as it can",
            crash="the primary's machine fails (process killed, bytes on the wire lost); a restart follows a "
                  "SIGKILL of the process, not a power cut")))


def _stolen_words(stolen: Stolen | None) -> str:
    if stolen is None:
        return ""
    return (f" Over HTTP, a shop server reading sessions from the replica answered a stolen cookie "
            f"{stolen.after.count(200)} more time(s) after the logout, for {stolen.window_ms:.1f} ms.")


def run(delay: float = DELAY, trials: int = 5, seconds: float = 0.3, writes: int = 40) -> Evidence:
    """Every measurement of notebook 14, judged."""
    start = time.perf_counter()
    group = ReplicaSet(2, delay, name="lag")
    try:
        lag = measure_lag(group, trials)
        stolen = measure_stolen_session(group)
        plain = measure_failover(False, seconds, delay, group=group)
    finally:
        group.stop()
    waited = measure_failover(True, seconds, delay)
    restarts = measure_persistence(writes)
    shards = measure_sharding()
    return judge(lag, {False: plain, True: waited}, restarts, shards, time.perf_counter() - start, stolen)


def restarts_table(restarts: dict[str, Restart]) -> str:
    """What survived each restart, and what each cart write cost, as a Markdown table."""
    rows = ["| persistence | sessions kept | cart lines kept | one cart write (median) |", "|---|---|---|---|"]
    for r in restarts.values():
        rows.append(f"| {r.setting} | {r.sessions_kept} of {r.sessions} | {r.lines_kept} of {r.lines} | "
                    f"{r.write_us:.0f} µs |")
    return "\n".join(rows)


def failover_table(failovers: dict[bool, Failover]) -> str:
    rows = ["| writes | acknowledged | refused | lost after failover | one write (median) | promoted |",
            "|---|---|---|---|---|---|"]
    for f in failovers.values():
        rows.append(f"| {'WAIT 1 after each' if f.wait else 'no WAIT'} | {f.acknowledged} | {f.refused} | "
                    f"**{f.lost}** | {f.write_ms:.2f} ms | {f.promoted} |")
    return "\n".join(rows)


def revisited(ev: Evidence) -> str:
    """04's fault tolerance, 08's logout and 09's lost updates, re-judged against the replicated store."""
    m = ev.measurements
    return "\n".join([
        "| notebook | what it found with one store | against a replicated store (measured now) |",
        "|---|---|---|",
        f"| 04 fault tolerance | a server's crash loses no cart: the state is in the store | the store's own "
        f"failover lost {m['lost at failover, no WAIT']} writes; with WAIT: {m['lost at failover, WAIT 1']} |",
        f"| 08 logout | deleting the session logs out everywhere at once | a replica let the session in for "
        f"{m['replica lag window, logout (median ms)']} ms more |",
        f"| 09 lost updates | a store transaction never loses an update | an acknowledged update can vanish at "
        f"failover unless the write waits for a replica ({m['lost at failover, no WAIT']} lost) |",
    ])
