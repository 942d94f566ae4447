"""Row "Scalability": add servers behind a balancer; who still finds their session, and what does not scale?

The seed says stateful "scaling requires synchronization of session data" and stateless
"horizontal scaling is straightforward" (benefit 5a: "high scalability"). Two different things
hide in "scaling", and this experiment measures both, honestly about what one process can show:

* **Load-balancing correctness (affinity).** Each design of :data:`~statelab.experiments.DESIGNS`
  grows from one server to ``servers`` (``cluster.add_server()``, live); at each size a crowd logs
  in and writes to its carts in a random interleaving. Counted: the share of requests that found
  their session (not a 401), and the users whose cart kept every write. Sessions in each server's
  memory behind round robin find theirs about 1 time in N; sticky routing, a shared store and both
  token designs find it every time. One more condition of "any server answers a token": a server
  started with a key of its own refuses every token.
* **Capacity.** Every server here is a thread of the notebook's one Python process: adding one
  adds no CPU, so the requests per second that N servers answer are measured only to show that
  (the notebook's box "What one process on one machine cannot show"). What *does* show here is the
  shared data tier's limit: SQLite lets many readers work at once but one writer at a time, so cart
  writes to the one shared table (what ``cart="db"`` and a shared session store do on every write)
  do not grow with the number of servers writing, next to reads of the same table.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .. import load
from ..client import Client
from ..shop.server import Server
from ..topology.cluster import Cluster
from . import DESIGNS, Evidence, Judgement, judged, progress, record

ROW = "scalability"

#: What grows: label -> (design of DESIGNS, balancer strategy). Per-server memory twice: with the
#: plain round robin that breaks it, and with sticky routing, the fix that needs no synchronization.
SETUPS: dict[str, tuple[str, str]] = {
    "session + memory, round robin": ("session + memory", "round_robin"),
    "session + memory, sticky": ("session + memory", "sticky"),
    "session + shared store": ("session + shared store", "round_robin"),
    "token + cart in token": ("token + cart in token", "round_robin"),
    "token + cart in db": ("token + cart in db", "round_robin"),
}
BROKEN = "session + memory, round robin"
#: The design whose request rate shows that added servers add no capacity in one process (no shared state at all).
CAPACITY = "token + cart in token"
#: The design whose shared cart table shows the one-writer limit.
SHARED = "token + cart in db"
#: Seconds of work each cart request does in :func:`shared_writer` (inside the write transaction, for a write).
HOLD = 0.01

C_FALLS = ("with sessions in each server's memory and round robin, fewer requests find their session "
           "as servers are added")
C_ONE_IN_N = "that share is about 1/N"
C_STICKY = "sticky routing keeps every session in per-server memory, with no synchronization"
C_STORE = "a shared session store keeps every session and cart at every size"
C_TOKEN = "tokens with the cart inside keep every session and cart at every size"
C_DB = "tokens with the cart in a shared table keep every session and cart at every size"
C_KEY = "a server started with its own signing key refuses every token: the key must be shared"
C_WRITER = "cart writes to the one shared SQLite table queue: N servers writing get no more writes per second than one"
C_READS = "reads of the same table do not queue: they grow with the servers reading"


def shop(url: str, users: int, requests: int, rng: random.Random,
         prefix: str = "u") -> tuple[float, float, list[Client]]:
    """Log ``users`` new users in, let each add a book ``requests`` times (interleaved at random), then read the carts.

    Returns the share of cart writes that found their session (200, not 401), the share of users whose
    cart then holds every book they added, and the clients.
    """
    clients = [Client(url) for _ in range(users)]
    for i, c in enumerate(clients):
        c.login(f"{prefix}{i}")
    turns = [c for c in clients for _ in range(requests)]
    rng.shuffle(turns)
    found = sum(c.add_to_cart("book").status == 200 for c in turns)
    kept = sum(_books(c.cart()) == requests for c in clients)
    return found / len(turns), kept / users, clients


def _books(ex: Any) -> int:
    """How many books an answer to ``GET /cart`` shows (0 for an error)."""
    if ex.status != 200 or not isinstance(ex.body, dict):
        return 0
    return sum(line.get("qty", 0) for line in ex.body.get("cart", []) if line.get("item") == "book")


def shared_writer(carts: Any, sizes: list[int], hold: float = 0.01, each: int = 3) -> dict[str, dict[int, float]]:
    """Cart writes and cart reads per second on one shared cart table, from each of ``sizes`` servers at once.

    Each "server" is a thread that does ``each`` times what a server does for one cart request, with
    ``hold`` seconds of work in it (checking stock, pricing: real transactions do some): a write runs
    that work inside ``carts.update``, that is inside the table's write transaction; a read does
    ``carts.get`` and then the work. HTTP is left out on purpose: in one process its own cost would
    hide the table's. SQLite lets one writer in at a time, so writes should queue; reads should not.
    """
    cart = [{"item": "ddia", "qty": 1}, {"item": "sicp", "qty": 2}]

    def write(k: int) -> None:
        for n in range(each):
            carts.update(f"writer-{k}-{n}", lambda _: (time.sleep(hold), cart)[1])

    def read(k: int) -> None:
        for n in range(each):
            carts.get(f"writer-{k}-{n}")
            time.sleep(hold)

    out: dict[str, dict[int, float]] = {"writes": {}, "reads": {}}
    for k in sizes:
        for kind, work in (("writes", write), ("reads", read)):
            threads = [threading.Thread(target=work, args=(i,), name=f"statelab-writer-{i}") for i in range(k)]
            began = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            out[kind][k] = k * each / (time.perf_counter() - began)
    return out


def write_us(carts: Any, calls: int = 40) -> float:
    """Median time of one real cart write on the shared table, in microseconds (no added work)."""
    times = []
    for n in range(calls):
        start = time.perf_counter()
        carts.update(f"timing-{n % 4}", lambda cart: cart)
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


def run(*, quick: bool = False, servers: int | None = None, users: int | None = None,
        requests: int | None = None, fix_users: int | None = None, fix_requests: int | None = None) -> Evidence:
    """Grow each set-up from 1 to ``servers`` servers; count who finds their session; measure what does not scale.

    At every size, ``users`` new users (``fix_users`` on the set-ups that keep sessions, which do not
    vary from run to run) each log in and add a book ``requests`` (``fix_requests``) times in a random
    interleaving (``quick``: those set-ups at the largest size only). Then the key check, the request
    rate at 1 and at ``servers`` servers, and the shared cart table's writes and reads per second.
    """
    servers = servers or 4
    users = users or (8 if quick else 10)
    requests = requests or 4
    fix_users = fix_users or 4
    fix_requests = fix_requests or 2
    if not 2 <= servers <= 12:
        raise ValueError("servers must be from 2 to 12")
    if min(users, requests, fix_users, fix_requests) < 1:
        raise ValueError("users and requests must be at least 1")
    began = time.perf_counter()
    rng = random.Random()
    sizes = list(range(1, servers + 1))
    top = sizes[-1]
    found: dict[str, dict[int, float]] = {label: {} for label in SETUPS}
    kept: dict[str, dict[int, float]] = {label: {} for label in SETUPS}
    bar = iter(progress([(label, n) for n in sizes for label in SETUPS] + ["key and capacity", "writer"],
                        "adding servers"))

    clusters: dict[str, Cluster] = {}
    try:
        for label, (design, strategy) in SETUPS.items():
            clusters[label] = Cluster(1, balancer=strategy, **DESIGNS[design])
        for n in sizes:
            for label, c in clusters.items():
                next(bar)
                if n > 1:
                    c.add_server()  # live: the balancer routes to it from the next request on
                if quick and label != BROKEN and n != top:
                    continue  # quick: the set-ups that keep sessions are measured at the largest size only
                u, r = (users, requests) if label == BROKEN else (fix_users, fix_requests)
                found[label][n], kept[label][n], _ = shop(c.url, u, r, rng, prefix=f"n{n}-")
        next(bar)
        sent, refused = _own_key(clusters[CAPACITY])
        capacity = _capacity(clusters[CAPACITY], top)
        next(bar)
        writer = shared_writer(clusters[SHARED].carts, sizes, hold=HOLD)
        writer["write us"] = {1: write_us(clusters[SHARED].carts)}
        for _ in bar:
            pass
    finally:
        if clusters:
            with ThreadPoolExecutor(len(clusters), thread_name_prefix="statelab-stop") as pool:
                list(pool.map(Cluster.stop, clusters.values()))
    return _evidence(sizes, found, kept, capacity, sent, refused, writer, time.perf_counter() - began)


def _requests_per_second(c: Cluster, concurrency: int, seconds: float) -> float:
    """``GET /cart`` per second that the cluster answers (a separate load-generator process sends them)."""
    alice = Client(c.url)
    alice.login("capacity-probe")
    result = load.run(c.url, duration=seconds, concurrency=concurrency, path="/cart",
                      headers={"Authorization": f"Bearer {alice.token}"})
    return result.rps if result.errors == 0 else 0.0


def _capacity(grown: Cluster, top: int, rounds: int = 2, seconds: float = 0.2) -> dict[int, float]:
    """Requests per second of one server and of ``grown`` (``top`` servers), the same clients for both.

    Interleaved rounds, the best of each kept: other work on a shared machine only ever slows a round.
    """
    out = {1: 0.0, top: 0.0}
    with Cluster(1, **DESIGNS[CAPACITY]) as one:
        for _ in range(rounds):
            for n, cluster in ((1, one), (top, grown)):
                out[n] = max(out[n], _requests_per_second(cluster, concurrency=2 * top, seconds=seconds))
    return out


def _own_key(c: Cluster) -> tuple[int, int]:
    """Hand the cluster's tokens to a server started with a key of its own: how many does it refuse?"""
    tokens = []
    for i in range(3):
        user = Client(c.url)
        user.login(f"key-probe-{i}")
        tokens.append(user.token)
    with Server("stateless", name="new-server-own-key") as outsider:
        outsider.start()
        answers = []
        for token in tokens:
            probe = Client(outsider.url)
            probe.token = token
            answers.append(probe.cart().status)
    return len(answers), sum(status == 401 for status in answers)


