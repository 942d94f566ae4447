"""What the browser holds: its cookies (with the attributes a browser's developer tools show),
the raw ``Set-Cookie`` of the last answer, and the token decoded with
:func:`statelab.inspect_token`, verified with the target's keyring when it is known.

Above them, a line or two in plain words saying where the learner's state lives: in a
server's memory (which one, and whether it still has it), in a shared store, or inside the
token or cookie the browser carries.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from ..client import Client
from ..shop.tokens import inspect_token
from ..topology.balancer import COOKIE as BALANCER_COOKIE
from ._base import (
    BG_ALT,
    BORDER,
    FG_DIM,
    GREEN,
    GREY,
    MONO,
    ORANGE,
    RED,
    as_json,
    box,
    esc,
    heading,
    pill,
)

FLASK_SESSION_COOKIE = "session"  # the signed-cookie mode's cookie (Flask's default name)
#: Said next to the cookies: browsers scope cookies by host, not port (RFC 6265, section 8.5; notebook 01).
PORTS_SHARE_COOKIES = ("A browser sends these cookies to every port of this host, and a page on any of its ports "
                       "can have them read by its server or overwrite them: a name per port is not isolation "
                       "(notebook 01, section 1).")


def _servers(target: Any) -> list[Any]:
    if target is None:
        return []
    return list(getattr(target, "servers", None) or [target])


def _session_cookie(client: Client) -> tuple[str, str] | None:
    """(name, value) of the cookie that carries the session id or the signed session."""
    for name, value in client.cookies.items():
        if not name.startswith(BALANCER_COOKIE):  # statelab-lb-<port>: each balancer names its own
            return name, value
    return None


def where_state_lives(client: Client, target: Any = None) -> list[str]:
    """Plain-language sentences (HTML-escaped) about where this client's state is right now.

    Looking changes nothing: session stores are read with ``peek()``, which neither extends an idle
    timer nor turns a store that cannot be read into "logged out".
    """
    lines: list[str] = []
    mode = getattr(target, "mode", None)
    cart_where = getattr(target, "cart", None)
    cookie = _session_cookie(client)
    if client.token:
        report = inspect_token(client.token)
        cart = report.claims.get("cart")
        if isinstance(cart, list):
            n = len(cart)
            lines.append(f"Your cart travels inside this token ({n} line{'s' * (n != 1)} in its 'cart' claim): "
                         "the server keeps nothing about you, and any server with the key can read it.")
        else:
            lines.append("This token says who you are and nothing more: no server keeps a session for you, "
                         f"and your cart is {_cart_home(target)}.")
    if cookie is not None:
        name, value = cookie
        if mode == "cookie" or name == FLASK_SESSION_COOKIE or name.endswith("-signed"):
            inside = "your session itself" if cart_where != "db" else "who you are"
            lines.append(f"The '{name}' cookie carries {inside}, signed: you can read it, "
                         "you cannot change it, and the server keeps nothing about you.")
        else:
            lines.append(f"The '{name}' cookie is an opaque random id: your cart is not in it, "
                         f"your session is {_session_home(value, target)}.")
            if cart_where == "db":
                lines.append(f"Your cart is {_cart_home(target)}.")
    for name, value in client.cookies.items():
        if name.startswith(BALANCER_COOKIE):
            lines.append(f"The balancer's '{name}' cookie pins you to {value} (sticky routing).")
    if not lines:
        lines.append("The browser holds nothing: no cookie, no token. To every server you are a stranger; "
                     "log in.")
    return [esc(line) for line in lines]


def _cart_home(target: Any) -> str:
    if getattr(target, "cart", None) == "db":
        return "in the shared cart table (keyed by your user name), which every server reads and a crash keeps"
    return "on the server side"


def _session_home(sid: str, target: Any) -> str:
    """Where the session with id ``sid`` is: which server's memory, or a shared store."""
    servers = _servers(target)
    if not servers:
        return "on the server (this dashboard does not know which)"
    shared = {id(s.store): s.store for s in servers
              if s.store is not None and getattr(s.store, "kind", "memory") != "memory"}
    for store in shared.values():
        kind = getattr(store, "kind", "shared")
        found = _lookup(store, sid)
        if found == "unreadable":
            return f"somewhere this dashboard cannot see: the {kind} session store did not answer (is it down?)"
        if found == "no peek":
            return f"in the {kind} session store, if it is still there (the store has no peek(): this " \
                   "dashboard does not read it, since get() would extend your idle timer)"
        if found == "live":
            return f"in the {kind} session store that every server reads (it survives a crash)"
        return f"not in the {kind} session store any more (logged out or expired): log in again"
    holders = [s.name for s in servers if s.alive and s.store is not None and _lookup(s.store, sid) == "live"]
    if holders:
        return f"on {', '.join(holders)} (in its memory)"
    return ("on no server any more: the server that held it crashed or restarted, or you logged out; "
            + next_answer(target))


def next_answer(target: Any) -> str:
    """What the next request really gets when no live server holds the session: a server that is down
    refuses the connection; a balancer with no live server answers 503; a live server answers 401."""
    if isinstance(getattr(target, "servers", None), list):  # a cluster: its balancer routes to a live server
        balancer = getattr(target, "balancer", None)
        if balancer is not None and not getattr(balancer, "alive", True):
            return "the next request gets no answer (connection refused): the balancer is down"
        if not any(s.alive for s in target.servers):
            return "the next request gets 503 from the balancer: every server is down"
        return "the next request gets 401 from a live server"
    if not getattr(target, "alive", True):
        return ("the next request gets no answer (connection refused) while this server is down, "
                "then 401 once it restarts")
    return "the next request gets 401"


