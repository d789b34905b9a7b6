"""The tree cache (shared/zk/zk_cache.c) against changes made by kazoo: creates,
updates, deletes, lock contenders, depth limits, and re-sync after the
session (and with it every watch) was lost."""
import signal
import time

from test_zk_lock import zktool  # noqa: F401  (fixture)


def cache_event(t, kind, path, timeout=5):
    return t.wait_event(lambda l: l.startswith("CACHE %s %s " % (kind, path)), timeout)


def test_initial_sync_reports_existing_nodes(kazoo, zktool):  # noqa: F811
    """Nodes that exist before the cache starts are ADDED with their data, then SYNCED."""
    kazoo.create("/nodepool/nodes/0000000001", b'{"state": "ready"}', makepath=True)
    kazoo.create("/nodepool/nodes/0000000002", b'{"state": "building"}')
    t = zktool()
    assert t.cmd("watch /nodepool/nodes 1 locks") == "watching"
    e1 = cache_event(t, "ADDED", "/nodepool/nodes/0000000001")
    assert e1.endswith('0 {"state": "ready"}')
    cache_event(t, "ADDED", "/nodepool/nodes/0000000002")
    t.wait_event("CACHE SYNCED /nodepool/nodes")
    assert t.cmd("cache-count") == "count 2"


def test_create_update_delete_seen_within_milliseconds(kazoo, zktool):  # noqa: F811
    """A create, a set and a delete by kazoo each reach the cache quickly, in order."""
    kazoo.ensure_path("/nodepool/requests")
    t = zktool()
    assert t.cmd("watch /nodepool/requests 1") == "watching"
    t.wait_event("CACHE SYNCED")
    start = time.time()
    path = kazoo.create("/nodepool/requests/100-", b'{"state": "requested"}', sequence=True)
    cache_event(t, "ADDED", path)
    added = time.time() - start
    kazoo.set(path, b'{"state": "pending"}')
    assert cache_event(t, "UPDATED", path).endswith('{"state": "pending"}')
    kazoo.delete(path)
    cache_event(t, "REMOVED", path)
    assert added < 1.0, "create took %.3fs to reach the cache" % added
    assert t.cmd("cache-get " + path) == "absent"


def test_lock_contenders_counted_on_node(kazoo, zktool):  # noqa: F811
    """With lock tracking, a kazoo lock on <node>/lock shows as lock_contenders 1
    (UPDATED), and 0 after release; the lock dir is not a cached node."""
    kazoo.create("/nodepool/nodes/0000000005", b"{}", makepath=True)
    t = zktool()
    assert t.cmd("watch /nodepool/nodes 1 locks") == "watching"
    t.wait_event("CACHE SYNCED")
    lock = kazoo.Lock("/nodepool/nodes/0000000005/lock")
    lock.acquire()
    assert cache_event(t, "UPDATED", "/nodepool/nodes/0000000005").split()[3] == "1"
    assert t.cmd("cache-get /nodepool/nodes/0000000005").startswith("present v0 locks=1")
    lock.release()
    assert cache_event(t, "UPDATED", "/nodepool/nodes/0000000005").split()[3] == "0"
    assert t.cmd("cache-get /nodepool/nodes/0000000005/lock") == "absent"
    assert t.cmd("cache-count") == "count 1"


def test_depth_limit_and_deeper_tree(kazoo, zktool):  # noqa: F811
    """depth 3 caches image/builds/<id> but not below; deleting a subtree
    reports its nodes REMOVED, children first."""
    kazoo.create("/nodepool/images/debian/builds/abc/providers/p1", b"", makepath=True)
    kazoo.set("/nodepool/images/debian/builds/abc", b'{"state": "ready"}')
    t = zktool()
    assert t.cmd("watch /nodepool/images 3 locks") == "watching"
    t.wait_event("CACHE SYNCED")
    assert t.cmd("cache-get /nodepool/images/debian/builds/abc").endswith('{"state": "ready"}')
    assert t.cmd("cache-get /nodepool/images/debian/builds/abc/providers") == "absent"
    assert t.cmd("cache-count") == "count 3"
    kazoo.create("/nodepool/images/debian/builds/def", b'{"state": "building"}')
    cache_event(t, "ADDED", "/nodepool/images/debian/builds/def")
    kazoo.delete("/nodepool/images/debian", recursive=True)
    first = t.wait_event("CACHE REMOVED")
    assert first.split()[2].startswith("/nodepool/images/debian/builds/")
    cache_event(t, "REMOVED", "/nodepool/images/debian")
    assert t.cmd("cache-count") == "count 0"


def test_missing_root_is_watched_until_created(kazoo, zktool):  # noqa: F811
    """A cache on a root that does not exist yet picks it up once created."""
    t = zktool()
    assert t.cmd("watch /later 1") == "watching"
    t.wait_event("CACHE SYNCED")
    kazoo.create("/later/x", b"1", makepath=True)
    cache_event(t, "ADDED", "/later/x")


def test_resync_after_expiry_reports_what_changed_meanwhile(kazoo, zktool):  # noqa: F811
    """While the session is lost (every watch with it) kazoo deletes, updates and
    creates nodes; after reconnecting, the cache re-lists and reports REMOVED,
    UPDATED and ADDED, and keeps watching in the new session."""
    kazoo.create("/r/a", b"a1", makepath=True)
    kazoo.create("/r/b", b"b1")
    t = zktool(2000)
    assert t.cmd("watch /r 1") == "watching"
    t.wait_event("CACHE SYNCED")
    t.kill(signal.SIGSTOP)
    time.sleep(1.0)
    kazoo.delete("/r/a")
    kazoo.set("/r/b", b"b2")
    kazoo.create("/r/c", b"c1")
    time.sleep(3.0)
    t.kill(signal.SIGCONT)
    # The delete's own watch event, sent while the session still lived, may reach
    # the cache before the expiry does: then /r/a is REMOVED at once, not re-read.
    seen = []

    def state(name):
        def match(line):
            if line.startswith("CACHE ") and line not in seen:
                seen.append(line)
            return line.startswith("STATE " + name)
        return match
    t.wait_event(state("EXPIRED"), timeout=15)
    # The re-sync's events, in whatever order the reads complete, end with SYNCED.
    start = len(t.events)
    t.wait_event(state("CONNECTED"), timeout=15)
    while True:
        line = t.answer_event(15)
        if line == "CACHE SYNCED /r":
            break
        seen.append(line)
    assert sorted(seen) == ["CACHE ADDED /r/c 0 c1", "CACHE REMOVED /r/a 0 a1",
                            "CACHE UPDATED /r/b 0 b2"], (start, seen)
    # Watches were re-armed in the new session.
    kazoo.set("/r/c", b"c2")
    assert cache_event(t, "UPDATED", "/r/c").endswith("c2")
    assert t.cmd("cache-count") == "count 2"
