"""Servers as machines: start, crash, come back, stop; and no leaks, even when a notebook re-runs cells."""

from __future__ import annotations

import ast
import errno
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
from nbclient import NotebookClient

import statelab as sl
from conftest import statelab_threads
from statelab.service import Listener, wait_until

ROOT = Path(__file__).resolve().parents[2]


def port_of(url: str) -> int:
    return urlsplit(url).port


def refuses(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port (the connection is refused)."""
    with socket.socket() as s:
        s.settimeout(1)
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        return False


def raw_get(port: int, path: str = "/health", timeout: float = 2.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


# --------------------------------------------------------------------------- kill, restart, stop

def test_kill_is_fast_and_nothing_answers_afterwards():
    times = []
    for _ in range(3):
        server = sl.Server("stateful").start()
        port = server.port
        assert raw_get(port).startswith(b"HTTP/1.1 200")
        idle = socket.create_connection(("127.0.0.1", port))  # a connection open at the crash
        start = time.perf_counter()
        server.kill()
        times.append(time.perf_counter() - start)
        assert not server.alive
        assert refuses(port)
        idle.settimeout(2)
        try:  # the open connection is cut: it gets nothing but EOF or a reset
            idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert idle.recv(1024) == b""
        except OSError:
            pass
        finally:
            idle.close()
        assert sl.Client(server.url).health().error == "connection refused"
    assert statistics.median(times) < 0.15, times  # POLL_INTERVAL bounds it at about 50 ms; slack for a busy CPU
    assert max(times) < 0.5, times


LOGIN_HEAD = b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n"
LOGIN_BODY = b'{"user":"alice"}'


def answer_or_nothing(conn: socket.socket, data: bytes) -> bytes:
    """Send ``data`` and return what comes back before the connection ends (b"" when it was cut)."""
    try:
        conn.sendall(data)
        got = b""
        while chunk := conn.recv(65536):
            got += chunk
        return got
    except OSError:
        return b""
    finally:
        conn.close()


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_a_connection_opened_before_the_server_went_down_is_cut(how):
    store = sl.MemoryStore()  # the caller's store outlives the server: it shows what the dead server did
    server = sl.Server("stateful", store=store).start()
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=3)  # open, nothing sent yet
    half = socket.create_connection(("127.0.0.1", server.port), timeout=3)  # a login whose body is late
    half.sendall(LOGIN_HEAD)
    assert wait_until(lambda: len(server._httpd.open_connections) == 2)
    time.sleep(0.05)  # the login is now waiting for its body, inside the app
    getattr(server, how)()
    assert answer_or_nothing(idle, LOGIN_HEAD + LOGIN_BODY) == b"", f"{how}: an idle connection was answered"
    assert answer_or_nothing(half, LOGIN_BODY) == b"", f"{how}: a half-sent login was answered"
    assert store.count() == 0, f"{how}: a server that was down created a session"
    assert refuses(server.port)


def test_memory_sessions_die_with_their_server():
    with sl.Server("stateful") as server:
        server.start()
        alice = sl.Client(server.url)
        alice.login("alice")
        alice.add_to_cart("book")
        assert server.sessions == 1
        server.kill()
        assert server.sessions == 0
        server.start()
        assert server.sessions == 0
        assert alice.me().status == 401
        assert alice.cart().status == 401


@pytest.mark.parametrize("mode,store", [("stateful", "sqlite"), ("stateless", "memory")])
def test_sqlite_and_stateless_survive_kill_and_restart(mode, store):
    with sl.Server(mode, store=store) as server:
        server.start()
        alice = sl.Client(server.url)
        alice.login("alice")
        alice.add_to_cart("book", qty=2)
        url = server.url
        server.kill()
        assert alice.me().error == "connection refused"
        server.restart()
        assert server.url == url
        assert alice.me().body == {"user": "alice"}
        assert alice.cart().body == {"cart": [{"item": "book", "qty": 2}]}


def test_restart_same_url_same_name_empty():
    with sl.Server("stateful") as server:
        server.start()
        name, url = server.name, server.url
        for user in ("a", "b", "c"):
            sl.Client(url).login(user)
        assert server.sessions == 3 and server.requests == 3
        server.restart()
        assert server.alive and server.name == name and server.url == url
        assert server.sessions == 0
        ex = sl.Client(url).health()
        assert ex.status == 200 and ex.served_by == name
        assert ex.body["sessions"] == 0 and ex.body["requests"] == 1
        server.kill()
        server.restart()  # restart of a dead server just starts it
        assert sl.Client(url).health().status == 200


def test_stop_is_idempotent():
    server = sl.Server("stateless")
    server.stop()  # never started: nothing to do
    server.start()
    port = server.port
    server.stop()
    server.stop()
    server.kill()
    assert not server.alive and refuses(port)
    assert server.sessions == 0 and server.requests == 0
    with sl.Cluster(2) as c:
        pass
    c.stop()
    c.stop()
    assert c.alive == {"server-0": False, "server-1": False} and not c.all_alive and c.alive_count == 0


def test_port_clash_raises_port_in_use_error():
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        before = len(statelab_threads())
        server = sl.Server("stateful", port=port)
        with pytest.raises(sl.PortInUseError) as info:
            server.start()
        assert isinstance(info.value, OSError) and info.value.errno == errno.EADDRINUSE
        message = str(info.value)
        assert str(port) in message and "in use" in message and "port=0" in message
        assert not server.alive and len(statelab_threads()) == before
        with pytest.raises(sl.PortInUseError):
            sl.serve("stateless", port=port)
        with sl.Server("stateful") as ok:  # another port still works
            ok.start()
            with pytest.raises(sl.PortInUseError, match=str(ok.port)):
                sl.Server("stateful", port=ok.port).start()  # a clash with ourselves too
            assert sl.Client(ok.url).health().status == 200
    sl.stop_all()


def test_stop_all_stops_everything():
    servers = [sl.serve("stateful"), sl.serve("stateless")]
    cluster = sl.Cluster(2, mode="stateless")
    balancer = sl.LoadBalancer(servers)
    urls = [s.url for s in servers] + [s.url for s in cluster.servers] + [cluster.url, balancer.url]
    assert all(sl.Client(u).health().status == 200 for u in urls)
    assert len(statelab_threads()) == 6
    assert sl.stop_all() >= 4
    assert statelab_threads() == []
    assert all(refuses(port_of(u)) for u in urls)
    assert not any(s.alive for s in servers + cluster.servers) and not balancer.alive
    assert sl.stop_all() == 0 or not statelab_threads()  # a second call is harmless


def test_no_thread_leak_after_stop():
    baseline = threading.active_count()
    for _ in range(3):
        with sl.Cluster(3, mode="stateful", store="sqlite") as c:
            alice = sl.Client(c.url)
            alice.login("alice")
            for _ in range(10):
                alice.add_to_cart("book")
            c.kill(0)
            alice.cart()
            c.restart(0)
            alice.close()
    assert statelab_threads() == []
    # werkzeug's per-request threads end with their requests
    assert wait_until(lambda: threading.active_count() <= baseline, timeout=3), (
        baseline, [t.name for t in threading.enumerate()])


def test_add_server_joins_the_rotation_at_once():
    with sl.Cluster(2, mode="stateless", balancer="round_robin") as c:
        client = sl.Client(c.url)
        new = c.add_server()
        assert new.name == "server-2" and new.alive and len(c.servers) == 3
        seen = [client.health().served_by for _ in range(3)]
        assert sorted(seen) == ["server-0", "server-1", "server-2"]
        assert c.balancer.counts["server-2"] >= 1
        client.login("alice")
        token_check = sl.Client(new.url)
        token_check.token = client.token
        assert token_check.me().status == 200  # the new server shares the keyring


def test_client_never_raises_on_a_dead_server():
    server = sl.Server("stateful").start()
    alice = sl.Client(server.url, timeout=2)
    assert alice.login("alice").status == 200
    server.kill()
    for ex in (alice.me(), alice.cart(), alice.add_to_cart("book"), alice.logout(), alice.health(),
               alice.catalog(), alice.login("alice"), alice.request("DELETE", "/x")):
        assert ex.status is None and ex.error == "connection refused" and not ex.ok
        assert "connection refused" in ex.summary()
    assert len(alice.history) == 9
    with socket.socket() as s:  # a port nobody ever listened on
        s.bind(("127.0.0.1", 0))
        never = s.getsockname()[1]
    assert sl.Client(f"http://127.0.0.1:{never}").me().error == "connection refused"


def test_killed_cluster_server_is_skipped_and_comes_back():
    with sl.Cluster(2, mode="stateful", store="sqlite") as c:
        alice = sl.Client(c.url)
        alice.login("alice")
        c.kill("server-1")
        assert c.alive == {"server-0": True, "server-1": False} and not c.all_alive and c.alive_count == 1
        assert [alice.me().served_by for _ in range(4)] == ["server-0"] * 4
        c.restart(1)
        assert {alice.me().served_by for _ in range(4)} == {"server-0", "server-1"}
        with pytest.raises(IndexError):
            c.kill(5)
        with pytest.raises(KeyError):
            c.kill("server-9")


# --------------------------------------------------------------------------- a real notebook kernel

CELL_A = "import statelab as sl\ns = sl.serve()"
RECORD = "ports = globals().get('ports', []) + [s.port]"
PROBE = ("{'threads': sorted(t.name for t in __import__('threading').enumerate() if t.name.startswith('statelab-')),"
         " 'live': sorted(o.url for o in sl.service.registry.live() if getattr(o, 'alive', False)),"
         " 'ports': ports}")


def kernel_eval(kc, expr: str, metadata: dict | None = None, code: str = ""):
    """Run ``code`` in the kernel (as a cell with ``metadata``) and return ``expr`` evaluated there."""
    msg = kc.session.msg("execute_request", {
        "code": code, "silent": False, "store_history": True, "user_expressions": {"x": expr},
        "allow_stdin": False, "stop_on_error": True}, metadata=metadata or {})
    kc.shell_channel.send(msg)
    while True:
        reply = kc.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            break
    content = reply["content"]
    assert content["status"] == "ok", content
    value = content["user_expressions"]["x"]
    assert value["status"] == "ok", value
    return ast.literal_eval(value["data"]["text/plain"])


def test_rerunning_a_notebook_cell_stops_the_previous_runs_servers(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL_A), nbformat.v4.new_code_cell(RECORD)]
    client = NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        for _ in range(4):  # the learner presses Shift+Enter on cell A four times
            client.execute_cell(nb.cells[0], 0)
            client.execute_cell(nb.cells[1], 1)
        kc = client.km.blocking_client()
        kc.start_channels()
        try:
            state = kernel_eval(kc, PROBE)
            assert len(state["ports"]) == 4
            assert len(state["threads"]) == 1, state  # one server thread, not four
            assert state["live"] == [f"http://127.0.0.1:{state['ports'][-1]}"]
            current = state["ports"][-1]
            assert raw_get(current).startswith(b"HTTP/1.1 200")
            assert all(refuses(p) for p in state["ports"][:-1] if p != current)

            # JupyterLab sends the cell id: an edited cell re-run under the same id replaces its cluster
            meta = {"cellId": "cell-b"}
            kernel_eval(kc, "1", meta, "c = sl.Cluster(2)")
            kernel_eval(kc, "1", meta, "c = sl.Cluster(3, mode='stateless')")
            state = kernel_eval(kc, PROBE)
            assert len(state["threads"]) == 1 + 3 + 1, state  # cell A's server, 3 servers, 1 balancer
            cluster_ports = kernel_eval(kc, "[x.port for x in c.servers] + [c.balancer.port]")
            assert all(not refuses(p) for p in cluster_ports)
            recorded = [current, *cluster_ports]
        finally:
            kc.stop_channels()
    # the kernel has shut down: nothing it started still listens
    assert wait_until(lambda: all(refuses(p) for p in recorded), timeout=5), recorded


# --------------------------------------------------------------------------- a class on one machine

def squat(port: int) -> socket.socket:
    """Another program takes ``port`` (as another learner's kernel might while our server is down)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def test_load_run_targets_only_this_interpreter_s_own_servers():
    with socket.socket() as foreign:  # someone else's server on this machine
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        with pytest.raises(ValueError, match="not one of the servers") as info:
            sl.load.run(f"http://127.0.0.1:{foreign.getsockname()[1]}", duration=1, max_requests=5)
        assert str(foreign.getsockname()[1]) in str(info.value)
    with sl.Cluster(1, mode="stateless") as c:
        stopped = sl.Server("stateless").start()
        stopped.stop()
        with pytest.raises(ValueError, match="not one of the servers"):
            sl.load.run(stopped.url, duration=1, max_requests=5)
        with pytest.raises(ValueError, match="127.0.0.1"):
            sl.load.run(c.url.replace("127.0.0.1", "10.0.0.1"), duration=1, max_requests=5)
        for target in (c.url, c.servers[0].url, c):  # its own balancer and servers: fine, url or object
            assert sl.load.run(target, duration=5, max_requests=5, separate_process=False).statuses == {200: 5}


@pytest.mark.skipif(not Listener.KEEPS_PORT, reason="only Linux keeps a port bound once its socket stops listening")
def test_a_killed_server_keeps_its_port_so_nobody_can_take_it():
    server = sl.Server("stateless").start()
    port = server.port
    server.kill()
    assert refuses(port)  # a crash: refused at once...
    with pytest.raises(OSError) as info:
        squat(port)  # ...but the port is still ours (statelab.service.Listener)
    assert info.value.errno == errno.EADDRINUSE
    assert server.restart().port == port and sl.Client(server.url).health().status == 200
    server.stop()


def test_restart_on_a_port_taken_meanwhile_says_so_or_moves(capfd):
    server = sl.Server("stateless").start()
    port = server.port
    server.stop()  # a clean stop frees the port (a kill would keep it)
    with squat(port):
        with pytest.raises(sl.PortInUseError) as info:
            server.restart()
        assert capfd.readouterr().err == ""  # said once, in the exception: nothing printed on stderr
        message = str(info.value)
        assert str(port) in message and "restart(port=0)" in message and server.name in message
        server.restart(port=0)  # come back anywhere free: a new url
        assert server.alive and server.port != port and sl.Client(server.url).health().status == 200
    server.stop()


def test_a_cluster_follows_a_server_that_had_to_move(capfd):
    with sl.Cluster(2, mode="stateless") as c:
        old = c.servers[1].port
        c.servers[1].stop()  # a clean stop frees the port (a kill would keep it)
        with squat(old):
            moved = c.restart(1)
            assert moved.alive and moved.port != old and capfd.readouterr().err == ""
            seen = {sl.Client(c.url).health().served_by for _ in range(6)}
        assert seen == {"server-0", "server-1"}


def test_serve_sqlite_leaves_nothing_in_the_temp_folder(tmp_path):
    script = ("import statelab as sl, sys\n"
              "s = sl.serve(store='sqlite'); c = sl.Client(s.url); c.login('alice'); c.add_to_cart('book')\n"
              "s.restart(); assert c.cart().body['cart'], c.cart().body\n"  # a crash keeps the shared store
              "if sys.argv[1] == 'stop': s.stop()\n")  # else: leave it to interpreter exit
    for how in ("stop", "exit"):
        tmp = tmp_path / how
        tmp.mkdir()
        env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-c", script, how], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        assert list(tmp.iterdir()) == [], f"after {how}: {[p.name for p in tmp.iterdir()]}"


def test_cluster_stop_leaves_a_store_the_caller_owns_open(tmp_path):
    store = sl.SqliteStore(tmp_path / "mine.sqlite3")
    with sl.Cluster(2, mode="stateful", store=store) as c:
        sl.Client(c.url).login("alice")
    assert store.count() == 1  # still open, and still holding the session
    store.close()
