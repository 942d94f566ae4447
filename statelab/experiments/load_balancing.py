"""Row "Load Balancing": does the balancer have to care where a user's session and cart live?

The source text says stateful load balancing "may require consideration of session affinity" and
stateless gives "simplified load balancing without session considerations" (benefit 5c).

The same traffic goes through each balancer strategy, to each of the four designs of
:data:`~statelab.experiments.DESIGNS`. Each user makes a random number of requests, heavy-tailed (most make a
few, some many: :func:`demand`), comes from an address of their own (``Client(ip=...)``, for ``ip_hash``), and
every third request of a user adds a book to the cart. Measured, per design and strategy:

* who lost their session (a 401 after logging in) or their cart (at the end it does not hold every book they
  added), and how evenly each strategy spread the requests (coefficient of variation of the per-server request
  counts: 0 is perfectly even);
* who moves when the pool changes, and what they lose: under ``sticky``, the users re-pinned when their server
  crashes; under ``ip_hash``, the users (and the share of many probed addresses) sent elsewhere when one server
  is added.

Then the affinity strategies' real problems, each measured on its own:

* **Crowd size.** With a small crowd, a few heavy users pinned to one server make the load uneven; under sticky,
  the same law of demand over a crowd ``crowd`` users strong evens out (the law of large numbers), so the small
  crowd's unevenness is not a property of affinity itself.
* **NAT.** Many users behind one address (an office, a campus, a carrier-grade NAT) are one address to
  ``ip_hash``: all of them land on one server. Sticky cookies tell them apart.
* **Changing address.** A phone that moves from Wi-Fi to its carrier changes address mid-session: ``ip_hash``
  sends it to another server, which does not hold its session in memory. A sticky cookie travels with it.

How the balancer learns a client's address: from ``X-Forwarded-For``, which the experiment's own clients set
(playing the edge proxy that reports each user's address); on this machine every connection comes from 127.0.0.1.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..client import Client, Exchange
from ..topology.cluster import Cluster, shared_store
from . import DESIGNS, Evidence, Judgement, check_size, checks, conditions, judged, progress, record

ROW = "load_balancing"
STRATEGIES = ("round_robin", "least_connections", "sticky", "ip_hash")  # affinity ones last: they change the pool
AFFINITY = ("sticky", "ip_hash")
MEMORY, STORE, IN_TOKEN, IN_DB = DESIGNS  # the four designs, in the collection's order
ADD_EVERY = 3  # every third request of a user adds a book; the others view the cart
MEAN = 2.5  # requests a user makes after logging in, on average (see demand())
NAT_ADDRESS = "203.0.113.10"  # a documentation address (RFC 5737), never contacted: one office's NAT

CHECKS = checks("""
round_robin_even <= 1, mechanism: round robin sent every server the same number of requests, give or take {t}
least_connections_even <= 0.3: least connections spread the requests with a load CV of at most {t}
small_crowd_uneven >= 0.15: with the small crowd, affinity (sticky, ip_hash) spread the load with a CV of at least {t}
crowd_evens_sticky <= 0.25: with the large crowd, sticky spread the load with a CV of at most {t}
memory_needs_affinity >= 25%: session + memory: without affinity (round robin, least connections) at least {t}% of
    users lost their session
memory_with_affinity, mechanism: session + memory: with affinity no user lost their session or cart
store_any_strategy, mechanism: session + shared store: no user lost their session or cart under any strategy
token_any_strategy, mechanism: token + cart in token: no user lost their session or cart under any strategy
db_any_strategy, mechanism: token + cart in db: no user lost their session or cart under any strategy, round robin
    included
ip_hash_remaps >= 50%: adding a server sent at least {t}% of ip_hash addresses elsewhere
moved_lost, mechanism: session + memory: every user moved by a crash or a new server lost their session
moved_kept, mechanism: the other three designs: users moved by a crash or a new server kept their session and cart
nat_one_server, mechanism: ip_hash sent every user behind the one NAT address to one server
nat_hot >= 1.5, mechanism: under ip_hash the NAT's server took at least {t}x an even share of the requests
nat_sticky_spreads >= 2, mechanism: sticky cookies spread the users behind the NAT over at least {t} servers
mobile_lost, mechanism: session + memory under ip_hash: every phone whose new address led to another server lost its
    session (and at least one did)
