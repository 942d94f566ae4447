"""The learner's journal: what one notebook's kernel keeps on disk for another's, one JSON file per entry.

In JupyterLab every notebook runs in its own kernel, so what a learner measured in notebook 04 is
gone from notebook 12's kernel. :func:`statelab.experiments.record` therefore also saves each
Evidence recorded *in a notebook kernel* here, one JSON file per row, and the scoreboard reads them
back: the table in notebook 12 is built from the runs the learner made, in whichever notebook. The
predictions of :mod:`statelab.ui.prediction` are kept here too, in a folder of their own.

This module is storage only: it knows files and JSON, not Evidence (which turns itself into a record
and back, :meth:`statelab.experiments.Evidence.as_record`), so it imports nothing of statelab and every
package may use it.

Where: ``$STATELAB_EVIDENCE_DIR`` when set (set it empty to keep no journal), else a folder
``.statelab-evidence`` beside the notebooks (a kernel's working directory is its notebook's folder,
so notebooks 03-12 of one copy of the course share one journal). It belongs to that copy: learners
who share a machine, even under one user account, each in a copy of their own, never read each
other's runs, and a test that runs a notebook on a temporary copy leaves the repository's copy alone.

What (for a row): its measurements, named checks, judgements and reading, and the time it was saved;
never cookies, tokens or other objects from ``extra``. Nothing here raises: a journal that cannot be
written or read is a journal that is not kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FOLDER = ".statelab-evidence"


def directory() -> Path | None:
    """Where the journal lives, or None when ``$STATELAB_EVIDENCE_DIR`` is set empty (no journal)."""
    chosen = os.environ.get("STATELAB_EVIDENCE_DIR")
    if chosen is not None:
        return Path(chosen).expanduser().absolute() if chosen.strip() else None
    return Path.cwd() / FOLDER


def write_file(folder: Path, name: str, text: str) -> Path:
    """Write ``text`` to ``folder/name.json`` atomically (a reader never sees half a file); may raise OSError."""
    folder.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{name}-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(text)
        target = folder / f"{name}.json"
        os.replace(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    return target


def read_files(folder: Path | None) -> Iterator[tuple[Path, str]]:
    """``(path, text)`` of each ``*.json`` in ``folder``, in name order; files that cannot be read are skipped."""
    if folder is None or not folder.is_dir():
        return
    for path in sorted(folder.glob("*.json")):
        try:
            yield path, path.read_text(encoding="utf-8")
        except OSError:
            continue


def remove_files(folder: Path | None) -> int:
    """Remove every ``*.json`` in ``folder``; returns how many were removed."""
    removed = 0
    if folder is not None and folder.is_dir():
        for path in folder.glob("*.json"):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


def save(name: str, data: dict[str, Any]) -> Path | None:
    """Keep ``data`` as ``name``'s latest entry (atomically); None when there is no journal or it cannot be
    written (a journal that cannot be written is a journal that is not kept)."""
    folder = directory()
    if folder is None or not name.replace("_", "").isalnum():
        return None
    try:
        return write_file(folder, name, json.dumps({**data, "saved": time.time()}, default=str, ensure_ascii=False))
    except (OSError, TypeError, ValueError):
        return None


def load() -> dict[str, dict[str, Any]]:
    """Every entry, by name: ``{name: data}`` (with ``"saved"``, the time it was written); unreadable ones left out."""
    found: dict[str, dict[str, Any]] = {}
    for path, text in read_files(directory()):
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if isinstance(data, dict):
            found[path.stem] = data
    return found


def clear() -> int:
    """Forget every saved entry (for a fresh start); returns how many were removed."""
    return remove_files(directory())
