"""The seed's comparison table as data: nine rows, each linked to its experiment and notebook.

The claims are quoted from the source text (``shared/seed/stateful-vs-stateless.txt``) so a
notebook can show them side by side and then test them. ``benefits`` names the benefits of
sections 4 (stateful, ``4a``-``4d``) and 5 (stateless, ``5a``-``5d``) that the row's notebook
tests and judges: each benefit is judged in exactly one notebook, so the scoreboard has one verdict
for each of the eight.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

BENEFITS = {
    "4a": ("stateful", "Session persistence: sessions carry users smoothly across steps or devices"),
    "4b": ("stateful", "Efficient resource use: state stays on the server, not re-sent with every request"),
    "4c": ("stateful", "Personalization: past interactions tailor what the user sees"),
    "4d": ("stateful", "Enhanced security: centralized session management supports strong authentication and "
                       "encryption"),
    "5a": ("stateless", "High scalability: any server can take any request, no session management"),
    "5b": ("stateless", "Fault tolerance: a failed server does not take user state down with it"),
    "5c": ("stateless", "Simplified load balancing: spread requests evenly, no sticky sessions"),
    "5d": ("stateless", "Better performance: no session lookup per request"),
}


@dataclass(frozen=True)
class Row:
    """One row of the comparison table."""

    key: str
    title: str
    stateful: str
    stateless: str
    notebook: str
    benefits: tuple[str, ...]

    @property
    def experiment(self) -> ModuleType:
        """The experiment module for this row (``statelab.experiments.<key>``)."""
        return importlib.import_module(f"statelab.experiments.{self.key}")


ROWS: tuple[Row, ...] = (
    Row("scalability", "Scalability",
        "Scaling requires synchronization of session data",
        "Horizontal scaling is straightforward",
        "03_scalability.ipynb", ("5a",)),
    Row("fault_tolerance", "Fault Tolerance",
        "Failure in one server affects sessions stored on others",
        "Failures are isolated, impacting only individual requests",
        "04_fault_tolerance.ipynb", ("5b", "4a")),
    Row("performance", "Performance",
        "May experience increased latency due to session management",
        "Typically faster response times due to lack of session overhead",
        "05_performance.ipynb", ("5d",)),
    Row("resource_usage", "Resource Usage",
        "Requires more resources for session state management",
        "Utilizes resources efficiently due to lack of session state",
        "06_resource_usage.ipynb", ("4b",)),
    Row("caching", "Caching Strategies",
        "Caching strategies may be complex due to session data",
        "Simplified caching strategies without session state",
        "07_caching.ipynb", ("4c",)),
    Row("deployment", "Deployment Complexity",
        "Deployment may be more complex due to session synchronization",
        "Easier deployment and maintenance due to statelessness",
        "08_deployment.ipynb", ()),
    Row("transaction_integrity", "Transaction Integrity",
        "Ensures transaction integrity by maintaining session context",
        "Transactions are isolated, ensuring integrity at request level",
        "09_transaction_integrity.ipynb", ()),
    Row("load_balancing", "Load Balancing",
        "Load balancing may require consideration of session affinity",
        "Simplified load balancing without session considerations",
        "10_load_balancing.ipynb", ("5c",)),
    Row("development_focus", "Development Focus",
        "Developers need to manage session-related issues",
        "Developers can focus more on business logic without session concerns",
        "11_development_focus.ipynb", ("4d",)),
)


#: Notebook 12 judges the seed's two definitions (sections 2 and 3) on all four designs at once: not a row of
#: the table, so not in ``ROWS``, but its claims are the seed's words like any row's.
CHOOSING = Row("choosing", "Choosing a design",
               "The server keeps track of the client's data and context throughout multiple interactions or requests",
               "Designed to be more scalable and fault-tolerant because they do not require server resources to "
               "maintain client state",
               "12_choosing.ipynb", ())


def benefit_row(code: str) -> Row:
    """The row whose notebook judges benefit ``code`` (e.g. ``"5b"``)."""
    for r in ROWS:
        if code in r.benefits:
            return r
    raise KeyError(f"no row judges benefit {code!r}; benefits are {sorted(BENEFITS)}")


def row(key: str) -> Row:
    """The row called ``key`` (e.g. ``"scalability"``)."""
    for r in ROWS:
        if r.key == key:
            return r
    raise KeyError(f"no row {key!r}; rows are {[r.key for r in ROWS]}")