def _lookup(store: Any, sid: str) -> str:
    """"live", "gone", "unreadable" (the store raised) or "no peek": read without touching the session."""
    peek = getattr(store, "peek", None)
    if peek is None:
        return "no peek"
    try:
        return "live" if peek(sid) is not None else "gone"
    except Exception:
        return "unreadable"


def _cookie_table(client: Client) -> str:
    details = client.cookie_details()
    if not details:
        return f'<span style="color:{FG_DIM}">no cookies</span>'
    yes, no = pill("yes", GREEN), pill("no", ORANGE)
    head = "".join(f'<th style="text-align:left; padding:1px 6px">{h}</th>'
                   for h in ("name", "value", "HttpOnly", "SameSite", "Path"))
    rows = []
    for c in details:
        value = str(c.get("value") or "")
        short = value if len(value) <= 22 else value[:20] + "..."
        rows.append(
            f'<tr><td style="padding:1px 6px"><b>{esc(c["name"])}</b></td>'
            f'<td style="padding:1px 6px; font-family:{MONO}" title="{esc(value)}">{esc(short)}</td>'
            f'<td style="padding:1px 6px">{yes if c.get("httponly") else no}</td>'
            f'<td style="padding:1px 6px">{esc(c.get("samesite") or "-")}</td>'
            f'<td style="padding:1px 6px">{esc(c.get("path") or "-")}</td></tr>')
    return f'<table style="border-collapse:collapse; font-size:12px"><tr>{head}</tr>{"".join(rows)}</table>'


def _pre(text: str) -> str:
    return (f'<pre style="font-family:{MONO}; font-size:11.5px; background:{BG_ALT}; border:1px solid {BORDER};'
            f' padding:4px 6px; margin:2px 0 6px 0; white-space:pre-wrap; word-break:break-all;'
            f' max-height:220px; overflow:auto">{text}</pre>')


def _token_html(token: str, key: Any) -> str:
    t = inspect_token(token, key)
    if t.signature_valid is True:
        sig = pill("signature valid", GREEN)
    elif t.signature_valid is False:
        sig = pill("signature INVALID", RED)
    else:
        sig = pill("signature not checked (no key known)", GREY)
    if t.expires_in is None:
        exp = pill("no expiry", ORANGE)
    elif t.expired:
        exp = pill(f"expired {-t.expires_in:.0f} s ago", RED)
    else:
        exp = pill(f"expires in {t.expires_in:.0f} s", GREEN)
    problems = ("".join(f"<li>{esc(p)}</li>" for p in t.problems) if t.problems
                else f'<li style="color:{FG_DIM}">none</li>')
    short = token if len(token) <= 60 else token[:28] + "..." + token[-28:]
    return (f'<div>{sig} {exp}</div>'
            f'<div style="font-family:{MONO}; font-size:11px; color:{FG_DIM}; word-break:break-all"'
            f' title="{esc(token)}">{esc(short)}</div>'
            f'<div style="display:flex; flex-wrap:wrap; gap:8px">'
            f'<div style="flex:1 1 150px; min-width:0"><b>header</b>{_pre(as_json(t.header))}</div>'
            f'<div style="flex:2 1 220px; min-width:0"><b>claims</b>{_pre(as_json(t.claims))}</div></div>'
            f'<b>problems</b><ul style="margin:0; padding-left:18px">{problems}</ul>')


class Inspector(W.VBox):
    """The browser's cookies and token, for ``client`` talking to ``target`` (Server or Cluster)."""

    def __init__(self, client: Client, target: Any = None) -> None:
        self.client = client
        self.target = target
        self.story = W.HTML()
        self.cookies_html = W.HTML()
        self.token_html = W.HTML()
        super().__init__([W.HTML(heading("What the browser holds")), self.story, self.cookies_html,
                          self.token_html], layout=W.Layout(border=f"1px solid {BORDER}", padding="6px 10px",
                                                            flex="1 1 440px", min_width="0", margin="0 8px 8px 0"))
        self.refresh()

    @property
    def key(self) -> Any:
        """The key to verify the token with: the target's keyring (Cluster or Server), if any."""
        return getattr(self.target, "keyring", None)

    def refresh(self) -> None:
        c = self.client
        self.story.value = box("".join(f"<div>&#8226; {line}</div>" for line in where_state_lives(c, self.target)),
                               background=GREY, padding="4px 8px", border_radius="3px", margin_bottom="4px")
        last = c.last
        if last is None:
            raw = f'<span style="color:{FG_DIM}">no request sent yet</span>'
        elif last.set_cookie:
            raw = f'<span style="font-family:{MONO}; font-size:11.5px; word-break:break-all">' \
                  f'Set-Cookie: {esc(last.set_cookie)}</span>'
        else:
            raw = f'<span style="color:{FG_DIM}">the last answer ({esc(last.method)} {esc(last.path)}) ' \
                  f'set no cookie</span>'
        shared = (f'<div style="margin-top:3px; color:{FG_DIM}; font-size:11.5px">{esc(PORTS_SHARE_COOKIES)}</div>'
                  if c.cookies else "")
        self.cookies_html.value = box(f"<b>cookies</b> {_cookie_table(c)}<div style='margin-top:3px'>{raw}</div>"
                                      f"{shared}")
        if c.token:
            self.token_html.value = box(f'<div style="margin-top:6px"><b>token</b> (sent as Authorization: Bearer)'
                                        f'</div>{_token_html(c.token, self.key)}')
        else:
            self.token_html.value = box(f'<div style="margin-top:6px"><b>token</b> '
                                        f'<span style="color:{FG_DIM}">none</span></div>')
