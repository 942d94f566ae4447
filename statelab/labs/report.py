"""Pass / not-yet reports for lab check cells, and the guard around the learner's code.

A check cell calls a checker (``sl.labs.check_survives_crash(shared_store)``). The checker drives
real servers over HTTP, compares what happened with what the task asks for, and returns a
:class:`Report`: each behaviour with what was expected and what happened, shown as HTML in a
notebook and as plain text elsewhere. A learner never meets a traceback from a check:

* learner code that raises (``NotImplementedError`` while a task is untouched, or a bug) becomes
  "not yet: <what raised, and the line in your cell>" (:func:`call`, :func:`blame`);
* errors inside the servers (a plugin hook that raises while answering a request) are caught by a
  logging handler instead of printed to the cell, and the report names them (:func:`server_errors`);
* anything else that stops a check is reported as "the check could not finish".

Under nbgrader (``nbgrader autograde`` and ``validate`` set ``NBGRADER_EXECUTION``) a check that is
not passed also raises :class:`NotYet` after showing its report, so the graded test cell scores zero;
the error shows as one line, not a traceback.
"""

from __future__ import annotations

import functools
import html
import logging
import os
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PACKAGE = str(Path(__file__).resolve().parent.parent)  # statelab/: frames here are ours, not the learner's


class LearnerError(Exception):
    """The learner's code is not there yet; the message says what and where, in plain words."""


class NotYet(AssertionError):
    """Raised only under nbgrader, so a graded check cell fails; IPython shows one line, not a traceback."""

    def __init__(self, report: Report) -> None:
        super().__init__(report.summary())
        self.report = report

    def _render_traceback_(self) -> list[str]:
        return [f"NotYet: {self.report.summary()}"]


@dataclass
class Finding:
    """One behaviour the check exercised: what the task asks for, and what the servers did."""

    behaviour: str
    expected: str
    happened: str
    ok: bool


@dataclass
class Report:
    """The result of one check: passed, or not yet (and why)."""

    title: str
    findings: list[Finding] = field(default_factory=list)
    problem: str | None = None  # a not-yet reason that stopped the check before it finished
    notes: list[str] = field(default_factory=list)  # measured numbers worth reading, not pass/fail

    def expect(self, behaviour: str, ok: bool, expected: str, happened: object) -> bool:
        """Record one behaviour; return whether it was as expected."""
        self.findings.append(Finding(behaviour, expected, str(happened), bool(ok)))
        return bool(ok)

    def require(self, behaviour: str, ok: bool, expected: str, happened: object) -> None:
        """Like :meth:`expect`, but stop the check here when it fails (later steps depend on it)."""
        if not self.expect(behaviour, ok, expected, happened):
            raise _Stop

    def note(self, text: str) -> None:
        self.notes.append(text)

    @property
    def passed(self) -> bool:
        return self.problem is None and bool(self.findings) and all(f.ok for f in self.findings)

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def summary(self) -> str:
        """One line: PASS, or NOT YET and the first reason."""
        if self.passed:
            return f"PASS · {self.title} ({len(self.findings)} behaviours checked)"
        if self.problem:
            return f"NOT YET · {self.title}: {self.problem}"
        first = self.failed[0] if self.failed else None
        reason = f"{first.behaviour}: expected {first.expected}, got {first.happened}" if first else "nothing checked"
        return f"NOT YET · {self.title}: {reason}"

    def __repr__(self) -> str:
        lines = [self.summary()]
        if self.problem:
            lines.append(f"  not yet: {self.problem}")
        for f in self.findings:
            lines.append(f"  {'✓' if f.ok else '✗'} {f.behaviour}: expected {f.expected}; happened: {f.happened}")
        lines += [f"  · {n}" for n in self.notes]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        good = self.passed
        colour = "#2e7d32" if good else "#b26a00"
        head = "PASS" if good else "NOT YET"
        # long values (a temporary folder's path, a token) wrap instead of making the output scroll sideways: a
        # scrolling region is one a keyboard user cannot reach (axe-core: scrollable-region-focusable)
        cell = ("text-align:left;padding:1px 10px 1px 0;vertical-align:top;color:inherit;background:none;"
                "overflow-wrap:anywhere")
        mark = {True: f'<td style="{cell};color:#2e7d32">&#10003;</td>',
                False: f'<td style="{cell};color:#c62828">&#10007;</td>'}
        rows = "".join(
            f"<tr>{mark[f.ok]}<td style='{cell}'>{e(f.behaviour)}</td><td style='{cell}'>{e(f.expected)}</td>"
            f"<td style='{cell}'>{e(f.happened)}</td></tr>"
            for f in self.findings)
        table = (f"<table style='margin:4px 0;border-collapse:collapse;color:inherit;font-size:inherit'>"
                 f"<tr><th style='{cell}'>ok</th><th style='{cell}'>behaviour</th><th style='{cell}'>expected</th>"
                 f"<th style='{cell}'>what happened</th></tr>{rows}</table>") if rows else ""
        problem = (f"<p style='margin:4px 0'><b>not yet:</b> {e(self.problem)}</p>" if self.problem else "")
        notes = "".join(f"<li>{e(n)}</li>" for n in self.notes)
        notes = f"<ul style='margin:4px 0'>{notes}</ul>" if notes else ""
        return (f"<div style='border-left:5px solid {colour};padding:4px 10px;margin:4px 0;color:inherit;"
                f"background:rgba(127,127,127,0.08);overflow-wrap:anywhere'>"
                f"<b style='color:{colour}'>{head}</b> · <b>{e(self.title)}</b>{problem}{table}{notes}</div>")


