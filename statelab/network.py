"""A network between the tiers: a TCP proxy that delays, hangs or cuts what passes through it.

On one machine every tier is a loopback hop away (tens of microseconds), so a design that asks a
shared store on every request looks free. In production the store is across a network: 0.1-0.5 ms
inside a data centre, tens of milliseconds between regions. A :class:`Link` puts that distance back::

    link = sl.Link(("127.0.0.1", 6379), delay=0.005)     # 5 ms each way: a 10 ms round trip
    client = redis.Redis(port=link.port)                 # talk to the store through the link
    link.delay = 0.0005                                  # change it while traffic flows
    link.hang()                                          # a partition: the client waits for its timeout
    link.cut()                                           # a crash in between: the client fails at once
    link.heal()

Why a proxy in user space: kernel ``netem`` (``tc qdisc ... netem delay``) is not built into
these machines' kernels and needs root anyway; a user-space proxy needs neither, so it also runs
on Binder and JupyterHub. It is how toxiproxy injects latency and faults.

How it works, and what it models:

* It listens on 127.0.0.1 (a free port, ``.port``) and, for every connection accepted, opens one
  to ``upstream``: ``(host, port)`` on this machine, or the path of a Unix socket (a store that
  listens only on a socket in a private folder, which other users cannot reach). In front of such a
  store, a Unix socket keeps it private, since a port on 127.0.0.1 is open to every user of the
  machine: ``listen=path`` listens at ``path`` in a folder only this user can open (the store's own
  folder is the place: whatever removes it, even after a killed kernel, removes the link's socket),
  and ``listen="unix"`` makes such a folder of its own. ``.address`` is then the path, ``.port`` None.
* Bytes read from either side are delivered to the other ``delay`` seconds later, in order, by
  one thread per link that waits on all its sockets at once and keeps a timer heap of what is due.
  So a request and its answer each take ``delay``: a round trip adds ``2 * delay``. The delay of
  bytes already in flight does not change when ``.delay`` does (packets on the wire keep going),
  and no byte overtakes an earlier one, so a shorter delay takes effect once the earlier bytes
  are delivered. Timing is good to about 0.1 ms on an idle machine (it is a thread: a busy CPU
  makes it later, never earlier).
* Opening a connection is not delayed (the kernel completes the handshake with the proxy at once;
  a real handshake costs one round trip). Clients that keep a pool of open connections, as
  store clients do, do not notice.
* ``hang()`` is a partition: connections are still accepted, but nothing is delivered in either
  direction (new connections do not even reach the upstream), so a client waits until its own
  timeout. Bytes sent meanwhile are held, as TCP would keep retransmitting them, and delivered
  after ``heal()``, even when the client gave up and closed its connection (the close follows its
  bytes): a request that timed out may still be acted on, as on a real network. A client that
  resets its connection drops them.
* ``cut()`` fails fast: every open connection is reset (``SO_LINGER 0``: the peer gets
  ``ECONNRESET``), and every new one is accepted and reset at once. The link keeps its port
  while cut, rather than closing it: a port we close can be bound by any user of this machine,
  who would then receive what our clients send (a store's password included).
* Counters: ``bytes_up`` (client to upstream) and ``bytes_down`` (upstream to client) count bytes
  delivered; ``round_trips`` counts exchanges: an answer that starts after bytes went upstream
  (a request, a pipeline of commands, a transaction's step) is one round trip, however many
  chunks each side sends. That is the count that multiplies the distance.

It stops with the kernel like every statelab server (``stop()``, ``sl.stop_all()``, re-running
the cell that made it, interpreter exit) and leaves no thread, socket or port behind.
"""

from __future__ import annotations

import collections
import errno
import heapq
import itertools
import logging
import math
import os
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from .service import HOST, cleanup
from .service.registry import register

MAX_DELAY = 10.0  # seconds one way; longer than any real network, shorter than a learner's patience
_CHUNK = 65536
_HELD_PER_DIRECTION = 4 * 1024 * 1024  # bytes held in flight per direction before it stops reading (backpressure)
_LOOPBACK = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1"}


