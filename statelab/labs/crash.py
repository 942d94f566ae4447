"""Lab 01 · Survive a crash: checkers for moving sessions out of the servers' memory.

The learner writes ``carts_after_crash(cluster, users)`` (a measurement), picks a store every
server shares (``shared_store()``), and writes a session store of their own (``JsonFileStore``,
one JSON file per session). Each checker starts real clusters and crashes a server.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from ..client import Client
from ..crowd import shoppers
from ..service import cleanup
from ..shop.server import Server
from ..topology.cluster import Cluster
from .processes import race
from .report import LearnerError, Report, blame, call, checker

STORE_METHODS = ("create", "get", "update", "delete", "count", "clear")
BOOK = {"item": "book", "qty": 1}
LIMIT = 5.0  # seconds a direct call of the learner's store may take


def _is_store(obj: Any) -> bool:
    return not isinstance(obj, (str, type)) and all(callable(getattr(obj, m, None)) for m in STORE_METHODS)


def _json_files(folder: Path) -> int:
    """How many ``*.json`` files in ``folder`` hold JSON (the task asks for one per session)."""
    count = 0
    for path in folder.glob("*.json"):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        count += 1
    return count


def _has_book(ex: Any) -> bool:
    return ex.ok and isinstance(ex.body, dict) and BOOK in (ex.body.get("cart") or [])


def _first_failure(clients: list[Client], index: int = -1) -> str:
    for c in clients:
        ex = c.history[index] if c.history else None
        if ex is not None and not ex.ok:
            return ex.summary()
    return "none"


# --------------------------------------------------------------------------- task 1

@checker("Task 1 · measure who keeps a cart through a crash")
def check_carts_after_crash(report: Report, carts_after_crash: Any) -> None:
    """Run the learner's measurement on memory sessions + sticky routing, and compare it with the servers."""
    users = 9
    with Cluster(3, "stateful", store="memory", balancer="sticky") as cluster:
        result = call(f"carts_after_crash(cluster, users={users})", carts_after_crash, cluster, users=users)
        ok_shape = (isinstance(result, dict) and all(isinstance(result.get(k), int) for k in ("kept", "lost")))
        report.require("returns the two counts", ok_shape, "a dict like {'kept': 6, 'lost': 3}",
                       f"carts_after_crash(cluster, users={users}) returned {result!r}"[:140])
        kept, lost = result["kept"], result["lost"]
        report.expect("kept + lost counts every user once", kept + lost == users, str(users), kept + lost)
        down = [s.name for s in cluster.servers if not s.alive]
        report.expect("one server is left crashed", len(down) == 1, "exactly one server down", down or "none down")
        held = sum(s.sessions for s in cluster.servers if s.alive)
        report.expect("'kept' agrees with the sessions the live servers still hold", kept == held,
                      f"{held} (counted inside the live servers)", kept)
        report.expect("the crash cost at least the first user's cart", lost >= 1, "1 or more lost", lost)
        crashed = (f"when {', '.join(down)} crashed" if len(down) == 1 else
                   f"with {len(down)} servers down ({', '.join(down)})" if down else "though no server is down now")
        report.note(f"memory sessions + sticky routing: your function counted {lost} of {users} carts lost {crashed}")


# --------------------------------------------------------------------------- task 2

