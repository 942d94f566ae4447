"""Row "Fault Tolerance": crash one of three servers while users shop, then take the shared store down.

The seed says: stateful, "Failure in one server affects sessions stored on others"; stateless,
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
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..client import Client, Exchange
from ..shop.carts import SqliteCartStore
from ..shop.plugins import IdempotencyKeys, InFlight, idempotent_writes, slow_writes, store_errors_as_503
from ..shop.sessions import OutageStore, SqliteStore
from ..topology.cluster import Cluster
from . import DESIGNS, Evidence, Judgement, check_size, judged, progress, record
from .crowd import OPS, Shopper, by_home, cart_of, close, landed, log_in, lost_carts, shop_while, when_writing

ROW = "fault_tolerance"
CRASHED = 1  # server-1 crashes
WORK = 0.04  # seconds each cart write spends after its change (see slow_writes)
SHARED = ("session + shared store", "token + cart in db")  # the designs with a shared store to take down
TOKEN_DESIGNS = ("token + cart in token", "token + cart in db")

C_MEM_CRASHED = "session + memory: the crash lost every cart whose session was on the crashed server"
C_MEM_OTHERS = "session + memory: the crash reached sessions stored on other servers"
C_STORE_KEPT = "session + shared store: no user lost the cart in the crash"
C_TOKEN_KEPT = "token designs: no user lost the cart in the crash"
C_UNKEYED_ONLY = "only unkeyed writes failed: no read and no keyed write (the balancer re-sent those)"
C_INDIVIDUAL = "failures stayed individual: no more than the writes in flight at the crash (+ workers)"
C_STORE_OUTAGE = "shared session store outage: every user affected, on every server"
C_TABLE_OUTAGE = "shared cart table outage: every token + cart in db user affected"
C_STEPS = "a session kept the cart across steps"
C_TOKEN_STEPS = "token designs kept the cart across steps too"
C_SECOND_DEVICE = "a second device saw the cart only when it lived in the db"


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


def run(*, quick: bool = False, users: int | None = None, workers: int = 6) -> Evidence:
    """Crash one of three servers under each of the four designs, take the shared stores down, try a second device.

    ``users`` shoppers per design (default 12, quick 6), kept busy by ``workers`` threads.
    Counts, not timings: who lost the cart and where their session was, which requests failed
    and of what kind, whether failed writes had been acted on, and who noticed the store outages.
    """
    n = users if users is not None else (6 if quick else 12)
    check_size("users", n, 3, 600)
    check_size("workers", workers, 1, 32)
    began = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    devices: dict[str, dict[str, bool]] = {}
    outage: dict[str, tuple[int, set[str]]] = {}
    back: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="statelab-ft-", ignore_cleanup_errors=True))
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

        for step in progress(["start and log in", "crash server-1", "store outages"], "crash, then store outages"):
            if step == "start and log in":
                for design in DESIGNS:
                    watch[design] = InFlight()
                    plugins = [slow_writes(WORK), watch[design], idempotent_writes(IdempotencyKeys()),
                               store_errors_as_503]
                    clusters[design] = stack.enter_context(_cluster(design, store, carts, plugins))
                    crowds[design] = log_in(clusters[design].url, n, prefix="user", group=design)
                    stack.callback(close, crowds[design])
            elif step == "crash server-1":
                with ThreadPoolExecutor(max_workers=len(DESIGNS), thread_name_prefix="statelab-crash") as pool:
                    for future in [pool.submit(crash, design) for design in DESIGNS]:
                        future.result()
            else:
                for design in SHARED:
                    clusters[design].restart(CRASHED)  # every server up again: the shared store is what fails now
                with store.outage(), carts.outage():  # session + memory has no shared store to take down
                    for design in ("token + cart in token", *SHARED):
                        outage[design] = _outage(crowds[design])
                for design in SHARED:
                    back[design] = n - len(lost_carts(crowds[design]))
    return record(_evidence(results, devices, outage, back, n, workers, time.perf_counter() - began))


#: Which checks judge each claim (see :class:`~statelab.experiments.Judgement`); ``_evidence()`` computes those checks
#: and adds to each claim the sentence of what was measured.
CLAIMS = {
    "stateful": Judgement(supports=(C_MEM_OTHERS,), qualifies=(C_STORE_OUTAGE,)),
    "stateless": Judgement(supports=(C_TOKEN_KEPT, C_UNKEYED_ONLY, C_INDIVIDUAL),
                           qualifies=(C_TABLE_OUTAGE, C_STORE_KEPT)),
    "5b": Judgement(supports=(C_TOKEN_KEPT,), qualifies=(C_STORE_KEPT, C_TABLE_OUTAGE)),
    "4a": Judgement(supports=(C_STEPS,), qualifies=(C_SECOND_DEVICE, C_TOKEN_STEPS, C_MEM_CRASHED)),
}


def _evidence(results: dict[str, dict[str, Any]], devices: dict[str, dict[str, bool]],
              outage: dict[str, tuple[int, set[str]]], back: dict[str, int], n: int, workers: int,
              seconds: float) -> Evidence:
    results = {d: results[d] for d in DESIGNS}  # in the order of DESIGNS, whichever crash finished first
    devices = {d: devices[d] for d in DESIGNS}
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
        "cart kept across steps": {d: v["steps"] for d, v in devices.items()},
        "cart seen on a second device": {d: v["second device"] for d, v in devices.items()},
    }
    sessions = ("session + memory", "session + shared store")
    checks = {
        C_MEM_CRASHED: on_crashed > 0 and lost_on_crashed == on_crashed,
        C_MEM_OTHERS: lost_on_others > 0,
        C_STORE_KEPT: lost["session + shared store"] == 0,
        C_TOKEN_KEPT: token_lost == 0,
        "in every design some unkeyed writes in flight on the crashed server failed (502)":
            all(f["write"] >= 1 for f in failed.values()),
        C_UNKEYED_ONLY: all(f["read"] == 0 and f["keyed write"] == 0 for f in failed.values()),
        C_INDIVIDUAL: all(f["write"] <= met[d] + workers for d, f in failed.items()),
        "with a shared store, failed unkeyed writes had been acted on (a blind re-send would add twice)":
            sum(acted[d] for d in SHARED) >= 1,
        "no keyed write was applied twice or lost": not any(doubled.values()),
        C_STORE_OUTAGE: outage["session + shared store"][0] == n and outage["session + shared store"][1] == all_servers,
        C_TABLE_OUTAGE: outage["token + cart in db"][0] == n,
        "token + cart in token: no user noticed the outages": outage["token + cart in token"][0] == 0,
        "after the outages every cart was back (unavailable, not lost)": all(b == n for b in back.values()),
        C_STEPS: all(devices[d]["steps"] for d in sessions),
        C_TOKEN_STEPS: all(devices[d]["steps"] for d in TOKEN_DESIGNS),
        C_SECOND_DEVICE:
            devices["token + cart in db"]["second device"]
            and not any(devices[d]["second device"] for d in DESIGNS if d != "token + cart in db"),
    }
    failed_writes = sum(f["write"] for f in failed.values())
    token_failed = sum(failed[d]["write"] for d in TOKEN_DESIGNS)
    claims = judged(CLAIMS, {
        "stateful": (f"A crash loses the sessions stored on the crashed server ({lost_on_crashed} of {on_crashed} "
                     f"here), not those on others ({lost_on_others} of {on_others}); what reaches sessions on "
                     f"every server is the outage of a shared store ({outage['session + shared store'][0]} of {n} "
                     f"users, through {len(outage['session + shared store'][1])} servers)."),
        "stateless": (f"A crash cost only the plain writes in flight on the dying server ({token_failed} in the "
                      f"token designs, {failed_writes} across all four) and no token user a cart; but a shared "
                      f"session store lost no cart either ({lost['session + shared store']}), and a token design "
                      f"whose cart lives in a database shares that database's outages "
                      f"({outage['token + cart in db'][0]} of {n} users)."),
        "5b": (f"No token user lost a cart ({token_lost}), and neither did a user of the shared session "
               f"store ({lost['session + shared store']}): surviving a crash depends on where the data "
               f"lives, and a shared store is one part whose failure reaches everyone."),
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
        f"when the cart table went down {outage['token + cart in db'][0]} of {n}; every cart came back. A second "
        f"device saw the cart in {sum(v['second device'] for v in devices.values())} of {len(devices)} designs."
    )
    return Evidence(row=ROW, measurements=measurements, checks=checks, claims=claims, reading=reading,
                    seconds=seconds,
                    extra={"by_home": {d: r["by_home"] for d, r in results.items()}, "failed": failed,
                           "lost": lost, "outage": {d: o[0] for d, o in outage.items()},
                           "failures": {d: r["failures"] for d, r in results.items()},
                           "crashed": crashed, "workers": workers, "users": n})
