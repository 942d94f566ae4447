"""Checkers and glue for the classroom labs (``labs/``; solutions in ``labs/solutions/``).

In a lab, your code plugs into running servers through the same extension points the package
uses itself, never by editing the package:

* ``plugins=[fn]`` on :func:`statelab.create_app`, :class:`statelab.Server` and
  :class:`statelab.Cluster`: ``fn(app)`` is called with each server's Flask app after its routes
  exist, and may add routes or ``before_request`` / ``after_request`` hooks. The server's own
  state is ``app.extensions["statelab"]`` (``mode``, ``store``, ``keyring``, ``token_ttl``, ...).
* ``store=`` on ``Server`` and ``Cluster`` takes a session store object (anything with
  ``create/get/update/delete/count/clear``, see :class:`statelab.shop.sessions.SessionStore`); one
  object given to a cluster is shared by all its servers.
* ``cluster.strategy = fn`` (or ``Cluster(balancer=fn)``): a routing function
  ``fn(client_key, cookie, live, all) -> backend name`` (see :mod:`statelab.topology.balancer`).

A check cell calls one checker, e.g. ``sl.labs.check_survives_crash(shared_store)``. It drives real
servers over HTTP and returns a :class:`Report` (pass, or not yet with what was expected and what
happened); it never raises at you. Under nbgrader the check cells are graded tests: a report that
is not a pass also fails the cell there (see :mod:`statelab.labs.report`).
"""

from .checkout import Orders, check_claims, check_double_click, check_retries, check_retry_once, checkout, open_keys
from .crash import check_carts_after_crash, check_session_store, check_survives_crash
from .failover import check_fail_over, check_wait_policy
from .production import check_found_share, check_redis_store, check_shared_config
from .report import Finding, Report, server_errors
from .revoke import check_deny_list, check_logout_revokes, check_refresh, check_shared_list
from .rotation import check_prediction, check_resign, check_rotation_keeps_users, forge_with
from .routing import check_draining, check_failover, check_pins_users

__all__ = [
    "Finding", "Orders", "Report", "check_carts_after_crash", "check_claims", "check_deny_list", "check_double_click",
    "check_draining", "check_fail_over", "check_failover", "check_found_share", "check_logout_revokes",
    "check_pins_users", "check_prediction", "check_redis_store", "check_refresh", "check_resign", "check_retries",
    "check_retry_once", "check_rotation_keeps_users", "check_session_store", "check_shared_config",
    "check_shared_list", "check_survives_crash", "check_wait_policy", "checkout", "forge_with", "open_keys",
    "server_errors",
]
