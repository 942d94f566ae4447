"""tools/honest_times.py: minutes computed from the material (issue 21), counted the way the issue says."""

from __future__ import annotations

import json

from tools import honest_times as ht


def _notebook(tmp_path, *markdown: str):
    cells = [{"cell_type": "markdown", "id": f"c{i}", "metadata": {}, "source": text}
             for i, text in enumerate(markdown)]
    cells.insert(1, {"cell_type": "code", "id": "code", "metadata": {}, "outputs": [], "execution_count": None,
                     "source": "word " * 500})  # code is not prose
    path = tmp_path / "99_example.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_core_minutes_count_prose_up_to_going_further_run_time_exercises_and_quiz(tmp_path):
    path = _notebook(tmp_path, "# 99 · Title\n\n" + "word " * 298,
                     "## Exercises\n\n- **Try:** one\n- **Try:** two\n\n```mermaid\nsequenceDiagram\n```",
                     "## Going further\n\n" + "deep " * 300 + "\n\n## Exercises\n\n1. three")
    t = ht.timing(path, questions=3, run_seconds=30)
    assert (t.core_words, t.core_exercises, t.exercises) == (305, 2, 3)  # 300 + Exercises, Try one, Try two
    assert t.core_minutes == 16  # ceil(305 / 150 + 0.5 + 2 * 5 + 3 * 1) = ceil(15.53)
    assert t.full_minutes == 23  # ceil((305 + 305) / 150 + 0.5 + 3 * 5 + 3) = ceil(22.57)


def test_every_notebook_is_timed_and_the_table_states_both_paths_in_hours():
    timings = ht.all_timings()
    assert len(timings) >= 14 and all(t.core_words > 0 and t.questions >= 3 for t in timings)
    assert "core path" in ht.table(timings) and "full path" in ht.table(timings)


def _bounds(t: ht.Timing) -> tuple[range, range]:
    """The minutes a notebook may state (core path, full path): computed with no run time up to the harness's
    budget (30 s)."""
    t.run_seconds = 0.0
    low = (t.core_minutes, t.full_minutes)
    t.run_seconds = 30.0
    return range(low[0], t.core_minutes + 1), range(low[1], t.full_minutes + 1)


def test_stated_minutes_are_the_computed_ones():
    import re

    readme = (ht.ROOT / "README.md").read_text()
    in_readme = {n: int(m) for n, m in re.findall(r"\b(\d\d) \((\d+)\)", readme)}
    timings = ht.all_timings()
    for t in timings:
        number, (core, full) = t.name[:2], _bounds(t)
        cell = json.loads((ht.ROOT / "notebooks" / f"{t.name}.ipynb").read_text())["cells"][0]
        stated = re.search(r"\*\*Time:\*\* about (\d+) minutes on the core path, (\d+) with", "".join(cell["source"]))
        if stated:
            assert int(stated.group(1)) in core and int(stated.group(2)) in full, \
                f"{t.name} states {stated.groups()} min; computed core {core}, full {full}"
        got = in_readme.get(number)
        assert got in core, f"README gives {number} {got} min on the core path; computed {core}"
    hours = re.search(r"about\s+([\d.]+)\s+hours\s+of\s+notebooks\s+and", readme)
    core_hours = sum(t.core_minutes for t in ht.all_timings()) / 60  # run time left out: a floor
    assert hours and core_hours <= float(hours.group(1)) <= core_hours + 0.3, (hours, core_hours)
