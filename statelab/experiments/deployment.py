"""Row "Deployment Complexity": a rolling restart under load, drained or not, and the token side's own chore.

The seed says: stateful, "Deployment may be more complex due to session synchronization";
stateless, "Easier deployment and maintenance due to statelessness". A deploy replaces every
server, one at a time, while users shop. :func:`redeploy` does it the way a deploy tool does:
take the server out of the balancer, let the requests it is answering finish (*drain*) and shut
it down gracefully, start the new version (empty memory, as a new process has), put it back.
Without draining, the old process is killed at once and cuts what it was answering.

The four designs of :data:`statelab.experiments.DESIGNS` face the same two deploys, first without
draining, then drained, while a crowd reads, writes (plain ``POST /cart``) and writes with an
``Idempotency-Key``. Each server is replaced at an instant when it is working on a plain write,
as a loaded server always is. We count failed requests by kind and users logged out, per design.

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
from typing import Any

from ..shop.plugins import IdempotencyKeys, InFlight, idempotent_writes, slow_writes
from ..shop.tokens import inspect_token
from ..topology.cluster import Cluster
from . import DESIGNS, Evidence, Judgement, check_size, judged, progress, record
from .crowd import OPS, Shopper, close, landed, log_in, shop_while, when_writing

ROW = "deployment"
WORK = 0.04  # seconds each cart write spends after its change (see slow_writes)
DRAIN = 1.0  # the longest a drained deploy waits for a server's requests in flight
SETTLE = 0.05  # a deploy tool waits this long after a new server is in before replacing the next (minReadySeconds)
TOKEN_DESIGNS = ("token + cart in token", "token + cart in db")

C_MEM_LOGGED_OUT = "session + memory: every deploy logged out every user"
C_STORE_KEPT = "session + shared store: no deploy logged out anyone"
C_TOKEN_KEPT = "token designs: no deploy logged out anyone"
C_UNDRAINED_FAILED = "without draining, plain writes in flight failed (502) in every design"
C_ROTATION_DROPS = "rotating the key without keeping the old one logged out every token user"


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

        def roll(design: str) -> None:
            for i, server in enumerate(clusters[design].servers):
                met[design].append(when_writing(watch[design], server.name, writes=1))
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
                               "failures": [f for f in traffic.failures if f.startswith(prefixes[design])]}
        return results
    finally:
        close(crowd)


def run(*, quick: bool = False, users: int | None = None, workers: int = 8, drain: float = DRAIN) -> Evidence:
    """Roll a deploy through three servers under each design, without draining and drained; then rotate keys.

    ``users`` shoppers per design (default 6, quick 4), kept busy by ``workers`` threads while
    every server is replaced; ``drain`` is the longest the drained deploy waits for a server's
    requests in flight (it moves on as soon as none is left). The four designs are deployed side
    by side. Counts, not timings: failed requests by kind, users logged out, tokens refused after
    a key rotation.
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
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: _in_parallel([c.stop for c in clusters.values()]))
        steps = ["start the clusters", "deploy without draining", "deploy with draining", "key rotation"]
        for step in progress(steps, "deploy four designs twice, then rotate the token key"):
            if step == "start the clusters":
                for design, options in DESIGNS.items():
                    watch[design] = InFlight()
                    plugins = [slow_writes(WORK), watch[design], idempotent_writes(IdempotencyKeys())]
                    sticky = {"balancer": "sticky"} if design == "session + memory" else {}
                    clusters[design] = Cluster(3, plugins=plugins, **options, **sticky)
            elif step == "deploy without draining":
                deploys["undrained"] = _deploy(clusters, watch, n, workers, 0, "cut")
            elif step == "deploy with draining":
                deploys["drained"] = _deploy(clusters, watch, n, workers, drain, "drained")
            else:
                rotation = _rotations(clusters["token + cart in token"], n)
    return record(_evidence(deploys, rotation, n, workers, time.perf_counter() - began))


#: Which checks judge each claim (see :class:`~statelab.experiments.Judgement`); ``_evidence()`` computes those checks
#: and adds to each claim the sentence of what was measured.
CLAIMS = {
    "stateful": Judgement(supports=(C_MEM_LOGGED_OUT,), qualifies=(C_STORE_KEPT, C_UNDRAINED_FAILED)),
    "stateless": Judgement(supports=(C_TOKEN_KEPT,), qualifies=(C_UNDRAINED_FAILED, C_ROTATION_DROPS)),
}


