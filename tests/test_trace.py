"""Traces of real traffic (statelab/trace.py, sl.ui.trace): every hop recorded, re-sends visible, drawn as Mermaid."""

from __future__ import annotations

import pytest

import statelab as sl
from statelab import trace
from statelab.shop.plugins import personal_headers
from statelab.topology.cache import SharedCache


@pytest.fixture
def cluster():
    c = sl.Cluster(2, "stateful", store="sqlite")
    yield c
    c.stop()


def test_a_request_to_a_crashed_server_shows_the_resend_and_every_hop_timed(cluster):
    alice = sl.Client(cluster.url, traced=True)
    assert alice.login("alice").ok
    cluster.kill(1)
    resent = None
    for _ in range(4):  # round robin: within two requests one is routed to the crashed server first
        ex = alice.cart()
        assert ex.status == 200
        if ex.trace.resends:
            resent = ex
            break
    assert resent is not None, "no request was routed to the crashed server"
    hops = resent.trace.hops
    to_crashed = [h for h in hops if h.source == "balancer" and h.target == "server-1"]
    assert to_crashed and to_crashed[0].outcome == "refused the connection"
    again = resent.trace.resends[0]
    assert (again.source, again.target, again.outcome) == ("balancer", "server-0", 200)
    assert again.start >= to_crashed[0].start
    assert [h.source for h in hops][0] == "client"
    assert any(h.source == "server-0" and h.target == "session store" for h in hops)
    assert all(h.ms > 0 for h in hops if not h.note or h.source.startswith("server"))
    client_hop = hops[0]
    assert all(client_hop.start <= h.start <= client_hop.end for h in hops)  # one clock: nested in the exchange
    drawn = sl.ui.trace(alice, last=1)._repr_markdown_()
    assert drawn.startswith("```mermaid\nsequenceDiagram")
    assert "accTitle:" in drawn and "accDescr {" in drawn
    assert "--x" in drawn and "(re-sent)" in drawn  # the refusal and the re-send are arrows of the diagram
    assert "refused the connection" in str(sl.ui.trace(resent))


def test_untraced_requests_record_nothing(cluster):
    trace.RECORDER.clear()
    bob = sl.Client(cluster.url)
    bob.login("bob"), bob.cart()
    assert bob.last.trace_id is None and bob.last.trace is None
    assert trace.RECORDER.hops(None) == [] and not trace.RECORDER._traces  # noqa: SLF001 (the test reads the store)
    with pytest.raises(ValueError, match="traced=True"):
        sl.ui.trace(bob)


def test_a_plain_post_cut_by_a_crash_is_traced_as_cut_and_not_resent():
    from statelab.experiments.fault_tolerance import write_through_crash
    from statelab.shop.plugins import InFlight, slow_writes

    in_flight = InFlight()
    with sl.Cluster(2, "stateful", store="sqlite", plugins=[slow_writes(0.3), in_flight]) as c:
        alice = sl.Client(c.url, traced=True)
        alice.login("alice")
        ex = write_through_crash(c, alice, in_flight)
        assert ex.status == 502
        balancer = [h for h in ex.trace.hops if h.source == "balancer"]
        assert [h.outcome for h in balancer] == ["cut by a crash"]  # one attempt: a plain POST is never re-sent
        assert "answers 502 itself" in balancer[0].detail and not ex.trace.resends
        assert "--x" in sl.ui.trace(ex)._repr_markdown_()


def test_the_cache_hit_that_served_alice_s_cart_to_bob_is_a_note_with_no_server_behind_it():
    with sl.Server("stateful", plugins=[personal_headers({"personal": "max-age"})]) as server, \
            SharedCache(server.start(), honour_headers=False) as cache:
        alice, bob = sl.Client(cache.url, traced=True), sl.Client(cache.url, traced=True)
        alice.login("alice"), alice.add_to_cart("sicp"), alice.cart()
        bob.login("bob")
        ex = bob.cart()
        hops = ex.trace.hops
        assert [(h.source, h.outcome) for h in hops if h.note] == [("cache-misconfigured", "HIT")]
        assert not any(h.source.startswith("server") for h in hops)
        assert "HIT" in sl.ui.trace(ex)._repr_markdown_()


@pytest.mark.skipif(not sl.valkey_available(), reason="Valkey is not installed")
def test_a_store_across_a_link_names_the_distance():
    with sl.Cluster(2, "stateful", store="valkey", distance=0.002) as far:
        carol = sl.Client(far.url, traced=True)
        carol.login("carol")
        ex = carol.cart()
        store = [h for h in ex.trace.hops if h.target == "session store"]
        assert store and "through Link 'sessions': 2 ms each way" in store[0].detail
        assert store[0].ms >= 4  # one round trip at least: 2 ms each way


def test_the_book_draws_a_trace_that_a_cell_printed():
    import nbformat

    from tools.build_book import draw_mermaid

    with sl.Server("stateless") as server:
        dave = sl.Client(server.start().url, traced=True)
        dave.login("dave")
        view = sl.ui.trace(dave)
    shown = nbformat.v4.new_output("display_data", data={"text/markdown": view._repr_markdown_(),
                                                         "text/plain": str(view)})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("sl.ui.trace(dave)", outputs=[shown])])
    assert draw_mermaid(nb) == 1
    drawn = nb.cells[0].outputs[0].data["text/html"]
    assert drawn.startswith('<pre class="mermaid">\nsequenceDiagram') and "key ring" in drawn


def test_a_trace_id_sent_by_hand_is_followed_and_a_hostile_one_ignored(cluster):
    erin = sl.Client(cluster.url)
    ex = erin.get("/health", headers={trace.HEADER: "probe-1"})
    assert ex.trace_id == "probe-1" and [h.status for h in trace.hops_of("probe-1")][:2] == [200, 200]
    assert "sequenceDiagram" in ex.trace._repr_markdown_()
    bad = erin.get("/health", headers={trace.HEADER: "x\" onload=1 " * 3})
    assert bad.ok and bad.trace_id is None  # not an id: the request goes through untraced


def test_a_list_of_exchanges_is_drawn_whole_and_a_client_by_its_last(cluster):
    fay = sl.Client(cluster.url, traced=True)
    first, second = fay.login("fay"), fay.cart()
    assert len(sl.ui.trace([first, second]).traces) == 2
    assert sl.ui.trace(fay).traces[0][0].what == "GET /cart"
    assert len(sl.ui.trace(fay, last=2).traces) == 2
    with pytest.raises(ValueError, match="whole number"):
        sl.ui.trace(fay, last=0)
