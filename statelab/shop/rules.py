"""The HTTP contract's rules that every part of the bookshop shares: limits, input checks, one error.

The views, the identities and the cart placements all raise :class:`ApiError`; the app turns it
into ``{"error": message}`` with its status. :data:`MAX_BODY` lives in :mod:`statelab.rawhttp`, with the
other limits every server and proxy shares.
"""

from __future__ import annotations

import re
from typing import Any

from ..rawhttp import MAX_BODY

NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")  # fullmatch: "$" would let "alice\n" in
ITEM_RE = re.compile(r"[A-Za-z0-9._ -]{1,64}")
MAX_CART_LINES = 200
MAX_QTY = 10**9  # of one item, in all: far above any shop, far below what breaks a JSON parser

Cart = list[dict[str, Any]]

__all__ = ["ITEM_RE", "MAX_BODY", "MAX_CART_LINES", "MAX_QTY", "NAME_RE", "ApiError", "Cart", "checked_cart"]


class ApiError(Exception):
    """Raised inside a view to answer ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def checked_cart(cart: object, carrier: str) -> Cart:
    """``cart`` if it is a well-formed cart, else a 401 saying what is wrong with it.

    A cart that travels in a token or cookie was signed by a server, but a server with a bug, an old
    version, or anyone holding the key can sign anything: a malformed cart must be refused with a
    clear answer, never crash the view that adds to it. ``carrier`` names where it was found
    ("token", "signed cookie", "session") for the message.
    """
    def bad(why: str) -> ApiError:
        return ApiError(401, f"the cart in your {carrier} is malformed ({why}): log in again for a fresh one")

    if not isinstance(cart, list):
        raise bad("not a list of lines")
    if len(cart) > MAX_CART_LINES:
        raise bad(f"more than {MAX_CART_LINES} lines")
    for n, line in enumerate(cart, 1):
        if not isinstance(line, dict) or set(line) != {"item", "qty"}:
            raise bad(f"line {n} is not {{\"item\": ..., \"qty\": ...}}")
        if not isinstance(line["item"], str) or not ITEM_RE.fullmatch(line["item"]):
            raise bad(f"line {n} has an invalid item")
        qty = line["qty"]
        if type(qty) is not int or not 1 <= qty <= MAX_QTY:
            raise bad(f"line {n} has an invalid qty")
    return cart
