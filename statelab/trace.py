"""Traces of real traffic: every hop one exchange took, client → cache → balancer → server → store.

A traced request carries a trace id in the ``X-Statelab-Trace`` header (``Client(url, traced=True)``, or
``client.traced = True``, sets a fresh one on each request). Every part that handles it appends a
:class:`Hop` to one in-process :class:`Recorder`, keyed by that id:

* the client: the whole exchange, as the learner's code saw it;
* a cache (``SharedCache``): its verdict (HIT, MISS, BYPASS) and, when it asked upstream, that trip;
* a balancer: each attempt at a backend with its outcome (an answer, "refused the connection", "cut
  by a crash"), so a re-send after a crash is a second attempt in the record (``hop.resent``);
* a server: how long it took and the status it answered;
* the server's trips to its session store, cart table or key ring (and the ``Link`` in between when the
  store is across a simulated network: ``Cluster(distance=...)``).

Why an in-process recorder: statelab's servers, balancer and cache are threads of the notebook's own
process, so they can append to one list, and one clock (``time.perf_counter``) times every hop. An
untraced request costs one header look-up per part, and one context-variable read per store call.

What a deployment of separate processes needs instead (what OpenTelemetry does): the id travels the
same way (W3C ``traceparent`` header rather than ours), but each process records its own spans with a
parent span id and exports them to a collector, which assembles the tree; clocks differ between
machines, so durations are measured within a process and the ordering comes from the parent links,
never from comparing timestamps across machines.
"""

from __future__ import annotations

import collections
import contextvars
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

HEADER = "X-Statelab-Trace"
KEEP = 500  # traces kept (the oldest are dropped): a notebook never grows without bound

#: (trace id, server name) of the traced request this thread is answering, read by the store hooks
_current: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("statelab_trace", default=None)


def new_id() -> str:
    """A fresh trace id (random: two learners' traces never share one)."""
    return secrets.token_hex(8)


_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def valid(trace_id: object) -> str | None:
    """The id when it is a short token (letters, digits, ``-_.``, at most 64), else None: a header from outside
    is input, and an id goes into diagrams and keys."""
    if isinstance(trace_id, str) and 0 < len(trace_id) <= 64 and set(trace_id) <= _ID_CHARS:
        return trace_id
    return None


@dataclass
class Hop:
    """One step of a traced exchange: ``source`` asked ``target`` (None: whoever answered it next) for ``what``.

    ``outcome`` is what came back (``200``, ``"HIT"``, ``"refused the connection"``, ...), ``start`` the
    ``perf_counter`` time it began and ``ms`` how long it took. ``note`` is a hop over one part (a server's
    work, a cache's verdict), drawn as a note rather than an arrow. ``resent`` marks a balancer's second (or
    later) attempt at the same request after an earlier one failed.
    """

    trace: str
    source: str
    target: str | None
    what: str
    outcome: Any = None
    start: float = 0.0
    ms: float = 0.0
    note: bool = False
    resent: bool = False
    detail: str = ""

    @property
    def end(self) -> float:
        return self.start + self.ms / 1000

    @property
    def status(self) -> int | None:
        """The HTTP status this hop got back, or None (no answer: refused, cut; or a store call)."""
        return self.outcome if isinstance(self.outcome, int) else None


