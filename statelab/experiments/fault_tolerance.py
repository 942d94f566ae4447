"""Row "Fault Tolerance": crash one of three servers while users shop, then take the shared store down.

The source text says: stateful, "Failure in one server affects sessions stored on others"; stateless,
"Failures are isolated, impacting only individual requests". It also credits stateless designs
with fault tolerance (benefit 5b) and stateful ones with session persistence (benefit 4a).

The four designs of :data:`statelab.experiments.DESIGNS` face the same crash of ``server-1``
while a crowd shops: every user reads the cart, adds a pen (a plain ``POST``) and adds ink (a
``POST`` with an ``Idempotency-Key``), in turn. Each write takes a few milliseconds after its
change is made (:func:`~statelab.shop.plugins.slow_writes`, the time a real write spends
committing and answering), and the crash comes at an instant when ``server-1`` is working on
unkeyed writes, as a loaded server always is. We count:

* who lost the cart, grouped by the server that answered the login (where an in-memory session lives);
* which requests failed: the balancer re-sends a read or a keyed write cut by the crash to another
  server (RFC 9110 9.2.2: only requests whose repeat is safe may be re-sent), and answers 502 to a
  plain write, which the dead server may have acted on;
* whether those failed writes had in fact been acted on, and whether a keyed write ever landed twice.

Then the shared part of two designs fails instead of a server (:class:`~statelab.shop.sessions.OutageStore`):
the shared session store, and the shared cart table. And a user logs in on a second device: does
the cart follow?
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from ..client import Client, Exchange
from ..network import Link
from ..production.redis import HOW_TO_GET
from ..service import cleanup
from ..shop.carts import SqliteCartStore
from ..shop.plugins import IdempotencyKeys, InFlight, idempotent_writes, slow_writes, store_errors_as_503
from ..shop.sessions import OutageStore, SqliteStore
from ..topology.cluster import Cluster, valkey_available
from . import DESIGNS, Evidence, Judgement, check_size, checks, conditions, judged, progress, record
from .crowd import OPS, Shopper, by_home, cart_of, close, landed, log_in, lost_carts, shop_while, when_writing

ROW = "fault_tolerance"
CRASHED = 1  # server-1 crashes
WORK = 0.04  # seconds each cart write spends after its change (see slow_writes)
SHARED = ("session + shared store", "token + cart in db")  # the designs with a shared store to take down
TOKEN_DESIGNS = ("token + cart in token", "token + cart in db")

HANG_TIMEOUT = 0.5  # seconds the balancer waits for a server's answer before giving up (short: the run stays quick)

CHECKS = checks("""
mem_lost_crashed, mechanism: session + memory: the crash lost every cart whose session was on the crashed server
mem_lost_others: session + memory: the crash reached sessions stored on other servers
store_kept, mechanism: session + shared store: no user lost the cart in the crash
token_kept, mechanism: token designs: no user lost the cart in the crash
unkeyed_failed, mechanism: in every design some unkeyed writes in flight on the crashed server failed (502)
unkeyed_only, mechanism: only unkeyed writes failed in the crash: no read and no keyed write (this balancer re-sent
    those)
individual <= 0: failures stayed individual: failed plain writes beyond the writes in flight at the crash and the
    threads shopping, at most {t}
acted_on: with a shared store, failed unkeyed writes had been acted on (a blind re-send would add twice)
keyed_once, mechanism: no keyed write was applied twice or lost
store_outage, mechanism: shared session store outage: every user affected, on every server
table_outage, mechanism: shared cart table outage: every token + cart in db user affected
token_no_outage, mechanism: token + cart in token: no user noticed the outages
outage_kept, mechanism: after the outages every cart was back (unavailable, not lost)
hang_waited > HANG_TIMEOUT s, mechanism: a hung server: every request routed to it waited the balancer's timeout ({t}
    s) and failed (502), reads included
kill_instant, mechanism: a killed server: the balancer re-sent every read at once, none failed
store_hang_waited: a hung store: every user of both shared-store designs waited the store client's timeout and got 503
store_restart_lost: a store restarted without persistence came back empty: every session user logged out, every cart
    in the db gone
