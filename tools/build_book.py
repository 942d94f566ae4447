"""Build the statelab book: every notebook and lab, executed here and now, as a static website (Jupyter Book 1).

    python tools/build_book.py                 # execute everything, then build into _build/book/html
    python tools/build_book.py --out DIR       # build into DIR/html (DIR/source holds what Sphinx read)
    python tools/build_book.py --ref v0.1.0    # the version the pages' Binder links launch (default: this commit)

What a reader gets:

* one page per notebook (``notebooks/``), executed on the build machine by a fresh kernel each, with its plots,
  its computed verdicts and its dashboards as static widgets (the widget state nbclient saves);
* the labs as learners get them (``labs/``, not executed: the tasks are theirs to do), and in an instructors'
  part the solutions (``labs/solutions/``), executed, every check cell saying PASS;
* at the top of every executed page, when and on what machine its numbers were measured, and a Binder link that
  runs the same notebook live at the same version.

Why Jupyter Book 1 (Sphinx and MyST-NB) and not 2 (mystmd): MyST-NB renders a notebook's saved widget state with
the ipywidgets HTML manager, so the dashboards show as they were; mystmd (Jupyter Book 2) shows a widget only
with a live kernel and prints "a Jupyter kernel connection is required" in its place (mystmd issue 449, open).
The HTML manager is vendored in ``book/_static/vendor/`` (see its README): the pages load nothing from a CDN.

Execution is the build's, not CI's business twice: ``build(executed=...)`` takes notebooks someone already ran
(the test suite passes the ones its harness executed), so CI executes each notebook once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"                       # _config.yml, intro.md, instructors.md, _static/
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "labs" / "solutions").glob("*.ipynb"))
STUDENT_LABS = sorted((ROOT / "labs").glob("*.ipynb"))
EXECUTED = NOTEBOOKS + SOLUTIONS           # what the book shows with outputs
HEADER_TAG = "statelab-measured"           # the tag of the cell this tool puts on top of an executed page
CELL_TIMEOUT_S = 120


class BookError(Exception):
    """Why the book cannot be built, in words a reader can act on (main prints it without a traceback)."""


def repository_url() -> str:
    """The repository's address, from pyproject.toml (the one place it lives)."""
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(r'^Repository\s*=\s*"([^"]+)"', text, re.M).group(1).rstrip("/")


def current_ref() -> str:
    """This checkout's commit (a fixed version: every Binder launch of it shares one built image), or HEAD."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True)
        return out.stdout.strip() or "HEAD"
    except (OSError, subprocess.SubprocessError):
        return "HEAD"


def machine() -> str:
    """One line about the machine that executes the notebooks, for the reader who compares numbers."""
    cpus = os.cpu_count() or 0
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        memory = f", {kib / 1024 / 1024:.0f} GiB of memory"
    except (OSError, AttributeError):
        memory = ""
    return (f"{platform.system()} {platform.machine()}, {cpus} CPU{'s' * (cpus != 1)}{memory}, "
            f"Python {platform.python_version()}")


# --- executing ------------------------------------------------------------------------------------------------


def execute(path: Path, workdir: Path) -> nbformat.NotebookNode:
    """Run ``path`` top to bottom in a fresh kernel, on a copy of its folder in ``workdir`` (a notebook may write
    files beside itself), saving the widget state; raise nbclient's CellExecutionError on an error."""
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    # (not the journal of your own runs, .statelab-evidence: notebook 12 would show your predictions to readers)
    shutil.copytree(path.parent, workdir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", ".statelab-evidence"))
    nb = nbformat.read(workdir / path.name, as_version=4)
    # Unix sockets, not TCP ports: a notebook's servers starting on free ports cannot take the kernel's.
    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(workdir / ".kernel-ipc"))
    try:
        NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, store_widget_state=True,
                       resources={"metadata": {"path": str(workdir)}}).execute()
    finally:  # nbclient shuts down only a kernel manager it made itself
        if km.has_kernel:
            km.shutdown_kernel()
    return nb


