"""The load generator is honest: statelab.load.run gets close to wrk on the same server.

Notebooks compare designs by the throughput ``statelab.load.run`` measures. If the generator were the
bottleneck, every design would look alike. So this measures it against ``wrk`` (a C load generator) on the
same in-process server in one run, trials alternating, and asserts the default (client threads in a child
process) reaches at least 70% of wrk's requests per second. The in-process-threads variant is reported
too: it shares the servers' interpreter and GIL, which is why it is not the default.
"""

from __future__ import annotations

import os
import statistics

import pytest

import statelab as sl
from statelab import load

pytestmark = pytest.mark.slow

MIN_RATIO = 0.70
TRIALS = 3
SECONDS = 2.0
CONCURRENCY = 8


def _wrk_required() -> bool:
    return os.environ.get("STATELAB_REQUIRE_BROWSER") == "1" or os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def wrk():
    if not load.wrk_available():
        message = f"wrk not found at {load.WRK} (Debian: apt-get install wrk)"
        if _wrk_required():
            pytest.fail(message + "; CI requires it")
        pytest.skip(message)
    return load.WRK


def test_load_run_reaches_70_percent_of_wrk(wrk, record_property):
    with sl.Server("stateless") as server:
        server.start()
        result = load.load_vs_wrk(server.url, seconds=SECONDS, trials=TRIALS, concurrency=CONCURRENCY)
    wrk_rps = statistics.median(result.wrk)
    child = statistics.median(result.child)
    threads = statistics.median(result.threads)
    print(f"\nGET /health, {CONCURRENCY} connections, {TRIALS} alternating trials of {SECONDS:g} s (req/s):"
          f"\n  wrk                              {wrk_rps:6.0f}  {[round(x) for x in result.wrk]}"
          f"\n  load.run (child process)         {child:6.0f}  {[round(x) for x in result.child]}"
          f"  ratio {result.child_ratio:.2f}"
          f"\n  load.run (in-process threads)    {threads:6.0f}  {[round(x) for x in result.threads]}"
          f"  ratio {result.threads_ratio:.2f}")
    record_property("wrk_rps", round(wrk_rps))
    record_property("load_run_ratio", round(result.child_ratio, 3))
    record_property("in_process_ratio", round(result.threads_ratio, 3))
    assert wrk_rps > 100, "wrk got almost nothing through: the server is not answering"
    assert result.errors == 0, f"{result.errors} requests failed under load.run"
    assert result.child_ratio >= MIN_RATIO, (
        f"load.run reached {result.child_ratio:.0%} of wrk's req/s ({child:.0f} vs {wrk_rps:.0f}); "
        f"at least {MIN_RATIO:.0%} expected")


def test_load_run_counts_what_it_sends():
    """The numbers it reports add up: a bounded run sends exactly its budget, all answered, tallied by server."""
    with sl.Cluster(2, mode="stateless") as cluster:
        res = sl.load.run(cluster.url, duration=10, concurrency=4, max_requests=200)
    assert res.requests == 200 and res.errors == 0 and res.statuses == {200: 200}
    assert len(res.latencies_ms) == 200 and 0 < res.p50_ms <= res.p95_ms
    assert sum(res.by_server.values()) == 200 and set(res.by_server) == {"server-0", "server-1"}
    assert res.rps > 0 and res.seconds < 10
