"""Row "Deployment Complexity": a rolling restart under load, and the token side's own chore, key rotation.

The seed says: stateful, "Deployment may be more complex due to session synchronization";
stateless, "Easier deployment and maintenance due to statelessness". A deploy replaces every
server, one at a time, while users shop. :func:`redeploy` does it the careful way: take the server
out of the balancer, let its requests in flight finish, stop it, start the new version (empty
memory, as a new process has), put it back. Three designs face the same deploy:

* **memory**: sessions in each server's memory, sticky routing;
* **sqlite**: one shared SQLite session store (the "session synchronization" the seed means);
* **stateless**: signed tokens carrying the cart; the signing keys are configuration every server keeps.

We count failed requests and users logged out (cart gone) per design. Then the stateless side's
own deployment cost: rotating the signing key. Dropping the old key logs every token holder out;
rotating with a key id (``kid``) and keeping the old key for a grace period logs out nobody;
retiring the old key afterwards logs out exactly the users whose token was not re-signed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..shop.tokens import inspect_token
from ..topology.cluster import Cluster
from . import Evidence, progress, record
from .crowd import Shopper, close, log_in, lost_carts, shop_while

ROW = "deployment"
DESIGNS = {
    "memory": "in-memory sessions + sticky routing",
    "sqlite": "shared SQLite session store",
    "stateless": "stateless tokens (cart in the JWT)",
}
ROTATIONS = {
    "drop": "rotate, drop the old key at once",
    "grace": "rotate, keep the old key (grace period)",
    "retire_refreshed": "retire the old key: users whose token was re-signed",
    "retire_idle": "retire the old key: users idle during the grace period",
}


def redeploy(cluster: Cluster, index: int, *, drain: float = 0.05) -> None:
    """Replace ``cluster.servers[index]`` as a rolling deploy does.

    Out of the balancer first (no new requests reach it), ``drain`` seconds for requests in
    flight to finish, a clean stop, a start (a new process: empty memory, same configuration:
    the shared store and the token keys), and back into the balancer.
    """
    server = cluster.servers[index]
    cluster.balancer.remove(server.name)
    time.sleep(drain)
    server.stop()
    server.start()
    cluster.balancer.add(server)


def rolling_restart(cluster: Cluster, *, drain: float = 0.05) -> None:
    """Redeploy every server of ``cluster``, one at a time."""
    for i in range(len(cluster.servers)):
        redeploy(cluster, i, drain=drain)


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
    """Run ``calls`` at once (each mostly waits on a server stopping) and re-raise the first error."""
    with ThreadPoolExecutor(max_workers=max(len(calls), 1), thread_name_prefix="statelab-deploy") as pool:
        for future in [pool.submit(call) for call in calls]:
            future.result()


def run(*, quick: bool = False, users: int | None = None, workers: int = 3, drain: float | None = None) -> Evidence:
    """Roll a deploy through three servers under each design, then rotate the token key two ways.

    ``users`` shoppers per design (default 24, quick 9), kept busy by ``workers`` threads while
    every server is replaced; ``drain`` seconds between taking a server out and stopping it.
    The three designs are deployed side by side (server-0 of each at once, then server-1, ...).
    Counts, not timings: failed requests, users logged out, tokens refused after a key rotation.
    """
    n = users if users is not None else (9 if quick else 24)
    if not isinstance(n, int) or not 4 <= n <= 600:
        raise ValueError("users must be a whole number from 4 to 600")
    drain = drain if drain is not None else (0.02 if quick else 0.05)
    began = time.perf_counter()
    makers = {
        "memory": lambda: Cluster(3, "stateful", store="memory", balancer="sticky"),
        "sqlite": lambda: Cluster(3, "stateful", store="sqlite", balancer="round_robin"),
        "stateless": lambda: Cluster(3, "stateless", balancer="round_robin"),
    }
    clusters: dict[str, Cluster] = {}
    crowd: list[Shopper] = []
    results: dict[str, dict[str, Any]] = {}
    rotation: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: _in_parallel([c.stop for c in clusters.values()]))
        stack.callback(lambda: close(crowd))
        steps = ["start the clusters", "log users in", "rolling restart", "key rotation"]
        for step in progress(steps, "deploy three designs, then rotate the token key"):
            if step == "start the clusters":
                for design, make in makers.items():
                    clusters[design] = make()
            elif step == "log users in":
                for design, cluster in clusters.items():
                    crowd += log_in(cluster.url, n, prefix=f"{design}-user", group=design)
            elif step == "rolling restart":
                def deploy() -> None:
                    for i in range(3):  # server-i of every design at once; the designs do not interact
                        _in_parallel([lambda c=c, i=i: redeploy(c, i, drain=drain) for c in clusters.values()])

                traffic = shop_while(crowd, deploy, workers=workers)
                for design in clusters:
                    mine = [s for s in crowd if s.group == design]
                    results[design] = {"requests": traffic.requests_of(design),
                                       "failed": traffic.count("failed", group=design),
                                       "logged_out_answers": traffic.count("logged out", group=design),
                                       "lost": len(lost_carts(mine)), "deploy_seconds": traffic.action_seconds,
                                       "failures": [f for f in traffic.failures if f.startswith(f"{design}-")]}
            else:
                rotation = _rotations(clusters["stateless"], n)

    lost = {d: r["lost"] for d, r in results.items()}
    failed = {d: r["failed"] for d, r in results.items()}
    measurements: dict[str, Any] = {
        "users per design": n,
        "servers replaced one at a time": 3,
        "requests during the deploy": {d: r["requests"] for d, r in results.items()},
        "failed requests (no answer or 5xx)": failed,
        "401 answers during the deploy": {d: r["logged_out_answers"] for d, r in results.items()},
        "users logged out by the deploy (cart gone)": lost,
        "deploy seconds (all three designs side by side)": round(results["memory"]["deploy_seconds"], 2),
        "key rotation, old key dropped: users logged out": rotation["drop"],
        "key rotation with grace: users logged out": rotation["grace"],
        "grace period: active users whose token was re-signed": rotation["resigned"],
        "old key retired: active users logged out": rotation["retire_refreshed"],
        "old key retired: idle users logged out": rotation["retire_idle"],
        "active / idle users in the grace scenario": f"{rotation['active']} / {rotation['idle']}",
    }
    checks = {
        "memory + sticky: the rolling restart logged out every user": lost["memory"] == n,
        "shared store: the rolling restart logged out nobody": lost["sqlite"] == 0,
        "stateless tokens: the rolling restart logged out nobody": lost["stateless"] == 0,
        "a drained rolling restart failed at most a few requests in every design":
            all(f <= workers for f in failed.values()),
        "rotating the key without keeping the old one logged out every token user": rotation["drop"] == n,
        "rotating with a kid and a grace period logged out nobody": rotation["grace"] == 0,
        "retiring the old key logged out exactly the users whose token was not re-signed":
            rotation["resigned"] == rotation["active"] and rotation["retire_refreshed"] == 0
            and rotation["retire_idle"] == rotation["idle"],
    }
    sessions_hurt_stateful = lost["memory"] > 0
    stateless_deploys_clean = lost["stateless"] == 0 and failed["stateless"] <= workers
    if not (sessions_hurt_stateful and stateless_deploys_clean):
        verdict = "does not hold"
    elif rotation["drop"] > 0 or lost["sqlite"] == 0:
        verdict = "holds with nuance"  # tokens bring their own deploy chore; a shared store removes the stateful one
    else:
        verdict = "holds"
    reading = (
        f"Replacing all three servers one at a time logged out {lost['memory']} of {n} users with in-memory "
        f"sessions, {lost['sqlite']} with a shared store and {lost['stateless']} with tokens; "
        f"{sum(failed.values())} of {sum(r['requests'] for r in results.values())} requests failed. "
        f"The tokens' own chore is the signing key: dropping the old key logged out {rotation['drop']} of {n}; "
        f"keeping it for a grace period logged out {rotation['grace']}, and retiring it afterwards logged out "
        f"{rotation['retire_idle']} of {rotation['idle']} idle users and {rotation['retire_refreshed']} of "
        f"{rotation['active']} whose token was re-signed."
    )
    return record(Evidence(row=ROW, measurements=measurements, checks=checks, verdict=verdict, reading=reading,
                           seconds=time.perf_counter() - began,
                           extra={"lost": lost, "failed": failed, "rotation": rotation, "users": n, "workers": workers,
                                  "failures": {d: r["failures"] for d, r in results.items()}}))


def plot(ev: Evidence, ax: Any = None) -> Any:
    """Share of users logged out: by the rolling restart per design, and by each key-rotation step."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 3.4))
    n = ev.extra["users"]
    rot = ev.extra["rotation"]
    deploy = [100 * ev.extra["lost"][d] / n for d in DESIGNS]
    keys = [100 * rot["drop"] / n, 100 * rot["grace"] / n,
            100 * rot["retire_refreshed"] / max(rot["active"], 1), 100 * rot["retire_idle"] / max(rot["idle"], 1)]
    labels = ["memory +\nsticky", "shared\nstore", "tokens",
              "drop old\nkey", "keep old\nkey", "retire:\nre-signed", "retire:\nidle"]
    xs = [0, 1, 2, 3.6, 4.6, 5.6, 6.6]
    colours = ["C0", "C1", "C2"] + ["C4"] * 4
    bars = ax.bar(xs, deploy + keys, 0.7, color=colours)
    ax.bar_label(bars, labels=[f"{v:.0f}" for v in deploy + keys], fontsize=7, padding=1)
    ax.set_xticks(xs, labels, fontsize=7)
    ax.set_ylabel("users logged out (%)")
    ax.set_ylim(0, 118)
    ax.set_yticks(range(0, 101, 20))
    ax.axvline(2.8, color="grey", lw=0.8, ls=":")
    ax.text(1, 108, "rolling restart of 3 servers", ha="center", fontsize=8)
    ax.text(5.1, 108, "token signing-key rotation", ha="center", fontsize=8)
    ax.figure.tight_layout()
    return ax.figure
