"""classroom/zero-to-jupyterhub/config.yaml, the way to Kubernetes: merged over the chart's default values, as
Helm merges them, it validates against the Zero to JupyterHub chart's own values schema (chart-4.4.0/: the schema
generated from chart 4.4.0's values.schema.yaml as the chart packages it, and its values.yaml; an unknown or
misspelt key fails), and it says what the README promises (the image from a
student release, memory and CPU guarantees from benchmarks/CLASS.md, the idle culler, one pod per learner with
the network policy on)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

FOLDER = Path(__file__).resolve().parent.parent / "classroom" / "zero-to-jupyterhub"


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load((FOLDER / "config.yaml").read_text())


CHART = FOLDER / "chart-4.4.0"


def schema() -> dict:
    return json.loads((CHART / "values.schema.json").read_text())


def merged(user: dict, defaults: dict | None = None) -> dict:
    """The values Helm validates: the chart's defaults with the user's values merged over them (maps merge key by
    key; anything else is replaced)."""
    out = dict(yaml.safe_load((CHART / "values.yaml").read_text()) if defaults is None else defaults)
    for key, value in user.items():
        out[key] = merged(value, out[key]) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def test_the_config_is_valid_for_the_chart(values):
    jsonschema.validate(merged({}), schema())  # the chart's own defaults pass
    jsonschema.validate(merged(values), schema())


def test_the_schema_catches_a_misspelt_key(values):
    wrong = {**values, "singleuser": {**values["singleuser"], "memroy": {"limit": "1G"}}}
    with pytest.raises(jsonschema.ValidationError, match="memroy"):
        jsonschema.validate(merged(wrong), schema())


def mib(size: str) -> float:
    """Kubernetes quantities: 400M is 400 * 10**6 bytes, 1Gi is 2**30."""
    number, unit, binary = re.fullmatch(r"([0-9.]+)([KMGT]?)(i?)", size).groups()
    power = "KMGT".index(unit) + 1 if unit else 0
    return float(number) * (1024 if binary else 1000) ** power / 2**20


def test_the_config_sizes_learners_from_the_measurements_and_culls_idle_servers(values):
    single = values["singleuser"]
    class_md = (FOLDER.parent.parent / "benchmarks" / "CLASS.md").read_text()
    measured = re.search(r"all of one learner's processes\*\* \| \*\*\d+ \| (\d+)\*\*", class_md)
    assert measured, "benchmarks/CLASS.md has no hub figures"
    worst = int(measured.group(1))  # MiB, the worst learner's peak
    assert worst <= mib(single["memory"]["guarantee"]) < mib(single["memory"]["limit"])
    assert 0 < single["cpu"]["guarantee"] <= single["cpu"]["limit"]
    assert values["cull"]["enabled"] and values["cull"]["timeout"] >= 600
    assert single["networkPolicy"]["enabled"] is True
    assert single["image"]["tag"] not in ("latest", "HEAD", "main") and "student" in single["image"]["name"]
    assert single["defaultUrl"] == "/lab"  # the nbgitpuller link opens notebook 00


def test_the_nbgitpuller_link_opens_the_first_notebook_of_a_student_release():
    text = (FOLDER / "nbgitpuller-link.txt").read_text()
    link = next(line for line in text.splitlines() if line.startswith("https://"))
    assert "/hub/user-redirect/git-pull?repo=" in link and "branch=student-" in link
    assert "urlpath=lab%2Ftree%2Fstatelab%2Fnotebooks%2F00_start_here.ipynb" in link
