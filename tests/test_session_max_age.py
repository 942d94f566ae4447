"""An absolute session timeout beside the idle one (``session_max_age``): a session kept busy still ends."""

from __future__ import annotations

import time

import pytest

import statelab as sl


def test_a_busy_session_ends_at_its_max_age_and_an_idle_one_at_its_ttl():
    with sl.Server("stateful", session_ttl=1.5, session_max_age=2).start() as server:
        busy, idle = sl.Client(server.url), sl.Client(server.url)
        busy.login("alice")
        idle.login("bob")
        started = time.monotonic()
        statuses = []
        while time.monotonic() - started < 3.5 and 401 not in statuses:  # every 0.3 s: never idle for 1.5 s
            statuses.append(busy.cart().status)
            time.sleep(0.3)
        ended = time.monotonic() - started
        assert statuses[0] == 200 and statuses[-1] == 401, statuses
        assert "maximum age" in busy.last.body["error"] and ended >= 2.0, (busy.last.body, ended)
        assert idle.cart().status == 401, "bob was idle longer than session_ttl"
        assert server.store.count() == 0, "the session past its max age is deleted, not only refused"
        assert busy.login("alice").ok and busy.cart().status == 200, "logging in again starts a new session"


def test_without_max_age_a_busy_session_lives_on_and_keeps_no_login_time():
    with sl.Server("stateful", session_ttl=1.0).start() as server:
        c = sl.Client(server.url)
        c.login("alice")
        for _ in range(6):
            assert c.cart().status == 200
            time.sleep(0.3)
        sid = c.cookies[server.cookie_name]
        assert "auth_time" not in server.store.get(sid)


@pytest.mark.parametrize("bad", [0, -1, float("nan")])
def test_a_bad_max_age_is_refused(bad):
    with pytest.raises(ValueError, match="session_max_age"):
        sl.create_app("stateful", session_max_age=bad)
