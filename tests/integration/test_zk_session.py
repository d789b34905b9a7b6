"""Session handling in shared/zk/zk.c: connection, expiry reported to the owner,
a new session opened by zk itself, ephemerals (components) re-registered and
locks no longer held after expiry; a mere connection loss keeps the session."""
import json
import signal
import time

import pytest

from test_zk_lock import zktool  # noqa: F401  (fixture)


def expire_by_sigstop(t, timeout_s):
    """Freeze the process longer than its session timeout so the server expires it."""
    t.kill(signal.SIGSTOP)
    time.sleep(timeout_s + 2.0)
    t.kill(signal.SIGCONT)


def test_connect_reports_granted_timeout_and_chroot_root(kazoo, zktool):  # noqa: F811
    """A fresh zktool is connected with the session timeout it asked for."""
    t = zktool(4000)
    answer = t.cmd("session")
    assert answer.startswith("connected timeout=4000 gen=0"), answer


def test_expiry_is_reported_and_component_reregistered(kazoo, zktool):  # noqa: F811
    """SIGSTOP past the session timeout: the owner sees EXPIRED then CONNECTED
    (a new session), the old ephemeral component is gone and a new one with
    the same content is registered automatically."""
    t = zktool(2000)
    path = t.cmd("register launcher hostx")
    assert t.cmd("set-state running") == "ok"
    expire_by_sigstop(t, 2.0)
    t.wait_event("STATE EXPIRED", timeout=15)
    t.wait_event("STATE CONNECTED", timeout=15)
    assert kazoo.exists(path) is None
    children = kazoo.get_children("/nodepool/components/launcher")
    assert len(children) == 1
    new_path = "/nodepool/components/launcher/" + children[0]
    assert new_path != path
    d = json.loads(kazoo.get(new_path)[0])
    assert d["state"] == "running" and d["hostname"] == "hostx"
    assert kazoo.get(new_path)[1].ephemeralOwner != 0
    # The tool now lives in session generation 1 and still answers.
    assert t.cmd("session").startswith("connected timeout=2000 gen=1")


def test_lock_not_held_after_expiry_and_can_be_retaken(kazoo, zktool):  # noqa: F811
    """A lock whose session expired reports not held; kazoo can take it in
    the meantime; after kazoo releases, poold locks again in the new session."""
    t = zktool(2000)
    assert t.cmd("lock /nodes/9/lock") == "acquired"
    assert t.cmd("held /nodes/9/lock") == "held"
    expire_by_sigstop(t, 2.0)
    t.wait_event("STATE EXPIRED", timeout=15)
    assert t.cmd("held /nodes/9/lock") == "not-held"
    lock = kazoo.Lock("/nodes/9/lock")
    assert lock.acquire(timeout=5)
    t.wait_event("STATE CONNECTED", timeout=15)
    assert t.cmd("trylock /nodes/9/lock") == "busy"
    lock.release()
    assert t.cmd("trylock /nodes/9/lock") == "acquired"


def test_server_restart_suspends_then_resumes_same_session(zktool_factory_private_zk):
    """A private ZooKeeper is restarted (same port, same data): the owner sees
    SUSPENDED then CONNECTED in the same session (generation unchanged), the
    lock is still held and excludes kazoo, and the cache picks up a change
    made right after the restart."""
    server, t, kazoo_client = zktool_factory_private_zk
    server.stop()
    t.wait_event("STATE SUSPENDED", timeout=10)
    server.start()
    t.wait_event("STATE CONNECTED", timeout=20)
    assert "STATE EXPIRED" not in t.events
    assert t.cmd("session").startswith("connected timeout=20000 gen=0")
    assert t.cmd("held /s/lock") == "held"
    kazoo_client.start(timeout=20)
    assert kazoo_client.Lock("/s/lock").acquire(blocking=False) is False
    kazoo_client.set("/s/a", b"2")
    t.wait_event(lambda l: l.startswith("CACHE UPDATED /s/a ") and l.endswith(" 2"), timeout=10)
    kazoo_client.stop()
    kazoo_client.close()


@pytest.fixture
def zktool_factory_private_zk(monkeypatch, tmp_path):
    import harness
    from conftest import ZK_TLS
    from test_zk_lock import ZkTool

    server = harness.ZooKeeperServer(workdir=str(tmp_path), tls=ZK_TLS).start()
    port = server.port
    # Restart on the same port: the client only knows that address.
    monkeypatch.setattr(harness, "free_port", lambda: port)
    k = server.kazoo(timeout=10)
    k.start(timeout=15)
    k.create("/s/a", b"1", makepath=True)
    k.stop()
    t = ZkTool(server.hosts, 20000, server.zktool_args())
    assert t.cmd("lock /s/lock") == "acquired"
    assert t.cmd("watch /s 1 locks") == "watching"
    t.wait_event("CACHE SYNCED")
    try:
        yield server, t, k
    finally:
        t.close()
        server.stop()
