"""Lab 07 · Fail over without losing a cart: checkers on real Valkey servers and a shop in another process.

The learner writes the failover step, ``fail_over(primary, replicas, shop)``: tell whether the
primary is dead, promote the most up-to-date replica, and point the shop at it (``shop.use(server)``);
and a policy, ``needs_wait(method, path)``, that says which of the shop's operations wait for a
replica (``WAIT``) before the shop answers "done". Each check starts a replicated store
(:class:`~statelab.production.replication.ReplicaSet`) and a shop that is an OS process of its own
(:mod:`statelab.labs.shopper`), makes the primary's machine fail while the shop writes, and counts
what the shop was told was done and is gone: lost acknowledged writes, and logged-out users.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from ..production.process import BinaryMissing
from ..production.redis import RedisServer
from ..production.replication import ReplicaSet, offset
from .report import LearnerError, Report, call, checker

FAST, SLOW = 0.002, 0.05  # seconds one way: a replica close by, and one lagging behind
WRITING = 0.2  # seconds of shopping before the primary fails, and again after the failover
ALL_WAIT = {"login": True, "add": True, "view": True, "checkout": True}


class Shop:
    """The shop, an OS process writing to the store (see :mod:`statelab.labs.shopper`). ``use(server)`` points it
    at a server; the password goes over a pipe, never on a command line."""

    def __init__(self, policy: dict[str, bool]) -> None:
        self.policy = dict(policy)
        self.server: RedisServer | None = None
        self.proc = subprocess.Popen([sys.executable, "-m", "statelab.labs.shopper"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env=dict(os.environ), cwd=os.getcwd())

    def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the shop process ended unexpectedly")
        return json.loads(line)

    def use(self, server: Any) -> None:
        """Send the shop's writes to ``server`` (a RedisServer) from now on."""
        if not isinstance(server, RedisServer):
            raise LearnerError(f"shop.use(...) takes one of the servers (a RedisServer), not {type(server).__name__}")
        self.server = server
        self._ask({"url": server.url, "policy": self.policy})

    def report(self) -> dict[str, Any]:
        return self._ask({"report": True})

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"stop": True}) + "\n")  # type: ignore[union-attr]
                self.proc.stdin.flush()  # type: ignore[union-attr]
                self.proc.wait(timeout=3)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=3)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def _group(fresh: int | None) -> ReplicaSet:
    """Two replicas; replica ``fresh`` close by and the other lagging (None: both close by)."""
    try:
        group = ReplicaSet(2, FAST, name="lab07")
    except BinaryMissing as e:
        raise LearnerError(f"this machine cannot run the check: {e}") from None
    if fresh is not None:
        group.links[1 - fresh].delay = SLOW
    return group


def _lost(server: RedisServer, acked: list[list[str]]) -> tuple[int, int, dict[str, int]]:
    """Acknowledged writes missing on ``server``: (lost writes, logged-out users, lost by operation)."""
    client = server.client()
    lists: dict[str, list[str]] = {}
    lost: dict[str, int] = {}
    logged_out = 0
    for op, key, value in acked:
        if op == "login":
            gone = not client.exists(key)
            logged_out += gone
        else:
            if key not in lists:
                lists[key] = client.lrange(key, 0, -1)
            gone = value not in lists[key]
        if gone:
            lost[op] = lost.get(op, 0) + 1
    client.close()
    return sum(lost.values()), logged_out, lost


