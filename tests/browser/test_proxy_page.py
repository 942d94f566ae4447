"""A server's page in a browser tab, directly and through jupyter-server-proxy (how Binder and JupyterHub reach it).

Behind the proxy every server shares one origin (``{jupyter}/proxy/<port>/``), so a cookie with ``Path=/`` would
reach every server and two stateful servers would overwrite each other's ``sid``. jupyter-server-proxy passes
cookies through unchanged (checked below in a real browser) but sends ``X-Forwarded-Prefix``; statelab scopes its
cookies to that path (statelab/proxy.py). Direct requests keep the contract's ``Path=/``.

The first tests need no browser (real HTTP on loopback); the browser tests run a real JupyterLab with
jupyter-server-proxy and log in through the page itself, as a learner on Binder would.
"""

from __future__ import annotations

import os
import re
import shutil
from contextlib import ExitStack

import nbformat
import pytest
import requests

import statelab as sl
from browser import collect_problems, jupyter_lab, open_and_run_all, require_browser, screenshot, watch_console
from statelab.shop.proxy import cookie_path, jupyter_prefix, page_url
from statelab.ui.server_card import ServerCard

WAIT_MS = 15_000
HUB = {"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"}


# --- without a browser ----------------------------------------------------------------------------------------------

def test_cookie_path_is_the_proxy_prefix_or_root():
    assert cookie_path({}) == "/"
    assert cookie_path({"X-Forwarded-Prefix": "/user/alice/proxy/54321"}) == "/user/alice/proxy/54321/"
    assert cookie_path({"X-Forwarded-Prefix": "/proxy/54321/"}) == "/proxy/54321/"
    for bad in ("proxy/1", "/a;b", "/a,b", "/a b", "/a\r\nSet-Cookie: x=1", "/" + "a" * 600):
        assert cookie_path({"X-Forwarded-Prefix": bad}) == "/", bad


def test_page_url_is_direct_locally_and_proxied_under_jupyterhub(stateful):
    assert jupyter_prefix({}) is None
    assert page_url(stateful, environ={}) == stateful.url + "/"
    assert page_url(stateful, environ=HUB) == f"/user/alice/proxy/{stateful.port}/"
    assert page_url(stateful, environ={"JUPYTERHUB_SERVICE_PREFIX": "/user/alice"}) == \
        f"/user/alice/proxy/{stateful.port}/"
    assert page_url(stateful, environ={"JUPYTERHUB_SERVICE_PREFIX": "javascript:alert(1)"}) == stateful.url + "/"


def test_server_card_links_to_the_page(monkeypatch, stateful):
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    card = ServerCard(stateful)
    try:
        assert f'href="{stateful.url}/"' in card.info.value and 'target="_blank"' in card.info.value
        monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
        card.refresh()
        assert f'href="/user/alice/proxy/{stateful.port}/"' in card.info.value
        assert "via Jupyter" in card.info.value
    finally:
        card.close()


def _set_cookie(response: requests.Response, name: str) -> str:
    cookies = [c for c in response.raw.headers.getlist("Set-Cookie") if c.startswith(name + "=")]
    assert len(cookies) == 1, response.raw.headers.getlist("Set-Cookie")
    return cookies[0]


def test_cookies_are_scoped_to_the_proxy_prefix_and_root_otherwise(stateful):
    prefix = {"X-Forwarded-Prefix": "/user/alice/proxy/54321"}
    direct = requests.post(f"{stateful.url}/login", json={"user": "alice"}, timeout=5)
    name = stateful.cookie_name
    assert "Path=/;" in _set_cookie(direct, name) + ";"
    proxied = requests.post(f"{stateful.url}/login", json={"user": "alice"}, headers=prefix, timeout=5)
    cookie = _set_cookie(proxied, name)
    assert "Path=/user/alice/proxy/54321/" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    sid = proxied.cookies[name]
    out = requests.post(f"{stateful.url}/logout", cookies={name: sid}, headers=prefix, timeout=5)
    assert out.json() == {"logged_out": True}
    assert "Path=/user/alice/proxy/54321/" in _set_cookie(out, name)  # deletes the cookie that was set


def test_signed_cookie_and_sticky_balancer_cookies_are_scoped_too(cluster):
    prefix = {"X-Forwarded-Prefix": "/proxy/7"}
    with sl.Server("cookie") as server:
        server.start()
        answer = requests.post(f"{server.url}/login", json={"user": "alice"}, headers=prefix, timeout=5)
        assert "Path=/proxy/7/" in _set_cookie(answer, server.cookie_name)
        answer = requests.post(f"{server.url}/login", json={"user": "alice"}, timeout=5)
        assert "Path=/;" in _set_cookie(answer, server.cookie_name) + ";"
    c = cluster(servers=2, mode="stateful", balancer="sticky")
    answer = requests.post(f"{c.url}/login", json={"user": "alice"}, headers=prefix, timeout=5)
    assert "Path=/proxy/7/" in _set_cookie(answer, c.balancer.cookie_name)
    assert "Path=/proxy/7/" in _set_cookie(answer, c.cookie_name)  # the backend saw the prefix through the balancer


# --- in a browser, through a real jupyter-server-proxy --------------------------------------------------------------

def require_server_proxy() -> None:
    try:
        import jupyter_server_proxy  # noqa: F401
    except ImportError:
        reason = "jupyter-server-proxy is not installed (pip install -r requirements-test.txt)"
        if os.environ.get("STATELAB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"STATELAB_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)


