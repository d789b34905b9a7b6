"""poold's ZooKeeper lock (shared/zk/zk_lock.c, driven through tests/tools/zktool)
against kazoo's real Lock recipe on a real ZooKeeper: they must exclude each
other and queue fairly, exactly as Zuul's executors and nodepool's launchers do.

ZkTool (also used by the other test_zk_*.py / test_components.py files) runs
zktool and talks to it line by line."""
import os
import queue
import re
import signal
import subprocess
import threading
import time

import pytest

from harness import program

ASYNC_PREFIXES = ("STATE ", "CACHE ", "ASYNC ")
CONTENDER_RE = re.compile(r"^[0-9a-f]{32}__lock__\d{10}$")


class ZkTool:
    """A running zktool: cmd() sends one line and returns its answer; lines of
    asynchronous news (STATE/CACHE/ASYNC) are collected in self.events."""

    def __init__(self, hosts, session_timeout_ms=10000, tls_args=()):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1")
        self.proc = subprocess.Popen([program("zktool"), hosts, str(session_timeout_ms)] + list(tls_args),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1, env=env)
        self.lines = queue.Queue()
        self.events = []
        self.stderr = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, None), daemon=True).start()
        assert self.answer(20) == "ready"

    def _pump(self, stream, q):
        for line in stream:
            if q is None:
                self.stderr.append(line)
            else:
                q.put(line.rstrip("\n"))
        if q is not None:
            q.put(None)

    def _next(self, timeout):
        line = self.lines.get(timeout=timeout)
        if line is None:
            raise EOFError("zktool exited (%s): %s" % (self.proc.wait(10), "".join(self.stderr[-20:])))
        return line

    def answer(self, timeout=10):
        deadline = time.time() + timeout
        while True:
            line = self._next(max(0.01, deadline - time.time()))
            if line.startswith(ASYNC_PREFIXES):
                self.events.append(line)
            else:
                return line

    def answer_event(self, timeout=10):
        """The next asynchronous line (already collected ones first)."""
        if self.events:
            return self.events.pop(0)
        line = self._next(timeout)
        assert line.startswith(ASYNC_PREFIXES), line
        return line

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def cmd(self, line, timeout=10):
        self.send(line)
        return self.answer(timeout)

    def wait_event(self, pred, timeout=10):
        """Wait for an asynchronous line matching pred (string prefix or callable)."""
        match = pred if callable(pred) else (lambda l: l.startswith(pred))
        deadline = time.time() + timeout
        while True:
            for i, line in enumerate(self.events):
                if match(line):
                    del self.events[: i + 1]
                    return line
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no event matching %r; seen %r" % (pred, self.events))
            try:
                line = self._next(left)
            except queue.Empty:
                continue
            self.events.append(line)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.cmd("quit")
            except (EOFError, BrokenPipeError, queue.Empty):
                pass
            self.proc.stdin.close()
            self.proc.wait(20)
        # A clean exit is part of every test: ASan/LSan report through the exit code.
        assert self.proc.returncode == 0, "".join(self.stderr[-40:])

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.proc.wait(10)


@pytest.fixture
def zktool(zk_server, zk_hosts):
    tools = []

    def start(timeout_ms=10000):
        t = ZkTool(zk_hosts, timeout_ms, zk_server.zktool_args())
        tools.append(t)
        return t

    yield start
    for t in tools:
        if t.proc.poll() is None:
            t.close()


def second_kazoo(zk_server, zk_chroot, timeout=10.0):
    c = zk_server.kazoo(zk_chroot, timeout=timeout)
    c.start(timeout=15)
    return c


def test_kazoo_held_lock_excludes_poold_until_released(kazoo, zktool):
    """kazoo holds L: poold's try-lock is busy, a blocking acquire times out
    (leaving no contender behind), and poold gets L once kazoo releases it."""
    lock = kazoo.Lock("/nodepool/nodes/0000000001/lock", "zuul-executor")
    assert lock.acquire(timeout=5)
    t = zktool()
    assert t.cmd("trylock /nodepool/nodes/0000000001/lock") == "busy"
    assert t.cmd("acquire-timeout /nodepool/nodes/0000000001/lock 300") == "timeout"
    # Our contenders were removed: only kazoo's remains.
    assert len(kazoo.get_children("/nodepool/nodes/0000000001/lock")) == 1
    lock.release()
    assert t.cmd("trylock /nodepool/nodes/0000000001/lock") == "acquired"
    assert t.cmd("held /nodepool/nodes/0000000001/lock") == "held"