def _carry_on(shop: Shop, patience: float = 3.0) -> dict[str, Any]:
    """Let the shop write for ``WRITING`` seconds, longer (up to ``patience``) until the new primary has carried
    out an operation: each may wait for ``WAIT``'s timeout, and a busy machine is slow to schedule the shop."""
    time.sleep(WRITING)
    total = shop.report()
    deadline = time.monotonic() + patience
    while total["answered"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
        more = shop.report()
        total = {"acked": total["acked"] + more["acked"], "answered": more["answered"],
                 "failed": total["failed"] + more["failed"], "times": total["times"]}
    return total


def _failover_round(report: Report, fail_over: Callable[..., Any], fresh: int, shop: Shop) -> None:
    group = _group(fresh)
    try:
        shop.use(group.primary)
        shop.report()
        time.sleep(WRITING)
        group.fail_primary()
        offsets = {r.name: offset(r) for r in group.replicas}
        best = group.replicas[fresh]
        call("fail_over(primary, replicas, shop)", fail_over, group.primary, list(group.replicas), shop, limit=10)
        chosen = shop.server
        report.require(f"round {fresh + 1}: the shop is pointed at a live replica", chosen in group.replicas,
                       "shop.use(<one of the replicas>)", "the dead primary" if chosen is group.primary else chosen)
        role = chosen.client().info("replication").get("role")
        report.require(f"round {fresh + 1}: that replica was promoted (REPLICAOF NO ONE)", role == "master",
                       "role master", f"role {role}")
        before = shop.report()
        after = _carry_on(shop)
        lost, logged_out, by_op = _lost(chosen, before["acked"] + after["acked"])
        ahead = offsets[chosen.name] == max(offsets.values())  # on a busy machine both may have caught up
        report.expect(f"round {fresh + 1}: the most up-to-date replica was promoted", ahead,
                      f"{best.name} (offset {offsets[best.name]})", f"{chosen.name} (offset {offsets[chosen.name]})")
        report.expect(f"round {fresh + 1}: no acknowledged write lost, nobody logged out", lost == 0,
                      "0 lost", f"{lost} lost ({by_op or 'none'}), {logged_out} user(s) logged out")
        report.expect(f"round {fresh + 1}: the shop carries on, on the new primary", after["answered"] > 0,
                      "operations carried out by the new primary", f"{after['answered']}")
        report.note(f"round {fresh + 1}: {len(before['acked'])} writes acknowledged before the failover "
                    f"(WAIT 1 on each), {lost} lost, {logged_out} logged out; after it, {len(after['acked'])} "
                    f"confirmed by a replica (one that follows the new primary: Sentinel re-points the others too)")
    finally:
        group.stop()


def _alive_round(report: Report, fail_over: Callable[..., Any], shop: Shop) -> None:
    group = _group(None)
    try:
        shop.use(group.primary)
        time.sleep(0.05)
        call("fail_over(primary, replicas, shop)", fail_over, group.primary, list(group.replicas), shop, limit=10)
        roles = [r.client().info("replication").get("role") for r in group.replicas]
        report.expect("while the primary is alive, nothing is promoted and the shop stays on it",
                      shop.server is group.primary and roles == ["slave", "slave"],
                      "shop on the primary, both replicas still replicas",
                      f"shop on {'the primary' if shop.server is group.primary else shop.server}, replicas: {roles}")
    finally:
        group.stop()


@checker("Task 1 · fail over to the most up-to-date replica")
def check_fail_over(report: Report, fail_over: Any) -> None:
    """Three real failovers: the primary alive (nothing to do), then dead with replica 0 ahead, then replica 1."""
    shop = Shop(ALL_WAIT)
    try:
        _alive_round(report, fail_over, shop)
        for fresh in (0, 1):
            _failover_round(report, fail_over, fresh, shop)
    finally:
        shop.stop()


OPERATIONS = {"login": ("POST", "/login"), "add": ("POST", "/cart"), "view": ("GET", "/cart"),
              "checkout": ("POST", "/checkout")}


@checker("Task 2 · WAIT where losing a write would hurt")
def check_wait_policy(report: Report, needs_wait: Any) -> None:
    """The policy for each operation, then one real failover with it: no checkout lost, reads not slowed."""
    policy = {}
    for op, (method, path) in OPERATIONS.items():
        answer = call(f"needs_wait({method!r}, {path!r})", needs_wait, method, path)
        report.require(f"needs_wait({method!r}, {path!r}) answers True or False", isinstance(answer, bool), "a bool",
                       repr(answer)[:60])
        policy[op] = answer
    report.expect("a checkout waits for a replica", policy["checkout"], "True",
                  f"{policy['checkout']}: a checkout the shop confirmed could vanish at failover")
    report.expect("a cart view does not wait", not policy["view"], "False",
                  f"{policy['view']}: a view writes nothing, so waiting buys nothing and costs time")
    shop = Shop(policy)
    group = _group(None)
    try:
        group.set_delay(0.01)
        shop.use(group.primary)
        shop.report()
        time.sleep(WRITING)
        group.fail_primary()
        best = group.most_up_to_date()
        group.promote(best)
        shop.use(best)
        acked = shop.report()
        lost, logged_out, by_op = _lost(best, acked["acked"])
        report.expect("no confirmed checkout lost at failover", by_op.get("checkout", 0) == 0, "0 checkouts lost",
                      f"{by_op.get('checkout', 0)} of {sum(op == 'checkout' for op, _, _ in acked['acked'])}")
        ms = {op: 1000 * sum(t) / len(t) for op, t in acked["times"].items() if t}
        report.note("your policy: " + ", ".join(f"{op} {'WAIT' if w else 'no WAIT'}" for op, w in policy.items()))
        report.note("mean time per operation: " + ", ".join(f"{op} {v:.1f} ms" for op, v in ms.items()))
        report.note(f"at failover: {lost} acknowledged writes lost ({by_op or 'none'}), "
                    f"{logged_out} user(s) logged out")
    finally:
        shop.stop()
        group.stop()
