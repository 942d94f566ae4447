"""Five row notebooks at once on this machine: each one's verdicts, and whether its self-check passed.

A verdict holds under the conditions it was measured in, and a crowded machine is another condition: it may give
another verdict, and that is a finding, not an error. Self-checks assert mechanisms (counts, statuses), so they must
pass either way. This runs the notebooks at once, each in a kernel of its own on a temporary copy, and prints both:

    python benchmarks/crowded_verdicts.py            # 05, 03, 04, 10 and 09 at once
    python benchmarks/crowded_verdicts.py 05 07      # the ones you name
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ("05", "03", "04", "10", "09")
VERDICT = re.compile(r"The \*\*(stateful|stateless)\*\* half[^:]*: \*\*([a-z ]+)\*\*")


def run(number: str) -> str:
    (path,) = (ROOT / "notebooks").glob(f"{number}_*.ipynb")
    nb = nbformat.read(path, as_version=4)
    began, error = time.monotonic(), ""
    with tempfile.TemporaryDirectory(prefix="crowd-") as folder:
        shutil.copy(path, folder)
        try:
            NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": folder}}).execute()
        except Exception as e:  # a cell failed: say which error, and go on with the others
            error = (str(e).strip().splitlines() or [type(e).__name__])[-1][:200]
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "\n".join(o.get("text", "") + "".join(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    verdicts = ", ".join(f"{half} {verdict}" for half, verdict in VERDICT.findall(text)) or "none rendered"
    checked = "passed" if re.search(r"[Ss]elf-check passed", text) else "did not pass"
    return (f"{path.stem}: {time.monotonic() - began:.1f} s; verdicts: {verdicts}; self-check {checked}"
            + (f"; error: {error}" if error else ""))


def main(numbers: list[str]) -> int:
    numbers = numbers or list(DEFAULT)
    with ThreadPoolExecutor(len(numbers)) as pool:
        for line in pool.map(run, numbers):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