#: The row notebooks whose runs notebook 12's scoreboard reads back from the journal: executed before 12, in order.
ROW_NOTEBOOKS = tuple(f"{n:02d}_" for n in range(3, 12))
CAPSTONE = "12_"


def _phase(path: Path) -> int:
    """0: the rows (03-11), 1: everything else but 12, 2: notebook 12, which reads what the rows recorded."""
    if path.parent.name == "notebooks" and path.name.startswith(ROW_NOTEBOOKS):
        return 0
    return 2 if path.parent.name == "notebooks" and path.name.startswith(CAPSTONE) else 1


def execute_all(paths: list[Path], workers: int = 2) -> dict[str, nbformat.NotebookNode]:
    """Every notebook in ``paths`` executed, ``workers`` kernels at a time; keys are paths from the root.

    One evidence journal for the whole build (``STATELAB_EVIDENCE_DIR``, a folder of this build's own): the rows
    (03-11) run first, in order, and record their runs there; notebook 12 runs after them all, so its scoreboard
    and corrected table on the page are filled from this build's runs, not "not measured yet"."""
    with tempfile.TemporaryDirectory(prefix="statelab-book-") as tmp, ThreadPoolExecutor(workers) as pool:
        journal = Path(tmp) / "journal"
        journal.mkdir()
        before = os.environ.get("STATELAB_EVIDENCE_DIR")
        os.environ["STATELAB_EVIDENCE_DIR"] = str(journal)  # the kernels started below inherit it
        try:
            futures = {}
            for phase in (0, 1, 2):
                batch = {p: pool.submit(execute, p, Path(tmp) / f"{i:02d}-{p.stem}")
                         for i, p in enumerate(paths) if _phase(p) == phase}
                futures.update(batch)
                if phase == 0:
                    for future in batch.values():  # 12 must find every row's run
                        future.exception()
            for future in futures.values():  # every kernel started while the journal is set
                future.exception()
        finally:
            if before is None:
                os.environ.pop("STATELAB_EVIDENCE_DIR", None)
            else:
                os.environ["STATELAB_EVIDENCE_DIR"] = before
        executed, failed = {}, []
        for path, future in futures.items():
            name = path.relative_to(ROOT).as_posix()
            try:
                executed[name] = future.result()
            except Exception as error:  # reported together, by notebook, without nbclient's traceback wall
                lines = [line for line in str(error).splitlines() if line.strip()]
                failed.append(f"{name}: {type(error).__name__}: {lines[-1] if lines else ''}")
        if failed:
            raise BookError("these notebooks failed, so the book would show a broken run:\n  " + "\n  ".join(failed))
        return executed

def execute_capstone(journals: list[Path], workdir: Path) -> nbformat.NotebookNode:
    """Notebook 12 executed again with one journal holding the runs recorded in ``journals`` (the rows' own
    ``.statelab-evidence`` folders, in row order): for a book built from notebooks someone else executed, each in
    its own copy (the test suite's harness), so that 12's page shows those runs instead of "not measured yet"."""
    journal = workdir / "journal"
    journal.mkdir(parents=True, exist_ok=True)
    for folder in journals:
        for saved in sorted(Path(folder).glob("*.json")):
            shutil.copyfile(saved, journal / saved.name)
    capstone = next(p for p in NOTEBOOKS if p.name.startswith(CAPSTONE))
    before = os.environ.get("STATELAB_EVIDENCE_DIR")
    os.environ["STATELAB_EVIDENCE_DIR"] = str(journal)
    try:
        return execute(capstone, workdir / capstone.stem)
    finally:
        if before is None:
            os.environ.pop("STATELAB_EVIDENCE_DIR", None)
        else:
            os.environ["STATELAB_EVIDENCE_DIR"] = before


