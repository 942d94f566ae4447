"""The learner's evidence journal: each row's latest Evidence, kept on disk between kernels.

In JupyterLab every notebook runs in its own kernel, so what a learner measured in notebook 04 is
gone from notebook 12's kernel. :func:`statelab.experiments.record` therefore also writes each
Evidence recorded *in a notebook kernel* here, one JSON file per row, and the scoreboard reads them
back: the table in notebook 12 is built from the runs the learner made, in whichever notebook.

Where: ``$STATELAB_EVIDENCE_DIR`` when set (set it empty to keep no journal), else a folder
``.statelab-evidence`` beside the notebooks (a kernel's working directory is its notebook's folder,
so notebooks 03-12 of one copy of the course share one journal). It belongs to that copy: learners
who share a machine, even under one user account, each in a copy of their own, never read each
other's runs, and a test that runs a notebook on a temporary copy leaves the repository's copy alone.

What: the row, its measurements, named checks, judgements and reading, and the time it was saved;
never cookies, tokens or other objects from ``extra``. A saved run is read back only while the
experiment module that made it is unchanged (its source's fingerprint is saved with it): a run of
an older experiment could carry checks the current one no longer makes. Nothing here raises: a
journal that cannot be written or read is a journal that is not kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import Evidence, Judgement

SCHEMA = 2
FOLDER = ".statelab-evidence"
KEPT_EXTRA = ("quick", "key_numbers")   # the only parts of ``extra`` worth showing later, and safe to keep


def directory() -> Path | None:
    """Where the journal lives, or None when ``$STATELAB_EVIDENCE_DIR`` is set empty (no journal)."""
    chosen = os.environ.get("STATELAB_EVIDENCE_DIR")
    if chosen is not None:
        return Path(chosen).expanduser().absolute() if chosen.strip() else None
    return Path.cwd() / FOLDER


def fingerprint(row: str) -> str:
    """A short hash of the source of ``statelab.experiments.<row>`` ("" when there is no such module)."""
    try:
        spec = importlib.util.find_spec(f"statelab.experiments.{row}")
        origin = spec.origin if spec is not None else None
        return hashlib.sha256(Path(origin).read_bytes()).hexdigest()[:16] if origin else ""
    except (ImportError, OSError, ValueError):
        return ""


def _as_json(ev: Evidence) -> str:
    extra = ev.extra if isinstance(ev.extra, dict) else {}
    data: dict[str, Any] = {
        "schema": SCHEMA, "saved": time.time(), "fingerprint": fingerprint(ev.row),
        "row": ev.row, "measurements": ev.measurements, "checks": ev.checks,
        "claims": {k: {"supports": list(j.supports), "qualifies": list(j.qualifies), "corrected": j.corrected}
                   for k, j in ev.claims.items()},
        "reading": ev.reading, "seconds": ev.seconds, "conditions": ev.conditions, "labels": ev.labels,
        "shown": ev.shown, "mechanisms": list(ev.mechanisms),
        "extra": {k: extra[k] for k in KEPT_EXTRA if k in extra},
    }
    return json.dumps(data, default=str, ensure_ascii=False)


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


def save(ev: Evidence) -> Path | None:
    """Write ``ev`` as its row's latest run (atomically); None if not kept."""
    folder = directory()
    if folder is None or not isinstance(ev, Evidence) or not ev.row.replace("_", "").isalnum():
        return None
    try:
        return write_file(folder, ev.row, _as_json(ev))
    except (OSError, TypeError, ValueError):
        return None


def _from_json(text: str) -> Evidence | None:
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return None
    if data.get("fingerprint") != fingerprint(str(data.get("row"))):
        return None   # made by another version of the experiment
    claims = {k: Judgement(tuple(j["supports"]), tuple(j["qualifies"]), j["corrected"])
              for k, j in data["claims"].items()}
    extra = {**data.get("extra", {}), "saved": data["saved"]}
    return Evidence(row=data["row"], measurements=data["measurements"], checks=data["checks"], claims=claims,
                    reading=data["reading"], seconds=float(data["seconds"]), extra=extra,
                    conditions=data.get("conditions", {}), labels=data.get("labels", {}), shown=data.get("shown", {}),
                    mechanisms=tuple(data.get("mechanisms", ())))


def load() -> dict[str, Evidence]:
    """Every row's latest saved run, by row key (runs that cannot be read back are left out)."""
    found: dict[str, Evidence] = {}
    for path, text in read_files(directory()):
        try:
            ev = _from_json(text)
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if ev is not None and path.stem == ev.row:
            found[ev.row] = ev
    return found


def remove_files(folder: Path | None) -> int:
    """Remove every ``*.json`` in ``folder``; returns how many were removed."""
    removed = 0
    if folder is not None and folder.is_dir():
        for path in folder.glob("*.json"):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


def clear() -> int:
    """Forget every saved run (for a fresh start); returns how many were removed."""
    return remove_files(directory())
