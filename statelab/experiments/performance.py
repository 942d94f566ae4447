"""Performance: is a stateless request faster because it has no session to look up?

The source text says a stateful server "may experience increased latency due to session management"
and a stateless one has "typically faster response times due to lack of session overhead".
Both sides work on every request to learn who is asking: a stateful server that can scale out
looks the session id up in a *shared* store, across a network; a stateless server checks the
token's signature where it runs, and, because the cart travels inside the token here, signs a new
token on every cart write. So the fair comparison is the token check against the shared-store
lookup *at a distance*, and this experiment measures:

* in-process (``timeit``, short interleaved rounds, the best round): a session lookup in memory (the
  lower bound: a design that cannot scale out) and in the shared store (Valkey over loopback, no
  distance); per algorithm (HS256, RS256, ES256) signing and verifying a token the way the server
  does (PyJWT), and the cryptography alone over the same signing input (``hmac`` for HS256, the
  ``cryptography`` package PyJWT uses for RSA and ECDSA);
* end to end, at a distance: a real Valkey behind a :class:`statelab.network.Link` whose one-way
  delay is swept (0 to 2 ms); at each distance ``GET /cart`` and ``POST /cart`` round trips to
  every design, interleaved so each meets the same machine noise, the store round trips each
  request made (the link counts them) and the exact bytes on the wire. The **crossover** is the
  nearest swept distance from which the token design answers faster at every farther one.

Checks rest on large in-process ratios, on round trips and bytes counted, and on medians of paired
round trips where the difference grows with distance; a close difference is shown, not judged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import tempfile
import time
import timeit
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..load import percentile
from ..production import redis as valkey
from ..rawhttp import WireExchange, WireUser
from ..shop.carts import SqliteCartStore
from ..shop.sessions import MemoryStore, SqliteStore
from ..shop.tokens import ALGORITHMS, Keyring
from ..topology.cluster import Cluster, valkey_available
from . import Evidence, Judgement, check_size, checks, conditions, judged, progress, record

ROW = "performance"
CART = [("ddia", 1), ("sicp", 2), ("tcp-ip", 1)]
MEMORY = "session + memory"
SHARED = "session + shared store"
SESSION_DESIGNS = (MEMORY, SHARED)
HS, RS = "token + cart in token (HS256)", "token + cart in token (RS256)"
TOKEN_DESIGNS = (HS, RS)
DB_DESIGN = "token + cart in db"

#: One-way distances swept between the servers and the shared store, in milliseconds.
DISTANCES_MS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)

#: The designs timed end to end, in the order they are shown: (label, ``Cluster`` keyword arguments), one server
#: each. A cluster with a ``distance`` keeps its shared part (sessions, or the cart table) in its own Valkey behind
#: a :class:`~statelab.network.Link`, which the sweep moves; the cart-in-db token is HS256.
DESIGNS: tuple[tuple[str, dict[str, Any]], ...] = (
    (MEMORY, {"mode": "stateful"}),
    (SHARED, {"mode": "stateful", "store": "valkey", "distance": 0.0}),
    (HS, {"mode": "stateless", "algorithm": "HS256"}),
    (RS, {"mode": "stateless", "algorithm": "RS256"}),
    (DB_DESIGN, {"mode": "stateless", "cart": "db", "distance": 0.0}),
)

# The checks: each threshold written once, here; the label says it and the call compares with it.
CHECKS = checks("""
memory_lookup_cheap < 0.2: a memory session lookup (the lower bound, one process only) costs under {t} of the cheapest
    token check
store_lookup > 10x: a shared-store lookup, with no distance, costs over {t}x a memory lookup
parsing < 0.25: the cryptography is under {t} of an HS256 check: PyJWT's parsing is the rest
asymmetric_check > 1.2x: RS256 and ES256 checks cost over {t}x an HS256 check
rs256_sign > 5x: signing an RS256 token costs over {t}x signing an HS256 one
crossover <= 2.0 ms: a token GET /cart (HS256) answers faster than a shared-store session GET /cart from a store
    distance of at most {t} ms one way, and at every distance beyond
