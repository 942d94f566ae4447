"""Are we in a Jupyter kernel, and which cell run is this? Our one reliance on IPython's and ipykernel's insides.

Everything in statelab that behaves differently in a learner's notebook (a progress bar, the journal, the
re-run registry, the scoreboard filling in row by row, figures with alt text) asks here, so the answer is
the same everywhere and the private attributes read below are read in this one module.

IPython is imported by every kernel before any cell runs, so a process that has not imported it is not a
kernel: these functions never import IPython themselves (a script or a test pays nothing).
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any


def shell() -> Any | None:
    """The IPython shell of the Jupyter kernel running us, or None (a script, a test, plain ``ipython``)."""
    ipython = sys.modules.get("IPython")
    found = ipython.get_ipython() if ipython is not None else None
    return found if getattr(found, "kernel", None) is not None else None


def in_a_notebook() -> bool:
    """True inside a Jupyter kernel (a learner's notebook), False in a script or a test run."""
    return shell() is not None


def cell_run() -> tuple[str, str] | None:
    """(cell key, run id) when called from a Jupyter cell being executed, else None.

    The cell key is the notebook cell id when the front end sends one (JupyterLab, Notebook 7, nbclient), or
    else the file name IPython compiled the cell under (a hash of its source). The run id is the execute
    request's message id, unique for each run of a cell. Three reads are not public API, each guarded so that
    a change makes re-run tracking fall back to "not in a cell" (nothing stopped early), never an error:

    * ``kernel._parent_header``: only where ``kernel.get_parent("shell")`` (ipykernel 6+) is missing;
    * ``compile._filename_map``: IPython's map of the file names it compiled cells under; the one way to tell
      a cell's frame from a library's when the front end sends no cell id;
    * the call stack (``inspect.currentframe``): to find the outermost frame compiled from a cell.
    """
    ip = shell() or (sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None)
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
        frame = inspect.currentframe()
        while frame is not None:  # the outermost frame compiled from a cell
            if frame.f_code.co_filename in cells:
                cell_id = frame.f_code.co_filename
            frame = frame.f_back
    return (str(cell_id), run_id) if cell_id else None


JUPYTER_HOME = {"JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data", "JUPYTER_RUNTIME_DIR": "runtime",
                "IPYTHONDIR": "ipython"}


def jupyter_home(base: str | os.PathLike) -> dict[str, str]:
    """``JUPYTER_CONFIG_DIR``, ``JUPYTER_DATA_DIR``, ``JUPYTER_RUNTIME_DIR`` and ``IPYTHONDIR`` as folders inside
    ``base`` (made here): an environment for Jupyter servers and kernels that never touch the user's own settings."""
    home = {}
    for var, sub in JUPYTER_HOME.items():
        home[var] = os.path.join(base, sub)
        os.makedirs(home[var], exist_ok=True)
    return home


def use_private_jupyter_home(base: str) -> None:
    """Point this process's Jupyter and IPython folders (each one not set already) into ``base`` (:func:`jupyter_home`).

    For tests and benchmarks: kernels they start (which inherit the environment) never read or write the user's
    own settings. Call it before anything imports ``jupyter_core``.
    """
    for var, path in jupyter_home(base).items():
        if not os.environ.get(var):
            os.environ[var] = path
