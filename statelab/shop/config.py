"""How one bookshop is configured, and what a running one holds: :class:`ShopConfig` and :class:`ShopState`.

Why one object: the same options (who you are, where the cart lives, the store, the token settings, the CSRF
guard, the limits, the plugins) reach a bookshop through four doors: :func:`statelab.create_app`,
:class:`statelab.Server`, :class:`statelab.Cluster` and gunicorn's entry point (:mod:`statelab.production.wsgi`,
which reads the environment). Each door keeps its learner-facing keyword arguments (``Server("stateless",
token_ttl=60)`` reads as it always did) and turns them into one frozen :class:`ShopConfig`, which is what it
passes on. A new option is one field here, not four signatures.

:class:`ShopState` is what a running app holds, in ``app.extensions["statelab"]``: the config it was built
from, its parts (identity, cart placement, stores, keyring) and the two functions a plugin asks,
``current()`` and ``change_cart(fn)``. It is the documented surface for plugins and labs (see
docs/ARCHITECTURE.md); it also answers ``state["keyring"]`` as the dict it replaces did, so code written
against that keeps working.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..rawhttp import MAX_BODY
from .carts import CARTS

MODES = ("stateful", "stateless", "cookie")
DEFAULT_CART = {"stateful": "session", "stateless": "token", "cookie": "token"}
IDENTITIES = {"stateful": "a session id cookie", "stateless": "a JWT bearer token", "cookie": "a signed cookie"}

#: A plugin receives the app after its routes are registered (labs use this to add behaviour).
Plugin = Callable[[Any], None]


def default_cart(mode: str, cart: str | None = None) -> str:
    """``cart``, or the usual place for ``mode`` when None; a clear ValueError for a design that does not fit.

    A session id keeps the cart in the session (``"session"``), a token or signed cookie inside itself
    (``"token"``); any of them can keep it in a shared table instead (``"db"``).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if cart is None:
        return DEFAULT_CART[mode]
    if cart not in CARTS:
        raise ValueError(f"cart must be one of {', '.join(CARTS)}, not {cart!r}")
    if cart not in (DEFAULT_CART[mode], "db"):
        home = DEFAULT_CART[mode]
        raise ValueError(f"cart={cart!r} does not fit mode={mode!r}: {IDENTITIES[mode]} keeps the cart in "
                         f"the {home} (cart={home!r}) or in a shared table (cart='db')")
    return cart


@dataclass(frozen=True)
class Limits:
    """What one request may carry (the HTTP contract's limits; see :mod:`statelab.shop.rules`)."""

    max_body: int = MAX_BODY  # bytes of one request body; more is a 413


@dataclass(frozen=True)
class ShopConfig:
    """Everything that decides how a bookshop behaves, built once and passed through unchanged.

    ``mode`` and ``cart`` are the two axes (``cart=None`` becomes the mode's usual place, and a pair that does
    not fit is a ValueError here, before anything starts). ``store`` is where stateful sessions live: a name
    the owner turns into a store (``"memory"``, ``"sqlite"``, ``"valkey"``) or a
    :class:`~statelab.shop.sessions.SessionStore`; ``carts`` the shared cart table of ``cart="db"``.
    ``keyring``/``algorithm``/``token_ttl``/``token_max_age`` are the token settings, ``session_ttl`` and
    ``session_max_age`` a session's idle and absolute lifetimes; ``secret_key`` signs
    Flask's cookie (made per run when None); ``cookie_name`` names the session cookie (None: the owner picks
    one); ``csrf_guard`` the JSON-type and same-origin checks on writes; ``plugins`` run after the routes exist.
    A copy with one field changed is ``config.but(csrf_guard=False)``.
    """

    mode: str = "stateful"
    cart: str | None = None
    store: Any = "memory"
    carts: Any = None
    keyring: Any = None
    algorithm: str = "HS256"
    secret_key: bytes | None = None
    session_ttl: float = 1800
    token_ttl: float = 900
    token_max_age: float | None = None
    session_max_age: float | None = None
    cookie_name: str | None = None
    csrf_guard: bool = True
    limits: Limits = field(default_factory=Limits)
    plugins: tuple[Plugin, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "cart", default_cart(self.mode, self.cart))
        object.__setattr__(self, "plugins", tuple(self.plugins))
        object.__setattr__(self, "csrf_guard", bool(self.csrf_guard))
        object.__setattr__(self, "session_ttl", float(self.session_ttl))
        object.__setattr__(self, "token_ttl", float(self.token_ttl))

    @classmethod
    def of(cls, config: ShopConfig | None = None, **options: Any) -> ShopConfig:
        """``config`` with ``options`` laid over it, or a new config from ``options`` alone: what each door does
        with its keyword arguments. An unknown option is a TypeError that names the ones there are."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise TypeError(f"unknown option {', '.join(unknown)}; a bookshop takes {', '.join(sorted(names))}")
        if config is None:
            return cls(**options)
        return replace(config, **options) if options else config

    def but(self, **changes: Any) -> ShopConfig:
        """A copy with ``changes`` (the config itself never changes)."""
        return replace(self, **changes)

    def with_secret(self) -> ShopConfig:
        """This config with a signing key for Flask's cookie made now if it has none (one per server or cluster,
        kept across restarts, like configuration on disk)."""
        return self if self.secret_key is not None else replace(self, secret_key=secrets.token_bytes(32))


class _FromConfig:
    """A read-only attribute of :class:`ShopState` that is its config's field of the same name."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, state: Any, owner: type | None = None) -> Any:
        return self if state is None else getattr(state.config, self.name)


