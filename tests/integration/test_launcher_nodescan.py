"""poold's nodescan after ACTIVE (host-key-checking, boot-timeout, launch-timeout) on the libvirt test driver.

The test driver's domain in user network mode is reached at 127.0.0.1:<host port
from port-range>. With a one-port range the test knows that port, so it can start a
real sshd there once the domain exists (as a guest's sshd comes up while it boots),
or leave it closed to make the scan fail.
"""
from harness import free_port
from launcher_fixture import IMAGE, LABEL, launcher  # noqa: F401  (fixture)
from sshd import SshServer
from zuul_client import ZuulClient


def start(launcher, port, pool_extra=None, provider_extra=None, label_extra=None):
    label = {"name": LABEL, "diskimage": IMAGE, "memory": 64, "vcpus": 1}
    label.update(label_extra or {})
    pool = {"host-key-checking": True, "labels": [label]}
    pool.update(pool_extra or {})
    provider = {"port-range": [port, port]}
    provider.update(provider_extra or {})
    launcher.write_config(launcher.config(pool=pool, provider=provider))
    launcher.images()
    launcher.start()
    launcher.wait_for(lambda: launcher.components("pool"), 10, "pool component")
    return ZuulClient(launcher.kazoo)


def test_host_keys_scanned_from_sshd_that_starts_after_the_domain(launcher):
    """The scan retries a refused connect until the 'guest' sshd answers, then stores its host keys."""
    port = free_port()
    zc = start(launcher, port, provider_extra={"boot-timeout": 20})
    req_id = zc.submit([LABEL])
    # the domain exists (create returned, external_id written) before anything listens
    launcher.wait_for(lambda: [n for n in launcher.nodes().values()
                               if n.get("allocated_to") == req_id and n.get("external_id")], 10, "domain created")
    assert zc.get_request(req_id)["state"] == "pending"
    with SshServer(port=port) as sshd:
        req = zc.wait(req_id, timeout=25)
        assert req["state"] == "fulfilled", req
        nodes = zc.accept_nodes(req_id, req)
        (_, node, _), = nodes
        assert node["connection_port"] == port and node["interface_ip"] == "127.0.0.1"
        assert sorted(node["host_keys"]) == sorted(sshd.host_keys()), node["host_keys"]
        assert node["host_keys"][0].startswith("ssh-ed25519 ")  # keyscan order: ed25519 first
        zc.return_nodes(nodes)


def test_nodescan_failing_within_boot_timeout_deletes_server_retries_then_fails(launcher):
    """Nothing answers: each attempt fails after boot-timeout, its domain is deleted, then the node fails."""
    port = free_port()
    zc = start(launcher, port, provider_extra={"launch-retries": 2}, label_extra={"boot-timeout": 1})
    req_id = zc.submit([LABEL])
    req = zc.wait(req_id, timeout=30)
    assert req["state"] == "failed", req
    log = launcher.log_text()
    assert log.count("nodescan of 127.0.0.1:%d failed within boot-timeout" % port) == 2, log[-3000:]
    assert "attempt 2/2 failed" in log and "launch failed after 2 attempt(s)" in log
    # the second attempt could create its domain on the only port: the first one was deleted
    assert "no free host port" not in log
    launcher.wait_for(lambda: not launcher.nodes(), 15, "failed node deleted")


def test_host_key_checking_false_skips_the_scan(launcher):
    """With host-key-checking off nothing needs to listen: the node is ready with no host keys."""
    port = free_port()
    zc = start(launcher, port, pool_extra={"host-key-checking": False}, label_extra={"boot-timeout": 1})
    req_id, req, nodes = zc.run_job([LABEL], timeout=15)
    assert nodes[0][1]["host_keys"] == []


def test_non_ssh_connection_type_gets_a_port_check_only(launcher):
    """winrm: a listener that never speaks SSH passes (port check), and no host keys are stored."""
    import socket
    port = free_port()
    zc = start(launcher, port, provider_extra={"boot-timeout": 10, "diskimages": [
        {"name": IMAGE, "connection-type": "winrm", "connection-port": 5986}]})
    req_id = zc.submit([LABEL])
    launcher.wait_for(lambda: [n for n in launcher.nodes().values()
                               if n.get("allocated_to") == req_id and n.get("external_id")], 10, "domain created")
    with socket.socket() as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(8)
        req = zc.wait(req_id, timeout=20)
    assert req["state"] == "fulfilled", req
    nodes = zc.accept_nodes(req_id, req)
    assert nodes[0][1]["connection_type"] == "winrm" and nodes[0][1]["host_keys"] == []
    zc.return_nodes(nodes)


def test_launch_timeout_bounds_the_whole_attempt_including_the_scan(launcher):
    """launch-timeout (1 s) ends a scan that boot-timeout (60 s) would let run: attempt fails, retried, failed."""
    port = free_port()
    zc = start(launcher, port, provider_extra={"launch-retries": 2, "launch-timeout": 1, "boot-timeout": 60})
    req_id = zc.submit([LABEL])
    req = zc.wait(req_id, timeout=20)
    assert req["state"] == "failed", req
    log = launcher.log_text()
    assert log.count("launch-timeout exceeded") == 2, log[-3000:]
    assert "launch failed after 2 attempt(s)" in log
