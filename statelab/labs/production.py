"""Lab 06 · Many workers, one shop: checkers on real processes (gunicorn workers, a Valkey/Redis server).

The learner measures how many requests find their login on a multi-worker deployment
(``found_share``), writes the shared configuration that makes every worker find every login
(``shared_config(redis_url)``, environment variables as a deployment gives them), and writes a
session store on Redis (``RedisSessionStore``). Each checker starts its own processes on 127.0.0.1
and stops them.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from ..client import Client
from ..production import experiment
from ..production.gunicorn import Gunicorn
from ..production.process import BinaryMissing
from ..production.redis import RedisServer
from ..topology.cluster import Cluster
from .crash import STORE_METHODS, restarts_idle_timer
from .report import LearnerError, Report, blame, call, checker, describe

MODES = ("stateful", "stateless", "cookie")
LIMIT = 5.0
WATCH_STUCK = ("does your transaction function retry for ever? redis-py calls it again each time the watched key "
               "changed before EXEC; reads made before pipe.multi() run at once, and after it they are only queued")


def get_then_set(url: str, threads: int = 4, updates: int = 25) -> tuple[int, int]:
    """Add 1 to one session ``threads x updates`` times, as Flask-Session saves a session: (made, kept).

    Flask-Session 0.8's Redis interface reads the whole session with one ``GET`` when a request starts
    (``_retrieve_session_data``) and writes it back whole with a plain ``SET`` when the request ends
    (``_upsert_session``), with no ``WATCH``: two requests of one user at once each write what they read,
    and the later ``SET`` erases the earlier one's change. This is that pattern, on the same server.
    """
    import json

    import redis as redis_client

    key = f"lab06:flask-session-pattern:{secrets.token_hex(8)}"
    clients = [redis_client.Redis.from_url(url, decode_responses=True) for _ in range(threads)]
    clients[0].set(key, json.dumps({"n": 0}), ex=60)

    def request_cycle(r: Any) -> None:
        for _ in range(updates):
            session = json.loads(r.get(key))        # the request starts: open_session
            session["n"] += 1                       # the view changes the session
            r.set(key, json.dumps(session), ex=60)  # the request ends: save_session

    workers = [threading.Thread(target=request_cycle, args=(r,), name="statelab-lab06-naive", daemon=True)
               for r in clients]
    for t in workers:
        t.start()
    for t in workers:
        t.join(20)
    kept = json.loads(clients[0].get(key))["n"]
    clients[0].delete(key)
    for r in clients:
        r.close()
    return threads * updates, kept


def _redis() -> RedisServer:
    try:
        return RedisServer("lab06-redis")
    except BinaryMissing as e:
        raise LearnerError(f"this machine cannot run the check: {e}") from None


def _gunicorn(*args: Any, **kwargs: Any) -> Gunicorn:
    try:
        return Gunicorn(*args, **kwargs)
    except BinaryMissing as e:
        raise LearnerError(f"this machine cannot run the check: {e}") from None


# --------------------------------------------------------------------------- task 1

@checker("Task 1 · measure who finds their login on two workers")
def check_found_share(report: Report, found_share: Any) -> None:
    """The learner's measurement against per-worker memory sessions, and against one shared store."""
    redis = _redis()
    servers = {"memory": _gunicorn(2, "stateful", store="memory", wait=False),
               "redis": _gunicorn(2, "stateful", store=redis, wait=False)}
    try:
        for server in servers.values():
            server.wait()
        url = servers["memory"].url
        mine = call(f"found_share('{url}')", found_share, url, limit=30)
        report.require("found_share(url) returns a share", isinstance(mine, float) and 0 <= mine <= 1,
                       "a float from 0 to 1", f"found_share(url) returned {mine!r}"[:100])
        ours = experiment.found_share(url).share
        report.expect("sessions in each worker's memory: about 1 request in 2 finds its login", 0.1 <= mine <= 0.9,
                      f"between 10% and 90% (the check's own measurement: {ours:.0%})", f"{mine:.0%}")
        shared = call("found_share(<the deployment with Redis>)", found_share, servers["redis"].url, limit=30)
        report.expect("sessions in one Redis: every request finds its login", shared == 1.0, "100%",
                      f"{shared:.0%}" if isinstance(shared, float) else repr(shared)[:80])
        report.note(f"2 workers, memory sessions: you measured {mine:.0%}, the check {ours:.0%}")
    finally:
        for server in servers.values():
            server.stop()
        redis.stop()


