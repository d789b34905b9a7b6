"""poold's update-under-lock primitive (shared/zk/zk_update.c, driven through
tests/tools/zktool) against a real ZooKeeper and kazoo's real Lock recipe: it
must not touch a record whose lock someone else holds, write only on top of
the version it read, and leave no contender of its own behind. Both forms are
proved: the asynchronous one (event loop) and the blocking one (builder)."""
import errno
import time

import pytest

from test_zk_lock import zktool  # noqa: F401 (fixture)

REC = "/rec"
LOCK = "/rec/lock"


@pytest.fixture
def record(kazoo):
    kazoo.create(REC, b"v0")
    return kazoo


@pytest.mark.parametrize("form", ["async", "sync"])
def test_update_waits_for_no_one_and_writes_on_top_of_what_it_read(record, zktool, form):
    """With kazoo holding the record's lock the update ends busy at the lock
    step and the record is untouched; once kazoo releases it, the update sees
    the current data, writes its own (version + 1) and its contender is gone."""
    kazoo = record
    t = zktool()

    def update(data):
        if form == "sync":
            return t.cmd("rec-update-sync %s %s %s" % (REC, LOCK, data))
        assert t.cmd("rec-update %s %s %s" % (REC, LOCK, data)) == "started"
        return t.wait_event("ASYNC update")

    lock = kazoo.Lock(LOCK)
    assert lock.acquire(timeout=10)
    out = update("v1")
    assert "r=%d" % -errno.EBUSY in out
    if form == "async":
        assert "at=lock" in out
    assert kazoo.get(REC)[0] == b"v0"
    assert len(kazoo.get_children(LOCK)) == 1  # only kazoo's contender
    lock.release()

    version = kazoo.get(REC)[1].version
    out = update("v1")
    assert "r=1" in out and "saw=v0" in out, out
    if form == "async":
        assert "at=write" in out
    data, stat = kazoo.get(REC)
    assert data == b"v1" and stat.version == version + 1
    # The release is confirmed asynchronously: wait for our contender to go.
    for _ in range(100):
        if not kazoo.get_children(LOCK):
            break
        time.sleep(0.05)
    assert kazoo.get_children(LOCK) == []
    assert kazoo.Lock(LOCK).acquire(timeout=5)


def test_write_behind_the_locks_back_makes_the_update_stale(record, zktool):
    """A writer that ignores the lock changes the record between our read and
    our write: the version-checked write fails with ESTALE and the other
    writer's data stays."""
    kazoo = record
    t = zktool()
    assert t.cmd("rec-update %s %s mine race" % (REC, LOCK)) == "started"
    out = t.wait_event("ASYNC update")
    assert "r=%d" % -errno.ESTALE in out and "at=write" in out, out
    assert kazoo.get(REC)[0] == b"racer"


def test_missing_record_ends_at_the_read(kazoo, zktool):
    """No record: the update ends at the read with ENOENT and creates nothing."""
    t = zktool()
    assert t.cmd("rec-update /absent /absent-lock x") == "started"
    out = t.wait_event("ASYNC update")
    assert "r=%d" % -errno.ENOENT in out and "at=read" in out, out
    assert kazoo.exists("/absent") is None
