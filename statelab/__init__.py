"""statelab: stateful vs stateless web architecture, taught by experiment.

The public face the notebooks use::

    import statelab as sl
    srv = sl.serve("stateful")                 # a bookshop server on 127.0.0.1
    cluster = sl.Cluster(servers=3, mode="stateless", balancer="round_robin")
    api = sl.Cluster(3, "stateless", cart="db") # who you are (mode) and where the cart lives (cart)
    alice = sl.Client(cluster.url); alice.login("alice"); alice.add_to_cart("book")
    cluster.kill(1); alice.cart()              # what survives a crash?
    sl.inspect_token(alice.token)              # read a token without trusting it
    far = sl.Cluster(2, "stateful", store="valkey", distance=0.001)  # the shared store 1 ms away
    sl.stop_all()
"""

from . import load
from .client import Client, Exchange
from .network import Link
from .service import PortInUseError
from .service.registry import stop_all
from .shop.app import create_app
from .shop.carts import MemoryCartStore, SqliteCartStore
from .shop.config import ShopConfig
from .shop.server import Server, serve
from .shop.sessions import MemoryStore, SqliteStore
from .shop.tokens import Keyring, TokenError, TokenReport, inspect_token
from .topology.balancer import LoadBalancer
from .topology.cluster import Cluster, shared_store, valkey_available

__all__ = [
    "Client", "Cluster", "Exchange", "Keyring", "Link", "LoadBalancer", "MemoryCartStore", "MemoryStore",
    "PortInUseError", "Server", "ShopConfig", "SqliteCartStore", "SqliteStore", "TokenError", "TokenReport",
    "create_app",
    "inspect_token", "load", "serve", "shared_store", "stop_all", "valkey_available", "workspace",
]
__version__ = "0.1.0"

def workspace(name: str):
    """A folder of your own for a notebook's or lab's files (its path is ``.name``): readable by you alone, and
    removed when the kernel stops, however it stops (a killed kernel too), or at once by ``.cleanup()``.

    ``tempfile.TemporaryDirectory`` is removed only when Python exits normally; a kernel killed with SIGKILL would
    leave it in /tmp. This one is looked after by statelab's cleanup (``service/cleanup.py``).
    """
    from .service import cleanup

    return cleanup.folder(f"statelab-{name}-")


_LAZY = ("ui", "table", "experiments", "labs", "plots", "crowd", "trace")


def __getattr__(name: str):
    """Import the heavier parts (widgets, experiments) on first use: ``sl.ui.dashboard(...)``."""
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'statelab' has no attribute {name!r}")
