"""A class on one machine: N learners at once, each running every notebook and lab solution in its own kernel.

Thirty learners may share one JupyterHub node. This puts ``--learners`` of them (default 8, on whatever cores the
machine has: 2 here) to work at the same time. Each learner runs every notebook in ``notebooks/`` and every lab
solution in ``labs/solutions/`` top to bottom, one after another, each in a fresh kernel of its own, with its own
temporary folder (``TMPDIR``), Jupyter folders and working copy; the servers a notebook starts are its own
(statelab binds 127.0.0.1 on free ports). The kernels run under ``NBGRADER_EXECUTION=autograde``, as nbgrader grades
a lab, so a lab check that is not a pass fails its cell instead of printing NOT YET; a notebook's self-check
fails its cell with an AssertionError anyway.

What it reports: every failure (goal: 0) with the learner, the notebook, the cell, the failing line and, for an
experiment notebook, its measurements (``ev.measurements``); the slowest run; per notebook the median and worst
time; and the files a kernel left in its learner's temporary folder.

A kernel that dies at start with "Address already in use" is Jupyter's own race, not statelab's: jupyter_client
picks free ports for a kernel, releases them, and the kernel binds them a moment later; on a machine where many
programs open ports (here: every learner's servers) another one can take a port in between, and the kernel dies
at start, or hangs in its clean-up while the client blocks for good. Measured with 8 learners over TCP: 4 of about
150 kernel starts failed, and one more hung. So kernels talk to this script over Unix sockets by default
(``--transport ipc``; ``c.KernelManager.transport = "ipc"`` does the same on a JupyterHub node), and
``--transport tcp`` shows the race. A kernel that does not start is started once more and counted apart. Each
learner runs in a thread of its own; a notebook still running after HANG_S seconds has its kernel killed and
counts as a failure.

    python benchmarks/class_on_one_machine.py                      # 8 learners, everything (several minutes)
    python benchmarks/class_on_one_machine.py --learners 2 --only 01_  # a quick look
    python benchmarks/class_on_one_machine.py --out benchmarks/CLASS.md --json class.json

Run it from the repository's root with statelab importable (``pip install -e .`` or ``PYTHONPATH=$PWD``).
Nothing is sent anywhere but 127.0.0.1. Exit status 1 when any run failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from statelab.kernel import jupyter_home

ROOT = Path(__file__).resolve().parent.parent
TRANSPORT = "ipc"  # set by --transport
HANG_S = 300  # a notebook still running after this long is hung: its kernel is killed
RUNNING: dict[int, tuple[str, float, int]] = {}  # learner -> (notebook, started, kernel pid), for the watchdog
FOLDERS = ("notebooks", "labs/solutions")  # labs/*.ipynb are student versions: they stop at "YOUR CODE HERE"


@dataclass
class Run:
    learner: int
    notebook: str
    seconds: float
    ok: bool
    cell: int | None = None      # index of the cell that failed
    error: str = ""              # ename: evalue (first lines)
    source: str = ""             # the failing cell's first line
    left_in_tmp: tuple[str, ...] = ()  # files the kernel left in the learner's TMPDIR
    measurements: str = ""       # a failed experiment notebook's ev.measurements (JSON)
    kernel_retries: int = 0      # 1 when the first kernel did not start


def notebooks(only: str | None) -> list[str]:
    found = [p.relative_to(ROOT).as_posix() for folder in FOLDERS for p in sorted((ROOT / folder).glob("*.ipynb"))]
    if only:
        found = [n for n in found if only in n]
    if not found:
        raise SystemExit(f"no notebook found in {FOLDERS} (filter: {only!r})")
    return found


def learner_env(home: Path) -> dict[str, str]:
    """The environment of one learner's kernels: its own temp folder and Jupyter/IPython folders."""
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TMPDIR": str(home / "tmp"), **jupyter_home(home)}
    env["NBGRADER_EXECUTION"] = "autograde"  # a lab check that is not a pass fails its cell
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


