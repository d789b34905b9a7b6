"""End to end: the one-machine pool (poold-local) from the shipped elements to
a node a Zuul-like client uses over ssh, and a stop that leaves nothing behind.

One test on purpose: booting a VM under TCG costs about a minute, so the whole
story runs on one bring-up. The image stages come from the shared stage cache
(image_fixture's directory), so only the first run on a machine pays for the
Debian bootstrap and the kernel install.
"""
import os
import shutil
import subprocess
import tempfile
import time

import pytest
from kazoo.client import KazooClient

from gitlab_runner import run_gitlab_job_e2e
from harness import BUILD, SRCDIR
from image_fixture import STAGE_CACHE, stable_keypair
from zuul_client import ZuulClient

POOLD_LOCAL = os.path.join(SRCDIR, "poold", "poold-local")
URI = "qemu:///system"


def virsh(*args):
    return subprocess.run(["virsh", "-c", URI] + list(args), capture_output=True, text=True, timeout=120)


def volumes(pool):
    """Volume names of a libvirt pool (libvirt 9's vol-list has no --name)."""
    return [l.split()[0] for l in virsh("vol-list", pool).stdout.splitlines()[2:] if l.strip()]


def local_env(state):
    env = dict(os.environ)
    env.update({
        "POOLD_LOCAL_DIR": state,
        "POOLD_LOCAL_BIN": os.path.join(BUILD, "bin"),
        "POOLD_STAGE_CACHE": STAGE_CACHE,
        "POOLD_LOCAL_WAIT": "2400",
    })
    return env