steps, mechanism: a session kept the cart across steps
token_steps, mechanism: token designs kept the cart across steps too
second_device, mechanism: a second device saw the cart only when it lived in the db
""", HANG_TIMEOUT=HANG_TIMEOUT)


def _cluster(design: str, store: Any, carts: Any, plugins: list[Any]) -> Cluster:
    """Three servers of ``design``; the memory design routes sticky (its sessions live on one server)."""
    options = dict(DESIGNS[design])
    if design == "session + memory":
        options["balancer"] = "sticky"
    if design == "session + shared store":
        options["store"] = store
    if design == "token + cart in db":
        options["carts"] = carts
    return Cluster(3, plugins=plugins, **options)


def _crash(cluster: Cluster, crowd: list[Shopper], in_flight: InFlight, workers: int) -> dict[str, Any]:
    """Crash ``server-1`` while ``crowd`` shops, at an instant when it is working on unkeyed writes."""
    met: list[int] = []

    def crash() -> None:
        met.append(when_writing(in_flight, f"server-{CRASHED}"))
        cluster.kill(CRASHED)

    traffic = shop_while(crowd, crash, workers=workers)
    lost = lost_carts(crowd)
    writes = landed(crowd)
    return {"requests": traffic.requests,
            "failed": {op: traffic.count("failed", op=op) for op in OPS},
            "logged out": traffic.count("logged out"),
            "writes in flight at the crash": met[0],
            "lost": len(lost), "by_home": by_home(crowd, lost),
            "failed writes acted on": writes.extra["write"],
            "keyed writes doubled or missing": writes.extra["keyed write"] + writes.missing["keyed write"],
            "failures": traffic.failures}


def write_through_crash(cluster: Cluster, client: Client, in_flight: InFlight, *, item: str = "pen",
                        key: str | None = None) -> Exchange:
    """Send one ``POST /cart`` and crash the server working on it before it answers; what the client got.

    The cluster must run :func:`~statelab.shop.plugins.slow_writes` (so the write is still in
    flight when the crash comes) and ``in_flight``. With ``key`` the write carries that
    ``Idempotency-Key``. The crashed server is restarted before this returns.
    """
    kind = "keyed write" if key else "write"
    names = [s.name for s in cluster.servers]
    answers: list[Exchange] = []
    headers = {"Idempotency-Key": key} if key else None
    writer = threading.Thread(target=lambda: answers.append(client.post("/cart", {"item": item, "qty": 1},
                                                                        headers=headers)))
    writer.start()
    try:
        if not in_flight.wait(lambda: any(in_flight.now(n, kind) for n in names), 5):
            raise RuntimeError("the write never reached a server: does the cluster run slow_writes and in_flight?")
        victim = next(n for n in names if in_flight.now(n, kind))
        cluster.kill(victim)
    finally:
        writer.join(timeout=30)
    cluster.restart(victim)
    return answers[0]


def _second_device(url: str, user: str) -> dict[str, bool]:
    """``user`` adds a book and keeps using the cart (steps), then logs in on a second device."""
    first, second = Client(url), Client(url)
    try:
        first.login(user)
        first.add_to_cart("book")
        steps = [cart_of(first)[0] or {} for _ in range(3)]
        second.login(user)
        return {"steps": all(c.get("book", 0) == 1 for c in steps),
                "second device": (cart_of(second)[0] or {}).get("book", 0) == 1}
    finally:
        first.close()
        second.close()


def _outage(crowd: list[Shopper]) -> tuple[int, set[str]]:
    """(users whose ``GET /cart`` did not answer their cart, servers that answered with an error)."""
    bad, servers = 0, set()
    for shopper in crowd:
        cart, ex = cart_of(shopper)
        if cart is None or cart.get("book", 0) == 0:
            bad += 1
            if ex.served_by:
                servers.add(ex.served_by)
    return bad, servers



def link_in_front(cluster: Cluster, which: int) -> Link:
    """Put a :class:`~statelab.network.Link` between the balancer and ``cluster.servers[which]``; return it.

    The balancer then reaches that server through the link, so ``link.hang()`` makes the server look
    hung (it accepts connections and answers nothing: a deadlock, a full disk, a long pause, a
    partition) and ``link.cut()`` makes it fail fast. :func:`route_directly` routes to the server without
    the link again; ``link.stop()`` closes the link (it also stops with the kernel).
    """
    server = cluster.servers[which]
    parts = urlsplit(server.url)
    link = Link((parts.hostname or "127.0.0.1", parts.port or 80), name=f"to-{server.name}")
    host, port = link.address
    cluster.balancer.follow(SimpleNamespace(name=server.name, url=f"http://{host}:{port}"))
    return link


def route_directly(cluster: Cluster, which: int) -> None:
    """Undo :func:`link_in_front`: the balancer reaches ``cluster.servers[which]`` at its own address again."""
    server = cluster.servers[which]
    cluster.balancer.follow(server)
    cluster.balancer.mark_up(server.name)


def timed_reads(crowd: list[Shopper]) -> list[tuple[int | None, float]]:
    """Every user of ``crowd`` reads the cart once, all at the same time: ``(status, seconds)`` per user."""
    def one(shopper: Shopper) -> tuple[int | None, float]:
        began = time.perf_counter()
        ex = shopper.client.cart()
        return ex.status, time.perf_counter() - began

    with ThreadPoolExecutor(max_workers=max(1, len(crowd)), thread_name_prefix="statelab-reads") as pool:
        return list(pool.map(one, crowd))


def _kill_then_hang(cluster: Cluster, crowd: list[Shopper]) -> dict[str, Any]:
    """``server-1`` killed, then hung (behind a link), while every user reads the cart: what each read met."""
    name = f"server-{CRASHED}"
    own = cluster.balancer.timeout
    cluster.balancer.timeout = HANG_TIMEOUT
    try:
        cluster.kill(CRASHED)
        killed = timed_reads(crowd)
        cluster.restart(CRASHED)
        link = link_in_front(cluster, CRASHED)
        try:
            cluster.balancer.reset_counts()
            link.hang()
            hung = timed_reads(crowd)
            routed = cluster.balancer.counts.get(name, 0)
        finally:
            route_directly(cluster, CRASHED)
            link.stop()
    finally:
        cluster.balancer.timeout = own
    return {"killed": killed, "hung": hung, "routed to the hung server": routed}


def _valkey_setup(stack: contextlib.ExitStack, n: int) -> dict[str, Any]:
    """Both shared-store designs with their data in a real Valkey behind a link (no delay), ``n`` users each.

    Each cluster has its own Valkey, as ``Cluster(..., store="valkey", distance=0)`` builds it (the link
    listens where only this user can reach it); ``stack`` stops them. Returns ``{"missing": why}`` when no
    Valkey (or Redis) server is on this machine.
    """
    if not valkey_available():
        return {"missing": HOW_TO_GET}
    clusters = {"session + shared store": Cluster(3, "stateful", store="valkey", distance=0.0),
                "token + cart in db": Cluster(3, "stateless", cart="db", distance=0.0)}
    for cluster in clusters.values():
        stack.enter_context(cluster)
    crowds = {d: log_in(c.url, n, prefix="valkey-user", group=d) for d, c in clusters.items()}
    for crowd in crowds.values():
        stack.callback(close, crowd)
    sessions, carts = clusters["session + shared store"], clusters["token + cart in db"]
    return {"clusters": clusters, "crowds": crowds, "n": n, "links": [sessions.link("sessions"), carts.link("carts")],
            "stores": [sessions.store, carts.carts]}


def _valkey_faults(setup: dict[str, Any]) -> dict[str, Any]:
    """The links in front of Valkey hang (then heal); then each Valkey is killed and restarts empty. Who lost what."""
    if "missing" in setup:
        return setup
    clusters, crowds, n = setup["clusters"], setup["crowds"], setup["n"]
    for link in setup["links"]:
        link.hang()
    try:
        hung = timed_reads([s for crowd in crowds.values() for s in crowd])
    finally:
        for link in setup["links"]:
            link.heal()
    back = {d: n - len(lost_carts(crowd)) for d, crowd in crowds.items()}
    for cluster in clusters.values():
        cluster.valkey.kill()
        cluster.valkey.restart()  # the same address, empty: nothing was persisted
    for store in setup["stores"]:
        store.redis.connection_pool.disconnect()  # connections to the old process are dead
    after = {d: {"logged out": sum(s.client.me().status == 401 for s in crowd), "cart gone": len(lost_carts(crowd))}
             for d, crowd in crowds.items()}
    timeout = setup["stores"][0].redis.connection_pool.connection_kwargs.get("socket_timeout") or 0.0
    return {"hung": hung, "timeout": timeout, "back after the hang": back, "after the restart": after,
            "server": Path(clusters["session + shared store"].valkey.binary).name}


CHOICES = ["session + memory users whose session was on server-1", "session + memory users on every server",
           "the users of both session designs", "nobody: the balancer sends them to another server"]

WHY = ("a process's memory dies with it, and nothing else's: the other servers keep their sessions, and a shared "
       "store or a token holds the cart outside every server.")


def answer(ev: Evidence) -> str:
    """Which of :data:`CHOICES` (the prediction's answers: whose carts a crash takes) this run measured."""
    lost = {design: [server for server, (_, k) in table.items() if k] for design, table in ev.extra["by_home"].items()}
    losers = tuple(design for design, servers in lost.items() if servers)
    if losers == ("session + memory",):
        return CHOICES[0] if lost["session + memory"] == [ev.extra["crashed"]] else CHOICES[1]
    if not losers:
        return CHOICES[3]
    if losers == ("session + memory", "session + shared store"):
        return CHOICES[2]
    return "carts lost in " + ", ".join(losers)


def run(*, quick: bool = False, users: int | None = None, workers: int = 6) -> Evidence:
    """Crash one of three servers under each of the four designs; kill and hang a server; take the stores down.

    ``users`` shoppers per design (default 12, quick 6), kept busy by ``workers`` threads.
    Counts, not timings, decide: who lost the cart and where their session was, which requests
    failed and of what kind, whether failed writes had been acted on, who noticed the store outages,
    who waited a timeout when a server or the store hung, and who lost what when Valkey restarted
    without persistence. Timeouts are short (:data:`HANG_TIMEOUT`) so the run stays quick.
    """
    n = users if users is not None else (6 if quick else 12)
    check_size("users", n, 3, 600)
    check_size("workers", workers, 1, 32)
    began = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    devices: dict[str, dict[str, bool]] = {}
    outage: dict[str, tuple[int, set[str]]] = {}
    back: dict[str, int] = {}
    hangs: dict[str, dict[str, Any]] = {}
    valkey: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(cleanup.folder("statelab-ft-"))
        store = OutageStore(SqliteStore(Path(tmp) / "sessions.sqlite3"))
        stack.callback(store.close)
        carts = OutageStore(SqliteCartStore(Path(tmp) / "carts.sqlite3"))
        stack.callback(carts.close)
        clusters: dict[str, Cluster] = {}
        crowds: dict[str, list[Shopper]] = {}
        watch: dict[str, InFlight] = {}

        def crash(design: str) -> None:  # the designs do not interact: they crash side by side
            results[design] = _crash(clusters[design], crowds[design], watch[design], workers)
            devices[design] = _second_device(clusters[design].url, "dana")

        def hang(design: str) -> None:
            hangs[design] = _kill_then_hang(clusters[design], crowds[design])

        steps = ["start and log in", "crash server-1", "store outages", "kill, then hang server-1",
                 "Valkey hangs, then restarts empty"]
        background = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="statelab-valkey"))
        for step in progress(steps, "crash, outages, hangs"):
            if step == "start and log in":
                for design in DESIGNS:
                    watch[design] = InFlight()
                    plugins = [slow_writes(WORK), watch[design], idempotent_writes(IdempotencyKeys()),
                               store_errors_as_503]
                    clusters[design] = stack.enter_context(_cluster(design, store, carts, plugins))
                    crowds[design] = log_in(clusters[design].url, n, prefix="user", group=design)
                    stack.callback(close, crowds[design])
                # the Valkey part shares nothing with the rest: it runs beside it, mostly waiting on a hung link
                valkey_run = background.submit(_valkey_faults, _valkey_setup(stack, n))
            elif step == "crash server-1":
                _side_by_side(crash, DESIGNS)
            elif step == "store outages":
                for design in SHARED:
                    clusters[design].restart(CRASHED)  # every server up again: the shared store is what fails now
                with store.outage(), carts.outage():  # session + memory has no shared store to take down
                    for design in ("token + cart in token", *SHARED):
                        outage[design] = _outage(crowds[design])
                for design in SHARED:
                    back[design] = n - len(lost_carts(crowds[design]))
            elif step == "kill, then hang server-1":
                _side_by_side(hang, SHARED)  # the production design of each half, like for like
            else:
                valkey = valkey_run.result()
    return record(_evidence(results, devices, outage, back, hangs, valkey, n, workers, time.perf_counter() - began))


