"""Provider quota (from the driver, minus unmanaged servers) and tenant-resource-limits.

The libvirt test driver reports its host's size as quota (CPUs, memory); the
fixture sizes that host, so a 2-CPU host holds two 1-vCPU nodes.
"""
from launcher_fixture import IMAGE, LABEL, PROVIDER, domain_xml, launcher  # noqa: F401  (fixture)
from zuul_client import ZuulClient


def start(launcher, cpus, pool=None, env=None, extra=None, label_extra=None):
    launcher.host_cpus = cpus
    label = {"name": LABEL, "diskimage": IMAGE, "memory": 64, "vcpus": 1}
    label.update(label_extra or {})
    p = {"labels": [label]}
    p.update(pool or {})
    launcher.write_config(launcher.config(pool=p, extra=extra))
    launcher.images()
    launcher.start(env=env)
    launcher.wait_for(lambda: launcher.components("pool"), 10, "pool component")
    return ZuulClient(launcher.kazoo)


def pool_comp(launcher):
    return launcher.components("pool")[0]


def test_provider_core_quota_pauses_pool_and_resumes(launcher):
    zc = start(launcher, cpus=2)
    got = []
    for _ in range(2):
        r = zc.submit([LABEL])
        got.append((r, zc.accept_nodes(r, zc.wait(r))))
    r3 = zc.submit([LABEL])
    launcher.wait_for(lambda: pool_comp(launcher)["paused"], 10, "paused at provider quota")
    assert zc.get_request(r3)["state"] == "pending"
    assert "provider quota reached: cores 2 + 0 unmanaged of 2" in launcher.log_text()
    zc.return_nodes(got[0][1])
    req3 = zc.wait(r3, timeout=20)
    assert req3["state"] == "fulfilled"
    launcher.wait_for(lambda: not pool_comp(launcher)["paused"], 10, "unpaused")
    zc.return_nodes(zc.accept_nodes(r3, req3))
    zc.return_nodes(got[1][1])


def test_unmanaged_server_reduces_provider_quota(launcher):
    """A 3-CPU host with a 1-vCPU server that is no node of ours fits two of our nodes, not three."""
    launcher.domains = [domain_xml(PROVIDER + "-np0000099999", PROVIDER, "0000099999")]
    # long cleanup interval: the leak sweep must not remove the server during the test
    zc = start(launcher, cpus=3, env={"POOLD_CLEANUP_INTERVAL_MS": "600000"})
    held = []
    for _ in range(2):
        r = zc.submit([LABEL])
        held.append(zc.accept_nodes(r, zc.wait(r)))
    r3 = zc.submit([LABEL])
    launcher.wait_for(lambda: pool_comp(launcher)["paused"], 10, "paused")
    assert "cores 2 + 1 unmanaged of 3" in launcher.log_text()
    assert zc.get_request(r3)["state"] == "pending"
    zc.delete_request(r3)
    for h in held:
        zc.return_nodes(h)


def test_request_larger_than_provider_quota_declined(launcher):
    zc = start(launcher, cpus=2, label_extra={"vcpus": 4})
    r = zc.submit([LABEL])
    req = zc.wait(r, timeout=15)
    assert req["state"] == "failed", req
    assert "larger than the provider's quota (cores)" in launcher.log_text()


def test_tenant_resource_limits_defer_requests_of_that_tenant_only(launcher):
    zc = start(launcher, cpus=16, extra={"tenant-resource-limits": [{"tenant-name": "tenant-one",
                                                                     "max-servers": 1}]})
    r1 = zc.submit([LABEL], tenant="tenant-one")
    nodes1 = zc.accept_nodes(r1, zc.wait(r1))
    assert nodes1[0][1]["tenant_name"] == "tenant-one"
    r2 = zc.submit([LABEL], tenant="tenant-one")
    # another tenant is served meanwhile
    other = zc.submit([LABEL], tenant="tenant-two")
    req_other = zc.wait(other, timeout=15)
    assert req_other["state"] == "fulfilled"
    zc.return_nodes(zc.accept_nodes(other, req_other))
    # the over-limit request was neither accepted nor declined: it waits as requested
    r2_state = zc.get_request(r2)
    assert r2_state["state"] == "requested" and r2_state["declined_by"] == []
    assert not pool_comp(launcher)["paused"]
    zc.use_nodes(nodes1)
    zc.return_nodes(nodes1)   # used → deleted → the tenant has room again
    req2 = zc.wait(r2, timeout=20)
    assert req2["state"] == "fulfilled"
    zc.return_nodes(zc.accept_nodes(r2, req2))


def test_request_at_quota_deletes_oldest_unused_ready_node_of_another_label(launcher):
    """Issue 15, as Nodepool's deleteOldestUnusedNode: max-servers 2 filled by two min-ready
    nodes of label A; a request for label B deletes the oldest ready A node (never the
    newer one) to make room, is fulfilled, and min-ready refills A only as quota allows."""
    other = LABEL + "-b"
    launcher.write_config(launcher.config(
        labels=[{"name": LABEL, "min-ready": 2}, {"name": other}],
        pool={"max-servers": 2,
              "labels": [{"name": LABEL, "diskimage": IMAGE, "memory": 64, "vcpus": 1},
                         {"name": other, "diskimage": IMAGE, "memory": 64, "vcpus": 1}]}))
    launcher.images()
    launcher.start()
    zc = ZuulClient(launcher.kazoo)

    def ready_a():
        return [(v["state_time"], n) for n, v in launcher.nodes().items()
                if v["state"] == "ready" and v["type"] == [LABEL] and v["allocated_to"] is None]
    launcher.wait_for(lambda: len(ready_a()) == 2, 20, "two min-ready A nodes")
    launcher.wait_for(lambda: not launcher.kazoo.get_children("/nodepool/requests"), 10, "min-ready reqs gone")
    (_, oldest), (_, newest) = sorted(ready_a())
    r = zc.submit([other])
    req = zc.wait(r, timeout=30)
    assert req["state"] == "fulfilled", req
    nodes = zc.accept_nodes(r, req)
    assert nodes[0][1]["type"] == [other]
    assert oldest not in launcher.nodes()
    assert newest in launcher.nodes() and launcher.nodes()[newest]["state"] == "ready"
    log = launcher.log_text()
    assert "node %s: oldest unused ready node of pool" % oldest in log
    assert "node %s: oldest unused ready node" % newest not in log
    # At quota (one A, one B) min-ready does not push B's node out.
    assert len(launcher.nodes()) == 2
    zc.return_nodes(nodes)
    launcher.wait_for(lambda: len(ready_a()) == 2, 30, "min-ready refilled once B's node is gone")