def test_poold_lock_excludes_kazoo_and_has_kazoo_contender_format(kazoo, zktool):
    """poold holds L: kazoo's non-blocking acquire fails; kazoo sees our
    contender as '<uuid4 hex>__lock__<seq10>' with our identifier as data;
    release lets kazoo in and leaves the lock dir in place."""
    t = zktool()
    assert t.cmd("lock /nodepool/requests-lock/100-0000000001 launcher-a") == "acquired"
    lock = kazoo.Lock("/nodepool/requests-lock/100-0000000001", "zuul")
    assert lock.acquire(blocking=False) is False
    assert lock.contenders() == ["launcher-a"]
    children = kazoo.get_children("/nodepool/requests-lock/100-0000000001")
    assert len(children) == 1 and CONTENDER_RE.match(children[0]), children
    data, stat = kazoo.get("/nodepool/requests-lock/100-0000000001/" + children[0])
    assert data == b"launcher-a"
    assert stat.ephemeralOwner != 0
    # ensure_path made the dirs with empty data, like kazoo.
    assert kazoo.get("/nodepool/requests-lock")[0] == b""
    node = t.cmd("node /nodepool/requests-lock/100-0000000001")
    assert node == children[0]
    assert t.cmd("release /nodepool/requests-lock/100-0000000001") == "released"
    assert lock.acquire(blocking=False) is True
    lock.release()
    assert kazoo.exists("/nodepool/requests-lock/100-0000000001") is not None


def test_empty_identifier_is_empty_data(kazoo, zktool):
    """Without an identifier the contender's data is b"" (kazoo: str(None or ""))."""
    t = zktool()
    assert t.cmd("trylock /L") == "acquired"
    (child,) = kazoo.get_children("/L")
    assert kazoo.get("/L/" + child)[0] == b""


def test_contenders_queue_in_creation_order(kazoo, zk_server, zk_chroot, zktool):
    """kazoo holder, then a zktool blocking waiter, then a kazoo blocking
    waiter: the lock passes on strictly in creation order."""
    holder = kazoo.Lock("/q/lock", "first")
    assert holder.acquire()
    t = zktool()
    t.send("lock /q/lock second")
    deadline = time.time() + 5
    while len(kazoo.get_children("/q/lock")) < 2 and time.time() < deadline:
        time.sleep(0.02)
    other = second_kazoo(zk_server, zk_chroot)
    order = []
    third = other.Lock("/q/lock", "third")

    def waiter():
        third.acquire(timeout=20)
        order.append("third")

    th = threading.Thread(target=waiter)
    th.start()
    while len(kazoo.get_children("/q/lock")) < 3 and time.time() < deadline + 5:
        time.sleep(0.02)
    assert holder.contenders() == ["first", "second", "third"]
    holder.release()
    assert t.answer(10) == "acquired"
    order.append("second")
    time.sleep(0.3)
    assert order == ["second"], "kazoo's waiter jumped the queue"
    assert t.cmd("release /q/lock") == "released"
    th.join(10)
    assert order == ["second", "third"]
    third.release()
    other.stop()
    other.close()


def test_killed_holder_releases_lock_within_session_timeout(kazoo, zktool):
    """SIGKILL the zktool holding L (2 s session): kazoo acquires L once the
    session times out — the contender was ephemeral."""
    t = zktool(2000)
    assert t.cmd("lock /nodes/1/lock") == "acquired"
    lock = kazoo.Lock("/nodes/1/lock")
    assert lock.acquire(blocking=False) is False
    start = time.time()
    t.kill()
    assert lock.acquire(timeout=10)
    assert time.time() - start < 6
    lock.release()


def test_stopped_kazoo_client_releases_lock_to_poold(zk_server, zk_chroot, zktool):
    """kazoo holds L then its client stops (session closed): poold's blocking
    acquire, already waiting on the predecessor watch, gets L."""
    other = second_kazoo(zk_server, zk_chroot)
    lock = other.Lock("/nodes/2/lock", "executor")
    assert lock.acquire()
    t = zktool()
    t.send("acquire-timeout /nodes/2/lock 10000")
    time.sleep(0.3)
    other.stop()
    other.close()
    assert t.answer(12) == "acquired"


def test_is_locked_agrees_with_kazoo(kazoo, zktool):
    """islocked: no dir → unlocked; kazoo contender → locked; empty dir → unlocked."""
    t = zktool()
    assert t.cmd("islocked /nodes/3/lock") == "unlocked"
    lock = kazoo.Lock("/nodes/3/lock")
    lock.acquire()
    assert t.cmd("islocked /nodes/3/lock") == "locked"
    lock.release()
    assert t.cmd("islocked /nodes/3/lock") == "unlocked"
    assert t.cmd("trylock /nodes/3/lock") == "acquired"
    assert t.cmd("islocked /nodes/3/lock") == "locked"


