"""The metastatic driver (issue 15): nodes carved out of backing nodes of a static label on real sshd
servers, requested through ZooKeeper like any client's, through the Zuul-like client."""
import json
import os
import threading
import time

import pytest
import yaml

from launcher_fixture import launcher  # noqa: F401  (fixture)
from sshd import SshServer
from zuul_client import ZuulClient

STATIC = "static-prov"
META = "meta-prov"
OWNER = "NodePool:metastatic:" + META


@pytest.fixture
def sshds():
    servers = []

    def make():
        s = SshServer().start()
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.cleanup()


def config(lp, hosts, slots=2, grace=2):
    nodes = [{"name": "127.0.0.1", "labels": ["backing"], "connection-port": h.port, "timeout": 2} for h in hosts]
    return dict(lp.zk_server.zookeeper_config(lp.chroot),
                **{"zookeeper-timeout": 5.0,
                   "labels": [{"name": "backing"}, {"name": "meta"}],
                   "providers": [
                       {"name": STATIC, "driver": "static", "pools": [{"name": "main", "nodes": nodes}]},
                       {"name": META, "driver": "metastatic", "launch-timeout": 30,
                        "pools": [{"name": "main", "max-servers": 10,
                                   "labels": [{"name": "meta", "backing-label": "backing",
                                               "max-parallel-jobs": slots, "grace-time": grace}]}]}]})


