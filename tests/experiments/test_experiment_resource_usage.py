"""Row "resource_usage": where each design keeps the state, and the bytes a token costs per request."""

from __future__ import annotations

import tracemalloc

import pytest

import statelab as sl
from statelab.experiments import DESIGNS, VERDICTS, latest, resource_usage
from statelab.plots import resource_usage as plots


@pytest.fixture(scope="module")
def ev():
    return resource_usage.run(quick=True)


def test_quick_run_judges_each_half_and_benefit_4b(ev):
    assert ev.row == "resource_usage" and latest()["resource_usage"] is ev
    failed = {k for k, ok in ev.checks.items() if not ok}
    # with short item names a 200-line cart's token stays under every server's header limit (CI's machine)
    assert failed <= {resource_usage.CHECKS.header_limit.id}, failed
    assert ev.require_mechanisms()
    assert set(ev.verdicts.values()) | set(ev.benefits.values()) <= set(VERDICTS)
    # memory sessions cost memory, but a shared store moves it; tokens keep none, but re-send or move it;
    # 4b: the sid keeps state off the wire, and so does a token with the cart in db
    assert ev.verdicts == {"stateful": "holds with nuance", "stateless": "holds with nuance"}
    assert ev.benefits == {"4b": "holds with nuance"}
    assert not tracemalloc.is_tracing()  # it stopped the trace it started


def test_state_lives_in_server_memory_or_in_a_shared_file(ev):
    m = ev.measurements
    assert m["users"][0] == 0 and m["users"][-1] == m["sessions seen by GET /health"] >= 300
    assert m["server bytes held, session + memory"][-1] > 100 * m["users"][-1]  # at least 100 bytes a session
    for design in ("session + shared store", "token + cart in token", "token + cart in db"):
        assert m[f"server bytes held, {design}"][-1] < 0.25 * m["server bytes held, session + memory"][-1], design
    assert m["shared store bytes per session"] > 50 and m["cart table bytes per user"] > 20
    assert set(ev.extra["held"]) == set(DESIGNS)


def test_token_size_over_http_matches_the_keyring(ev):
    # the HTTP measurement and the in-process helper agree on where the token would outgrow a cookie
    assert ev.measurements["cart lines when the token outgrows a cookie"] == \
        resource_usage.lines_to_outgrow(sl.Keyring("HS256"))
    cart = ev.extra["cart"]
    grown = cart["token + cart in token"]["credential"]
    assert grown == sorted(grown) and grown[0] < grown[-1]
    for design in ("session + memory", "session + shared store"):  # the cluster's "sid-..." name, "=", 43 characters
        (size,) = set(cart[design]["credential"])
        (name,) = cart[design]["cookie name"]
        assert name.startswith("sid") and size == len(name) + 1 + 43
    assert len(set(cart["token + cart in db"]["credential"])) == 1  # identity only: flat


def test_a_bearer_token_is_held_to_the_servers_header_limits_not_a_cookies():
    """Issue 16: 4096 bytes is a cookie's limit; a token in Authorization meets the servers' (8-16 KB)."""
    from statelab.shop.tokens import MAX_TOKEN

    limits = resource_usage.header_limits()
    assert limits[resource_usage.OWN_LIMIT] == len(f"Authorization: Bearer {'x' * MAX_TOKEN}\r\n")  # read, not typed
    assert limits[resource_usage.GUNICORN_LIMIT] == resource_usage.gunicorn_field_limit() == 8190
    assert min(limits.values()) > 1.9 * resource_usage.COOKIE_LIMIT   # header limits, about twice a cookie's
    assert limits[resource_usage.OWN_LIMIT] <= limits[resource_usage.GUNICORN_LIMIT]  # ours bites first (issue 17)
    keyring = sl.Keyring("HS256")
    as_cookie = resource_usage.lines_to_outgrow(keyring)
    as_header = resource_usage.lines_to_outgrow(keyring, limits[resource_usage.GUNICORN_LIMIT], header=True)
    assert as_cookie is not None and (as_header is None or as_header > 1.5 * as_cookie)
    # the label names the cookie limit for what it is: a cookie's, not the token's
    label = resource_usage.CHECKS.token_in_cookie.label
    assert "kept in a cookie" in label and "4,096" in label


def test_the_full_run_grows_the_token_to_the_cap_and_finds_what_refuses_it():
    ev = resource_usage.run(sessions=(50,), http_users=5)
    m = ev.measurements
    line, status, error, kept = m["first refusal, token + cart in token"]
    assert kept and 400 <= status < 500 and error
    from statelab.shop.tokens import MAX_TOKEN

    top = ev.extra["cart"]["token + cart in token"]
    if max(top["token chars"]) + 1 < MAX_TOKEN and status == 400:   # the cart cap bit before the shop's own limit
        assert line == resource_usage.MAX_CART_LINES + 1 and "full" in error
    else:                                                           # MAX_TOKEN bit first (a 413, cart unchanged)
        assert status == 413 and "unchanged" in error
    assert ev.checks[resource_usage.CHECKS.server_refuses_cleanly.id]
    header = top["credential"][-1]
    assert header == len(f"Authorization: Bearer {'x' * top['token chars'][-1]}\r\n")
    assert ev.checks[resource_usage.CHECKS.header_limit.id] == any(
        header > size for size in m["header limits (bytes of the Authorization field)"].values())


def test_plot_shows_memory_shared_files_and_cookie_bytes(ev):
    fig = plots.plot(ev)
    memory, files, wire = fig.axes
    assert len(memory.lines) == len(DESIGNS)
    assert len(files.lines) == 2  # the two designs with a shared file
    assert wire.get_ylabel().startswith("bytes, as its limit counts")
    labels = [line.get_label() for line in wire.lines]
    assert any("cookies only" in t for t in labels) and any("Authorization" in t for t in labels)


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


def test_file_bytes_counts_data_not_the_log(tmp_path):
    store = sl.SqliteStore(tmp_path / "s.sqlite3")
    try:
        empty = resource_usage.file_bytes(store.path)
        for i in range(300):
            store.create({"user": f"u{i}", "cart": [{"item": "book", "qty": 1}]}, 60)
        grown = resource_usage.file_bytes(store.path)
        assert 300 * 40 < grown - empty < 300 * 1000
    finally:
        store.close()
    assert resource_usage.file_bytes(tmp_path / "none.sqlite3") == resource_usage.file_bytes(None) == 0


def test_a_trace_the_learner_started_is_left_running():
    tracemalloc.start()
    try:
        ev = resource_usage.run(sessions=(200,), http_users=10, max_lines=5)
        assert tracemalloc.is_tracing()
        assert ev.checks[resource_usage.CHECKS.memory_grows.id]
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


def test_both_shared_parts_live_in_the_same_kind_of_store(ev):
    """Like for like: the session store and the cart table are both Valkey where it is installed, else SQLite."""
    from statelab.topology.cluster import shared_store

    kind = shared_store()
    for design in (resource_usage.STORE, resource_usage.IN_DB):
        assert resource_usage.shared_options(design).get("store", "sqlite") == kind
    assert "store" not in resource_usage.shared_options(resource_usage.IN_TOKEN)
    assert ev.conditions["store"] == resource_usage.STORE_WORDS[kind]
    assert ev.measurements["shared store bytes per session"] > 50 and ev.measurements["cart table bytes per user"] > 20
