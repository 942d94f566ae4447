"""The end-of-notebook quizzes: ``QUIZZES["04"]`` is notebook 04's list of questions.

Every wrong option carries feedback that names the misconception it stands for, so a learner who
picks it learns why; the right option's feedback says why it is right. Questions ask about
mechanisms, not about numbers one run measured. ``sl.ui.quiz("04")`` shows one.

The questions are course content, not code: they live in ``quizzes.json`` next to this module (package
data), where an instructor can reword, add or translate one without touching Python. Each question is
``{"prompt": ..., "options": [{"text": ..., "feedback": ..., "correct": true}, ...]}`` (``correct`` only
on the right option), loaded once into :class:`~statelab.ui.quiz.Question` objects, which refuse a
question without exactly one right option.
"""

from __future__ import annotations

import json
from importlib.resources import files

from .quiz import Option, Question


def load(text: str) -> dict[str, list[Question]]:
    """Quizzes by notebook number from the JSON ``text`` (the layout in the module docstring)."""
    return {number: [Question(q["prompt"], tuple(Option(**option) for option in q["options"])) for q in questions]
            for number, questions in json.loads(text).items()}


QUIZZES: dict[str, list[Question]] = load(files(__package__).joinpath("quizzes.json").read_text(encoding="utf-8"))
