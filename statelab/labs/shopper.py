"""The shop of lab 07, as an OS process of its own: ``python -m statelab.labs.shopper``.

A failover is seen from two sides: the store's servers, and the shop that writes to them. Here
the shop is a separate process, as in production, so nothing in the notebook's own memory can
make a lost write look kept. It reads one JSON command per line on stdin (so a store's password
never appears on a command line) and answers on stdout:

``{"url": ..., "policy": {...}}``  write to the store at ``url`` from now on, with ``WAIT 1`` after
                                   each operation whose policy entry is true
``{"report": true}``               print what was acknowledged since the last report, as one JSON line
``{"stop": true}`` or end of input exit

Each user in turn logs in (a session), adds two cart lines, views the cart and checks out. An
operation is *acknowledged* when the store answered it (and, with ``WAIT``, a replica confirmed
it); an error or a ``WAIT`` that no replica confirmed is not, and the shopper moves on.
"""

from __future__ import annotations

import json
import sys
import threading
import time

OPERATIONS = {"login": ("POST", "/login"), "add": ("POST", "/cart"), "view": ("GET", "/cart"),
              "checkout": ("POST", "/checkout")}
WAIT = (1, 100)  # WAIT 1 replica, at most 100 ms
LIFETIME = 60.0  # seconds: a shopper never outlives a forgotten check for long


class Shopper:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.url: str | None = None
        self.policy: dict[str, bool] = {}
        self.client = None
        self.acked: list[tuple[str, str, str]] = []  # (operation, key, value)
        self.times: dict[str, list[float]] = {op: [] for op in OPERATIONS}
        self.failed = 0
        self.answered = 0  # operations the store carried out, confirmed by a replica or not
        self.user = 0
        self.done = threading.Event()

    def use(self, url: str, policy: dict[str, bool]) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0),
                                      decode_responses=True)
        with self.lock:
            self.url, self.policy, self.client = url, dict(policy), client

    def report(self) -> dict:
        with self.lock:
            out = {"acked": self.acked, "times": self.times, "failed": self.failed, "answered": self.answered}
            self.acked, self.times, self.failed, self.answered = [], {op: [] for op in OPERATIONS}, 0, 0
        return out

    def _one(self, client, policy: dict[str, bool], op: str, key: str, value: str) -> None:
        pipe = client.pipeline(transaction=False)
        if op == "login":
            pipe.set(key, value, ex=600)
        elif op in ("add", "checkout"):
            pipe.rpush(key, value)
        else:
            pipe.lrange(key, 0, -1)
        if policy.get(op):
            pipe.execute_command("WAIT", *WAIT)
        start = time.perf_counter()
        try:
            result = pipe.execute()
        except Exception:
            with self.lock:
                self.failed += 1
            time.sleep(0.005)
            return
        seconds = time.perf_counter() - start
        with self.lock:
            if client is not self.client:
                return  # answered by a store the shop has left meanwhile
            self.answered += 1
            if policy.get(op) and int(result[-1]) < WAIT[0]:
                self.failed += 1  # no replica confirmed it: the shop answers an error, not "done"
                return
            self.times[op].append(seconds)
            if op != "view":
                self.acked.append((op, key, value))

    def run(self) -> None:
        deadline = time.monotonic() + LIFETIME
        while not self.done.is_set() and time.monotonic() < deadline:
            with self.lock:
                client, policy = self.client, self.policy
            if client is None:
                time.sleep(0.005)
                continue
            self.user += 1
            name = f"shopper:user{self.user}"
            for op, key, value in (("login", f"{name}:session", "alive"), ("add", f"{name}:cart", "pen"),
                                   ("add", f"{name}:cart", "ink"), ("view", f"{name}:cart", ""),
                                   ("checkout", "shopper:orders", name)):
                self._one(client, policy, op, key, value)


def main() -> None:
    shopper = Shopper()
    worker = threading.Thread(target=shopper.run, daemon=True)
    worker.start()
    for line in sys.stdin:
        command = json.loads(line)
        if "url" in command:
            shopper.use(command["url"], command.get("policy", {}))
            print(json.dumps({"ok": True}), flush=True)
        elif command.get("report"):
            print(json.dumps(shopper.report()), flush=True)
        elif command.get("stop"):
            break
    shopper.done.set()
    worker.join(timeout=2)


if __name__ == "__main__":
    main()
