"""Row "caching": the experiment's evidence (the SharedCache it stands on: tests/http/test_cache.py)."""

from __future__ import annotations

import pytest

from statelab.experiments import caching, latest


@pytest.fixture(scope="module")
def ev():
    return caching.run(quick=True)


def test_each_half_and_benefit_4c_get_their_own_verdict(ev):
    assert ev.row == "caching"
    assert set(ev.verdicts) == {"stateful", "stateless"} and set(ev.benefits) == {"4c"}
    for design in caching.DESIGNS:
        table = ev.extra["table"][design]
        assert table["misconfigured"]["leaks"] > 0  # alice's data served to someone else
        assert table["correct"]["leaks"] == 0
        assert table["correct"]["personal hit ratio"] == 0
        assert table["correct"]["catalog hit ratio"] >= caching.CATALOG_HITS
        ev.require(caching.CHECKS[f"{design}_misconfigured_leaks"], caching.CHECKS[f"{design}_public_no_vary_leaks"],
                   caching.CHECKS[f"{design}_personal_own"])
    # one copy of /me per token: every cart change mints a new one
    assert ev.checks[caching.CHECKS.more_copies_with_vary.id]
    # CI's machine: the commonest bug leaks the cookie shops and not the bearer shop, and every half
    # keeps the same three limits, so both halves hold with nuance
    assert ev.verdicts == {"stateful": "holds with nuance", "stateless": "holds with nuance"}
    assert ev.benefits == {"4c": "holds with nuance"}
    assert latest()["caching"] is ev


def test_the_commonest_bug_leaks_cookies_and_the_cache_steps_aside_for_authorization(ev):
    """RFC 9111 section 3.5, measured: max-age=60 with no private and no Vary on per-user answers."""
    table = ev.extra["table"]
    session, token, signed = (table[d][caching.MAX_AGE] for d in (*caching.DESIGNS, caching.SIGNED_COOKIE))
    assert session["leaks"] > 0 and session["personal hit ratio"] > 0   # bob got alice's answers, from the cache
    assert signed["leaks"] > 0                                          # a stateless cookie leaks the same way
    assert token["leaks"] == 0 and token["personal hit ratio"] == 0 and token["stored per-user copies"] == 0
    assert token["per-user answers the cache stepped aside for"] == token["per-user answers"]
    ev.require(caching.CHECKS.stateful_max_age_leaks, caching.CHECKS.stateless_max_age_safe,
               caching.CHECKS.signed_cookie_max_age_leaks)
    assert set(ev.mechanisms) >= {caching.CHECKS.stateful_max_age_leaks.id, caching.CHECKS.stateless_max_age_safe.id}
    assert ev.require_mechanisms()
    # the halves are decided by this set-up, one rule for both
    assert caching.CLAIMS["stateful"].supports == (caching.CHECKS.stateful_max_age_leaks.id,)
    assert caching.CLAIMS["stateless"].supports == (caching.CHECKS.stateless_max_age_safe.id,)
    assert caching.CLAIMS["stateful"].qualifies == caching.CLAIMS["stateless"].qualifies


def test_the_conclusion_is_rendered_from_the_numbers(ev):
    md = ev.conclusion()._repr_markdown_()
    aged = ev.measurements["leaks, max-age without private or Vary"]
    session = aged[caching.DESIGN_NAMES["stateful"]]
    assert f"served another user's data {session} times to the session shop's users" in md
    assert "RFC 9111 section 3.5" in md and "Measured under these conditions" in md
    assert "needs: stateless: with the same headers the correct cache steps aside" in md
    assert "per user even when the cache or the headers are wrong" not in md   # the straw man is gone


def test_plot_says_leaks_in_words(ev):
    from statelab.plots import caching as chart

    fig = chart.plot(ev)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(t.endswith("leaks") for t in texts) and "no leak" in texts
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_run_refuses_silly_sizes():
    with pytest.raises(ValueError):
        caching.run(users=1)