# Run in a failed notebook's kernel: the measurements behind its verdict, when it follows the Evidence contract
# (an experiment notebook keeps its evidence in ``ev``), so a failure comes with its numbers.
DIAGNOSE = """import json as _json
_ev = globals().get("ev")
print("STATELAB-MEASUREMENTS", _json.dumps(getattr(_ev, "measurements", None), default=str))"""
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def kernel_manager(home: Path, transport: str):
    """The learner's kernel manager: over Unix sockets in its runtime folder ("ipc"), or Jupyter's default, TCP
    ports on 127.0.0.1 ("tcp"), which has the port race described above."""
    from jupyter_client.manager import AsyncKernelManager

    if transport == "ipc":
        return AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(home / "runtime" / "kernel-ipc"))
    return AsyncKernelManager(kernel_name="python3")


async def run_one(learner: int, name: str, home: Path, env: dict[str, str], timeout: float) -> Run:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    source = ROOT / name
    work = home / "work" / source.parent.relative_to(ROOT)
    shutil.copytree(source.parent, work, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    nb = nbformat.read(work / source.name, as_version=4)
    client = NotebookClient(nb, km=kernel_manager(home, TRANSPORT), timeout=timeout, kernel_name="python3",
                            shutdown_kernel="graceful", resources={"metadata": {"path": str(work)}})
    tmp = Path(env["TMPDIR"])
    before = set(tmp.rglob("*"))
    start = time.perf_counter()
    run = Run(learner, name, 0.0, ok=True)
    started = False
    try:
        async with client.async_setup_kernel(env=env, cleanup_kc=True):
            started = True
            RUNNING[learner] = (name, time.monotonic(), client.km.provisioner.pid)
            for index, cell in enumerate(nb.cells):
                try:
                    await client.async_execute_cell(cell, index)
                except CellExecutionError:
                    run.ok, run.cell = False, index
                    out = next(o for o in cell.outputs if o.output_type == "error")
                    frames = [ANSI.sub("", line) for line in out.get("traceback", [])]
                    where = [ln.strip() for f in frames for ln in f.splitlines() if ln.lstrip().startswith("---->")]
                    run.error = f"{out.ename}: {out.evalue}"[:600] + (f" at `{where[-1]}`" if where else "")
                    run.source = cell.source.strip().splitlines()[0][:120]
                    probe = nbformat.v4.new_code_cell(DIAGNOSE)
                    nb.cells.append(probe)  # nbclient files a cell's outputs by its index in the notebook
                    try:
                        await client.async_execute_cell(probe, len(nb.cells) - 1)
                    except CellExecutionError:  # no ev in this notebook
                        pass
                    text = "".join(o.get("text", "") for o in probe.outputs if o.output_type == "stream")
                    found = re.search(r"STATELAB-MEASUREMENTS (.*)", text)
                    if found and found.group(1) != "null":
                        run.measurements = found.group(1)[:3000]
                    break
    except Exception as error:  # the kernel did not start, died, or a cell ran past the timeout
        run.ok = False
        run.error = f"{'' if started else 'kernel start: '}{type(error).__name__}: {error}"[:600]
        if RUNNING.pop(learner, None) is None and started:
            run.error = f"hung: the watchdog killed the kernel after {HANG_S:.0f} s; {run.error}"
    RUNNING.pop(learner, None)
    run.seconds = time.perf_counter() - start
    await asyncio.sleep(0.5)  # a kernel's atexit clean-up finishes as it exits
    left = sorted(set(tmp.rglob("*")) - before)
    run.left_in_tmp = tuple(str(p.relative_to(tmp)) for p in left)
    for p in reversed(left):  # the next notebook starts with a clean folder
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink()
    status = "ok" if run.ok else f"FAILED cell {run.cell}: {run.error[:200]}"
    print(f"  learner {learner} {name:42s} {run.seconds:5.1f} s  {status}", flush=True)
    return run


async def learner(number: int, names: list[str], base: Path, timeout: float, stagger: bool) -> list[Run]:
    home = base / f"learner-{number}"
    env = learner_env(home)
    order = names[number % len(names):] + names[:number % len(names)] if stagger else names
    runs = []
    for name in order:
        run = await run_one(number, name, home, env, timeout)
        if run.error.startswith("kernel start:"):  # Jupyter's own port race (see the module docstring): once more
            print(f"  learner {number} {name}: the kernel did not start; trying once more", flush=True)
            run = await run_one(number, name, home, env, timeout)
            run.kernel_retries = 1
        runs.append(run)
    return runs


def learner_thread(*args) -> list[Run]:
    """One learner in a thread of its own with its own event loop: a learner that blocks blocks only itself."""
    return asyncio.run(learner(*args))


def watchdog(futures: list) -> None:
    """Kill the kernel of a notebook that has run past HANG_S, so its learner moves on (reported as hung)."""
    while not all(f.done() for f in futures):
        time.sleep(1)
        for number, (name, since, pid) in list(RUNNING.items()):
            if time.monotonic() - since > HANG_S and RUNNING.pop(number, None):
                print(f"  learner {number} {name}: hung for {HANG_S:.0f} s, killing its kernel {pid}", flush=True)
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


def machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    return (f"{platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()} · "
            f"load average before the run {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def report(runs: list[Run], learners: int, wall: float, header: str) -> str:
    failed = [r for r in runs if not r.ok]
    slowest = max(runs, key=lambda r: r.seconds)
    lines = [
        f"# A class on one machine: {learners} learners at once", "",
        header, "",
        f"- runs: **{len(runs)}** ({learners} learners x {len(runs) // learners} notebooks and lab solutions), "
        f"wall time {wall:.0f} s",
        f"- failures: **{len(failed)}** (goal: 0), of which {sum('kernel start:' in r.error for r in failed)} "
        f"kernels that did not start twice in a row; kernels that did not start at the first try: "
        f"{sum(r.kernel_retries for r in runs)} (retried once)",
        f"- slowest run: **{slowest.seconds:.1f} s** ({slowest.notebook}, learner {slowest.learner})",
        f"- median run: {statistics.median(r.seconds for r in runs):.1f} s", "",
        "| notebook | median s | worst s | failures |", "|---|---:|---:|---:|",
    ]
    for name in dict.fromkeys(r.notebook for r in runs):
        mine = [r for r in runs if r.notebook == name]
        times = [r.seconds for r in mine]
        lines.append(f"| {name} | {statistics.median(times):.1f} | {max(times):.1f} | "
                     f"{sum(not r.ok for r in mine)} |")
    if failed:
        lines += ["", "## Failures", "", "| learner | notebook | cell | error |", "|---|---|---:|---|"]
        for r in failed:
            error = r.error.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {r.learner} | {r.notebook} | {r.cell} `{r.source}` | {error} |")
        measured = [r for r in failed if r.measurements]
        if measured:
            lines += ["", "The measurements of each failed experiment notebook (`ev.measurements`):", ""]
            lines += [f"- learner {r.learner}, {r.notebook}: `{r.measurements}`" for r in measured]
    left = [r for r in runs if r.left_in_tmp]
    lines += ["", f"Files left in a learner's temporary folder after a notebook: {len(left)} runs"
              + (":" if left else ".")]
    for r in left[:20]:
        lines.append(f"- learner {r.learner}, {r.notebook}: {', '.join(r.left_in_tmp[:5])}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=8)
    parser.add_argument("--only", help="run only the notebooks whose path contains this text")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per cell before it counts as failed")
    parser.add_argument("--stagger", action="store_true",
                        help="each learner starts at a different notebook (default: the whole class in step)")
    parser.add_argument("--transport", choices=("ipc", "tcp"), default="ipc",
                        help="how the orchestrator talks to kernels: Unix sockets (default) or Jupyter's TCP ports")
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    parser.add_argument("--json", type=Path, help="write every run as JSON here")
    args = parser.parse_args(argv)

    global TRANSPORT
    TRANSPORT = args.transport
    names = notebooks(args.only)
    header = machine() + f" · kernels over {TRANSPORT}"
    print(f"{args.learners} learners x {len(names)} notebooks; {header}", flush=True)
    base = Path(tempfile.mkdtemp(prefix="statelab-class-"))
    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=args.learners) as pool:
            futures = [pool.submit(learner_thread, i, names, base, args.timeout, args.stagger)
                       for i in range(args.learners)]
            watchdog(futures)
            runs = [r for f in futures for r in f.result()]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    text = report(runs, args.learners, time.perf_counter() - start, header)
    print("\n" + text)
    if args.out:  # keep the figures benchmarks/class_on_a_hub.py wrote below its marker
        old = args.out.read_text() if args.out.exists() else ""
        marker = "<!-- class_on_a_hub.py:"
        args.out.write_text(text.rstrip() + "\n\n" + old[old.index(marker):] if marker in old else text)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in runs], indent=1))
    return 1 if any(not r.ok for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