@checker("Task 2 · carts survive a crash with a shared store")
def check_survives_crash(report: Report, shared_store: Any, carts_after_crash: Any = None) -> None:
    """Put the learner's store behind three round-robin servers; crash one; every cart must still be there."""
    store = call("shared_store()", shared_store)
    report.require("shared_store() returns a session store object", _is_store(store),
                   "an object with create/get/update/delete/count/clear, e.g. sl.SqliteStore(path)",
                   f"{store!r}"[:100])
    users = 12
    with blame("your store"):
        cluster = Cluster(3, "stateful", store=store, balancer="round_robin")
    with cluster:
        with blame("your store"):
            clients = shoppers(cluster.url, users, "shopper")
        added = sum(c.history[-1].ok for c in clients)
        report.require("a session made by one server works on the next (round robin)", added == users,
                       f"{users} of {users} adds to cart answered 200",
                       f"{added} of {users} (first failure: {_first_failure(clients)})")
        if type(store).__name__ == "MemoryStore":
            report.note("one MemoryStore object shared by every server stands for an in-memory store that runs "
                        "outside the servers (Redis, say): it outlives a server crash, not its own restart")
        seen = cluster.sessions()
        report.expect("every server sees every session", all(v >= users for v in seen.values()),
                      f"{users} on each server", seen)
        victim = cluster.kill(1)
        after = [c.cart() for c in clients]
        kept = sum(_has_book(ex) for ex in after)
        report.expect(f"carts kept after {victim.name} crashed", kept == users, f"{users} of {users}",
                      f"{kept} of {users}")
        cluster.restart(1)
        answers = [c.cart() for c in clients]
        by_restarted = [ex for ex in answers if ex.served_by == victim.name]
        report.expect(f"{victim.name}, restarted with empty memory, still finds the carts",
                      bool(by_restarted) and all(_has_book(ex) for ex in by_restarted),
                      "its answers include the carts",
                      f"{sum(_has_book(ex) for ex in by_restarted)} of {len(by_restarted)} of its answers did")
    if carts_after_crash is not None:
        with blame("shared_store()"):
            second = Cluster(3, "stateful", store=shared_store(), balancer="sticky")
        with second:
            try:
                result = call("carts_after_crash(cluster, users=9)", carts_after_crash, second, users=9)
            except LearnerError as e:  # task 1 is not done: this task does not depend on it
                report.note(f"your task 1 measurement was skipped: {e}")
                return
        report.expect("your task 1 measurement, on a shared store", isinstance(result, dict)
                      and result.get("lost") == 0, "{'kept': 9, 'lost': 0}", result)


# --------------------------------------------------------------------------- task 3

@checker("Task 3 · your own session store: one JSON file per session")
def check_session_store(report: Report, JsonFileStore: Any) -> None:  # noqa: N803  (the learner's class)
    """The store's contract, then the same store behind a cluster: crash, races, hostile ids, expiry, restart."""
    with cleanup.folder("statelab-lab01-") as tmp:
        _check_store(report, JsonFileStore, Path(tmp))


