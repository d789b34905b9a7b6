"""poolctl's ZooKeeper subcommands against a real ZooKeeper, with records
written by kazoo exactly as Nodepool and Zuul write them (protocol.md §1, §3.1)."""
import json
import os
import re
import stat
import subprocess
import time

import pytest
from kazoo.recipe.lock import Lock

from harness import program

NOW = time.time()


def write_config(tmp_path, zk_server, zk_chroot, extra=""):
    path = tmp_path / "nodepool.yaml"
    path.write_text(zk_server.zookeeper_yaml(zk_chroot) + "zookeeper-timeout: 5\n" + extra)
    return str(path)


IMAGES_CONFIG = """
labels:
  - name: debian
diskimages:
  - name: debian
    elements: [debian-minimal]
  - name: frozen
    elements: [debian-minimal]
    pause: true
providers:
  - name: local
    driver: libvirt
    uri: test:///default
    diskimages:
      - name: debian
    pools:
      - name: main
        max-servers: 2
        labels:
          - name: debian
            diskimage: debian
"""


@pytest.fixture
def ctl(tmp_path, zk_server, zk_chroot):
    """Run poolctl with a config pointing at this test's chroot."""
    config = write_config(tmp_path, zk_server, zk_chroot, IMAGES_CONFIG)

    def run(*args, input=None, timeout=30):
        return subprocess.run([program("poolctl"), "-c", config] + list(args), capture_output=True,
                              text=True, input=input, timeout=timeout)
    return run


def node_record(**over):
    """A node as Nodepool's Node.toDict() writes it, plus Zuul's extra keys."""
    rec = {
        "state": "ready", "state_time": time.time() - 3725, "cloud": "local", "provider": "local", "pool": "main",
        "type": ["debian"], "allocated_to": None, "az": "nova", "region": None,
        "public_ipv4": "192.0.2.10", "private_ipv4": "10.0.0.10", "public_ipv6": "2001:db8::10",
        "host_id": None, "interface_ip": "192.0.2.10", "connection_type": "ssh", "connection_port": 22022,
        "ssh_port": 22022, "shell_type": None, "python_path": None, "username": "zuul",
        "image_id": "/nodepool/images/debian/builds/0000000001/providers/local/images/0000000001",
        "launcher": "host-PoolWorker.local-main-abc", "created_time": NOW - 4000, "external_id": "np0000000001",
        "hostname": "np0000000001", "comment": None, "user_data": None, "hold_job": None,
        "hold_expiration": None, "host_keys": [], "resources": {"cores": 1, "instances": 1, "ram": 1024},
        "slot": None, "attributes": None, "tenant_name": None, "requestor": None, "driver_data": None,
        "node_properties": [{"spot": False}],
        # Zuul's additions (ZU:zuul/model.py Node.toDict)
        "id": "0000000001",
    }
    rec.update(over)
    return rec


def put_node(kazoo, node_id, **over):
    rec = node_record(id=node_id, **over)
    kazoo.create("/nodepool/nodes/%s" % node_id, json.dumps(rec).encode(), makepath=True)
    return rec


def table_rows(text):
    """Parse a PrettyTable: (header cells, [row cells])."""
    lines = text.splitlines()
    assert re.fullmatch(r"(\+-+)+\+", lines[0]), text
    assert lines[2] == lines[0] and lines[-1] == lines[0], text
    cells = lambda l: [c.strip() for c in l.split("|")[1:-1]]
    return cells(lines[1]), [cells(l) for l in lines[3:-1]]


LIST_HEADER = ["ID", "Provider", "Label", "Server ID", "Public IPv4", "IPv6", "State", "Age", "Locked"]
DETAIL_HEADER = LIST_HEADER + ["Pool", "Hostname", "Private IPv4", "AZ", "Username", "Port", "Launcher",
                               "Allocated To", "Hold Job", "Comment", "User Data", "Driver Data"]
NODE_KEYS = ["id", "provider", "label", "server_id", "public_ipv4", "ipv6", "state", "age", "locked", "pool",
             "hostname", "private_ipv4", "AZ", "username", "connection_port", "launcher", "allocated_to",
             "hold_job", "comment", "user_data", "driver_data"]


