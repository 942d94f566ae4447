"""Row "resource_usage": server memory against sessions, and the bytes a token costs per request."""

from __future__ import annotations

import tracemalloc

import pytest

import statelab as sl
from statelab.experiments import VERDICTS, latest, resource_usage


@pytest.fixture(scope="module")
def ev():
    return resource_usage.run(quick=True)


def test_quick_run_gives_evidence_for_the_row(ev):
    assert ev.row == "resource_usage" and ev.verdict in VERDICTS
    assert latest()["resource_usage"] is ev
    assert len(ev.checks) >= 5 and all(ev.checks.values()), ev.checks
    assert ev.verdict == "holds with nuance"
    m = ev.measurements
    assert m["sessions"][0] == 0 and m["sessions"][-1] == m["sessions seen by GET /health"] >= 1000
    assert m["stateful bytes held"][-1] > 100 * m["sessions"][-1]  # at least 100 bytes a session
    assert not tracemalloc.is_tracing()  # it stopped the trace it started


def test_token_size_over_http_matches_the_keyring(ev):
    # the HTTP measurement and the in-process helper agree on where the token outgrows a cookie
    assert ev.measurements["cart lines when the token outgrows a cookie"] == \
        resource_usage.lines_to_outgrow(sl.Keyring("HS256"))
    cart = ev.extra["cart"]
    assert cart["stateless"]["credential"] == sorted(cart["stateless"]["credential"])  # grows with the cart
    sizes = set(cart["stateful"]["credential"])  # "sid-<port>=" and 43 characters of id, whatever the cart holds
    assert len(sizes) == 1 and len("sid-1=") + 43 <= sizes.pop() <= len("sid-65535=") + 43


def test_bigger_signatures_outgrow_the_cookie_sooner():
    hs, rs = resource_usage.lines_to_outgrow(sl.Keyring("HS256")), resource_usage.lines_to_outgrow(sl.Keyring("RS256"))
    assert hs is not None and rs is not None and rs < hs
    assert resource_usage.lines_to_outgrow(sl.Keyring("HS256"), limit=10**6) is None  # never, within the app's cap
    assert resource_usage.cookie_bytes("sid", "x" * 43) == 47


def test_traced_bytes_sees_what_is_kept():
    tracemalloc.start()
    try:
        before = resource_usage.traced_bytes()
        kept = bytearray(1_000_000)
        assert resource_usage.traced_bytes() - before >= 1_000_000
        del kept
        assert resource_usage.traced_bytes() - before < 100_000
    finally:
        tracemalloc.stop()


def test_a_trace_the_learner_started_is_left_running():
    tracemalloc.start()
    try:
        ev = resource_usage.run(sessions=(300,), http_users=20, max_lines=5)
        assert tracemalloc.is_tracing()
        assert ev.checks["a stateful server's memory grows with every session"]
        assert ev.measurements["cart lines when the token outgrows a cookie"] is None  # 5 lines are not enough
    finally:
        tracemalloc.stop()


def test_bad_sizes_get_a_clear_error():
    with pytest.raises(ValueError, match="sessions"):
        resource_usage.run(sessions=(0,))
    with pytest.raises(ValueError, match="max_lines"):
        resource_usage.run(max_lines=0)
    with pytest.raises(ValueError, match="sessions"):
        resource_usage.run(sessions=(-5, 100))