not_faster_near: with the store at distance 0, a token GET /cart is not faster than the shared-store session one
resign > 0.1: re-signing an RS256 token is over {t} of a best-case POST /cart round trip
db_trips, mechanism: with the cart in the db, a token GET /cart makes as many store round trips as a session GET /cart
trips, mechanism: every shared-store request crossed the link, and no token + cart in token or memory request did
bigger, mechanism: every token request is bigger on the wire than a session request
found, mechanism: every session lookup and token check found alice before it was timed
minted, mechanism: with the cart in the db a cart write signs no new token; with the cart in the token every one does
""")

# --------------------------------------------------------------------------- in-process timing

def micro_times(functions: dict[str, Callable[[], Any]], number: int, repeat: int,
                rounds: Iterable[Any] | None = None) -> dict[str, float]:
    """Microseconds per call of each function: the best of ``repeat`` rounds of ``number`` calls.

    The best round, as ``timeit``'s documentation advises: other processes can only make a
    round slower, never faster, so the fastest round is the cost of the work itself. On a
    busy machine a median of rounds measures the neighbours too. Rounds are short and
    interleaved (one round of each function, then the next), so a burst of load hits every
    function alike. ``rounds``, if given, is iterated instead of ``range(repeat)`` (a progress bar).
    """
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in rounds if rounds is not None else range(repeat):
        for name, fn in functions.items():
            times[name].append(timeit.timeit(fn, number=number) / number * 1e6)
    return {name: min(t) for name, t in times.items()}


def raw_crypto(keyring: Keyring, token: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(sign, verify): the cryptography alone over ``token``'s signing input, with ``keyring``'s key.

    The same primitive PyJWT calls for the algorithm (``hmac`` with SHA-256 for HS256; RSA
    PKCS#1 v1.5 and ECDSA P-256 with SHA-256 from the ``cryptography`` package), over the same
    bytes (``header.payload``), without base64, JSON or claim checks. Each one is checked to
    agree with PyJWT before it is timed.
    """
    header, payload, signature = token.split(".")
    signing_input = f"{header}.{payload}".encode()
    sig = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    private, public = keyring.signing_key(), keyring.verification_key(keyring.current_kid)
    if keyring.algorithm == "HS256":
        def sign() -> bytes:
            return hmac.new(private, signing_input, hashlib.sha256).digest()

        def verify() -> None:
            if not hmac.compare_digest(hmac.new(public, signing_input, hashlib.sha256).digest(), sig):
                raise ValueError("HMAC does not match")
    elif keyring.algorithm == "RS256":
        def sign() -> bytes:
            return private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())

        def verify() -> None:
            public.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:  # ES256: a JWS carries r || s; the cryptography package wants DER (converted once, here)
        half = len(sig) // 2
        der = encode_dss_signature(int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big"))

        def sign() -> bytes:
            return private.sign(signing_input, ec.ECDSA(hashes.SHA256()))

        def verify() -> None:
            public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    verify()  # raises if our raw check disagrees with the signature PyJWT made
    return sign, verify


def state_work(cart: list[dict[str, Any]], shared_at: str | Path) -> tuple[dict[str, Callable[[], Any]], Any]:
    """Every piece of per-request state work, as zero-argument callables (and a closer).

    ``lookup``/``write`` are what a stateful server does on a read and on a cart write, with sessions
    in memory and in the shared store: the Valkey whose redis-py url ``shared_at`` is (no link: no
    distance), or, when it is a ``Path`` (no Valkey here), a shared SQLite file there. ``verify``/``sign``
    are what a stateless server does (PyJWT, through :class:`Keyring`: a cart write renews the token with
    the new cart, as the server does), and ``crypto verify``/``crypto sign`` the cryptography alone
    (:func:`raw_crypto`). With the cart in the shared store, a token carries identity only
    (``verify HS256 identity``) and the cart is read or written there (``lookup``/``write cart in db``).
    """
    memory = MemoryStore()
    sid = memory.create({"user": "alice", "cart": cart}, 1800)
    if isinstance(shared_at, str):
        shared: Any = valkey.RedisStore(shared_at)
        carts: Any = valkey.RedisCartStore(shared_at)
    else:
        shared = SqliteStore(shared_at)
        carts = SqliteCartStore(shared_at.with_name(shared_at.stem + "-carts.sqlite3"))
    ssid = shared.create({"user": "alice", "cart": cart}, 1800)

    def same_cart(session: dict[str, Any]) -> dict[str, Any]:
        return {**session, "cart": [dict(line) for line in cart]}

    carts.update("alice", lambda _: [dict(line) for line in cart])

    def closer() -> None:
        shared.close()
        carts.close()

    fns: dict[str, Callable[[], Any]] = {
        f"lookup {MEMORY}": lambda: memory.get(sid),
        f"lookup {SHARED}": lambda: shared.get(ssid),
        f"write {MEMORY}": lambda: memory.update(sid, same_cart),
        f"write {SHARED}": lambda: shared.update(ssid, same_cart),
        "lookup cart in db": lambda: carts.get("alice"),
        "write cart in db": lambda: carts.update("alice", lambda _: [dict(line) for line in cart]),
    }
    for algorithm in ALGORITHMS:
        ring = Keyring(algorithm)
        token = ring.issue("alice", 900, cart=cart)
        claims = ring.verify(token)
        fns[f"verify {algorithm}"] = lambda ring=ring, token=token: ring.verify(token)
        fns[f"sign {algorithm}"] = lambda ring=ring, claims=claims: ring.renew(claims, 900, cart=cart)
        fns[f"crypto sign {algorithm}"], fns[f"crypto verify {algorithm}"] = raw_crypto(ring, token)
        if algorithm == "HS256":
            identity = ring.issue("alice", 900)
            fns["verify HS256 identity"] = lambda ring=ring, identity=identity: ring.verify(identity)
    for name, fn in fns.items():  # each must really succeed, or we would time a failure
        if name.startswith(("lookup", "write", "verify")) and not fn():
            closer()
            raise RuntimeError(f"{name}: the state work did not find alice")
    return fns, closer


# --------------------------------------------------------------------------- the experiment

def missing() -> str:
    """Empty when a Valkey (or Redis) server and its client are here; else one sentence saying how to get them."""
    return "" if valkey_available() else valkey.HOW_TO_GET


def run(*, quick: bool = False, requests: int | None = None, number: int | None = None,
        repeat: int | None = None, distances_ms: Iterable[float] = DISTANCES_MS) -> Evidence:
    """Time the state work in-process, then ``GET``/``POST /cart`` end to end at each store distance.

    ``requests`` round trips of each kind per design and distance (interleaved; each point's median is
    kept); ``number`` x ``repeat`` in-process calls per piece of state work; ``distances_ms`` the one-way
    distances to the shared store. Defaults take a few seconds; ``quick=True`` about half that.
    """
    requests = requests or (9 if quick else 15)
    number = number or (6 if quick else 10)
    repeat = repeat or (6 if quick else 10)
    for name, value in (("requests", requests), ("number", number), ("repeat", repeat)):
        check_size(name, value, 1, 100_000)
    distances = sorted({float(d) for d in distances_ms}) if not isinstance(distances_ms, (str, bytes)) else []
    if not distances or any(not 0 <= d <= 50 for d in distances):
        raise ValueError(f"distances_ms must be one or more one-way distances from 0 to 50 ms, not {distances_ms!r}")
    lacking = missing()
    if lacking:  # no network store: nothing to put at a distance; the rest is still measured
        return record(_without_valkey(lacking, number, repeat))
    began = time.perf_counter()
    cart = [{"item": item, "qty": qty} for item, qty in CART]
    labels = [label for label, _ in DESIGNS]
    # per method, per distance, per design: the round trips (ms), in the order of the interleaved rounds
    latencies: dict[str, dict[float, dict[str, list[float]]]] = {
        m: {d: {k: [] for k in labels} for d in distances} for m in ("GET", "POST")}
    trips: dict[str, dict[str, set[int]]] = {m: {k: set() for k in labels} for m in ("GET", "POST")}
    last: dict[str, dict[str, WireExchange]] = {"GET": {}, "POST": {}}
    minted = dict.fromkeys(labels, 0)  # cart writes whose answer carried a newly signed token
    writes = dict.fromkeys(labels, 0)
    with ExitStack() as stack:  # every cluster stops (servers, links, its Valkey) when the run ends, however
        clusters: dict[str, Cluster] = {}
        for label, options in DESIGNS:
            clusters[label] = Cluster(1, **options)
            stack.callback(clusters[label].stop)
        users: dict[str, WireUser] = {}
        for label, cluster in clusters.items():  # straight to the server: a balancer would add a hop
            user = users[label] = WireUser(cluster.servers[0].url)
            user.login("alice")
            for item, qty in CART:
                user.add(item, qty)
        bar = iter(progress(range(len(distances) * requests + 1 + repeat), "measuring"))
        order = list(users.items())
        far = [c for c in clusters.values() if c.links]
        for distance in distances:
            for cluster in far:
                cluster.distance = distance / 1000
            warm = distance == distances[0]  # the very first round warms up (connections, caches), unrecorded
            for i, _ in zip(range(not warm, requests + 1), bar, strict=False):
                # rotate who goes first: the request after a progress-bar update (a message to the front
                # end in a notebook) waits a little longer, and no design should always pay that
                for label, user in order[i % len(order):] + order[:i % len(order)]:
                    for method in ("GET", "POST"):
                        before = _round_trips(clusters[label])
                        ex = user.send("GET", "/cart") if method == "GET" else user.add("ddia", 1)
                        trips[method][label].add(_round_trips(clusters[label]) - before)
                        last[method][label] = ex
                        if method == "POST":
                            writes[label] += 1
                            minted[label] += isinstance(ex.json().get("token"), str)
                        if i:
                            latencies[method][distance][label].append(ex.ms)
            if distance == distances[0]:  # the credential as a GET carried it, before the carts grow far
                identity = {k: sum(len(n) + len(v) + 4 for n, v in u.identity().items()) for k, u in users.items()}
        store = clusters[SHARED].valkey
        fns, close = state_work(cart, store.url)  # Valkey direct: no link
        stack.callback(close)
        micro = micro_times(fns, number, repeat, rounds=bar)
        store_name = Path(store.binary).name
    return record(_evidence(micro, latencies, trips, last, identity, minted, writes, requests, store_name,
                            time.perf_counter() - began))


#: Which checks judge each claim (see :class:`~statelab.experiments.Judgement`): one rule for both halves. Each
#: half needs the same check, on the same pair of designs that can both scale out (a session in the shared store,
#: a token with the cart in it), and each is qualified by the limits it leaves out. ``_evidence()`` computes the
#: checks and adds to each claim the sentence of what was measured.
CLAIMS = {
    "stateful": Judgement(supports=(CHECKS.crossover,), qualifies=(CHECKS.not_faster_near, CHECKS.memory_lookup_cheap)),
    "stateless": Judgement(supports=(CHECKS.crossover,), qualifies=(CHECKS.not_faster_near, CHECKS.db_trips,
                                                                    CHECKS.resign)),
    "5d": Judgement(supports=(CHECKS.crossover,), qualifies=(CHECKS.not_faster_near, CHECKS.db_trips)),
}


def _round_trips(cluster: Cluster) -> int:
    """Round trips the cluster's servers have made to its shared parts so far (its links count them)."""
    return sum(link.round_trips for link in cluster.links)


def crossover_of(faster: dict[float, float]) -> tuple[float, float | None]:
    """(nearest swept distance from which ``faster[d] > 0`` at every farther one, the distance before it).

    ``faster`` maps a distance to how much faster the token design answered there (ms, median of paired
    rounds). ``inf`` when it was not faster at the farthest distance; the distance before is None when it
    was faster at the nearest (the crossover is at or below it).
    """
    ds = sorted(faster)
    found, before = float("inf"), None
    for j in range(len(ds) - 1, -1, -1):
        if faster[ds[j]] <= 0:
            before = ds[j]
            break
        found = ds[j]
    return found, before


def _paired_faster(latencies: dict[float, dict[str, list[float]]], token: str, session: str) -> dict[float, float]:
    """Per distance: the median, over interleaved rounds, of (session round trip - token round trip), in ms."""
    return {d: percentile([s - t for s, t in zip(per[session], per[token], strict=True)], 50)
            for d, per in latencies.items()}


def _evidence(micro: dict[str, float], latencies: dict[str, dict[float, dict[str, list[float]]]],
              trips: dict[str, dict[str, set[int]]], last: dict[str, dict[str, WireExchange]],
              identity: dict[str, int], minted: dict[str, int], writes: dict[str, int], requests: int,
              store_name: str, seconds: float) -> Evidence:
    labels = [label for label, _ in DESIGNS]
    distances = sorted(latencies["GET"])
    near, far = distances[0], distances[-1]
    per = {kind: {a: micro[f"{kind} {a}"] for a in ALGORITHMS}
           for kind in ("verify", "sign", "crypto verify", "crypto sign")}
    parse = {a: max(0.0, per["verify"][a] - per["crypto verify"][a]) for a in ALGORITHMS}
    encode = {a: max(0.0, per["sign"][a] - per["crypto sign"][a]) for a in ALGORITHMS}
    lookup = {d: micro[f"lookup {d}"] for d in SESSION_DESIGNS}
    write = {d: micro[f"write {d}"] for d in SESSION_DESIGNS}
    slim = micro["verify HS256 identity"]
    table = {"read": micro["lookup cart in db"], "write": micro["write cart in db"]}
    p50 = {m: {d: {k: percentile(v, 50) for k, v in latencies[m][d].items()} for d in distances} for m in latencies}
    best = {m: {k: min(latencies[m][near][k]) for k in labels} for m in latencies}
    bytes_ = {m: {k: last[m][k].total_bytes for k in labels} for m in last}
    faster = {m: {t: _paired_faster(latencies[m], t, SHARED) for t in (*TOKEN_DESIGNS, DB_DESIGN)} for m in latencies}
    cross = {m: {t: crossover_of(faster[m][t]) for t in faster[m]} for m in faster}
    get_cross, get_before = cross["GET"][HS]
    cheapest_check = min(*per["verify"].values(), slim)
    one = {m: {k: sorted(trips[m][k]) for k in labels} for m in trips}  # store round trips per request, as seen
    no_store = (MEMORY, *TOKEN_DESIGNS)
    rs_sign_share = per["sign"]["RS256"] / (best["POST"][RS] * 1000)
    checks = [
        CHECKS.memory_lookup_cheap(lookup[MEMORY] / cheapest_check,
                                   shown=f"{lookup[MEMORY]:.1f} µs against {cheapest_check:.0f} µs: "
                                         f"{lookup[MEMORY] / cheapest_check:.3f} "
                                         f"(needs < {_ms(CHECKS.memory_lookup_cheap.threshold)})"),
        CHECKS.store_lookup(lookup[SHARED] / lookup[MEMORY]),
        CHECKS.parsing(per["crypto verify"]["HS256"] / per["verify"]["HS256"]),
        CHECKS.asymmetric_check(min(per["verify"]["RS256"], per["verify"]["ES256"]) / per["verify"]["HS256"]),
        CHECKS.rs256_sign(per["sign"]["RS256"] / per["sign"]["HS256"]),
        CHECKS.crossover(get_cross, shown=(f"{_ms(get_cross)} ms" if get_cross != float("inf") else
                                           f"none up to {_ms(far)} ms")
                         + f" (needs <= {_ms(CHECKS.crossover.threshold)} ms)"),
        CHECKS.not_faster_near(ok=faster["GET"][HS][near] <= 0,
                               shown=f"at {_ms(near)} ms the token answered {faster['GET'][HS][near]:+.2f} ms "
                                     "faster (median of pairs)"),
        CHECKS.resign(rs_sign_share),
        CHECKS.db_trips(ok=one["GET"][DB_DESIGN] == one["GET"][SHARED] and min(one["GET"][SHARED]) >= 1,
                        shown=f"{_trips(one['GET'][DB_DESIGN])} and {_trips(one['GET'][SHARED])} per GET"),
        CHECKS.trips(ok=min(one["GET"][SHARED] + one["POST"][SHARED]
                            + one["GET"][DB_DESIGN] + one["POST"][DB_DESIGN]) >= 1
                     and all(one[m][k] == [0] for m in one for k in no_store),
                     shown=f"session + shared store {_trips(one['GET'][SHARED])} per GET, "
                           f"{_trips(one['POST'][SHARED])} per POST; cart in token and memory: "
                           f"{_trips({n for m in one for k in no_store for n in one[m][k]})}"),
        CHECKS.bigger(ok=min(bytes_["GET"][d] for d in (*TOKEN_DESIGNS, DB_DESIGN)) > max(bytes_["GET"][d]
                                                                                for d in SESSION_DESIGNS),
                      shown=f"{min(bytes_['GET'][d] for d in (*TOKEN_DESIGNS, DB_DESIGN))} bytes at least, against "
                            f"{max(bytes_['GET'][d] for d in SESSION_DESIGNS)} at most"),
        CHECKS.minted(ok=minted[DB_DESIGN] == 0 and all(minted[d] == writes[d] for d in TOKEN_DESIGNS),
                      shown=f"{minted[DB_DESIGN]} of {writes[DB_DESIGN]} with the cart in the db; "
                            + ", ".join(f"{minted[d]} of {writes[d]}" for d in TOKEN_DESIGNS)
                            + " with it in the token"),
    ]
    mem, shared = lookup[MEMORY], lookup[SHARED]
    hs, rs, es = (per["verify"][a] for a in ALGORITHMS)
    where = crossover_words(get_cross, get_before, far)
    post_cross = {t: crossover_words(*cross["POST"][t], far) for t in TOKEN_DESIGNS}
    claims = judged(CLAIMS, {
        "stateful": (f"A memory lookup took {mem:.1f} µs, {'less' if mem < hs else 'more'} than an HS256 token check "
                     f"({hs:.0f} µs), but memory cannot be shared by servers. A shared store adds its distance to "
                     f"every request: GET /cart took {p50['GET'][near][SHARED]:.2f} ms with the store at "
                     f"{_ms(near)} ms and {p50['GET'][far][SHARED]:.2f} ms at {_ms(far)} ms one way, against "
                     f"{p50['GET'][far][HS]:.2f} ms with a token. The latency comes from where the session lives."),
        "stateless": (f"A token GET /cart answered faster than a shared-store session {where}. With the cart in the db "
                      f"the token request crosses to the store as often as the session does, and took "
                      f"{p50['GET'][far][DB_DESIGN]:.2f} ms at {_ms(far)} ms. Re-signing every cart write with RS256 "
                      f"({per['sign']['RS256']:.0f} µs per cart write), a token POST /cart answered faster than a "
                      f"session one {post_cross[RS]}."),
        "5d": (f"No session lookup is faster where a lookup costs a network round trip: {where}. What saves the time "
               f"is keeping the data out of the shared store, not the token itself."),
    })
    extra_bytes = [bytes_["GET"][d] - bytes_["GET"][MEMORY] for d in (*TOKEN_DESIGNS, DB_DESIGN)]
    reading = (
        f"In-process, best of short rounds: a session lookup took {mem:.1f} µs in memory and {shared:.0f} µs in the "
        f"shared store ({store_name} over loopback, no distance); checking a token took {hs:.0f} µs (HS256), "
        f"{rs:.0f} µs (RS256) and {es:.0f} µs (ES256), of which the cryptography alone was "
        f"{per['crypto verify']['HS256']:.1f}, {per['crypto verify']['RS256']:.0f} and "
        f"{per['crypto verify']['ES256']:.0f} µs; signing one took {per['sign']['HS256']:.0f}, "
        f"{per['sign']['RS256']:.0f} and {per['sign']['ES256']:.0f} µs. End to end (median of {requests} interleaved "
        f"round trips per point), GET /cart with a shared-store session took "
        + ", ".join(f"{p50['GET'][d][SHARED]:.2f}" for d in distances)
        + f" ms at {', '.join(_ms(d) for d in distances)} ms one way, and with the HS256 token "
        + ", ".join(f"{p50['GET'][d][HS]:.2f}" for d in distances)
        + f" ms; the token answered faster {where}. Each session GET made {_trips(one['GET'][SHARED])} store round "
        f"trip(s) and each POST {_trips(one['POST'][SHARED])}. Each token request carried {min(extra_bytes)} to "
        f"{max(extra_bytes)} more bytes than a session request."
    )
    measurements = {
        "session lookup µs": lookup, "session write µs": write,
        "token verify µs": per["verify"], "token verify: cryptography µs": per["crypto verify"],
        "token verify: parsing µs": parse,
        "token sign µs": per["sign"], "token sign: cryptography µs": per["crypto sign"],
        "token sign: encoding µs": encode,
        "token + cart in db: identity-only token check µs": slim, "token + cart in db: cart table µs": table,
        "distances ms": distances,
        "GET p50 ms by distance": {_ms(d): p50["GET"][d] for d in distances},
        "POST p50 ms by distance": {_ms(d): p50["POST"][d] for d in distances},
        **{f"token faster than shared-store session, {m} ms by distance": {_ms(d): v for d, v in faster[m][HS].items()}
           for m in faster},
        "crossover ms (None: at no swept distance)": {m: {t: None if cross[m][t][0] == float("inf") else cross[m][t][0]
                                                         for t in cross[m]} for m in cross},
        "store round trips per GET": {k: one["GET"][k] for k in labels},
        "store round trips per POST": {k: one["POST"][k] for k in labels},
        "GET best ms at distance 0": best["GET"], "POST best ms at distance 0": best["POST"],
        "bytes per GET /cart": bytes_["GET"], "bytes per POST /cart": bytes_["POST"],
        "request bytes": {k: last["GET"][k].request_bytes for k in labels},
        "identity header bytes": identity, "tokens signed by cart writes": minted, "cart writes": writes,
        "round trips per design and distance": requests,
    }
    designs = [MEMORY + " (lower bound: one process only)", f"{SHARED} ({store_name})", *TOKEN_DESIGNS,
               f"{DB_DESIGN} ({store_name})"]
    return Evidence(
        row=ROW, measurements=measurements, checks=checks, claims=claims, reading=reading, seconds=seconds,
        conditions=conditions(
            designs=designs,
            distance=(f"swept {', '.join(_ms(d) for d in distances)} ms one way between the servers and the shared "
                      f"store (each store design its own {store_name} behind a statelab.network.Link; even 0 crosses "
                      "that proxy)"),
            servers="threads of this notebook's process; each Valkey a process of its own",
            crowd=f"one user per design, one request at a time, {requests} interleaved rounds per distance"),
        extra={"latencies_ms": latencies, "designs": labels, "crossover": (get_cross, get_before, far),
               "post_crossover": {t: (*cross["POST"][t], far) for t in TOKEN_DESIGNS},
               "key_numbers": {
                   "crossover, GET /cart (one way)": where,
                   "token check µs (HS256 / RS256 / ES256)": f"{hs:.0f} / {rs:.0f} / {es:.0f}",
                   f"session lookup µs (memory / {store_name}, no distance)": f"{mem:.1f} / {shared:.0f}",
                   "re-signing per cart write µs (HS256 / RS256)":
                       f"{per['sign']['HS256']:.0f} / {per['sign']['RS256']:.0f}"}})


def _ms(value: float) -> str:
    return f"{value:g}"


def _trips(counts: Iterable[int]) -> str:
    counts = sorted(set(counts))
    return " to ".join(str(c) for c in ((counts[0], counts[-1]) if len(counts) > 1 else counts)) if counts else "0"


def crossover_words(found: float, before: float | None, far: float) -> str:
    """Where the token design started to answer faster, in words, from :func:`crossover_of`'s answer."""
    if found == float("inf"):
        return f"at no swept distance up to {_ms(far)} ms one way"
    if before is None:
        return f"at every swept distance, from {_ms(found)} ms one way (the crossover is at or below it)"
    return f"from {_ms(found)} ms one way (slower or equal at {_ms(before)} ms): the crossover lies between the two"


#: The answers notebook 05 offers before the run ("how far must the shared store be before a token answers faster?").
CHOICES = ("already with the store on this machine (distance 0)", "from a fraction of a millisecond one way",
           "from a millisecond or more one way", "at no distance swept: a token check costs more than the lookup")


def measured_choice(ev: Evidence) -> str:
    """Which of :data:`CHOICES` this run measured (from the crossover, not typed in)."""
    found, before, _ = ev.extra["crossover"]
    if found == float("inf"):
        return CHOICES[3]
    return CHOICES[0] if before is None and found == 0 else CHOICES[1] if found < 1 else CHOICES[2]


def crossover(ev: Evidence) -> str:
    """The crossover this run measured, as one sentence to print."""
    if ev.extra.get("missing"):
        return f"Crossover: not measured, no store to put at a distance: {ev.extra['missing']}"
    found, before, far = ev.extra["crossover"]
    text = ("Crossover: a token GET /cart answered faster than a shared-store session "
            f"{crossover_words(found, before, far)}.")
    for design, (found, before, far) in ev.extra.get("post_crossover", {}).items():
        text += f"\nCart writes (POST /cart), {design}: faster {crossover_words(found, before, far)}."
    return text


def _without_valkey(missing: str, number: int, repeat: int) -> Evidence:
    """No network store here: the in-process work is measured (the shared store a SQLite file), nothing at a
    distance."""
    began = time.perf_counter()
    cart = [{"item": item, "qty": qty} for item, qty in CART]
    with tempfile.TemporaryDirectory(prefix="statelab-perf-", ignore_cleanup_errors=True) as tmp:
        fns, close = state_work(cart, Path(tmp) / "micro.sqlite3")
        try:
            micro = micro_times(fns, number, repeat)
        finally:
            close()
    per = {a: micro[f"verify {a}"] for a in ALGORITHMS}
    mem, shared = micro[f"lookup {MEMORY}"], micro[f"lookup {SHARED}"]
    checks = [CHECKS.memory_lookup_cheap(mem / min(per.values())), CHECKS.store_lookup(shared / mem),
              CHECKS.crossover(ok=False, shown=f"not measured: {missing}"),
              CHECKS.not_faster_near(ok=False, shown="not measured"),
              CHECKS.resign(ok=False, shown="not measured"),
              replace(CHECKS.db_trips, mechanism=False)(ok=False, shown="not measured"),
              CHECKS.found(ok=True, shown="every lookup and check found alice before it was timed")]
    unmeasured = f"No store at a distance was measured here: {missing}."
    return Evidence(row=ROW, measurements={"session lookup µs": {MEMORY: mem, SHARED: shared}, "token verify µs": per},
                    checks=checks, claims=judged(CLAIMS, dict.fromkeys(CLAIMS, unmeasured)), reading=unmeasured,
                    seconds=time.perf_counter() - began,
                    conditions=conditions(designs=[MEMORY, f"{SHARED} (SQLite file)", "token checks"],
                                          distance=f"none: {missing}"),
                    extra={"missing": missing, "crossover": (float("inf"), None, 0.0), "designs": []})


def table(ev: Evidence, distance: float = 0.0) -> list[dict[str, Any]]:
    """One row per design at one swept ``distance`` (ms one way): medians, store round trips, bytes."""
    m, d = ev.measurements, _ms(distance)
    return [{"design": k, "GET ms": round(m["GET p50 ms by distance"][d][k], 2),
             "POST ms": round(m["POST p50 ms by distance"][d][k], 2),
             "store trips per GET": _trips(m["store round trips per GET"][k]),
             "store trips per POST": _trips(m["store round trips per POST"][k]),
             "bytes per GET /cart": m["bytes per GET /cart"][k], "bytes per POST /cart": m["bytes per POST /cart"][k]}
            for k in ev.extra["designs"]]


def sweep(ev: Evidence, method: str = "GET") -> list[dict[str, Any]]:
    """One row per swept distance: each design's median ``method /cart`` round trip (ms)."""
    by = ev.measurements.get(f"{method} p50 ms by distance", {})
    return [{"one way ms": d, **{k: round(v, 2) for k, v in row.items()}} for d, row in by.items()]


def sweep_text(ev: Evidence, method: str = "GET") -> str:
    """The sweep as a small text table: one line per distance, one column per design (numbered in a legend)."""
    rows = sweep(ev, method)
    if not rows:
        return f"not measured: {ev.extra.get('missing', 'no sweep in this run')}"
    designs = ev.extra["designs"]
    paired = ev.measurements.get(f"token faster than shared-store session, {method} ms by distance", {})
    a, b = designs.index(HS) + 1, designs.index(SHARED) + 1
    lines = [f"{method} /cart, median ms. Columns: " + "; ".join(f"({i}) {d}" for i, d in enumerate(designs, 1))
             + f"; last: how much faster ({a}) answered than ({b}), the median of the rounds' differences"
             + (" (it decides the crossover)" if method == "GET" else ""),
             f"{'one way ms':>10} " + " ".join(f"{f'({i})':>7}" for i in range(1, len(designs) + 1))
             + f" {f'({b})-({a})':>9}"]
    lines += [f"{r['one way ms']:>10} " + " ".join(f"{r[d]:7.2f}" for d in designs)
              + (f" {paired[r['one way ms']]:+9.2f}" if r["one way ms"] in paired else "") for r in rows]
    return "\n".join(lines)


def algorithms(ev: Evidence) -> list[dict[str, Any]]:
    """One row per algorithm: verify and sign, each split into cryptography and PyJWT's own work."""
    m = ev.measurements
    return [{"algorithm": a, "verify µs": round(m["token verify µs"][a], 1),
             "verify: cryptography µs": round(m["token verify: cryptography µs"][a], 1),
             "verify: parsing µs": round(m["token verify: parsing µs"][a], 1),
             "sign µs": round(m["token sign µs"][a], 1),
             "sign: cryptography µs": round(m["token sign: cryptography µs"][a], 1),
             "sign: encoding µs": round(m["token sign: encoding µs"][a], 1)} for a in ALGORITHMS]


#: Why the measured answer is what it is: the "you predicted; you measured" cell of notebook 05 shows it.
WHY = ("a token check is tens of microseconds of work where the server runs; a shared-store lookup is a network round "
       "trip, and a round trip grows with the distance. Near the store, the two are close.")

#: ``ev.answer()`` for this row (see :meth:`statelab.experiments.Evidence.answer`).
answer = measured_choice