@dataclass
class ShopState:
    """What a running bookshop app holds: ``app.extensions["statelab"]``. The surface plugins and labs use:

    ``config`` (the :class:`ShopConfig` it was built from), ``name``, ``mode``, ``cart``, ``store`` (stateful
    sessions, else None), ``carts`` (the shared cart table, else None), ``keyring`` (stateless, else None),
    ``session_ttl``, ``token_ttl``, ``cookie_name``, ``identity``, ``placement``; ``csrf_guard`` (switchable
    while the server runs); ``served`` (requests answered since start); ``keyed_paths`` (paths whose writes a
    plugin makes idempotent; the balancer asks); ``current()`` (``(user, state)`` of the asking user or an
    ``ApiError`` 401) and ``change_cart(fn)`` (``fn(cart) -> new cart``, atomically, wherever the cart lives).

    ``state["keyring"]`` reads ``state.keyring``: labs written against the dict it replaced keep working.
    """

    config: ShopConfig
    name: str
    identity: Any
    placement: Any
    store: Any = None
    carts: Any = None
    keyring: Any = None
    cookie_name: str = "sid"
    csrf_guard: bool = True
    served: int = 0
    keyed_paths: set[str] = field(default_factory=set)
    current: Callable[[], tuple[str, dict[str, Any]]] | None = None
    change_cart: Callable[..., tuple[list, dict[str, Any]]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # what a plugin or the gunicorn entry point adds

    # read from the config it was built from: one copy of each setting
    mode = _FromConfig()
    cart = _FromConfig()
    session_ttl = _FromConfig()
    token_ttl = _FromConfig()

    @property
    def token_max_age(self) -> float:
        """How long a renewed token may outlive its login (``token_ttl`` unless set)."""
        return self.config.token_ttl if self.config.token_max_age is None else float(self.config.token_max_age)

    # --- the mapping the dict used to be ---------------------------------------------------------------
    def _names(self) -> Iterable[str]:
        yield from ("name", "mode", "cart", "store", "carts", "keyring", "session_ttl", "token_ttl", "token_max_age",
                    "cookie_name", "csrf_guard", "identity", "placement", "served", "keyed_paths", "current",
                    "change_cart", "config")
        yield from self.extra

    def __getitem__(self, key: str) -> Any:
        if key in self.extra:
            return self.extra[key]
        if key in set(self._names()):
            return getattr(self, key)
        raise KeyError(key)

    def __setitem__(self, key: str, value: Any) -> None:
        if key in {f.name for f in fields(self)} and key not in ("config", "extra"):
            setattr(self, key, value)
        else:
            self.extra[key] = value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in set(self._names())

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def keys(self) -> list[str]:
        return list(self._names())