def _check_store(report: Report, JsonFileStore: Any, base: Path) -> None:  # noqa: N803
    folder, other = base / "sessions", base / "other"
    folder.mkdir()
    other.mkdir()
    store = call("JsonFileStore(folder)", JsonFileStore, str(folder))
    report.require("JsonFileStore(folder) is a session store", _is_store(store),
                   "an object with create/get/update/delete/count/clear", f"{store!r}"[:100])

    # the contract, called directly
    sid = call("store.create({'user': 'alice', 'cart': []}, 60)", store.create, {"user": "alice", "cart": []}, 60,
               limit=LIMIT)
    sid2 = call("store.create(...) a second time", store.create, {"user": "bob", "cart": []}, 60, limit=LIMIT)
    report.require("create() returns a fresh, unguessable id", isinstance(sid, str) and len(sid) >= 22 and sid != sid2,
                   "a new random string of 22+ characters each time (e.g. secrets.token_urlsafe(32))",
                   f"{sid!r} then {sid2!r}"[:120])
    got = call("store.get(sid)", store.get, sid, limit=LIMIT)
    report.require("get() returns what create() stored", got == {"user": "alice", "cart": []},
                   "{'user': 'alice', 'cart': []}", got)
    new = call("store.update(sid, change)", store.update, sid, lambda s: {**s, "cart": [BOOK]}, limit=LIMIT)
    later = call("store.get(sid) after the update", store.get, sid, limit=LIMIT)
    report.require("update() applies the change and returns the new session",
                   new == {"user": "alice", "cart": [BOOK]} and later == new,
                   "the changed session, also from a later get()", f"{new}, then {later}")
    missing = call("store.get('no-such-id')", store.get, "no-such-id", limit=LIMIT)
    report.require("get() of an unknown id is None", missing is None, "None", missing)
    n = call("store.count()", store.count, limit=LIMIT)
    report.require("count() counts the sessions", n == 2, "2", n)
    report.expect("each session is a JSON file in the folder", _json_files(folder) == 2,
                  "2 files ending in .json for the two sessions, each holding JSON",
                  f"{_json_files(folder)} such file(s): {sorted(p.name for p in folder.iterdir())[:4]}")
    gone = call("store.delete(sid2)", store.delete, sid2, limit=LIMIT)
    again = call("store.delete(sid2) again", store.delete, sid2, limit=LIMIT)
    report.require("delete() removes a session and says whether it was there", gone is True and again is False,
                   "True, then False", f"{gone}, then {again}")
    call("store.clear()", store.clear, limit=LIMIT)
    report.require("clear() removes everything", call("store.count()", store.count, limit=LIMIT) == 0, "0",
                   call("store.count()", store.count, limit=LIMIT))
    kept, ttl = restarts_idle_timer(store)
    report.expect("get() restarts the idle timer (a session in use does not expire)", kept,
                  f"the session still there {1.2 * ttl:.1f} s after create(), read at {0.6 * ttl:.1f} s "
                  f"(ttl {ttl:g} s)", "still there" if kept else "None: get() left the expiry where create() put it")
    call("store.clear()", store.clear, limit=LIMIT)

    # two server processes on one folder (gunicorn workers, or two machines on a network file system)
    (base / "shared").mkdir()
    made, kept_updates, problems = _updates_from_processes(JsonFileStore, base / "shared")
    report.expect("two server processes updating one session lose no update (a lock the operating system "
                  "holds, not a threading.Lock)", kept_updates == made and not problems,
                  f"{made} of {made} updates kept",
                  (f"{kept_updates} of {made} kept" if kept_updates is not None else
                   f"0 of {made} kept: the session could not be read back at all (store.get gave None: two "
                   "processes wrote its file at once and left it torn, or one removed it)")
                  + (f"; {'; '.join(problems)}" if problems else ""))

    # behind three servers
    users = 6
    with blame("your JsonFileStore"):
        cluster = Cluster(3, "stateful", store=store, balancer="round_robin")
    with cluster:
        clients = shoppers(cluster.url, users, "reader")
        cluster.kill(1)
        kept = sum(_has_book(c.cart()) for c in clients)
        report.expect("carts survive a crash (three servers, round robin)", kept == users, f"{users} of {users}",
                      f"{kept} of {users} (first failure: {_first_failure(clients)})")
        cluster.restart(1)

        tabs = 12
        alice = clients[0]
        barrier = threading.Barrier(tabs)

        def tab() -> None:  # one browser tab each, all holding alice's cookie
            browser = Client(cluster.url)
            browser.set_cookie(cluster.cookie_name, alice.cookies.get(cluster.cookie_name, ""))
            try:
                barrier.wait(timeout=5)
            except threading.BrokenBarrierError:  # a slow machine: go anyway
                pass
            browser.add_to_cart("book")

        threads = [threading.Thread(target=tab, name="statelab-lab-tab") for _ in range(tabs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=15)
        cart = alice.cart()
        qty = next((line["qty"] for line in (cart.body or {}).get("cart", []) if line.get("item") == "book"), None) \
            if isinstance(cart.body, dict) else None
        report.expect(f"{tabs} tabs adding at once lose no update (update() is atomic)", qty == tabs + 1,
                      f"{tabs + 1} books", f"{qty} books ({cart.summary()})")

        # a session id must not choose a file outside the folder
        outsider = call("JsonFileStore(another folder)", JsonFileStore, str(other))
        foreign = call("store.create(...)", outsider.create, {"user": "mallory", "cart": []}, 60)
        before = sorted(p.name for p in other.iterdir())
        intruder = Client(cluster.url)
        hostile = [f"../other/{foreign}", f"../other/{foreign}.json", "..", "../..", "a/b", "\\..\\x", ".",
                   "%2e%2e%2fother", "x" * 256]
        answers = {}
        for bad in hostile:
            intruder.forget()
            intruder.set_cookie(cluster.cookie_name, bad)
            answers[bad] = intruder.me().status
            intruder.post("/logout")
        wrong = {k[:24]: v for k, v in answers.items() if v != 401}
        report.expect("a forged session id cannot pick a file outside the folder (or crash the server)", not wrong,
                      "401 for ids like '../other/<id>', '..', 'a/b'", wrong or "401 for all")
        after = sorted(p.name for p in other.iterdir())
        report.expect("logging out with a forged id deletes nothing outside the folder", after == before,
                      f"{len(before)} file(s) left in the other folder", f"{len(after)}")

        logged_out = clients[1]
        held = store.count()
        logged_out.logout()
        report.expect("logout deletes the session from the store", store.count() == held - 1
                      and logged_out.me().status == 401, f"{held - 1} sessions left, then 401", f"{store.count()} left")
    # the file outlives every server: a new cluster on the same folder still knows alice
    with blame("JsonFileStore(same folder)"):
        reopened = Cluster(2, "stateful", store=JsonFileStore(str(folder)), balancer="round_robin")
    with reopened:
        back = Client(reopened.url)
        back.set_cookie(reopened.cookie_name, alice.cookies.get(cluster.cookie_name, ""))
        cart = back.cart()
        books = [line for line in (cart.body.get("cart") or [] if isinstance(cart.body, dict) else [])
                 if line.get("item") == "book"]
        report.expect("a brand-new cluster on the same folder still knows alice", cart.ok and bool(books),
                      "her cart, books and all", f"{cart.summary()}: {books}")
    # idle sessions expire
    (base / "brief").mkdir()
    fresh, stale, ttl, late = _expiry(JsonFileStore, base / "brief")
    report.expect("an idle session expires after its ttl", fresh == 200 and stale == 401,
                  f"200 at once, 401 after {ttl + EXPIRY_MARGIN:g} s idle (ttl {ttl:g} s)",
                  f"{fresh}, then {stale}" + (f" (the machine was too busy to tell: the first request came "
                                               f"{late:.1f} s after the login, past every ttl tried)" if late else ""))


PROCESSES, UPDATES = 2, 200     # two server processes, each updating one session this many times
PROCESS_SECONDS = 20.0          # a child that takes longer (a lock never released) is ended and reported
TRIES = 3                       # runs in which the two processes never overlapped prove nothing: run again


def _updates_from_processes(JsonFileStore: Any, folder: Path) -> tuple[int, int | None, list[str]]:  # noqa: N803
    """Two OS processes, each with its own store object on ``folder``, add 1 to one session's counter ``UPDATES``
    times at once; return (updates made, updates kept, what went wrong).

    Threads of one process share memory, so a ``threading.Lock`` makes their read-modify-write atomic. Two
    processes share only the files: each has its own lock object, and nothing stops them interleaving. This is
    the situation of gunicorn's workers and of servers on several machines, so the check makes it. On a busy
    machine one process can finish before the other starts; such a run proves nothing and is made again.
    """
    for attempt in range(TRIES):
        made, kept, problems, overlapped = _one_race(JsonFileStore, folder / f"run{attempt}")
        if overlapped or problems or kept != made:
            break
    return made, kept, problems


def _one_race(JsonFileStore: Any, folder: Path) -> tuple[int, int | None, list[str], bool]:  # noqa: N803
    folder.mkdir()
    store = call("JsonFileStore(folder)", JsonFileStore, str(folder))
    sid = call("store.create({'user': 'alice', 'n': 0}, 600)", store.create, {"user": "alice", "n": 0}, 600,
               limit=LIMIT)

    def work(_: int) -> str:  # in each child: another server process on the same folder
        mine = JsonFileStore(str(folder))
        for _ in range(UPDATES):
            mine.update(sid, lambda s: {**s, "n": s["n"] + 1})
        return ""

    outcome = race(work, PROCESSES, PROCESS_SECONDS, f"its {UPDATES} updates")
    final = call("store.get(sid) after both processes", store.get, sid, limit=LIMIT)
    kept = final.get("n") if isinstance(final, dict) else None
    return PROCESSES * UPDATES, kept, outcome.problems, outcome.overlapped


SLIDING_TTLS = (0.5, 2.0, 8.0)  # seconds: the next one only when the machine was too busy for the last


def restarts_idle_timer(store: Any) -> tuple[bool, float]:
    """Create a session, read it at 0.6 ttl, read it again at 1.2 ttl: kept only if the first read restarted the
    idle timer. A read that came too late to tell (a busy machine) is tried again with a longer ttl."""
    for ttl in SLIDING_TTLS:
        made = time.monotonic()  # before create(): the session's clock may start anywhere inside the call
        sid = call("store.create({'user': 'carol'}, ttl)", store.create, {"user": "carol"}, ttl, limit=LIMIT)
        if time.monotonic() - made > 0.3 * ttl:
            continue  # create() alone took too long to tell
        time.sleep(max(0.0, 0.6 * ttl - (time.monotonic() - made)))
        first = call("store.get(sid)", store.get, sid, limit=LIMIT)
        read = time.monotonic()
        if first is None or read - made >= ttl:
            if read - made >= 0.9 * ttl:
                continue  # too late to tell
            return False, ttl
        time.sleep(max(0.0, 0.6 * ttl - (time.monotonic() - read)))
        second = call("store.get(sid) again", store.get, sid, limit=LIMIT)
        if second is None and time.monotonic() - read >= 0.9 * ttl:
            continue  # too late to tell
        return second is not None, ttl
    return True, ttl   # no ttl was long enough on this machine: nothing proves the timer wrong


EXPIRY_TTLS = (0.4, 1.6, 6.4)  # seconds: the next one only when the machine was too busy for the last
EXPIRY_MARGIN = 0.3            # idle this much past the ttl before the session must be gone


def _expiry(JsonFileStore: Any, folder: Path) -> tuple[Any, Any, float, float]:  # noqa: N803
    """Log in, ask at once, stay idle past the ttl, ask again: the two statuses, the ttl used, and how late the
    first request came when no ttl was long enough to judge it (else 0).

    The verdict does not depend on the machine's load. A session asked for within its ttl of the login must be
    there (200); on a crowded machine the login and that request can take longer than a short ttl, and then a
    401 proves nothing, so the check tries again with a longer ttl. Idling past the ttl is safe at any load:
    waiting longer only makes expiry more certain.
    """
    with blame("your JsonFileStore"):
        store = JsonFileStore(str(folder))
    late = 0.0
    for ttl in EXPIRY_TTLS:
        with blame("your JsonFileStore"):
            brief = Server("stateful", store=store, session_ttl=ttl).start()
        try:
            bob = Client(brief.url)
            started = time.monotonic()
            bob.login("bob")
            fresh = bob.me().status
            late = time.monotonic() - started
            if fresh != 200 and late >= ttl:
                continue  # too late to tell: the session may rightly have expired
            late = 0.0
            time.sleep(ttl + EXPIRY_MARGIN)
            return fresh, bob.me().status, ttl, late
        finally:
            brief.stop()
    return fresh, None, ttl, late
