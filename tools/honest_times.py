"""How long each notebook really takes, computed from the material (issue 21): the numbers a stated time must match.

    minutes = prose words / WORDS_PER_MINUTE + run seconds / 60 + exercises * MINUTES_PER_EXERCISE
              + quiz questions * MINUTES_PER_QUESTION

The core path counts the prose up to a "Going further" heading (everything when there is none), the exercises
before it, and the quiz; the full path counts everything. The README's learner path adds the labs: the core path
takes CORE_LABS, the full path every lab, each at the minutes the README's table of labs states (the authors'
estimates: a lab is mostly writing code, which words do not time). Prose is the markdown a learner reads: code, diagrams
(mermaid fences) and HTML tags are not counted; the rendered evidence is not counted either (it varies per run),
so the figures are a floor. Run seconds are measured ones (``--seconds FILE``: a JSON object of notebook name to
seconds, e.g. from the notebook harness's summary); without them, run time is left out and the table says so.

    python tools/honest_times.py                      # a table of the notebooks, and the README's two paths
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
#: The labs a class needs most, on the core path: lab 01 fixes the stateful half's central weakness (a crash takes
#: the sessions kept in memory), lab 02 the stateless half's (logout does not end a token), lab 05 the write neither
#: half protects (a retried checkout). Labs 03-04 deepen 01-02; 06-07 need notebooks 13-14: full path only.
CORE_LABS = ("01", "02", "05")
CORE_HOURS = 6  # the README's core path must fit (issue 21)
#: A lab's minutes in the README's table of labs (the authors' estimates: labs are mostly writing code, so they are
#: not timed by words): ``| [01 · Survive a crash](labs/01_survive_a_crash.ipynb) | ... | 40 |``.
LAB_ROW = re.compile(r"^\| \[(\d\d) · [^]]+\]\(labs/[^)]+\.ipynb\) \|.*\| (\d+) \|\s*$", re.M)
#: "about 3.0 hours of notebooks and 2.2 hours of labs, **about 5.2 hours**": the core path's, then the full path's.
PATH_HOURS = re.compile(r"(about\s+)[\d.]+(\s+hours\s+of\s+notebooks\s+and\s+)[\d.]+(\s+hours\s+of\s+labs,\s+"
                        r"\*\*about )[\d.]+( hours\*\*)")
LEARNER_PATH = re.compile(r"^### For learners: a suggested path.*?(?=^### )", re.M | re.S)


def lab_minutes(readme: str) -> dict[str, int]:
    """Each lab's minutes, as the README's table of labs states them."""
    return {number: int(minutes) for number, minutes in LAB_ROW.findall(readme)}


def _duration(minutes: int) -> str:
    return f"about {minutes // 60} h {minutes % 60:02d}" if minutes >= 60 else f"about {minutes} min"


def _up(minutes: float) -> float:
    """Hours to one decimal, rounded up: the figures are a floor (rendered evidence is not counted)."""
    return math.ceil(minutes / 6) / 10


@dataclass
class Paths:
    """The README's two paths, in hours: the notebooks' part, the labs' part, and both."""

    core_notebooks: float
    core_labs: float
    full_notebooks: float
    full_labs: float

    @property
    def core(self) -> float:
        return round(self.core_notebooks + self.core_labs, 1)

    @property
    def full(self) -> float:
        return round(self.full_notebooks + self.full_labs, 1)


def paths(timings: list[Timing], labs: dict[str, int]) -> Paths:
    """The core path (each notebook up to "Going further", and CORE_LABS) and the full path (everything)."""
    missing = set(CORE_LABS) - set(labs)
    if missing:
        raise ValueError(f"the README's table of labs has no minutes for core lab(s) {sorted(missing)}")
    return Paths(_up(sum(t.core_minutes for t in timings)), _up(sum(labs[n] for n in CORE_LABS)),
                 _up(sum(t.full_minutes for t in timings)), _up(sum(labs.values())))


def learner_path(readme: str, timings: list[Timing]) -> str:
    """The README with its learner path recomputed: each notebook's core minutes and each lab's minutes in the
    sittings table, each sitting's core total, and the hours of both paths."""
    section = LEARNER_PATH.search(readme)
    if not section:
        raise ValueError("the README has no '### For learners: a suggested path' section")
    core = {t.name[:2]: t.core_minutes for t in timings}
    labs = lab_minutes(readme)
    lines = []
    for line in section.group(0).splitlines(True):
        if re.match(r"\| \d+ \|", line):  # a sitting: | n | notebooks | core lab | core total | the full path adds |
            cells = line.rstrip("\n").split("|")[1:-1]
            cells[1] = re.sub(r"\b(\d\d) \((\d+)\)", lambda m: f"{m.group(1)} ({core.get(m.group(1), m.group(2))})",
                              cells[1])
            cells[2] = re.sub(r"Lab (\d\d) · ([^()|]+)\((\d+)\)",
                              lambda m: f"Lab {m.group(1)} · {m.group(2)}({labs.get(m.group(1), m.group(3))})",
                              cells[2])
            cells[4] = re.sub(r"Lab (\d\d) · ([^[\]|]+)\[(\d+) min\]",
                              lambda m: f"Lab {m.group(1)} · {m.group(2)}[{labs.get(m.group(1), m.group(3))} min]",
                              cells[4])
            total = sum(int(m) for m in re.findall(r"\((\d+)\)", cells[1] + cells[2]))
            cells[3] = f" {_duration(total)} "
            line = "|" + "|".join(cells) + "|\n"
        lines.append(line)
    text = "".join(lines)
    p = paths(timings, labs)
    stated = iter([(p.core_notebooks, p.core_labs, p.core), (p.full_notebooks, p.full_labs, p.full)])

    def hours(m: re.Match) -> str:  # the core path first, then the full path; the text's own spacing is kept
        notebooks, labs_hours, both = next(stated)
        return f"{m[1]}{notebooks:.1f}{m[2]}{labs_hours:.1f}{m[3]}{both:.1f}{m[4]}"

    text = PATH_HOURS.sub(hours, text, count=2)
    text = re.sub(r"suggested path \(core path about [\d.]+ hours, full path about [\d.]+ hours\)",
                  f"suggested path (core path about {round(p.core)} hours, full path about {round(p.full)} hours)",
                  text)
    return readme[:section.start()] + text + readme[section.end():]


def write(timings: list[Timing]) -> list[str]:
    """Put the computed minutes where they are stated: each notebook's first cell (when it states a time), and the
    README's learner path (:func:`learner_path`)."""
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
    text = learner_path(readme.read_text(), timings)
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
    p = paths(timings, lab_minutes((ROOT / "README.md").read_text()))
    print(f"README: core path {p.core:.1f} h ({p.core_notebooks:.1f} h of notebooks, labs {', '.join(CORE_LABS)}: "
          f"{p.core_labs:.1f} h; at most {CORE_HOURS} h), full path {p.full:.1f} h ({p.full_notebooks:.1f} h of "
          f"notebooks, every lab: {p.full_labs:.1f} h)")
    if args.write:
        print("updated:", ", ".join(write(timings)) or "nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
