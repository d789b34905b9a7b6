"""Leaked-instance cleanup and cloud capacity errors, with domains made behind poold's back.

The libvirt test driver starts with the domains written into its node XML
(launcher_fixture.domain_xml): one tagged as ours for a node ZooKeeper does not
know (a leak), one tagged as ours whose node exists, one with our name pattern
but no tags, and one that is simply someone else's.
"""
import json
import re
import socket
import time

from harness import free_port
from launcher_fixture import IMAGE, LABEL, PROVIDER, domain_xml, launcher  # noqa: F401  (fixture)
from zuul_client import ZuulClient

LEAK = PROVIDER + "-np0000099999"
KNOWN = PROVIDER + "-np0000077777"
UNTAGGED = PROVIDER + "-np0000088888"
FOREIGN = "someone-elses-vm"
# poold-builder's boot check of an upload (bw_verify.c): a 19-digit node id no
# ZooKeeper node has, tagged poold_verify; the builder deletes its own.
VERIFY = PROVIDER + "-np9000000000112345678"


def test_leaked_domain_deleted_on_second_pass_only_others_untouched(launcher):
    """A leak goes on the second pass; a known node's domain, untagged and foreign
    domains, and the builder's verify server (tagged poold_verify) are left alone."""
    launcher.domains = [domain_xml(LEAK, PROVIDER, "0000099999"), domain_xml(KNOWN, PROVIDER, "0000077777"),
                        domain_xml(UNTAGGED), domain_xml(FOREIGN),
                        domain_xml(VERIFY, PROVIDER, "9000000000112345678",
                                   tags={"poold_verify": "img/0123/%s/0000000001" % PROVIDER,
                                         "poold_verify_builder": "b-uuid"})]
    launcher.write_config()
    launcher.images()
    # the node record of KNOWN exists (a ready node of ours)
    launcher.kazoo.create("/nodepool/nodes/0000077777", json.dumps(
        {"state": "ready", "provider": PROVIDER, "pool": "main", "type": [LABEL], "external_id": KNOWN,
         "allocated_to": None, "state_time": time.time(), "created_time": time.time()}).encode(), makepath=True)
    launcher.start(env={"POOLD_CLEANUP_INTERVAL_MS": "700"})
    deleting = "leaked instance %s of provider %s" % (LEAK, PROVIDER)
    seen = "instance %s of provider %s has no node" % (LEAK, PROVIDER)
    launcher.wait_for(lambda: deleting in launcher.log_text(), 15, "leak deleted")
    log = launcher.log_text()
    # first pass: only noted; the delete comes from a later pass
    assert log.index(seen) < log.index(deleting), log[-3000:]
    assert log.count(seen) == 1
    # three more passes: the domain is gone for good (a failed delete would be reported again)
    time.sleep(2.5)
    log = launcher.log_text()
    assert log.count(deleting) == 1, log[-3000:]
    assert log.count(seen) == 1
    for other in (KNOWN, UNTAGGED, FOREIGN, VERIFY):
        assert other not in log, other
    assert launcher.nodes()["0000077777"]["state"] == "ready"


def test_capacity_error_from_create_aborts_node_and_relaunches(launcher):
    """-EDQUOT (no free host port) → node aborted, not failed; a new node is launched once capacity returns."""
    p1 = free_port()
    p2 = p1 + 1
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        blocker.bind(("127.0.0.1", p2))
    except OSError:
        blocker.close()
        p2 = p1 - 1
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", p2))
    blocker.listen(1)   # a listening socket makes the port unusable for the driver
    try:
        launcher.write_config(launcher.config(provider={"port-range": [min(p1, p2), max(p1, p2)]}))
        launcher.images()
        launcher.start()
        zc = ZuulClient(launcher.kazoo)
        r1 = zc.submit([LABEL])
        nodes1 = zc.accept_nodes(r1, zc.wait(r1))
        r2 = zc.submit([LABEL])
        launcher.wait_for(lambda: "is at capacity" in launcher.log_text(), 15, "capacity error")
        assert zc.get_request(r2)["state"] == "pending"
        aborted = re.findall(r"node (\d+): provider %s is at capacity" % PROVIDER, launcher.log_text())
        assert aborted
        assert "launch failed" not in launcher.log_text()
    finally:
        blocker.close()
    req2 = zc.wait(r2, timeout=20)
    assert req2["state"] == "fulfilled", req2
    assert req2["nodes"][0] not in aborted
    # aborted nodes are cleaned up by the delete pass
    launcher.wait_for(lambda: not [n for n in aborted if n in launcher.nodes()], 15, "aborted nodes deleted")
    zc.return_nodes(zc.accept_nodes(r2, req2))
    zc.return_nodes(nodes1)


def test_stale_request_lock_dirs_of_gone_requests_are_swept(launcher):
    """The (asynchronous) sweep deletes a request-lock directory older than the
    stale age whose request is gone, with its contenders; one whose request
    still exists is kept."""
    zc = ZuulClient(launcher.kazoo)
    launcher.write_config()
    launcher.images()
    launcher.kazoo.create("/nodepool/requests-lock/100-0000000042/x__lock__0000000000", b"", makepath=True)
    live = zc.submit(["no-such-label"])
    launcher.kazoo.ensure_path("/nodepool/requests-lock/%s" % live)
    launcher.start(env={"POOLD_CLEANUP_INTERVAL_MS": "500", "POOLD_STALE_LOCK_AGE_MS": "1"})
    launcher.wait_for(lambda: not launcher.kazoo.exists("/nodepool/requests-lock/100-0000000042"), 15,
                      "stale lock dir swept")
    assert "deleted stale request lock /nodepool/requests-lock/100-0000000042" in launcher.log_text()
    time.sleep(1.5)   # more sweeps
    assert launcher.kazoo.exists("/nodepool/requests-lock/%s" % live)
