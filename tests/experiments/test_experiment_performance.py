"""Row "performance": five designs timed end to end and in-process, bytes counted on the wire."""

from __future__ import annotations

import time

import pytest

import statelab as sl
from statelab.experiments import VERDICTS, latest, performance
from statelab.rawhttp import WireUser, build_request, wire_exchange
from statelab.shop.tokens import Keyring


@pytest.fixture(scope="module")
def ev():
    return performance.run(quick=True)


def test_quick_run_judges_each_half_and_benefit_5d_from_named_checks(ev):
    assert ev.row == "performance" and latest()["performance"] is ev
    assert not hasattr(ev, "verdict")  # no single verdict: one per half, one per benefit
    assert set(ev.verdicts) == {"stateful", "stateless"} and set(ev.benefits) == {"5d"}
    assert set(ev.verdicts.values()) | set(ev.benefits.values()) <= set(VERDICTS)
    # what this machine shows, with margins that hold on a crowded one
    for name in ("a memory session lookup costs under a fifth of the cheapest token check",
                 "a shared-store lookup costs over 10x a memory lookup",
                 "the cryptography is under a quarter of an HS256 check: PyJWT's parsing is the rest",
                 "signing an RS256 token costs over 5x signing an HS256 one",
                 "every token request is bigger on the wire than a session request"):
        assert ev.checks[name], name
    assert not ev.checks["a token check costs less than a memory session lookup"]
    assert ev.verdicts == {"stateful": "holds with nuance", "stateless": "does not hold"}
    assert ev.benefits["5d"] == "does not hold"
    designs = [label for label, _ in performance.DESIGNS]
    assert set(ev.measurements["GET p50 ms"]) == set(designs) == set(ev.measurements["POST p50 ms"])
    for method in ("GET", "POST"):
        assert all(len(ev.extra["latencies_ms"][method][d]) == ev.measurements["round trips per design"]
                   for d in designs)


def test_the_conclusion_and_reading_are_rendered_from_the_numbers(ev):
    m = ev.measurements
    md = ev.conclusion()._repr_markdown_()
    assert f"{m['token verify µs']['HS256']:.0f} µs (HS256" in md
    assert f"{m['token sign µs']['RS256']:.0f} µs RS256" in md
    assert f"{m['session lookup µs']['session + memory']:.1f} µs" in ev.reading
    assert "needs: a token check costs less than a memory session lookup: **no**" in md


def test_parsing_and_cryptography_add_up_to_the_pyjwt_path(ev):
    m = ev.measurements
    for a in ("HS256", "RS256", "ES256"):
        assert m["token verify: cryptography µs"][a] + m["token verify: parsing µs"][a] == \
            pytest.approx(m["token verify µs"][a])
        assert 0 < m["token verify: cryptography µs"][a] <= m["token verify µs"][a]
        assert 0 < m["token sign: cryptography µs"][a] <= m["token sign µs"][a] * 1.05
    # a POST re-signs the token: its state work includes a signature, a GET's does not
    for design, a in zip(performance.TOKEN_DESIGNS, ("HS256", "RS256", "ES256"), strict=True):
        assert m["state work per POST µs"][design] == pytest.approx(m["token verify µs"][a] + m["token sign µs"][a])


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
    memory, shared = performance.SESSION_DESIGNS
    hs, rs, es = performance.TOKEN_DESIGNS
    # same answer body for all (the cart), so the request side carries the difference: the token
    assert m["request bytes"][memory] == m["request bytes"][shared]
    for d in performance.TOKEN_DESIGNS:
        extra = m["request bytes"][d] - m["request bytes"][memory]
        assert extra == m["identity header bytes"][d] - m["identity header bytes"][memory]
        assert m["bytes per POST /cart"][d] > m["bytes per GET /cart"][d]  # the answer carries a new token
    assert m["request bytes"][rs] > m["request bytes"][es] > m["request bytes"][hs]


def test_with_the_cart_in_the_db_the_token_is_not_re_signed_and_stays_small(ev):
    m = ev.measurements
    db, hs = performance.DB_DESIGN, performance.TOKEN_DESIGNS[0]
    assert m["tokens signed by cart writes"][db] == 0
    assert all(m["tokens signed by cart writes"][d] == m["round trips per design"] for d in performance.TOKEN_DESIGNS)
    assert m["bytes per POST /cart"][db] < m["bytes per POST /cart"][hs]      # no new token in the answer
    assert m["identity header bytes"][db] < m["identity header bytes"][hs]    # no cart in the token
    # a read checks an identity-only token and reads the cart table; a write writes the table, signs nothing
    table = m["token + cart in db: cart table µs"]
    assert m["state work per POST µs"][db] == pytest.approx(
        m["token + cart in db: identity-only token check µs"] + table["write"])


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
    assert len(fig.axes) == 2 and all(a.get_xlabel() for a in fig.axes)
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == ev.extra["designs"]
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
