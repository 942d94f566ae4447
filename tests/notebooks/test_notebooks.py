"""The notebooks: committed in a clean, consistent form, and each one (lab solutions too) executed once.

Static checks read the committed files. Execution is tests/kernels.py's harness, the executor of record for
``notebooks/`` and ``labs/solutions/``: each notebook runs in a fresh kernel of its own on a temporary copy,
Run All twice, then ``sl.stop_all()``, then a kernel shutdown; the tests here judge what it recorded: the
first run against the budget (30 s, 200 MiB), the second run for re-run safety (no error, no thread growth,
nothing left listening), and the shutdown (the kernel exits by itself, every port refuses). nbval stays handy
for one notebook by hand (``python -m pytest notebooks/03_scalability.ipynb``); a notebook nbval collects in a
session is not executed here again.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from browser import BROWSER_NOTEBOOKS
from kernels import EXECUTED, MEMORY_LIMIT_MB, NAMES, SOLUTIONS, TIME_LIMIT_S, output_kinds
from kernels import NOTEBOOKS as NOTEBOOKS_RUN

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NAME = re.compile(r"^(\d\d)_[a-z0-9]+(?:_[a-z0-9]+)*\.ipynb$")
TITLE = re.compile(r"^# (\d\d) · \S.*$")
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


PATHS = notebook_paths()
IDS = [p.name for p in PATHS]


def test_notebooks_found_and_numbered_from_00():
    names = [p.name for p in PATHS]
    assert len(names) >= 3, f"expected at least 3 notebooks in {NOTEBOOKS}, found {names}"
    bad = [n for n in names if not NAME.match(n)]
    assert not bad, f"notebook names must look like NN_lower_snake.ipynb: {bad}"
    numbers = [int(NAME.match(n).group(1)) for n in names]
    assert numbers == list(range(len(names))), f"notebooks must be numbered 00, 01, ... without gaps: {names}"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_is_committed_clean(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)  # also requires a cell id on every cell (nbformat >= 4.5)
    assert nb.metadata.get("kernelspec") == KERNELSPEC, f"kernelspec is {nb.metadata.get('kernelspec')}"
    assert nb.metadata.get("language_info", {}).get("name") == "python"
    assert "widgets" not in nb.metadata, "saved widget state: clear it before committing"
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"cells {dirty} have outputs or an execution count: clear them before committing"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_title_matches_its_number(path: Path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0] if nb.cells else None
    assert first is not None and first.cell_type == "markdown", "the first cell must be the markdown title"
    heading = next((line for line in first.source.splitlines() if line.startswith("# ")), None)
    assert heading, "the first cell needs a '# NN · Title' heading"
    match = TITLE.match(heading)
    assert match, f"title {heading!r} should read '# NN · Title'"
    assert match.group(1) == path.name[:2], f"title number {match.group(1)} does not match {path.name}"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_code_cells_parse(path: Path):
    nb = nbformat.read(path, as_version=4)
    to_python = TransformerManager().transform_cell  # turns %magics and !shell into get_ipython() calls
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code cells teaches nothing by experiment"
    for i, cell in enumerate(code):
        try:
            ast.parse(to_python(cell.source))
        except SyntaxError as error:
            pytest.fail(f"code cell {i} does not parse: {error}\n{cell.source}")


# --- execution: each notebook and lab solution once, in its own kernel, Run All twice (tests/kernels.py) -----------

def test_found_the_notebooks_to_execute():
    """A glob that finds nothing would make every parametrized test below vanish: that is a failure."""
    assert len(NOTEBOOKS_RUN) >= 10, f"expected the notebooks 00-12 in notebooks/, found {NOTEBOOKS_RUN}"
    assert len(SOLUTIONS) >= 1, f"expected the lab solutions in labs/solutions/, found {SOLUTIONS}"
    assert len(EXECUTED) == len(NOTEBOOKS_RUN) + len(SOLUTIONS) == len(set(NAMES))


def _completed(run, step: str) -> None:
    """Fail with the notebook's own error when it did not get past ``step``."""
    order = ["kernel start", "run 1", "run 2", "stop_all", "before shutdown", "shutdown"]
    if run.failed and order.index(run.failed) <= order.index(step):
        pytest.fail(f"{run.name} failed in {run.failed}: {run.error}", pytrace=False)


