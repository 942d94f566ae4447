"""The re-run registry: everything a notebook starts, so that it can all be stopped.

Notebooks re-run cells. So every server, balancer, cache and cluster a user creates is
registered: re-running a cell stops what that cell's previous run started, ``stop_all()``
stops everything, and interpreter exit does too.
"""

from __future__ import annotations

import atexit
import sys
import threading
import weakref
from typing import Any

_live: weakref.WeakSet[Any] = weakref.WeakSet()
_by_cell: dict[str, tuple[str, list[Any]]] = {}
_registry_lock = threading.RLock()


def _cell_run() -> tuple[str, str] | None:
    """(cell key, run id) when called from a Jupyter cell being executed, else None.

    The cell key is the notebook cell id when the front end sends one, or the file name
    IPython compiled the cell under (a hash of its source). The run id is the execute
    request's message id, unique for each run of a cell.
    """
    ip = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    if ip is None:
        return None
    kernel = getattr(ip, "kernel", None)
    parent: dict[str, Any] = {}
    if kernel is not None:
        try:
            parent = kernel.get_parent("shell") or {}
        except Exception:
            parent = getattr(kernel, "_parent_header", {}) or {}
    run_id = str((parent.get("header") or {}).get("msg_id") or getattr(ip, "execution_count", ""))
    cell_id = (parent.get("metadata") or {}).get("cellId")
    if not cell_id:
        cells = getattr(getattr(ip, "compile", None), "_filename_map", {})
        frame = sys._getframe(1)
        while frame is not None:  # the outermost frame compiled from a cell
            if frame.f_code.co_filename in cells:
                cell_id = frame.f_code.co_filename
            frame = frame.f_back
    return (str(cell_id), run_id) if cell_id else None


def register(owner: Any) -> None:
    """Track ``owner`` (anything with ``stop()``) for ``stop_all()`` and for cell re-runs.

    Called once for each object a user creates (a :class:`Server` from :func:`serve`, a
    ``Cluster``, a ``LoadBalancer``): when the same notebook cell runs again, everything its
    previous run registered is stopped first, so re-running a cell never leaks a server.
    """
    run = _cell_run()
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


