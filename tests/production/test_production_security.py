"""The production stack on a machine shared by several learners (issue 17): what another local user can
and cannot do to one learner's Valkey, gunicorn and HAProxy, and the limits that keep the stack honest.

The "other learner" is ``nobody`` (root drops to it with ``setpriv``); where that is impossible the
tests that need it are skipped with the reason. Every test here failed before its fix (the report
of issue 17 says how each was checked).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time

import psutil
import pytest
import requests
from needs import need

import statelab as sl
from statelab.production import Gunicorn, RedisServer, RedisStore
from statelab.production import gunicorn as gunicorn_module
from statelab.production import haproxy as haproxy_module
from statelab.production import redis as redis_module
from statelab.shop.sessions import StoreUnavailable
from statelab.shop.tokens import MAX_TOKEN


def _need_redis() -> None:
    need(redis_module.server_binary() is not None and redis_module.client_available(), redis_module.HOW_TO_GET)


def _need_gunicorn() -> None:
    need(gunicorn_module.available(), gunicorn_module.HOW_TO_GET)


def _other_user_reason() -> str | None:
    """Why this machine cannot run a test as another local user, or None when it can."""
    if os.geteuid() != 0:
        return "dropping to another local user needs root (tests run as an ordinary user here)"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is missing"
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return "there is no 'nobody' user"
    probe = subprocess.run(_AS_NOBODY + ["-c", "print(1)"], capture_output=True, timeout=20)
    if probe.returncode != 0:
        return f"python cannot run as nobody: {probe.stderr.decode(errors='replace')[-200:]}"
    return None


_AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-I", "-S"]


@pytest.fixture(scope="module")
def other_user():
    reason = _other_user_reason()
    if reason:
        pytest.skip(f"no second local user to attack with: {reason}")  # skipped in CI too: a container may lack it


def as_nobody(code: str, *args: str) -> dict:
    """Run ``code`` as the other learner; it prints one JSON object, returned here."""
    done = subprocess.run(_AS_NOBODY + ["-c", code, *args], capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return json.loads(done.stdout)


# --------------------------------------------------------------------------- H1: no secret for another user

POLLER = r"""
import json, os, select, sys
seen, rounds = set(), 0
while not select.select([sys.stdin], [], [], 0)[0]:
    rounds += 1
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for what in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{what}", "rb") as f:
                    seen.add(f.read().decode(errors="replace"))
            except OSError:
                pass
print(json.dumps({"rounds": rounds, "seen": sorted(seen)}))
"""

TRY_STORE = r"""
import json, os, socket, sys
where, config, workdir = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
out = {}
try:
    if isinstance(where, str):
        s = socket.socket(socket.AF_UNIX); s.settimeout(1); s.connect(where)
    else:
        s = socket.create_connection(tuple(where), timeout=1)
    s.sendall(b"PING\r\n"); out["connect"] = s.recv(100).decode(errors="replace")
except OSError as e:
    out["connect"] = type(e).__name__
try:
    out["config"] = open(config).read()
except OSError as e:
    out["config"] = type(e).__name__
try:
    out["listdir"] = os.listdir(workdir)
except OSError as e:
    out["listdir"] = type(e).__name__