def seconds_one_way(name: str, value: Any, most: float, *, hint: str = "") -> float:
    """``value`` as a distance between two parts: seconds one way, a finite number from 0 to ``most``.

    A ``ValueError`` in words otherwise, naming ``name`` and ending with ``hint`` (how to read the number, or what
    to use instead). One rule for every distance a learner sets: a :class:`Link`'s delay, a ``Cluster``'s distance.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number of seconds one way{hint}, not {value!r}")
    if not 0 <= value <= most:
        raise ValueError(f"{name} must be from 0 to {most:g} seconds one way{hint}, not {value!r}")
    return float(value)


def _check_delay(delay: Any) -> float:
    return seconds_one_way("delay", delay, MAX_DELAY, hint=" (for a link that never answers, use .hang())")


def _check_upstream(upstream: Any) -> tuple[str, int] | str:
    if isinstance(upstream, (str, os.PathLike)):
        path = os.fspath(upstream)
        if not path:
            raise ValueError("upstream must be (host, port) or the path of a Unix socket, not an empty string")
        return path
    if isinstance(upstream, (tuple, list)) and len(upstream) == 2:
        host, port = upstream
        if host not in _LOOPBACK:
            raise ValueError(f"a Link forwards only to this machine (127.0.0.1), not to {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"upstream port must be a whole number from 1 to 65535, not {port!r}")
        return (_LOOPBACK[host], port)
    raise ValueError(f"upstream must be (host, port) or the path of a Unix socket, not {upstream!r}")


def _check_listen(listen: Any) -> str:
    if listen in ("tcp", "unix"):
        return listen
    if isinstance(listen, (str, os.PathLike)) and os.sep in os.fspath(listen):
        path = os.path.abspath(os.fspath(listen))
        try:
            folder = os.stat(os.path.dirname(path))
        except OSError:
            raise ValueError(f"listen={path!r}: its folder does not exist") from None
        if folder.st_uid != os.getuid() or folder.st_mode & 0o077:
            raise ValueError(f"listen={path!r}: a link's socket must be in a folder only you can open (0700)")
        if os.path.exists(path):
            raise ValueError(f"listen={path!r}: something is already there")
        return path
    raise ValueError(f"listen must be 'tcp' (a port on 127.0.0.1), 'unix' (a socket only you can open) or the "
                     f"path of such a socket, not {listen!r}")


def _reset(sock: socket.socket | None) -> None:
    """Close ``sock`` with a reset (RST), not an orderly FIN: the peer's next read or write fails at once."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _Pipe:
    """One connection through the link. End 0 is the client, end 1 the upstream.

    Direction ``d`` carries bytes read from end ``d`` to end ``1 - d``: direction 0 goes up, 1 comes down.
    """

    def __init__(self, client: socket.socket) -> None:
        self.ends: list[socket.socket | None] = [client, None]
        self.connected = False  # the upstream end has finished connecting
        self.in_flight: tuple[collections.deque, collections.deque] = (collections.deque(), collections.deque())
        self.outgoing = (bytearray(), bytearray())  # due, waiting for the receiving socket to take them
        self.held = [0, 0]  # bytes read and not yet delivered, per direction
        self.last_due = [0.0, 0.0]  # keeps bytes in order when the delay shrinks
        self.eof_due = [False, False]  # the sender closed its side and that news is due
        self.eof_sent = [False, False]
        self.read_done = [False, False]
        self.asked = False  # bytes went upstream since the last answer began: the next answer is a round trip
        self.closed = False
        self.interest = [0, 0]  # what the selector watches on each end


