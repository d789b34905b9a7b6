"""statsd metrics with Nodepool's names (protocol.md §3.3), received by a
UDP listener on loopback: the launcher's for a launch, the builder's (through
the shared statsd module the builder calls, driven by tests/tools/statsdtool)."""
import os
import re
import subprocess
import time

import pytest

from builder_fixture import BuilderProcess, diskimage, poolctl, wait_for
from harness import program
from launcher_fixture import LABEL, PROVIDER, launcher, launchers  # noqa: F401  (fixtures)
from statsd_listener import LINE, Listener, has
from zuul_client import ZuulClient


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


def test_launch_sends_nodepool_launch_timers_counters_and_node_gauges(launcher, listener):
    launcher.write_config()
    launcher.images()
    launcher.start(env=listener.env())
    launcher.wait_for(lambda: launcher.components("pool"), 10, "pool component")
    zc = ZuulClient(launcher.kazoo, system_id="zuul.example:sys1")
    req = zc.wait(zc.submit([LABEL]), timeout=30)
    assert req["state"] == "fulfilled", req
    node = launcher.nodes()[req["nodes"][0]]
    keys = ["nodepool.launch.ready", "nodepool.launch.provider.%s.ready" % PROVIDER,
            "nodepool.launch.requestor.zuul_example_sys1.ready"]
    if node.get("az"):
        keys.append("nodepool.launch.provider.%s.%s.ready" % (PROVIDER, node["az"]))
    lines = listener.wait(lambda ls: all(has(ls, k, "c", 1) and has(ls, k, "ms") for k in keys), what="launch")
    for k in keys:
        (ms,) = [float(LINE.match(l).group(2)) for l in lines if l.startswith(k + ":") and l.endswith("|ms")]
        assert 0 <= ms < 60000, (k, ms)
    # Node gauges, zeros for the other states of the known provider and label.
    lines = listener.wait(lambda ls: has(ls, "nodepool.nodes.ready", "g", 1), what="ready gauge")
    assert has(lines, "nodepool.provider.%s.nodes.ready" % PROVIDER, "g", 1)
    assert has(lines, "nodepool.label.%s.nodes.ready" % LABEL, "g", 1)
    assert has(lines, "nodepool.label.%s.nodes.failed" % LABEL, "g", 0)
    assert has(lines, "nodepool.provider.%s.nodes.deleting" % PROVIDER, "g", 0)
    assert has(lines, "nodepool.provider.%s.max_servers" % PROVIDER, "g", 10)
    assert has(lines, "nodepool.provider.%s.pool.main.addressable_requests" % PROVIDER, "g", 0)


def test_stats_election_one_launcher_sends_global_gauges_and_a_survivor_takes_over(launchers):
    """Two launchers on one config and ZooKeeper, each with its own statsd listener: only the
    winner of Nodepool's stats election (/nodepool/elections/stats) sends the global gauges
    (nodes, max_servers, tenant_limits), both send their own
    nodepool.launcher.<host>.zk.client.connection_queue; when the winner stops, the other one
    wins and sends them."""
    import socket
    a, b = launchers(2)
    la, lb = Listener(), Listener()
    try:
        a.write_config(a.config(extra={"tenant-resource-limits": [{"tenant-name": "tenant-one", "max-servers": 7}]}))
        a.images()
        a.start(env=la.env())
        la.wait(lambda ls: has(ls, "nodepool.nodes.ready", "g", 0) and
                has(ls, "nodepool.tenant_limits.tenant-one.max-servers", "g", 7), what="winner's gauges")
        b.start(env=lb.env())
        host = socket.gethostname()
        zkq = "nodepool.launcher.%s.zk.client.connection_queue" % host
        lb.wait(lambda ls: has(ls, zkq, "g"), what="the loser's own launcher gauge")
        time.sleep(3)   # several refreshes of the loser
        assert not [l for l in lb.lines() if l.startswith(("nodepool.nodes.", "nodepool.tenant_limits."))]
        assert "stats election: won" in a.log_text() and "stats election: won" not in b.log_text()
        assert a.stop() == 0
        lb.wait(lambda ls: has(ls, "nodepool.nodes.ready", "g", 0) and
                has(ls, "nodepool.tenant_limits.tenant-one.max-servers", "g", 7), timeout=30,
                what="the survivor's gauges")
        assert "stats election: won" in b.log_text()
    finally:
        la.close()
        lb.close()