print(json.dumps(out))
"""


def test_another_user_finds_no_password_or_key_and_cannot_reach_the_store(other_user):
    _need_redis()
    _need_gunicorn()
    poller = subprocess.Popen(_AS_NOBODY + ["-c", POLLER], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    secrets_seen: list[str] = []
    try:
        time.sleep(0.2)  # the poller is scanning before anything starts
        with RedisServer() as store:
            secrets_seen.append(store.password)
            for _ in range(3):  # every start is a chance to catch the command line
                store.kill()
                store.restart()
            shop = Gunicorn(1, "stateless", store=store)
            secrets_seen.append(shop.secret)
            try:
                assert sl.Client(shop.url).login("alice").status == 200
            finally:
                shop.stop()
            config = os.path.join(store.workdir, "valkey.conf")
            tried = as_nobody(TRY_STORE, json.dumps(store.endpoint), config, store.workdir)
    finally:
        out, _ = poller.communicate(b"stop\n", timeout=30)
    report = json.loads(out)
    assert report["rounds"] > 3, report["rounds"]  # it really watched
    seen = "\n".join(report["seen"])
    assert "valkey" in seen or "redis" in seen  # it did see the store's process...
    for secret in secrets_seen:
        assert secret not in seen  # ...but neither the store's password nor the shop's key
    assert "requirepass" not in seen
    assert tried["connect"] in ("PermissionError", "FileNotFoundError"), tried  # the socket is in a 0700 folder
    assert tried["config"] == "PermissionError" and tried["listdir"] == "PermissionError", tried


# --------------------------------------------------------------------------- H2: the same address, unsquattable

SQUAT = r"""
import json, socket, sys
where = json.loads(sys.argv[1])
try:
    if isinstance(where, str):
        s = socket.socket(socket.AF_UNIX); s.bind(where)
    else:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(tuple(where))
    s.listen(8)
    print(json.dumps({"bound": True}))
except OSError as e:
    print(json.dumps({"bound": False, "error": type(e).__name__}))