#: Which checks judge each claim (see :class:`~statelab.experiments.Judgement`); ``_evidence()`` computes those checks
#: and adds to each claim the sentence of what was measured.
CLAIMS = {
    "stateful": Judgement(supports=(C_FALLS,), qualifies=(C_STICKY,)),
    "stateless": Judgement(supports=(C_TOKEN, C_DB), qualifies=(C_KEY, C_WRITER)),
    "5a": Judgement(supports=(C_TOKEN, C_DB), qualifies=(C_WRITER,)),
}


def _evidence(sizes: list[int], found: dict[str, dict[int, float]], kept: dict[str, dict[int, float]],
              capacity: dict[int, float], sent: int, refused: int, writer: dict[str, dict[int, float]],
              seconds: float) -> Evidence:
    top = sizes[-1]
    broken = found[BROKEN]

    def always(label: str) -> float:
        return min(min(found[label].values()), min(kept[label].values()))

    deviation = statistics.fmean(abs(broken[n] - 1 / n) for n in sizes)
    writes, reads = writer["writes"], writer["reads"]
    ceiling = 1 / HOLD  # one writer at a time, each holding the lock HOLD seconds
    read_growth = reads[top] / reads[1] if reads[1] else float("inf")
    capacity_growth = capacity[top] / capacity[1] if capacity.get(1) else float("inf")
    checks = {
        C_FALLS: broken[1] >= 0.95 and broken[1] - broken[top] >= 0.3,
        C_ONE_IN_N: deviation <= 0.15,
        C_STICKY: min(found["session + memory, sticky"].values()) >= 0.99,
        C_STORE: always("session + shared store") >= 0.99,
        C_TOKEN: always("token + cart in token") >= 0.99,
        C_DB: always("token + cart in db") >= 0.99,
        C_KEY: sent >= 1 and refused == sent,
        # one writer at a time: N writers stay under one writer's ceiling (concurrent writers would reach N times it)
        C_WRITER: writes[top] <= 1.15 * ceiling,
        C_READS: read_growth >= top / 2,
    }
    sticky = min(found["session + memory, sticky"].values())
    fixed = min(min(found[k].values()) for k in SETUPS if k != BROKEN)
    queue = (f"{writes[1]:,.0f} cart writes per second from 1 server and {writes[top]:,.0f} from {top} "
             f"(reads: {reads[1]:,.0f} and {reads[top]:,.0f})")
    claims = judged(CLAIMS, {
        "stateful": (f"Adding servers broke sessions kept in each server's memory: {broken[1]:.0%} of requests "
                     f"found their session on 1 server, {broken[top]:.0%} on {top}. Synchronization is one fix, "
                     f"not the only one: sticky routing kept {sticky:.0%} with none (at the price of affinity, "
                     f"notebook 10); a shared store kept {always('session + shared store'):.0%} by making every "
                     f"server read and write one table."),
        "stateless": (f"Any server answered any token at every size, with the cart in the token "
                      f"({always('token + cart in token'):.0%} of requests and carts kept) or in a shared table "
                      f"({always('token + cart in db'):.0%}). On two conditions: every server holds the same "
                      f"signing key (a server with its own refused {refused} of {sent} tokens), and a cart in a "
                      f"shared table moves the state to a data tier that does not scale out with the servers: "
                      f"{queue}."),
        "5a": (f"No session management was needed for any server to take any request. What does not "
               f"scale out is the shared data: {queue}."),
    })
    reading = (
        f"With sessions in each server's memory and round robin, {broken[1]:.0%} of requests found their session "
        f"on 1 server and {broken[top]:.0%} on {top} (1/N = {1 / top:.0%}); sticky routing, a shared store and both "
        f"token designs found it in at least {fixed:.0%} of requests at every size. "
        f"{top} servers answered {capacity.get(top, 0):,.0f} requests per second and one server "
        f"{capacity.get(1, 0):,.0f} ({capacity_growth:.1f}x for {top}x the servers, all threads of one process). "
        f"With {HOLD * 1000:.0f} ms of work per "
        f"request, the shared cart table took {queue}; one real cart write took "
        f"{writer['write us'][1]:.0f} us."
    )
    measurements: dict[str, Any] = {
        "servers": sizes,
        "share found, session + memory, round robin": broken,
        "1/N": {n: round(1 / n, 3) for n in sizes},
        **{f"share found, {label}": found[label] for label in SETUPS if label != BROKEN},
        **{f"carts kept whole, {label}": kept[label] for label in SETUPS},
        f"requests per second, {CAPACITY}": capacity,
        "tokens sent to a server with its own key": sent,
        "tokens it refused": refused,
        "shared cart table: writes per second by writers": writes,
        "shared cart table: reads per second by readers": reads,
        "work per cart request in that test (ms)": HOLD * 1000,
        "one real cart write (us)": writer["write us"][1],
    }
    return record(Evidence(row=ROW, measurements=measurements, checks=checks, claims=claims, reading=reading,
                           seconds=seconds, extra={"found": found, "kept": kept, "sizes": sizes, "writer": writer,
                                                   "capacity": capacity, "key_numbers": {
                                                       f"memory + round robin: requests finding their session "
                                                       f"at {top} servers": f"{broken[top]:.0%}",
                                                       "the other set-ups, at every size": f"{fixed:.0%}",
                                                       f"shared-table writes per second, 1 / {top} servers":
                                                           f"{writes[1]:,.0f} / {writes[top]:,.0f}"}}))
