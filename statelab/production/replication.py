"""A replicated store: one Valkey primary and its asynchronous replicas, each a real server of this notebook.

Production never runs its session store as one server: a replica keeps a copy, so that when the
primary dies a replica is promoted and the shop carries on. Replication is asynchronous: the
primary answers a write first and streams it to its replicas afterwards. So a replica is always a
little behind (its *lag*), and whatever was acknowledged but not yet streamed when the primary
died is gone after a failover. ``WAIT numreplicas timeout`` makes a client wait until that many
replicas have the write: what it buys and what it costs is notebook 14's subject.

How it is built here, and why:

* every server is a :class:`~statelab.production.redis.RedisServer`: a Unix socket in its own 0700
  folder, its password in a 0600 file. The servers of one group share one password, made for this
  run: a replica logs in to its primary with it, and a promoted replica answers the clients that knew it.
* Valkey replicates only over TCP (``replicaof`` takes a host and a port, not a socket path). So each
  replica reaches its primary through a :class:`~statelab.network.Link` that listens on a port of
  127.0.0.1 and forwards to the primary's socket. That port is visible to every user of the machine
  (the password still guards it), and the link keeps it for as long as it lives, so nobody can take
  it over. The link's ``delay`` is the distance between the primary and its replicas: the lag's knob.
* :meth:`ReplicaSet.fail_primary` is the primary's *machine* failing: its links are cut (what was on
  the wire is lost with it) and the process is killed. A process crash on a healthy network loses less:
  the bytes already sent still arrive.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from ..network import Link
from ..service.registry import register
from .redis import RedisServer


def offset(server: RedisServer) -> int:
    """How far into the primary's stream of writes ``server`` is (bytes): a primary's own offset, or what a
    replica has received and applied; -1 when it does not answer."""
    try:
        info = server.client(timeout=0.5).info("replication")
    except Exception:
        return -1
    if info.get("role") == "master":
        return int(info.get("master_repl_offset", 0))
    return int(info.get("slave_repl_offset", -1))


def linked(server: RedisServer) -> bool:
    """True when ``server`` is a replica whose link to its primary is up (the initial copy done)."""
    try:
        info = server.client(timeout=0.5).info("replication")
    except Exception:
        return False
    return info.get("role") == "slave" and info.get("master_link_status") == "up"


class ReplicaSet:
    """``ReplicaSet(replicas=2, delay=0.01)``: a primary and ``replicas`` replicas, each behind a Link of ``delay``
    seconds one way. ``.primary``, ``.replicas``, ``.links``; ``fail_primary()``, ``most_up_to_date()``,
    ``promote(replica)``; ``stop()`` (also ``sl.stop_all()``, a re-run of its cell, the kernel's exit)."""

    def __init__(self, replicas: int = 2, delay: float = 0.01, *, persistence: str = "none",
                 name: str = "store") -> None:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= 4:
            raise ValueError(f"replicas must be a whole number from 1 to 4, not {replicas!r}")
        self.name = name
        self.password = secrets.token_urlsafe(24)
        self.delay = delay
        self.links: list[Link] = []
        self.replicas: list[RedisServer] = []
        self.retired: list[RedisServer] = []
        self.primary = RedisServer(f"{name}-primary", password=self.password, persistence=persistence)
        register(self)
        try:
            for i in range(replicas):
                link = Link(self.primary.endpoint, delay, name=f"{name}-replication-{i}")
                self.links.append(link)
                self.replicas.append(RedisServer(f"{name}-replica-{i}", password=self.password,
                                                 replicaof=("127.0.0.1", link.port)))
            self.wait_synced()
        except BaseException:
            self.stop()
            raise

    @property
    def servers(self) -> list[RedisServer]:
        return [self.primary, *self.replicas]

    def set_delay(self, seconds: float) -> None:
        """The distance between the primary and each replica, one way (seconds)."""
        for link in self.links:
            link.delay = seconds
        self.delay = seconds

    def wait_synced(self, timeout: float = 5.0) -> None:
        """Wait until every replica is linked and has everything the primary wrote so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            target = offset(self.primary)
            if all(linked(r) and offset(r) >= target for r in self.replicas):
                return
            time.sleep(0.01)
        logs = "; ".join(r.log_tail(200) for r in self.replicas)
        raise TimeoutError(f"the replicas did not catch up with the primary within {timeout:g} s: {logs}")

    def fail_primary(self) -> None:
        """The primary's machine fails: its network to the replicas goes (bytes on the wire are lost) and its
        process dies (SIGKILL: nothing is flushed)."""
        for link in self.links:
            link.cut()
        self.primary.kill()

    def most_up_to_date(self) -> RedisServer:
        """The live replica that received the most of the primary's stream (the highest offset)."""
        alive = [(offset(r), i) for i, r in enumerate(self.replicas) if r.alive]
        if not alive:
            raise RuntimeError("no replica is alive to promote")
        return self.replicas[max(alive)[1]]

    def promote(self, replica: RedisServer) -> RedisServer:
        """``REPLICAOF NO ONE`` on ``replica``: it takes writes from now on. The other live replicas follow it
        (through new links of the same delay); the old primary is retired. Returns the new primary."""
        if replica not in self.replicas:
            raise ValueError(f"{replica!r} is not a replica of this set")
        replica.client().execute_command("REPLICAOF", "NO", "ONE")
        replica.replicaof = None  # a restart keeps it a primary
        for link in self.links:
            link.stop()
        self.links = []
        self.retired.append(self.primary)
        self.primary = replica
        self.replicas = [r for r in self.replicas if r is not replica]
        for i, other in enumerate(self.replicas):
            if not other.alive:
                continue
            link = Link(replica.endpoint, self.delay, name=f"{self.name}-replication-{i}")
            self.links.append(link)
            other.replicaof = ("127.0.0.1", link.port)
            other.client().execute_command("REPLICAOF", "127.0.0.1", str(link.port))
        return replica

    def stop(self) -> None:
        for link in self.links:
            link.stop()
        for server in (*self.replicas, self.primary, *self.retired):
            server.stop()

    def __repr__(self) -> str:
        return (f"<ReplicaSet primary {'alive' if self.primary.alive else 'down'}, {len(self.replicas)} replica(s), "
                f"{self.delay * 1000:g} ms one way>")


def acknowledged_write(client: Any, key: str, value: str, wait: tuple[int, int] | None = None) -> bool:
    """Append ``value`` to the list ``key`` as one shop write; True when the shop may answer "done".

    Without ``wait`` that is as soon as the primary has it. With ``wait=(replicas, timeout_ms)`` the
    same connection then sends ``WAIT``: the write counts as acknowledged only if that many replicas
    confirm they have it within the timeout (``WAIT`` returns how many did). A connection error
    raises: the shop would answer 503, and the client knows its write may not have happened."""
    pipe = client.pipeline(transaction=False)  # one connection: WAIT waits for this connection's writes
    pipe.rpush(key, value)
    if wait is not None:
        pipe.execute_command("WAIT", int(wait[0]), int(wait[1]))
    result = pipe.execute()
    return wait is None or int(result[-1]) >= wait[0]


class ReplicaReads:
    """A session store that writes to the primary and reads from a replica: ``store=`` of a shop server.

    Shops send reads to replicas to spread the load (every request reads its session; few write).
    The price is the lag: a logout deletes the session on the primary, and a request that reads the
    replica a moment later still finds it. A replica is read-only, so a read cannot restart the idle
    timer here; the session expires on the primary's clock (its writes do restart it).
    """

    kind = "redis"

    def __init__(self, primary_url: str, replica_url: str, prefix: str | None = None) -> None:
        from .redis import RedisStore

        self.writes = RedisStore(primary_url, prefix)
        self.reads = RedisStore(replica_url, self.writes.prefix.split(":")[1])

    def create(self, data: Any, ttl: float) -> str:
        return self.writes.create(data, ttl)

    def get(self, sid: str) -> Any:
        return self.reads.peek(sid)

    def peek(self, sid: str) -> Any:
        return self.reads.peek(sid)

    def expires_in(self, sid: str) -> float | None:
        return self.reads.expires_in(sid)

    def update(self, sid: str, change: Any) -> Any:
        return self.writes.update(sid, change)

    def delete(self, sid: str) -> bool:
        return self.writes.delete(sid)

    def count(self) -> int:
        return self.writes.count()

    def clear(self) -> None:
        self.writes.clear()

    def close(self) -> None:
        self.writes.close()
        self.reads.close()