mobile_sticky, mechanism: session + memory under sticky: no phone changed server when its address changed
mobile_kept, mechanism: token + cart in db under ip_hash: phones led to another server kept their session and cart
""")


def demand(users: int, mean: float, rng: random.Random, tail: float = 2.5) -> list[int]:
    """How many requests each of ``users`` makes after logging in: at least one, ``mean`` on average, heavy-tailed.

    Each user's count is drawn on its own from a Pareto law (shape ``tail``: most users make a few requests, a
    few make many), so a larger crowd has more heavy users but no one user's share grows with it. Sorted, heaviest
    first.
    """
    if users < 1 or mean < 1:
        raise ValueError("need at least one user and a mean of at least one request")
    scale = mean * (tail - 1) / tail  # a Pareto law of shape tail and minimum 1 has mean tail / (tail - 1)
    return sorted((max(1, round(scale * rng.paretovariate(tail))) for _ in range(users)), reverse=True)


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


def crowd_load(cluster: Cluster, strategy: str, counts: list[int], rng: random.Random,
               prefix: str = "crowd") -> dict[str, int]:
    """Requests per server when a crowd (``counts[i]`` requests from user i, each from an address of their own)
    goes through ``strategy``: what the balancer counted."""
    cluster.strategy = strategy
    cluster.balancer.reset_counts()
    clients = [Client(cluster.url, ip=ip) for ip in random_ips(len(counts), rng)]
    drive(clients, counts, rng, prefix=f"{prefix}-{strategy}-")
    return cluster.balancer.counts


def nat(cluster: Cluster, strategy: str, office: int, home: int, each: int, rng: random.Random) -> dict[str, Any]:
    """``office`` users behind one NAT address and ``home`` users with an address each, ``each`` requests apiece.

    Returns the requests per server, the servers that answered the office's users, and the share of all requests
    that the busiest office server took.
    """
    cluster.strategy = strategy
    cluster.balancer.reset_counts()
    ips = [NAT_ADDRESS] * office + random_ips(home, rng)
    clients = [Client(cluster.url, ip=ip) for ip in ips]
    drive(clients, [each] * len(clients), rng, prefix=f"nat-{strategy}-")
    counts = cluster.balancer.counts
    servers = {ex.served_by for c in clients[:office] for ex in c.history if ex.served_by}
    hot = max((counts.get(name, 0) for name in servers), default=0)
    return {"requests per server": counts, "servers the office reached": len(servers),
            "share of requests at the office's busiest server": hot / max(sum(counts.values()), 1)}


def mobile(cluster: Cluster, strategy: str, phones: int, rng: random.Random) -> dict[str, int]:
    """``phones`` users log in and add a book on Wi-Fi, then their address changes (Wi-Fi to carrier) and they
    read their cart: how many were sent to another server, and of those how many lost their session or cart."""
    cluster.strategy = strategy
    wifi = random_ips(phones, rng)
    carrier = [f"100.64.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(phones)]  # RFC 6598 space
    moved = lost_session = lost_cart = 0
    for i in range(phones):
        phone = Client(cluster.url, ip=wifi[i])
        phone.login(f"phone-{strategy}-{i}")
        home = phone.add_to_cart("book").served_by
        phone.ip = carrier[i]  # the same phone, the same cookie or token: a new address
        ex = phone.cart()
        if ex.served_by != home:
            moved += 1
            lost_session += ex.status == 401
            lost_cart += books(ex) != 1
    return {"phones": phones, "sent to another server": moved, "of those, lost their session": lost_session,
            "of those, lost their cart": lost_cart}


def run(*, quick: bool = False, servers: int = 4, users: int | None = None, crowd: int | None = None,
        probes: int | None = None, office: int | None = None, phones: int | None = None) -> Evidence:
    """Send the same traffic through every strategy, for each design, then change the pool; then the crowd, NAT
    and changing-address measurements.

    ``users`` users (the small crowd) each make a random number of requests (:func:`demand`, mean :data:`MEAN`)
    on a cluster of ``servers`` per design; ``probes`` extra addresses measure how ``ip_hash`` remaps when a
    server is added. ``crowd`` users with the same law of demand measure sticky's load again;
    ``office`` users share one NAT address beside as many at home; ``phones`` users change address mid-session.
    """
    users = users or 6
    crowd = crowd or (64 if quick else 80)
    probes = probes or 20
    office = office or 8
    phones = phones or (6 if quick else 8)
    check_size("servers", servers, 2, 12)
    check_size("users", users, 2, 200)
    check_size("crowd", crowd, users, 1000)
    check_size("probes", probes, 1, 1000)
    check_size("office", office, 2, 200)
    check_size("phones", phones, 1, 200)
    began = time.perf_counter()
    store_kind = shared_store()  # session + shared store: Valkey where one can run, else SQLite
    rng = random.Random()
    counts = demand(users, MEAN, rng)
    ips = random_ips(users + probes, rng)
    user_ips, probe_ips = ips[:users], ips[users:]
    rng.shuffle(user_ips)
    loads: dict[str, dict[str, dict[str, int]]] = {d: {} for d in DESIGNS}
    lost: dict[str, dict[str, dict[str, int]]] = {d: {"session": {}, "cart": {}} for d in DESIGNS}
    events: dict[str, dict[str, int]] = {d: {} for d in DESIGNS}
    remapped_share = 0.0
    steps = [(d, s) for d in DESIGNS for s in STRATEGIES] + ["large crowd", "NAT", "phones"]
    bar = iter(progress(steps, "strategies"))
    clusters: dict[str, Cluster] = {}
    try:
        for design, options in DESIGNS.items():
            if design == STORE:
                options = {**options, "store": store_kind}
            cluster = clusters[design] = Cluster(servers, **options)
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
        # Routing does not depend on the design: the crowd and the NAT reuse the cheapest design's cluster, the
        # phones the clusters of the design that needs affinity and of one that does not (each has grown by one
        # server under ip_hash).
        pool_size = len(clusters[IN_TOKEN].servers)
        next(bar)
        large_counts = demand(crowd, MEAN, rng)
        large = {"sticky": crowd_load(clusters[IN_TOKEN], "sticky", large_counts, rng)}
        next(bar)
        behind = {s: nat(clusters[IN_TOKEN], s, office, office, 2, rng) for s in AFFINITY}
        next(bar)
        moving = {"session + memory, ip_hash": mobile(clusters[MEMORY], "ip_hash", phones, rng),
                  "session + memory, sticky": mobile(clusters[MEMORY], "sticky", phones, rng),
                  "token + cart in db, ip_hash": mobile(clusters[IN_DB], "ip_hash", phones, rng)}
        for _ in bar:
            pass
    finally:
        with ThreadPoolExecutor(max(len(clusters), 1), thread_name_prefix="statelab-stop") as pool:
            list(pool.map(Cluster.stop, clusters.values()))
    crowds = {"small": {"users": users, "requests": sum(counts), "heaviest share": counts[0] / sum(counts)},
              "large": {"users": crowd, "requests": sum(large_counts),
                        "heaviest share": large_counts[0] / sum(large_counts)}}
    return _evidence(servers, crowds, loads, lost, events, remapped_share, large, behind, moving, office,
                     time.perf_counter() - began, store_kind, pool_size)


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
    pins = [c.last.served_by if c.last else None for c in clients]  # under sticky: the server each is pinned to
    victim = max(set(pins) - {None}, key=pins.count, default=None) or cluster.servers[0].name
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
#: and adds to each claim the sentence of what was measured. Affinity's limits are its real costs (users moved and
#: what they lose, NAT, changing addresses), not the small crowd's unevenness, which a larger crowd evens out.
CLAIMS = {
    "stateful": Judgement(supports=(CHECKS.memory_needs_affinity, CHECKS.memory_with_affinity),
                          qualifies=(CHECKS.store_any_strategy, CHECKS.moved_lost, CHECKS.nat_hot, CHECKS.mobile_lost)),
    "stateless": Judgement(supports=(CHECKS.token_any_strategy, CHECKS.db_any_strategy, CHECKS.moved_kept,
                                     CHECKS.mobile_kept), qualifies=(CHECKS.store_any_strategy,)),
    "5c": Judgement(supports=(CHECKS.round_robin_even, CHECKS.db_any_strategy), qualifies=(CHECKS.store_any_strategy,)),
}


def _evidence(servers: int, crowds: dict[str, dict[str, Any]], loads: dict[str, Any], lost: dict[str, Any],
              events: dict[str, dict[str, int]], remapped_share: float, large: dict[str, dict[str, int]],
              behind: dict[str, dict[str, Any]], moving: dict[str, dict[str, int]], office: int,
              seconds: float, store_kind: str = "sqlite", pool_size: int = 0) -> Evidence:
    users = crowds["small"]["users"]
    unevenness = {d: {s: cv(list(loads[d][s].values())) for s in STRATEGIES} for d in DESIGNS}
    large_cv = {s: cv(list(counts.values())) for s, counts in large.items()}
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

    spread = max(max(loads[d]["round_robin"].values()) - min(loads[d]["round_robin"].values()) for d in DESIGNS)
    lc = max(unevenness[d]["least_connections"] for d in DESIGNS)
    small_affinity = statistics.fmean(unevenness[d][s] for d in DESIGNS for s in AFFINITY)
    memory = share_lost[MEMORY]
    no_affinity = min(memory["session"]["round_robin"], memory["session"]["least_connections"])
    others = (STORE, IN_TOKEN, IN_DB)
    hot = behind["ip_hash"]["share of requests at the office's busiest server"]
    pool_size = pool_size or servers + 1  # the crowd, the NAT and the phones met the grown clusters
    even = 1 / pool_size
    phone_mem, phone_sticky, phone_db = (moving["session + memory, ip_hash"], moving["session + memory, sticky"],
                                         moving["token + cart in db, ip_hash"])
    token_moved = moved(IN_TOKEN) + moved(IN_DB) + phone_db["sent to another server"]
    # a lost session shows as a lost cart too (a 401 holds no cart), so the carts count who lost anything
    token_moved_lost = moved_lost(IN_TOKEN, "cart") + moved_lost(IN_DB, "cart") + phone_db["of those, lost their cart"]
    checks = [
        CHECKS.round_robin_even(spread,
                                shown=f"{spread} request(s) between the busiest and the idlest server (needs <= 1)"),
        CHECKS.least_connections_even(lc),
        CHECKS.small_crowd_uneven(small_affinity, shown=f"CV {small_affinity:.2f} with {users} users "
                                                        f"(needs >= {CHECKS.small_crowd_uneven.threshold})"),
        CHECKS.crowd_evens_sticky(large_cv["sticky"],
                                  shown=f"CV {large_cv['sticky']:.2f} with {crowds['large']['users']} "
                                                            f"users (needs <= {CHECKS.crowd_evens_sticky.threshold})"),
        CHECKS.memory_needs_affinity(round(no_affinity * 100)),
        CHECKS.memory_with_affinity(ok=worst(MEMORY, AFFINITY) == 0, shown=f"{worst(MEMORY, AFFINITY):.0%} lost"),
        CHECKS.store_any_strategy(ok=worst(STORE) == 0, shown=f"{worst(STORE):.0%} lost"),
        CHECKS.token_any_strategy(ok=worst(IN_TOKEN) == 0, shown=f"{worst(IN_TOKEN):.0%} lost"),
        CHECKS.db_any_strategy(ok=worst(IN_DB) == 0, shown=f"{worst(IN_DB):.0%} lost"),
        CHECKS.ip_hash_remaps(round(remapped_share * 100)),
        CHECKS.moved_lost(ok=moved(MEMORY) >= 1 and moved_lost(MEMORY, "session") == moved(MEMORY),
                          shown=f"{moved_lost(MEMORY, 'session')} of {moved(MEMORY)} moved"),
        CHECKS.moved_kept(ok=all(moved(d) >= 1 and moved_lost(d, "session") == moved_lost(d, "cart") == 0
                                 for d in others),
                          shown=", ".join(f"{d}: {moved_lost(d, 'cart')} of {moved(d)} lost" for d in others)),
        CHECKS.nat_one_server(ok=behind["ip_hash"]["servers the office reached"] == 1,
                              shown=f"{office} users reached "
                                    f"{behind['ip_hash']['servers the office reached']} server(s)"),
        CHECKS.nat_hot(hot / even, shown=f"{hot:.0%} of the requests against an even {even:.0%}: {hot / even:.2f}x "
                                         f"(needs >= {CHECKS.nat_hot.threshold}x)"),
        CHECKS.nat_sticky_spreads(behind["sticky"]["servers the office reached"]),
        CHECKS.mobile_lost(ok=phone_mem["sent to another server"] >= 1
                           and phone_mem["of those, lost their session"] == phone_mem["sent to another server"],
                           shown=f"{phone_mem['of those, lost their session']} of "
                                 f"{phone_mem['sent to another server']} moved phones (of {phone_mem['phones']})"),
        CHECKS.mobile_sticky(ok=phone_sticky["sent to another server"] == 0,
                             shown=f"{phone_sticky['sent to another server']} of {phone_sticky['phones']} moved"),
        CHECKS.mobile_kept(ok=phone_db["sent to another server"] >= 1 and phone_db["of those, lost their session"]
                           == phone_db["of those, lost their cart"] == 0,
                           shown=f"{phone_db['of those, lost their cart']} of "
                                 f"{phone_db['sent to another server']} moved phones lost anything"),
    ]
    claims = judged(CLAIMS, {
        "stateful": (f"With sessions in each server's memory the balancer must keep affinity: round robin lost "
                     f"{memory['session']['round_robin']:.0%} of users their session, sticky and ip_hash "
                     f"{max(memory['session'][s] for s in AFFINITY):.0%}. Affinity has costs: "
                     f"{moved_lost(MEMORY, 'session')} of {moved(MEMORY)} users moved by a crash or a new server lost "
                     f"their session; {office} users behind one NAT address reached "
                     f"{behind['ip_hash']['servers the office reached']} server(s) under ip_hash ({hot:.0%} of the "
                     f"requests, against an even {even:.0%}); and "
                     f"{phone_mem['of those, lost their session']} of {phone_mem['phones']} phones lost their session "
                     f"when their address changed. A shared session store needs no affinity: it lost "
                     f"{worst(STORE):.0%} of users under any strategy."),
        "stateless": (f"Both token designs lost {max(worst(IN_TOKEN), worst(IN_DB)):.0%} of users their session "
                      f"or cart under any strategy; of the {token_moved} users a crash, a new server or a new "
                      f"address moved, {token_moved_lost} lost anything. Sessions in a shared store lost "
                      f"{worst(STORE):.0%} too: what frees the balancer is that no server holds state the others "
                      f"lack, with or without sessions."),
        "5c": (f"Round robin spread the requests evenly ({spread} request(s) between the busiest and the idlest "
               f"server) with no sticky sessions and {worst(IN_DB):.0%} of users losing a session or cart with the "
               f"token and the cart in db; a session design with a shared store gets the same freedom "
               f"({share_lost[STORE]['cart']['round_robin']:.0%} lost under round robin)."),
    })
    small, big = crowds["small"], crowds["large"]
    reading = (
        f"{users} users made {small['requests']} requests after logging in, the heaviest user "
        f"{small['heaviest share']:.0%} of them. Round robin's busiest and idlest servers differed by at most "
        f"{spread} request(s) and least connections' load CV was at most {lc:.2f}; sticky and ip_hash averaged a "
        f"CV of {small_affinity:.2f}, a small-crowd effect: with {big['users']} users (the heaviest "
        f"{big['heaviest share']:.0%} of the requests) sticky's CV was {large_cv['sticky']:.2f}. "
        f"With sessions in memory, round robin lost {memory['session']['round_robin']:.0%} of users their session; "
        f"sticky and ip_hash lost {worst(MEMORY, AFFINITY):.0%}. The shared store, the token with the cart inside "
        f"and the token with the cart in db lost {worst(STORE):.0%}, {worst(IN_TOKEN):.0%} and {worst(IN_DB):.0%} "
        f"under any strategy. Adding one server sent {remapped_share:.0%} of ip_hash addresses elsewhere. Behind one "
        f"NAT address, {office} users reached {behind['ip_hash']['servers the office reached']} server under ip_hash "
        f"and {behind['sticky']['servers the office reached']} under sticky. Of {phone_mem['phones']} phones that "
        f"changed address, ip_hash sent {phone_mem['sent to another server']} elsewhere and "
        f"{phone_mem['of those, lost their session']} lost their session; sticky moved "
        f"{phone_sticky['sent to another server']}."
    )
    measurements: dict[str, Any] = {
        "servers": servers, "users (small crowd)": users, "requests after logins (small crowd)": small["requests"],
        "heaviest user's share of requests (small crowd)": small["heaviest share"],
        **{f"load CV by strategy, {d}": unevenness[d] for d in DESIGNS},
        **{f"share of users who lost their session, {d}": share_lost[d]["session"] for d in DESIGNS},
        **{f"share of users who lost their cart, {d}": share_lost[d]["cart"] for d in DESIGNS},
        **{f"requests per server, {d}": loads[d] for d in DESIGNS},
        f"ip_hash: share of addresses remapped going from {servers} to {servers + 1} servers": remapped_share,
        **{f"events, {d}": events[d] for d in DESIGNS},
        "servers for the large crowd, the NAT and the phones": pool_size,
        "users (large crowd)": big["users"], "requests after logins (large crowd)": big["requests"],
        "heaviest user's share of requests (large crowd)": big["heaviest share"],
        "load CV by strategy, large crowd": large_cv, "requests per server, large crowd": large,
        "NAT: users behind one address, and as many at home": office,
        **{f"NAT under {s}": behind[s] for s in AFFINITY},
        **{f"phones changing address, {k}": v for k, v in moving.items()},
    }
    where = conditions(
        designs=list(DESIGNS), servers=(f"{servers} per cluster ({pool_size} for the large crowd, the NAT and the "
                                        f"phones), threads of one process (the notebook's)"),
        crowd=(f"{users} users (small) and {big['users']} (large), each making a random number of requests "
               f"(heavy-tailed, {MEAN:g} on average after logging in); {office} users behind one NAT address beside "
               f"{office} at home; {phone_mem['phones']} phones changing address"),
        **{"session + shared store": "sessions in Valkey (a server process on this machine)" if store_kind == "valkey"
                                     else "sessions in one SQLite file (Valkey is not available here)",
           "client addresses": "sent by the experiment's own clients as X-Forwarded-For, which the balancer uses "
                               "for ip_hash (they play the edge proxy that reports each user's address; every "
                               "connection here comes from 127.0.0.1)"})
    return record(Evidence(row=ROW, measurements=measurements, checks=checks, claims=claims, reading=reading,
                           seconds=seconds, conditions=where,
                           extra={"unevenness": unevenness, "share_lost": share_lost, "large_cv": large_cv,
                                  "loads": loads, "events": events, "nat": behind, "mobile": moving,
                                  "crowds": crowds, "remapped share": remapped_share, "key_numbers": {
                                      "memory + round robin: users who lost their session":
                                          f"{memory['session']['round_robin']:.0%}",
                                      "token + cart in db: users who lost anything, any strategy":
                                          f"{worst(IN_DB):.0%}",
                                      f"sticky's load CV, {users} / {big['users']} users":
                                          f"{unevenness[MEMORY]['sticky']:.2f} / {large_cv['sticky']:.2f}",
                                      "ip_hash: share of requests at the NAT's server": f"{hot:.0%}"}}))


#: Why the measured answer is what it is: the "you predicted; you measured" cell of notebook 10 shows it.
WHY = ("a request needs the server that holds its state only when the state lives on one server: a shared store, a "
       "token or a cart table lets any server answer.")


def answer(ev: Evidence) -> str:
    """Which of notebook 10's prediction choices this run measured: which designs lost sessions under round robin."""
    lost = [d for d in DESIGNS if ev.measurements[f"share of users who lost their session, {d}"]["round_robin"] > 0]
    return {(): "none of them", ("session + memory",): "only session + memory",
            ("session + memory", "session + shared store"): "both session designs",
            tuple(DESIGNS): "every design"}.get(tuple(lost), ", ".join(lost))
