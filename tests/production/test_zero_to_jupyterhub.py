"""classroom/zero-to-jupyterhub/config.yaml, the way to Kubernetes: every key it sets is one the Zero to
JupyterHub chart (4.4.0) documents in its configuration reference (the chart's published schema comes from its own
Helm repository, which CI cannot reach, so the documented keys are written down here: a misspelt or unknown key
fails), and it says what the README promises (the image from a student release, memory and CPU guarantees from
benchmarks/CLASS.md, the idle culler, one pod per learner with the network policy on)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

FOLDER = Path(__file__).resolve().parents[2] / "classroom" / "zero-to-jupyterhub"

#: The chart's documented keys this config may set (z2jh.jupyter.org, "Configuration Reference", chart 4.4.0). A
#: key ending in ".*" takes free-form content (a list, or traitlets configuration passed through to JupyterHub).
DOCUMENTED = {
    "singleuser.image.name", "singleuser.image.tag", "singleuser.defaultUrl", "singleuser.memory.guarantee",
    "singleuser.memory.limit", "singleuser.cpu.guarantee", "singleuser.cpu.limit", "singleuser.startTimeout",
    "singleuser.networkPolicy.enabled", "singleuser.networkPolicy.egressAllowRules.cloudMetadataServer",
    "singleuser.networkPolicy.egressAllowRules.privateIPs", "singleuser.networkPolicy.egressAllowRules.nonPrivateIPs",
    "singleuser.storage.type", "singleuser.storage.capacity", "singleuser.cmd.*",
    "hub.concurrentSpawnLimit", "hub.activeServerLimit", "hub.config.*",
    "cull.enabled", "cull.timeout", "cull.every",
    "scheduling.userScheduler.enabled", "scheduling.podPriority.enabled", "scheduling.userPlaceholder.enabled",
    "scheduling.userPlaceholder.replicas", "prePuller.hook.enabled",
}


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load((FOLDER / "config.yaml").read_text())


def keys(tree: dict, prefix: str = "") -> list[str]:
    """Dotted paths of ``tree``'s leaves, stopping at a documented free-form key."""
    out = []
    for name, value in tree.items():
        path = f"{prefix}{name}"
        if f"{path}.*" in DOCUMENTED:
            out.append(f"{path}.*")
        elif isinstance(value, dict):
            out += keys(value, f"{path}.")
        else:
            out.append(path)
    return out


def test_every_key_of_the_config_is_one_the_chart_documents(values):
    assert set(keys(values)) <= DOCUMENTED, sorted(set(keys(values)) - DOCUMENTED)


def test_a_misspelt_key_is_caught(values):
    wrong = {**values, "singleuser": {**values["singleuser"], "memroy": {"limit": "1G"}}}
    assert "singleuser.memroy.limit" in set(keys(wrong)) - DOCUMENTED


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