def test_list_shows_nodepool_columns_age_and_lock_state(ctl, kazoo):
    put_node(kazoo, "0000000001")
    put_node(kazoo, "0000000002", state="in-use", type=["debian", "big"], public_ipv6=None,
             external_id="np0000000002", user_data={"zuul_system": "abc", "project_name": "p"})
    lock = Lock(kazoo, "/nodepool/nodes/0000000002/lock")
    assert lock.acquire(timeout=5)
    # An unlocked node whose lock dir exists but is empty reads as unlocked.
    kazoo.ensure_path("/nodepool/nodes/0000000001/lock")
    r = ctl("list")
    assert r.returncode == 0, r.stderr
    header, rows = table_rows(r.stdout)
    assert header == LIST_HEADER
    assert rows[0][:7] == ["0000000001", "local", "debian", "np0000000001", "192.0.2.10", "2001:db8::10",
                           "ready"]
    assert re.fullmatch(r"00:01:02:0[5-9]", rows[0][7]), rows[0][7]  # 3725 s = 1 h 2 min 5 s
    assert rows[0][8] == "unlocked"
    assert rows[1] [:7] == ["0000000002", "local", "debian,big", "np0000000002", "192.0.2.10", "", "in-use"]
    assert rows[1][8] == "locked"
    lock.release()


def test_list_detail_adds_columns_and_json_uses_internal_keys(ctl, kazoo):
    rec = put_node(kazoo, "0000000007", state="hold", hold_job="t p job .*", comment="debug me",
             allocated_to="200-0000000003", user_data={"zuul_system": "abc"}, driver_data={"k": 1})
    r = ctl("list", "--detail")
    assert r.returncode == 0, r.stderr
    header, rows = table_rows(r.stdout)
    assert header == DETAIL_HEADER
    row = dict(zip(header, rows[0]))
    assert row["Pool"] == "main" and row["Hostname"] == "np0000000001" and row["Private IPv4"] == "10.0.0.10"
    assert row["AZ"] == "nova" and row["Username"] == "zuul" and row["Port"] == "22022"
    assert row["Launcher"] == "host-PoolWorker.local-main-abc" and row["Allocated To"] == "200-0000000003"
    assert row["Hold Job"] == "t p job .*" and row["Comment"] == "debug me"
    # As Nodepool prints them: Python's str() of the decoded value.
    assert row["User Data"] == "{'zuul_system': 'abc'}"
    assert row["Driver Data"] == "{'k': 1}"

    r = ctl("--json", "list")
    assert r.returncode == 0, r.stderr
    objs = json.loads(r.stdout)
    assert list(objs[0].keys()) == NODE_KEYS
    assert objs[0]["id"] == "0000000007" and objs[0]["label"] == ["debian"]
    assert objs[0]["age"] == rec["state_time"]  # raw state_time, as the web app
    assert objs[0]["locked"] == "unlocked" and objs[0]["connection_port"] == 22022
    assert objs[0]["user_data"] == {"zuul_system": "abc"}


def test_list_skips_malformed_node_with_warning_and_lists_the_rest(ctl, kazoo):
    put_node(kazoo, "0000000001")
    kazoo.create("/nodepool/nodes/0000000002", b"{not json", makepath=True)
    kazoo.create("/nodepool/nodes/0000000003", json.dumps({"state": 17}).encode(), makepath=True)
    r = ctl("list")
    assert r.returncode == 0, r.stderr
    _, rows = table_rows(r.stdout)
    assert [row[0] for row in rows] == ["0000000001"]
    assert "0000000002" in r.stderr and "0000000003" in r.stderr


def test_list_with_no_nodes_prints_empty_table(ctl, kazoo):
    r = ctl("list")
    assert r.returncode == 0, r.stderr
    header, rows = table_rows(r.stdout)
    assert header == LIST_HEADER and rows == []
    assert json.loads(ctl("--json", "list").stdout) == []


def test_delete_sets_deleting_keeps_zuul_keys_and_prints_row(ctl, kazoo):
    put_node(kazoo, "0000000005")
    r = ctl("delete", "0000000005")
    assert r.returncode == 0, r.stderr
    rec = json.loads(kazoo.get("/nodepool/nodes/0000000005")[0])
    assert rec["state"] == "deleting"
    assert rec["state_time"] > NOW
    assert rec["id"] == "0000000005" and rec["node_properties"] == [{"spot": False}]  # unknown keys kept
    _, rows = table_rows(r.stdout)
    assert rows[0][0] == "0000000005" and rows[0][6] == "deleting" and rows[0][8] == "unlocked"
    # Our lock contender is gone again.
    assert kazoo.get_children("/nodepool/nodes/0000000005/lock") == []


