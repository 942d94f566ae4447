"""What a proxy does with one request: read it, forward it upstream, relay the answer.

The load balancer and the shared cache are both reverse proxies. They differ in whom they ask
and what they keep, not in how they speak HTTP, so that lives here once:

* the request body is read within :data:`~statelab.rawhttp.MAX_BODY`;
* the target is forwarded exactly as the client sent it (:func:`~statelab.rawhttp.request_target`),
  and only end-to-end headers go either way (:func:`~statelab.rawhttp.end_to_end`);
* an answer that cannot be relayed faithfully is refused with :class:`BadAnswer`, which a proxy turns
  into a JSON 502, as RFC 9112 asks of a proxy: a folded or broken header, a bad status line, over 100
  headers or a header line over 64 KiB, a status outside 100-599, a ``Content-Length`` that is not a
  length, a ``101`` (statelab's proxies do not support protocol upgrades such as WebSocket);
* interim answers (``1xx``, e.g. ``103 Early Hints``) are read and dropped: WSGI cannot send one, and
  the final answer that follows is the one the client needs;
* an answer that stops short (no answer at all, a reset, a cut body) raises :class:`CutAnswer`: the
  upstream may have crashed, and only the proxy can tell (the balancer asks whether it still listens);
* an answer up to :data:`BUFFERED` bytes is read whole first, so a cut body is still a clean 502; a
  larger one is streamed on in :data:`CHUNK`-sized pieces, so a proxy's memory does not grow with the
  answer (if such an answer is cut, the proxy cuts its client's connection too: the client sees a short
  body, never a complete-looking wrong one).
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from typing import Any

from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from ..rawhttp import MAX_BODY, end_to_end, request_target
from . import json_error

# Date and Server describe the proxy's own answer (its HTTP server adds them): relaying the upstream's
# too would send each twice. Content-Length is kept: it is the only length a HEAD answer carries.
_NOT_RELAYED = ("date", "server")
BUFFERED = 1024 * 1024  # an answer up to this size is read whole (and checked) before it is relayed
CHUNK = 64 * 1024  # a larger one is relayed in pieces of this size
MAX_INTERIM = 16  # interim (1xx) answers skipped before the final one; more is a broken upstream
_LENGTH = re.compile(r"[0-9]{1,18}")  # a Content-Length a proxy can believe (up to about an exabyte)


class BadAnswer(Exception):
    """The upstream answered with something a proxy may not pass on (a malformed head, a bad status)."""


class CutAnswer(ConnectionError):
    """The upstream's answer stopped short: nothing at all, a reset, or a body shorter than announced."""


def read_body(request: Request, name: str) -> bytes | Response:
    """The request's body, or the JSON error to answer instead (too large, or a broken chunked body)."""
    request.max_content_length = MAX_BODY
    too_large = json_error(413, f"request body is larger than {MAX_BODY // 1024} KiB", name)
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return too_large
    except HTTPException as e:  # a broken chunked body, or the client hung up mid-body
        return json_error(e.code or 400, f"could not read the request body ({e.name})", name)
    if request.content_length is None and len(body) >= MAX_BODY:
        return too_large  # chunked: werkzeug stops reading at the cap without saying so
    return body


def connect(host: str, port: int, timeout: float) -> http.client.HTTPConnection:
    """A connection to the upstream; raises :class:`OSError` if it refuses (then nothing was sent)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.connect()
    except OSError:
        conn.close()
        raise
    return conn


def forward(conn: http.client.HTTPConnection, request: Request, body: bytes,
            extra: dict[str, str] | None = None) -> Response:
    """Send ``request`` on ``conn`` and return the upstream's answer, ready to relay.

    Raises :class:`ValueError` when ``http.client`` refuses to send it (control characters in the
    method or a header: nothing was sent), :class:`TimeoutError` when the upstream is too slow,
    :class:`CutAnswer` when its answer stops short, and :class:`BadAnswer` for an answer that
    cannot be relayed. A large answer is streamed: the returned response reads the rest as it goes.
    """
    headers = dict(end_to_end(request.headers, drop=("content-length", "host")))
    if "X-Forwarded-Host" not in request.headers:  # the host the browser saw, for the same-origin check
        headers["X-Forwarded-Host"] = request.host
        headers.setdefault("X-Forwarded-Proto", request.scheme)  # and its scheme: an origin is scheme, host, port
    headers.update(extra or {})
    headers["Host"] = f"{conn.host}:{conn.port}"
    target = request_target(request.environ.get("RAW_URI"), request.path, request.query_string)
    conn.request(request.method, target, body=body or None, headers=headers)
    upstream = _final_answer(conn, request.method)
    try:
        status, relayed = _checked_head(upstream)
        first, complete = _read_up_to(upstream, BUFFERED)
        if complete:
            upstream.close()
            return answer(status, relayed, b"".join(first))
        return answer(status, relayed, _rest(upstream, first))
    except BaseException:
        upstream.close()
        raise


class _SameFile:
    """Lets ``http.client`` read the next answer from the buffered file the last one was read from."""

    def __init__(self, fp: Any) -> None:
        self._fp = fp

    def makefile(self, mode: str) -> Any:
        return self._fp


def _final_answer(conn: http.client.HTTPConnection, method: str) -> http.client.HTTPResponse:
    """The upstream's final answer, after any interim (1xx) ones; CutAnswer or BadAnswer if there is none."""
    try:
        upstream = conn.getresponse()  # http.client skips 100 Continue itself, not the other 1xx
        for _ in range(MAX_INTERIM):
            if upstream.status == 101:
                raise BadAnswer("101 Switching Protocols: statelab's proxies do not support protocol upgrades "
                                "(such as WebSocket)")
            if not 100 <= upstream.status < 200:
                return upstream
            following = http.client.HTTPResponse(_SameFile(upstream.fp), method=method)  # type: ignore[arg-type]
            upstream.fp = None  # the file now belongs to the next answer
            upstream = following
            upstream.begin()
        raise BadAnswer(f"more than {MAX_INTERIM} interim (1xx) answers")
    except http.client.RemoteDisconnected:
        raise CutAnswer("the upstream closed the connection without answering") from None
    except TimeoutError:
        raise
    except OSError as e:
        raise CutAnswer(f"the connection broke before an answer ({type(e).__name__})") from None
    except http.client.LineTooLong:
        raise BadAnswer("a line of the answer's head is longer than 64 KiB") from None
    except http.client.BadStatusLine as e:
        raise BadAnswer(f"not an HTTP status line: {str(e)[:60]!r}") from None
    except http.client.HTTPException as e:  # "got more than 100 headers", and the like
        raise BadAnswer(f"malformed head ({str(e)[:80] or type(e).__name__})") from None