def test_readlock_contender_blocks_poold(kazoo, zktool):
    """A kazoo ReadLock contender (__rlock__) blocks poold's (write) lock."""
    rlock = kazoo.ReadLock("/rw")
    assert rlock.acquire()
    t = zktool()
    assert t.cmd("trylock /rw") == "busy"
    rlock.release()
    assert t.cmd("trylock /rw") == "acquired"


def test_async_trylock_from_event_loop(kazoo, zktool):
    """zk_lock_try_async: creates missing parents, reports acquired; a second
    object on a kazoo-held lock reports busy and leaves no contender."""
    t = zktool()
    assert t.cmd("atrylock /deep/a/b/lock") == "started"
    assert t.wait_event("ASYNC /deep/a/b/lock") == "ASYNC /deep/a/b/lock acquired"
    assert len(kazoo.get_children("/deep/a/b/lock")) == 1
    lock = kazoo.Lock("/other")
    lock.acquire()
    assert t.cmd("atrylock /other") == "started"
    assert t.wait_event("ASYNC /other") == "ASYNC /other busy"
    assert len(kazoo.get_children("/other")) == 1


def test_chroot_places_znodes_under_it(zk_server, zk_chroot, zktool):
    """With 'host:port/chroot' our znodes land under the chroot as seen by a
    kazoo client without chroot."""
    t = zktool()
    assert t.cmd("trylock /nodepool/nodes/0000000007/lock") == "acquired"
    raw = zk_server.kazoo()
    raw.start(timeout=15)
    try:
        children = raw.get_children(zk_chroot + "/nodepool/nodes/0000000007/lock")
        assert len(children) == 1 and CONTENDER_RE.match(children[0])
        assert raw.exists("/nodepool/nodes/0000000007") is None
    finally:
        raw.stop()
        raw.close()


def test_multi_deletes_all_or_nothing(kazoo, zktool):
    """zk_amulti (issue 14: a deleted node's contender, lock directory and znode go in
    one request): every delete is applied in order; when one fails (a contender of
    someone else keeps the lock directory non-empty) none is, and the error says why."""
    kazoo.create("/m/1/lock/a__lock__0000000000", b"", makepath=True)
    t = zktool()
    assert t.cmd("multi-delete /m/1/lock/a__lock__0000000000 /m/1/lock /m/1") == "started"
    assert t.wait_event("ASYNC multi") == "ASYNC multi ok"
    assert kazoo.exists("/m/1") is None
    kazoo.create("/m/2/lock/a__lock__0000000000", b"", makepath=True)
    kazoo.create("/m/2/lock/b__lock__0000000001", b"")
    assert t.cmd("multi-delete /m/2/lock/a__lock__0000000000 /m/2/lock /m/2") == "started"
    assert t.wait_event("ASYNC multi") == "ASYNC multi Directory not empty"
    assert sorted(kazoo.get_children("/m/2/lock")) == ["a__lock__0000000000", "b__lock__0000000001"]


def test_fresh_lock_made_with_its_directory_or_the_usual_way(kazoo, zktool):
    """zk_lock_set_fresh (issue 14): a missing lock directory is made with our contender in
    one multi request, which is its first child (numbered 0000000000) and holds the lock; a
    kazoo Lock cannot take it. When the directory exists and kazoo holds the lock, the
    attempt falls back to the recipe's create and listing and is busy (no contender left);
    when even the directory's parent is missing, the fallback makes it and acquires."""
    kazoo.ensure_path("/fresh")
    t = zktool()
    assert t.cmd("atrylock-fresh /fresh/a/lock") == "started"
    assert t.wait_event("ASYNC /fresh/a/lock") == "ASYNC /fresh/a/lock acquired"
    kids = kazoo.get_children("/fresh/a/lock")
    assert len(kids) == 1 and kids[0].endswith("__lock__0000000000"), kids
    other = kazoo.Lock("/fresh/a/lock")
    assert not other.acquire(blocking=False)
    lock = kazoo.Lock("/fresh/b/lock")
    lock.acquire()
    assert t.cmd("atrylock-fresh /fresh/b/lock") == "started"
    assert t.wait_event("ASYNC /fresh/b/lock") == "ASYNC /fresh/b/lock busy"
    assert len(kazoo.get_children("/fresh/b/lock")) == 1
    assert t.cmd("atrylock-fresh /nothere/c/lock") == "started"
    assert t.wait_event("ASYNC /nothere/c/lock") == "ASYNC /nothere/c/lock acquired"
    assert len(kazoo.get_children("/nothere/c/lock")) == 1
