"""poold lifecycles: failures, quota, deletion while pending, min-ready, ages, hold, crash."""
import json
import signal
import time

from launcher_fixture import IMAGE, LABEL, PROVIDER, launcher  # noqa: F401  (fixture)
from zuul_client import ZuulClient


def start(launcher, **cfg):
    launcher.write_config(launcher.config(**cfg))
    launcher.images()
    launcher.start()
    launcher.wait_for(lambda: launcher.components("pool"), 10, "pool component")
    return ZuulClient(launcher.kazoo)


def paused(launcher):
    return launcher.components("pool")[0]["paused"]


def test_failing_launch_retried_then_node_failed_and_request_failed(launcher):
    labels = [{"name": LABEL}, {"name": "broken"}]
    pool = {"labels": [{"name": LABEL, "diskimage": IMAGE, "memory": 64, "vcpus": 1},
                       {"name": "broken", "diskimage": "broken", "memory": 64, "vcpus": 1}]}
    cfg = launcher.config(labels=labels, pool=pool, provider={"launch-retries": 3,
                                                              "diskimages": [{"name": IMAGE}, {"name": "broken"}]})
    cfg["diskimages"].append({"name": "broken", "elements": ["x"]})
    launcher.write_config(cfg)
    launcher.images()
    launcher.images(image="broken")  # its volume does not exist in the storage pool
    launcher.start()
    zc = ZuulClient(launcher.kazoo)
    req_id = zc.submit(["broken"])
    req = zc.wait(req_id, timeout=20)
    assert req["state"] == "failed", req
    log = launcher.log_text()
    assert "attempt 3/3 failed" in log and "launch failed after 3 attempt(s)" in log, log[-3000:]
    # the failed node is deleted by the delete pass
    launcher.wait_for(lambda: not launcher.nodes(), 15, "failed node deleted")


def test_quota_pauses_pool_and_resumes_when_node_freed(launcher):
    zc = start(launcher, pool={"max-servers": 1})
    r1 = zc.submit([LABEL])
    req1 = zc.wait(r1)
    nodes1 = zc.accept_nodes(r1, req1)
    r2 = zc.submit([LABEL])
    launcher.wait_for(lambda: paused(launcher), 10, "pool paused at quota")
    assert zc.get_request(r2)["state"] == "pending"
    assert "max-servers reached" in launcher.log_text()
    zc.use_nodes(nodes1)
    zc.return_nodes(nodes1)
    req2 = zc.wait(r2, timeout=20)
    assert req2["state"] == "fulfilled"
    launcher.wait_for(lambda: not paused(launcher), 10, "pool unpaused")
    nodes2 = zc.accept_nodes(r2, req2)
    zc.return_nodes(nodes2)


def test_request_deleted_while_pending_unallocates_and_unlocks_its_nodes(launcher):
    zc = start(launcher, pool={"max-servers": 2})
    r1 = zc.submit([LABEL])
    nodes1 = zc.accept_nodes(r1, zc.wait(r1))
    r2 = zc.submit([LABEL, LABEL])  # one slot launches, the other waits for quota
    launcher.wait_for(lambda: [n for n, v in launcher.nodes().items()
                               if v.get("allocated_to") == r2 and v["state"] == "ready"], 10, "first slot ready")
    (nid,) = [n for n, v in launcher.nodes().items() if v.get("allocated_to") == r2]
    assert launcher.kazoo.get_children("/nodepool/nodes/%s/lock" % nid)  # held by the handler
    zc.delete_request(r2)
    launcher.wait_for(lambda: launcher.nodes()[nid]["allocated_to"] is None, 10, "node unallocated")
    launcher.wait_for(lambda: not launcher.kazoo.get_children("/nodepool/nodes/%s/lock" % nid), 10, "unlocked")
    assert launcher.nodes()[nid]["state"] == "ready"
    zc.return_nodes(nodes1)


def test_min_ready_refilled_after_a_node_is_taken(launcher):
    zc = start(launcher, labels=[{"name": LABEL, "min-ready": 2}])

    def ready_free():
        return sorted(n for n, v in launcher.nodes().items()
                      if v["state"] == "ready" and v["allocated_to"] is None)
    first = launcher.wait_for(lambda: len(ready_free()) == 2 and ready_free(), 15, "two min-ready nodes")
    zc.run_job([LABEL])
    launcher.wait_for(lambda: len(ready_free()) == 2 and set(ready_free()) != set(first), 15, "refill")
    # min-ready requests are removed once fulfilled
    launcher.wait_for(lambda: not launcher.kazoo.get_children("/nodepool/requests"), 10, "min-ready reqs gone")