# --------------------------------------------------------------------------- task 2

def _valid_config(report: Report, env: Any) -> None:
    ok = isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
    report.require("shared_config(redis_url) returns environment variables", ok,
                   "a dict of str to str, e.g. {'STATELAB_SECRET': ...}",
                   f"variables {sorted(env)}" if ok else f"shared_config(redis_url) returned {env!r}"[:120])
    others = [k for k in env if not k.startswith("STATELAB_")]
    report.require("sets only STATELAB_* variables", not others, "STATELAB_SECRET, STATELAB_STORE, ...",
                   f"others: {others}" if others else "none other")
    secret = env.get("STATELAB_SECRET", "")
    try:
        size = len(bytes.fromhex(secret))
    except ValueError:
        size = -1
    report.require("STATELAB_SECRET is one random key of 32 bytes or more, in hex",
                   size >= 32 and len(set(secret)) > 4, "64+ hex digits, e.g. secrets.token_hex(32)",
                   "not set" if not secret else ("not hex" if size < 0 else f"{size} bytes"))


@checker("Task 2 · one configuration for every worker")
def check_shared_config(report: Report, shared_config: Any) -> None:
    """Start two workers with the learner's environment: every login found, in all three modes, and after crashes."""
    redis = _redis()
    server = None
    try:
        env = call("shared_config(redis_url)", shared_config, redis.url)
        _valid_config(report, env)
        with blame("the workers, started with your configuration"):
            try:
                server = _gunicorn(2, MODES, store="memory", key="per-worker", env=env)
            except (TimeoutError, RuntimeError) as e:
                raise LearnerError(f"the workers did not start with this configuration: {str(e)[-200:]}") from None
        for mode in MODES:
            share = experiment.found_share(server.url_for(mode), users=6, requests=6)
            report.expect(f"{mode}: every request finds its login", share.share == 1.0,
                          "100% (one key and one store for every worker)",
                          f"{share.share:.0%} ({dict(share.statuses)})")
        clients = [Client(server.url_for("stateful")) for _ in range(4)]
        for i, c in enumerate(clients):
            c.login(f"before{i}")
        server.kill_workers()  # every worker crashes; the master forks new ones with empty memory
        after = [c.cart() for c in clients for _ in range(3)]
        found = sum(e.status == 200 for e in after)
        report.expect("logins made before every worker crashed still work", found == len(after),
                      f"{len(after)} of {len(after)}", f"{found} of {len(after)}")
        for c in clients:
            c.close()
    finally:
        if server is not None:
            server.stop()
        redis.stop()


# --------------------------------------------------------------------------- task 3