def _side_by_side(call: Any, designs: Any) -> None:
    """``call(design)`` for every design at once (each mostly waits on its servers); re-raise the first error."""
    with ThreadPoolExecutor(max_workers=len(designs), thread_name_prefix="statelab-crash") as pool:
        for future in [pool.submit(call, design) for design in designs]:
            future.result()


#: Which checks judge each claim (see :class:`~statelab.experiments.Judgement`); ``_evidence()`` computes those checks
#: and adds to each claim the sentence of what was measured. Both halves meet the same hang and the same store
#: restart: they are run on the production design of each (session + shared store, token + cart in db).
CLAIMS = {
    "stateful": Judgement(supports=(CHECKS.mem_lost_others,), qualifies=(CHECKS.store_outage,
                                                                         CHECKS.store_restart_lost,
                                                                         CHECKS.hang_waited)),
    "stateless": Judgement(supports=(CHECKS.token_kept, CHECKS.unkeyed_only, CHECKS.individual),
                           qualifies=(CHECKS.table_outage, CHECKS.store_kept, CHECKS.store_restart_lost,
                                      CHECKS.hang_waited)),
    "5b": Judgement(supports=(CHECKS.token_kept,), qualifies=(CHECKS.store_kept, CHECKS.table_outage,
                                                              CHECKS.store_restart_lost)),
    "4a": Judgement(supports=(CHECKS.steps,), qualifies=(CHECKS.second_device, CHECKS.token_steps,
                                                         CHECKS.mem_lost_crashed)),
}


