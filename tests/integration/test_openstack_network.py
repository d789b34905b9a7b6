"""poold's OpenStack networking against the real loopback Neutron (ML2 binding
ports, the router service plugin, no agents): a node with a private address
only gets a floating IP from the external network (auto-floating-ip), which
goes with the server; clean-floating-ips and port-cleanup-interval remove
leaked floating IPs and DOWN ports, and say so to statsd as Nodepool does; a
failed nodescan logs the server's console (console-log)."""
import socket
import uuid

import pytest

from launcher_fixture import IMAGE, LABEL, PROVIDER
from openstack_fixture import cloud, openstack  # noqa: F401 - fixtures
from statsd_listener import Listener
from test_openstack_launcher import glance_image, oslauncher  # noqa: F401 - fixtures
from zuul_client import ZuulClient


def _ok(r, what):
    st, d, _ = r
    assert st in (200, 201, 204), "%s: %s %s" % (what, st, d)
    return d


@pytest.fixture
def network(cloud):
    """A project network behind a router to an external network (the usual
    cloud layout where nodes need floating IPs), removed afterwards."""
    tag = uuid.uuid4().hex[:6]
    made = []
    ext = _ok(cloud.neutron("POST", "/networks", {"network": {
        "name": "public-" + tag, "router:external": True, "provider:network_type": "flat",
        "provider:physical_network": "public-" + tag}}), "external network")["network"]
    made.append(("networks", ext["id"]))
    # 203.0.113.0/24 (TEST-NET-3): public, so poold counts it as the public address.
    _ok(cloud.neutron("POST", "/subnets", {"subnet": {
        "network_id": ext["id"], "cidr": "203.0.113.0/24", "ip_version": 4, "enable_dhcp": False}}), "ext subnet")
    priv = _ok(cloud.neutron("POST", "/networks", {"network": {
        "name": "private-" + tag, "project_id": cloud.project_id, "provider:network_type": "flat",
        "provider:physical_network": "private-" + tag}}), "private network")["network"]
    made.append(("networks", priv["id"]))
    sub = _ok(cloud.neutron("POST", "/subnets", {"subnet": {
        "network_id": priv["id"], "project_id": cloud.project_id, "cidr": "10.77.0.0/24", "ip_version": 4,
        "enable_dhcp": False}}), "private subnet")["subnet"]
    router = _ok(cloud.neutron("POST", "/routers", {"router": {
        "name": "router-" + tag, "project_id": cloud.project_id,
        "external_gateway_info": {"network_id": ext["id"]}}}), "router")["router"]
    _ok(cloud.neutron("PUT", "/routers/%s/add_router_interface" % router["id"], {"subnet_id": sub["id"]}),
        "router interface")
    yield {"external": ext["id"], "private": priv["id"], "private_name": priv["name"], "subnet": sub["id"],
           "router": router["id"]}
    cloud.delete_project_servers()
    for f in fips(cloud):
        cloud.neutron("DELETE", "/floatingips/%s" % f["id"])
    cloud.neutron("PUT", "/routers/%s/remove_router_interface" % router["id"], {"subnet_id": sub["id"]})
    cloud.neutron("DELETE", "/routers/%s" % router["id"])
    for p in cloud.neutron("GET", "/ports?network_id=%s" % priv["id"])[1]["ports"]:
        cloud.neutron("DELETE", "/ports/%s" % p["id"])
    for kind, id_ in reversed(made):
        st, d, _ = cloud.neutron("DELETE", "/%s/%s" % (kind, id_))
        assert st in (204, 404), (kind, st, d)


def fips(cloud):
    return _ok(cloud.neutron("GET", "/floatingips?project_id=%s" % cloud.project_id), "floating IPs")["floatingips"]


def net_config(lp, network, **provider_keys):
    cfg = lp.config()
    label = {"name": LABEL, "diskimage": IMAGE, "min-ram": 100}
    cfg["labels"].append({"name": "nofip", "min-ready": 0})
    cfg["providers"] = [dict({
        "name": PROVIDER, "driver": "openstack", "cloud": "poold", "rate": 0.01,
        "launch-retries": 1, "launch-timeout": 120,
        "diskimages": [{"name": IMAGE}],
        "pools": [{"name": "main", "max-servers": 4, "host-key-checking": False,
                   "networks": [network["private_name"]], "labels": [label]},
                  {"name": "nofip", "max-servers": 4, "host-key-checking": False, "auto-floating-ip": False,
                   "networks": [network["private_name"]], "labels": [dict(label, name="nofip")]}],
    }, **provider_keys)]
    return cfg