class _Stop(Exception):
    """A required behaviour failed: the rest of the check would only repeat it."""


# --------------------------------------------------------------------------- the learner's code

def _learner_frame(error: BaseException) -> str:
    """`` (line: `code`, in name)`` for the innermost frame outside statelab and installed packages."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not f.filename.startswith(_PACKAGE) and "site-packages" not in f.filename
              and "/lib/python" not in f.filename]
    if not frames:
        return ""
    f = frames[-1]
    line = (f.line or "").strip()
    return f" (at `{line}` in {f.name})" if line else f" (in {f.name})"


def _learner_function(error: BaseException) -> str:
    """The name of the innermost function of the learner's that the error went through, or ''."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not f.filename.startswith(_PACKAGE) and "site-packages" not in f.filename
              and "/lib/python" not in f.filename and f.name != "<module>"]
    return frames[-1].name if frames else ""


def describe(what: str, error: BaseException) -> str:
    """A one-line, plain-words account of an exception raised by the learner's ``what``."""
    if isinstance(error, NotImplementedError):
        where = _learner_function(error)
        where = f" ({where}() is empty)" if where and where not in what else ""
        return (f"{what} is not written yet{where}: it still raises NotImplementedError "
                "(replace `raise NotImplementedError()` with your code)")
    message = str(error) or "(no message)"
    if (isinstance(error, (AttributeError, TypeError)) and "'NoneType'" in message
            and not _learner_frame(error)):  # Flask's own code met the None a hook of the learner's returned
        return (f"{what}: a hook returned None where Flask needed a response ({type(error).__name__}: {message}). "
                "An after_request hook must `return response` on every path; a before_request hook returns None "
                "only to let the route run")
    if len(message) > 160:
        message = message[:160] + "..."
    return f"{what} raised {type(error).__name__}: {message}{_learner_frame(error)}"


STUCK = ("is a lock taken twice (a method that holds the lock calling another that takes it too), or a loop that never "
         "ends?")


def call(what: str, fn: Any, *args: Any, limit: float | None = None, stuck: str = STUCK, **kwargs: Any) -> Any:
    """Run the learner's ``fn``; anything it raises becomes a :class:`LearnerError` saying so.

    With ``limit`` (seconds) the call runs in a helper thread, and one that does not return in time
    is reported instead of hanging the check cell, with ``stuck``: the likely causes for this kind of
    code (a lock taken twice in a store with locks; a retry loop that never ends in a WATCH transaction).
    """
    if not callable(fn):
        raise LearnerError(f"{what} should be a function (or class) you define above, not {type(fn).__name__}")
    if limit is not None:
        return _call_within(what, fn, args, kwargs, limit, stuck)
    try:
        return fn(*args, **kwargs)
    except LearnerError:
        raise
    except Exception as error:
        raise LearnerError(describe(what, error)) from None


