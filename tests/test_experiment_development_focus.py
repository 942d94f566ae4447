"""Row "Development Focus": the same concerns asked of both sides, CSRF and page scripts counted."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import statelab as sl  # noqa: E402
from statelab.experiments import Evidence, development_focus  # noqa: E402
from statelab.shop.plugins import login_keeping_the_id  # noqa: E402


@pytest.fixture(scope="module")
def ev() -> Evidence:
    return development_focus.run(quick=True)


def test_both_sides_are_asked_the_same_concerns(ev):
    concerns = ev.extra["concerns"]
    assert [c["concern"] for c in concerns] == list(development_focus.CONCERNS)
    for c in concerns:  # every concern has an observed answer on each side, not a typed one
        assert isinstance(c["stateful"], bool) and isinstance(c["stateless"], bool)
        assert c["stateful_saw"] and c["stateless_saw"]
    m = ev.measurements
    assert m["stateful_concerns"] == sum(c["stateful"] for c in concerns) >= 1
    assert m["stateless_concerns"] == sum(c["stateless"] for c in concerns) >= 1
    names = [c["concern"] for c in concerns]
    assert "refuse cross-site forged writes (CSRF)" in names and "keep the credential from page scripts (XSS)" in names


def test_each_half_and_benefit_4d_get_their_own_verdict(ev):
    assert ev.row == "development_focus"
    assert set(ev.verdicts) == {"stateful", "stateless"} and set(ev.benefits) == {"4d"}
    m = ev.measurements
    assert m["stateless_replays_accepted_after_logout"] == m["replays"]   # logout did not revoke the token
    assert m["stateful_replays_accepted_after_logout"] == 0               # deleting the session did...
    assert m["cache_replays_served_after_logout"] == m["replays"]         # ...except where a cache answered
    failed = [name for name, ok in ev.checks.items() if not ok]
    assert failed == ["the stateless side leaves fewer of the listed concerns to the developer than the stateful side"]
    assert ev.verdicts == {"stateful": "holds with nuance", "stateless": "does not hold"}
    assert ev.benefits == {"4d": "holds with nuance"}
    assert sl.experiments.latest()["development_focus"] is ev


def test_csrf_follows_the_cookie_and_the_guard_refuses_it(ev):
    m = ev.measurements
    assert m["csrf_stateful_accepted"] and m["csrf_cookie_accepted"]   # both cookies ride along, guard off
    assert m["csrf_stateless_status"] == 401                            # a form cannot add a bearer token
    assert (m["csrf_guarded_status"], m["csrf_guarded_no_origin_status"]) == (403, 415)
    assert m["stateful_cookie_httponly"] and m["cookie_cookie_httponly"] and m["stateless_token_in_login_body"]


def test_the_conclusion_never_calls_revocation_immediate_and_complete(ev):
    md = ev.conclusion()._repr_markdown_()
    assert "immediate and complete" not in md and "not instant everywhere" in md
    assert f"served {ev.measurements['cache_replays_served_after_logout']}/" in md


def test_the_library_ships_no_deny_list():
    assert not hasattr(development_focus, "DenyList") and not hasattr(development_focus, "deny_list")
    assert not hasattr(sl.shop.plugins, "DenyList") and not hasattr(sl.shop.plugins, "deny_list")


def test_concerns_table_and_plot(ev):
    from statelab.plots import development_focus as chart

    table = development_focus.concerns_html(ev)
    assert table.count("<tr>") == 1 + len(development_focus.CONCERNS) + 1 and "CSRF" in table
    fig = chart.plot(ev)
    assert fig.axes[0].get_xlabel().startswith("share of a thief")
    assert len(fig.axes[0].patches) == len(chart.bars(ev)) == 5
    assert all("accepted" in t.get_text() or "refused" in t.get_text() for t in fig.axes[0].texts)


def test_run_refuses_silly_sizes():
    with pytest.raises(ValueError, match="replays"):
        development_focus.run(replays=1)
    with pytest.raises(ValueError, match="session_ttl"):
        development_focus.run(session_ttl="soon")


def test_forged_form_post_carries_cookies_but_no_token():
    with sl.Server("stateless", csrf_guard=False) as api:
        api.start()
        victim = sl.Client(api.url)
        victim.login("alice")
        forged = development_focus.forged_form_post(victim, "http://127.0.0.1:1")
        assert forged.status == 401 and "Authorization" not in forged.sent
        assert forged.sent["Content-Type"] == "text/plain" and forged.sent["Origin"] == "http://127.0.0.1:1"


def test_naive_login_keeps_the_planted_id_and_the_real_one_does_not():
    with sl.Server("stateful", plugins=[login_keeping_the_id]) as shop:
        shop.start()
        mallory = sl.Client(shop.url)
        mallory.login("mallory")
        for path, mallory_becomes in (("/login-naive", "alice"), ("/login", None)):
            mallory.login("mallory")
            alice = sl.Client(shop.url)
            alice.set_cookie(shop.cookie_name, mallory.cookies[shop.cookie_name])
            assert alice.post(path, {"user": "alice"}).ok
            seen = mallory.me()
            assert (seen.body.get("user") if seen.ok else None) == mallory_becomes
        assert sl.Client(shop.url).post("/login-naive", {"user": "no spaces"}).status == 400
    with pytest.raises(ValueError, match="stateful"):
        sl.create_app("stateless", plugins=[login_keeping_the_id])
