"""The re-run registry: everything a notebook starts, so that it can all be stopped.

Notebooks re-run cells. So every server, balancer, cache and cluster a user creates is
registered: re-running a cell stops what that cell's previous run started, ``stop_all()``
stops everything, and interpreter exit does too. Which cell is running comes from
:func:`statelab.kernel.cell_run` (the one place that reads IPython's insides).
"""

from __future__ import annotations

import atexit
import threading
import weakref
from typing import Any

from .. import kernel

_live: weakref.WeakSet[Any] = weakref.WeakSet()
_by_cell: dict[str, tuple[str, list[Any]]] = {}
_registry_lock = threading.RLock()


def register(owner: Any) -> None:
    """Track ``owner`` (anything with ``stop()``) for ``stop_all()`` and for cell re-runs.

    Called once for each object a user creates (a :class:`Server` from :func:`serve`, a
    ``Cluster``, a ``LoadBalancer``): when the same notebook cell runs again, everything its
    previous run registered is stopped first, so re-running a cell never leaks a server.
    """
    run = kernel.cell_run()
    with _registry_lock:
        _live.add(owner)
        if run is None:
            return
        cell, run_id = run
        previous_run, owners = _by_cell.get(cell, (run_id, []))
        if previous_run != run_id:
            for old in owners:
                if old is not owner:
                    old.stop()
            owners = []
        owners.append(owner)
        _by_cell[cell] = (run_id, owners)


def live() -> list[Any]:
    """Everything registered and still referenced (stopped or not): what ``stop_all()`` would stop."""
    with _registry_lock:
        return list(_live)


def stop_all() -> int:
    """Stop every server, balancer and cluster this interpreter started; return how many."""
    with _registry_lock:
        owners = list(_live)
        _by_cell.clear()
    for owner in owners:
        owner.stop()
    return len(owners)


atexit.register(stop_all)