def _call_within(what: str, fn: Any, args: tuple, kwargs: dict, limit: float, stuck: str = STUCK) -> Any:
    result: list[Any] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn(*args, **kwargs))
        except BaseException as error:  # handed to the caller's thread below
            failure.append(error)

    worker = threading.Thread(target=run, name="lab-learner-call", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        raise LearnerError(f"{what} did not return within {limit:.0f} s: {stuck}")
    if failure:
        error = failure[0]
        if isinstance(error, LearnerError):
            raise error
        if isinstance(error, Exception):
            raise LearnerError(describe(what, error)) from None
        raise error
    return result[0]


@contextmanager
def blame(what: str) -> Iterator[None]:
    """Code in this block runs the learner's code indirectly (a plugin at server start): same rule as call()."""
    try:
        yield
    except (LearnerError, _Stop):
        raise
    except Exception as error:
        raise LearnerError(describe(what, error)) from None


# --------------------------------------------------------------------------- errors inside servers

class _ServerErrors(logging.Handler):
    """Keeps the errors Flask logs for statelab's servers (a learner's hook that raised).

    Installed on the ``statelab`` logger when this module is imported. Flask then adds no
    stderr handler of its own to an app's logger, so a broken hook shows up as a line in the
    check's report and a 500 answer, not as a traceback printed into whatever cell is running.
    """

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: deque[str] = deque(maxlen=50)
        self._records_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            text = describe(f"your code running in {record.name.removeprefix('statelab.')}", record.exc_info[1])
        else:
            text = record.getMessage()
        with self._records_lock:
            self.records.append(text)

    def take(self) -> list[str]:
        with self._records_lock:
            out = list(self.records)
            self.records.clear()
        return out


_errors = _ServerErrors()
_logger = logging.getLogger("statelab")
if not any(isinstance(h, _ServerErrors) for h in _logger.handlers):
    _logger.addHandler(_errors)


def server_errors() -> list[str]:
    """Errors the servers logged since the last call (each a one-line description), and forget them."""
    for h in _logger.handlers:
        if isinstance(h, _ServerErrors):
            return h.take()
    return []


# --------------------------------------------------------------------------- the checker decorator

def grading() -> bool:
    """True when nbgrader is executing the notebook (autograde or validate)."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def checker(title: str) -> Callable[[Callable[..., None]], Callable[..., Report | None]]:
    """Make ``fn(report, *args)`` a check: it fills a :class:`Report`, which is returned, never raised.

    Under nbgrader the report is displayed instead of returned, and one that is not a pass raises
    :class:`NotYet`, so the graded check cell scores zero.
    """

    def wrap(fn: Callable[..., None]) -> Callable[..., Report]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Report | None:
            report = Report(title)
            server_errors()  # forget what earlier cells left behind
            try:
                fn(report, *args, **kwargs)
            except LearnerError as e:
                report.problem = str(e)
            except _Stop:
                pass
            except Exception as e:  # the learner's code, reached indirectly, or a failure of the check itself
                yours = _learner_function(e)
                report.problem = (describe(f"your {yours}()", e) if yours else
                                  f"the check could not finish: {type(e).__name__}: {e}")
            logged = server_errors()
            if logged and not report.passed:
                unwritten = [line for line in logged if "not written yet" in line or "a hook returned None" in line]
                if unwritten and report.problem is None:
                    report.problem = unwritten[-1]
                else:
                    report.note(f"the servers logged {len(logged)} error(s) while answering; the last one: "
                                f"{logged[-1]}")
            if grading():  # shown, not returned: nbgrader would read a returned value as partial credit
                from IPython.display import display

                display(report)
                if not report.passed:
                    raise NotYet(report)
                return None
            return report

        return run

    return wrap
