"""Cross-site request forgery in a real browser: notebook 01's attack, the way a learner meets it.

The learner logs in on a bookshop server's own page, then opens a page served from another port of 127.0.0.1
(``statelab.attacker``) in the same browser and presses its button. The page's ``<form enctype="text/plain">``
posts JSON-shaped text to the bookshop's ``/cart``; the browser attaches the bookshop's session cookie, because
cookies go with every request to their site and another port of 127.0.0.1 is the same site (SameSite=Lax does not
hold them back). With the CSRF guard off the cart changes; with it on the same post is refused (403 for the
foreign ``Origin``, or 415 for the text/plain body). A stateless server is not fooled even with the guard off: its
token lives in the page's script and the forged form cannot attach it.

Headless Debian Chromium, no JupyterLab: only the two pages and the browser. Skipped without Chromium or
playwright, unless STATELAB_REQUIRE_BROWSER=1 (CI), which makes a missing browser a failure.
"""

from __future__ import annotations

import pytest

import statelab as sl
from browser import screenshot, watch_console
from statelab.attacker import AttackerSite

pytestmark = pytest.mark.browser

WAIT_MS = 15_000


def _log_in_on_the_shop_page(page, shop) -> None:
    from playwright.sync_api import expect

    page.goto(shop.url + "/")
    page.get_by_label("User").fill("alice")
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.locator("#out")).to_contain_text("POST login -> 200", timeout=WAIT_MS)


def _cart_seen_on_the_shop_page(page) -> str:
    from playwright.sync_api import expect

    page.locator("#out").evaluate("out => { out.textContent = '' }")  # so the answer read below is this click's
    page.get_by_role("button", name="Cart", exact=True).click()
    expect(page.locator("#out")).to_contain_text("GET cart -> ", timeout=WAIT_MS)
    return page.locator("#out").inner_text()


def _press_the_attackers_button(page, shop, item: str) -> dict:
    """Open the attacker's page in another tab of the same browser and submit its form; the forged request and
    its answer as the browser saw them."""
    with AttackerSite(shop, item=item, qty=7) as evil:
        evil.start()
        tab = page.context.new_page()
        watch_console(tab)
        tab.goto(evil.page_url)
        assert evil.url != shop.url and evil.url.rsplit(":", 1)[0] == shop.url.rsplit(":", 1)[0], \
            "the attacker must be another port of the same host: another origin, the same site"
        with tab.expect_response(lambda r: r.url == evil.action and r.request.method == "POST",
                                 timeout=WAIT_MS) as answer:
            tab.get_by_role("button", name="Claim your prize").click()
        response = answer.value
        seen = {"status": response.status, "sent": response.request.all_headers(),
                "body": response.request.post_data, "origin": evil.url, "form_body": evil.body}
        screenshot(tab, f"csrf-{shop.mode}-{'guard' if shop.csrf_guard else 'no-guard'}")
        tab.close()
        return seen


@pytest.mark.parametrize("guard", [False, True], ids=["guard-off", "guard-on"])
def test_a_form_on_another_port_changes_the_cart_only_without_the_guard(page, guard):
    with sl.Server("stateful", csrf_guard=guard) as shop:
        shop.start()
        _log_in_on_the_shop_page(page, shop)
        before = _cart_seen_on_the_shop_page(page)
        assert "GET cart -> 200" in before and "ddia-forged" not in before, before

        forged = _press_the_attackers_button(page, shop, "ddia-forged")
        sent = forged["sent"]
        assert sent.get("origin") == forged["origin"], sent   # the browser says where the request came from
        assert sent.get("content-type", "").startswith("text/plain"), sent
        assert f"{shop.cookie_name}=" in sent.get("cookie", ""), f"the browser attached no session cookie: {sent}"
        assert forged["body"] == forged["form_body"], forged["body"]

        after = _cart_seen_on_the_shop_page(page)
        if guard:
            assert forged["status"] in (403, 415), forged["status"]
            assert "ddia-forged" not in after, after
        else:
            assert forged["status"] == 200, forged["status"]
            assert "ddia-forged" in after and '"qty": 7' in after, after


def test_a_token_in_the_pages_script_is_not_sent_by_a_forged_form(page):
    with sl.Server("stateless", csrf_guard=False) as shop:
        shop.start()
        _log_in_on_the_shop_page(page, shop)
        forged = _press_the_attackers_button(page, shop, "ddia-forged")
        assert "authorization" not in forged["sent"], forged["sent"]
        assert forged["status"] == 401, forged["status"]   # no cookie to ride on: the form cannot add the token
        after = _cart_seen_on_the_shop_page(page)
        assert "GET cart -> 200" in after and "ddia-forged" not in after, after
