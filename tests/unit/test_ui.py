"""The dashboard, driven headless the way a learner drives it: click buttons, read what it shows.

Real servers on loopback, real clients; the widgets are clicked with ``button.click()`` and
their HTML values are checked for what the learner would read.
"""

from __future__ import annotations

import re
import time

import ipywidgets as W
import pytest
from ipywidgets.embed import dependency_state, embed_minimal_html

import statelab as sl
from statelab import ui
from statelab.client import Exchange
from statelab.ui.history import rows_html


@pytest.fixture
def dashboards():
    """Factory for dashboards that are closed (widgets and their clients) after the test."""
    made: list[ui.Dashboard] = []

    def make(*args, **kwargs) -> ui.Dashboard:
        d = sl.ui.dashboard(*args, **kwargs)  # as a notebook calls it
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def history_html(dash: ui.Dashboard) -> str:
    return dash.history.table.value


def inspector_html(dash: ui.Dashboard) -> str:
    i = dash.inspector
    return i.story.value + i.cookies_html.value + i.token_html.value


def newest_row(dash: ui.Dashboard) -> str:
    """The first data row of the history table (the newest exchange)."""
    rows = re.findall(r"<tr style=.*?</tr>", history_html(dash), flags=re.S)
    assert rows, "history shows no rows"
    return rows[0]


def click(*buttons: W.Button) -> None:
    for b in buttons:
        b.click()


# --------------------------------------------------------------------------- one stateful server

def test_stateful_server_login_cart_kill_restart(stateful, dashboards):
    dash = dashboards(stateful)
    p = dash.client_panel
    assert p.user_text.value == "alice"
    assert p.item_dropdown.value in {item["item"] for item in sl.shop.app.CATALOG}
    assert dash.client.url == stateful.url

    click(p.login_button, p.add_button, p.cart_button)
    assert [ex.status for ex in dash.client.history] == [200, 200, 200]
    row = newest_row(dash)
    assert "<b>200</b>" in row and stateful.name in row and "GET /cart" in row
    assert p.item_dropdown.value in row  # the cart answer names the item added
    assert "GET /cart" in dash.message.value and "200" in dash.message.value

    shown = inspector_html(dash)
    name = stateful.cookie_name  # each server its own cookie name: cookies are per host, not per port
    sid = dash.client.cookies[name]
    assert sid[:20] in shown
    sid_row = re.search(rf"<tr><td[^>]*><b>{name}</b>.*?</tr>", shown, flags=re.S).group(0)
    assert ">yes<" in sid_row and "Lax" in sid_row  # HttpOnly yes, SameSite Lax
    assert "opaque random id" in shown and f"on {stateful.name}" in shown
    assert "sessions held: <b>1</b>" in dash.cards[0].info.value

    # Kill: the card says down, the server is down, and the next request is refused.
    click(dash.cards[0].kill_button)
    assert stateful.alive is False
    assert "down" in dash.cards[0].info.value and "alive" not in dash.cards[0].info.value
    click(p.me_button)
    assert dash.client.last.error == "connection refused"
    assert "connection refused" in newest_row(dash)

    # Restart: alive again, but the memory (and the session) is gone: 401.
    click(dash.cards[0].restart_button)
    assert stateful.alive is True
    assert "alive" in dash.cards[0].info.value
    click(p.me_button)
    assert dash.client.last.status == 401
    assert "<b>401</b>" in newest_row(dash) and "not logged in" in newest_row(dash)
    assert "on no server any more" in inspector_html(dash)


def test_logout_and_forget(stateful, dashboards):
    dash = dashboards(stateful)
    p = dash.client_panel
    click(p.login_button)
    name = stateful.cookie_name
    assert f"Set-Cookie: {name}=" in dash.inspector.cookies_html.value  # the raw header of that answer
    click(p.logout_button)
    assert dash.client.last.status == 200 and name not in dash.client.cookies
    click(p.login_button, p.forget_button)
    assert dash.client.cookies == {} and dash.client.token is None
    assert "The browser holds nothing" in dash.inspector.story.value
    click(p.me_button)
    assert dash.client.last.status == 401


# --------------------------------------------------------------------------- a stateless cluster

