"""poold's launcher with an openstack provider against the real loopback
OpenStack: a Zuul-like client gets Nova servers (fake virt driver); leaks,
servers deleted behind poold's back, quota exhaustion and wrong credentials."""
import json
import os
import re
import subprocess
import time
import uuid

import pytest

from harness import program
from launcher_fixture import IMAGE, LABEL, PROVIDER, LauncherProcess
from openstack_fixture import cloud, openstack  # noqa: F401 - fixtures
from statsd_listener import LINE, Listener, has
from zuul_client import ZuulClient




@pytest.fixture
def glance_image(cloud, tmp_path):
    path = tmp_path / "tiny.raw"
    path.write_bytes(b"\0" * 65536)
    e = dict(os.environ, **cloud.env_vars())
    r = subprocess.run([program("ostool"), "--provider", PROVIDER, "upload", str(path), "raw",
                        "%s-%s" % (IMAGE, uuid.uuid4().hex[:8])], env=e, stdout=subprocess.PIPE, check=True)
    img = json.loads(r.stdout)["id"]
    yield img
    subprocess.run([program("ostool"), "--provider", PROVIDER, "image-delete", img], env=e,
                   stdout=subprocess.DEVNULL)


@pytest.fixture
def oslauncher(tmp_path, zk_server, zk_chroot, kazoo, cloud, glance_image):
    lp = LauncherProcess(tmp_path, zk_server, zk_chroot, kazoo)
    lp.glance_image = glance_image
    lp.cloud = cloud
    yield lp
    if lp.proc is not None:
        rc = lp.stop()
        assert rc == 0, "poold exited %s\n%s" % (rc, lp.log_text()[-6000:])


def os_config(lp, cloud_name="poold", max_servers=10):
    cfg = lp.config()
    cfg["providers"] = [{
        "name": PROVIDER, "driver": "openstack", "cloud": cloud_name, "rate": 0.01,
        "launch-retries": 2, "launch-timeout": 120,
        "diskimages": [{"name": IMAGE}],
        "pools": [{"name": "main", "max-servers": max_servers, "host-key-checking": False,
                   "networks": ["none"],
                   "labels": [{"name": LABEL, "diskimage": IMAGE, "min-ram": 100,
                               "instance-properties": {"team": "ci"}}]}],
    }]
    return cfg


def start(lp, cloud_name="poold", **kw):
    lp.write_config(os_config(lp, cloud_name, **kw))
    lp.images(external_id=lp.glance_image)
    lp.start(env=lp.cloud.env_vars())
    return ZuulClient(lp.kazoo)


def test_zuul_gets_nova_servers_with_flavor_and_metadata_and_they_are_deleted_after_use(oslauncher):
    lp, cloud = oslauncher, oslauncher.cloud
    zuul = start(lp)
    req_id = zuul.submit([LABEL, LABEL])
    req = zuul.wait(req_id, timeout=90)
    assert req["state"] == "fulfilled", req
    nodes = zuul.accept_nodes(req_id, req)
    servers = []
    for node_id, node, _ in nodes:
        assert node["state"] == "ready" and node["provider"] == PROVIDER
        s = cloud.server(node["external_id"])
        assert s is not None and s["status"] == "ACTIVE"
        assert s["flavor"]["original_name"] == "poold.medium"  # smallest with >= 100 MiB
        md = s["metadata"]
        assert md["nodepool_node_id"] == node_id
        assert md["nodepool_provider_name"] == PROVIDER and md["nodepool_pool_name"] == "main"
        assert md["groups"] == "%s,%s,%s" % (PROVIDER, IMAGE, LABEL) and md["team"] == "ci"
        assert s["image"]["id"] == lp.glance_image
        assert node["region"] == "RegionOne" and node["az"] == "nova"
        assert node["cloud"] == "poold"  # the clouds.yaml cloud (nodepool.cloud), not the provider name
        servers.append(s["id"])
    zuul.use_nodes(nodes)
    zuul.return_nodes(nodes)
    lp.wait_for(lambda: not any(n in lp.nodes() for n, _, _ in nodes), 60, "used nodes deleted")
    for sid in servers:
        assert cloud.server(sid) is None