def test_node_with_only_a_private_address_gets_a_floating_ip_that_is_deleted_with_it(oslauncher, network):
    """auto-floating-ip (default true): the node's public and interface address is
    a floating IP on the server's port; a pool with auto-floating-ip: false gets
    none; deleting the node deletes its floating IP (nothing leaks)."""
    lp, cloud = oslauncher, oslauncher.cloud
    lp.write_config(net_config(lp, network))
    lp.images(external_id=lp.glance_image)
    lp.start(env=cloud.env_vars())
    zuul = ZuulClient(lp.kazoo)
    req_id = zuul.submit([LABEL])
    req = zuul.wait(req_id, timeout=90)
    assert req["state"] == "fulfilled", (req, lp.log_text()[-3000:])
    nodes = zuul.accept_nodes(req_id, req)
    _, node, _ = nodes[0]
    ports = cloud.neutron("GET", "/ports?device_id=%s" % node["external_id"])[1]["ports"]
    assert len(ports) == 1 and ports[0]["network_id"] == network["private"]
    fixed = ports[0]["fixed_ips"][0]["ip_address"]
    attached = [f for f in fips(cloud) if f["port_id"] == ports[0]["id"]]
    assert len(attached) == 1 and attached[0]["floating_network_id"] == network["external"]
    addr = attached[0]["floating_ip_address"]
    assert addr.startswith("203.0.113.")
    assert node["public_ipv4"] == addr and node["interface_ip"] == addr
    assert node["private_ipv4"] == fixed and fixed.startswith("10.77.0.")

    req2 = zuul.submit(["nofip"])
    r2 = zuul.wait(req2, timeout=90)
    assert r2["state"] == "fulfilled", r2
    nodes2 = zuul.accept_nodes(req2, r2)
    _, node2, _ = nodes2[0]
    assert node2["interface_ip"].startswith("10.77.0.") and not node2.get("public_ipv4")
    assert len(fips(cloud)) == 1

    zuul.use_nodes(nodes + nodes2)
    zuul.return_nodes(nodes + nodes2)
    lp.wait_for(lambda: not lp.nodes(), 60, "used nodes deleted")
    s = cloud.server(node["external_id"])
    assert s is None or s["status"] == "DELETED", s  # Nova still releasing the port: deleted for poold
    assert fips(cloud) == [], "floating IP leaked"


def test_leaked_floating_ips_and_down_ports_are_removed_and_counted(oslauncher, network):
    """clean-floating-ips deletes floating IPs attached to no port (not attached
    ones); port-cleanup-interval deletes ports DOWN at two checks an interval
    apart that have no device owner or a compute one (not a router's); statsd
    gets nodepool.provider.<p>.leaked.floatingips and .ports."""
    lp, cloud = oslauncher, oslauncher.cloud
    listener = Listener()
    free_fip = _ok(cloud.neutron("POST", "/floatingips", {"floatingip": {
        "floating_network_id": network["external"], "project_id": cloud.project_id}}), "fip")["floatingip"]
    port = _ok(cloud.neutron("POST", "/ports", {"port": {
        "network_id": network["private"], "project_id": cloud.project_id, "name": "leaked"}}), "port")["port"]
    # A server's port, bound (ACTIVE): neither it nor its floating IP is a leak.
    used = _ok(cloud.neutron("POST", "/ports", {"port": {
        "network_id": network["private"], "project_id": cloud.project_id, "name": "in-use",
        "device_owner": "compute:nova", "device_id": str(uuid.uuid4()),
        "binding:host_id": "poold-fake"}}), "port")["port"]
    assert used["status"] == "ACTIVE", used
    kept_fip = _ok(cloud.neutron("POST", "/floatingips", {"floatingip": {
        "floating_network_id": network["external"], "project_id": cloud.project_id,
        "port_id": used["id"]}}), "attached fip")["floatingip"]
    # The router's ports are DOWN too (no L3 agent) but not ours to remove.
    router_ports = [p for p in cloud.neutron("GET", "/ports?device_id=%s" % network["router"])[1]["ports"]]
    assert router_ports and all(p["status"] == "DOWN" for p in router_ports), router_ports
    router_ports = [p["id"] for p in router_ports]
    assert cloud.neutron("GET", "/ports/%s" % port["id"])[1]["port"]["status"] == "DOWN"

    lp.write_config(net_config(lp, network, **{"clean-floating-ips": True, "port-cleanup-interval": 2}))
    lp.images(external_id=lp.glance_image)
    lp.start(env=dict(cloud.env_vars(), POOLD_CLEANUP_INTERVAL_MS="1000", **listener.env()))

    cloud.wait(lambda: cloud.neutron("GET", "/floatingips/%s" % free_fip["id"])[0] == 404, 30, "free fip deleted")
    cloud.wait(lambda: cloud.neutron("GET", "/ports/%s" % port["id"])[0] == 404, 30, "DOWN port deleted")
    assert cloud.neutron("GET", "/floatingips/%s" % kept_fip["id"])[0] == 200
    assert cloud.neutron("GET", "/ports/%s" % used["id"])[0] == 200
    for rp in router_ports:
        assert cloud.neutron("GET", "/ports/%s" % rp)[0] == 200, "router port removed"
    listener.wait(lambda ls: "nodepool.provider.%s.leaked.floatingips:1|c" % PROVIDER in ls and
                  "nodepool.provider.%s.leaked.ports:1|c" % PROVIDER in ls, 15, "leaked counters")
    assert "deleted 1 leaked floating IP(s)" in lp.log_text()
    listener.close()


