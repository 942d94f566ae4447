"""Row "Scalability": affinity per design as servers are added, the shared writer, and the helpers."""

from __future__ import annotations

import random

import pytest

import statelab as sl
from statelab.experiments import DESIGNS, VERDICTS, Evidence, latest, scalability
from statelab.plots import scalability as plots


@pytest.fixture(scope="module")
def ev() -> Evidence:
    return scalability.run(quick=True)


def test_quick_run_judges_each_half_and_benefit_5a_from_its_checks(ev):
    assert ev.row == "scalability" and latest()["scalability"] is ev
    assert not hasattr(ev, "verdict")  # no single verdict: one per half, one per benefit
    assert all(ev.checks.values()), {k: v for k, v in ev.checks.items() if not v}
    assert set(ev.verdicts) == {"stateful", "stateless"} and set(ev.benefits) == {"5a"}
    assert set(ev.verdicts.values()) | set(ev.benefits.values()) <= set(VERDICTS)
    # stateful: sticky routing scales memory sessions with no synchronization; stateless: the key and the writer
    assert ev.verdicts == {"stateful": "holds with nuance", "stateless": "holds with nuance"}
    assert ev.benefits == {"5a": "holds with nuance"}
    assert "shared" in ev.claims["stateless"].corrected and "writes per second" in ev.claims["5a"].corrected


def test_every_design_is_grown_and_only_memory_with_round_robin_loses_sessions(ev):
    designs = {design for design, _ in scalability.SETUPS.values()}
    assert designs == set(DESIGNS)
    found, kept = ev.extra["found"], ev.extra["kept"]
    broken = found[scalability.BROKEN]
    assert list(broken) == [1, 2, 3, 4] and broken[1] == 1.0 and broken[4] < 0.6
    assert kept[scalability.BROKEN][4] < 1.0  # carts scattered over servers
    for label in scalability.SETUPS:
        if label != scalability.BROKEN:
            assert set(found[label].values()) == {1.0} and set(kept[label].values()) == {1.0}, label
    assert ev.measurements["tokens it refused"] == ev.measurements["tokens sent to a server with its own key"] == 3
    assert f"{broken[4]:.0%}" in ev.reading


def test_each_half_s_data_tier_takes_one_writer_at_a_time(ev):
    tiers, hold = ev.extra["tiers"], ev.extra["hold"]
    assert hold == scalability.HOLD and set(tiers) == {"cart table", "session store"}
    for tier in tiers.values():
        assert max(tier["writes"].values()) <= 1.15 / hold  # 4 writers: no more than one writer's ceiling
    assert tiers["cart table"]["reads"][4] >= 2 * tiers["cart table"]["reads"][1]      # plain reads do not queue
    # sliding expiry: a session read is an UPDATE under BEGIN IMMEDIATE, so it waits for the writer
    behind = {t: tiers[t]["behind"]["behind a writer ms"] for t in tiers}
    assert behind["session store"] > 10 * behind["cart table"], behind
    assert ev.checks["session_read_writes"] and "session_read_writes" in ev.mechanisms
    assert ev.measurements["one real cart write (us)"] > 0
    assert set(ev.extra["capacity"]) == {1, 4} and min(ev.extra["capacity"].values()) > 0
    assert ev.conditions["work inside each write's transaction"] == "10 ms (run(hold=...))"


def test_the_self_check_names_mechanisms_only(ev):
    assert set(ev.require_mechanisms()) == {"memory_rr_falls", "sticky_keeps", "store_keeps", "token_keeps", "db_keeps",
                                            "own_key_refused", "session_read_writes"}
    for name in ("table_writes_queue", "table_reads_grow", "session_writes_queue", "session_read_waits", "one_in_n"):
        timing = scalability.CHECKS[name]
        assert timing.id not in ev.mechanisms and str(timing.threshold).rstrip("0").rstrip(".") in timing.label
    assert "every request found it" in ev.reading and "at least 100%" not in ev.reading


def test_both_halves_are_limited_by_their_own_data_tier():
    assert scalability.CHECKS.session_writes_queue.id in scalability.CLAIMS["stateful"].qualifies
    assert scalability.CHECKS.session_read_waits.id in scalability.CLAIMS["stateful"].qualifies
    assert scalability.CHECKS.table_writes_queue.id in scalability.CLAIMS["stateless"].qualifies


def test_a_session_read_waits_for_the_writer_and_a_cart_read_does_not():
    with sl.Cluster(1, **DESIGNS["session + shared store"]) as s, sl.Cluster(1, **DESIGNS["token + cart in db"]) as d:
        before, after = scalability.read_moves_expiry(s.store)
        assert after > before  # the read pushed the expiry back: it wrote
        hold = 0.02
        session = scalability.read_behind_writer(s.store, hold=hold, reads=6)
        cart = scalability.read_behind_writer(d.carts, hold=hold, reads=6)
        assert session["behind a writer ms"] > 1.0 and cart["behind a writer ms"] < session["behind a writer ms"] / 3
        out = scalability.shared_writer(s.store, [1, 3], hold=hold, each=3)
        assert out["writes"][3] < 1.15 / hold   # three session writers, one at a time


def test_plot_draws_each_setup_the_1_over_n_line_and_the_writer(ev):
    fig = plots.plot(ev)
    left, right = fig.axes
    assert len(left.lines) == len(scalability.SETUPS) + 1 and left.get_ylabel()
    assert len(right.lines) == 5 and right.get_xlabel()  # writes and reads of two tiers, one writer's ceiling


def test_shop_counts_requests_that_reach_the_session_and_carts_kept_whole():
    rng = random.Random(1)
    with sl.Cluster(1, "stateful") as one, sl.Cluster(3, "stateful") as three:
        found, kept, clients = scalability.shop(one.url, 3, 3, rng)
        assert found == kept == 1.0 and len(clients) == 3
        assert clients[0].cart().body["cart"] == [{"item": "book", "qty": 3}]
        found, kept, _ = scalability.shop(three.url, 6, 4, rng)
        assert found < 0.75 and kept < 1.0  # about a third land on the server that holds the session


def test_bad_sizes_get_a_clear_error():
    with pytest.raises(ValueError, match="servers must be"):
        scalability.run(servers=1)
    with pytest.raises(ValueError, match="users must be a whole number"):
        scalability.run(users=-1)
    with pytest.raises(ValueError, match="hold must be a number from 0.001 to 0.1"):
        scalability.run(hold=0)
