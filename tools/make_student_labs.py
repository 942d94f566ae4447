"""Make the student labs (labs/*.ipynb) from the solutions (labs/solutions/*.ipynb).

    python tools/make_student_labs.py          # write labs/NN_name.ipynb for every solution
    python tools/make_student_labs.py --check  # write nothing; exit 1 listing labs that differ

What changes, and nothing else (it is what ``nbgrader generate_assignment`` does to a cell):

* every region from a ``### BEGIN SOLUTION`` line to its ``### END SOLUTION`` line becomes
  ``# YOUR CODE HERE`` and ``raise NotImplementedError()``, indented like the BEGIN line;
  a solution cell without a region becomes that stub whole (markdown: ``YOUR ANSWER HERE``);
* outputs and execution counts are cleared;
* links written for labs/solutions/ (``../../notebooks/...``) are rewritten for labs/.

Cell ids and metadata (the nbgrader marks included) are kept, so a test can compare cells one by one.
A region outside a cell marked ``"solution": true``, a nested BEGIN, or a BEGIN without END is an error.
Needs only the standard library and nbformat.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "labs" / "solutions"
STUDENT = ROOT / "labs"
BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
TEXT_STUB = "YOUR ANSWER HERE"


class MarkupError(ValueError):
    """The solution markup of a notebook is broken; the message names the cell."""


def is_solution(cell: nbformat.NotebookNode) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution", False))


def strip_solution(source: str, where: str) -> tuple[str, bool]:
    """``source`` with each solution region replaced by the stub; and whether there was one."""
    out: list[str] = []
    inside = found = False
    for line in source.split("\n"):
        if BEGIN in line:
            if inside:
                raise MarkupError(f"{where}: nested {BEGIN}")
            inside = found = True
            indent = re.match(r"\s*", line).group(0)
            out += [indent + stub for stub in CODE_STUB]
        elif END in line:
            if not inside:
                raise MarkupError(f"{where}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise MarkupError(f"{where}: {BEGIN} without {END}")
    return "\n".join(out), found


def student_version(solution: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The student notebook for one solution notebook (a new object; the input is not changed)."""
    nb = copy.deepcopy(solution)
    for i, cell in enumerate(nb.cells):
        where = f"{name}, cell {i} ({cell.get('id', '?')})"
        if cell.cell_type == "code":
            cell.source, found = strip_solution(cell.source, where)
            if found and not is_solution(cell):
                raise MarkupError(f"{where}: a solution region in a cell not marked as a solution cell")
            if is_solution(cell) and not found:
                cell.source = "\n".join(CODE_STUB)
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            if BEGIN in cell.source:
                raise MarkupError(f"{where}: solution regions belong in code cells")
            if is_solution(cell):
                cell.source = TEXT_STUB
            cell.source = cell.source.replace("](../../notebooks/", "](../notebooks/")
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    """The file text, exactly as ``nbformat.write`` would save it."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any student lab differs")
    parser.add_argument("--solutions", type=Path, default=SOLUTIONS, help=f"default: {SOLUTIONS.relative_to(ROOT)}")
    parser.add_argument("--student", type=Path, default=STUDENT, help=f"default: {STUDENT.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    solutions, student = args.solutions.resolve(), args.student.resolve()
    sources = sorted(solutions.glob("*.ipynb"))
    if not sources:
        print(f"no solution notebooks in {solutions}", file=sys.stderr)
        return 2
    drifted: list[str] = []
    for path in sources:
        target = student / path.name
        try:
            text = render(student_version(nbformat.read(path, as_version=4), path.name))
        except MarkupError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        if args.check:
            drifted.append(_shown(target))
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {_shown(target)}")
    extra = sorted(p.name for p in student.glob("*.ipynb") if not (solutions / p.name).exists())
    if extra:
        print(f"student labs without a solution: {', '.join(extra)}", file=sys.stderr)
        drifted += [f"{_shown(student / name)} (no solution)" for name in extra]
    if args.check and drifted:
        print("student labs differ from what the solutions make (run python tools/make_student_labs.py):",
              file=sys.stderr)
        for name in drifted:
            print(f"  {name}", file=sys.stderr)
        return 1
    if args.check:
        print(f"{len(sources)} student labs match their solutions")
    return 1 if extra and not args.check else 0


if __name__ == "__main__":
    sys.exit(main())
