"""How long each notebook really takes, computed from the material (issue 21): the numbers a stated time must match.

    minutes = prose words / WORDS_PER_MINUTE + run seconds / 60 + exercises * MINUTES_PER_EXERCISE
              + quiz questions * MINUTES_PER_QUESTION

The core path counts the prose up to a "Going further" heading (everything when there is none), the exercises
before it, and the quiz; the full path counts everything. Prose is the markdown a learner reads: code, diagrams
(mermaid fences) and HTML tags are not counted; the rendered evidence is not counted either (it varies per run),
so the figures are a floor. Run seconds are measured ones (``--seconds FILE``: a JSON object of notebook name to
seconds, e.g. from the notebook harness's summary); without them, run time is left out and the table says so.

    python tools/honest_times.py                      # a table of the notebooks (labs: not yet)
    python tools/honest_times.py --seconds runs.json  # with measured run times
    python tools/honest_times.py --write              # write the computed minutes into the notebooks and README
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS_PER_MINUTE = 150  # reading prose that teaches, for a student who knows basic Python and HTTP
MINUTES_PER_EXERCISE = 5  # try it, look at the answer
MINUTES_PER_QUESTION = 1  # a quiz question with its feedback
CORE_WORDS = 1100  # the core path's prose budget per notebook (issue 21)
GOING_FURTHER = re.compile(r"^#+\s*Going further", re.M | re.I)
WORD = re.compile(r"[A-Za-z0-9][\w'’.-]*")


@dataclass
class Timing:
    name: str
    core_words: int
    words: int
    core_exercises: int
    exercises: int
    questions: int
    run_seconds: float | None

    def _minutes(self, words: int, exercises: int) -> int:
        run = (self.run_seconds or 0.0) / 60
        return math.ceil(words / WORDS_PER_MINUTE + run + exercises * MINUTES_PER_EXERCISE
                         + self.questions * MINUTES_PER_QUESTION)

    @property
    def core_minutes(self) -> int:
        return self._minutes(self.core_words, self.core_exercises)

    @property
    def full_minutes(self) -> int:
        return self._minutes(self.words, self.exercises)


def prose_words(markdown: str) -> int:
    """Words a learner reads in one markdown cell (no code fences, diagrams or tags)."""
    text = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    return len(WORD.findall(text))


def exercises_in(markdown: str) -> int:
    """The exercises a cell sets: the bullets or numbered items of an "Exercises" section (not its answers)."""
    if not re.search(r"^#+\s*Exercises?\b", markdown, re.M):
        return 0
    return len(re.findall(r"^(?:[-*]|\d+\.)\s", markdown, re.M))


def timing(path: Path, questions: int, run_seconds: float | None = None) -> Timing:
    cells = json.loads(path.read_text())["cells"]
    core = words = core_ex = ex = 0
    further = False
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        further = further or bool(GOING_FURTHER.search(text))
        n, e = prose_words(text), exercises_in(text)
        words, ex = words + n, ex + e
        if not further:
            core, core_ex = core + n, core_ex + e
    return Timing(path.stem, core, words, core_ex, ex, questions, run_seconds)


def all_timings(seconds: dict[str, float] | None = None) -> list[Timing]:
    quizzes = json.loads((ROOT / "statelab" / "ui" / "quizzes.json").read_text())
    paths = sorted((ROOT / "notebooks").glob("*.ipynb"))  # labs are mostly writing code: not timed by words
    out = []
    for path in paths:
        number = path.stem.split("_")[0]
        questions = len(quizzes.get(number, []))
        out.append(timing(path, questions, (seconds or {}).get(path.stem)))
    return out


def table(timings: list[Timing]) -> str:
    rows = [f"{'material':34} {'core words':>10} {'all words':>9} {'exercises':>9} {'quiz':>4} {'run s':>6} "
            f"{'core min':>8} {'full min':>8}"]
    for t in timings:
        run = f"{t.run_seconds:6.1f}" if t.run_seconds is not None else f"{'?':>6}"
        over = "  over the core budget" if t.core_words > CORE_WORDS else ""
        rows.append(f"{t.name:34} {t.core_words:10} {t.words:9} {t.exercises:9} {t.questions:4} {run} "
                    f"{t.core_minutes:8} {t.full_minutes:8}{over}")
    core = sum(t.core_minutes for t in timings)
    full = sum(t.full_minutes for t in timings)
    rows.append(f"core path {core / 60:.1f} h, full path {full / 60:.1f} h "
                f"({WORDS_PER_MINUTE} words a minute, {MINUTES_PER_EXERCISE} min an exercise, "
                f"{MINUTES_PER_QUESTION} min a quiz question" +
                ("; run time not measured" if any(t.run_seconds is None for t in timings) else "") + ")")
    return "\n".join(rows)


STATED = re.compile(r"\*\*Time:\*\* about \d+ minutes on the core path, \d+ with \*Going further\*\.")
LAB_MINUTES = re.compile(r"Lab \d\d · [^()|]+\((\d+)\)")


def _duration(minutes: int) -> str:
    return f"about {minutes // 60} h {minutes % 60:02d}" if minutes >= 60 else f"about {minutes} min"


def write(timings: list[Timing]) -> list[str]:
    """Put the computed minutes where they are stated: each notebook's first cell (when it states a time), and the
    README's learner path (each notebook's core minutes, each sitting's total, the hours of both paths)."""
    changed = []
    for t in timings:
        path = ROOT / "notebooks" / f"{t.name}.ipynb"
        nb = json.loads(path.read_text())
        first = nb["cells"][0]
        text = "".join(first["source"]) if isinstance(first["source"], list) else first["source"]
        new = STATED.sub(f"**Time:** about {t.core_minutes} minutes on the core path, {t.full_minutes} with "
                         "*Going further*.", text)
        if new != text:
            first["source"] = new.splitlines(True)
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            changed.append(str(path.relative_to(ROOT)))
    readme = ROOT / "README.md"
    text = readme.read_text()
    core = {t.name[:2]: t.core_minutes for t in timings}
    lines = []
    for line in text.splitlines(True):
        if line.startswith("| ") and re.search(r"\b\d\d \(\d+\)", line) and "Lab" in line:
            line = re.sub(r"\b(\d\d) \((\d+)\)", lambda m: f"{m.group(1)} ({core.get(m.group(1), m.group(2))})", line)
            total = sum(int(m) for m in re.findall(r"\((\d+)\)", line))
            line = re.sub(r"\| about [^|]+\|\s*$", f"| {_duration(total)} |\n", line)
        lines.append(line)
    text = "".join(lines)
    labs = sum(int(m) for m in LAB_MINUTES.findall(text))
    up = lambda hours: math.ceil(hours * 10) / 10  # noqa: E731  (a floor is stated, so round up)
    nb_core, nb_full = up(sum(core.values()) / 60), up(sum(t.full_minutes for t in timings) / 60)
    both = r"about\s+[\d.]+\s+hours\s+of\s+notebooks\s+and\s+[\d.]+\s+hours\s+of\s+labs,\s+\*\*about [\d.]+ hours\*\*"
    text = re.sub(both, f"about\n{nb_core:.1f} hours of notebooks and {labs / 60:.1f} hours of labs, "
                  f"**about {round(nb_core + labs / 60)} hours**", text)
    text = re.sub(r"about\s+[\d.]+\s+hours\s+of\s+notebooks,\s+\*\*about [\d.]+ hours\*\* with the labs",
                  f"about {nb_full:.1f} hours of notebooks, **about {nb_full + labs / 60:.1f} hours** with the labs",
                  text)
    text = re.sub(r"suggested path \(about \d+ hours", f"suggested path (about {round(nb_core + labs / 60)} hours",
                  text)
    if text != readme.read_text():
        readme.write_text(text)
        changed.append("README.md")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=Path, help="JSON object: notebook or lab name -> measured run seconds")
    parser.add_argument("--write", action="store_true", help="write the computed minutes where they are stated")
    args = parser.parse_args(argv)
    seconds = json.loads(args.seconds.read_text()) if args.seconds else None
    timings = all_timings(seconds)
    print(table(timings))
    if args.write:
        print("updated:", ", ".join(write(timings)) or "nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
