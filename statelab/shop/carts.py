"""Where the cart lives: the second choice of a design, independent of who you are.

``cart="session"``  in the server-side session, beside the user's name (stateful servers);
``cart="token"``    inside the credential the client holds: the JWT, or Flask's signed cookie.
                    Every write re-signs it, and it grows with the cart;
``cart="db"``       in a table keyed by user, in a :class:`CartStore` every server of a cluster
                    shares. The credential carries identity only: its size does not depend on the
                    cart, any server answers, the cart survives a server crash and follows the
                    user to a second browser that logs in as the same user.

A placement offers the views three things: what a login starts the credential with
(:meth:`Placement.fresh`), the cart of the user asking (:meth:`Placement.read`) and an atomic
change of it (:meth:`Placement.change`). The first two placements are one class,
:class:`WithIdentity`: the cart lives wherever the identity keeps its own state, which is the
session for a session id and the credential itself for a token or a signed cookie.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from .identity import Identity, Who
from .rules import MAX_CART_LINES, MAX_QTY, ApiError, Cart, checked_cart
from .sqlite import SqlitePool

CARTS = ("session", "token", "db")
CartChange = Callable[[Cart], Cart]


# --------------------------------------------------------------------------- the shared table

class CartStore(Protocol):
    """A table of carts keyed by user, shared by every server that is given it."""

    kind: str

    def get(self, user: str) -> Cart: ...
    def update(self, user: str, change: CartChange) -> Cart: ...
    def count(self) -> int: ...
    def clear(self) -> None: ...


class MemoryCartStore:
    """Carts in a dict: shared by the servers of one process, gone when the object is."""

    kind = "memory"

    def __init__(self) -> None:
        self._carts: dict[str, Cart] = {}
        self._lock = threading.Lock()

    def get(self, user: str) -> Cart:
        with self._lock:
            return [dict(line) for line in self._carts.get(user, [])]

    def update(self, user: str, change: CartChange) -> Cart:
        """Read, change and write one user's cart atomically (concurrent writes never merge)."""
        with self._lock:
            new = change([dict(line) for line in self._carts.get(user, [])])
            self._carts[user] = [dict(line) for line in new]
            return new

    def count(self) -> int:
        """Users who have a cart with something in it."""
        with self._lock:
            return sum(1 for cart in self._carts.values() if cart)

    def clear(self) -> None:
        with self._lock:
            self._carts.clear()

    def close(self) -> None:
        """Nothing to close (here so every store can be closed the same way)."""


class SqliteCartStore:
    """Carts in one SQLite file (``carts`` table, one row per user); writes are ``BEGIN IMMEDIATE``."""

    kind = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._pool = SqlitePool(path, "CREATE TABLE IF NOT EXISTS carts (user TEXT PRIMARY KEY, cart TEXT NOT NULL)")

    def get(self, user: str) -> Cart:
        with self._pool.connection() as db:
            row = db.execute("SELECT cart FROM carts WHERE user = ?", (user,)).fetchone()
        return [] if row is None else json.loads(row[0])

    def update(self, user: str, change: CartChange) -> Cart:
        """Read, change and write one user's cart in one transaction (concurrent writes never merge)."""
        with self._pool.immediate() as db:
            row = db.execute("SELECT cart FROM carts WHERE user = ?", (user,)).fetchone()
            new = change([] if row is None else json.loads(row[0]))
            db.execute("INSERT INTO carts (user, cart) VALUES (?, ?)"
                       " ON CONFLICT(user) DO UPDATE SET cart = excluded.cart", (user, json.dumps(new)))
            return new

    def count(self) -> int:
        """Users who have a cart with something in it."""
        with self._pool.connection() as db:
            return int(db.execute("SELECT COUNT(*) FROM carts WHERE cart != '[]'").fetchone()[0])

    def clear(self) -> None:
        with self._pool.connection() as db:
            db.execute("DELETE FROM carts")

    def close(self) -> None:
        self._pool.close()


# --------------------------------------------------------------------------- placements

def add_line(cart: Cart, item: str, qty: int) -> Cart:
    """Return ``cart`` with ``qty`` more of ``item`` (one line per item)."""
    cart = [dict(line) for line in cart]
    for line in cart:
        if line["item"] == item:
            if line["qty"] + qty > MAX_QTY:
                raise ApiError(400, f"qty of one item can reach at most {MAX_QTY}")
            line["qty"] += qty
            return cart
    if len(cart) >= MAX_CART_LINES:
        raise ApiError(400, f"cart is full ({MAX_CART_LINES} different items)")
    cart.append({"item": item, "qty": qty})
    return cart


class Placement:
    """Where one server keeps carts. ``where`` is the ``cart=`` name: "session", "token" or "db"."""

    where: str = "?"

    def fresh(self) -> dict[str, Any]:
        """What a login puts into the credential's own state for the cart (nothing, or an empty cart)."""
        return {}

    def read(self, who: Who) -> Cart:
        raise NotImplementedError

    def change(self, who: Who, change: CartChange) -> tuple[Cart, dict[str, Any]]:
        """Apply ``change`` to the cart atomically: (the new cart, fields for the reply, e.g. a new token)."""
        raise NotImplementedError

    def add(self, who: Who, item: str, qty: int) -> tuple[Cart, dict[str, Any]]:
        return self.change(who, lambda cart: add_line(cart, item, qty))


class WithIdentity(Placement):
    """The cart lives with the identity's own state: the server-side session, or the token / signed cookie."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.where = identity.home

    def fresh(self) -> dict[str, Any]:
        return {"cart": []}

    def read(self, who: Who) -> Cart:
        return checked_cart(who.data.get("cart", []), self.identity.carrier)

    def change(self, who: Who, change: CartChange) -> tuple[Cart, dict[str, Any]]:
        def with_new_cart(data: dict[str, Any]) -> dict[str, Any]:
            return {**data, "cart": change(checked_cart(data.get("cart", []), self.identity.carrier))}

        new, reply = self.identity.change(who, with_new_cart)
        return new["cart"], reply


class InDatabase(Placement):
    """The cart lives in a shared table keyed by user; the credential carries identity only."""

    where = "db"

    def __init__(self, store: CartStore) -> None:
        self.store = store

    def read(self, who: Who) -> Cart:
        return self.store.get(who.user)

    def change(self, who: Who, change: CartChange) -> tuple[Cart, dict[str, Any]]:
        return self.store.update(who.user, change), {}


def placement(cart: str, identity: Identity, store: CartStore | None) -> Placement:
    """The placement for ``cart=`` on a server whose identity is ``identity``.

    :func:`statelab.shop.app.default_cart` has already refused a design that does not fit, with the
    reason; this refuses it again in case a caller skipped that.
    """
    if cart == "db":
        return InDatabase(store if store is not None else MemoryCartStore())
    if cart == identity.home:
        return WithIdentity(identity)
    raise ValueError(f"cart={cart!r} does not fit mode={identity.mode!r} (try cart={identity.home!r} or 'db')")