def test_request_right_after_a_min_ready_node_is_ready_gets_that_node(launcher):
    """A Zuul request arriving 100 ms after the min-ready node became ready gets that node, not a
    new boot: poold frees the node of its own fulfilled min-ready request at once, instead of
    leaving it allocated until min-ready's next pass (up to ~0.7 s, as the GitLab executor bench
    ran into)."""
    zc = start(launcher, labels=[{"name": LABEL, "min-ready": 1}])
    node = launcher.wait_for(lambda: [n for n, v in launcher.nodes().items() if v["state"] == "ready"], 15,
                             "the min-ready node ready")[0]
    time.sleep(0.1)
    rid = zc.submit([LABEL])
    req = zc.wait(rid, timeout=15)
    assert req["state"] == "fulfilled" and req["nodes"] == [node], (node, req)
    zc.return_nodes(zc.accept_nodes(rid, req))
    assert "request %s: reusing ready node %s" % (rid, node) in launcher.log_text()


def test_max_ready_age_replaces_old_ready_nodes(launcher):
    start(launcher, labels=[{"name": LABEL, "min-ready": 1, "max-ready-age": 1}])
    first = launcher.wait_for(lambda: [n for n, v in launcher.nodes().items() if v["state"] == "ready"], 15,
                              "ready node")[0]
    launcher.wait_for(lambda: first not in launcher.nodes(), 15, "old node deleted")
    launcher.wait_for(lambda: [n for n, v in launcher.nodes().items() if v["state"] == "ready"], 15, "replacement")


def test_held_node_kept_until_hold_expiration(launcher):
    zc = start(launcher)
    r = zc.submit([LABEL])
    nodes = zc.accept_nodes(r, zc.wait(r))
    (nid, _, lock), = nodes
    held = zc.submit([LABEL])
    nodes_b = zc.accept_nodes(held, zc.wait(held))
    (nid_b, _, lock_b), = nodes_b
    for n, exp in ((nid, 2), (nid_b, None)):
        node, stat = zc.get_node(n)
        node.update({"state": "hold", "state_time": time.time(), "comment": "debug",
                     "hold_job": "t p j r", "hold_expiration": exp})
        launcher.kazoo.set("/nodepool/nodes/%s" % n, json.dumps(node).encode(), version=stat.version)
    lock.release()
    lock_b.release()
    time.sleep(1.0)
    assert nid in launcher.nodes()
    launcher.wait_for(lambda: nid not in launcher.nodes(), 15, "expired hold deleted")
    assert launcher.nodes()[nid_b]["state"] == "hold"


def test_sigkill_then_restart_resets_lost_request_and_deletes_stale_building_node(launcher):
    zc = start(launcher, pool={"max-servers": 1})
    r1 = zc.submit([LABEL])
    nodes1 = zc.accept_nodes(r1, zc.wait(r1))
    r2 = zc.submit([LABEL])
    launcher.wait_for(lambda: (zc.get_request(r2) or {}).get("state") == "pending", 10, "pending")
    # a node a dead launcher left behind in `building`, unlocked
    stale = launcher.kazoo.create("/nodepool/nodes/", json.dumps(
        {"state": "building", "provider": PROVIDER, "pool": "main", "type": [LABEL],
         "allocated_to": None, "external_id": None}).encode(), sequence=True).rsplit("/", 1)[1]
    launcher.proc.send_signal(signal.SIGKILL)
    launcher.proc.wait()
    launcher.proc = None
    launcher.log.close()
    launcher.start()
    launcher.wait_for(lambda: stale not in launcher.nodes(), 15, "stale building node deleted")
    launcher.wait_for(lambda: "reset to requested" in launcher.log_text(), 15, "lost request reset")
    zc.use_nodes(nodes1)
    zc.return_nodes(nodes1)
    req2 = zc.wait(r2, timeout=20)
    assert req2["state"] == "fulfilled"
    zc.return_nodes(zc.accept_nodes(r2, req2))
