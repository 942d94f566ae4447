"""The entry point gunicorn imports in every worker: ``statelab.production.wsgi:app``.

It builds the same bookshop as :func:`statelab.create_app`, from options in the environment
(a process cannot be handed Python objects, only configuration):

``STATELAB_MODE`` / ``STATELAB_CART``  who you are and where the cart lives, as in ``create_app``;
                                       several modes (``stateful,stateless,cookie``) serve one app
                                       each under ``/<mode>/``, so one gunicorn shows all three
``STATELAB_STORE``                     ``memory`` (each worker its own dict) or ``redis`` (one shared server)
``STATELAB_CARTS``                     ``memory`` or ``redis``: the cart table of ``cart="db"``
``STATELAB_REDIS_URL`` / ``_PREFIX``   the Redis server and the key prefix every worker uses
``STATELAB_SECRET``                    hex of the one signing key every worker shares; when it is
                                       missing each worker makes its own with ``os.urandom`` at import
``STATELAB_COOKIE``                    the session cookie's name

Gunicorn imports this module after it forks each worker (it does unless told ``--preload``), so
"at import" means "once per worker": N workers, N different keys, and N different memory stores.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from ..service.httpd import drop_foreign_forwarding
from ..shop.app import create_app
from ..shop.carts import MemoryCartStore
from ..shop.config import ShopConfig
from ..shop.plugins import store_errors_as_503
from ..shop.sessions import MemoryStore
from ..shop.tokens import Keyring

WORKER = f"worker-{os.getpid()}"


def _secret() -> tuple[bytes, str]:
    shared = os.environ.get("STATELAB_SECRET")
    if shared:
        return bytes.fromhex(shared), "shared"
    return os.urandom(32), "per-worker"  # the classic mistake: a key made by each process at start


def _for(secret: bytes, purpose: bytes) -> bytes:
    """A key for one purpose, derived from the one secret (HMAC-SHA256): the token key and the cookie key differ."""
    return hmac.new(secret, purpose, hashlib.sha256).digest()


def build() -> Any:
    modes = os.environ.get("STATELAB_MODE", "stateful").split(",")
    secret, key_kind = _secret()  # one per worker (or the shared one), for every app the worker serves
    if len(modes) == 1:
        return _own_forwarding_only(build_one(modes[0], secret, key_kind))
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    apps = {f"/{mode}": build_one(mode, secret, key_kind) for mode in modes}
    return _own_forwarding_only(DispatcherMiddleware(apps[f"/{modes[0]}"], apps))


def _own_forwarding_only(app: Any) -> Any:
    """X-Forwarded-Host/-Prefix count only when a process of this Unix user sent them, as on every statelab server
    (:func:`statelab.service.httpd.drop_foreign_forwarding`): gunicorn listens on 127.0.0.1, where another user of
    a shared machine can connect too."""
    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        drop_foreign_forwarding(environ)
        return app(environ, start_response)
    return wsgi


def config_from_environ(mode: str, secret: bytes, key_kind: str, env: Mapping[str, str] = os.environ) -> ShopConfig:
    """The :class:`ShopConfig` of one app, from the environment (see the module docstring)."""
    plugins: list[Any] = []
    store: Any = MemoryStore()
    carts: Any = MemoryCartStore()
    if env.get("STATELAB_STORE", "memory") == "redis" or env.get("STATELAB_CARTS", "memory") == "redis":
        from .redis import RedisCartStore, RedisStore

        url, prefix = env["STATELAB_REDIS_URL"], env.get("STATELAB_REDIS_PREFIX", "shop")
        plugins.append(store_errors_as_503)
        if env.get("STATELAB_STORE") == "redis":
            store = RedisStore(url, f"{prefix}-{mode}")
        if env.get("STATELAB_CARTS") == "redis":
            carts = RedisCartStore(url, f"{prefix}-{mode}")
    return ShopConfig(mode, cart=env.get("STATELAB_CART") or None, store=store, carts=carts,
                      keyring=Keyring.from_secret(_for(secret, b"statelab jwt"), kid=key_kind),
                      secret_key=_for(secret, b"statelab flask session"),
                      cookie_name=env.get("STATELAB_COOKIE", "sid"), plugins=tuple(plugins))


def build_one(mode: str, secret: bytes, key_kind: str) -> Flask:
    app = create_app(name=WORKER, config=config_from_environ(mode, secret, key_kind))
    app.extensions["statelab"]["key"] = key_kind
    return app


app = build()