def test_hold_sets_hold_state(ctl, kazoo):
    put_node(kazoo, "0000000006")
    r = ctl("hold", "0000000006")
    assert r.returncode == 0, r.stderr
    assert json.loads(kazoo.get("/nodepool/nodes/0000000006")[0])["state"] == "hold"


def test_delete_and_hold_time_out_on_a_node_locked_by_kazoo_and_leave_it_unchanged(ctl, kazoo):
    put_node(kazoo, "0000000008")
    lock = Lock(kazoo, "/nodepool/nodes/0000000008/lock")
    assert lock.acquire(timeout=5)
    before = kazoo.get("/nodepool/nodes/0000000008")[0]
    for cmd in ("delete", "hold"):
        t0 = time.time()
        r = ctl(cmd, "0000000008")
        assert r.returncode == 1
        assert "locked" in r.stderr
        assert 4.5 < time.time() - t0 < 15  # the 5 s lock timeout
    assert kazoo.get("/nodepool/nodes/0000000008")[0] == before
    assert len(kazoo.get_children("/nodepool/nodes/0000000008/lock")) == 1  # only kazoo's contender
    lock.release()


def test_delete_unknown_node_and_bad_args_exit_codes(ctl, kazoo):
    r = ctl("delete", "0000000099")
    assert r.returncode == 1 and "not found" in r.stderr
    assert ctl("delete").returncode == 2
    assert ctl("hold", "a", "b").returncode == 2
    assert ctl("list", "--bogus").returncode == 2


def test_delete_now_removes_the_record_through_the_provider(ctl, kazoo):
    # The libvirt test driver has no such domain: the delete is idempotent (-ENOENT = done).
    put_node(kazoo, "0000000010", external_id="local-np0000000010")  # libvirt domain name
    kazoo.ensure_path("/nodepool/nodes/0000000010/lock")
    r = ctl("delete", "--now", "0000000010")
    assert r.returncode == 0, r.stderr
    assert kazoo.exists("/nodepool/nodes/0000000010") is None
    _, rows = table_rows(r.stdout)
    assert rows == []


def put_request(kazoo, prio, **over):
    rec = {"state": "requested", "state_time": NOW, "declined_by": [], "node_types": ["debian", "debian"],
           "nodes": [], "reuse": True, "requestor": "3c9f0a", "requestor_data": {"job_name": "tox"},
           "provider": None, "relative_priority": 0, "event_id": "ev1", "created_time": NOW,
           "tenant_name": "t"}
    rec.update(over)
    return kazoo.create("/nodepool/requests/%s-" % prio, json.dumps(rec).encode(), sequence=True,
                        makepath=True).rsplit("/", 1)[1]


def test_request_list_columns_order_and_relative_priority(ctl, kazoo):
    a = put_request(kazoo, "200", relative_priority=3, state="fulfilled", nodes=["0000000001", "0000000002"],
                    declined_by=["l1", "l2"])
    b = put_request(kazoo, "100", event_id="ev2")
    kazoo.create("/nodepool/requests/300-0000000099", b"[]")  # malformed: skipped
    r = ctl("request-list")
    assert r.returncode == 0, r.stderr
    header, rows = table_rows(r.stdout)
    assert header == ["Request ID", "Priority", "State", "Requestor", "Node Types", "Nodes", "Declined By",
                      "Event ID"]
    assert rows == [[b, "0", "requested", "3c9f0a", "debian,debian", "", "", "ev2"],
                    [a, "3", "fulfilled", "3c9f0a", "debian,debian", "0000000001,0000000002", "l1,l2", "ev1"]]
    objs = json.loads(ctl("--json", "request-list").stdout)
    assert list(objs[0].keys()) == ["id", "relative_priority", "state", "requestor", "node_types", "nodes",
                                    "declined_by", "event_id"]
    assert objs[1]["relative_priority"] == 3 and objs[1]["nodes"] == ["0000000001", "0000000002"]


def test_unreachable_zookeeper_fails_in_bounded_time(tmp_path, zk_server):
    from harness import free_port

    config = write_config(tmp_path, zk_server, "/x")
    text = open(config).read()
    with open(config, "w") as f:
        f.write(text.replace("zookeeper-timeout: 5", "zookeeper-timeout: 2")
                .replace("port: %d" % zk_server.port, "port: %d" % free_port()))
    t0 = time.time()
    r = subprocess.run([program("poolctl"), "-c", config, "list"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "cannot connect to ZooKeeper" in r.stderr
    assert 1.5 < time.time() - t0 < 10  # waited the 2 s zookeeper-timeout, no more
