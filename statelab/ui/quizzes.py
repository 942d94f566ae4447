"""The end-of-notebook quizzes: ``QUIZZES["04"]`` is notebook 04's list of questions.

Every wrong option carries feedback that names the misconception it stands for, so a learner who
picks it learns why; the right option's feedback says why it is right. Questions ask about
mechanisms, not about numbers one run measured. ``sl.ui.quiz("04")`` shows one.

The questions are course content, not code: they live in ``quizzes.json`` next to this module (package
data), where an instructor can reword, add or translate one without touching Python. Each question is
``{"prompt": ..., "options": [{"text": ..., "feedback": ..., "correct": true}, ...]}`` (``correct`` only
on the right option), loaded once into :class:`Question` objects, which refuse a
question without exactly one right option.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files


@dataclass(frozen=True)
class Option:
    """One answer: its text, the feedback shown when it is chosen, and whether it is right."""

    text: str
    feedback: str
    correct: bool = False


@dataclass(frozen=True)
class Question:
    """A question and its options (exactly one is right)."""

    prompt: str
    options: tuple[Option, ...]

    def __post_init__(self) -> None:
        if sum(o.correct for o in self.options) != 1:
            raise ValueError(f"exactly one option must be right: {self.prompt!r}")
        if len({o.text for o in self.options}) != len(self.options):
            raise ValueError(f"two options read the same: {self.prompt!r}")

    @property
    def answer(self) -> Option:
        return next(o for o in self.options if o.correct)


def load(text: str) -> dict[str, list[Question]]:
    """Quizzes by notebook number from the JSON ``text`` (the layout in the module docstring)."""
    return {number: [Question(q["prompt"], tuple(Option(**option) for option in q["options"])) for q in questions]
            for number, questions in json.loads(text).items()}


QUIZZES: dict[str, list[Question]] = load(files(__package__).joinpath("quizzes.json").read_text(encoding="utf-8"))