def test_stateless_cluster_token_and_failover(cluster, dashboards):
    c = cluster(3, mode="stateless")
    dash = dashboards(c)
    p = dash.client_panel
    assert len(dash.cards) == 3 and len(dash.balancer_cards) == 1

    click(p.login_button, p.add_button, p.cart_button)
    assert all(ex.status == 200 for ex in dash.client.history)
    table = history_html(dash)
    answered = {ex.served_by for ex in dash.client.history}
    assert len(answered) == 3  # round robin: each request to the next server
    assert all(name in table for name in answered)

    shown = inspector_html(dash)
    assert "signature valid" in shown and "INVALID" not in shown
    assert "&quot;sub&quot;: &quot;alice&quot;" in shown
    assert re.search(r"expires in \d+ s", shown)
    assert "travels inside this token" in shown
    counts = dash.balancer_cards[0].info.value
    assert all(f">{n}<" in counts for n in c.balancer.counts.values())

    # Kill one server: the next requests are answered by the others, and the token still works.
    victim = c.servers[1]
    click(dash.cards[1].kill_button)
    assert victim.alive is False and "down" in dash.cards[1].info.value
    for _ in range(3):
        click(p.me_button)
        assert dash.client.last.status == 200
        assert dash.client.last.served_by != victim.name
    assert victim.name not in newest_row(dash)

    # Restart through the card: the cluster marks it up and it serves again, the same token verifies.
    click(dash.cards[1].restart_button)
    assert victim.alive is True and "alive" in dash.cards[1].info.value
    served = set()
    for _ in range(3):
        click(p.me_button)
        assert dash.client.last.status == 200
        served.add(dash.client.last.served_by)
    assert victim.name in served


def test_strategy_dropdown_sets_the_balancer(cluster, dashboards):
    c = cluster(2, mode="stateful")
    dash = dashboards(c)
    dropdown = dash.balancer_cards[0].strategy_dropdown
    dropdown.value = "sticky"
    assert c.strategy == "sticky"
    assert "sticky" in dash.message.value
    click(dash.client_panel.login_button, dash.client_panel.me_button)
    assert c.balancer.cookie_name in dash.client.cookies
    assert "pins you to" in dash.inspector.story.value
    c.strategy = "round_robin"  # changed from a cell: the dropdown follows on refresh
    dash.refresh()
    assert dropdown.value == "round_robin"


def test_stateful_cluster_with_memory_and_sqlite_stores(cluster, dashboards):
    mem = cluster(3, mode="stateful", store="memory")
    dash = dashboards(mem)
    click(dash.client_panel.login_button)
    home = dash.client.last.served_by
    assert f"on {home} (in its memory)" in dash.inspector.story.value

    shared = cluster(2, mode="stateful", store="sqlite")
    dash2 = dashboards(shared)
    click(dash2.client_panel.login_button, dash2.cards[0].kill_button, dash2.client_panel.me_button)
    assert dash2.client.last.status == 200  # the session lives in the shared file, not in server-0
    assert "sqlite session store" in dash2.inspector.story.value

    shared.stop()  # everything stopped (as sl.stop_all() would): the dashboard still answers clicks
    click(dash2.client_panel.me_button, dash2.client_panel.cart_button)
    assert dash2.client.last.error == "connection refused" and dash2.runner.last_error is None
    assert all("down" in card.info.value for card in dash2.cards)


def test_new_server_gets_a_card(cluster, dashboards):
    c = cluster(2, mode="stateless")
    dash = dashboards(c)
    c.add_server()
    dash.refresh()
    assert [card.server.name for card in dash.cards] == ["server-0", "server-1", "server-2"]
    assert dash.cards[2] in dash.shown_cards()


# --------------------------------------------------------------------------- a pair of servers

def test_pair_of_servers_one_client_each(stateful, stateless, dashboards):
    dash = dashboards([stateful, stateless])
    p = dash.client_panel
    assert p.target_toggle is not None and len(dash.clients) == 2
    assert [c.url for c in dash.clients] == [stateful.url, stateless.url]
    assert len(dash.cards) == 2

    click(p.login_button)
    assert dash.client is dash.clients[0] and stateful.cookie_name in dash.client.cookies
    assert stateful.name in newest_row(dash)

    p.target_toggle.value = 1
    assert dash.client is dash.clients[1] and dash.target is stateless
    assert "no requests yet" in history_html(dash)  # each client has its own history
    click(p.login_button, p.add_button)
    assert dash.client.cookies == {} and dash.client.token
    assert stateless.name in newest_row(dash) and "<b>200</b>" in newest_row(dash)
    shown = inspector_html(dash)
    assert "signature valid" in shown and "&quot;sub&quot;: &quot;alice&quot;" in shown

    # The stateless server crashes and comes back: the token still verifies (keys are configuration).
    click(dash.cards[1].kill_button, p.me_button)
    assert "connection refused" in newest_row(dash)
    click(dash.cards[1].restart_button, p.cart_button)
    assert dash.client.last.status == 200 and dash.client.last.body["cart"][0]["item"] == "book"

    p.target_toggle.value = 0
    assert dash.client is dash.clients[0] and stateful.cookie_name in dash.inspector.cookies_html.value