class Link:
    """A TCP proxy on 127.0.0.1 that forwards to ``upstream`` after ``delay`` seconds each way.

    ``upstream`` is ``(host, port)`` on this machine or the path of a Unix socket. ``.port`` and
    ``.address`` say where it listens (``listen="unix"`` or a path: a private Unix socket, and
    ``.address`` is its path). ``.delay`` (one way, seconds) can be changed while traffic flows. ``hang()``, ``cut()``
    and ``heal()`` make faults; ``bytes_up``, ``bytes_down``, ``round_trips`` and ``connections`` count
    what passed. See the module docstring for why.
    """

    def __init__(self, upstream: tuple[str, int] | str | os.PathLike[str], delay: float = 0.0, *,
                 name: str = "link", listen: str | os.PathLike[str] = "tcp") -> None:
        self.upstream = _check_upstream(upstream)
        self._delay = _check_delay(delay)
        listen = _check_listen(listen)
        self.name = str(name)
        self.listen = listen
        self._state = "up"
        self.bytes_up = self.bytes_down = self.round_trips = self.connections = 0
        self._pipes: set[_Pipe] = set()
        self._due: list[tuple[float, int, _Pipe, int]] = []
        self._seq = itertools.count()
        self._commands: collections.deque[Callable[[], None]] = collections.deque()
        self._folder: str | None = None
        self._bound = False  # a socket file of ours exists at self.path
        self.port: int | None = None
        self.path: str | None = None
        self._listener = socket.socket(socket.AF_INET if listen == "tcp" else socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if listen == "tcp":
                self._listener.bind((HOST, 0))
                self.port = self._listener.getsockname()[1]
            else:  # in a folder only this user can enter (0700): nobody else can connect, or take the name
                if listen == "unix":
                    self._folder = cleanup.temporary_folder("statelab-link-")  # goes even if the kernel is killed
                    self.path = os.path.join(self._folder, "link.sock")
                else:
                    self.path = listen
                self._listener.bind(self.path)
                self._bound = True
            self._listener.listen(128)
            self._listener.setblocking(False)
            self._wake_r, self._wake_w = socket.socketpair()
        except BaseException:
            self._listener.close()
            self._remove_folder()
            raise
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._stopping = False
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name=f"statelab-link-{self.name}-{self.port or 'unix'}", daemon=True)
        self._thread.start()
        register(self)

    def _remove_folder(self) -> None:
        if self._bound and self._folder is None:  # our socket at a path we were given: remove it
            self._bound = False
            try:
                os.unlink(self.path)
            except OSError:
                pass
        if self._folder is not None:
            cleanup.remove_folder(self._folder)
            self._folder = None

    # ------------------------------------------------------------------ what a user reads and sets

    @property
    def address(self) -> tuple[str, int] | str:
        """Where the link listens, to connect to instead of the upstream: ``(host, port)``, or the socket's path
        with ``listen="unix"``."""
        return (HOST, self.port) if self.port is not None else self.path

    @property
    def delay(self) -> float:
        """Seconds each way (a round trip adds twice this). Settable while traffic flows: bytes already
        in flight keep their delivery time, bytes read from then on take the new delay, in order."""
        return self._delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        self._delay = _check_delay(seconds)

    @property
    def state(self) -> str:
        """``"up"``, ``"hung"`` (a partition) or ``"cut"`` (every connection reset); ``"stopped"`` after stop()."""
        return "stopped" if self._thread is None else self._state

    @property
    def alive(self) -> bool:
        return self._thread is not None

    @property
    def open_connections(self) -> int:
        return len(self._pipes)

    def stats(self) -> dict[str, Any]:
        """The counters at this moment, for a table or a plot."""
        return {"link": self.name, "delay_ms": self._delay * 1000, "state": self.state,
                "connections": self.connections, "open": self.open_connections, "round_trips": self.round_trips,
                "bytes_up": self.bytes_up, "bytes_down": self.bytes_down}

    def reset_counters(self) -> None:
        """Zero the byte, round-trip and connection counters (to measure one experiment on its own)."""
        self.bytes_up = self.bytes_down = self.round_trips = self.connections = 0

    # ------------------------------------------------------------------ faults

    def hang(self) -> Link:
        """A partition: accept connections, deliver nothing either way; peers wait until their own timeout."""
        self._call(lambda: self._set_state("hung"))
        return self

    def cut(self) -> Link:
        """Fail fast: reset every open connection now, and reset every new one as it arrives."""
        self._call(lambda: self._set_state("cut"))
        return self

    def heal(self) -> Link:
        """Back to normal: deliver what a hang held (to connections still open), accept new connections."""
        self._call(lambda: self._set_state("up"))
        return self

    def _call(self, command: Callable[[], None]) -> None:
        """Run ``command`` on the link's thread (it alone touches the sockets) and wait until it has run."""
        if self._thread is None:
            raise RuntimeError(f"link {self.name!r} is stopped")
        done = threading.Event()

        def run() -> None:
            try:
                command()
            finally:
                done.set()
        self._commands.append(run)
        self._wake()
        done.wait(timeout=2.0)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:  # buffer full (it is already awake) or closed (stopping)
            pass

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Close every connection and the port, end the thread. Safe to call twice."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake()
        if thread is not threading.current_thread():
            thread.join(timeout=5)
        self._thread = None
        self._remove_folder()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        target = self.upstream if isinstance(self.upstream, str) else f"{self.upstream[0]}:{self.upstream[1]}"
        where = f"{HOST}:{self.port}" if self.port is not None else self.path
        return (f"<Link {self.name} {where} -> {target} delay={self._delay * 1000:g} ms "
                f"{self.state}>")

    # ------------------------------------------------------------------ the link's thread

    def _run(self) -> None:
        try:
            while not self._stopping:
                for key, mask in self._selector.select(self._wait_time()):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        pipe, end = key.data
                        try:
                            if mask & selectors.EVENT_WRITE and not pipe.closed:
                                self._writable(pipe, end)
                            if mask & selectors.EVENT_READ and not pipe.closed:
                                self._read(pipe, end)
                        except Exception:  # a surprise on one connection must not stop the others: reset it
                            logging.getLogger("statelab").debug("link %s: connection error", self.name, exc_info=True)
                            self._close(pipe, reset=True)
                self._deliver_due()
        finally:
            for pipe in list(self._pipes):
                self._close(pipe, reset=False)
            self._selector.close()
            for sock in (self._listener, self._wake_r, self._wake_w):
                sock.close()

    def _wait_time(self) -> float | None:
        """How long to wait for sockets: until the next delivery is due. epoll counts whole milliseconds
        (rounding up), so the last fraction of a millisecond is slept precisely instead."""
        if self._commands or self._stopping:
            return 0
        if not self._due:
            return None
        left = self._due[0][0] - time.monotonic()
        if left <= 0:
            return 0
        if left < 0.001:  # sleep most of it, then spin: a sleep overshoots by about 50-100 us
            if left > 0.00015:
                time.sleep(left - 0.0001)
            while time.monotonic() < self._due[0][0]:
                pass
            return 0
        return math.floor(left * 1000) / 1000

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass
        while self._commands:
            self._commands.popleft()()

    def _set_state(self, state: str) -> None:
        self._state = state
        if state == "cut":
            for pipe in list(self._pipes):
                self._close(pipe, reset=True)
        elif state == "up":
            now = time.monotonic()
            for pipe in list(self._pipes):
                if pipe.ends[1] is None:
                    self._connect(pipe)
                for d in (0, 1):
                    heapq.heappush(self._due, (now, next(self._seq), pipe, d))

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. too many open files: leave it in the backlog, try again later
                return
            if self._state == "cut":
                _reset(client)
                continue
            self.connections += 1
            client.setblocking(False)
            if self.port is not None:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pipe = _Pipe(client)
            self._pipes.add(pipe)
            self._watch(pipe, 0)
            if self._state == "up":  # a hung link reaches the upstream only once it heals
                self._connect(pipe)

    def _connect(self, pipe: _Pipe) -> None:
        if isinstance(self.upstream, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        code = sock.connect_ex(self.upstream)
        pipe.ends[1] = sock
        if code == 0:
            self._connected(pipe)
        elif code in (errno.EINPROGRESS, errno.EAGAIN):
            self._watch(pipe, 1)  # writable once connected (or failed)
        else:  # refused, or no such socket: the upstream is down, and the client learns it at once
            self._close(pipe, reset=True)

    def _connected(self, pipe: _Pipe) -> None:
        pipe.connected = True
        self._watch(pipe, 1)
        heapq.heappush(self._due, (time.monotonic(), next(self._seq), pipe, 0))

    def _watch(self, pipe: _Pipe, end: int) -> None:
        """Tell the selector what end ``end`` waits for: bytes to read (unless too much is held), room to write."""
        sock = pipe.ends[end]
        if sock is None or pipe.closed:
            return
        want = 0
        if end == 1 and not pipe.connected:
            want = selectors.EVENT_WRITE
        else:
            if not pipe.read_done[end] and pipe.held[end] < _HELD_PER_DIRECTION:
                want |= selectors.EVENT_READ
            if pipe.outgoing[1 - end]:
                want |= selectors.EVENT_WRITE
        if want == pipe.interest[end]:
            return
        if pipe.interest[end] == 0:
            self._selector.register(sock, want, (pipe, end))
        elif want == 0:
            self._selector.unregister(sock)
        else:
            self._selector.modify(sock, want, (pipe, end))
        pipe.interest[end] = want

    def _read(self, pipe: _Pipe, end: int) -> None:
        sock = pipe.ends[end]
        try:
            data = sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset by the peer: the other side is reset too
            self._close(pipe, reset=True)
            return
        now = time.monotonic()
        if end == 1 and data and pipe.asked:
            self.round_trips += 1
            pipe.asked = False
        due = max(now + self._delay, pipe.last_due[end])
        pipe.last_due[end] = due
        if data:
            pipe.in_flight[end].append((due, data))
            pipe.held[end] += len(data)
        else:
            pipe.in_flight[end].append((due, None))  # the sender closed its side: pass that on, in order
            pipe.read_done[end] = True
        heapq.heappush(self._due, (due, next(self._seq), pipe, end))
        self._watch(pipe, end)

    def _deliver_due(self) -> None:
        now = time.monotonic()
        while self._due and self._due[0][0] <= now:
            _, _, pipe, d = heapq.heappop(self._due)
            if pipe.closed or self._state != "up":
                continue
            queue = pipe.in_flight[d]
            while queue and queue[0][0] <= now:
                _, data = queue.popleft()
                if data is None:
                    pipe.eof_due[d] = True
                else:
                    pipe.outgoing[d].extend(data)
            self._send(pipe, d)

    def _writable(self, pipe: _Pipe, end: int) -> None:
        if end == 1 and not pipe.connected:
            code = pipe.ends[1].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._close(pipe, reset=True)
            else:
                self._connected(pipe)
            return
        if self._state == "up":
            self._send(pipe, 1 - end)

    def _send(self, pipe: _Pipe, d: int) -> None:
        """Send what is due in direction ``d`` as far as the receiver takes it; pass on a close once all is sent."""
        dest = pipe.ends[1 - d]
        if dest is None or (d == 0 and not pipe.connected):
            return
        buf = pipe.outgoing[d]
        while buf:
            try:
                n = dest.send(buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._close(pipe, reset=True)
                return
            del buf[:n]
            pipe.held[d] -= n
            if d == 0:
                self.bytes_up += n
                pipe.asked = True
            else:
                self.bytes_down += n
        if not buf and pipe.eof_due[d] and not pipe.eof_sent[d]:
            pipe.eof_sent[d] = True
            try:
                dest.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if pipe.eof_sent[0] and pipe.eof_sent[1]:
            self._close(pipe, reset=False)
            return
        self._watch(pipe, 0)
        self._watch(pipe, 1)

    def _close(self, pipe: _Pipe, reset: bool) -> None:
        if pipe.closed:
            return
        pipe.closed = True
        self._pipes.discard(pipe)
        for end, sock in enumerate(pipe.ends):
            if sock is None:
                continue
            if pipe.interest[end]:
                self._selector.unregister(sock)
            if reset:
                _reset(sock)
            else:
                sock.close()
        pipe.ends = [None, None]
