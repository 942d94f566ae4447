"""Row "Load Balancing": does the balancer have to care where a user's session and cart live?

The seed says stateful load balancing "may require consideration of session affinity" and
stateless gives "simplified load balancing without session considerations" (benefit 5c).

The same realistic traffic goes through each balancer strategy, to each of the four designs of
:data:`~statelab.experiments.DESIGNS`. The traffic is skewed the way real traffic is: a few heavy
users make most of the requests (a Zipf law), each user comes from an address of their own
(``Client(ip=...)``, for ``ip_hash``), and every third request of a user adds a book to the cart.
Measured, per design and strategy:

* how evenly the strategy spreads the requests (coefficient of variation of the per-server
  request counts: 0 is perfectly even);
* how many users lost their session (a 401 after logging in) or their cart (at the end it does
  not hold every book they added);
* who moves when the pool changes, and what they lose: under ``sticky``, the users re-pinned when
  their server crashes; under ``ip_hash``, the users (and the share of many probed addresses)
  sent to a different server when one server is added.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..client import Client, Exchange
from ..topology.cluster import Cluster
from . import DESIGNS, Evidence, Judgement, judged, progress, record

ROW = "load_balancing"
STRATEGIES = ("round_robin", "least_connections", "sticky", "ip_hash")  # affinity ones last: they change the pool
AFFINITY = ("sticky", "ip_hash")
MEMORY, STORE, IN_TOKEN, IN_DB = DESIGNS  # the four designs, in the collection's order
ADD_EVERY = 3  # every third request of a user adds a book; the others view the cart

C_EVEN = "round robin and least connections spread skewed traffic evenly"
C_UNEVEN = "affinity (sticky, ip_hash) spreads skewed users unevenly"
C_MEM_NO_AFFINITY = "session + memory: without affinity most users lose their session"
C_MEM_AFFINITY = "session + memory: with affinity no user loses their session or cart"
C_STORE_ANY = "session + shared store: no user loses their session or cart under any strategy"
C_TOKEN_ANY = "token + cart in token: no user loses their session or cart under any strategy"
C_DB_ANY = "token + cart in db: no user loses their session or cart under any strategy, round robin included"
C_REMAP = "adding a server remaps most ip_hash addresses"
C_MOVED_LOST = "session + memory: every user moved by a crash or a new server lost their session"
C_MOVED_KEPT = "the other three designs: users moved by a crash or a new server keep their session and cart"


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


def books(ex: Exchange) -> int | None:
    """How many books an answer to ``GET /cart`` shows; None when it is not a cart (e.g. a 401)."""
    if ex.status != 200 or not isinstance(ex.body, dict) or not isinstance(ex.body.get("cart"), list):
        return None
    return sum(line.get("qty", 0) for line in ex.body["cart"] if line.get("item") == "book")


class Traffic:
    """What one crowd did: who lost their session (a 401) and how many books each user tried to add."""

    def __init__(self, users: int) -> None:
        self.lost_session: set[int] = set()
        self.added = [0] * users
        self.lock = threading.Lock()

    def lost_cart(self, clients: list[Client]) -> set[int]:
        """Users whose cart, read now, does not hold every book they added."""
        return {i for i, c in enumerate(clients) if books(c.cart()) != self.added[i]}


def drive(clients: list[Client], counts: list[int], rng: random.Random, workers: int = 4,
          prefix: str = "user") -> Traffic:
    """Log every client in (as ``<prefix><i>``), then send each ``counts[i]`` requests (every third adds a
    book), users interleaved.

    A few users are served at the same time (``workers`` threads; each user belongs to one, so a user's
    own requests stay in order), which gives least-connections something to see. Use a new ``prefix``
    for each crowd on one cluster: a cart kept in a table follows the user name to the next login.
    """
    traffic = Traffic(len(clients))
    order = list(range(len(clients)))
    rng.shuffle(order)
    for i in order:
        clients[i].login(f"{prefix}{i}")
    turns = [i for i, n in enumerate(counts) for _ in range(n)]
    rng.shuffle(turns)
    lanes: list[list[int]] = [[] for _ in range(workers)]
    for i in turns:
        lanes[i % workers].append(i)

    def lane(mine: list[int]) -> None:
        sent = [0] * len(clients)
        for i in mine:
            if sent[i] % ADD_EVERY == ADD_EVERY - 1:
                traffic.added[i] += 1
                ex = clients[i].add_to_cart("book")
            else:
                ex = clients[i].cart()
            sent[i] += 1
            if ex.status == 401:
                with traffic.lock:
                    traffic.lost_session.add(i)

    threads = [threading.Thread(target=lane, args=(mine,), name=f"statelab-traffic-{k}")
               for k, mine in enumerate(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return traffic


def run(*, quick: bool = False, servers: int = 4, users: int | None = None, requests: int | None = None,
        probes: int | None = None, skew: float = 1.5) -> Evidence:
    """Send the same skewed traffic through every strategy, for each design, then change the pool.

    ``users`` users make ``requests`` requests in all (Zipf exponent ``skew``) on a cluster of
    ``servers``; ``probes`` extra addresses measure how ``ip_hash`` remaps when a server is added.
    """
    users = users or (8 if quick else 10)
    requests = requests or (30 if quick else 40)
    probes = probes or 20
    if not 2 <= servers <= 12:
        raise ValueError("servers must be from 2 to 12")
    began = time.perf_counter()
    rng = random.Random()
    counts = zipf_counts(users, requests, skew)
    ips = random_ips(users + probes, rng)
    user_ips, probe_ips = ips[:users], ips[users:]
    rng.shuffle(user_ips)
    loads: dict[str, dict[str, dict[str, int]]] = {d: {} for d in DESIGNS}
    lost: dict[str, dict[str, dict[str, int]]] = {d: {"session": {}, "cart": {}} for d in DESIGNS}
    events: dict[str, dict[str, int]] = {d: {} for d in DESIGNS}
    remapped_share = 0.0
    bar = iter(progress([(d, s) for d in DESIGNS for s in STRATEGIES], "strategies"))
    clusters: list[Cluster] = []
    try:
        for design, options in DESIGNS.items():
            cluster = Cluster(servers, **options)
            clusters.append(cluster)
            for strategy in STRATEGIES:
                next(bar)
                cluster.strategy = strategy
                cluster.balancer.reset_counts()
                clients = [Client(cluster.url, ip=ip) for ip in user_ips]
                traffic = drive(clients, counts, rng, prefix=f"{strategy}-user")
                loads[design][strategy] = cluster.balancer.counts
                lost[design]["session"][strategy] = len(traffic.lost_session)
                lost[design]["cart"][strategy] = len(traffic.lost_cart(clients) | traffic.lost_session)
                if strategy == "sticky":
                    events[design].update(_crash_under_sticky(cluster, clients, traffic))
                elif strategy == "ip_hash":  # last: it adds a server
                    # where addresses go is the balancer's business, not the design's: probe it once
                    first = design == MEMORY
                    found, share = _add_under_ip_hash(cluster, clients, traffic, probe_ips if first else [])
                    events[design].update(found)
                    if first:
                        remapped_share = share
        for _ in bar:
            pass
    finally:
        with ThreadPoolExecutor(max(len(clusters), 1), thread_name_prefix="statelab-stop") as pool:
            list(pool.map(Cluster.stop, clusters))
    return _evidence(servers, users, requests, counts, loads, lost, events, remapped_share,
                     time.perf_counter() - began)


def _moved(clients: list[Client], homes: list[str | None], traffic: Traffic) -> tuple[int, int, int]:
    """Each client reads their cart now: (users now served elsewhere, of those who lost the session, the cart)."""
    moved = lost_session = lost_cart = 0
    for i, (c, home) in enumerate(zip(clients, homes, strict=True)):
        ex = c.cart()
        if ex.served_by != home:
            moved += 1
            lost_session += ex.status == 401
            lost_cart += books(ex) != traffic.added[i]
    return moved, lost_session, lost_cart


def _crash_under_sticky(cluster: Cluster, clients: list[Client], traffic: Traffic) -> dict[str, int]:
    """Crash the server most users are pinned to; count who is re-pinned and what they lose."""
    pins = [c.cookies.get(cluster.balancer.cookie_name) for c in clients]
    victim = max(set(pins), key=pins.count) or cluster.servers[0].name
    cluster.kill(victim)
    moved, lost_session, lost_cart = _moved(clients, pins, traffic)
    cluster.restart(victim)
    return {"sticky: users pinned to the crashed server": pins.count(victim), "sticky: users re-pinned": moved,
            "sticky: re-pinned users who lost their session": lost_session,
            "sticky: re-pinned users who lost their cart": lost_cart}


def _add_under_ip_hash(cluster: Cluster, clients: list[Client], traffic: Traffic,
                       probe_ips: list[str]) -> tuple[dict[str, int], float]:
    """Add one server under ip_hash: which addresses now go elsewhere, and what that does to sessions and carts."""
    probes = [Client(cluster.url, ip=ip) for ip in probe_ips]
    before = [p.health().served_by for p in probes]
    homes = [c.last.served_by if c.last else None for c in clients]  # ip_hash: every request went there
    cluster.add_server()
    after = [p.health().served_by for p in probes]
    moved, lost_session, lost_cart = _moved(clients, homes, traffic)
    share = (sum(a != b for a, b in zip(before, after, strict=True)) + moved) / (len(probes) + len(clients))
    return {"ip_hash: users remapped": moved, "ip_hash: remapped users who lost their session": lost_session,
            "ip_hash: remapped users who lost their cart": lost_cart}, share


#: Which checks judge each claim (see :class:`~statelab.experiments.Judgement`); ``_evidence()`` computes those checks
#: and adds to each claim the sentence of what was measured.
CLAIMS = {
    "stateful": Judgement(supports=(C_MEM_NO_AFFINITY, C_MEM_AFFINITY),
                          qualifies=(C_STORE_ANY, C_UNEVEN, C_MOVED_LOST)),
    "stateless": Judgement(supports=(C_TOKEN_ANY, C_DB_ANY, C_MOVED_KEPT), qualifies=(C_STORE_ANY,)),
    "5c": Judgement(supports=(C_EVEN, C_DB_ANY), qualifies=(C_STORE_ANY,)),
}


def _evidence(servers: int, users: int, requests: int, counts: list[int], loads: dict[str, Any],
              lost: dict[str, Any], events: dict[str, dict[str, int]], remapped_share: float,
              seconds: float) -> Evidence:
    unevenness = {d: {s: cv(list(loads[d][s].values())) for s in STRATEGIES} for d in DESIGNS}
    share_lost = {d: {kind: {s: lost[d][kind][s] / users for s in STRATEGIES} for kind in ("session", "cart")}
                  for d in DESIGNS}

    def worst(design: str, strategies: tuple[str, ...] = STRATEGIES) -> float:
        """The largest share of users who lost their session or cart, over ``strategies``."""
        return max(max(share_lost[design][kind][s] for s in strategies) for kind in ("session", "cart"))

    def moved(design: str) -> int:
        return events[design]["sticky: users re-pinned"] + events[design]["ip_hash: users remapped"]

    def moved_lost(design: str, what: str) -> int:
        e = events[design]
        return e[f"sticky: re-pinned users who lost their {what}"] + e[f"ip_hash: remapped users who lost their {what}"]

    rr = max(unevenness[d]["round_robin"] for d in DESIGNS)
    lc = max(unevenness[d]["least_connections"] for d in DESIGNS)
    affinity = statistics.fmean(unevenness[d][s] for d in DESIGNS for s in AFFINITY)
    memory = share_lost[MEMORY]
    others = (STORE, IN_TOKEN, IN_DB)
    checks = {
        # least connections follows busyness, not a rotation, so it may drift a little more than round robin
        C_EVEN: rr <= 0.1 and lc <= 0.3,
        C_UNEVEN: affinity >= max(0.15, rr + 0.1),
        C_MEM_NO_AFFINITY: min(memory["session"]["round_robin"], memory["session"]["least_connections"]) >= 0.5,
        C_MEM_AFFINITY: worst(MEMORY, AFFINITY) == 0,
        C_STORE_ANY: worst(STORE) == 0,
        C_TOKEN_ANY: worst(IN_TOKEN) == 0,
        C_DB_ANY: worst(IN_DB) == 0,
        C_REMAP: remapped_share >= 0.5,
        C_MOVED_LOST: moved(MEMORY) >= 1 and moved_lost(MEMORY, "session") == moved(MEMORY),
        C_MOVED_KEPT: all(moved(d) >= 1 and moved_lost(d, "session") == moved_lost(d, "cart") == 0 for d in others),
    }
    cv_rr = unevenness[IN_DB]["round_robin"]
    claims = judged(CLAIMS, {
        "stateful": (f"With sessions in each server's memory the balancer must keep affinity: round robin lost "
                     f"{memory['session']['round_robin']:.0%} of users their session, sticky and ip_hash "
                     f"{max(memory['session'][s] for s in AFFINITY):.0%}. Affinity has costs (load CV "
                     f"{unevenness[MEMORY]['sticky']:.2f} under sticky against "
                     f"{unevenness[MEMORY]['round_robin']:.2f} under round robin; {moved_lost(MEMORY, 'session')} "
                     f"of {moved(MEMORY)} users moved by a crash or a new server lost their session), and a "
                     f"shared session store needs none: it lost {worst(STORE):.0%} of users under any strategy."),
        "stateless": (f"Both token designs lost {max(worst(IN_TOKEN), worst(IN_DB)):.0%} of users their session "
                      f"or cart under any strategy, and kept every user a crash or a new server moved. The same "
                      f"held for sessions in a shared store ({worst(STORE):.0%} lost): what frees the balancer is "
                      f"that no server holds state the others lack, with or without sessions."),
        "5c": (f"Round robin spread the skewed traffic evenly (load CV {cv_rr:.2f} for token + cart in "
               f"db) with no sticky sessions and {worst(IN_DB):.0%} of users losing a session or cart; "
               f"a session design with a shared store gets the same freedom "
               f"({share_lost[STORE]['cart']['round_robin']:.0%} lost under round robin)."),
    })
    reading = (
        f"{users} users made {requests} requests, the 3 heaviest {sum(sorted(counts, reverse=True)[:3])}. Round "
        f"robin's load CV was at most {rr:.2f} and least connections' {lc:.2f}; sticky and ip_hash averaged "
        f"{affinity:.2f}. With sessions in memory, round robin lost {memory['session']['round_robin']:.0%} of users "
        f"their session and {memory['cart']['round_robin']:.0%} their cart; sticky and ip_hash lost "
        f"{worst(MEMORY, AFFINITY):.0%}. The shared store, the token with the cart inside and the token with the "
        f"cart in db lost {worst(STORE):.0%}, {worst(IN_TOKEN):.0%} and {worst(IN_DB):.0%} under any strategy. "
        f"Adding one server sent {remapped_share:.0%} of ip_hash addresses elsewhere."
    )
    measurements: dict[str, Any] = {
        "servers": servers, "users": users, "requests (after logins)": requests,
        "requests made by the 3 heaviest users": sum(sorted(counts, reverse=True)[:3]),
        **{f"load CV by strategy, {d}": unevenness[d] for d in DESIGNS},
        **{f"share of users who lost their session, {d}": share_lost[d]["session"] for d in DESIGNS},
        **{f"share of users who lost their cart, {d}": share_lost[d]["cart"] for d in DESIGNS},
        **{f"requests per server, {d}": loads[d] for d in DESIGNS},
        f"ip_hash: share of addresses remapped going from {servers} to {servers + 1} servers": remapped_share,
        **{f"events, {d}": events[d] for d in DESIGNS},
    }
    return record(Evidence(row=ROW, measurements=measurements, checks=checks, claims=claims, reading=reading,
                           seconds=seconds, extra={"unevenness": unevenness, "share_lost": share_lost,
                                                   "loads": loads, "events": events,
                                                   "remapped share": remapped_share, "key_numbers": {
                                                       "memory + round robin: users who lost their session":
                                                           f"{memory['session']['round_robin']:.0%}",
                                                       "token + cart in db: users who lost anything, any strategy":
                                                           f"{worst(IN_DB):.0%}",
                                                       "ip_hash addresses moved by one new server":
                                                           f"{remapped_share:.0%}"}}))