def test_given_client_is_used(stateful, dashboards):
    alice = sl.Client(stateful.url)
    try:
        dash = dashboards(stateful, client=alice)
        click(dash.client_panel.login_button)
        assert dash.client is alice and alice.last.status == 200
    finally:
        alice.close()


def test_bad_target_is_a_clear_error():
    with pytest.raises(TypeError, match="Server .* Cluster"):
        ui.dashboard("http://127.0.0.1:1")


# --------------------------------------------------------------------------- never a traceback

def test_a_failing_action_shows_a_red_line_not_a_traceback(stateful, dashboards, monkeypatch):
    dash = dashboards(stateful)

    def broken() -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(stateful, "kill", broken)  # stands in for any bug below the button
    click(dash.cards[0].kill_button)  # must not raise
    assert "RuntimeError: disk on fire" in dash.message.value
    assert "rgba(220, 50, 47" in dash.message.value  # shown red
    assert stateful.alive  # and the dashboard still works
    click(dash.client_panel.login_button)
    assert dash.client.last.status == 200 and "disk on fire" not in dash.message.value


def test_server_text_is_escaped(stateful, dashboards):
    dash = dashboards(stateful)
    dash.client.get("/<img src=x onerror=alert(1)>")
    dash.refresh()
    table = history_html(dash)
    assert "<img" not in table and "&lt;img src=x onerror=alert(1)&gt;" in table
    dash.client_panel.user_text.value = "<b>bob</b>"
    click(dash.client_panel.login_button)
    assert dash.client.last.status == 400 and "400" in dash.message.value
    assert "user must be 1-64 characters" in newest_row(dash)
    ex = Exchange("GET", "/x", status=400, body={"error": "<script>alert(1)</script>"}, served_by="<b>evil</b>")
    html = rows_html([ex])
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;evil&lt;/b&gt;" in html


def test_history_is_newest_first_and_capped(stateful, dashboards):
    dash = dashboards(stateful)
    for _ in range(33):
        dash.client.health()
    dash.client.me()
    dash.refresh()
    rows = re.findall(r"<tr style=", history_html(dash))
    assert len(rows) == 30
    assert "GET /me" in newest_row(dash) and "4 older not shown" in history_html(dash)


# --------------------------------------------------------------------------- renders as widget state

def test_widget_tree_serialises(cluster, dashboards, tmp_path):
    c = cluster(2, mode="stateless")
    dash = dashboards(c)
    click(dash.client_panel.login_button)
    state = dependency_state([dash])  # the dashboard and every widget it contains
    assert W.Widget.get_manager_state()["state"].keys() >= state.keys()
    assert dash.model_id in state and dash.cards[0].kill_button.model_id in state
    assert any(m["state"].get("description") == "Restart" for m in state.values())
    out = tmp_path / "dash.html"
    embed_minimal_html(out, views=[dash], title="statelab dashboard")
    text = out.read_text()
    assert dash.model_id in text and "server-0" in text


def test_refresh_is_quick_and_sends_nothing(cluster, dashboards):
    c = cluster(3, mode="stateful")
    dash = dashboards(c)
    click(dash.client_panel.login_button)
    before = sum(c.balancer.counts.values())
    start = time.perf_counter()
    for _ in range(20):
        dash.refresh()
    per = (time.perf_counter() - start) / 20
    assert sum(c.balancer.counts.values()) == before  # refreshing is reading state, not requesting
    assert per < 0.25


def test_dashboard_shows_a_routing_function_and_switches_back_and_forth():
    def pin(client_key, cookie, live, all):
        return cookie if cookie in live else live[0]

    with sl.Cluster(2, balancer=pin) as cluster:
        card = sl.ui.dashboard(cluster).balancer_cards[0]
        assert card.strategy_dropdown.value is pin
        assert "pin()" in card.strategy_dropdown.label
        card.strategy_dropdown.value = "sticky"
        assert cluster.strategy == "sticky"
        cluster.strategy = pin
        card.refresh()
        assert card.strategy_dropdown.value is pin


# --------------------------------------------------------------------------- looking changes nothing

def test_inspecting_does_not_extend_the_idle_timer(tmp_path, dashboards):
    store = sl.SqliteStore(tmp_path / "s.sqlite3")
    with sl.Server("stateful", store=store, session_ttl=1) as shop:
        shop.start()
        dash = dashboards(shop)
        click(dash.client_panel.login_button)
        deadline = time.monotonic() + 1.3
        while time.monotonic() < deadline:  # a learner watching the inspector, which refreshes
            dash.inspector.refresh()
            assert "sqlite session store" in dash.inspector.story.value
            time.sleep(0.2)
        assert dash.client.me().status == 401  # the session expired: looking at it did not keep it alive
        dash.inspector.refresh()
        assert "not in the sqlite session store any more" in dash.inspector.story.value
    store.close()


