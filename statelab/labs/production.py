"""Lab 06 · Many workers, one shop: checkers on real processes (gunicorn workers, a Valkey/Redis server).

The learner measures how many requests find their login on a multi-worker deployment
(``found_share``), writes the shared configuration that makes every worker find every login
(``shared_config(redis_url)``, environment variables as a deployment gives them), and writes a
session store on Redis (``RedisSessionStore``). Each checker starts its own processes on 127.0.0.1
and stops them.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..client import Client, shoppers
from ..production import experiment
from ..production.gunicorn import Gunicorn
from ..production.process import BinaryMissing
from ..production.redis import RedisServer
from ..topology.cluster import Cluster
from .crash import STORE_METHODS
from .report import LearnerError, Report, blame, call, checker

MODES = ("stateful", "stateless", "cookie")
LIMIT = 5.0


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
        report.require("returns a share", isinstance(mine, float) and 0 <= mine <= 1, "a float from 0 to 1",
                       repr(mine)[:80])
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
    report.require("returns environment variables", ok, "a dict of str to str, e.g. {'STATELAB_SECRET': ...}",
                   f"variables {sorted(env)}" if ok else repr(env)[:100])
    others = [k for k in env if not k.startswith("STATELAB_")]
    report.require("sets only STATELAB_* variables", not others, "STATELAB_SECRET, STATELAB_STORE, ...", others)
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

        def bump(store: Any) -> None:
            for _ in range(25):
                store.update(counter, lambda d: {**d, "n": d["n"] + 1})

        with blame("store.update(sid, change)"):
            threads = [threading.Thread(target=bump, args=(s,)) for s in (a, b, a, b)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
        n = (call("store.get(sid)", a.get, counter, limit=LIMIT) or {}).get("n")
        report.expect("update() is atomic across store objects: 4 threads x 25 updates", n == 100, "n = 100", n)
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
            clients = shoppers(cluster.url, 4, "shopper")
            cluster.kill(1)
            ok = sum(c.cart().ok for c in clients)
        report.expect("three servers share it; one crashes; every cart is still there", ok == 4, "4 of 4", ok)
    finally:
        redis.stop()
