"""statelab/service/httpd.py overrides parts of werkzeug's development server that are not public API.

If the installed werkzeug renames a parameter of, or drops, a method we override, or stops setting an environ
key we read, this test names it, before a learner meets a server that silently lost its read deadlines.
"""

from __future__ import annotations

import inspect

import pytest
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from statelab.service import httpd

CLASSES = {"WSGIRequestHandler": WSGIRequestHandler, "ThreadedWSGIServer": ThreadedWSGIServer}
CASES = [(cls, name, params) for cls, methods in httpd.OVERRIDDEN.items() for name, params in methods.items()]


@pytest.mark.parametrize(("cls", "name", "params"), CASES, ids=[f"{c}.{n}" for c, n, _ in CASES])
def test_werkzeug_still_has_the_method_we_override_with_the_same_parameters(cls, name, params):
    method = getattr(CLASSES[cls], name, None)
    assert method is not None, f"werkzeug's {cls} has no {name} any more: statelab/service/httpd.py overrides it"
    found = tuple(inspect.signature(method).parameters)
    assert found == params, (
        f"werkzeug's {cls}.{name}{found} changed from {params}: check statelab/service/httpd.py against "
        "werkzeug's changelog, then update httpd.OVERRIDDEN (and the werkzeug bound in pyproject.toml)")


def test_every_override_in_httpd_is_recorded():
    """A new override in httpd.py without a line in OVERRIDDEN would escape the check above."""
    for ours, cls in ((httpd.Handler, "WSGIRequestHandler"), (httpd.Httpd, "ThreadedWSGIServer")):
        base = CLASSES[cls]
        overridden = {name for name, value in vars(ours).items()
                      if callable(value) and hasattr(base, name) and not name.startswith("__") or name == "__init__"}
        assert overridden <= set(httpd.OVERRIDDEN[cls]), f"record {overridden - set(httpd.OVERRIDDEN[cls])}"


@pytest.mark.parametrize("key", httpd.ENVIRON_KEYS)
def test_werkzeug_still_sets_the_environ_keys_we_read(key):
    assert key in inspect.getsource(WSGIRequestHandler.make_environ), f"werkzeug no longer sets {key!r}"
