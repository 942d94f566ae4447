"""Helpers for tests that execute notebooks in a real kernel (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import re

import nbformat

MEMORY_LIMIT_MB = 200  # the project's peak kernel memory budget per notebook

# A cell appended to an executed copy only: the kernel's peak memory. VmHWM, not ru_maxrss: Linux carries
# ru_maxrss across fork+exec, so a kernel started by a big pytest process would report pytest's size.
PEAK_MEMORY_PROBE = ("import re as _re, resource as _r, pathlib as _p\n"
                     "_s = _p.Path('/proc/self/status')\n"
                     "_m = _re.search(r'VmHWM:\\s+(\\d+) kB', _s.read_text()) if _s.exists() else None\n"
                     "print('STATELAB-PEAK-KIB', _m.group(1) if _m else _r.getrusage(_r.RUSAGE_SELF).ru_maxrss)")


def peak_mib(probe_cell: nbformat.NotebookNode) -> float:
    """The peak memory the executed probe cell printed, in MiB."""
    text = "".join(o.get("text", "") for o in probe_cell.outputs if o.output_type == "stream")
    match = re.search(r"STATELAB-PEAK-KIB (\d+)", text)
    assert match, f"memory probe printed nothing: {probe_cell.outputs}"
    return int(match.group(1)) / 1024
