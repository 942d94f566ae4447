"""A test that needs a program beyond Python (Valkey, gunicorn, HAProxy): skipped where it is missing, a failure
in CI, where ``.ci/run`` installs every program the suite needs."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI") == "true"


def need(ok: bool, how_to_get: str) -> None:
    """Go on if ``ok``; else skip with ``how_to_get`` (fail in CI)."""
    if not ok:
        if IN_CI:
            pytest.fail(f"CI requires it: {how_to_get}")
        pytest.skip(how_to_get)
