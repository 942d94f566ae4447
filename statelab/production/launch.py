"""Start a program that dies with the notebook: ``python -I -S launch.py PARENT_PID PROGRAM ARGS...``.

Run as its own small process (never imported), so the notebook's kernel, which has many threads,
does not run code between ``fork`` and ``exec`` (``preexec_fn``, which the subprocess documentation
calls unsafe there). It asks Linux to send it SIGTERM when its parent dies (``PR_SET_PDEATHSIG``,
which survives the ``exec`` that follows), checks that the parent is still the one that started it
(had it died already, no signal would ever come), and then becomes the program: same process id,
same process group (``subprocess.Popen(start_new_session=True)`` made one for it).
"""

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    parent, program = int(argv[1]), argv[2:]
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the notebook's atexit still stops it, but a killed kernel leaves it running
    if os.getppid() != parent:
        sys.exit(1)  # the parent died before the request took effect: never start
    os.execv(program[0], program)


if __name__ == "__main__":
    main(sys.argv)
