"""Row "Load Balancing": does the balancer have to care where a user's session lives?

The seed says stateful load balancing "may require consideration of session affinity" and
stateless gives "simplified load balancing without session considerations" (benefit 5c).

The same realistic traffic is sent through each balancer strategy, once to stateful servers
with per-server memory sessions and once to stateless (token) servers. The traffic is skewed
the way real traffic is: a few heavy users make most of the requests (a Zipf law), and every
user comes from an address of their own (``Client(ip=...)``, for ``ip_hash``). Measured:

* how evenly each strategy spreads the requests (coefficient of variation of the per-server
  request counts: 0 is perfectly even);
* how many users lost their session at least once (a 401 after logging in);
* what changes of the server pool do to affinity: under ``ip_hash``, the share of addresses
  sent to a different server when one server is added; under ``sticky``, the users re-pinned
  when their server crashes; and, for each, how many of those users lost their session.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from typing import Any

from ..client import Client
from ..topology.cluster import Cluster
from . import Evidence, progress, record
from .scalability import stop_together

ROW = "load_balancing"
STRATEGIES = ("round_robin", "least_connections", "sticky", "ip_hash")  # affinity ones last: they change the pool
AFFINITY = ("sticky", "ip_hash")
MODES = ("stateful", "stateless")


def zipf_counts(users: int, total: int, s: float = 1.5) -> list[int]:
    """Split ``total`` requests over ``users``: one each, the rest by a Zipf law (user k's share ~ 1/k**s)."""
    if users < 1 or total < users:
        raise ValueError("need at least one user and at least one request per user")
    weights = [1 / k**s for k in range(1, users + 1)]
    raw = [(total - users) * w / sum(weights) for w in weights]
    counts = [1 + int(r) for r in raw]
    by_remainder = sorted(range(users), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    for i in by_remainder[: total - sum(counts)]:  # largest remainders first: the sum is exact
        counts[i] += 1
    return counts


def cv(values: list[int] | list[float]) -> float:
    """Coefficient of variation (population standard deviation / mean): 0 means perfectly even."""
    mean = statistics.fmean(values) if values else 0.0
    return statistics.pstdev(values) / mean if mean else 0.0


def random_ips(n: int, rng: random.Random) -> list[str]:
    """``n`` distinct private addresses (never contacted: they only travel as X-Forwarded-For)."""
    ips: set[str] = set()
    while len(ips) < n:
        ips.add(f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}")
    return sorted(ips)


def drive(clients: list[Client], counts: list[int], rng: random.Random, workers: int = 4) -> set[int]:
    """Log every client in, then send each ``counts[i]`` cart views, users interleaved at random.

    A few users are served at the same time (``workers`` threads; each user belongs to one, so
    a user's own requests stay in order), which gives least-connections something to see.
    Returns the indexes of users who got a 401 at least once: they lost their session.
    """
    lost: set[int] = set()
    lock = threading.Lock()
    order = list(range(len(clients)))
    rng.shuffle(order)
    for i in order:
        clients[i].login(f"user{i}")
    turns = [i for i, n in enumerate(counts) for _ in range(n)]
    rng.shuffle(turns)
    lanes: list[list[int]] = [[] for _ in range(workers)]
    for i in turns:
        lanes[i % workers].append(i)

    def lane(mine: list[int]) -> None:
        for i in mine:
            if clients[i].cart().status == 401:
                with lock:
                    lost.add(i)

    threads = [threading.Thread(target=lane, args=(mine,), name=f"statelab-traffic-{k}")
               for k, mine in enumerate(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lost


def run(*, quick: bool = False, servers: int = 4, users: int | None = None, requests: int | None = None,
        probes: int | None = None, skew: float = 1.5) -> Evidence:
    """Send the same skewed traffic through every strategy, stateful and stateless, then change the pool.

    ``users`` users make ``requests`` cart views in all (Zipf exponent ``skew``) on a cluster of
    ``servers``; ``probes`` extra addresses measure how ``ip_hash`` remaps when a server is added.
    """
    users = users or (10 if quick else 20)
    requests = requests or (40 if quick else 120)
    probes = probes or (20 if quick else 80)
    if not 2 <= servers <= 12:
        raise ValueError("servers must be from 2 to 12")
    began = time.perf_counter()
    rng = random.Random()
    counts = zipf_counts(users, requests, skew)
    ips = random_ips(users + probes, rng)
    user_ips, probe_ips = ips[:users], ips[users:]
    rng.shuffle(user_ips)
    loads: dict[str, dict[str, dict[str, int]]] = {m: {} for m in MODES}
    lost: dict[str, dict[str, int]] = {m: {} for m in MODES}
    events: dict[str, dict[str, int]] = {m: {} for m in MODES}
    remapped_share = 0.0
    bar = iter(progress([(m, s) for m in MODES for s in STRATEGIES], "strategies"))
    clusters: list[Cluster] = []
    try:
        for mode in MODES:
            cluster = Cluster(servers=servers, mode=mode, store="memory")
            clusters.append(cluster)
            for strategy in STRATEGIES:
                next(bar)
                cluster.strategy = strategy
                cluster.balancer.reset_counts()
                clients = [Client(cluster.url, ip=ip) for ip in user_ips]
                lost[mode][strategy] = len(drive(clients, counts, rng))
                loads[mode][strategy] = cluster.balancer.counts
                if strategy == "sticky":
                    events[mode].update(_crash_under_sticky(cluster, clients))
                elif strategy == "ip_hash":  # last: it adds a server
                    # where addresses go is the balancer's business, not the mode's: probe it once
                    found, share = _add_under_ip_hash(cluster, clients, probe_ips if mode == MODES[0] else [])
                    events[mode].update(found)
                    if mode == MODES[0]:
                        remapped_share = share
        for _ in bar:
            pass
    finally:
        stop_together(clusters)

    cv_by_mode = {m: {s: cv(list(loads[m][s].values())) for s in STRATEGIES} for m in MODES}
    unevenness = cv_by_mode["stateful"]
    share_lost = {m: {s: lost[m][s] / users for s in STRATEGIES} for m in MODES}
    sf, sl_ = share_lost["stateful"], share_lost["stateless"]
    ev_sf, ev_sl = events["stateful"], events["stateless"]
    measurements: dict[str, Any] = {
        "servers": servers, "users": users, "requests (after logins)": requests,
        "requests made by the 3 heaviest users": sum(sorted(counts, reverse=True)[:3]),
        "load CV by strategy (0 = even)": unevenness,
        "load CV by strategy, stateless": cv_by_mode["stateless"],
        "stateful (memory): share of users who lost their session": sf,
        "stateless (tokens): share of users who lost their session": sl_,
        "requests per server, stateful": loads["stateful"],
        f"ip_hash: share of addresses remapped going from {servers} to {servers + 1} servers": remapped_share,
        "stateful events": ev_sf, "stateless events": ev_sl,
    }
    rr = max(cv_by_mode[m]["round_robin"] for m in MODES)
    lc = max(cv_by_mode[m]["least_connections"] for m in MODES)
    affinity = min(cv_by_mode[m][s] for m in MODES for s in AFFINITY)
    checks = {
        # least connections follows busyness, not a rotation, so it may drift a little more than round robin
        "round robin and least connections spread skewed traffic evenly": rr <= 0.1 and lc <= 0.3,
        "affinity (sticky, ip_hash) spreads skewed users unevenly": affinity >= max(0.15, rr + 0.1),
        "stateful memory sessions: without affinity most users lose their session":
            min(sf["round_robin"], sf["least_connections"]) >= 0.5,
        "stateful memory sessions: with affinity no user loses their session":
            max(sf[s] for s in AFFINITY) == 0,
        "stateless: no user loses their session under any strategy": max(sl_.values()) == 0,
        "adding a server remaps most ip_hash addresses": remapped_share >= 0.5,
        "stateful: every remapped ip_hash user lost their session":
            ev_sf["ip_hash: users remapped"] >= 1
            and ev_sf["ip_hash: remapped users who lost their session"] == ev_sf["ip_hash: users remapped"],
        "stateful: sticky users of a crashed server are re-pinned and lose their session":
            ev_sf["sticky: users re-pinned"] >= 1
            and ev_sf["sticky: re-pinned users who lost their session"] == ev_sf["sticky: users re-pinned"],
        "stateless: remapped and re-pinned users keep their session":
            ev_sl["ip_hash: users remapped"] + ev_sl["sticky: users re-pinned"] >= 1
            and ev_sl["ip_hash: remapped users who lost their session"] == 0
            and ev_sl["sticky: re-pinned users who lost their session"] == 0,
    }
    stateful_side = (checks["stateful memory sessions: without affinity most users lose their session"]
                     and checks["stateful memory sessions: with affinity no user loses their session"])
    stateless_side = checks["stateless: no user loses their session under any strategy"]
    affinity_costs = (checks["affinity (sticky, ip_hash) spreads skewed users unevenly"]
                      or checks["stateful: every remapped ip_hash user lost their session"]
                      or checks["stateful: sticky users of a crashed server are re-pinned and lose their session"])
    verdict = ("does not hold" if not (stateful_side and stateless_side)
               else "holds with nuance" if affinity_costs else "holds")
    reading = (
        f"With memory sessions, round robin spread the skewed load evenly (CV {unevenness['round_robin']:.2f}) but "
        f"{sf['round_robin']:.0%} of users lost their session; sticky and ip_hash kept every session but spread load "
        f"unevenly (CV {unevenness['sticky']:.2f} and {unevenness['ip_hash']:.2f}), and adding one server sent "
        f"{remapped_share:.0%} of ip_hash addresses elsewhere. With tokens, "
        f"{max(sl_.values()):.0%} of users lost their session under any of the four strategies."
    )
    return record(Evidence(row=ROW, measurements=measurements, checks=checks, verdict=verdict, reading=reading,
                           seconds=time.perf_counter() - began,
                           extra={"unevenness": unevenness, "share_lost": share_lost, "loads": loads,
                                  "cv_by_mode": cv_by_mode}))


def _crash_under_sticky(cluster: Cluster, clients: list[Client]) -> dict[str, int]:
    """Crash the server most users are pinned to; count who is re-pinned and who loses the session."""
    pins = [c.cookies.get("statelab-lb") for c in clients]
    victim = max(set(pins), key=pins.count) or cluster.servers[0].name
    cluster.kill(victim)
    repinned = lost = 0
    for c, pin in zip(clients, pins, strict=True):
        ex = c.cart()
        moved = ex.served_by != pin
        repinned += moved
        lost += moved and ex.status == 401
    cluster.restart(victim)
    return {"sticky: users pinned to the crashed server": pins.count(victim),
            "sticky: users re-pinned": repinned, "sticky: re-pinned users who lost their session": lost}


def _add_under_ip_hash(cluster: Cluster, clients: list[Client], probe_ips: list[str]) -> tuple[dict[str, int], float]:
    """Add one server under ip_hash: which addresses now go elsewhere, and what that does to sessions."""
    probes = [Client(cluster.url, ip=ip) for ip in probe_ips]
    before = [p.health().served_by for p in probes]
    homes = [c.last.served_by if c.last else None for c in clients]  # ip_hash: every request went there
    cluster.add_server()
    after = [p.health().served_by for p in probes]
    moved = lost = 0
    for c, home in zip(clients, homes, strict=True):
        ex = c.cart()
        moved += ex.served_by != home
        lost += ex.served_by != home and ex.status == 401
    moved_ips = sum(a != b for a, b in zip(before, after, strict=True)) + moved
    share = moved_ips / (len(probes) + len(clients))
    return {"ip_hash: users remapped": moved, "ip_hash: remapped users who lost their session": lost}, share


def plot(ev: Evidence, ax: Any = None) -> Any:
    """Each strategy as a point: how uneven its load is, and how many users lost their session."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.6))
    else:
        fig = ax.figure
    uneven, lost = ev.extra["cv_by_mode"], ev.extra["share_lost"]
    colours = {"round_robin": "tab:blue", "least_connections": "tab:green", "sticky": "tab:orange",
               "ip_hash": "tab:red"}
    for s in STRATEGIES:
        ax.scatter(uneven["stateful"][s], lost["stateful"][s], s=60, color=colours[s], label=f"{s}")
        # a larger ring, so it stays visible around a filled dot at the same place
        ax.scatter(uneven["stateless"][s], lost["stateless"][s], s=180, facecolors="none", edgecolors=colours[s],
                   linewidths=2)
    ax.scatter([], [], s=60, color="grey", label="dot: stateful (memory)")
    ax.scatter([], [], s=180, facecolors="none", edgecolors="grey", linewidths=2, label="ring: stateless (tokens)")
    ax.set_xlabel("load unevenness (CV of requests per server; 0 = even)")
    ax.set_ylabel("users who lost their session")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlim(left=-0.02)
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_title("Even load or kept sessions? (same skewed traffic)")
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    return fig
