"""The static driver (protocol.md §2.5) with real sshd servers on loopback ports, through the Zuul-like client."""
import os
import signal

import pytest
import yaml

from launcher_fixture import LauncherProcess, launcher  # noqa: F401  (fixture)
from sshd import SshServer
from zuul_client import ZuulClient

PROV = "static-prov"


@pytest.fixture
def sshds():
    servers = []

    def make(port=None):
        s = SshServer(port=port).start()
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.cleanup()


def static_config(lp, nodes, extra_pool=None):
    pool = {"name": "main", "nodes": nodes}
    pool.update(extra_pool or {})
    labels = sorted({lab for n in nodes for lab in n["labels"]} | {"nowhere"})
    return dict(lp.zk_server.zookeeper_config(lp.chroot),
                **{"zookeeper-timeout": 5.0,
                   "labels": [{"name": n} for n in labels],
                   "providers": [{"name": PROV, "driver": "static", "pools": [pool]}]})


def host(sshd, labels, **kw):
    h = {"name": "127.0.0.1", "labels": labels, "connection-port": sshd.port, "timeout": 2}
    h.update(kw)
    return h


def write(lp, cfg):
    with open(lp.config_path + ".tmp", "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    os.replace(lp.config_path + ".tmp", lp.config_path)


def ready(lp, port=None):
    return {k: v for k, v in lp.nodes().items()
            if v["state"] == "ready" and (port is None or v["connection_port"] == port)}


def test_nodes_registered_with_scanned_host_keys_and_reregistered_after_use(launcher, sshds):
    a, b = sshds(), sshds()
    write(launcher, static_config(launcher, [host(a, ["small"], **{"max-parallel-jobs": 2}),
                                             host(b, ["big"], **{"python-path": "/usr/bin/python3",
                                                                  "shell-type": "bash", "username": "ci"})]))
    launcher.start()
    launcher.wait_for(lambda: len(ready(launcher)) == 3, 15, "three static nodes")
    na = ready(launcher, a.port)
    assert len(na) == 2 and sorted(v["slot"] for v in na.values()) == [0, 1]
    for v in na.values():
        assert sorted(v["host_keys"]) == sorted(a.host_keys())
        assert v["provider"] == PROV and v["type"] == ["small"] and v["interface_ip"] == "127.0.0.1"
    (nb,) = ready(launcher, b.port).values()
    assert sorted(nb["host_keys"]) == sorted(b.host_keys())
    assert nb["username"] == "ci" and nb["python_path"] == "/usr/bin/python3" and nb["shell_type"] == "bash"
    comp = launcher.components("pool")[0]
    assert sorted(comp["supported_labels"]) == ["big", "small"]

    zc = ZuulClient(launcher.kazoo)
    req_id, req, nodes = zc.run_job(["big"], timeout=15)
    used = req["nodes"][0]
    assert nodes[0][1]["connection_port"] == b.port
    # the used node goes; the host is registered again as a new ready node (not deleted anywhere else)
    launcher.wait_for(lambda: used not in launcher.nodes() and len(ready(launcher, b.port)) == 1, 15,
                      "re-registered")
    assert used not in ready(launcher, b.port)


def test_label_no_static_node_has_is_declined(launcher, sshds):
    a = sshds()
    write(launcher, static_config(launcher, [host(a, ["small"])]))
    launcher.start()
    launcher.wait_for(lambda: ready(launcher), 15, "static node")
    zc = ZuulClient(launcher.kazoo)
    req_id = zc.submit(["nowhere"])
    req = zc.wait(req_id, timeout=10)
    assert req["state"] == "failed" and len(req["declined_by"]) == 1, req


def test_request_larger_than_the_pool_can_ever_hold_is_declined_and_others_are_served(launcher, sshds):
    """Two hosts with 2 slots each (small) and one of them also `big` (1 slot there): a request for
    5 small nodes, or for 3 big, or for 3 small + 2 big (5 > the 4 slots of the hosts with those
    labels) can never be held, so it is declined at once (failed: the only pool declined) without
    taking a node; a request that fits is then fulfilled at once (issue 15)."""
    a, b = sshds(), sshds()
    write(launcher, static_config(launcher, [host(a, ["small", "big"], **{"max-parallel-jobs": 2}),
                                             host(b, ["small"], **{"max-parallel-jobs": 2})]))
    launcher.start()
    launcher.wait_for(lambda: len(ready(launcher)) == 4, 15, "four static slots")
    zc = ZuulClient(launcher.kazoo)
    for labels, why in ((["small"] * 5, "5 small nodes requested; the pool's hosts with that label have 4 slots"),
                        (["big"] * 3, "3 big nodes requested; the pool's hosts with that label have 2 slots"),
                        (["small"] * 3 + ["big"] * 2, None)):
        req = zc.wait(zc.submit(labels), timeout=10)
        assert req["state"] == "failed" and len(req["declined_by"]) == 1, (labels, req)
        if why:
            assert why in launcher.log_text(), launcher.log_text()[-3000:]
    assert len(ready(launcher)) == 4     # nothing was taken
    rid = zc.submit(["small"] * 4)
    req = zc.wait(rid, timeout=15)
    assert req["state"] == "fulfilled" and len(req["nodes"]) == 4, req
    zc.return_nodes(zc.accept_nodes(rid, req))


def test_static_pool_max_servers_0_is_disabled_as_in_nodepool(launcher, sshds):
    """A static pool with Nodepool's `max-servers: 0` still registers its nodes, but declines requests
    (Nodepool: 'pool is disabled by max_servers'), so the request fails instead of taking the node."""
    a = sshds()
    write(launcher, static_config(launcher, [host(a, ["small"])], extra_pool={"max-servers": 0}))
    launcher.start()
    launcher.wait_for(lambda: ready(launcher), 15, "static node")
    zc = ZuulClient(launcher.kazoo)
    req = zc.wait(zc.submit(["small"]), timeout=10)
    assert req["state"] == "failed" and len(req["declined_by"]) == 1, req
    assert len(ready(launcher)) == 1     # the node was not handed out


def test_request_waits_for_a_busy_static_node_then_gets_it(launcher, sshds):
    a = sshds()
    write(launcher, static_config(launcher, [host(a, ["small"])]))
    launcher.start()
    launcher.wait_for(lambda: ready(launcher), 15, "static node")
    zc = ZuulClient(launcher.kazoo)
    r1 = zc.submit(["small"])
    nodes1 = zc.accept_nodes(r1, zc.wait(r1))
    r2 = zc.submit(["small"])
    launcher.wait_for(lambda: (zc.get_request(r2) or {}).get("state") == "pending", 10, "second pending")
    assert not launcher.components("pool")[0]["paused"]   # static pools never pause
    zc.use_nodes(nodes1)
    zc.return_nodes(nodes1)
    req2 = zc.wait(r2, timeout=15)
    assert req2["state"] == "fulfilled" and req2["nodes"] != [nodes1[0][0]]
    zc.return_nodes(zc.accept_nodes(r2, req2))


def test_node_dropped_from_config_removed_but_not_while_in_use(launcher, sshds):
    a, b = sshds(), sshds()
    write(launcher, static_config(launcher, [host(a, ["small"]), host(b, ["big"])]))
    launcher.start()
    launcher.wait_for(lambda: len(ready(launcher)) == 2, 15, "two static nodes")
    zc = ZuulClient(launcher.kazoo)
    rb = zc.submit(["big"])
    nodes_b = zc.accept_nodes(rb, zc.wait(rb))
    (nid_b, _, _), = nodes_b
    zc.use_nodes(nodes_b)
    (nid_a,) = ready(launcher, a.port)
    write(launcher, static_config(launcher, []))   # both hosts dropped
    launcher.wait_for(lambda: nid_a not in launcher.nodes(), 15, "unused node removed")
    assert launcher.nodes()[nid_b]["state"] == "in-use"   # in use: left alone
    zc.return_nodes(nodes_b)
    launcher.wait_for(lambda: not launcher.nodes(), 15, "used node removed, not re-registered")


def test_configured_host_key_mismatch_is_not_registered(launcher, sshds):
    a, b = sshds(), sshds()
    write(launcher, static_config(launcher, [host(a, ["small"], **{"host-key": b.host_keys()[0]}),
                                             host(b, ["big"], **{"host-key": b.host_keys()[0]})]))
    launcher.start()
    launcher.wait_for(lambda: ready(launcher, b.port), 15, "matching host registered")
    launcher.wait_for(lambda: "host key mismatch" in launcher.log_text(), 15, "mismatch reported")
    assert not ready(launcher, a.port)


def test_host_key_checking_false_uses_configured_keys_without_scanning(launcher, sshds):
    write(launcher, static_config(launcher, [{"name": "127.0.0.1", "labels": ["small"], "connection-port": 1,
                                              "host-key-checking": False, "host-key": "ssh-ed25519 AAAAtest"}]))
    launcher.start()
    (n,) = launcher.wait_for(lambda: list(ready(launcher).values()), 15, "registered without a scan")
    assert n["host_keys"] == ["ssh-ed25519 AAAAtest"]
    # and handed out without a liveness check (nothing listens on port 1)
    zc = ZuulClient(launcher.kazoo)
    zc.run_job(["small"], timeout=10)


def test_dead_host_fails_liveness_check_request_waits_until_it_is_back(launcher, sshds):
    a = sshds()
    write(launcher, static_config(launcher, [host(a, ["small"])]))
    launcher.start()
    (nid,) = launcher.wait_for(lambda: list(ready(launcher)), 15, "static node")
    port = a.port
    a.stop()
    zc = ZuulClient(launcher.kazoo)
    r = zc.submit(["small"])
    launcher.wait_for(lambda: "failed its liveness check" in launcher.log_text(), 15, "liveness failure")
    launcher.wait_for(lambda: nid not in launcher.nodes(), 15, "dead node deregistered")
    assert zc.get_request(r)["state"] == "pending"
    sshds(port=port)   # the host comes back (new host keys)
    req = zc.wait(r, timeout=25)
    assert req["state"] == "fulfilled" and req["nodes"][0] != nid
    zc.return_nodes(zc.accept_nodes(r, req))


def test_static_nodes_never_age_out_and_count_for_min_ready(launcher, sshds):
    """max-ready-age does not expire static nodes; min-ready counts a ready static
    node (no request while it is ready) and asks for one while it is in use."""
    import time
    a = sshds()
    cfg = static_config(launcher, [host(a, ["small"])])
    for lab in cfg["labels"]:
        if lab["name"] == "small":
            lab.update({"min-ready": 1, "max-ready-age": 1})
    write(launcher, cfg)
    launcher.start()
    launcher.wait_for(lambda: ready(launcher), 15, "static node")
    (first,) = ready(launcher)
    time.sleep(3)   # three times max-ready-age, several 500 ms cleanup runs
    assert list(ready(launcher)) == [first]
    assert "max-ready-age" not in launcher.log_text()
    zc = ZuulClient(launcher.kazoo)
    assert not [r for r in (launcher.kazoo.get_children("/nodepool/requests")
                            if launcher.kazoo.exists("/nodepool/requests") else [])
                if (zc.get_request(r) or {}).get("requestor") == "NodePool:min-ready"]
    # In use: min-ready asks for a node of the label (it waits for the static node).
    r1 = zc.submit(["small"])
    nodes1 = zc.accept_nodes(r1, zc.wait(r1))
    launcher.wait_for(lambda: "min-ready: requested a small node" in launcher.log_text(), 10, "min-ready request")
    zc.use_nodes(nodes1)
    zc.return_nodes(nodes1)
    launcher.wait_for(lambda: ready(launcher), 15, "static node back")


def test_freed_slot_goes_to_the_most_urgent_waiting_request(launcher, sshds):
    """Requests waiting for a static slot are served in priority order (issue 15): with the
    one slot held, a priority-300 request and then a priority-100 one wait; when the slot is
    freed the 100 gets it and the 300 keeps waiting. Six rounds, so a map's arbitrary order
    could not pass by luck (1 in 64)."""
    a = sshds()
    write(launcher, static_config(launcher, [host(a, ["small"])]))
    launcher.start()
    launcher.wait_for(lambda: ready(launcher), 15, "static node")
    zc = ZuulClient(launcher.kazoo)
    rid = zc.submit(["small"])
    held = zc.accept_nodes(rid, zc.wait(rid, timeout=15))
    for _ in range(6):
        low = zc.submit(["small"], priority=300)
        high = zc.submit(["small"], priority=100)
        for r in (low, high):
            launcher.wait_for(lambda: (zc.get_request(r) or {}).get("state") == "pending", 10, "pending")
        zc.use_nodes(held)
        zc.return_nodes(held)
        req = zc.wait(high, timeout=15)
        assert req["state"] == "fulfilled", req
        assert zc.get_request(low)["state"] == "pending"
        held = zc.accept_nodes(high, req)
        zc.use_nodes(held)
        zc.return_nodes(held)
        req = zc.wait(low, timeout=15)
        assert req["state"] == "fulfilled", req
        held = zc.accept_nodes(low, req)
    zc.use_nodes(held)
    zc.return_nodes(held)


def test_operators_min_ready_scenario_each_freed_slot_goes_to_the_waiting_zuul_request(launcher, sshds):
    """The operator's report in issue 15, as they ran it: host A (small, max-parallel-jobs 3), host B
    (big and small), min-ready small 3 and big 1, and Zuul asking for small nodes one after
    another, each held by a running job. The first four take the four ready slots at once; the
    next waits, and so do min-ready's own requests (priority 900). Each time a job ends, the freed
    slot goes to Zuul's waiting request within seconds (it waited 60 s while min-ready took each
    freed slot), and min-ready is never handed that node first. Five rounds, so an
    arbitrary serving order could not pass by luck."""
    a, b = sshds(), sshds()
    cfg = static_config(launcher, [host(a, ["small"], **{"max-parallel-jobs": 3}),
                                   host(b, ["big", "small"])])
    for lab in cfg["labels"]:
        lab["min-ready"] = {"small": 3, "big": 1}.get(lab["name"], 0)
    write(launcher, cfg)
    launcher.start()
    launcher.wait_for(lambda: len(ready(launcher)) == 4, 20, "four static slots")
    zc = ZuulClient(launcher.kazoo)

    def minready():
        return [r for r in launcher.kazoo.get_children("/nodepool/requests")
                if (zc.get_request(r) or {}).get("requestor") == "NodePool:min-ready"]

    def run(rid, req):
        nodes = zc.accept_nodes(rid, req)
        zc.use_nodes(nodes)
        return nodes

    held = []
    for _ in range(4):
        rid = zc.submit(["small"])
        req = zc.wait(rid, timeout=10)
        assert req["state"] == "fulfilled", req
        held.append(run(rid, req))
    for _ in range(5):
        rid = zc.submit(["small"])
        launcher.wait_for(lambda: (zc.get_request(rid) or {}).get("state") == "pending", 10, "Zuul request pending")
        launcher.wait_for(lambda: minready(), 10, "min-ready asking for replacements")
        zc.return_nodes(held.pop(0))    # the oldest job ends: its slot is freed
        req = zc.wait(rid, timeout=15)
        assert req["state"] == "fulfilled", req
        (node_id,) = req["nodes"]
        # Not even for a moment: a fulfilled min-ready request frees its node at once, so a
        # min-ready request served first would go unseen in ZooKeeper; the log says who took it.
        takers = [ln.split("request ")[1].split(":")[0] for ln in launcher.log_text().splitlines()
                  if ln.endswith("reusing ready node " + node_id)]
        assert takers == [rid], (node_id, takers)
        held.append(run(rid, req))
    for nodes in held:
        zc.return_nodes(nodes)
    # Jobs done: min-ready's requests are served from the freed slots, nothing is left pending.
    launcher.wait_for(lambda: len(ready(launcher)) == 4 and not minready(), 30, "pool refilled")