def start(lp, cfg):
    with open(lp.config_path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    lp.start()


def lock_identifiers(lp, node_id):
    path = "/nodepool/nodes/%s/lock" % node_id
    if not lp.kazoo.exists(path):
        return []
    out = []
    for c in sorted(lp.kazoo.get_children(path), key=lambda n: n[-10:]):
        data, stat = lp.kazoo.get(path + "/" + c)
        out.append((data.decode(), stat.ephemeralOwner))
    return out


def backing_of(node):
    return node["driver_data"]["backing_node"], node["driver_data"]["slot"]


def get_nodes(zc, labels, timeout=30):
    req_id = zc.submit(labels)
    req = zc.wait(req_id, timeout=timeout)
    assert req is not None and req["state"] == "fulfilled", req
    return zc.accept_nodes(req_id, req)


def test_node_gets_backing_node_address_and_backing_node_is_requested_and_locked(launcher, sshds):
    """A metastatic node copies the address, port, user and host keys of a static backing node, which
    was requested by the metastatic provider and is held in-use under a lock that outlives a session."""
    a = sshds()
    start(launcher, config(launcher, [a]))
    zc = ZuulClient(launcher.kazoo)
    (nid, node, lock), = get_nodes(zc, ["meta"])
    assert node["provider"] == META and node["type"] == ["meta"] and node["state"] == "ready"
    bid, slot = backing_of(node)
    backing = launcher.nodes()[bid]
    assert backing["provider"] == STATIC and backing["type"] == ["backing"]
    assert backing["state"] == "in-use" and backing["requestor"] == OWNER
    ud = json.loads(backing["user_data"])
    assert ud["owner"] == OWNER and ud["label"] == "meta" and ud["slots"] == 2
    # locked by the metastatic provider with a persistent contender (Nodepool's non-ephemeral lock)
    assert lock_identifiers(launcher, bid) == [(OWNER, 0)]
    for k in ("interface_ip", "connection_port", "username", "connection_type"):
        assert node[k] == backing[k], k
    assert node["connection_port"] == a.port and node["interface_ip"] == "127.0.0.1"
    assert sorted(node["host_keys"]) == sorted(a.host_keys()) and node["host_keys"]
    assert slot == 0 and node["external_id"] == nid
    # the backing request is gone once its node is taken
    reqs = launcher.kazoo.get_children("/nodepool/requests")
    assert not [r for r in reqs if r.startswith("100-")], reqs
    zc.use_nodes([(nid, node, lock)])
    zc.return_nodes([(nid, node, lock)])


def test_max_parallel_jobs_n_plus_one_nodes_need_two_backing_nodes(launcher, sshds):
    """With max-parallel-jobs 2, three metastatic nodes at once use two backing nodes: two slots on one, one
    on the other, and never two nodes in one slot."""
    a, b = sshds(), sshds()
    start(launcher, config(launcher, [a, b], slots=2, grace=30))
    zc = ZuulClient(launcher.kazoo)
    results, errors = [], []

    def one():
        try:
            results.extend(get_nodes(zc, ["meta"]))
        except Exception as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(results) == 3
    per_backing = {}
    for nid, node, _ in results:
        bid, slot = backing_of(node)
        per_backing.setdefault(bid, []).append(slot)
    assert len(per_backing) == 2, per_backing
    assert sorted(len(s) for s in per_backing.values()) == [1, 2]
    for slots in per_backing.values():
        assert len(set(slots)) == len(slots) and all(0 <= s < 2 for s in slots)
    ports = {node["connection_port"] for _, node, _ in results}
    assert ports == {a.port, b.port}
    zc.return_nodes(results)


def test_backing_node_returned_after_grace_time_not_before(launcher, sshds):
    """After the last job on a backing node ends, the node is kept (and reused by the next job) for grace-time,
    then returned: marked used and unlocked, so the static driver deletes it and registers the host again."""
    grace = 4
    a = sshds()
    start(launcher, config(launcher, [a], slots=2, grace=grace))
    zc = ZuulClient(launcher.kazoo)
    _, _, first = zc.run_job(["meta"])
    bid = first[0][1]["driver_data"]["backing_node"]
    # the same backing node serves the next job (no new request within the grace time)
    _, _, second = zc.run_job(["meta"])
    assert second[0][1]["driver_data"]["backing_node"] == bid
    launcher.wait_for(lambda: second[0][0] not in launcher.nodes(), 15, "the job's node deleted")
    freed = time.time()
    # not before grace-time
    while time.time() < freed + grace - 1.5:
        n = launcher.nodes().get(bid)
        assert n is not None and n["state"] == "in-use", n
        assert lock_identifiers(launcher, bid) == [(OWNER, 0)]
        time.sleep(0.2)
    launcher.wait_for(lambda: bid not in launcher.nodes(), grace + 15, "backing node returned")
    returned = time.time()
    assert returned - freed >= grace - 1.5
    assert "backing node %s returned" % bid in launcher.log_text()
    # the host is a ready static node again
    launcher.wait_for(lambda: [n for n in launcher.nodes().values()
                               if n["provider"] == STATIC and n["state"] == "ready"], 15, "re-registered")


def test_backing_node_adopted_after_restart_and_returned(launcher, sshds):
    """A backing node held when poold stops stays locked; the next poold finds it (user_data and lock
    identifier), gives its free slot to a new node, and returns it once idle for grace-time."""
    a = sshds()
    start(launcher, config(launcher, [a], slots=2, grace=2))
    zc = ZuulClient(launcher.kazoo)
    held = get_nodes(zc, ["meta"])
    bid = held[0][1]["driver_data"]["backing_node"]
    assert launcher.stop() == 0
    assert lock_identifiers(launcher, bid) == [(OWNER, 0)]
    launcher.start()
    launcher.wait_for(lambda: "found backing node %s" % bid in launcher.log_text(), 15, "adopted")
    more = get_nodes(zc, ["meta"])
    assert backing_of(more[0][1]) == (bid, 1)
    zc.return_nodes(held + more)
    launcher.wait_for(lambda: bid not in launcher.nodes(), 30, "backing node returned")



def test_request_fails_when_no_pool_serves_the_backing_label(launcher, sshds):
    """A backing label no pool serves: the backing request is declined by every pool and fails, so the
    metastatic node's request fails too (it does not wait forever), and no backing request is left."""
    cfg = config(launcher, [sshds()])
    cfg["labels"].append({"name": "unserved"})
    cfg["providers"][1]["pools"][0]["labels"][0]["backing-label"] = "unserved"
    start(launcher, cfg)
    zc = ZuulClient(launcher.kazoo)
    req_id = zc.submit(["meta"])
    req = zc.wait(req_id, timeout=30)
    assert req is not None and req["state"] == "failed", req
    zc.delete_request(req_id)
    assert "backing request" in launcher.log_text() and "failed" in launcher.log_text()
    launcher.wait_for(lambda: not [r for r in launcher.kazoo.get_children("/nodepool/requests")
                                   if r.startswith("100-")], 10, "backing request deleted")
    # the failed metastatic node is deleted; the static host is untouched
    launcher.wait_for(lambda: not [n for n in launcher.nodes().values() if n["provider"] == META], 15,
                      "no metastatic node left")


def hkc_config(lp, port, boot_timeout=2):
    """A static backing host registered without a scan (host-key-checking false: no host keys), served
    as a metastatic label with host-key-checking, so the keys can only come from the metastatic scan."""
    cfg = config(lp, [], slots=2, grace=30)
    cfg["providers"][0]["pools"][0]["nodes"] = [
        {"name": "127.0.0.1", "labels": ["backing"], "connection-port": port, "host-key-checking": False}]
    meta = cfg["providers"][1]
    meta["boot-timeout"] = boot_timeout
    meta["pools"][0]["labels"][0]["host-key-checking"] = True
    return cfg


def test_host_key_checking_scans_the_node_before_it_is_handed_out(launcher, sshds):
    """With host-key-checking, a metastatic node's host keys come from a scan of its address (the backing
    node, registered without a scan, has none)."""
    a = sshds()
    start(launcher, hkc_config(launcher, a.port))
    zc = ZuulClient(launcher.kazoo)
    (nid, node, lock), = get_nodes(zc, ["meta"])
    bid, _ = backing_of(node)
    assert launcher.nodes()[bid]["host_keys"] == []
    assert node["host_keys"] and sorted(node["host_keys"]) == sorted(a.host_keys())
    zc.return_nodes([(nid, node, lock)])


def test_failed_host_key_check_fails_the_node_and_returns_the_backing_node(launcher):
    """A backing node whose address answers nothing: the scan fails within boot-timeout, the request fails,
    and the backing node, marked failed in its user_data, is returned at once (no grace-time)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    start(launcher, hkc_config(launcher, port, boot_timeout=2))
    zc = ZuulClient(launcher.kazoo)
    req_id = zc.submit(["meta"])
    req = zc.wait(req_id, timeout=30)
    assert req is not None and req["state"] == "failed", req
    zc.delete_request(req_id)
    log = launcher.log_text()
    assert "host-key check of 127.0.0.1:%d failed" % port in log
    bid = log.split("host-key check of 127.0.0.1:%d failed" % port)[1].split("backing node ")[1].split()[0]
    launcher.wait_for(lambda: "backing node %s returned" % bid in launcher.log_text(), 15, "returned at once")
    launcher.wait_for(lambda: bid not in launcher.nodes(), 15, "backing node deleted by its launcher")


def test_reload_hands_held_backing_node_to_the_new_provider(launcher, sshds):
    """A reload that changes the metastatic provider (grace-time 30 -> 1) retires the old provider; the new one
    finds the backing node still held for a running job and returns it 1 s after the job ends."""
    a = sshds()
    cfg = config(launcher, [a], slots=2, grace=30)
    start(launcher, cfg)
    zc = ZuulClient(launcher.kazoo)
    held = get_nodes(zc, ["meta"])
    bid = held[0][1]["driver_data"]["backing_node"]
    cfg["providers"][1]["pools"][0]["labels"][0]["grace-time"] = 1
    with open(launcher.config_path + ".tmp", "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    os.replace(launcher.config_path + ".tmp", launcher.config_path)
    launcher.wait_for(lambda: "found backing node %s" % bid in launcher.log_text(), 20, "adopted after reload")
    assert lock_identifiers(launcher, bid) == [(OWNER, 0)]
    zc.return_nodes(held)
    launcher.wait_for(lambda: bid not in launcher.nodes(), 15, "backing node returned after the new grace-time")