def test_nova_api_calls_reach_statsd_as_nodepool_task_timers_and_counters(oslauncher):
    """Every Nova call of the launch and the delete is sent as openstacksdk sends it for
    Nodepool (statsd prefix nodepool.task.<provider>): timer and counter
    <service>.<METHOD>.<operation>.<status> and counter .attempted."""
    lp = oslauncher
    listener = Listener()
    try:
        lp.write_config(os_config(lp))
        lp.images(external_id=lp.glance_image)
        lp.start(env=dict(lp.cloud.env_vars(), **listener.env()))
        zuul = ZuulClient(lp.kazoo)
        req_id = zuul.submit([LABEL])
        req = zuul.wait(req_id, timeout=90)
        assert req["state"] == "fulfilled", req
        task = "nodepool.task.%s.compute." % PROVIDER
        create, listing = task + "POST.servers", task + "GET.servers_detail"
        lines = listener.wait(lambda ls: has(ls, create + ".202", "ms") and has(ls, listing + ".200", "ms"),
                              what="create and list timers")
        assert has(lines, create + ".202", "c", 1) and has(lines, create + ".attempted", "c", 1)
        assert has(lines, listing + ".200", "c", 1) and has(lines, listing + ".attempted", "c", 1)
        assert has(lines, task + "GET.flavors_detail.200", "ms")  # the flavor for min-ram
        (ms,) = [float(LINE.match(l).group(2)) for l in lines if l.startswith(create + ".202:") and l.endswith("|ms")]
        assert 0 <= ms < 60000 and ms == int(ms), ms  # whole milliseconds, as openstacksdk sends
        # Nothing failed, and no name escapes the nodepool.task.<provider>.<service> tree.
        assert not [l for l in lines if l.startswith("nodepool.task.") and not l.startswith(
            ("nodepool.task.%s.compute." % PROVIDER, "nodepool.task.%s.network." % PROVIDER,
             "nodepool.task.%s.image." % PROVIDER, "nodepool.task.%s.block-storage." % PROVIDER))], lines
        assert not [l for l in lines if l.startswith("nodepool.task.") and ".failed:" in l], lines
        nodes = zuul.accept_nodes(req_id, req)
        zuul.use_nodes(nodes)
        zuul.return_nodes(nodes)
        listener.wait(lambda ls: has(ls, task + "DELETE.server.204", "c", 1) and
                      has(ls, task + "DELETE.server.attempted", "c", 1), timeout=60, what="the server's delete")
    finally:
        listener.close()


def test_leaked_server_tagged_as_ours_is_deleted(oslauncher):
    lp, cloud = oslauncher, oslauncher.cloud
    start(lp)
    e = dict(os.environ, **cloud.env_vars())
    r = subprocess.run([program("ostool"), "--provider", PROVIDER, "--min-ram", "64", "--network", "none",
                        "create", "0000099999", lp.glance_image], env=e, stdout=subprocess.PIPE, check=True)
    leaked = json.loads(r.stdout)[0]["id"]
    # A foreign server (no poold tags) in the same project must survive.
    st, d, _ = cloud.nova("POST", "/servers", {"server": {
        "name": "foreign", "imageRef": lp.glance_image, "flavorRef": cloud.nova("GET", "/flavors")[1]["flavors"][0]["id"],
        "networks": "none"}})
    assert st == 202, d
    foreign = d["server"]["id"]
    cloud.wait(lambda: cloud.server(leaked) is None, 60, "leaked server deleted")
    assert cloud.server(foreign) is not None
    assert "leaked instance %s" % leaked in lp.log_text()


def test_server_deleted_behind_poolds_back_is_handled_when_the_node_is_deleted(oslauncher):
    lp, cloud = oslauncher, oslauncher.cloud
    zuul = start(lp)
    req_id = zuul.submit([LABEL])
    req = zuul.wait(req_id, timeout=90)
    assert req["state"] == "fulfilled", req
    nodes = zuul.accept_nodes(req_id, req)
    node_id, node, _ = nodes[0]
    cloud.nova("DELETE", "/servers/%s" % node["external_id"])
    cloud.wait(lambda: cloud.server(node["external_id"]) is None, 60, "server gone")
    zuul.use_nodes(nodes)
    zuul.return_nodes(nodes)
    lp.wait_for(lambda: node_id not in lp.nodes(), 60, "node of the vanished server deleted")
    assert "provider delete of %s failed" % node["external_id"] not in lp.log_text()