def read_env_file(state):
    out = {}
    with open(os.path.join(state, "local.env")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            out[k] = v
    return out


def pids_of(state):
    run = os.path.join(state, "run")
    pids = {}
    for name in os.listdir(run) if os.path.isdir(run) else []:
        if name.endswith(".pid"):
            with open(os.path.join(run, name)) as f:
                pids[name[:-4]] = int(f.read().strip())
    return pids


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for qemu:///system")
def test_local_pool_serves_an_ssh_node_and_down_leaves_nothing(tmp_path):
    """poold-local up (ZooKeeper TLS-only) builds, uploads and boots a node; a Zuul-like client gets it,
    logs in over ssh with the node's username, key and recorded host keys, marks it
    used; poold deletes it with its overlay; a GitLab job runs on the next warm node
    through poold-gitlab-executor; poold-local down leaves no process, domain or
    volume."""
    # Not under pytest's tmp_path: QEMU runs as libvirt-qemu and must reach the
    # pool directory, and pytest's directories are private to root.
    state = tempfile.mkdtemp(prefix="poold-e2e-", dir="/var/tmp")
    os.chmod(state, 0o755)
    env = local_env(state)
    # The image fixture's key pair: same authorized_keys content, same cached stages.
    key, pub = stable_keypair()
    for src, dst in ((key, "id_ed25519"), (pub, "id_ed25519.pub")):
        with open(src, "rb") as f, open(os.path.join(state, dst), "wb") as g:
            g.write(f.read())
    os.chmod(os.path.join(state, "id_ed25519"), 0o600)
    up = subprocess.run([POOLD_LOCAL, "up"], env=env, capture_output=True, text=True, timeout=3000)
    print(up.stdout[-4000:], up.stderr[-4000:])
    daemons = {}
    try:
        assert up.returncode == 0, up.stderr
        assert "Linux" in up.stdout  # the `uname -a` poold-local ran over ssh
        daemons = pids_of(state)
        for name in ("zookeeper", "poold", "poold-builder"):
            assert name in daemons and alive(daemons[name]), name

        zkport = read_env_file(state)["NODEPOOL_ZK_PORT"]
        tls = os.path.join(state, "tls")  # poold-local's ZooKeeper is TLS-only
        zk_tls = {"ca": tls + "/ca.pem", "cert": tls + "/client.crt", "key": tls + "/client.key"}
        zk = KazooClient(hosts="127.0.0.1:%s" % zkport, use_ssl=True, ca=zk_tls["ca"],
                         certfile=zk_tls["cert"], keyfile=zk_tls["key"])
        zk.start(timeout=30)
        try:
            client = ZuulClient(zk)
            req_id = client.submit(["debian"])
            req = client.wait(req_id, timeout=900)
            assert req["state"] == "fulfilled", req
            nodes = client.accept_nodes(req_id, req)
            (node_id, node, lock), = nodes
            assert node["provider"] == "local" and node["username"] == "zuul"
            assert node["interface_ip"] == "127.0.0.1" and node["host_keys"]
            domain = node["external_id"]
            assert virsh("domstate", domain).stdout.strip() == "running"

            known = tmp_path / "known_hosts"
            known.write_text("".join("[127.0.0.1]:%s %s\n" % (node["connection_port"], k)
                                     for k in node["host_keys"]))
            client.use_nodes(nodes)
            ssh = subprocess.run(
                ["ssh", "-i", os.path.join(state, "id_ed25519"), "-p", str(node["connection_port"]),
                 "-o", "UserKnownHostsFile=%s" % known, "-o", "StrictHostKeyChecking=yes",
                 "-o", "BatchMode=yes", "-o", "ConnectTimeout=30",
                 "%s@%s" % (node["username"], node["interface_ip"]), "true"],
                capture_output=True, text=True, timeout=120)
            assert ssh.returncode == 0, ssh.stderr
            vols_before = volumes("poold-local")
            assert any(domain in v for v in vols_before), vols_before  # its overlay
            client.return_nodes(nodes)

            deadline = time.time() + 300
            while time.time() < deadline and zk.exists("/nodepool/nodes/%s" % node_id):
                time.sleep(1)
            assert not zk.exists("/nodepool/nodes/%s" % node_id), "used node not deleted"
            assert virsh("domstate", domain).returncode != 0, "domain still defined"
            vols_after = volumes("poold-local")
            assert not any(domain in v for v in vols_after), vols_after

            # A GitLab job gets the next warm node through poold-gitlab-executor,
            # as GitLab Runner's custom executor would run it.
            result, settings = run_gitlab_job_e2e("127.0.0.1:%s" % zkport, "debian",
                                                  os.path.join(state, "id_ed25519"), str(tmp_path / "gitlab"),
                                                  zk_tls=zk_tls)
            assert result.status == "success", (result.status, result.trace()[-3000:], settings)
            assert "GITLAB-E2E-OK" in result.trace() and "Linux" in result.trace()
        finally:
            zk.stop()
            zk.close()
    finally:
        down = subprocess.run([POOLD_LOCAL, "down"], env=env, capture_output=True, text=True, timeout=600)
        print(down.stdout[-2000:], down.stderr[-2000:])
    assert down.returncode == 0, down.stderr
    shutil.rmtree(state, ignore_errors=True)
    for name, pid in daemons.items():
        assert not alive(pid), "%s (pid %d) still running after down" % (name, pid)
    if virsh("uri").returncode == 0:  # someone else's libvirtd: check it holds nothing of ours
        assert not [d for d in virsh("list", "--all", "--name").stdout.split() if d.startswith("local-np")]
        assert virsh("pool-info", "poold-local").returncode != 0
    qemu = subprocess.run(["pgrep", "-f", "guest=local-np"], capture_output=True, text=True)
    assert qemu.stdout.strip() == "", "QEMU processes left: " + qemu.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for qemu:///system")
def test_local_up_stops_at_a_failed_build_with_its_error_and_log():
    """A build that fails makes `poold-local up` stop with the builder's error line
    and the build log's path and tail, instead of waiting for an image forever."""
    state = tempfile.mkdtemp(prefix="poold-e2e-fail-", dir="/var/tmp")
    os.chmod(state, 0o755)
    env = local_env(state)
    env["POOLD_LOCAL_WAIT"] = "600"
    with open(os.path.join(SRCDIR, "etc", "poold-local.yaml")) as f:
        cfg = f.read()
    assert "    release: bookworm\n" in cfg
    # A dib-cmd that prints a marker and fails stands for any broken build.
    failing = os.path.join(state, "failing-dib")
    with open(failing, "w") as f:
        f.write("#!/bin/sh\necho 'E: the mirror refused us (test marker)'\nexit 3\n")
    os.chmod(failing, 0o755)
    cfg = cfg.replace("    release: bookworm\n", "    release: bookworm\n    dib-cmd: %s\n" % failing)
    env["POOLD_LOCAL_CONFIG"] = os.path.join(state, "failing.yaml")
    with open(env["POOLD_LOCAL_CONFIG"], "w") as f:
        f.write(cfg)
    try:
        t0 = time.time()
        up = subprocess.run([POOLD_LOCAL, "up"], env=env, capture_output=True, text=True, timeout=900)
        took = time.time() - t0
        assert up.returncode != 0, up.stdout
        assert "the image build failed" in up.stderr, up.stderr
        assert "exit code 3" in up.stderr, up.stderr
        assert "test marker" in up.stdout, up.stdout  # the build log's tail
        assert os.path.join(state, "logs", "builds") in up.stderr, up.stderr  # its path
        assert took < 600, took  # stopped, not timed out
    finally:
        down = subprocess.run([POOLD_LOCAL, "down"], env=env, capture_output=True, text=True, timeout=600)
        shutil.rmtree(state, ignore_errors=True)
    assert down.returncode == 0, down.stderr