@checker("Task 3 · a session store on Redis")
def check_redis_store(report: Report, RedisSessionStore: Any) -> None:  # noqa: N803  (the learner's class)
    """The store's contract across two client objects (two processes would hold two), races, expiry, a cluster."""
    redis = _redis()
    try:
        a = call("RedisSessionStore(url)", RedisSessionStore, redis.url)
        b = call("RedisSessionStore(url)", RedisSessionStore, redis.url)
        report.require("is a session store", all(callable(getattr(a, m, None)) for m in STORE_METHODS),
                       "an object with create/get/update/delete/count/clear", f"{a!r}"[:100])
        sid = call("store.create(...)", a.create, {"user": "alice", "cart": []}, 60, limit=LIMIT)
        report.require("create() returns a session id", isinstance(sid, str) and len(sid) >= 22,
                       "a random string of 22+ characters", repr(sid)[:60])
        seen = call("other_store.get(sid)", b.get, sid, limit=LIMIT)
        report.expect("a second store object (another worker) reads it", seen == {"user": "alice", "cart": []},
                      "{'user': 'alice', 'cart': []}", seen)
        unknown = call("store.get('nope...')", a.get, "nope" * 8, limit=LIMIT)
        report.expect("an unknown id is None", unknown is None, "None", repr(unknown)[:60])
        counter = call("store.create(...)", a.create, {"n": 0}, 60, limit=LIMIT)
        returned = call("store.update(sid, change)", a.update, counter, lambda d: {**d, "n": d["n"] + 1},
                        limit=LIMIT, stuck=WATCH_STUCK)
        report.require("update() returns the new data", returned == {"n": 1},
                       "{'n': 1}, what change(data) returned",
                       f"update() returned {returned!r}"[:120] + (" (redis-py's transaction() returns the pipeline's "
                       "results unless value_from_callable=True)" if isinstance(returned, list) else ""))
        errors: list[BaseException] = []

        def bump(store: Any) -> None:
            try:
                for _ in range(25):
                    store.update(counter, lambda d: {**d, "n": d["n"] + 1})
            except Exception as error:  # reported below, not printed by the thread
                errors.append(error)

        threads = [threading.Thread(target=bump, args=(s,), name="statelab-lab06-bump", daemon=True)
                   for s in (a, b, a, b)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if errors:
            raise LearnerError(describe("store.update(sid, change), in one of 4 threads", errors[0]))
        if any(t.is_alive() for t in threads):
            raise LearnerError(f"store.update(sid, change) did not return within 20 s in one of 4 threads: "
                               f"{WATCH_STUCK}")
        got = call("store.get(sid)", a.get, counter, limit=LIMIT)
        n = got.get("n") if isinstance(got, dict) else f"get() returned {got!r}"[:80]
        report.expect("update() is atomic across store objects: 4 threads x 25 updates", n == 101, "n = 101 (1 + 100)",
                      n if isinstance(n, str) else f"n = {n}")
        made, kept = get_then_set(redis.url)
        report.note(f"the same 100 updates made the way Flask-Session saves a session (a GET of the whole session "
                    f"when the request starts, a plain SET of the whole session when it ends) kept {kept} of {made}: "
                    "the naive read-modify-write")
        kept_alive, ttl = restarts_idle_timer(a)
        report.expect("get() restarts the idle timer (a session in use does not expire)", kept_alive,
                      f"the session still there {1.2 * ttl:.1f} s after create(), read at {0.6 * ttl:.1f} s "
                      f"(ttl {ttl:g} s)", "still there" if kept_alive else
                      "None: get() left the expiry where create() put it")
        short = call("store.create(data, 0.3)", a.create, {"user": "bob"}, 0.3, limit=LIMIT)
        time.sleep(0.5)
        expired = call("store.get(sid)", a.get, short, limit=LIMIT)
        report.expect("an idle session expires after its ttl", expired is None, "None after 0.5 s (ttl 0.3 s)",
                      repr(expired)[:60])
        deleted = call("store.delete(sid)", a.delete, sid, limit=LIMIT)
        gone = call("other_store.get(sid)", b.get, sid, limit=LIMIT)
        report.expect("delete() removes it for every store object", deleted is True and gone is None,
                      "True, then None", f"{deleted!r}, then {gone!r}"[:80])
        with blame("your store"), Cluster(3, "stateful", store=a, balancer="round_robin") as cluster:
            clients = []
            for i in range(4):
                c = Client(cluster.url)
                c.login(f"shopper{i}")
                c.add_to_cart("book")
                clients.append(c)
            cluster.kill(1)
            ok = sum(c.cart().ok for c in clients)
        report.expect("three servers share it; one crashes; every cart is still there", ok == 4, "4 of 4", ok)
    finally:
        redis.stop()