def test_nova_quota_exhaustion_keeps_the_request_waiting_and_resumes_when_a_server_is_freed(oslauncher):
    lp, cloud = oslauncher, oslauncher.cloud
    cloud.set_instance_quota(1)
    zuul = start(lp)
    first = zuul.submit([LABEL])
    req = zuul.wait(first, timeout=90)
    assert req["state"] == "fulfilled", req
    nodes = zuul.accept_nodes(first, req)
    second = zuul.submit([LABEL])
    # No room for a second server (the pool pauses at /limits, or Nova refuses it):
    # the request waits, it does not fail.
    lp.wait_for(lambda: any(s in lp.log_text() for s in ("provider quota reached", "at capacity", "Quota exceeded")),
                60, "the quota reached")
    time.sleep(3)
    assert zuul.get_request(second)["state"] in ("requested", "pending")
    zuul.use_nodes(nodes)
    zuul.return_nodes(nodes)
    req = zuul.wait(second, timeout=120)
    assert req["state"] == "fulfilled", req
    nodes = zuul.accept_nodes(second, req)
    assert cloud.server(nodes[0][1]["external_id"])["status"] == "ACTIVE"
    zuul.return_nodes(nodes)


def test_wrong_password_logs_a_clear_error_pauses_the_pool_and_loses_no_request(oslauncher):
    lp, cloud = oslauncher, oslauncher.cloud
    zuul = start(lp, cloud_name="poold-badpass")
    req_id = zuul.submit([LABEL])
    lp.wait_for(lambda: "Keystone refused the credentials of poold" in lp.log_text(), 60, "auth error logged")
    lp.wait_for(lambda: all(p.get("paused") for p in lp.components("pool") or [{}]), 30, "pool paused")
    time.sleep(3)
    assert zuul.get_request(req_id)["state"] in ("requested", "pending"), zuul.get_request(req_id)
    # The password ("wrong") is never logged (the chroot and the paths carry this test's name).
    assert "wrong" not in lp.log_text().replace(lp.chroot, "").replace(str(lp.tmp), "")
    # Fix the configuration: the same request is then served.
    lp.write_config(os_config(lp, "poold"))
    req = zuul.wait(req_id, timeout=120)
    assert req["state"] == "fulfilled", req


def test_nova_quota_exhaustion_pauses_the_pool_instead_of_retrying_creates(oslauncher):
    lp, cloud = oslauncher, oslauncher.cloud
    cloud.set_instance_quota(1)
    zuul = start(lp)
    first = zuul.submit([LABEL])
    req = zuul.wait(first, timeout=90)
    assert req["state"] == "fulfilled", req
    nodes = zuul.accept_nodes(first, req)
    second = zuul.submit([LABEL])
    # Paused at the cloud's limits (/limits minus usage), or at Nova's refusal if it came first.
    lp.wait_for(lambda: "provider quota reached" in lp.log_text() or "Quota exceeded" in lp.log_text(), 60,
                "the pool meeting Nova's quota")
    lp.wait_for(lambda: all(p.get("paused") for p in lp.components("pool") or [{}]), 30, "pool paused")
    time.sleep(5)
    pools = lp.components("pool")
    assert pools and all(p.get("paused") for p in pools), pools
    # Paused: not a create attempt per loop iteration.
    assert lp.log_text().count("Quota exceeded") <= 3
    assert zuul.get_request(second)["state"] in ("requested", "pending")
    zuul.use_nodes(nodes)
    zuul.return_nodes(nodes)
    req = zuul.wait(second, timeout=120)
    assert req["state"] == "fulfilled", req
    lp.wait_for(lambda: not any(p.get("paused") for p in lp.components("pool")), 30, "pool resumed")
    zuul.return_nodes(zuul.accept_nodes(second, req))


