"""Charts get alt text in a notebook only when statelab draws one (or a learner asks): no import side effect."""

from __future__ import annotations

import subprocess
import sys

from statelab import kernel, plots


def test_importing_statelab_plots_changes_no_display_formatter():
    code = ("from IPython.core.interactiveshell import InteractiveShell\n"
            "shell = InteractiveShell.instance(); shell.kernel = object()\n"  # as in a Jupyter kernel
            "from matplotlib.figure import Figure\n"
            "import statelab.plots, statelab.plots.performance\n"
            "assert Figure not in shell.display_formatter.formatters['text/html'].type_printers\n"
            "assert statelab.plots.show_alt_text() is True\n"
            "assert Figure in shell.display_formatter.formatters['text/html'].type_printers\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


def test_show_alt_text_outside_a_kernel_does_nothing(monkeypatch):
    monkeypatch.setattr(kernel, "shell", lambda: None)
    assert plots.show_alt_text() is False