LINK_NOTEBOOK = ["import statelab as sl\nsrv = sl.serve('stateful')", "sl.ui.dashboard(srv)"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab with jupyter-server-proxy, started as JupyterHub would start it (JUPYTERHUB_SERVICE_PREFIX set,
    here to "/"), so a kernel's dashboard links through the proxy. Serves one small notebook."""
    require_browser()
    require_server_proxy()
    tmp = tmp_path_factory.mktemp("proxy")
    (tmp / "root").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in LINK_NOTEBOOK])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp / "root" / "link.ipynb")
    with ExitStack() as stack:
        with pytest.MonkeyPatch.context() as env:  # only while the server starts: it and its kernels keep it
            env.setenv("JUPYTERHUB_SERVICE_PREFIX", "/")
            running = stack.enter_context(jupyter_lab(tmp / "root", tmp / "home"))
        yield running
    shutil.rmtree(tmp, ignore_errors=True)


def _jupyter_login(page, lab) -> None:
    """Log in to Jupyter (it sets its login cookie), as a learner on Binder already is."""
    page.goto(f"{lab.base}/api/status?token={lab.token}")


def _click(page, button: str, expect_text: str) -> str:
    from playwright.sync_api import expect

    out = page.locator("#out")
    out.evaluate("e => e.textContent = ''")  # so the wait below sees this click's answer, not the last one
    page.locator(f"#{button}").click()
    expect(out).to_contain_text(expect_text, timeout=WAIT_MS)
    return out.inner_text()


def _open(page, lab, server) -> None:
    from playwright.sync_api import expect

    watch_console(page)
    page.goto(f"{lab.base}/proxy/{server.port}/")
    expect(page.locator("#server")).to_have_text(server.name)


@pytest.mark.browser
def test_stateful_pages_through_the_proxy_keep_their_own_session(lab, page):
    context = page.context
    _jupyter_login(page, lab)
    with sl.Server("stateful") as a, sl.Server("stateful") as b:
        a.start()
        b.start()
        _open(page, lab, a)
        _click(page, "login", "POST login -> 200")
        sids = [c for c in context.cookies() if c["name"] == a.cookie_name]
        assert [(c["path"], c["httpOnly"], c["sameSite"]) for c in sids] == [(f"/proxy/{a.port}/", True, "Lax")]
        assert '"user": "alice"' in _click(page, "me", "GET me -> 200")
        _click(page, "add", "POST cart -> 200")
        assert '"item": "book"' in _click(page, "cart", f"GET cart -> 200 (served by {a.name})")

        other = context.new_page()
        _open(other, lab, b)
        other.locator("#user").fill("bob")
        _click(other, "login", "POST login -> 200")
        paths = sorted((c["name"], c["path"]) for c in context.cookies() if c["name"].startswith("sid-"))
        assert paths == sorted([(a.cookie_name, f"/proxy/{a.port}/"), (b.cookie_name, f"/proxy/{b.port}/")])
        # Logging in on b did not overwrite a's cookie: a still knows alice, b knows bob.
        assert '"user": "alice"' in _click(page, "me", "GET me -> 200")
        assert '"user": "bob"' in _click(other, "me", "GET me -> 200")
        assert (a.sessions, b.sessions) == (1, 1)

        _click(page, "logout", "POST logout -> 200")
        assert [c["path"] for c in context.cookies() if c["name"].startswith("sid-")] == [f"/proxy/{b.port}/"]
        screenshot(page, "proxy-stateful-page")
        for p in (page, other):
            assert collect_problems(p) == []
        _click(page, "me", "GET me -> 401")  # (Chromium logs every 4xx answer as a console error)


@pytest.mark.browser
def test_stateless_page_through_the_proxy_holds_a_token(lab, page):
    _jupyter_login(page, lab)
    jupyter_cookies = {c["name"] for c in page.context.cookies()}
    with sl.Server("stateless") as server:
        server.start()
        _open(page, lab, server)
        _click(page, "login", "POST login -> 200")
        held = page.locator("#held")
        assert "A token" in held.inner_text() and '"sub": "alice"' in held.inner_text()
        # The page sends "Authorization: Bearer <JWT>"; Jupyter does not take it for its own login, and passes
        # it on: the server reads the user and the cart from the token alone.
        assert '"user": "alice"' in _click(page, "me", "GET me -> 200")
        _click(page, "add", "POST cart -> 200")
        assert '"item": "book"' in held.inner_text()
        assert '"item": "book"' in _click(page, "cart", f"GET cart -> 200 (served by {server.name})")
        assert {c["name"] for c in page.context.cookies()} == jupyter_cookies  # no cookie from a stateless server
        screenshot(page, "proxy-stateless-page")
        assert collect_problems(page) == []


@pytest.mark.browser
def test_dashboard_link_opens_the_page_through_the_proxy(lab, page):
    from playwright.sync_api import expect

    open_and_run_all(page, lab.url, "link.ipynb")
    assert collect_problems(page) == []
    card = page.locator(".jp-OutputArea-output").filter(has_text="statelab dashboard").first
    link = card.get_by_role("link", name=re.compile("open its page"))
    href = link.get_attribute("href")
    assert re.fullmatch(r"/proxy/\d+/", href or ""), href
    with page.context.expect_page() as opened:
        link.click()
    tab = opened.value
    watch_console(tab)
    expect(tab.locator("h1")).to_have_text("statelab bookshop", timeout=WAIT_MS)
    assert tab.url == f"{lab.base}{href}"
    assert '"user": "alice"' in _click(tab, "login", "POST login -> 200")
    assert [c["path"] for c in page.context.cookies() if c["name"] == f"sid-{href.split('/')[-2]}"] == [href]
    assert collect_problems(tab) == []
