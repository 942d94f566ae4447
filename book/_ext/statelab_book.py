"""Sphinx extension for the statelab book: turn off Thebe, which Jupyter Book 1 always loads.

Thebe would run a page's cells on a kernel from a remote Binder, fetching its own JavaScript from a CDN; our pages
link to a Binder launch of the same notebook instead (the note on top of each page). With Jupyter Book 1.0.4 and
sphinx-thebe 0.3.1 it also writes its configuration script twice into every page, and the browser reports
"Identifier 'THEBE_JS_URL' has already been declared". Removing its event handlers and stylesheet leaves the
pages without it.
"""

from __future__ import annotations


def _drop_thebe(app) -> None:
    for listeners in app.events.listeners.values():
        listeners[:] = [entry for entry in listeners if not getattr(entry.handler, "__module__", "").startswith(
            "sphinx_thebe")]
    app.registry.css_files[:] = [(name, attrs) for name, attrs in app.registry.css_files
                                 if "thebe" not in str(name)]


def setup(app):
    app.connect("builder-inited", _drop_thebe)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