def _evidence(deploys: dict[str, dict[str, dict[str, Any]]], rotation: dict[str, Any], n: int, workers: int,
              seconds: float) -> Evidence:
    cut, drained = deploys["undrained"], deploys["drained"]
    failed_writes = {kind: {d: r["failed"]["write"] for d, r in deploys[kind].items()} for kind in deploys}
    lost = {kind: {d: r["lost"] for d, r in deploys[kind].items()} for kind in deploys}
    others = {kind: sum(r["failed"]["read"] + r["failed"]["keyed write"] for r in deploys[kind].values())
              for kind in deploys}
    measurements: dict[str, Any] = {
        "users per design (per deploy)": n,
        "servers replaced one at a time": 3,
        "failed plain writes (502), without draining": failed_writes["undrained"],
        "failed plain writes (502), drained": failed_writes["drained"],
        "plain writes in flight when each server was replaced": {d: r["writes in flight when replaced"]
                                                                 for d, r in cut.items()},
        "failed reads and keyed writes (both deploys)": others["undrained"] + others["drained"],
        "keyed writes applied twice or missing": {d: cut[d]["keyed writes doubled or missing"]
                                                  + drained[d]["keyed writes doubled or missing"] for d in cut},
        "users logged out (cart gone), without draining": lost["undrained"],
        "users logged out (cart gone), drained": lost["drained"],
        "requests during each deploy": {d: cut[d]["requests"] + drained[d]["requests"] for d in cut},
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
    checks = {
        C_UNDRAINED_FAILED: all(v >= 1 for v in failed_writes["undrained"].values()),
        "draining failed fewer plain writes than not draining": total_drained < total_cut,
        "the drained deploy failed no request at all":
            total_drained == 0 and others["drained"] == 0,
        "no read and no keyed write failed in either deploy (the balancer re-sent them)":
            others["undrained"] == 0 and others["drained"] == 0,
        "no keyed write was applied twice or lost":
            not any(measurements["keyed writes applied twice or missing"].values()),
        C_MEM_LOGGED_OUT: all(lost[k]["session + memory"] == n for k in both),
        C_STORE_KEPT: all(lost[k]["session + shared store"] == 0 for k in both),
        C_TOKEN_KEPT: all(lost[k][d] == 0 for k in both for d in TOKEN_DESIGNS),
        C_ROTATION_DROPS: rotation["drop"] == n,
        "rotating with a kid and a grace period logged out nobody": rotation["grace"] == 0,
        "retiring the old key logged out exactly the users whose token was not re-signed":
            rotation["resigned"] == rotation["active"] and rotation["retire_refreshed"] == 0
            and rotation["retire_idle"] == rotation["idle"],
    }
    claims = judged(CLAIMS, {
        "stateful": (f"Sessions in server memory make every deploy a mass logout ({mem} of {n}, even "
                     f"drained); a shared session store deploys like a token design ({shared} logged out) and "
                     f"moves the work into running the store. Draining is needed in every design: without it "
                     f"{total_cut} plain writes failed across the four, with it {total_drained}."),
        "stateless": (f"Token servers deploy without logging anyone out, but they still need draining "
                      f"(plain writes failed without it: "
                      f"{sum(failed_writes['undrained'][d] for d in TOKEN_DESIGNS)} in the token designs) and "
                      f"bring a chore of their own: a key rotation that drops the old key logged out "
                      f"{rotation['drop']} of {n}; one with a grace period, {rotation['grace']}."),
    })
    reading = (
        "Replacing all three servers one at a time without draining failed "
        + ", ".join(f"{d} {v}" for d, v in failed_writes["undrained"].items())
        + f" plain writes; drained, {total_drained}. Reads and keyed writes failed "
        f"{others['undrained'] + others['drained']} times in both deploys. The deploys logged out "
        + ", ".join(f"{d} {lost['drained'][d]}" for d in lost["drained"])
        + f" of {n} users. Dropping the old signing key logged out {rotation['drop']} of {n} token users; keeping it "
        f"for a grace period logged out {rotation['grace']}, and retiring it afterwards logged out "
        f"{rotation['retire_idle']} of {rotation['idle']} idle users and {rotation['retire_refreshed']} of "
        f"{rotation['active']} whose token was re-signed."
    )
    return Evidence(row=ROW, measurements=measurements, checks=checks, claims=claims, reading=reading,
                    seconds=seconds,
                    extra={"failed_writes": failed_writes, "lost": lost, "rotation": rotation, "users": n,
                           "workers": workers,
                           "failures": {k: {d: r["failures"] for d, r in deploys[k].items()} for k in deploys}})
