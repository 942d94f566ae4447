"""A short quiz at the end of a notebook: ``sl.ui.quiz("04")`` (the questions live in :mod:`.quizzes`).

Each question is a set of labelled radio buttons; choosing an option shows its feedback at once: why
it is right, or which misconception a wrong option stands for. Feedback is words and a symbol, never
colour alone. Each question also carries every option's feedback folded under a "show the answers" line,
plain HTML a click opens: the quiz answers in the book and in a saved notebook, with no kernel.
Nothing is sent anywhere and nothing is graded: the quiz is for the learner.
It works in JupyterLab, Notebook 7 and headless (a test sets ``quiz.items[0].choice.value``).
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Sequence

import ipywidgets as W

from ._base import BORDER, GREEN, GREY, RED, box, esc, pill
from .quizzes import QUIZZES, Option, Question

__all__ = ["Option", "Question", "Quiz", "QuizItem", "quiz"]


RIGHT, WRONG = "\u2713 Right.", "\u2717 Not quite."
_SAID = re.compile(r"^\s*(right|correct|yes|not quite|wrong|no)\s*[:.,!]\s*", re.I)


def said_once(feedback: str, correct: bool) -> str:
    """The feedback without an opening "Right:" (or "Not quite."): the mark before it already says so, and
    "\u2713 Right. Right: ..." reads as a stutter. Only a word that agrees with the mark is dropped."""
    m = _SAID.match(feedback)
    if m and (m.group(1).lower() in ("right", "correct", "yes")) == correct:
        rest = feedback[m.end():]
        return rest[:1].upper() + rest[1:]
    return feedback


def answers_html(question: Question, shown: Sequence[Option]) -> str:
    """Every option's feedback, folded under a "show the answers" line that a click opens: plain HTML, so it
    works where no kernel answers the radio buttons (the book, a saved notebook)."""
    items = "".join(
        f'<li style="margin:2px 0"><b>{RIGHT if o.correct else WRONG}</b> <i>{esc(o.text)}</i>: '
        f"{esc(said_once(o.feedback, o.correct))}</li>" for o in shown)
    return box(f'<details class="statelab-quiz-answers"><summary style="cursor:pointer">Show the answers and why '
               f'(works without a running kernel)</summary><ul style="margin:4px 0 2px 0">{items}</ul></details>',
               font_size="12.5px")


class QuizItem(W.VBox):
    """One question on screen: the prompt, the options, and the feedback for the chosen one."""

    def __init__(self, number: int, question: Question) -> None:
        self.question = question
        self.prompt = W.HTML(box(f"<b>{number}.</b> {esc(question.prompt)}"))
        # A fixed order per question that does not follow the data (where the right answer is often first).
        shown = random.Random(zlib.crc32(question.prompt.encode())).sample(question.options, len(question.options))
        self.choice = W.RadioButtons(options=[o.text for o in shown], value=None,
                                     description=f"Answer {number}:", style={"description_width": "initial"},
                                     layout=W.Layout(width="auto"))
        self.feedback = W.HTML(box("Choose an answer to see feedback.", font_style="italic"))
        self.answers = W.HTML(answers_html(question, shown))
        self.choice.observe(self._chosen, names="value")
        super().__init__([self.prompt, self.choice, self.feedback, self.answers], layout=W.Layout(margin="0 0 8px 0"))

    @property
    def chosen(self) -> Option | None:
        return next((o for o in self.question.options if o.text == self.choice.value), None)

    @property
    def right(self) -> bool:
        return self.chosen is not None and self.chosen.correct

    def _chosen(self, _change: dict) -> None:
        option = self.chosen
        if option is None:
            return
        mark, tint = (RIGHT, GREEN) if option.correct else (WRONG, RED)
        self.feedback.value = box(f"{pill(mark, tint)} {esc(said_once(option.feedback, option.correct))}",
                                  padding="2px 0")


class Quiz(W.VBox):
    """Questions with feedback per option, and a running count of right answers."""

    def __init__(self, questions: Sequence[Question], title: str = "Quick quiz") -> None:
        if not questions:
            raise ValueError("a quiz needs at least one question")
        self.items = [QuizItem(i, q) for i, q in enumerate(questions, 1)]
        self.score = W.HTML()
        for item in self.items:
            item.choice.observe(lambda _change: self._count(), names="value")
        header = W.HTML(box(f"<b>{esc(title)}</b>: choose an answer for each question; the feedback says why."))
        super().__init__([header, *self.items, self.score],
                         layout=W.Layout(border=f"1px solid {BORDER}", padding="4px 8px"))
        self._count()

    def _count(self) -> None:
        answered = sum(i.chosen is not None for i in self.items)
        right = sum(i.right for i in self.items)
        self.score.value = box(pill(f"{right} of {len(self.items)} right, {answered} answered", GREY))

    def answer(self, number: int, text: str) -> str:
        """Choose option ``text`` for question ``number`` (1-based), as a click would; the feedback text."""
        item = self.items[number - 1]
        item.choice.value = text
        return item.feedback.value


def quiz(questions: str | Sequence[Question]) -> Quiz:
    """The quiz of notebook ``questions`` (a number such as "04"; ``sorted(QUIZZES)`` lists them), or your own."""
    if isinstance(questions, str):
        if questions not in QUIZZES:
            raise KeyError(f"no quiz {questions!r}; quizzes are {sorted(QUIZZES)}")
        return Quiz(QUIZZES[questions], title=f"Quick quiz on notebook {questions}")
    return Quiz(list(questions))
