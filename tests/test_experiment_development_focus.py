"""Row "Development Focus": the concerns each side leaves to the developer, and the deny-list plugin."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import statelab as sl  # noqa: E402
from statelab.experiments import VERDICTS, Evidence, development_focus  # noqa: E402
from statelab.experiments.development_focus import DenyList, deny_list, login_keeping_the_id  # noqa: E402


@pytest.fixture(scope="module")
def ev() -> Evidence:
    return development_focus.run(quick=True)


def test_run_quick_reaches_a_verdict_from_its_checks(ev):
    assert ev.row == "development_focus" and ev.verdict in VERDICTS
    assert ev.checks and all(ev.checks.values()), ev.checks
    m = ev.measurements
    assert m["stateless_replays_accepted_after_logout"] == m["replays"]   # logout did not revoke the token
    assert m["stateful_replays_accepted_after_logout"] == 0               # deleting the session did
    assert m["shared_deny_replays_accepted_after_logout"] == 0
    assert m["deny_list_entries"] == m["logouts"] > 0                     # the state came back
    # the verdict follows the counts of concerns, whatever they are
    assert m["stateless_concerns"] >= m["stateful_concerns"] and ev.verdict == "does not hold"
    assert len(ev.extra["concerns"]) == 6
    assert sl.experiments.latest()["development_focus"] is ev


def test_concerns_table_and_plot(ev):
    table = development_focus.concerns_html(ev)
    assert table.count("<tr>") == 1 + 6 + 1 and "session fixation" in table
    fig = development_focus.plot(ev)
    assert fig.axes[0].get_xlabel().startswith("share of a thief")
    assert len(fig.axes[0].patches) == 4


def test_run_refuses_silly_sizes():
    with pytest.raises(ValueError, match="replays"):
        development_focus.run(replays=1)
    with pytest.raises(ValueError, match="session_ttl"):
        development_focus.run(session_ttl="soon")


def test_shared_deny_list_revokes_on_every_server():
    denied = DenyList()
    with sl.Cluster(2, "stateless", plugins=[deny_list(denied)]) as c:
        alice, bob = sl.Client(c.url), sl.Client(c.url)
        alice.login("alice")
        bob.login("bob")
        stolen = alice.token
        assert alice.logout().ok and len(denied) == 1
        thief = sl.Client(c.url)
        thief.token = stolen
        refused = [thief.me() for _ in range(4)]
        assert all(r.status == 401 and "revoked" in r.body["error"] for r in refused)
        assert {r.served_by for r in refused} == {"server-0", "server-1"}
        assert bob.me().ok                                   # other tokens are untouched
        thief.token = "not.a.token"
        assert "malformed" in thief.me().body["error"]        # bad tokens still get the route's own 401


def test_deny_list_forgets_entries_once_their_token_expired():
    denied = DenyList()
    denied.add("old", exp=0)
    denied.add("live", exp=4e9)
    assert "old" not in denied and "live" in denied and len(denied) == 2
    assert denied.purge_expired() == 1 and len(denied) == 1 and denied.kept_for() > 0


def test_deny_list_is_only_for_stateless_servers():
    with pytest.raises(ValueError, match="stateless"):
        sl.create_app("stateful", plugins=[deny_list()])


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
