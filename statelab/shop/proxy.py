"""A server's page in a normal browser tab: directly, or through Jupyter's proxy on Binder and JupyterHub.

Every statelab server listens on 127.0.0.1 of the machine that runs the kernel. On your own machine your
browser reaches it there (``server.url + "/"``). On Binder or JupyterHub that machine is far away, and the
only way in is the Jupyter server itself: jupyter-server-proxy serves a local port at ``{base}proxy/<port>/``
(behind Jupyter's login) and strips the prefix before the request reaches our server.

Behind that proxy every server shares one browser origin, so cookies set with ``Path=/`` would be sent to
every server, and two stateful servers would overwrite each other's ``sid``. jupyter-server-proxy passes
cookies through unchanged, but it tells the app where it is mounted (``X-Forwarded-Prefix``): statelab scopes
its cookies to that path, so each proxied server keeps its own. Direct requests carry no prefix and keep the
HTTP contract's ``Path=/``.

Who may say where a request came from: ``X-Forwarded-Prefix`` (and ``X-Forwarded-Host``, which statelab's balancer
and cache set) are believed only when a process of your own Unix user sent them: jupyter-server-proxy inside your
Jupyter server, or statelab's own proxies. :mod:`statelab.service` asks the kernel who owns the other end of each
such connection and drops the headers from anyone else's (another learner's, on a shared machine). A browser page
of another site cannot send them at all without a CORS preflight, which no statelab server grants.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from flask import has_request_context, request
from flask.sessions import SecureCookieSessionInterface

PREFIX_HEADER = "X-Forwarded-Prefix"  # jupyter-server-proxy sends it (with X-Forwarded-Context, for flask apps)
# A cookie Path is sent back verbatim: accept only plain URL path characters (no ';', ',', spaces or controls).
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._~%!$&'()*+=:@/-]{0,500}")


def cookie_path(headers: Mapping[str, str] | Any) -> str:
    """The ``Path`` for cookies this request sets: the proxy's mount point (``/user/a/proxy/54321/``) when the
    request came through a path-prefixing proxy, else ``/``. A malformed prefix is ignored (``/``)."""
    prefix = (headers.get(PREFIX_HEADER) or "").strip()
    if not _SAFE_PATH.fullmatch(prefix):
        return "/"
    return prefix.rstrip("/") + "/"


class ProxyAwareSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session (``mode="cookie"``), with its cookie scoped like the others."""

    def get_cookie_path(self, app: Any) -> str:
        if has_request_context():
            return cookie_path(request.headers)
        return super().get_cookie_path(app)


def jupyter_prefix(environ: Mapping[str, str] | None = None) -> str | None:
    """The Jupyter server's base path when this kernel runs under JupyterHub (Binder is one), else None.

    JupyterHub gives every single-user server ``JUPYTERHUB_SERVICE_PREFIX`` (``/user/<name>/``) and the
    kernel inherits it. Its presence means: the browser is on another machine, 127.0.0.1 is not reachable.
    """
    prefix = (os.environ if environ is None else environ).get("JUPYTERHUB_SERVICE_PREFIX", "").strip()
    if not _SAFE_PATH.fullmatch(prefix):
        return None
    return prefix.rstrip("/") + "/"


def page_url(service: Any, environ: Mapping[str, str] | None = None) -> str:
    """Where a browser tab opens ``service``'s page (a Server, or a balancer: anything with ``url`` and
    ``port``): ``{prefix}proxy/<port>/`` under JupyterHub/Binder, else ``service.url + "/"``.

    The trailing slash matters: the page's ``fetch`` calls are relative, and from ``.../proxy/54321`` (no
    slash) they would leave the proxied path.
    """
    prefix = jupyter_prefix(environ)
    if prefix is None:
        return service.url.rstrip("/") + "/"
    return f"{prefix}proxy/{int(service.port)}/"
