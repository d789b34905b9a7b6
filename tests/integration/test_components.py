"""The component registry (shared/zk/component.c, protocol.md §1.7): the exact
bytes nodepool writes, updates with versions, removal, and ephemerality."""
import json
import re
import time

from test_zk_lock import zktool  # noqa: F401  (fixture)


def read_component(kazoo, path):
    data, stat = kazoo.get(path)
    return data, json.loads(data.decode()), stat


def test_register_writes_python_sorted_json(kazoo, zktool):  # noqa: F811
    """register creates /nodepool/components/launcher/<host><seq10>, ephemeral,
    whose bytes equal json.dumps(d, sort_keys=True).encode()."""
    t = zktool()
    path = t.cmd("register launcher host1.example.com 1.2.3")
    assert re.match(r"^/nodepool/components/launcher/host1\.example\.com\d{10}$", path), path
    data, d, stat = read_component(kazoo, path)
    expected = {"hostname": "host1.example.com", "kind": "launcher", "model_api": 0,
                "state": "initializing", "version": "1.2.3"}
    assert d == expected
    assert data == json.dumps(expected, sort_keys=True).encode()
    assert stat.ephemeralOwner != 0


def test_pool_component_extras_and_update(kazoo, zktool):  # noqa: F811
    """A pool component with id/name/provider_name/supported_labels/priority/
    paused: the update lands with the znode version bumped, bytes still
    Python-identical, and Zuul's reader (id + supported_labels) works."""
    t = zktool()
    path = t.cmd("register pool host2")
    for key, value in [("id", '"host2-PoolWorker.fake-main-%s"' % ("ab" * 16)),
                       ("name", '"main"'), ("provider_name", '"fake"'),
                       ("supported_labels", '["debian", "ubuntu-jammy"]'),
                       ("priority", "100"), ("paused", "false")]:
        assert t.cmd("component-set %s %s" % (key, value.replace(" ", ""))) == "ok"
    assert t.cmd("set-state running") == "ok"
    data, d, stat = read_component(kazoo, path)
    assert stat.version == 1
    assert d["state"] == "running"
    assert d["supported_labels"] == ["debian", "ubuntu-jammy"]
    assert d["paused"] is False and d["priority"] == 100
    assert data == json.dumps(d, sort_keys=True).encode()
    # What Zuul's getRegisteredLaunchers reads:
    ids = [json.loads(kazoo.get("/nodepool/components/pool/" + c)[0])["id"]
           for c in kazoo.get_children("/nodepool/components/pool")]
    assert ids == [d["id"]]


def test_update_after_foreign_write_retries_with_new_version(kazoo, zktool):  # noqa: F811
    """Someone else bumps the znode version: component_update gets -ESTALE,
    re-reads the version and writes our content."""
    t = zktool()
    path = t.cmd("register builder host3")
    kazoo.set(path, b'{"foreign": true}')
    assert t.cmd("set-state paused") == "ok"
    _, d, stat = read_component(kazoo, path)
    assert d["state"] == "paused" and "foreign" not in d
    assert stat.version == 2


def test_unregister_removes_and_list_skips_malformed(kazoo, zktool):  # noqa: F811
    """component_list decodes registered components and skips malformed
    ones; unregister deletes the znode."""
    t = zktool()
    path = t.cmd("register launcher host4")
    kazoo.create("/nodepool/components/launcher/garbage", b"{not json")
    listed = json.loads(t.cmd("components launcher"))
    assert [c["hostname"] for c in listed] == ["host4"]
    assert t.cmd("unregister") == "ok"
    assert kazoo.exists(path) is None
    assert json.loads(t.cmd("components launcher")) == []
    assert t.cmd("components builder") == "[]"


def test_component_gone_when_process_dies(kazoo, zktool):  # noqa: F811
    """The component is ephemeral: SIGKILL the process and it disappears once
    the session times out."""
    t = zktool(2000)
    path = t.cmd("register launcher host5")
    assert kazoo.exists(path) is not None
    t.kill()
    deadline = time.time() + 10
    while kazoo.exists(path) is not None and time.time() < deadline:
        time.sleep(0.1)
    assert kazoo.exists(path) is None
