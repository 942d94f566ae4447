"""Into production: the bookshop as real OS processes, with a real shared store.

* :class:`Gunicorn` serves the same app factory with N pre-fork worker processes;
* :class:`RedisServer` runs a Valkey/Redis server for this notebook; :class:`RedisStore` and
  :class:`RedisCartStore` keep sessions and carts in it;
* :func:`usl.fit` fits Gunther's Universal Scalability Law to throughput measured per worker count.

Each part needs a program that may be missing; it then raises :class:`BinaryMissing`, whose message
says how to get it.
"""

from . import usl
from .gunicorn import Gunicorn
from .process import BinaryMissing
from .redis import RedisCartStore, RedisServer, RedisStore

__all__ = ["BinaryMissing", "Gunicorn", "RedisCartStore", "RedisServer", "RedisStore", "usl"]
