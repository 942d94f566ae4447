"""Row "performance": five designs timed end to end and in-process, bytes counted on the wire."""

from __future__ import annotations

import time

import pytest

import statelab as sl
from statelab.experiments import VERDICTS, latest, performance


@pytest.fixture(scope="module")
def ev():
    return performance.run(quick=True)


def test_quick_run_gives_evidence_for_the_row(ev):
    assert ev.row == "performance" and ev.verdict in VERDICTS
    assert latest()["performance"] is ev
    assert len(ev.checks) >= 6 and all(ev.checks.values()), ev.checks
    assert ev.verdict == "holds with nuance"  # what the checks being all true amounts to
    designs = [label for label, _, _ in performance.DESIGNS]
    assert set(ev.measurements["p50 ms"]) == set(designs) == set(ev.measurements["state work µs"])
    assert all(len(ev.extra["latencies_ms"][d]) == ev.measurements["round trips per design"] for d in designs)


def test_bytes_are_counted_from_the_wire(ev):
    m = ev.measurements
    # same answer body for all (the cart), so the request side carries the difference: the token
    assert m["request bytes"]["memory session"] == m["request bytes"]["SQLite session"]
    for d in ("HS256 token", "RS256 token", "ES256 token"):
        extra = m["request bytes"][d] - m["request bytes"]["memory session"]
        assert extra == m["identity header bytes"][d] - m["identity header bytes"]["memory session"]
    assert m["request bytes"]["RS256 token"] > m["request bytes"]["ES256 token"] > m["request bytes"]["HS256 token"]


def test_wire_exchange_counts_every_byte_of_request_and_answer():
    with sl.Server("stateful") as server:
        server.start()
        user = performance.WireUser(server.url, "stateful")
        login = user.login("alice")
        assert login.status == 200 and user.credential and len(user.credential) >= 40
        raw = user.raw("GET", "/cart")
        assert f"Cookie: {server.cookie_name}={user.credential}\r\n".encode() in raw and raw.endswith(b"\r\n\r\n")
        ex = performance.wire_exchange(server.url, raw)
    assert ex.status == 200 and ex.json() == {"cart": []}
    assert ex.request_bytes == len(raw)
    assert ex.response_bytes == ex.response_header_bytes + len(ex.body) == ex.total_bytes - len(raw)
    assert int(ex.headers["Content-Length"]) == len(ex.body)
    assert ex.headers["X-Served-By"] == server.name and ex.ms < 5000


def test_wire_user_refuses_an_error_answer_loudly():
    with sl.Server("stateless") as server:
        server.start()
        with pytest.raises(RuntimeError, match="401"):
            performance.WireUser(server.url, "stateless").send("GET", "/cart")


def test_micro_times_are_medians_per_call_in_microseconds():
    us = performance.micro_times({"nothing": lambda: None, "a millisecond": lambda: time.sleep(0.001)},
                                 number=3, repeat=3)
    assert us["a millisecond"] >= 1000 > 10 * us["nothing"]


def test_plot_and_table(ev):
    import matplotlib

    matplotlib.use("Agg")
    fig = performance.plot(ev)
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel()
    rows = performance.table(ev)
    assert [r["design"] for r in rows] == ev.extra["designs"]
    matplotlib.pyplot.close(fig)


def test_bad_sizes_get_a_clear_error():
    with pytest.raises(ValueError, match="requests"):
        performance.run(requests=-1)