def _checked_head(upstream: http.client.HTTPResponse) -> tuple[int, list[tuple[str, str]]]:
    """The status and the headers to relay, once checked; BadAnswer if a proxy may not pass them on."""
    if not 200 <= upstream.status <= 599:
        raise BadAnswer(f"status {upstream.status} is not an HTTP status (100 to 599)")
    if upstream.msg.defects:
        raise BadAnswer(f"malformed header block ({type(upstream.msg.defects[0]).__name__})")
    lengths = {v.strip() for value in upstream.msg.get_all("Content-Length") or () for v in value.split(",")}
    if lengths and not (len(lengths) == 1 and _LENGTH.fullmatch(next(iter(lengths)))):
        raise BadAnswer(f"Content-Length {', '.join(sorted(lengths))[:40]!r} is not one length of a body")
    drop = _NOT_RELAYED + (("content-length",) if upstream.chunked else ())  # chunked: the length is ours
    relayed = end_to_end(upstream.getheaders(), drop=drop)
    for name, value in relayed:
        if any(c in name + value for c in "\r\n\0"):
            raise BadAnswer(f"header {name[:40]!r} is folded over lines or holds a control character")
    return upstream.status, relayed


def _read(upstream: http.client.HTTPResponse, size: int) -> bytes:
    """Up to ``size`` bytes of the body (b"" at its end); CutAnswer if it ends before it said it would."""
    try:
        data = upstream.read(size)
    except TimeoutError:
        raise
    except (http.client.IncompleteRead, OSError) as e:
        raise CutAnswer(f"the answer's body was cut short ({type(e).__name__})") from None
    except (http.client.HTTPException, ValueError):  # a chunk size that is not hexadecimal, and the like
        raise BadAnswer("malformed chunked body") from None
    if not data and upstream.length:  # the connection closed before Content-Length bytes came
        raise CutAnswer(f"the answer's body was cut short ({upstream.length} bytes missing)")
    return data


def _read_up_to(upstream: http.client.HTTPResponse, limit: int) -> tuple[list[bytes], bool]:
    """The body's first ``limit`` bytes or more, and whether that was all of it."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = _read(upstream, CHUNK)
        if not chunk:
            return chunks, True
        chunks.append(chunk)
        size += len(chunk)
    return chunks, False


def _rest(upstream: http.client.HTTPResponse, first: list[bytes]) -> Iterator[bytes]:
    """Relay what was read, then the rest piece by piece. If the upstream's answer is cut, cut the client's
    connection too (ConnectionAbortedError: werkzeug drops the connection without a word), so the client
    sees a short body rather than one that looks complete."""
    try:
        while first:
            yield first.pop(0)
        while chunk := _read(upstream, CHUNK):
            yield chunk
    except (CutAnswer, BadAnswer, OSError) as e:
        raise ConnectionAbortedError(f"the upstream's answer was cut: {e}") from None
    finally:
        upstream.close()


def answer(status: int, relayed: list[tuple[str, str]], data: bytes | Iterator[bytes]) -> Response:
    """A werkzeug response carrying the upstream's answer (headers checked by :func:`_checked_head`)."""
    try:  # headers go in whole: werkzeug adds no default Content-Type when one was given
        response = Response(data, status=status, headers=relayed)
    except ValueError as e:
        raise BadAnswer(str(e)) from None
    length = next((v for k, v in relayed if k.lower() == "content-length"), None)
    if length is not None:  # set_data counted the body we hold, which is empty for an answer to HEAD
        response.headers["Content-Length"] = length.split(",")[0].strip()
    return response
