#!/usr/bin/python3
"""Benchmark real QEMU nodes of the one-machine pool (poold-local).

Run by hand as root (not part of make check), after `make programs`:
    /usr/bin/python3 tests/bench/bench_local_boot.py [--parallel 3]
Brings the pool up with etc/poold-local.yaml (max-servers raised to fit the
parallel boots), then a Zuul-like client measures request-to-fulfilled time
for a min-ready hit (a ready node waiting), a cold launch (min-ready set to 0,
no node ready: boot + host-key scan), and N requests at once (N nodes booting
together), and prints them with KVM or TCG noted. Stops everything at the end.
"""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import yaml

HERE = pathlib.Path(__file__).resolve().parent
SRC = HERE.parent.parent
sys.path.insert(0, str(HERE.parent / "integration"))

from kazoo.client import KazooClient  # noqa: E402

from zuul_client import ZuulClient  # noqa: E402

LOCAL = str(SRC / "poold" / "poold-local")


def timed_job(client, timeout):
    t0 = time.time()
    req_id = client.submit(["debian"])
    req = client.wait(req_id, timeout=timeout)
    dt = time.time() - t0
    assert req and req["state"] == "fulfilled", req
    nodes = client.accept_nodes(req_id, req)
    client.use_nodes(nodes)
    client.return_nodes(nodes)
    return dt


def wait(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(1)
    raise SystemExit("timed out waiting for " + what)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parallel", type=int, default=3)
    ap.add_argument("--state", default=None, help="state dir (default: a new temporary one)")
    args = ap.parse_args()
    # World-traversable: QEMU runs as libvirt-qemu and reads the pool directory.
    state = args.state or tempfile.mkdtemp(prefix="poold-bench-local-", dir="/var/tmp")
    os.chmod(state, 0o755)
    # The image tests' key pair: the same authorized_keys content, so the
    # build comes from their cached stages instead of a 12-minute cold build.
    from image_fixture import stable_keypair
    key, pub = stable_keypair()
    shutil.copy(key, os.path.join(state, "id_ed25519"))
    shutil.copy(pub, os.path.join(state, "id_ed25519.pub"))
    cfg = yaml.safe_load(open(SRC / "etc" / "poold-local.yaml"))
    cfg["providers"][0]["pools"][0]["max-servers"] = max(2, args.parallel + 1)
    conf = os.path.join(state, "bench-config.yaml")
    with open(conf, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    env = dict(os.environ, POOLD_LOCAL_DIR=state, POOLD_LOCAL_CONFIG=conf,
               POOLD_STAGE_CACHE=os.environ.get("POOLD_TEST_STAGE_CACHE", "/var/cache/poold-test/stages"))
    accel = "KVM" if os.path.exists("/dev/kvm") else "TCG"
    t0 = time.time()
    subprocess.run([LOCAL, "up"], env=env, check=True)
    print("up (build + upload + first boot): %.0f s" % (time.time() - t0))
    envfile = dict(l.strip().split("=", 1) for l in open(os.path.join(state, "local.env")) if "=" in l)
    zk = KazooClient(hosts="127.0.0.1:%s" % envfile["NODEPOOL_ZK_PORT"])
    zk.start(timeout=30)
    try:
        client = ZuulClient(zk)
        hit = timed_job(client, 60)
        print("min-ready hit: request to fulfilled %.3f s" % hit)

        # No warm node from now on: every request boots a VM.
        live = os.path.join(state, "nodepool.yaml")
        cfg["labels"][0]["min-ready"] = 0
        with open(live + ".tmp", "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        os.replace(live + ".tmp", live)
        time.sleep(3)  # poold reloads on mtime
        # Let the refill launched after the hit finish, then take it away.
        wait(lambda: all(client.get_node(n)[0].get("state") in ("ready", "deleting", "used")
                         for n in zk.get_children("/nodepool/nodes")), 900, "the refill node")
        for n in zk.get_children("/nodepool/nodes"):
            subprocess.run([str(SRC / "build" / "bin" / "poolctl"), "-c", live, "delete", n],
                           env=dict(os.environ, NODEPOOL_STATE_DIR=state,
                                    NODEPOOL_ZK_PORT=envfile["NODEPOOL_ZK_PORT"]),
                           capture_output=True)
        wait(lambda: not zk.get_children("/nodepool/nodes"), 300, "no nodes")

        cold = timed_job(client, 900)
        print("cold launch (%s boot + host-key scan): request to fulfilled %.1f s" % (accel, cold))

        times = [None] * args.parallel

        def one(i):
            times[i] = timed_job(client, 1800)
        t0 = time.time()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(args.parallel)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print("%d at once (%s): each %s s, all done in %.1f s"
              % (args.parallel, accel, ", ".join("%.1f" % t for t in times), time.time() - t0))
    finally:
        zk.stop()
        subprocess.run([LOCAL, "down"], env=env)


if __name__ == "__main__":
    main()