def save_executed(executed: dict[str, nbformat.NotebookNode], folder: Path) -> None:
    """Keep the executed notebooks (``folder/<path from the root>``): ``--executed folder`` builds from them again."""
    for name, nb in executed.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        if (folder / name).resolve() != (ROOT / name).resolve():
            nbformat.write(nb, folder / name)


def load_executed(folder: Path) -> dict[str, nbformat.NotebookNode]:
    """Notebooks executed earlier, saved by :func:`save_executed`."""
    return {p.relative_to(ROOT).as_posix(): nbformat.read(folder / p.relative_to(ROOT), as_version=4)
            for p in EXECUTED if (folder / p.relative_to(ROOT)).exists()}


# --- staging: what Sphinx reads ---------------------------------------------------------------------------------


def measured_at(nb: nbformat.NotebookNode) -> str:
    """When the notebook's first cell ran (nbclient records it), as 'YYYY-MM-DD HH:MM UTC'."""
    for cell in nb.cells:
        stamp = cell.get("metadata", {}).get("execution", {}).get("iopub.execute_input")
        if stamp:
            when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(dt.timezone.utc)
            return when.strftime("%Y-%m-%d %H:%M UTC")
    raise ValueError("the notebook was not executed by nbclient: no cell has an execution time")


def binder_url(name: str, ref: str) -> str:
    """The Binder launch of ``name`` (a path from the root) at version ``ref``, opened in JupyterLab."""
    owner_repo = repository_url().split("github.com/", 1)[1]
    return f"https://mybinder.org/v2/gh/{owner_repo}/{ref}?urlpath=lab/tree/{name}"


def header_cell(name: str, nb: nbformat.NotebookNode | None, ref: str, where: str) -> nbformat.NotebookNode:
    """The note on top of a page: when and where its numbers were measured, and how to run it live."""
    live = f"[run it live on Binder]({binder_url(name, ref)}) (version `{ref[:12]}`), or on your own machine " \
           f"(the README's quick start)"
    if nb is None:
        text = (f"This is the learner's version of the lab, not executed: the tasks are yours. To do them, {live}. "
                f"The solutions, executed, are in the instructors' part.")
    else:
        text = (f"**Measured {measured_at(nb)} on {where}.** Every number, chart and verdict on this page was "
                f"computed when the notebook ran there; on your machine they will differ, and the verdicts are "
                f"computed again from your numbers. To change the experiments, {live}.")
    if nb is not None and Path(name).name.startswith(CAPSTONE) and Path(name).parent.name == "notebooks":
        text += (" The scoreboard and the corrected table on this page were filled by the build, from its own runs "
                 "of notebooks 03 to 11 (executed in that order, just before this one); no reader made them, and the "
                 "build answers no prediction: in your own copy they fill from your runs and your predictions.")
    cell = nbformat.v4.new_markdown_cell(f"```{{note}}\n{text}\n```")
    cell.metadata["tags"] = [HEADER_TAG]
    return cell


LINK = re.compile(r"\]\((?!https?:|mailto:|#)([^)\s]+)\)")
OUTPUT_LINK = re.compile(r"""(\]\(|href=["'])((?:\.\./)*[\w/.-]+\.ipynb)(?=[)#"'])""")