@pytest.fixture
def loopback_network(cloud):
    """A project network on 127.77.0.0/24: the nodescan of its servers stays on
    loopback (and finds nothing listening on the port the test picks)."""
    tag = uuid.uuid4().hex[:6]
    net = _ok(cloud.neutron("POST", "/networks", {"network": {
        "name": "lo-" + tag, "project_id": cloud.project_id, "provider:network_type": "flat",
        "provider:physical_network": "lo-" + tag}}), "loopback network")["network"]
    _ok(cloud.neutron("POST", "/subnets", {"subnet": {
        "network_id": net["id"], "project_id": cloud.project_id, "cidr": "127.77.0.0/24", "ip_version": 4,
        "enable_dhcp": False}}), "loopback subnet")
    yield net
    cloud.delete_project_servers()
    for p in cloud.neutron("GET", "/ports?network_id=%s" % net["id"])[1]["ports"]:
        cloud.neutron("DELETE", "/ports/%s" % p["id"])
    st, d, _ = cloud.neutron("DELETE", "/networks/%s" % net["id"])
    assert st in (204, 404), (st, d)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_failed_nodescan_logs_the_servers_console_when_the_label_asks(oslauncher, loopback_network):
    """console-log: when the nodescan fails (nothing answers within boot-timeout)
    the launcher fetches the server's console through Nova and logs it line by
    line before deleting the server, as Nodepool; a label without console-log
    does not."""
    lp, cloud = oslauncher, oslauncher.cloud
    cfg = lp.config()
    cfg["labels"].append({"name": "quiet", "min-ready": 0})
    label = {"name": LABEL, "diskimage": IMAGE, "min-ram": 100, "console-log": True}
    cfg["providers"] = [{
        "name": PROVIDER, "driver": "openstack", "cloud": "poold", "rate": 0.01,
        "launch-retries": 1, "launch-timeout": 120, "boot-timeout": 3,
        "diskimages": [{"name": IMAGE, "connection-port": closed_port()}],
        "pools": [{"name": "main", "max-servers": 4, "host-key-checking": True,
                   "networks": [loopback_network["name"]],
                   "labels": [label, dict(label, name="quiet", **{"console-log": False})]}],
    }]
    lp.write_config(cfg)
    lp.images(external_id=lp.glance_image)
    lp.start(env=cloud.env_vars())
    zuul = ZuulClient(lp.kazoo)
    quiet = zuul.submit(["quiet"])
    assert zuul.wait(quiet, timeout=90)["state"] == "failed"
    assert "console log from hostname" not in lp.log_text()
    req_id = zuul.submit([LABEL])
    req = zuul.wait(req_id, timeout=90)
    assert req["state"] == "failed", req
    log = lp.log_text()
    assert "nodescan of 127.77.0." in log
    assert "console log from hostname np" in log
    # Nova's fake driver's console, one log line per line.
    for line in ("FAKE CONSOLE OUTPUT", "ANOTHER", "LAST LINE"):
        assert "console: " + line in log, log[-3000:]
