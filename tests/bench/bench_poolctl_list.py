"""Benchmark: how long `poolctl list` takes for 1,000 and 10,000 nodes.

Run by hand (not part of make check), after `make build/bin/poolctl`:
    /usr/bin/python3 tests/bench/bench_poolctl_list.py
Starts its own ZooKeeper, writes the nodes with kazoo transactions, then
times poolctl (the normal -O2 build, POOLD_BUILD defaults to build/ here).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.abspath(os.path.join(HERE, "..", ".."))
os.environ.setdefault("POOLD_BUILD", os.path.join(SRCDIR, "build"))
sys.path.insert(0, os.path.join(SRCDIR, "tests", "integration"))

from kazoo.client import KazooClient  # noqa: E402

from harness import ZooKeeperServer, program  # noqa: E402

RUNS = 5


def node(i, now):
    return json.dumps({
        "state": "ready", "state_time": now - i, "cloud": "c", "provider": "local", "pool": "main",
        "type": ["debian"], "allocated_to": None, "az": None, "region": None,
        "public_ipv4": "192.0.2.%d" % (i % 250), "private_ipv4": None, "public_ipv6": None, "host_id": None,
        "interface_ip": "192.0.2.%d" % (i % 250), "connection_type": "ssh", "connection_port": 22,
        "ssh_port": 22, "username": "zuul", "launcher": "l", "created_time": now - i,
        "external_id": "local-np%010d" % i, "hostname": "np%010d" % i, "host_keys": [],
        "resources": {"cores": 1, "instances": 1, "ram": 1024}, "id": "%010d" % i,
    }).encode()


def populate(client, start, count):
    now = time.time()
    batch = 500
    for base in range(start, start + count, batch):
        tx = client.transaction()
        for i in range(base, min(base + batch, start + count)):
            tx.create("/nodepool/nodes/%010d" % i, node(i, now))
            # As in production: every launched node has a lock dir (the launcher
            # locked it while building); 1% are locked right now.
            tx.create("/nodepool/nodes/%010d/lock" % i, b"")
            if i % 100 == 0:
                tx.create("/nodepool/nodes/%010d/lock/%s__lock__0000000000" % (i, "0" * 32), b"")
        results = tx.commit()
        for r in results:
            if isinstance(r, Exception):
                raise r


def time_list(config, expected):
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        r = subprocess.run([program("poolctl"), "-c", config, "list"], capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        assert r.returncode == 0, r.stderr
        rows = r.stdout.count("\n") - 4
        assert rows == expected, (rows, expected)
    return times


def main():
    work = tempfile.mkdtemp(prefix="bench-poolctl-")
    zk = ZooKeeperServer().start()
    try:
        client = KazooClient(hosts=zk.hosts + "/bench", timeout=30)
        root = KazooClient(hosts=zk.hosts)
        root.start(timeout=30)
        root.ensure_path("/bench")
        root.stop()
        client.start(timeout=30)
        client.ensure_path("/nodepool/nodes")
        config = os.path.join(work, "nodepool.yaml")
        with open(config, "w") as f:
            f.write("zookeeper-servers:\n  - host: 127.0.0.1\n    port: %d\n    chroot: /bench\n" % zk.port)
        have = 0
        print("poolctl list, %d runs each, binary %s" % (RUNS, program("poolctl")))
        for target in (1000, 10000):
            t0 = time.time()
            populate(client, have, target - have)
            have = target
            print("  created %d nodes (%.1f s)" % (target, time.time() - t0))
            times = time_list(config, target)
            print("  %6d nodes: median %.3f s, min %.3f s, max %.3f s"
                  % (target, statistics.median(times), min(times), max(times)))
        client.stop()
        client.close()
    finally:
        zk.stop()


if __name__ == "__main__":
    main()
