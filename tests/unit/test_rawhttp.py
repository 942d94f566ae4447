"""statelab.rawhttp: the one module that writes requests and reads answers as raw bytes."""

from __future__ import annotations

import socket
import threading

import pytest

import statelab as sl
from statelab.rawhttp import build_request, end_to_end, request_target, wire_exchange


def test_a_json_body_goes_with_its_content_type_and_length():
    raw = build_request("POST", "127.0.0.1", 8000, "/login", {"Cookie": "sid=x"}, {"user": "alice"})
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /login HTTP/1.1" and b"Host: 127.0.0.1:8000" in lines
    assert b"Content-Type: application/json" in lines and b"Cookie: sid=x" in lines
    assert b"Content-Length: %d" % len(body) in lines and body == b'{"user": "alice"}'
    typed = build_request("POST", "h", 1, "/", {"content-type": "text/plain"}, "x")
    assert b"Content-Type: application/json" not in typed and b"content-type: text/plain" in typed
    assert b"Content-Type" not in build_request("POST", "h", 1, "/", body=b"raw bytes")
    assert b"Content-Length" not in build_request("GET", "h", 1, "/")


def test_load_run_posts_json_the_csrf_guard_accepts():
    with sl.Server("stateless") as server:
        server.start()
        res = sl.load.run(server.url, path="/login", method="POST", json={"user": "alice"}, max_requests=3,
                          separate_process=False)
    assert res.statuses == {200: 3}, res.statuses


def test_wire_exchange_reads_head_answers_and_refuses_a_cut_body():
    with sl.Server("stateless") as server:
        server.start()
        head = wire_exchange(server.url, build_request("HEAD", "127.0.0.1", server.port, "/catalog"), timeout=3)
        assert head.status == 200 and head.body == b"" and int(head.headers["Content-Length"]) > 0
    with socket.create_server(("127.0.0.1", 0)) as listener:  # a server that stops mid-body
        def answer_half() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
        t = threading.Thread(target=answer_half, name="test-half-answer")
        t.start()
        with pytest.raises(ConnectionError, match="middle"):
            wire_exchange(listener.getsockname(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
        t.join()


@pytest.mark.parametrize("raw,path,query,expected", [
    ("/me%3Fa=b", "/me?a=b", b"", "/me%3Fa=b"),               # an escaped ? stays escaped
    ("/a%2Fb?x=%26", "/a/b", b"x=%26", "/a%2Fb?x=%26"),        # and an escaped / and &
    ("/caf\xc3\xa9", "/caf\u00e9", b"", "/caf%C3%A9"),          # bytes beyond ASCII: escaped, as sent
    ("http://evil.example/me", "/me", b"", "/me"),              # absolute form: the path only
    (None, "/a b", b"q=1 2", "/a%20b?q=1%202"),
])
def test_request_target_forwards_what_the_client_sent(raw, path, query, expected):
    assert request_target(raw, path, query) == expected


def test_end_to_end_drops_hop_by_hop_headers_and_those_connection_names():
    headers = [("Connection", "close, X-Secret"), ("X-Secret", "1"), ("Keep-Alive", "5"), ("ETag", '"a"'),
               ("Transfer-Encoding", "chunked"), ("Date", "today")]
    assert end_to_end(headers, drop=("date",)) == [("ETag", '"a"')]
