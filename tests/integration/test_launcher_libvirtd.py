"""A libvirtd that crashes and comes back: poold reconnects, loses no request, fails no node.

Before, the libvirt driver kept its dead connection: every call failed with
"client socket is closed", min-ready and Zuul requests failed one after the
other every two seconds, and nothing was served until poold restarted. Now the
driver reports the daemon as down (the pools pause, requests wait) and reopens
its connection when libvirtd answers again.

Real libvirtd (a private session daemon, libvirt_fixture.py) and real QEMU
domains under TCG booting a blank disk: with host-key-checking off a running
domain is a ready node, so no image has to boot."""
import time

import pytest

from launcher_fixture import IMAGE, LABEL, PROVIDER, launcher, volume_name  # noqa: F401  (fixture)
from libvirt_fixture import Libvirtd
from zuul_client import ZuulClient

POOL = "restart"


@pytest.fixture
def own_libvirtd():
    """A libvirtd of this test's own: the test kills it."""
    d = Libvirtd().start()
    yield d
    d.stop()


def paused(launcher):
    pools = launcher.components("pool")
    return bool(pools) and pools[0]["paused"]


def test_libvirtd_crash_pauses_pool_then_reconnects_and_serves(launcher, own_libvirtd):
    d = own_libvirtd
    launcher.write_config(launcher.config(provider={
        "uri": d.uri, "domain-type": "qemu", "network-mode": "user", "storage-pool": POOL,
        "storage-pool-path": d.base + "/pool", "port-range": [23100, 23199], "boot-timeout": 120,
        "launch-timeout": 180}))
    launcher.start()
    launcher.wait_for(lambda: launcher.components("pool"), 15, "pool component")
    # poold defined the storage pool; the "upload" is a blank qcow2 volume.
    d.virsh("vol-create-as", POOL, volume_name(PROVIDER, IMAGE), "64M", "--format", "qcow2")
    launcher.images()
    zc = ZuulClient(launcher.kazoo)
    try:
        _, first, _ = zc.run_job([LABEL], timeout=120)
        assert first["state"] == "fulfilled", first

        d.crash()
        during = zc.submit([LABEL])
        launcher.wait_for(lambda: paused(launcher), 30, "pool paused while libvirtd is down")
        time.sleep(3)
        assert zc.get_request(during)["state"] in ("requested", "pending"), zc.get_request(during)
        d.start()

        req = zc.wait(during, timeout=120)
        assert req["state"] == "fulfilled", req
        nodes = zc.accept_nodes(during, req)
        zc.use_nodes(nodes)
        zc.return_nodes(nodes)
        launcher.wait_for(lambda: not paused(launcher), 30, "pool unpaused")
        log = launcher.log_text()
        assert "reconnected to " + d.uri in log, log[-3000:]
        assert "request failed" not in log, log[-3000:]
        assert "launch failed" not in log, log[-3000:]
        launcher.wait_for(lambda: not launcher.nodes(), 60, "used nodes deleted")
        assert not [x for x in d.virsh("list", "--all", "--name").split() if x.strip()]
    finally:
        launcher.stop()


def test_stale_storage_pool_of_an_earlier_run_is_redefined_at_the_configured_path(launcher, own_libvirtd):
    """A storage pool of the same name left inactive by an earlier run whose
    directory is gone (poold-local's state dir removed without `down`) used to
    make every open and upload fail with "cannot open directory" forever. It is
    redefined at the configured path; the provider opens and serves."""
    d = own_libvirtd
    gone = d.base + "/gone-state/pool"
    d.virsh("pool-define-as", POOL, "dir", "--target", gone)
    launcher.write_config(launcher.config(provider={
        "uri": d.uri, "domain-type": "qemu", "network-mode": "user", "storage-pool": POOL,
        "storage-pool-path": d.base + "/pool", "port-range": [23200, 23299]}))
    launcher.start()
    launcher.wait_for(lambda: launcher.components("pool"), 15, "pool component")
    launcher.wait_for(lambda: "redefining it at " + d.base + "/pool" in launcher.log_text(), 15, "redefinition logged")
    xml = d.virsh("pool-dumpxml", POOL)
    assert "<path>%s/pool</path>" % d.base in xml, xml
    assert "running" in d.virsh("pool-info", POOL)
    assert "cannot open" not in launcher.log_text()
    d.virsh("vol-create-as", POOL, volume_name(PROVIDER, IMAGE), "64M", "--format", "qcow2")
    launcher.images()
    ZuulClient(launcher.kazoo).run_job([LABEL], timeout=120)
    launcher.stop()