class DownStore(sl.MemoryStore):
    """A shared store that has gone away: every read raises."""

    kind = "redis"

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def get(self, sid):
        if self.down:
            raise ConnectionError("store unreachable")
        return super().get(sid)

    peek = get


def test_a_store_outage_is_not_reported_as_a_logout(dashboards):
    store = DownStore()
    with sl.Server("stateful", store=store) as shop:
        shop.start()
        dash = dashboards(shop)
        click(dash.client_panel.login_button)
        dash.inspector.refresh()
        assert "redis session store that every server reads" in dash.inspector.story.value
        store.down = True
        dash.inspector.refresh()
        story = dash.inspector.story.value
        assert "did not answer" in story and "logged out" not in story


# --------------------------------------------------------------------------- designs named everywhere (issue 20)
def test_four_clusters_are_named_by_design_with_unique_toggle_labels(cluster, dashboards):
    from statelab.experiments import DESIGNS

    clusters = [cluster(2, **options) for options in DESIGNS.values()]
    dash = dashboards(clusters)
    labels = [label for label, _value in dash.client_panel.target_toggle.options]
    assert labels == list(DESIGNS)  # named by design, each once: duplicate labels made the toggle highlight wrong
    assert len(set(labels)) == len(labels)
    # one group per cluster, under a header with its design's name, holding exactly that cluster's cards
    for name, t, header, row in zip(dash.names, clusters, dash.group_headers, dash.group_rows, strict=True):
        assert name in header.value
        servers = [card.server for card in row.children if isinstance(card, ui.ServerCard)]
        assert servers == t.servers
    # the picker is above the cards
    assert dash.children.index(dash.client_panel) < dash.children.index(dash.cards_box)
    # picking the third sends the buttons' requests there, and its header says so
    dash.client_panel.target_toggle.value = 2
    click(dash.client_panel.login_button)
    assert dash.client.url == clusters[2].url and dash.client.last.status == 200
    assert "talk to this one" in dash.group_headers[2].value
    assert all("talk to this one" not in h.value for i, h in enumerate(dash.group_headers) if i != 2)


def test_named_targets_and_repeated_names_stay_unique(stateful, stateless, dashboards):
    dash = dashboards({"mine": stateful, "yours": stateless})
    assert dash.names == ["mine", "yours"]
    assert [label for label, _ in dash.client_panel.target_toggle.options] == ["mine", "yours"]
    twice = dashboards([stateful, stateful])
    assert len(set(twice.names)) == 2


def test_requests_from_code_refresh_the_view_throttled(stateful, dashboards, monkeypatch):
    dash = dashboards(stateful)
    calls = []
    real = dash.refresh
    monkeypatch.setattr(dash, "refresh", lambda: (calls.append(1), real()))
    dash._last_refresh = 0.0
    dash.client.login("alice")  # from a cell, not a button
    assert calls and "POST /login" in history_html(dash)
    assert "requests served: <b>1</b>" in dash.cards[0].info.value
    for _ in range(20):  # a burst: at most a few re-renders a second
        dash.client.me()
    assert len(calls) <= 3
    dash._after_cell()  # the end of the cell shows the final state
    assert f"requests served: <b>{stateful.requests}</b>" in dash.cards[0].info.value


def test_a_closed_dashboard_stops_listening(stateful, dashboards):
    dash = dashboards(stateful)
    client = dash.client
    assert dash._on_exchange in client.listeners
    dash.close()
    assert dash._on_exchange not in client.listeners


def test_down_server_message_says_connection_refused_not_401(stateful, dashboards):
    dash = dashboards(stateful)
    click(dash.client_panel.login_button)
    stateful.kill()
    dash.refresh()
    story = inspector_html(dash)
    assert "connection refused" in story and "gets 401" not in story
    click(dash.client_panel.me_button)
    assert dash.client.last.status is None and "connection refused" in (dash.client.last.error or "")


def test_only_the_newest_dashboards_re_render_after_each_cell(stateful, dashboards):
    import importlib

    module = importlib.import_module("statelab.ui.dashboard")  # the module (sl.ui.dashboard is the function)
    made = [dashboards(stateful) for _ in range(module.WATCHED + 2)]
    watched = [ref() for ref in module._watched]
    assert made[-1] in watched and made[0] not in watched and len(watched) <= module.WATCHED
    module._refresh_watched()  # what the kernel calls when a cell ends: no error, closed ones are dropped
    made[-1].close()
    module._refresh_watched()
