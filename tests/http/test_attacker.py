"""The attacker's page of notebook 01 (statelab.attacker), without a browser: what it serves, what its form sends,
and that the bookshop accepts that body only with its CSRF guard off. tests/browser/test_csrf_browser.py does the same
through a real Chromium."""

from __future__ import annotations

import html
import json
import re

import requests

import statelab as sl
from statelab import attacker
from statelab.attacker import AttackerSite


def test_the_page_is_a_form_that_posts_json_shaped_text_to_the_targets_cart(stateful):
    with AttackerSite(stateful, item="tcp-ip", qty=9) as evil:
        evil.start()
        assert evil.url.startswith("http://127.0.0.1:") and evil.port != stateful.port
        page = requests.get(evil.page_url, timeout=5)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        form = re.search(r'<form id="prize" action="([^"]+)" method="post" enctype="text/plain">', page.text)
        assert form and html.unescape(form.group(1)) == stateful.url + "/cart" == evil.action
        field = re.search(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page.text)
        name, value = html.unescape(field.group(1)), html.unescape(field.group(2))
        assert f"{name}={value}\r\n" == evil.body  # how a browser encodes a text/plain form
        assert json.loads(evil.body) == {"item": "tcp-ip", "qty": 9, "pad": "="}
        missing = requests.post(evil.url + "/cart", timeout=5)
        assert missing.status_code == 404 and "error" in missing.json()


def test_field_values_are_escaped_in_the_page(stateful):
    with AttackerSite(stateful, item='"><script>alert(1)</script>') as evil:
        evil.start()
        text = requests.get(evil.page_url, timeout=5).text
        assert "<script>" not in text
        assert json.loads(evil.body)["item"] == '"><script>alert(1)</script>'


def test_serve_registers_the_page_so_stop_all_stops_it(stateful):
    evil = attacker.serve(stateful)
    assert evil.alive and requests.get(evil.page_url, timeout=5).ok
    sl.stop_all()
    assert not evil.alive


def _forge(url: str, evil: AttackerSite, cookie: tuple[str, str] | None):
    cookies = dict([cookie]) if cookie else {}
    return requests.post(url + "/cart", data=evil.body.encode(), cookies=cookies, timeout=5,
                         headers={"Content-Type": "text/plain", "Origin": evil.url})


def test_the_forged_body_changes_a_cart_only_with_the_guard_off():
    with sl.Server("stateful", csrf_guard=False) as shop:
        shop.start()
        with AttackerSite(shop, item="tcp-ip", qty=9) as evil:
            evil.start()
            login = requests.post(shop.url + "/login", json={"user": "alice"}, timeout=5)
            cookie = (shop.cookie_name, login.cookies[shop.cookie_name])
            accepted = _forge(shop.url, evil, cookie)
            assert accepted.status_code == 200 and {"item": "tcp-ip", "qty": 9} in accepted.json()["cart"]
            shop.csrf_guard = True
            refused = _forge(shop.url, evil, cookie)
            assert refused.status_code in (403, 415) and "error" in refused.json()
            cart = requests.get(shop.url + "/cart", cookies=dict([cookie]), timeout=5).json()["cart"]
            assert cart == [{"item": "tcp-ip", "qty": 9}], "the refused request changed the cart"