"""


def test_a_restarted_store_keeps_its_address_nobody_can_take_it_and_the_shop_keeps_working(other_user):
    _need_redis()
    _need_gunicorn()
    with RedisServer() as store:
        before = store.endpoint
        shop = Gunicorn(2, "stateful", store=store)
        try:
            assert sl.Client(shop.url).login("alice").status == 200
            store.kill()
            squat = as_nobody(SQUAT, json.dumps(before))  # the moment the address is free
            assert squat == {"bound": False, "error": "PermissionError"}, squat
            store.restart()
            assert store.endpoint == before and store.ping()
            for i in range(4):  # both workers, each with its old connection pool: they reconnect to the same place
                assert sl.Client(shop.url).login(f"bob{i}").status == 200
        finally:
            shop.stop()


# --------------------------------------------------------------------------- M3 and R6: limits, full store

def test_the_store_closes_idle_clients_bounds_clients_and_evicts_only_sessions():
    _need_redis()
    with RedisServer() as store:
        config = store.client().config_get("*")
    assert 0 < int(config["timeout"]) <= 300
    assert 0 < int(config["maxclients"]) <= 1000
    assert int(config["maxmemory"]) > 0
    assert config["maxmemory-policy"] == "volatile-lru"  # sessions (all with a TTL) may go; carts never do
    assert config["port"] == "0"  # no TCP port at all


def _fill(store: RedisServer) -> None:
    """Fill ``store`` past its ``maxmemory`` with keys that never expire, as carts of ``cart="db"`` do: a write
    may then evict every session (they expire anyway) and still find no room."""
    admin = store.client()
    for i in range(16):
        admin.set(f"filler:{i}", "x" * 32768)
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory", used - 128 * 1024)


def test_a_full_store_is_a_json_503_and_a_refused_command_is_store_unavailable():
    _need_redis()
    _need_gunicorn()
    with RedisServer() as store:
        shop = Gunicorn(1, "stateful", store=store)
        try:
            alice = sl.Client(shop.url)
            assert alice.login("alice").status == 200
            _fill(store)
            full = sl.Client(shop.url).login("bob")
            assert full.status == 503, full
            assert "full" in full.body["error"], full.body
            # sessions (all with an expiry) went first, the keys without one (carts, here the filler) stayed
            assert alice.me().status == 401 and store.client().exists("filler:0")
        finally:
            shop.stop()
        store.client().config_set("maxmemory", "64mb")
        sessions = RedisStore(store.url, "wrongtype")
        store.client().set(sessions.key("x" * 43), "not a hash")
        with pytest.raises(StoreUnavailable, match="refused"):
            sessions.get("x" * 43)  # WRONGTYPE: a ResponseError, not a 500
        sessions.close()


# --------------------------------------------------------------------------- R5: limits that agree

def _random_items(n: int) -> list[str]:
    import random

    rng = random.Random(17)
    return ["".join(rng.choice(string.ascii_letters) for _ in range(64)) for _ in range(n)]


def _grow_until_refused(url: str) -> tuple[int, sl.Client]:
    alice = sl.Client(url)
    assert alice.login("alice").status == 200
    for i, item in enumerate(_random_items(200)):
        ex = alice.add_to_cart(item)
        assert ex.status in (200, 413), (i, ex)  # never a 431: each write sends the token the last one issued
        if ex.status == 413:
            assert "token" in ex.body["error"] and "unchanged" in ex.body["error"]
            assert alice.me().status == 200  # the biggest token issued is still accepted on the whole path
            return i, alice
    raise AssertionError("no 413 in 200 lines")


def test_the_token_limit_is_below_every_header_limit_so_a_big_cart_is_a_413_at_the_write():
    _need_gunicorn()
    shop = Gunicorn(1, "stateless")
    try:
        lines, alice = _grow_until_refused(shop.url)
        assert alice.cart().status == 200 and len(alice.cart().body["cart"]) == lines
        if haproxy_module.binary() is None:
            need(False, haproxy_module.HOW_TO_GET)
        front = haproxy_module.HAProxy([shop])
        try:
            through, bob = _grow_until_refused(front.url)
            assert abs(through - lines) <= 1 and bob.cart().status == 200
        finally:
            front.stop()
    finally:
        shop.stop()
    assert len("Authorization: Bearer ") + MAX_TOKEN + len("\r\n") <= gunicorn_module.FIELD_LIMIT


# --------------------------------------------------------------------------- R6 and L4: gunicorn's own answers

@pytest.fixture(scope="module")
def shop():
    _need_gunicorn()
    server = Gunicorn(2, "stateful", env={"STATELAB_READ_TIMEOUT": "2"})
    yield server
    server.stop()


def _raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", 400),
])
def test_what_gunicorn_refuses_itself_is_answered_in_json(shop, request_bytes, status):
    answer = _raw(shop.port, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == str(status).encode(), answer[:300]
    assert b"content-type: application/json" in head.lower(), answer[:300]
    assert isinstance(json.loads(body)["error"], str)


def test_slow_clients_hold_threads_not_workers_and_are_cut_with_a_json_408(shop):
    slow = [socket.create_connection(("127.0.0.1", shop.port), timeout=6) for _ in range(6)]
    for s in slow:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    stop = threading.Event()

    def trickle() -> None:  # one header byte at a time, for longer than the deadline
        while not stop.wait(0.3):
            for s in slow:
                try:
                    s.sendall(b"X")
                except OSError:
                    pass

    pump = threading.Thread(target=trickle, daemon=True)
    pump.start()
    try:
        time.sleep(0.3)
        served_by, slowest = set(), 0.0
        for _ in range(8):
            start = time.monotonic()
            ex = sl.Client(shop.url).health()
            slowest = max(slowest, time.monotonic() - start)
            assert ex.status == 200, ex
            served_by.add(ex.served_by)
        assert slowest < 1.5, f"a request waited {slowest:.1f} s behind 6 slow clients"
        cut = []
        for s in slow:  # each slow client gets a 408 within the 2 s deadline (+ the machine's noise)
            s.settimeout(6)
            cut.append(s.recv(4096))
    finally:
        stop.set()
        pump.join()
        for s in slow:
            s.close()
    assert all(a.startswith(b"HTTP/1.1 408 ") and b"application/json" in a for a in cut), cut


def test_a_body_that_does_not_arrive_in_time_is_a_json_408(shop):
    head = (f"POST /login HTTP/1.1\r\nHost: 127.0.0.1:{shop.port}\r\nContent-Type: application/json\r\n"
            "Content-Length: 20\r\n\r\n{\"us").encode()
    start = time.monotonic()
    answer = _raw(shop.port, head, timeout=8)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"application/json" in answer.lower(), answer[:300]
    assert time.monotonic() - start < 6


# --------------------------------------------------------------------------- L1: HAProxy's cookie

def test_two_haproxy_balancers_name_their_sticky_cookies_apart():
    need(haproxy_module.binary() is not None, haproxy_module.HOW_TO_GET)
    backend = sl.serve("stateful")
    fronts = [haproxy_module.HAProxy([backend], sticky=True) for _ in range(2)]
    try:
        names = []
        for front in fronts:
            r = requests.post(f"{front.url}/login", json={"user": "alice"}, timeout=10,
                              headers={"Origin": front.url})
            assert r.status_code == 200, r.text
            names.append({c.name for c in r.cookies} - {f"sid-{backend.port}"})
        assert names[0] and names[1] and not names[0] & names[1], names  # a browser keeps both apart
    finally:
        for front in fronts:
            front.stop()
        backend.stop()


# --------------------------------------------------------------------------- nothing left after a killed kernel

KERNEL_CODE = """
import statelab as sl
from statelab.production import Gunicorn, RedisServer
from statelab.production.haproxy import HAProxy, binary
r = RedisServer(); g = Gunicorn(2, "stateful", store=r)
fronts = [HAProxy([g])] if binary() else []
print("PIDS", r.pid, g.pid, *g.worker_pids(), *[f.pid for f in fronts], flush=True)
"""


def _statelab_folders(tmp: str) -> list[str]:
    return sorted(n for n in os.listdir(tmp) if n.startswith("statelab-"))


def test_a_sigkilled_kernel_leaves_no_process_and_no_folder():
    _need_redis()
    _need_gunicorn()
    from jupyter_client.manager import start_new_kernel

    tmp = tempfile.mkdtemp(prefix="slk-")  # short: the store's socket path must fit in 108 bytes
    try:
        env = {**os.environ, "TMPDIR": tmp,
               "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
        km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=tmp)
        out: list = []
        reply = kc.execute_interactive(KERNEL_CODE, timeout=60, output_hook=out.append)
        assert reply["content"]["status"] == "ok", reply["content"]
        text = "".join(m["content"].get("text", "") for m in out if m["msg_type"] == "stream")
        pids = [int(p) for p in text.split("PIDS", 1)[1].split()]
        assert len(_statelab_folders(tmp)) >= 2  # the store's and the shop's (and the balancer's)
        kc.stop_channels()
        km.shutdown_kernel(now=True)  # SIGKILL to the kernel's process group: no atexit runs
        deadline = time.monotonic() + 8
        while (_statelab_folders(tmp) or any(_running(p) for p in pids)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [p for p in pids if _running(p)] == []
        assert _statelab_folders(tmp) == []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_children_start_without_preexec_fn_and_still_die_with_their_parent():
    """Issue 18: a launcher asks for the parent-death signal and then becomes the program."""
    child = subprocess.Popen([sys.executable, "-c", """