class Recorder:
    """Every traced hop of this process, by trace id (the last :data:`KEEP` traces)."""

    def __init__(self, keep: int = KEEP) -> None:
        self._keep = keep
        self._traces: collections.OrderedDict[str, list[Hop]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def add(self, hop: Hop) -> Hop:
        with self._lock:
            hops = self._traces.setdefault(hop.trace, [])
            if not hop.note and hop.source not in ("client",):
                hop.resent = hop.resent or any(h.source == hop.source and h.what == hop.what and not h.note
                                               and h.target != hop.target for h in hops)
            hops.append(hop)
            while len(self._traces) > self._keep:
                self._traces.popitem(last=False)
        return hop

    def hops(self, trace_id: str | None) -> list[Hop]:
        """The hops of one trace, in the order they started."""
        with self._lock:
            return sorted(self._traces.get(trace_id or "", ()), key=lambda h: h.start)

    def clear(self) -> None:
        with self._lock:
            self._traces.clear()


RECORDER = Recorder()


def current() -> str | None:
    """The trace id of the request this thread is answering, or None (not traced)."""
    now = _current.get()
    return now[0] if now else None


@contextmanager
def hop(trace_id: str | None, source: str, target: str | None, what: str, *,
        note: bool = False) -> Iterator[Hop | None]:
    """Time what runs inside as one hop of ``trace_id`` (nothing at all when it is None); set ``.outcome``."""
    if trace_id is None:
        yield None
        return
    step = Hop(trace_id, source, target, what, note=note, start=time.perf_counter())
    try:
        yield step
    except BaseException as e:
        if step.outcome is None:
            step.outcome = f"failed ({type(e).__name__})"
        raise
    finally:
        step.ms = (time.perf_counter() - step.start) * 1000
        RECORDER.add(step)


# --- the hooks each part installs --------------------------------------------------------------------------

def instrument_app(app: Any, state: dict[str, Any]) -> None:
    """Let a bookshop server record its traced requests, and its store calls while it answers them."""
    from flask import g, request

    @app.before_request
    def trace_begin():
        trace_id = valid(request.headers.get(HEADER))
        if trace_id is not None:
            g.statelab_trace = (trace_id, _current.set((trace_id, state["name"])), time.perf_counter())

    @app.after_request
    def trace_end(response):
        began = g.pop("statelab_trace", None)
        if began is not None:
            trace_id, token, start = began
            _current.reset(token)
            RECORDER.add(Hop(trace_id, state["name"], state["name"], f"{request.method} {request.path}",
                             response.status_code, start, (time.perf_counter() - start) * 1000, note=True))
        return response

    @app.teardown_request
    def trace_abandon(_error=None):
        began = g.pop("statelab_trace", None)
        if began is not None:
            _current.reset(began[1])

    for part, label, methods in ((state.get("store"), "session store", ("create", "get", "update", "delete")),
                                 (state.get("carts"), "cart table", ("get", "update")),
                                 (state.get("keyring"), "key ring", ("issue", "verify", "renew"))):
        if part is not None:
            watch(part, label, methods)
            owners = getattr(part, "_statelab_trace_owners", None)
            if isinstance(owners, set):
                owners.add(state["name"])


def watch(part: Any, label: str, methods: tuple[str, ...]) -> None:
    """Record each call of ``part``'s ``methods`` made while answering a traced request (once per object:
    a store every server shares is watched once, and the hop names the server that called)."""
    if getattr(part, "_statelab_traced", False):
        return
    try:
        part._statelab_traced = True
        part._statelab_trace_owners = set()  # the servers using it: one alone means "in that server's memory"
    except AttributeError:  # an object that takes no new attribute: left untraced
        return
    for name in methods:
        original = getattr(part, name, None)
        if callable(original):
            setattr(part, name, _traced_call(part, original, label, name))


_inside = threading.local()  # the part whose traced call this thread is in (its own inner calls are not hops)


def _traced_call(part: Any, original: Callable[..., Any], label: str, name: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        now = _current.get()
        if now is None or getattr(_inside, "part", None) is part:  # untraced, or a call the part makes itself
            return original(*args, **kwargs)
        link = getattr(part, "link", None)
        trips = link.round_trips if link is not None else 0
        _inside.part = part
        try:
            with hop(now[0], now[1], _where(part, label, now[1]), name) as step:
                result = original(*args, **kwargs)
                step.outcome = _describe_result(name, result)
        finally:
            _inside.part = None
        if link is not None:
            step.detail = (f"through Link {link.name!r}: {link.delay * 1000:g} ms each way, "
                           f"{link.round_trips - trips} round trip(s)")
        return result

    call.__wrapped__ = original  # type: ignore[attr-defined]
    return call


def _where(part: Any, label: str, server: str) -> str:
    """``label``, or "session store in server-0" for a part in one server's own memory (not shared)."""
    owners = getattr(part, "_statelab_trace_owners", ())
    if getattr(part, "kind", None) in ("memory", "naive") and len(owners) <= 1:
        return f"{label} in {server}"
    return label


def _describe_result(name: str, result: Any) -> str:
    if name == "verify":
        return "valid (checked locally)"
    if name in ("issue", "renew"):
        return "signed"
    if name == "create":
        return "new session"
    if result is None:
        return "not found"
    if name == "update":
        return "written"
    if isinstance(result, bool):
        return "done" if result else "not found"
    if isinstance(result, (list, dict)):
        return "found"
    return "ok"


# --- what the balancer and the cache call --------------------------------------------------------------------

def attempt(request: Any, source: str, target: str | None, relay: Callable[..., Any], *args: Any,
            cut: list | None = None, broken: list | None = None) -> Any:
    """Run ``relay(*args)`` (one proxy's try at one upstream) as a hop when ``request`` is traced; return its
    answer.

    ``relay`` returns a response, or None when the proxy will try elsewhere; ``cut`` (the balancer's list of
    backends that crashed mid-answer) tells a crash from a refused connection, and ``broken`` (its 502s kept for
    when no other backend answers) a broken answer from a live server.
    """
    trace_id = valid(request.headers.get(HEADER))
    if trace_id is None:
        return relay(*args)
    before = len(cut) if cut is not None else 0
    kept = len(broken) if broken is not None else 0
    with hop(trace_id, source, target, f"{request.method} {request.path}") as step:
        answer = relay(*args)
        response = answer[0] if isinstance(answer, tuple) else answer
        if response is not None and response.headers.get("X-Served-By") == source:  # the proxy's own error
            error = _error_of(response)
            step.outcome = "cut by a crash" if "while answering" in error else "failed"
            step.detail = f"{error}; {source} answers {response.status_code} itself"
        elif response is not None:
            step.outcome = response.status_code
        elif broken is not None and len(broken) > kept:
            step.outcome = "broken answer"
            step.detail = "the server is still up: its 502 is kept in case no other server answers; tried elsewhere"
        elif cut is not None and len(cut) > before:
            step.outcome = "cut by a crash"
            step.detail = "its answer stopped short and it now refuses connections: safe to re-send"
        else:
            step.outcome = "refused the connection"
            step.detail = "nothing was sent: marked down, tried elsewhere"
    return answer


def verdict(request: Any, source: str, outcome: str, start: float) -> None:
    """Record a proxy's own decision (a cache's HIT or MISS), reached from ``start``, as a note on a traced
    request."""
    trace_id = valid(request.headers.get(HEADER))
    if trace_id is not None:
        RECORDER.add(Hop(trace_id, source, source, f"{request.method} {request.path}", outcome,
                         start, (time.perf_counter() - start) * 1000, note=True))


def _error_of(response: Any) -> str:
    try:
        body = response.get_json(silent=True)
    except Exception:
        return ""
    return str(body.get("error", ""))[:120] if isinstance(body, dict) else ""


def carried(exchange: Any) -> str:
    """What identity an exchange carried each way, in a few words (the cookie it sent, the one it got)."""
    said = []
    if "Cookie" in exchange.sent:
        said.append("sent Cookie " + ", ".join(c.split("=")[0] for c in exchange.sent["Cookie"].split("; ")))
    if "Authorization" in exchange.sent:
        said.append("sent a Bearer token")
    if exchange.set_cookie:
        said.append("got Set-Cookie " + exchange.set_cookie.split("=")[0] + " (" + ", ".join(
            a.strip() for a in exchange.set_cookie.split(";")[1:] if a.strip().split("=")[0] in ("HttpOnly", "SameSite")
        ) + ")")
    if isinstance(exchange.body, dict) and "token" in exchange.body:
        said.append("got a token in the body")
    return "; ".join(said)


def hops_of(exchange: Any) -> list[Hop]:
    """The recorded hops of one client :class:`~statelab.client.Exchange`, or of a trace id (empty when none)."""
    return RECORDER.hops(exchange if isinstance(exchange, str) else getattr(exchange, "trace_id", None))


@dataclass
class Trace:
    """One exchange's hops, in the order they started, with a text version (``str(trace)``)."""

    trace_id: str
    hops: list[Hop] = field(default_factory=list)

    @property
    def resends(self) -> list[Hop]:
        """The balancer's attempts that repeated the request after an earlier attempt failed."""
        return [h for h in self.hops if h.resent]

    @property
    def resent(self) -> bool:
        return bool(self.resends)

    def text(self) -> str:
        return "\n".join(describe(self.hops))

    def _repr_markdown_(self) -> str:  # shown in a notebook: the drawing (statelab/ui/trace.py)
        from .ui.trace import TraceView

        return TraceView([self.hops])._repr_markdown_()

    def __str__(self) -> str:
        return self.text()


def describe(hops: list[Hop]) -> list[str]:
    """One line per hop: who asked whom for what, what came back, when (from the first hop) and how long."""
    if not hops:
        return []
    t0 = hops[0].start
    lines = []
    for h in hops:
        when = f"at +{(h.start - t0) * 1000:.1f} ms, {h.ms:.1f} ms"
        extra = f"; {h.detail}" if h.detail else ""
        again = " (re-sent)" if h.resent else ""
        if h.note:
            lines.append(f"{h.source} finished {h.what} with {h.outcome} ({when}){extra}")
        else:
            lines.append(f"{h.source} → {h.target or '?'}: {h.what}{again} → {h.outcome} ({when}){extra}")
    return lines