def rewrite_links(nb: nbformat.NotebookNode, name: str, staged: set[str], ref: str) -> None:
    """A link to a repository file that is not a page of the book (``../statelab/topology/balancer.py``) points
    to that file in the repository at ``ref``; links between pages stay relative (Sphinx resolves them)."""
    folder = Path(name).parent

    def fix(match: re.Match) -> str:
        target, _, anchor = match.group(1).partition("#")
        resolved = os.path.normpath(folder / target).replace(os.sep, "/")
        if resolved in staged or resolved.startswith(".."):
            return match.group(0)
        return f"]({repository_url()}/blob/{ref}/{resolved}{'#' + anchor if anchor else ''})"

    def page_link(match: re.Match) -> str:  # an output's link to another notebook: to that notebook's page
        target = os.path.normpath(folder / match.group(2)).replace(os.sep, "/")
        return match.group(1) + match.group(2)[:-len(".ipynb")] + ".html" if target in staged else match.group(0)

    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = LINK.sub(fix, cell.source)
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/markdown" in data:  # rendered as MyST, like a markdown cell: its .ipynb links resolve as pages
                data["text/markdown"] = LINK.sub(fix, data["text/markdown"])
            if "text/html" in data:
                data["text/html"] = OUTPUT_LINK.sub(page_link, data["text/html"])
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for model in state.values():  # the dashboards' and scoreboards' HTML widgets link to notebooks too
        values = model.get("state", {})
        for key, value in values.items():
            if isinstance(value, str) and ".ipynb" in value:
                values[key] = OUTPUT_LINK.sub(page_link, value)


LOOPBACK_LINK = re.compile(r'<a\s[^>]*href="https?://127\.0\.0\.1[:/][^"]*"[^>]*>(.*?)</a>', re.S)
SNAPSHOT_NOTE = ('<div style="font-size:12px; font-style:italic; margin:2px 0 6px 0">A snapshot of this dashboard '
                 'as the run left it: its buttons answer only in a live notebook. <a href="{binder}">Interactive on '
                 'Binder</a>.</div>')


def freeze_dashboards(nb: nbformat.NotebookNode, binder: str) -> int:
    """Make the saved dashboards honest snapshots: links to the run's 127.0.0.1 servers (dead on a book page)
    become plain text, and each dashboard's title says it is a snapshot, interactive on Binder. Returns how many
    dashboards it marked."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    marked = 0
    for model in state.values():
        values = model.get("state", {})
        value = values.get("value")
        if not isinstance(value, str):
            continue
        value = LOOPBACK_LINK.sub(lambda m: f"<span>{m.group(1)}</span>", value)
        if "statelab dashboard" in value and "Interactive on Binder" not in value:
            value += SNAPSHOT_NOTE.format(binder=html.escape(binder, quote=True))
            marked += 1
        values["value"] = value
    return marked


MERMAID = re.compile(r"^```mermaid\n(.*?)^```[ \t]*$", re.S | re.M)


def draw_mermaid(nb: nbformat.NotebookNode) -> int:
    """Turn each mermaid fence of a markdown cell, or of a cell's Markdown output (``sl.ui.trace``'s traces),
    into ``<pre class="mermaid">``, which the vendored mermaid.js draws in the reader's browser (JupyterLab
    draws the fences itself); return how many."""
    def pre(m: re.Match) -> str:
        return f'<pre class="mermaid">\n{html.escape(m.group(1))}</pre>'

    count = 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source, n = MERMAID.subn(pre, cell.source)
            count += n
        for output in cell.get("outputs", []):
            markdown = output.get("data", {}).get("text/markdown")
            if isinstance(markdown, str) and MERMAID.search(markdown):
                output.data["text/html"], n = MERMAID.subn(pre, markdown)  # the book shows the HTML version
                count += n
    return count


def toc(pages: list[str]) -> str:
    """The table of contents: the notebooks, the labs, and the instructors' part, in file order."""
    def chapters(prefix: str, extra: tuple[str, ...] = ()) -> str:
        files = [*extra, *(p for p in pages if p.startswith(prefix) and p.count("/") == prefix.count("/"))]
        return "".join(f"      - file: {Path(f).with_suffix('').as_posix()}\n" for f in files)

    return ("format: jb-book\nroot: intro\nparts:\n"
            f"  - caption: Notebooks\n    chapters:\n{chapters('notebooks/')}"
            f"  - caption: Labs\n    chapters:\n{chapters('labs/', ('labs/README.md',))}"
            f"  - caption: For instructors\n    chapters:\n"
            f"{chapters('labs/solutions/', ('instructors.md',))}")


