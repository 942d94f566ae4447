"""Run the learner's code in two OS processes at once: the check that a thread of one process cannot pass by accident.

Threads of one process share memory, so a ``threading.Lock`` or a module-level dict makes their
check-then-act atomic. Two processes share only what is outside them (a file, a database, Valkey):
each has its own lock object and its own dict, and nothing stops them interleaving. That is the
situation of gunicorn's workers and of servers on several machines, so the lab checks (lab 01's
store, lab 02's deny list and refresh tokens, lab 05's claim on a key and its plugin) make it with
:func:`race`; :class:`Meeting` lets the two processes act at the same moment, whatever the machine's load.
"""

from __future__ import annotations

import os
import select
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

SECONDS = 20.0  # a child that takes longer (a lock never released) is ended and reported


@dataclass
class Race:
    """What the processes reported: each one's result (a string), what went wrong, and whether they overlapped."""

    results: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    overlapped: bool = False


def race(work: Callable[[int], str], processes: int = 2, seconds: float = SECONDS,
         what: str = "its work") -> Race:
    """Fork ``processes`` children that start together and each run ``work(i)``; collect what they return.

    A child runs only ``work`` (the learner's code and what it opens itself), then ``_exit()``s: it never
    returns into the notebook's kernel. A child that raises is reported as crashed, with the error; one that
    takes over ``seconds`` is killed and reported. ``overlapped`` is False when one finished before another
    began (a busy machine): such a run proves nothing, and the caller runs it again.
    """
    go_read, go_write = os.pipe()
    children: list[tuple[int, int]] = []
    with warnings.catch_warnings():  # Python 3.12+ warns about fork in a process with threads: the child
        warnings.simplefilter("ignore", DeprecationWarning)  # runs only ``work``, then _exit()s
        for i in range(processes):
            out_read, out_write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: another server process on the same shared store
                code = 0
                try:
                    os.close(out_read)
                    os.read(go_read, 1)  # wait until every child exists: they start together
                    began = time.monotonic()  # one clock for every process of the machine
                    result = work(i)
                    os.write(out_write, f"ran {began} {time.monotonic()} {result}".encode())
                except BaseException as error:  # noqa: B036  (anything: report it and leave)
                    os.write(out_write, f"{type(error).__name__}: {error}"[:200].encode(errors="replace"))
                    code = 1
                finally:
                    os._exit(code)
            os.close(out_write)
            children.append((pid, out_read))
    os.write(go_write, b"g" * processes)
    outcome = Race()
    spans: list[tuple[float, float]] = []
    deadline = time.monotonic() + seconds
    for pid, out_read in children:
        message = b""
        while True:
            ready, _, _ = select.select([out_read], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(out_read, 65536) if ready else b""
            if not chunk:
                break
            message += chunk
        os.close(out_read)
        done = 0
        while not done and time.monotonic() < deadline + 1.0:  # its pipe closed: the exit is a moment away
            done, _ = os.waitpid(pid, os.WNOHANG)
            if not done:
                time.sleep(0.005)
        text = message.decode(errors="replace")
        if not done:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            outcome.problems.append(f"a process did not finish {what} in {seconds:g} s (a lock never released?)")
        elif text.startswith("ran "):
            _, began, ended, *rest = text.split(" ", 3)
            spans.append((float(began), float(ended)))
            outcome.results.append(rest[0] if rest else "")
        else:
            outcome.problems.append(f"a process crashed: {text or 'without a word'}")
    for fd in (go_read, go_write):
        os.close(fd)
    outcome.overlapped = len(spans) == processes and max(b for b, _ in spans) < min(e for _, e in spans)
    return outcome


class Meeting:
    """A meeting point for the two processes of a :func:`race`: ``meet(i)`` in process ``i`` (0 or 1) returns once
    the other process has reached its ``meet`` too, so both take their next step at the same moment (a
    double-click's two requests, a revoke that the other process looks for). A process that waited ``wait`` seconds
    goes on alone (the other is slow, or gone: crashed in the learner's code), and from then on waits no more:
    ``meet`` returns False.

    Make it before :func:`race` (both children inherit its pipes), close it after (``with Meeting() as meeting:``).
    """

    def __init__(self, wait: float = 2.0) -> None:
        self.wait = wait
        self._pipes = [os.pipe(), os.pipe()]  # _pipes[i]: process i writes, the other reads
        self._alone = False  # in a child (each has its own copy): the other stayed away once

    def meet(self, i: int) -> bool:
        if self._alone:
            return False
        os.write(self._pipes[i][1], b"m")
        theirs = self._pipes[1 - i][0]
        if not select.select([theirs], [], [], self.wait)[0]:
            self._alone = True
            return False
        os.read(theirs, 1)
        return True

    def close(self) -> None:
        for fd in (fd for pair in self._pipes for fd in pair):
            os.close(fd)
        self._pipes = []

    def __enter__(self) -> Meeting:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
