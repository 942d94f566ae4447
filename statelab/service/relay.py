"""What a proxy does with one request: read it, forward it upstream, relay the answer.

The load balancer and the shared cache are both reverse proxies. They differ in whom they ask
and what they keep, not in how they speak HTTP, so that lives here once:

* the request body is read within :data:`~statelab.rawhttp.MAX_BODY`;
* the target is forwarded exactly as the client sent it (:func:`~statelab.rawhttp.request_target`),
  and only end-to-end headers go either way (:func:`~statelab.rawhttp.end_to_end`);
* an answer that cannot be relayed faithfully (a folded or broken header, RFC 9112 5.2) is refused
  with :class:`BadAnswer`, which a proxy turns into a JSON 502, as RFC 9112 asks of a proxy.
"""

from __future__ import annotations

import http.client
from typing import Any

from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from ..rawhttp import MAX_BODY, end_to_end, request_target
from . import json_error

# Date and Server describe the proxy's own answer (its HTTP server adds them): relaying the upstream's
# too would send each twice. Content-Length is kept: it is the only length a HEAD answer carries.
_NOT_RELAYED = ("date", "server")


class BadAnswer(Exception):
    """The upstream answered with something a proxy may not pass on (a folded or malformed header)."""


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
    method or a header: nothing was sent), :class:`OSError` or :class:`http.client.HTTPException` when
    the upstream fails after the request went out, and :class:`BadAnswer` for an answer that cannot
    be relayed.
    """
    headers = dict(end_to_end(request.headers, drop=("content-length", "host")))
    if "X-Forwarded-Host" not in request.headers:  # the host the browser saw, for the same-origin check
        headers["X-Forwarded-Host"] = request.host
        headers.setdefault("X-Forwarded-Proto", request.scheme)  # and its scheme: an origin is scheme, host, port
    headers.update(extra or {})
    headers["Host"] = f"{conn.host}:{conn.port}"
    target = request_target(request.environ.get("RAW_URI"), request.path, request.query_string)
    conn.request(request.method, target, body=body or None, headers=headers)
    upstream = conn.getresponse()
    data = upstream.read()
    return answer(upstream.status, upstream.getheaders(), data, defects=upstream.msg.defects)


def answer(status: int, headers: list[tuple[str, str]], data: bytes, defects: Any = ()) -> Response:
    """A werkzeug response carrying the upstream's answer; :class:`BadAnswer` if it is malformed."""
    if defects:
        raise BadAnswer(f"malformed header block ({type(defects[0]).__name__})")
    relayed = end_to_end(headers, drop=_NOT_RELAYED)
    for name, value in relayed:
        if any(c in name + value for c in "\r\n\0"):
            raise BadAnswer(f"header {name[:40]!r} is folded over lines or holds a control character")
    try:  # headers go in whole: werkzeug adds no default Content-Type when one was given
        response = Response(data, status=status, headers=relayed)
    except ValueError as e:
        raise BadAnswer(str(e)) from None
    length = next((v for k, v in relayed if k.lower() == "content-length"), None)
    if length is not None:  # set_data counted the body we hold, which is empty for an answer to HEAD
        response.headers["Content-Length"] = length
    return response