def test_failed_launch_counts_as_error(launcher, listener):
    """An upload whose volume the provider does not have fails the launch: nodepool.launch.error.* is counted."""
    launcher.write_config()
    launcher.images(external_id="no-such-volume")
    launcher.start(env=listener.env())
    launcher.wait_for(lambda: launcher.components("pool"), 10, "pool component")
    zc = ZuulClient(launcher.kazoo)
    zc.submit([LABEL])
    listener.wait(lambda ls: any(re.match(r"nodepool\.launch\.error\.[a-z]+:1\|c$", l) for l in ls),
                  what="launch error counter")


def run_tool(listener, *args, **env):
    e = dict(os.environ)
    e.update(listener.env(**env))
    r = subprocess.run([program("statsdtool")] + [str(a) for a in args], env=e, capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r.stderr


def test_builder_build_and_upload_metrics_have_nodepool_names(listener):
    run_tool(listener, "build", "debian", 0, 1234.5)
    run_tool(listener, "size", "debian", "qcow2", 123456789)
    run_tool(listener, "upload", "debian", "local", 1, 2500)
    run_tool(listener, "upload", "debian", "broken", 0, 10)   # failures send nothing, as Nodepool
    run_tool(listener, "build-state", "host1", "debian", 1)
    run_tool(listener, "upload-state", "host1", "debian", "local", 2)
    lines = listener.wait(lambda ls: len(ls) >= 8, what="builder lines")
    assert has(lines, "nodepool.dib_image_build.debian.status.rc", "g", 0)
    assert has(lines, "nodepool.dib_image_build.debian.status.duration", "ms", 1234.5)
    assert "nodepool.dib_image_build.debian.status.duration:1234.500000|ms" in lines  # python-statsd's format
    last = [float(LINE.match(l).group(2)) for l in lines if l.startswith("nodepool.dib_image_build.debian.status.last_build:")]
    assert last and abs(last[0] - time.time()) < 60
    assert has(lines, "nodepool.dib_image_build.debian.qcow2.size", "g", 123456789)
    assert has(lines, "nodepool.image_update.debian.local", "ms", 2500)
    assert has(lines, "nodepool.image_update.debian.local", "c", 1)
    assert not any("broken" in l for l in lines)
    assert has(lines, "nodepool.builder.host1.image.debian.build.state", "g", 1)
    assert has(lines, "nodepool.builder.host1.image.debian.provider.local.upload.state", "g", 2)


def last_gauge(lines, name):
    vals = [float(LINE.match(l).group(2)) for l in lines if l.startswith(name + ":") and l.endswith("|g")]
    return vals[-1] if vals else None


def test_builder_sends_outstanding_manual_build_requests_as_nodepool_image_build_requests(
        tmp_path, zk_server, zk_chroot, kazoo, listener):
    """poold-builder sends Nodepool's builder gauges nodepool.image_build_requests and
    nodepool.image.<image>.image_build_requests: 1 while a `poolctl image-build` request waits
    for its (slow) build, 0 again once the build has succeeded and removed the request."""
    b = BuilderProcess(tmp_path, zk_server, zk_chroot, kazoo)
    try:
        b.config([diskimage(env={"FAKE_DIB_SLEEP": "2"})])
        b.start(env=listener.env())
        total, per_image = "nodepool.image_build_requests", "nodepool.image.debian.image_build_requests"
        first = wait_for(lambda: b.ready_builds("debian"), timeout=60, what="the first build")
        listener.wait(lambda ls: last_gauge(ls, total) == 0 and last_gauge(ls, per_image) == 0,
                      what="no request yet")
        r = poolctl(b.config_path, "image-build", "debian")
        assert r.returncode == 0, r.stderr
        listener.wait(lambda ls: last_gauge(ls, total) == 1 and last_gauge(ls, per_image) == 1,
                      what="the request counted")
        wait_for(lambda: set(b.ready_builds("debian")) - set(first), timeout=60, what="the requested build")
        listener.wait(lambda ls: last_gauge(ls, total) == 0 and last_gauge(ls, per_image) == 0,
                      what="the request consumed")
    finally:
        b.stop()


def test_prefix_and_datagram_packing(listener):
    run_tool(listener, "many", 100, STATSD_PREFIX="site1")
    lines = listener.wait(lambda ls: len(ls) >= 100, what="100 gauges")
    assert lines == ["site1.poold.test.%d:%d|g" % (i, i) for i in range(100)]
    assert 1 < len(listener.datagrams) < 100  # packed several per datagram, none above 512 bytes


def test_unset_environment_means_no_statsd(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith("STATSD_")}
    r = subprocess.run([program("statsdtool"), "build", "x", "0", "1"], env=e, capture_output=True, text=True)
    assert r.returncode == 1 and "not configured" in r.stderr
