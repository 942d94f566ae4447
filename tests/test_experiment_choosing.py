"""Notebook 12, choosing: the four designs on the same axes, and the seed's two definitions judged."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import statelab as sl  # noqa: E402
from statelab.experiments import DESIGNS, VERDICTS, Evidence, choosing  # noqa: E402
from statelab.plots import choosing as choosing_plot  # noqa: E402


@pytest.fixture(scope="module")
def ev() -> Evidence:
    return choosing.run(quick=True)


def test_run_quick_measures_the_four_designs_and_every_check_holds(ev):
    assert ev.row == "choosing" and list(ev.measurements["lost_on_crash"]) == list(DESIGNS)
    assert ev.checks and all(ev.checks.values()), {k: v for k, v in ev.checks.items() if not v}
    m, users = ev.measurements, ev.measurements["users"]
    assert 0 < m["lost_on_crash"]["session + memory"] < users
    assert m["lost_on_crash"]["session + shared store"] == m["lost_on_crash"]["token + cart in db"] == 0
    assert m["found_share_round_robin"]["token + cart in db"] == 1.0 > m["found_share_round_robin"]["session + memory"]
    assert m["replays_accepted_after_logout"] == {"session + memory": 0, "session + shared store": 0,
                                                  "token + cart in token": m["replays"],
                                                  "token + cart in db": m["replays"]}
    assert m["cart_follows_to_second_device"] == {"session + memory": False, "session + shared store": False,
                                                  "token + cart in token": False, "token + cart in db": True}
    grew = {d: m["credential_bytes_n_lines"][d] - m["credential_bytes_1_line"][d] for d in DESIGNS}
    assert grew["token + cart in token"] > 0 and grew["token + cart in db"] == 0 == grew["session + shared store"]
    assert m["store_trips_per_request"]["token + cart in db"] >= 1 and m["store_trips_per_request"][
        "token + cart in token"] == 0


def test_each_half_of_the_definitions_gets_its_own_verdict_with_a_corrected_sentence(ev):
    assert set(ev.verdicts) == {"stateful", "stateless"} and set(ev.verdicts.values()) <= set(VERDICTS)
    assert ev.benefits == {}                 # every benefit is judged in its row's notebook, not here
    # both halves are true as far as they go, and each leaves out what the other design axis shows
    assert ev.verdicts == {"stateful": "holds with nuance", "stateless": "holds with nuance"}
    stateless = ev.claims["stateless"].corrected
    assert "session + shared store did as well (0 lost, 100% found)" in stateless
    md = ev.conclusion()._repr_markdown_()
    assert "do not require server resources to maintain client state" in md       # the seed's own words
    assert "The **stateful** half" in md and "limit: session + memory" in md


def test_table_and_plot(ev):
    table = choosing.table_html(ev)
    assert all(design in table for design in DESIGNS) and table.count("<tr>") == 8
    assert "&#10003; <b>yes</b>" in table and "&#10007; no" in table             # words and symbols, not colour
    fig = choosing_plot.plot(ev)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "share of users or reads" and len(ax.patches) == 16
    assert {p.get_hatch() or "" for p in ax.patches} == set(choosing_plot.HATCHES)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(DESIGNS)


def test_run_refuses_silly_sizes():
    with pytest.raises(ValueError, match="users"):
        choosing.run(users=1)
    with pytest.raises(ValueError, match="replays"):
        choosing.run(replays=True)


def test_trip_counter_counts_each_call_the_servers_make_once_and_changes_nothing_else(tmp_path):
    store = sl.SqliteStore(tmp_path / "s.sqlite3")
    counter = choosing.TripCounter(store)
    with sl.Server("stateful", store=store) as server:
        server.start()
        alice = sl.Client(server.url)
        seen = [counter.trips]
        for step in (lambda: alice.login("alice"), alice.cart, lambda: alice.add_to_cart("book"), alice.logout):
            assert step().ok
            seen.append(counter.trips)
        steps = [b - a for a, b in zip(seen, seen[1:], strict=False)]
        assert all(n >= 1 for n in steps), steps      # every request went to the store
        assert steps[1] == 1, steps                    # GET /cart: one get (its idle-timer refresh is the same trip)
        assert store.count() == 0                                    # and the store still did its job
    store.close()


def test_the_self_check_asserts_mechanisms_and_the_conclusion_states_conditions(ev):
    ids = ev.require_mechanisms()
    assert {"control", "mem_crash", "shared_trips"} <= set(ids)
    text = str(ev.conclusion())
    assert "designs compared" in text and "the designs interleaved" in text and "(needs >= 1)" in text


def test_the_timing_note_says_why_two_runs_differ_from_both_runs_numbers(ev):
    alone = choosing.timing_note(ev, None) if sl.experiments.latest().get("performance") is None else ""
    p50 = ev.measurements["p50_ms"]
    if alone:
        assert "run it to compare" in alone and f"{p50['session + memory']:.2f} ms" in alone
    other = Evidence(row="performance", checks={}, conditions={"cores": "2"},
                     measurements={"GET p50 ms": {"session + memory": 1.11, "token + cart in token (HS256)": 0.93},
                                   "round trips per design": 60, "cart lines": 3})
    note = choosing.timing_note(ev, other)
    assert "1.11 ms" in note and "0.93 ms" in note and "60 round trips" in note and "cores: 2" in note
    ratio = p50["session + memory"] / 1.11
    assert f"{ratio:.1f}x as long here (session + memory)" in note
    assert "two HTTP hops" in note and "one HTTP hop" in note
    assert ("cannot rank them" in note) != ("answered faster here" in note)      # one of the two, from the spread


def test_design_options_put_both_production_designs_in_the_same_kind_of_store():
    from statelab.experiments import design_options

    assert design_options("session + shared store") == DESIGNS["session + shared store"]       # sqlite: as it is
    assert design_options("session + shared store", "valkey")["store"] == "valkey"
    assert design_options("token + cart in db", "valkey") == {"mode": "stateless", "cart": "db", "store": "valkey"}
    assert design_options("session + memory", "valkey") == DESIGNS["session + memory"]          # no shared part
    with pytest.raises(ValueError, match="store must be"):
        design_options("token + cart in db", "redis")