@pytest.mark.parametrize("notebook", NAMES)
def test_runs_within_budget(notebook_runs, notebook):
    """Run All in a fresh kernel: no error, nothing on stderr, every cell ran, under 30 s and 200 MiB."""
    run = notebook_runs.result(notebook)
    _completed(run, "run 1")
    cells = [c for c in run.executed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in cells), "a code cell did not run"
    stderr = [o.get("text", "")[:500] for c in cells for o in c.outputs
              if o.output_type == "stream" and o.name == "stderr"]
    assert not stderr, f"a learner would see this on stderr (JupyterLab shows it in red): {stderr}"
    seconds, peak = run.seconds[0], run.probes["run 1"]["peak_kib"]
    print(f"\n{run.summary()}")
    assert seconds < TIME_LIMIT_S, f"Run All took {seconds:.1f} s (kernel start included): over {TIME_LIMIT_S:.0f} s"
    if peak is not None:  # Linux: VmHWM
        assert peak / 1024 < MEMORY_LIMIT_MB, f"peak kernel memory {peak / 1024:.0f} MiB: over {MEMORY_LIMIT_MB}"


#: A bare dataclass repr, as Python prints one: ``Crash(found_before=0.5833333333333334, ...)``.
DATACLASS_REPR = re.compile(r"\b[A-Z][A-Za-z0-9]*\((?:[a-z_][a-z0-9_]*)=")
RICH = ("text/html", "text/markdown", "image/png", "image/svg+xml", "application/vnd.jupyter.widget-view+json")


def plain_outputs(nb) -> list[tuple[int, str]]:
    """(cell index, text) of what a learner reads as plain text: streams, and results with no richer form."""
    out = []
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            if o.output_type == "stream":
                out.append((i, o.get("text", "")))
            elif o.output_type in ("execute_result", "display_data") and not any(k in o.data for k in RICH):
                out.append((i, o.data.get("text/plain", "")))
    return out


@pytest.mark.parametrize("notebook", NAMES)
def test_no_output_is_a_bare_dataclass_repr(notebook_runs, notebook):
    """Issue 20: 13 printed ``Crash(found_before=0.5833333333333334, ...)``: every object a notebook shows reads
    as a table or a sentence with rounded numbers."""
    run = notebook_runs.result(notebook)
    _completed(run, "run 1")
    raw = [(i, m.group(0), text[max(0, m.start() - 40):m.start() + 80]) for i, text in plain_outputs(run.executed)
           for m in DATACLASS_REPR.finditer(text)]
    assert raw == [], f"raw object reprs in the outputs: {raw[:5]}"


def test_the_dataclass_repr_scan_catches_a_raw_repr():
    from dataclasses import dataclass

    @dataclass
    class Crash:
        found_before: float

    assert DATACLASS_REPR.search(repr({"shared": Crash(0.5833333333333334)}))
    assert not DATACLASS_REPR.search("<Exchange GET /cart -> 200 by server-0 in 1.2 ms>")


@pytest.mark.parametrize("notebook", NAMES)
def test_second_run_all_in_the_same_kernel_leaves_what_the_first_left(notebook_runs, notebook):
    """A learner presses Run All again: no error, and no growth: as many threads, listening sockets and child
    processes as after the first run (each run's set-up stops what the previous run started)."""
    run = notebook_runs.result(notebook)
    _completed(run, "run 2")
    end1, end2 = run.probes["run 1"], run.probes["run 2"]
    grown = sorted(set(end2["names"]) - set(end1["names"]))
    assert end2["threads"] <= end1["threads"], (
        f"threads grew from {end1['threads']} to {end2['threads']} on the second run; new: {grown}")
    if end1["listening"] is None:
        pytest.skip("no /proc here: listening sockets and processes cannot be read")
    first, second = run.served("run 1"), run.served("run 2")
    assert len(second) <= len(first), f"listening after run 1: {first}; after run 2: {second}"
    assert len(end2["children"]) <= len(end1["children"]), (end1["children"], end2["children"])