import os, sys, time
from statelab.production.process import ProcessService
svc = ProcessService("probe")
svc._spawn(["/bin/sleep", "60"])
print(svc.pid, svc.workdir, flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": os.getcwd()}, start_new_session=True)
    try:
        pid, workdir = child.stdout.readline().split()
        pid = int(pid)
        deadline = time.monotonic() + 5
        while psutil.Process(pid).cmdline() != ["/bin/sleep", "60"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert psutil.Process(pid).cmdline() == ["/bin/sleep", "60"]  # the launcher became the program
        assert psutil.Process(pid).ppid() == child.pid
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(5)
        deadline = time.monotonic() + 5
        while (_running(pid) or os.path.exists(workdir)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(pid) and not os.path.exists(workdir)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)


def test_a_folder_whose_maker_is_gone_is_swept_at_the_next_start(tmp_path, monkeypatch):
    """Should the keeper itself have been killed, the next process of this user that makes a folder sweeps it."""
    from statelab.service import cleanup

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale, mine, foreign = tmp_path / "statelab-redis-stale", tmp_path / "statelab-redis-live", tmp_path / "statelab-x"
    for folder in (stale, mine, foreign):
        folder.mkdir()
    (stale / ".statelab-owner").write_text(f"{dead.stdout.strip()} 1\n")
    (mine / ".statelab-owner").write_text(f"{os.getpid()} {cleanup.process_start_time(os.getpid())}\n")
    assert cleanup.sweep_stale_folders() == [str(stale)]
    assert not stale.exists() and mine.exists() and foreign.exists()  # no owner file: not ours to judge