def stage(source: Path, executed: dict[str, nbformat.NotebookNode], ref: str, where: str) -> list[str]:
    """Write into ``source`` what Sphinx reads; return the pages (paths from the root)."""
    missing = [p.relative_to(ROOT).as_posix() for p in EXECUTED if p.relative_to(ROOT).as_posix() not in executed]
    if missing:
        raise BookError(f"not executed, so the book would lack them: {', '.join(missing)}")
    shutil.copytree(BOOK, source, dirs_exist_ok=True)
    pages = [p.relative_to(ROOT).as_posix() for p in NOTEBOOKS + STUDENT_LABS + SOLUTIONS]
    staged = {*pages, "labs/README.md"}
    (source / "labs").mkdir(parents=True, exist_ok=True)
    readme = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell((ROOT / "labs" / "README.md").read_text())])
    rewrite_links(readme, "labs/README.md", staged, ref)
    (source / "labs" / "README.md").write_text(readme.cells[0].source)
    for name in pages:
        nb = executed.get(name)
        page = nbformat.from_dict(json.loads(json.dumps(nb))) if nb is not None else \
            nbformat.read(ROOT / name, as_version=4)
        page.cells.insert(1, header_cell(name, nb, ref, where))  # after the title: the page keeps its name
        rewrite_links(page, name, staged, ref)
        freeze_dashboards(page, binder_url(name, ref))
        draw_mermaid(page)
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(page, source / name)
    (source / "_toc.yml").write_text(toc(pages))
    return pages


# --- building ---------------------------------------------------------------------------------------------------


def build(out: Path, executed: dict[str, nbformat.NotebookNode] | None = None, ref: str | None = None,
          where: str | None = None) -> Path:
    """Execute (unless ``executed`` is given), stage into ``out/source`` and build ``out/html``; return it."""
    ref = ref or current_ref()
    where = where or machine()
    if executed is None:
        executed = execute_all(EXECUTED)
    save_executed(executed, out / "executed")
    source = out / "source"
    shutil.rmtree(source, ignore_errors=True)
    stage(source, executed, ref, where)
    shutil.rmtree(out / "html", ignore_errors=True)
    # Sphinx through Jupyter Book's command line; -W: a warning (a broken link, a missing page) fails the build.
    command = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
               "build", str(source), "--path-output", str(out / "build"), "-W", "-n", "--keep-going", "-q"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        problems = [line for line in (result.stdout + result.stderr).splitlines() if "WARNING" in line or
                    "ERROR" in line or "Error" in line] or (result.stdout + result.stderr).splitlines()[-40:]
        raise BookError("jupyter-book build failed:\n" + "\n".join(problems))
    shutil.move(out / "build" / "_build" / "html", out / "html")
    shutil.rmtree(out / "build", ignore_errors=True)
    return out / "html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "book", help="output folder")
    parser.add_argument("--ref", help="the version the Binder links launch (a tag or commit; default: HEAD's)")
    parser.add_argument("--executed", type=Path, help="build from notebooks executed before (OUT/executed of an "
                        "earlier build) instead of executing them again")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        import jupyter_book  # noqa: F401
    except ImportError:
        print("jupyter-book is not installed: pip install -r requirements-book.txt", file=sys.stderr)
        return 2
    if args.executed and not args.executed.is_dir():
        print(f"--executed {args.executed}: no such folder (an earlier build's OUT/executed)", file=sys.stderr)
        return 2
    try:
        executed = load_executed(args.executed.resolve()) if args.executed else None
        html = build(args.out.resolve(), executed=executed, ref=args.ref)
    except BookError as error:
        print(f"the book was not built: {error}", file=sys.stderr)
        return 1
    size = sum(f.stat().st_size for f in html.rglob("*") if f.is_file())
    print(f"built {html / 'index.html'} in {time.perf_counter() - started:.0f} s: "
          f"{sum(1 for _ in html.rglob('*.html'))} pages, {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