@pytest.mark.parametrize("notebook", NAMES)
def test_stop_all_and_kernel_shutdown_leave_nothing_running(notebook_runs, notebook):
    """``sl.stop_all()`` stops every server, thread and child process the notebook started; after the cells run
    again from the top until a server is up, a kernel shutdown (as JupyterLab does it) ends the kernel by itself,
    no process it started outlives it and none of its ports is still listened on. Whatever listens listens on
    127.0.0.1 only."""
    run = notebook_runs.result(notebook)
    _completed(run, "shutdown")
    if run.probes["run 1"]["listening"] is None:
        pytest.skip("no /proc here: listening sockets and processes cannot be read")
    everything = {tuple(a) for probe in run.probes.values() for a in probe["listening"]}
    assert {host for host, _port in everything} <= {"127.0.0.1"}, f"listening beyond loopback: {everything}"
    if notebook.startswith("notebooks/"):  # every lesson leaves its dashboard's servers running
        assert run.served("run 2"), "the notebook left no server running after Run All (the dashboard needs one)"
    after = run.probes["stop_all"]
    assert run.served("stop_all") == [], f"still listening after sl.stop_all(): {run.served('stop_all')}"
    assert [n for n in after["names"] if n.startswith("statelab-")] == [], after["names"]
    assert after["children"] == [], f"child processes still running after sl.stop_all(): {after['children']}"
    # the keeper removes folders when the kernel dies: after stop_all only a workspace the notebook keeps needs one
    keeps_a_workspace = "sl.workspace(" in (ROOT / notebook).read_text()
    assert len(after["keepers"]) == (1 if keeps_a_workspace else 0), (notebook, after["keepers"])
    if run.served("run 2"):
        assert run.served("before shutdown"), "running the cells again from the top started no server"
    assert run.kernel_exit_code == 0, f"the kernel did not exit by itself (exit code {run.kernel_exit_code})"
    assert run.alive_after_exit == [], f"processes of the kernel still alive after it exited: {run.alive_after_exit}"
    assert run.still_listening == [], f"still listening after the kernel shut down: {run.still_listening}"


@pytest.mark.all_notebooks
def test_the_browser_tests_render_every_kind_of_output_any_notebook_shows(notebook_runs):
    """Only a few notebooks are opened in Chromium (tests/browser.py: BROWSER_NOTEBOOKS). That covers the rest
    when together they show every kind of output the others show: each MIME type, each widget model. A new kind
    of output (a new widget, a new display type) fails here until a browser-tested notebook shows it too."""
    missing = set(BROWSER_NOTEBOOKS) - set(NAMES)
    assert not missing, f"browser-tested notebooks missing: {missing}"
    runs = {name: notebook_runs.result(name) for name in NAMES}
    failed = [name for name in BROWSER_NOTEBOOKS if runs[name].executed is None]
    assert not failed, f"cannot judge: {failed} did not run (see test_runs_within_budget)"
    kinds = {name: output_kinds(r.executed) for name, r in runs.items() if r.executed is not None}
    rendered = set().union(*(kinds[name] for name in BROWSER_NOTEBOOKS))
    assert any(k.startswith("widget ") for k in rendered) and "image/png" in rendered, sorted(rendered)
    unrendered = {}
    for name, shown in kinds.items():
        for kind in sorted(shown - rendered):
            unrendered.setdefault(kind, []).append(name)
    print("\nkinds of output the browser tests render:", ", ".join(sorted(rendered)))
    assert not unrendered, f"shown by notebooks no browser test opens (add one to BROWSER_NOTEBOOKS): {unrendered}"


def _markdown_of(path: Path) -> str:
    if path.suffix == ".md":
        return path.read_text()
    nb = nbformat.read(path, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


LINKED = sorted(NOTEBOOKS.glob("*.ipynb")) + sorted((ROOT / "labs").rglob("*.ipynb")) + [
    ROOT / "README.md", ROOT / "labs" / "README.md"]


@pytest.mark.parametrize("path", LINKED, ids=[str(p.relative_to(ROOT)) for p in LINKED])
def test_relative_links_resolve(path: Path):
    """The map in 00, the README and every "Next" or "Lab" pointer lead to a file that exists."""
    targets = [t for t in re.findall(r"\]\(([^)#\s]+)", _markdown_of(path)) if "://" not in t]
    assert targets, f"{path.name} links nowhere: expected at least a Next/Lab/map link"
    missing = [t for t in targets if not (path.parent / t).exists()]
    assert not missing, f"{path.relative_to(ROOT)} links to missing files: {missing}"
