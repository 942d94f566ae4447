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


def test_panels_make_a_figure_alone_and_inset_panels_beside_a_given_axis():
    import matplotlib.pyplot as plt

    fig, axes = plots.panels(None, widths=(3, 3, 2.4), figsize=(11, 3.4))
    assert len(axes) == 3 and all(a.figure is fig for a in axes)
    plt.close(fig)
    host_fig, host = plt.subplots()
    fig, axes = plots.panels(host, widths=(3, 3, 2.4), figsize=(11, 3.4))
    assert fig is host_fig and axes[0] is host and len(axes) == 3
    fig.canvas.draw()
    first, second, third = (a.get_window_extent() for a in axes)
    # side by side, a gap of 0.15 of the first panel's width apart, widths in proportion 3 : 3 : 2.4
    assert abs(second.x0 - (first.x0 + 1.15 * first.width)) < 1
    assert abs(third.x0 - (first.x0 + 2.30 * first.width)) < 1
    assert abs(third.width - 0.8 * first.width) < 1
    plt.close(fig)