def _waits(reads: list[tuple[int | None, float]]) -> dict[str, Any]:
    """A round of reads in numbers: how many failed, the shortest wait of a failure, the longest wait of all."""
    failed = [s for status, s in reads if status is None or status >= 500]
    return {"reads": len(reads), "failed": len(failed), "failed_min_s": min(failed, default=0.0),
            "slowest_s": max((s for _, s in reads), default=0.0),
            "ok_slowest_s": max((s for status, s in reads if status is not None and status < 500), default=0.0)}


def _evidence(results: dict[str, dict[str, Any]], devices: dict[str, dict[str, bool]],
              outage: dict[str, tuple[int, set[str]]], back: dict[str, int], hangs: dict[str, dict[str, Any]],
              valkey: dict[str, Any], n: int, workers: int, seconds: float) -> Evidence:
    results = {d: results[d] for d in DESIGNS}  # in the order of DESIGNS, whichever crash finished first
    devices = {d: devices[d] for d in DESIGNS}
    hangs = {d: hangs[d] for d in SHARED}
    crashed = f"server-{CRASHED}"
    home = results["session + memory"]["by_home"]
    on_crashed, lost_on_crashed = home.get(crashed, (0, 0))
    on_others = sum(u for h, (u, _) in home.items() if h != crashed)
    lost_on_others = sum(k for h, (_, k) in home.items() if h != crashed)
    failed = {d: r["failed"] for d, r in results.items()}
    met = {d: r["writes in flight at the crash"] for d, r in results.items()}
    lost = {d: r["lost"] for d, r in results.items()}
    acted = {d: r["failed writes acted on"] for d, r in results.items()}
    doubled = {d: r["keyed writes doubled or missing"] for d, r in results.items()}
    all_servers = {f"server-{i}" for i in range(3)}
    token_lost = sum(lost[d] for d in TOKEN_DESIGNS)
    killed = {d: _waits(h["killed"]) for d, h in hangs.items()}
    hung = {d: _waits(h["hung"]) for d, h in hangs.items()}
    routed = {d: h["routed to the hung server"] for d, h in hangs.items()}
    measured_valkey = "missing" not in valkey
    measurements: dict[str, Any] = {
        "users per design": n,
        "crashed server": crashed,
        "session + memory: sessions on the crashed server": on_crashed,
        "session + memory: lost among them": lost_on_crashed,
        "session + memory: sessions on the other servers": on_others,
        "session + memory: lost among those": lost_on_others,
        "users who lost their cart in the crash": lost,
        "unkeyed writes in flight on server-1 at the crash": met,
        "failed unkeyed writes (502)": {d: f["write"] for d, f in failed.items()},
        "failed keyed writes": {d: f["keyed write"] for d, f in failed.items()},
        "failed reads": {d: f["read"] for d, f in failed.items()},
        "failed unkeyed writes that had been acted on": acted,
        "keyed writes applied twice or missing": doubled,
        "requests during the crash window": {d: r["requests"] for d, r in results.items()},
        "store outage: users affected": {d: o[0] for d, o in outage.items()},
        "store outage: servers that answered with an error": {d: sorted(o[1]) for d, o in outage.items()},
        "after the outage: users with their cart back": back,
        "server-1 killed: reads failed": {d: k["failed"] for d, k in killed.items()},
        "server-1 killed: slowest read (ms)": {d: round(1000 * k["slowest_s"], 1) for d, k in killed.items()},
        "server-1 hung: reads routed to it": routed,
        "server-1 hung: reads failed (502)": {d: h["failed"] for d, h in hung.items()},
        "server-1 hung: shortest wait of a failed read (ms)": {d: round(1000 * h["failed_min_s"], 1)
                                                              for d, h in hung.items()},
        "server-1 hung: slowest read that succeeded (ms)": {d: round(1000 * h["ok_slowest_s"], 1)
                                                            for d, h in hung.items()},
        "balancer timeout (s)": HANG_TIMEOUT,
        "cart kept across steps": {d: v["steps"] for d, v in devices.items()},
        "cart seen on a second device": {d: v["second device"] for d, v in devices.items()},
    }
    if measured_valkey:
        vk_hung = _waits(valkey["hung"])
        after = valkey["after the restart"]
        measurements.update({
            "Valkey hung: reads that got 503": sum(status == 503 for status, _ in valkey["hung"]),
            "Valkey hung: reads": vk_hung["reads"],
            "Valkey hung: shortest wait of a failed read (ms)": round(1000 * vk_hung["failed_min_s"], 1),
            "store client timeout (s)": valkey["timeout"],
            "Valkey healed: users with their cart back": valkey["back after the hang"],
            "Valkey restarted without persistence: users logged out": {d: a["logged out"] for d, a in after.items()},
            "Valkey restarted without persistence: carts gone": {d: a["cart gone"] for d, a in after.items()},
        })
    else:
        measurements["Valkey faults"] = f"not measured: {valkey['missing']}"
    sessions = ("session + memory", "session + shared store")
    excess = max(f["write"] - met[d] - workers for d, f in failed.items())
    hang_ok = all(hung[d]["failed"] == routed[d] >= 1 and hung[d]["failed_min_s"] >= HANG_TIMEOUT for d in SHARED)
    outcomes = [
        CHECKS.mem_lost_crashed(ok=on_crashed > 0 and lost_on_crashed == on_crashed,
                                shown=f"{lost_on_crashed} of {on_crashed}"),
        CHECKS.mem_lost_others(ok=lost_on_others > 0, shown=f"{lost_on_others} of {on_others}"),
        CHECKS.store_kept(ok=lost["session + shared store"] == 0,
                          shown=f"{lost['session + shared store']} of {n} lost"),
        CHECKS.token_kept(ok=token_lost == 0, shown=f"{token_lost} of {2 * n} lost"),
        CHECKS.unkeyed_failed(ok=all(f["write"] >= 1 for f in failed.values()),
                              shown=", ".join(f"{d} {f['write']}" for d, f in failed.items())),
        CHECKS.unkeyed_only(ok=all(f["read"] == 0 and f["keyed write"] == 0 for f in failed.values()),
                            shown=f"{sum(f['read'] + f['keyed write'] for f in failed.values())} reads and keyed "
                                  "writes "
                                  "failed"),
        CHECKS.individual(excess, shown=f"{excess} (needs <= 0)" if excess > 0 else "none beyond them (needs <= 0)"),
        CHECKS.acted_on(ok=sum(acted[d] for d in SHARED) >= 1, shown=f"{sum(acted[d] for d in SHARED)} acted on"),
        CHECKS.keyed_once(ok=not any(doubled.values()), shown=f"{sum(doubled.values())} doubled or missing"),
        CHECKS.store_outage(ok=outage["session + shared store"][0] == n
                            and outage["session + shared store"][1] == all_servers,
                            shown=f"{outage['session + shared store'][0]} of {n} users, "
                                  f"{len(outage['session + shared store'][1])} of 3 servers"),
        CHECKS.table_outage(ok=outage["token + cart in db"][0] == n, shown=f"{outage['token + cart in db'][0]} of {n}"),
        CHECKS.token_no_outage(ok=outage["token + cart in token"][0] == 0,
                               shown=f"{outage['token + cart in token'][0]} of {n}"),
        CHECKS.outage_kept(ok=all(b == n for b in back.values()),
                           shown=", ".join(f"{d} {b} of {n}" for d, b in back.items())),
        CHECKS.hang_waited(ok=hang_ok, shown="; ".join(
            f"{d}: {hung[d]['failed']} of {routed[d]} routed to it failed, the quickest after "
            f"{hung[d]['failed_min_s']:.2f} s" for d in SHARED)),
        CHECKS.kill_instant(ok=all(k["failed"] == 0 for k in killed.values()),
                            shown="; ".join(f"{d}: {k['failed']} failed, slowest {1000 * k['slowest_s']:.0f} ms"
                                            for d, k in killed.items())),
        CHECKS.steps(ok=all(devices[d]["steps"] for d in sessions)),
        CHECKS.token_steps(ok=all(devices[d]["steps"] for d in TOKEN_DESIGNS)),
        CHECKS.second_device(ok=devices["token + cart in db"]["second device"]
                             and not any(devices[d]["second device"] for d in DESIGNS if d != "token + cart in db")),
    ]
    if measured_valkey:
        statuses = [status for status, _ in valkey["hung"]]
        vk_ok = all(s == 503 for s in statuses) and vk_hung["failed_min_s"] >= valkey["timeout"] > 0
        lost_all = (after["session + shared store"]["logged out"] == n and after["token + cart in db"]["cart gone"] == n
                    and after["token + cart in db"]["logged out"] == 0
                    and all(b == n for b in valkey["back after the hang"].values()))
        # mechanisms only when measured: a machine without Valkey is not a failed self-check
        outcomes += [
            replace(CHECKS.store_hang_waited, mechanism=True)(
                ok=vk_ok, shown=f"{statuses.count(503)} of {len(statuses)} got 503, the quickest after "
                                f"{vk_hung['failed_min_s']:.2f} s (store client timeout {valkey['timeout']:g} s)"),
            replace(CHECKS.store_restart_lost, mechanism=True)(
                ok=lost_all, shown=f"session users logged out {after['session + shared store']['logged out']} of {n}; "
                                   f"token + cart in db: carts gone {after['token + cart in db']['cart gone']} of "
                                   f"{n}, logged out {after['token + cart in db']['logged out']}"),
        ]
    else:
        outcomes += [CHECKS.store_hang_waited(ok=False, shown="not measured: no Valkey here"),
                     CHECKS.store_restart_lost(ok=False, shown="not measured: no Valkey here")]
    failed_writes = sum(f["write"] for f in failed.values())
    token_failed = sum(failed[d]["write"] for d in TOKEN_DESIGNS)
    per_design = ", ".join(f"{hung[d]['failed']} of {n} reads in {d}" for d in SHARED)
    hang_words = (f"When server-1 hung instead of dying, the requests routed to it waited for the balancer's "
                  f"{HANG_TIMEOUT:g} s timeout and failed, reads included ({per_design}), in both halves alike.")
    if measured_valkey:
        restart_words = (f" A Valkey restarted without persistence came back empty: "
                         f"{after['session + shared store']['logged out']} of {n} session users logged out, and "
                         f"{after['token + cart in db']['cart gone']} of {n} token users still logged in with an "
                         "empty cart.")
    else:
        restart_words = " (A store restart without persistence was not measured: no Valkey here.)"
    claims = judged(CLAIMS, {
        "stateful": (f"A crash loses the sessions stored on the crashed server ({lost_on_crashed} of {on_crashed} "
                     f"here), not those on others ({lost_on_others} of {on_others}); what reaches sessions on "
                     f"every server is the outage of a shared store ({outage['session + shared store'][0]} of {n} "
                     f"users, through {len(outage['session + shared store'][1])} servers).{restart_words} "
                     f"{hang_words}"),
        "stateless": (f"A crash cost only the plain writes in flight on the dying server ({token_failed} in the "
                      f"token designs, {failed_writes} across all four) and no token user a cart; but a shared "
                      f"session store lost no cart either ({lost['session + shared store']}), and a token design "
                      f"whose cart lives in a database shares that database's outages "
                      f"({outage['token + cart in db'][0]} of {n} users).{restart_words} {hang_words}"),
        "5b": (f"No token user lost a cart in the crash ({token_lost}), and neither did a user of the shared session "
               f"store ({lost['session + shared store']}): surviving a crash depends on where the data "
               f"lives, and a shared store is one part whose failure reaches everyone.{restart_words}"),
        "4a": ("A session carries a user across steps, as a token does; it does not carry them to a second "
               "device (a new login is a new, empty session) and dies with its server when kept in memory. "
               "Only a cart kept in a database by user followed the user to the second device."),
    })
    reading = (
        f"When {crashed} crashed with unkeyed writes in flight, {lost_on_crashed} of {on_crashed} users whose "
        f"in-memory session lived on it lost their cart and {lost_on_others} of {on_others} on other servers did; "
        f"the other three designs lost {lost['session + shared store']}, {lost['token + cart in token']} and "
        f"{lost['token + cart in db']}. Failed plain writes per design: "
        + ", ".join(f"{d} {f['write']}" for d, f in failed.items())
        + f"; failed reads and keyed writes: {sum(f['read'] + f['keyed write'] for f in failed.values())}. "
        f"{sum(acted[d] for d in SHARED)} failed writes had been acted on in the shared stores. "
        f"When the shared session store went down {outage['session + shared store'][0]} of {n} users got errors, "
        f"when the cart table went down {outage['token + cart in db'][0]} of {n}; every cart came back. "
        f"With server-1 killed, the slowest read took "
        + ", ".join(f"{1000 * killed[d]['slowest_s']:.0f} ms ({d})" for d in SHARED)
        + f" and {sum(k['failed'] for k in killed.values())} failed; with server-1 hung, reads routed to it "
        "failed after at least "
        + ", ".join(f"{hung[d]['failed_min_s']:.2f} s ({d})" for d in SHARED) + "."
        + (f" While Valkey hung, {measurements['Valkey hung: reads that got 503']} of "
           f"{measurements['Valkey hung: reads']} reads got 503 after at least {vk_hung['failed_min_s']:.2f} s."
           if measured_valkey else "")
        + f"{restart_words} A second device saw the cart in {sum(v['second device'] for v in devices.values())} of "
        f"{len(devices)} designs."
    )
    valkey_words = (f"a real {valkey['server']} process per design for the store hang and restart" if measured_valkey
                    else f"no Valkey: {valkey['missing']}")
    return Evidence(row=ROW, measurements=measurements, checks=outcomes, claims=claims, reading=reading,
                    seconds=seconds,
                    conditions=conditions(
                        designs=list(DESIGNS),
                        distance="none: every part on one machine; a Link with no delay in front of server-1 for "
                                 "the hang, and in front of each Valkey",
                        crowd=f"{n} users per design, {workers} threads shopping",
                        stores=f"SQLite files switched off for the outage (data kept); {valkey_words}",
                        timeouts=f"balancer {HANG_TIMEOUT:g} s; store client "
                                 + (f"{valkey['timeout']:g} s" if measured_valkey else "not measured")),
                    extra={"by_home": {d: r["by_home"] for d, r in results.items()}, "failed": failed,
                           "lost": lost, "outage": {d: o[0] for d, o in outage.items()},
                           "failures": {d: r["failures"] for d, r in results.items()},
                           "hung": hung, "killed": killed, "valkey": measured_valkey,
                           "crashed": crashed, "workers": workers, "users": n})
