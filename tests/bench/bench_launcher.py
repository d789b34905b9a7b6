#!/usr/bin/python3
"""Benchmark poold's launcher with libvirt's test hypervisor and a Zuul-like client.

Run by hand (not part of make check), with the optimised build:
    make build/bin/poold && POOLD_BUILD=$PWD/build /usr/bin/python3 tests/bench/bench_launcher.py [--burst N]
Prints serial request latency (p50/p95 of 100), a burst of N requests
(throughput, p50/p95), and poold's peak RSS and CPU seconds from /proc.
"""
import argparse
import json
import os
import pathlib
import sys
import tempfile
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
os.environ.setdefault("POOLD_BUILD", str(HERE.parent.parent / "build"))

from kazoo.client import KazooClient  # noqa: E402

from harness import ZooKeeperServer  # noqa: E402
from launcher_fixture import LABEL, LauncherProcess  # noqa: E402
from zuul_client import ZuulClient  # noqa: E402


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def proc_stats(pid):
    with open("/proc/%d/status" % pid) as f:
        hwm = [l for l in f if l.startswith("VmHWM")][0].split()[1]
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(hwm) / 1024.0, (int(fields[11]) + int(fields[12])) / tick


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--serial", type=int, default=100)
    ap.add_argument("--burst", type=int, default=1000)
    args = ap.parse_args()
    zk = ZooKeeperServer().start()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="poold-bench-"))
    root = KazooClient(hosts=zk.hosts)
    root.start(15)
    root.ensure_path("/bench")
    root.stop()
    kz = KazooClient(hosts=zk.hosts + "/bench", timeout=10)
    kz.start(15)
    lp = LauncherProcess(tmp, zk, "/bench", kz)
    try:
        # A host big enough that the driver's quota (host CPUs/memory, one port per node) never limits.
        lp.host_cpus = 4 * args.burst + 64
        lp.host_memory_kib = (args.burst + 64) * 1024 * 1024
        lp.write_config(lp.config(pool={"max-servers": args.burst + 10},
                                  provider={"port-range": [20000, 20000 + 2 * args.burst + 100]}))
        lp.images()
        lp.start(env={"POOLD_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "warning"),
                      # the daemon's own cleanup interval (the fixture's 500 ms is for tests)
                      "POOLD_CLEANUP_INTERVAL_MS": "60000"})
        lp.wait_for(lambda: lp.components("pool"), 10, "pool")
        zc = ZuulClient(kz)
        zc.run_job([LABEL])  # warm up
        lat = []
        for _ in range(args.serial):
            t0 = time.perf_counter()
            rid = zc.submit([LABEL])
            req = zc.wait(rid, timeout=30)
            lat.append(time.perf_counter() - t0)
            assert req["state"] == "fulfilled", req
            nodes = zc.accept_nodes(rid, req)
            zc.return_nodes(nodes)
        # burst: submit all pipelined (kazoo's async creates, so the client is not the
        # bottleneck), record each fulfilment time with one watch per request
        done = {}
        ev = threading.Event()
        submitted = {}

        def check(rid, result):
            try:
                data, _ = result.get()
            except Exception:
                return
            if json.loads(data.decode())["state"] in ("fulfilled", "failed"):
                if rid not in done:
                    done[rid] = time.perf_counter()
                    if len(done) == args.burst:
                        ev.set()
                return

        def watch_request(rid):
            def on_change(event):
                if event.type != "DELETED":
                    watch_request(rid)
            kz.get_async("/nodepool/requests/" + rid, watch=on_change).rawlink(lambda r: check(rid, r))

        t_start = time.perf_counter()
        pending = []
        for _ in range(args.burst):
            body = json.dumps(zc.request_data([LABEL])).encode()
            pending.append((time.perf_counter(),
                            kz.create_async("/nodepool/requests/200-", body, sequence=True, makepath=True)))
        for t, res in pending:
            rid = res.get(timeout=60).rsplit("/", 1)[1]
            submitted[rid] = t
            watch_request(rid)
        t_submitted = time.perf_counter()
        ok = ev.wait(300)
        t_end = max(done.values()) if done else time.perf_counter()
        blat = [done[r] - submitted[r] for r in done]
        rss, cpu = proc_stats(lp.proc.pid)
        print("poold launcher benchmark (libvirt test:/// driver, %s)" % os.environ["POOLD_BUILD"])
        print("%-34s %s" % ("metric", "value"))
        print("%-34s %.1f ms / %.1f ms" % ("serial latency p50 / p95 (n=%d)" % args.serial,
                                          pct(lat, 50) * 1000, pct(lat, 95) * 1000))
        print("%-34s %.2f s" % ("burst submitted (client) in", t_submitted - t_start))
        print("%-34s %d/%d in %.2f s = %.0f req/s" % ("burst fulfilled", len(done), args.burst,
                                                      t_end - t_start, len(done) / (t_end - t_start)))
        if blat:
            print("%-34s %.0f ms / %.0f ms" % ("burst latency p50 / p95", pct(blat, 50) * 1000,
                                               pct(blat, 95) * 1000))
        print("%-34s %.1f MB" % ("poold peak RSS (VmHWM)", rss))
        print("%-34s %.2f s" % ("poold CPU (user+sys)", cpu))
        if not ok:
            print("WARNING: burst incomplete")
    finally:
        if lp.proc is not None:
            lp.stop()
        kz.stop()
        zk.stop()


if __name__ == "__main__":
    main()
