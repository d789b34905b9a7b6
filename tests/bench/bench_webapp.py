"""Benchmark: the web app's /node-list latency with 10,000 nodes.

Run by hand (not part of make check), after `make build/bin/poold`:
    /usr/bin/python3 tests/bench/bench_webapp.py [--nodes 10000] [--runs 20]
Starts its own ZooKeeper, writes the nodes with kazoo transactions (the same
records as bench_poolctl_list.py), starts poold (no providers) with the web
app on a free port, waits for /ready, then times:
  - rendered answers (a new render each: requests 1.1 s apart, past the 1 s cache),
    text and JSON;
  - cached answers (back-to-back requests within the same second);
  - after churn: 100 node records rewritten, then a render (which must show them);
  - the loop's responsiveness while /node-list is hammered: a separate process
    requests fresh renders back to back (distinct ?fields= values, so every one
    misses the answer cache) while this process probes /health, which is
    answered on the launcher's loop thread: its latency is the loop's stall
    (p50/p95/p99/max), next to the same probe with nothing hammering;
and prints p50/p95 of each plus the response size.
"""
import argparse
import http.client
import json
import multiprocessing
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
sys.path.insert(0, HERE)

from kazoo.client import KazooClient  # noqa: E402

from bench_poolctl_list import populate  # noqa: E402
from harness import ZooKeeperServer, free_port, program  # noqa: E402


def get(port, path, accept=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t0 = time.perf_counter()
    c.request("GET", path, headers={"Accept": accept} if accept else {})
    r = c.getresponse()
    body = r.read()
    dt = time.perf_counter() - t0
    c.close()
    return r.status, body, dt


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def report(what, times, size):
    print("  %-34s p50 %7.1f ms  p95 %7.1f ms  (%d runs, %.1f MB)"
          % (what, 1000 * statistics.median(times), 1000 * pct(times, 95), len(times), size / 1e6))


def hammer(port, stop, counter):
    """Fresh renders back to back, JSON and text alternately, until STOP is set."""
    i = 0
    every = ("id,provider,label,server_id,public_ipv4,ipv6,state,age,locked,pool,hostname,private_ipv4,AZ,"
             "username,connection_port,launcher,allocated_to,hold_job,comment,user_data,driver_data")
    while not stop.is_set():
        # Every column (so the text is the full table), plus a unique unknown key.
        path = "/node-list%s?fields=%s,h%d" % (".json" if i % 2 else "", every, i)
        status, _, _ = get(port, path)
        assert status == 200
        i += 1
    counter.value = i


def probe(port, seconds):
    """/health latencies, one request every 5 ms, for SECONDS."""
    lat = []
    end = time.time() + seconds
    while time.time() < end:
        status, _, dt = get(port, "/health")
        assert status == 200
        lat.append(dt)
        time.sleep(0.005)
    return lat


def report_probe(what, lat):
    print("  %-34s p50 %7.1f ms  p95 %7.1f ms  p99 %7.1f ms  max %7.1f ms  (%d probes)"
          % (what, 1000 * statistics.median(lat), 1000 * pct(lat, 95), 1000 * pct(lat, 99),
             1000 * max(lat), len(lat)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--probe-seconds", type=float, default=10)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bench-webapp-")
    zk = ZooKeeperServer().start()
    proc = None
    try:
        root = KazooClient(hosts=zk.hosts)
        root.start(timeout=30)
        root.ensure_path("/bench")
        root.stop()
        client = KazooClient(hosts=zk.hosts + "/bench", timeout=30)
        client.start(timeout=30)
        client.ensure_path("/nodepool/nodes")
        t0 = time.time()
        populate(client, 0, args.nodes)
        print("created %d nodes (%.1f s)" % (args.nodes, time.time() - t0))
        port = free_port()
        config = os.path.join(work, "nodepool.yaml")
        with open(config, "w") as f:
            f.write("zookeeper-servers:\n  - host: 127.0.0.1\n    port: %d\n    chroot: /bench\n"
                    "webapp:\n  port: %d\n  listen_address: 127.0.0.1\n" % (zk.port, port))
        log = open(os.path.join(work, "poold.log"), "wb")
        proc = subprocess.Popen([program("poold"), "-c", config, "-f"], stdout=log, stderr=subprocess.STDOUT)
        t0 = time.time()
        while True:
            try:
                if get(port, "/ready")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() - t0 > 120:
                raise SystemExit("poold did not get ready; see %s/poold.log" % work)
            time.sleep(0.05)
        print("poold ready with %d nodes cached after %.2f s (binary %s)" % (args.nodes, time.time() - t0,
                                                                              program("poold")))
        status, body, _ = get(port, "/node-list.json")
        assert status == 200 and body.count(b'"id"') == args.nodes, (status, body[:200])

        for what, path, accept in (("/node-list (text), rendered", "/node-list", None),
                                   ("/node-list.json, rendered", "/node-list.json", None)):
            times = []
            for _ in range(args.runs):
                time.sleep(1.1)  # past the 1 s answer cache: every request renders
                status, body, dt = get(port, path, accept)
                assert status == 200
                times.append(dt)
            report(what, times, len(body))
        times = []
        get(port, "/node-list")
        for _ in range(args.runs * 5):
            status, body, dt = get(port, "/node-list")
            times.append(dt)
        report("/node-list (text), cached", times, len(body))
        times = []
        for i in range(args.runs):
            status, body, dt = get(port, "/node-list.json?node_id=%010d" % (i * 37 % args.nodes))
            assert status == 200 and body.count(b'"id"') == 1
            times.append(dt)
        report("/node-list.json?node_id= (one)", times, len(body))

        # Churn: rewrite 100 records (state -> "hold"), then the next render must show them.
        changed = ["%010d" % (i * 97 % args.nodes) for i in range(100)]
        for nid in changed:
            data, _ = client.get("/nodepool/nodes/" + nid)
            rec = json.loads(data)
            rec["state"] = "hold"
            client.set("/nodepool/nodes/" + nid, json.dumps(rec).encode())
        time.sleep(1.1)
        status, body, dt = get(port, "/node-list.json")
        held = [r["id"] for r in json.loads(body) if r["state"] == "hold"]
        assert sorted(held) == sorted(changed), (len(held), len(changed))
        report("/node-list.json after 100 changed", [dt], len(body))

        report_probe("/health, idle", probe(port, min(3, args.probe_seconds)))
        stop = multiprocessing.Event()
        counter = multiprocessing.Value("i", 0)
        h = multiprocessing.Process(target=hammer, args=(port, stop, counter))
        h.start()
        time.sleep(0.5)
        lat = probe(port, args.probe_seconds)
        stop.set()
        h.join(60)
        report_probe("/health, /node-list hammered", lat)
        print("  hammer: %d fresh renders in %.1f s" % (counter.value, args.probe_seconds + 0.5))
        status, body, _ = get(port, "/metrics")
        for line in body.decode().splitlines():
            if line.startswith("poold_webapp_loop_block"):
                print("  " + line)

        with open("/proc/%d/status" % proc.pid) as f:
            hwm = [l for l in f if l.startswith("VmHWM")][0].split()[1]
        print("  poold peak RSS %.1f MB" % (int(hwm) / 1024.0))
        client.stop()
        client.close()
    finally:
        if proc and proc.poll() is None:
            proc.terminate()
            proc.wait(20)
        zk.stop()


if __name__ == "__main__":
    main()
