"""The learner's browser as buttons: log in, who am I, add to cart, show cart, log out, forget.

Each button calls the :class:`~statelab.client.Client` method a cell would call
(``client.login(user)``, ``client.me()``, ...); the client never raises, so a refused
connection or a 401 is shown as data in the history, not as an error here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as W

from ..client import Client, Exchange
from ..shop.app import CATALOG
from ._base import FG_DIM, GREEN, ORANGE, RED, Runner, box, button, esc, pill


def describe(ex: Any) -> str:
    """One line saying what the last request did, for the dashboard's message line."""
    if not isinstance(ex, Exchange):
        return ""
    if ex.status is None:
        outcome = pill(f"failed: {ex.error}", RED)
    else:
        outcome = pill(str(ex.status), GREEN if ex.status < 400 else ORANGE)
    by = f" by <b>{esc(ex.served_by)}</b>" if ex.served_by else ""
    detail = ex.body.get("error") if isinstance(ex.body, dict) else None
    detail = f' <span style="color:{FG_DIM}">{esc(detail)}</span>' if detail else ""
    return box(f"{esc(ex.method)} {esc(ex.path)} &rarr; {outcome}{by} in {ex.ms:.1f} ms{detail}")


class ClientPanel(W.VBox):
    """Buttons that drive one of ``clients`` (the one picked with ``target_toggle`` when there
    are several, one per server)."""

    def __init__(self, clients: Client | Sequence[Client], labels: Sequence[str] | None = None,
                 runner: Runner | None = None, user: str = "alice") -> None:
        self.clients: list[Client] = [clients] if isinstance(clients, Client) else list(clients)
        if not self.clients:
            raise ValueError("ClientPanel needs at least one Client")
        own_message = runner is None
        self.runner = runner or Runner(lambda: self.refresh())
        labels = list(labels) if labels is not None else [c.url for c in self.clients]

        self.target_toggle: W.ToggleButtons | None = None
        if len(self.clients) > 1:
            self.target_toggle = W.ToggleButtons(options=[(lab, i) for i, lab in enumerate(labels)], value=0,
                                                 tooltips=[f"send the requests to {lab}" for lab in labels],
                                                 style={"button_width": "auto"})
            self.target_toggle.observe(self._on_target, names="value")
        self.user_text = W.Text(value=user, description="user", layout=W.Layout(width="190px"),
                                style={"description_width": "34px"})
        self.item_dropdown = W.Dropdown(options=[(f"{c['item']}: {c['title']}", c["item"]) for c in CATALOG],
                                        value=CATALOG[0]["item"], description="item",
                                        layout=W.Layout(width="300px"), style={"description_width": "34px"})
        self.login_button = button("Log in", "POST /login as the user above", "primary")
        self.me_button = button("Me", "GET /me: who does the server think I am?")
        self.add_button = button("Add to cart", "POST /cart with the item above (qty 1)")
        self.cart_button = button("Cart", "GET /cart: what is in my cart?")
        self.logout_button = button("Log out", "POST /logout")
        self.forget_button = button("Forget", "clear this browser's cookies and token (no request is sent)",
                                    "warning")
        self.target_line = W.HTML()

        run = self.runner.handler
        self.login_button.on_click(run(lambda: self.client.login(self.user_text.value.strip()), describe))
        self.me_button.on_click(run(lambda: self.client.me(), describe))
        self.add_button.on_click(run(lambda: self.client.add_to_cart(self.item_dropdown.value, 1), describe))
        self.cart_button.on_click(run(lambda: self.client.cart(), describe))
        self.logout_button.on_click(run(lambda: self.client.logout(), describe))
        self.forget_button.on_click(run(self.client_forget, lambda _: box("the browser forgot its cookies and token")))

        def wrap() -> W.Layout:
            return W.Layout(flex_flow="row wrap", align_items="center")

        rows: list[W.Widget] = []
        if self.target_toggle is not None:
            rows.append(W.HBox([W.HTML(box("<b>talk to</b>"), layout=W.Layout(margin="0 6px 0 4px")),
                                self.target_toggle], layout=wrap()))
        rows.append(W.HBox([self.user_text, self.item_dropdown, self.target_line], layout=wrap()))
        rows.append(W.HBox([self.login_button, self.me_button, self.add_button, self.cart_button,
                            self.logout_button, self.forget_button], layout=wrap()))
        if own_message:
            rows.append(self.runner.message)
        super().__init__(rows)
        self.refresh()

    @property
    def active(self) -> int:
        return self.target_toggle.value if self.target_toggle is not None else 0

    @property
    def client(self) -> Client:
        """The client the buttons use right now."""
        return self.clients[self.active]

    @property
    def buttons(self) -> list[W.Button]:
        return [self.login_button, self.me_button, self.add_button, self.cart_button, self.logout_button,
                self.forget_button]

    def client_forget(self) -> None:
        self.client.forget()

    def _on_target(self, change: dict[str, Any]) -> None:
        self.runner.run(lambda: None, lambda _: box(f"the buttons now talk to {esc(self.client.url)}"))

    def refresh(self) -> None:
        self.target_line.value = box(f"&rarr; {esc(self.client.url)}", color=FG_DIM, margin_left="8px")