def test_dynamic_instance_properties_are_formatted_from_the_request_into_server_metadata(oslauncher):
    """dynamic-instance-properties: each value is formatted with the request's
    safe attributes (Python str.format, as Nodepool) into the server's metadata;
    one that does not format is logged and left out, and never replaces poold's
    own nodepool_* keys."""
    lp, cloud = oslauncher, oslauncher.cloud
    cfg = os_config(lp)
    cfg["providers"][0]["pools"][0]["labels"][0]["dynamic-instance-properties"] = {
        "zuul_pipeline": "{request.requestor_data[pipeline_name]}",
        "zuul_request": "req {request.id} for {request.tenant_name}",
        "broken": "{request.no_such_attribute}",
        "nodepool_node_id": "{request.id}",
    }
    lp.write_config(cfg)
    lp.images(external_id=lp.glance_image)
    lp.start(env=cloud.env_vars())
    zuul = ZuulClient(lp.kazoo)
    req_id = zuul.submit([LABEL], tenant="tenant-x")
    req = zuul.wait(req_id, timeout=90)
    assert req["state"] == "fulfilled", req
    nodes = zuul.accept_nodes(req_id, req)
    node_id, node, _ = nodes[0]
    md = cloud.server(node["external_id"])["metadata"]
    assert md["zuul_pipeline"] == "check"
    assert md["zuul_request"] == "req %s for tenant-x" % req_id
    assert md["team"] == "ci"  # the static instance-properties still apply
    assert "broken" not in md and md["nodepool_node_id"] == node_id
    assert "dynamic instance property broken" in lp.log_text()
    zuul.use_nodes(nodes)
    zuul.return_nodes(nodes)


def test_nodes_of_a_request_go_to_one_zone_chosen_from_novas_list_sent_and_recorded(oslauncher):
    """The pool names no availability zone: the launcher reads Nova's zone list
    (GET /os-availability-zone), chooses one for the request, launches every
    node of it there, and records the server's zone on each node."""
    lp, cloud = oslauncher, oslauncher.cloud
    needle = "GET /v2.1/os-availability-zone =>"  # uwsgi request log line: one per call
    before = cloud.api_log_count("nova-api", needle)
    zuul = start(lp)
    req_id = zuul.submit([LABEL, LABEL, LABEL])
    req = zuul.wait(req_id, timeout=120)
    assert req["state"] == "fulfilled", req
    assert cloud.api_log_count("nova-api", needle) > before
    nodes = zuul.accept_nodes(req_id, req)
    log = lp.log_text()
    for node_id, node, _ in nodes:
        assert re.search(r"launching node %s \(%s\) in pool \S+, availability zone nova$" % (node_id, LABEL),
                         log, re.M), "node %s not launched in zone nova" % node_id
        assert node["az"] == "nova"
        assert cloud.server(node["external_id"])["OS-EXT-AZ:availability_zone"] == "nova"
    zuul.use_nodes(nodes)
    zuul.return_nodes(nodes)


def test_pool_naming_a_zone_nova_lacks_fails_the_request_with_novas_reason_and_leaks_nothing(oslauncher):
    """A pool's availability-zones entry is sent to Nova as is: a zone Nova does
    not have fails each launch attempt with Nova's reason in the log, the
    request fails, and no server or node is left behind."""
    lp, cloud = oslauncher, oslauncher.cloud
    cfg = os_config(lp)
    cfg["providers"][0]["pools"][0]["availability-zones"] = ["poold-no-such-zone"]
    lp.write_config(cfg)
    lp.images(external_id=lp.glance_image)
    lp.start(env=cloud.env_vars())
    zuul = ZuulClient(lp.kazoo)
    req_id = zuul.submit([LABEL, LABEL])
    req = zuul.wait(req_id, timeout=120)
    assert req["state"] == "failed", req
    log = lp.log_text()
    assert "availability zone poold-no-such-zone" in log
    assert "The requested availability zone is not available" in log
    lp.wait_for(lambda: not lp.nodes(), 60, "the failed nodes deleted")
    assert cloud.project_servers() == []
