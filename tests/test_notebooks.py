"""The notebooks: committed in a clean, consistent form, and each one runs top to bottom within budget.

This module is the executor of record for ``notebooks/``: it runs every notebook once with nbclient, in a
fresh kernel, on a temporary copy (so nothing a notebook writes lands in the repo), with a hard wall-time
limit per notebook and its run time and peak kernel memory printed. nbval (``pytest --nbval-lax
notebooks/NN_x.ipynb``) stays handy for checking one notebook by hand; if a run collects a notebook through
nbval as well, the execution test here skips it, so no notebook runs twice in one session.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from kernels import MEMORY_LIMIT_MB, PEAK_MEMORY_PROBE, peak_mib

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NAME = re.compile(r"^(\d\d)_[a-z0-9]+(?:_[a-z0-9]+)*\.ipynb$")
TITLE = re.compile(r"^# (\d\d) · \S.*$")
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

# The project's speed and memory budget per notebook (see the developer guide). A slower machine may widen
# the time limit with STATELAB_NOTEBOOK_TIMEOUT; the default is the promise made to learners.
TIME_LIMIT_S = float(os.environ.get("STATELAB_NOTEBOOK_TIMEOUT", "30"))



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


@pytest.fixture(scope="session")
def jupyter_sandbox(tmp_path_factory):
    """Jupyter and IPython directories of our own, so no test reads or writes the user's settings."""
    base = tmp_path_factory.mktemp("jupyter")
    with pytest.MonkeyPatch.context() as mp:
        for var, sub in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                         ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")]:
            (base / sub).mkdir()
            mp.setenv(var, str(base / sub))
        yield base


def _collected_by_nbval(request: pytest.FixtureRequest, path: Path) -> bool:
    return any(type(item).__module__.startswith("nbval") and Path(str(item.path)) == path
               for item in request.session.items)


def execute_notebook(path: Path, workdir: Path, time_limit: float) -> tuple[nbformat.NotebookNode, float]:
    """Run a copy of ``path`` in ``workdir`` in a fresh kernel; stop it all after ``time_limit`` seconds.

    The limit is wall time for the whole notebook, kernel start included, as a learner would wait for it.
    Returns the executed notebook and the seconds it took. Raises TimeoutError or nbclient's CellExecutionError.
    """
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_MEMORY_PROBE))
    # nbclient's own per-cell timeout is a backstop: the wall-time deadline below fires first.
    client = NotebookClient(nb, timeout=time_limit + 10, kernel_name="python3", shutdown_kernel="immediate",
                            resources={"metadata": {"path": str(workdir)}})
    start = time.perf_counter()
    try:
        # async_execute's own clean-up shuts the kernel down when wait_for cancels it.
        asyncio.run(asyncio.wait_for(client.async_execute(), time_limit))
    except Exception as error:  # the cancellation may surface as nbclient's DeadKernelError
        if time.perf_counter() - start >= time_limit:
            raise TimeoutError(f"{path.name} did not finish within {time_limit:.0f} s") from error
        raise
    return nb, time.perf_counter() - start


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_runs_within_budget(path: Path, request, jupyter_sandbox, tmp_path):
    if _collected_by_nbval(request, path):
        pytest.skip("nbval executes this notebook in this run")
    workdir = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, workdir)  # a notebook may write files next to itself: not in the repo
    nb, seconds = execute_notebook(workdir / path.name, workdir, TIME_LIMIT_S)
    peak = peak_mib(nb.cells[-1])
    print(f"\n{path.name}: ran in {seconds:.1f} s (limit {TIME_LIMIT_S:.0f} s), peak kernel memory {peak:.0f} MiB")
    errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    assert not errors, f"error outputs: {errors}"
    unrun = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.execution_count is None]
    assert not unrun, f"cells {unrun} did not run"
    assert seconds < TIME_LIMIT_S
    assert peak < MEMORY_LIMIT_MB, f"peak kernel memory {peak:.0f} MiB is over the {MEMORY_LIMIT_MB} MiB budget"


def test_nbval_notebooks_within_budget(request):
    """When nbval executed notebooks in this run, each took less than the time budget (sum of its cells)."""
    seconds_by_notebook = request.config.statelab_nbval_seconds  # collected by the root conftest.py
    ran = {k: v for k, v in seconds_by_notebook.items() if k.startswith(("notebooks/", "labs/"))}
    if not ran:
        pytest.skip("nbval executed no notebook in this run")
    for name, seconds in sorted(ran.items()):
        print(f"{name}: {seconds:.1f} s under nbval")
    slow = {k: round(v, 1) for k, v in ran.items() if v >= TIME_LIMIT_S}
    assert not slow, f"over the {TIME_LIMIT_S:.0f} s budget: {slow}"


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
