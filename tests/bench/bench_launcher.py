#!/usr/bin/python3
"""Benchmark poold's launcher with libvirt's test hypervisor and a Zuul-like client.

Run by hand (not part of make check), with the optimised build:
    make build/bin/poold && POOLD_BUILD=$PWD/build /usr/bin/python3 tests/bench/bench_launcher.py [--burst N]
Prints serial request latency (p50/p95 of 100), a burst of N requests
(throughput, p50/p95), and poold's peak RSS and CPU seconds from /proc.
Over the serial requests it also counts poold's ZooKeeper operations per
request (its session's requests by kind plus watch events, from /metrics:
the whole cycle of one request, from accepting it to deleting the returned
node) and poold's CPU per request. --nodes N first writes N ready nodes of
another provider and label into ZooKeeper, which poold caches (issue 14's
"with 10,000 nodes" figures).
--static serves the requests from the static driver instead (one real sshd
on loopback, max-parallel-jobs = the burst size: that many registered nodes,
re-registered after each use), so the RSS is poold's own, without libvirt's
in-process test driver holding a domain per node. --rss-requests N then runs
N more full cycles (submitted in waves of the burst size; each fulfilled
request's nodes locked, used and returned as Zuul does) and prints poold's
RSS after each tenth of them: flat, or growing.
Each is measured twice, with a fresh ZooKeeper and poold each time: over
plaintext and over TLS (a TLS-only server with client certificates, as
production Zuul runs it), printed side by side to show what TLS costs.
--zk plain or --zk tls runs one of them.
"""
import argparse
import json
import os
import pathlib
import shutil
import sys
import tempfile
import threading
import time

from kazoo.exceptions import NoNodeError

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
os.environ.setdefault("POOLD_BUILD", str(HERE.parent.parent / "build"))


from harness import ZooKeeperServer, free_port  # noqa: E402
from launcher_fixture import LABEL, LauncherProcess  # noqa: E402
from sshd import SshServer  # noqa: E402
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


def vm_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        return int([l for l in f if l.startswith("VmRSS")][0].split()[1]) / 1024.0


def static_config(lp, sshd, slots, web_port):
    """One static host (the sshd) with SLOTS slots for LABEL."""
    node = {"name": "127.0.0.1", "labels": [LABEL], "connection-port": sshd.port, "timeout": 5,
            "host-key-checking": False, "max-parallel-jobs": slots}
    cfg = lp.zk_server.zookeeper_config(lp.chroot)
    cfg.update({"zookeeper-timeout": 5.0, "labels": [{"name": LABEL}],
                "providers": [{"name": "static-prov", "driver": "static",
                               "pools": [{"name": "main", "nodes": [node]}]}],
                "webapp": {"port": web_port, "listen_address": "127.0.0.1"}})
    return cfg


def burst_run(kz, zc, n):
    """Submit N requests pipelined; wait for each to be fulfilled (one watch each).
    Returns (fulfilled ids with their times, submit times, start, submitted, end, complete)."""
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
                if len(done) == n:
                    ev.set()

    def watch_request(rid):
        def on_change(event):
            if event.type != "DELETED":
                watch_request(rid)
        kz.get_async("/nodepool/requests/" + rid, watch=on_change).rawlink(lambda r: check(rid, r))

    t_start = time.perf_counter()
    pending = []
    for _ in range(n):
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
    return done, submitted, t_start, t_submitted, t_end, ok


def zk_counts(port):
    """poold's ZooKeeper operations by kind (and watch events) from its /metrics."""
    import re
    import urllib.request
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
    out = {m.group(1): float(m.group(2))
           for m in re.finditer(r'^poold_zk_operations_total\{op="(\w+)"\} (\S+)$', text, re.M)}
    m = re.search(r"^poold_zk_watch_events_total (\S+)$", text, re.M)
    if m:
        out["watch"] = float(m.group(1))
    return out      # empty from a poold older than these counters


def other_nodes(kz, n):
    """N ready nodes of a provider and label poold does not serve: cached, never its to use."""
    now = time.time()
    rec = {"state": "ready", "state_time": now, "created_time": now, "provider": "elsewhere", "pool": "main",
           "type": ["other-label"], "cloud": "elsewhere", "region": None, "az": None, "host_id": None,
           "interface_ip": "192.0.2.1", "public_ipv4": "192.0.2.1", "private_ipv4": None, "public_ipv6": None,
           "connection_type": "ssh", "connection_port": 22, "host_keys": [], "username": "zuul",
           "launcher": "elsewhere", "allocated_to": None, "hold_job": None, "comment": None,
           "attributes": {}, "resources": {"cores": 1, "ram": 1024}}
    pending = [kz.create_async("/nodepool/nodes/", json.dumps(rec).encode(), sequence=True, makepath=True)
               for _ in range(n)]
    return {p.get(timeout=60).rsplit("/", 1)[1] for p in pending}


def run(args, tls):
    """One full measurement against a fresh ZooKeeper (TLS-only if TLS) and poold: a dict of figures."""
    zk = ZooKeeperServer(tls=tls).start()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="poold-bench-"))
    root = zk.kazoo()
    root.start(15)
    root.ensure_path("/bench")
    root.stop()
    kz = zk.kazoo("/bench", timeout=10)
    kz.start(15)
    lp = LauncherProcess(tmp, zk, "/bench", kz)
    sshd = None
    try:
        # A host big enough that the driver's quota (host CPUs/memory, one port per node) never limits.
        lp.host_cpus = 4 * args.burst + 64
        lp.host_memory_kib = (args.burst + 64) * 1024 * 1024
        web_port = free_port()
        if args.static:
            sshd = SshServer().start()
            lp.write_config(static_config(lp, sshd, args.burst, web_port))
        else:
            lp.write_config(lp.config(pool={"max-servers": args.burst + 10},
                                      provider={"port-range": [20000, 20000 + 2 * args.burst + 100]},
                                      extra={"webapp": {"port": web_port, "listen_address": "127.0.0.1"}}))
            lp.images()
        others = other_nodes(kz, args.nodes) if args.nodes else set()
        lp.start(env={"POOLD_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "warning"),
                      # the daemon's own cleanup interval (the fixture's 500 ms is for tests)
                      "POOLD_CLEANUP_INTERVAL_MS": "60000"})
        lp.wait_for(lambda: lp.components("pool"), 10, "pool")
        zc = ZuulClient(kz)
        if args.static:
            def settled():
                """Every slot registered and ready (static nodes are never all gone)."""
                if not kz.exists("/nodepool/nodes"):
                    return False
                states = []
                for n in set(kz.get_children("/nodepool/nodes")) - others:
                    try:
                        states.append(json.loads(kz.get("/nodepool/nodes/" + n)[0].decode())["state"])
                    except NoNodeError:
                        states.append("gone")
                return states.count("ready") == args.burst == len(states)
            lp.wait_for(settled, 120, "%d static nodes ready" % args.burst)
        zc.run_job([LABEL])  # warm up
        ours = lambda: set(kz.get_children("/nodepool/nodes")) - others  # noqa: E731
        if args.static:
            lp.wait_for(settled, 30, "the warm-up node registered again")
        else:
            lp.wait_for(lambda: not ours(), 30, "the warm-up node deleted")
        time.sleep(1.2)  # past the web app's 1 s answer cache
        ops0, cpu0 = zk_counts(web_port), proc_stats(lp.proc.pid)[1]
        lat, inside = [], []
        for _ in range(args.serial):
            t0 = time.perf_counter()
            rid = zc.submit([LABEL])
            req = zc.wait(rid, timeout=30)
            lat.append(time.perf_counter() - t0)
            assert req["state"] == "fulfilled", req
            # ZooKeeper's own clock: the request's create to its fulfilled write (ms
            # resolution), i.e. the latency without the client's round trips
            _, st = kz.get("/nodepool/requests/" + rid)
            inside.append((st.mtime - st.ctime) / 1000.0)
            nodes = zc.accept_nodes(rid, req)
            zc.return_nodes(nodes)
        if args.static:
            lp.wait_for(settled, 30, "the serial phase's nodes registered again")
        else:
            lp.wait_for(lambda: not ours(), 30, "the serial phase's nodes deleted")
        time.sleep(1.2)
        ops1, cpu1 = zk_counts(web_port), proc_stats(lp.proc.pid)[1]
        per_req = {k: (ops1[k] - ops0[k]) / args.serial for k in ops1 if k in ops0}
        # burst: submit all pipelined (kazoo's async creates, so the client is not the
        # bottleneck), record each fulfilment time with one watch per request
        done, submitted, t_start, t_submitted, t_end, ok = burst_run(kz, zc, args.burst)
        blat = [done[r] - submitted[r] for r in done]
        rss, cpu = proc_stats(lp.proc.pid)
        curve = []
        if args.rss_requests:
            # full cycles in waves: the burst's requests first (their nodes are still allocated)
            waves = [list(done)]
            cycles, step = 0, max(args.rss_requests // 10, 1)
            next_sample = step
            while cycles < args.rss_requests:
                for rid in waves.pop():
                    req = zc.get_request(rid)
                    if req and req.get("state") == "fulfilled":
                        zc.return_nodes(zc.accept_nodes(rid, req))
                    else:
                        zc.delete_request(rid)
                if args.static:
                    lp.wait_for(settled, 60, "the slots registered again")
                wave = min(args.burst, args.rss_requests - cycles)
                wdone, _, _, _, _, wok = burst_run(kz, zc, wave)
                assert wok, "a wave of %d requests was not fulfilled" % wave
                waves.append(list(wdone))
                cycles += wave
                if cycles >= next_sample:
                    curve.append("%d: %.1f" % (cycles, vm_rss(lp.proc.pid)))
                    next_sample += step
        return {
            "serial": "%.1f / %.1f ms" % (pct(lat, 50) * 1000, pct(lat, 95) * 1000),
            "serial_zk": "%.0f / %.0f ms" % (pct(inside, 50) * 1000, pct(inside, 95) * 1000),
            "zk_ops": "%.1f (%s)" % (sum(per_req.values()), " ".join(
                "%s %.1f" % (k, v) for k, v in sorted(per_req.items()) if v)) if per_req else "n/a",
            "cpu_req": "%.2f ms" % ((cpu1 - cpu0) * 1000 / args.serial),
            "submitted": "%.2f s" % (t_submitted - t_start),
            "burst": "%d/%d in %.2f s = %.0f req/s%s" % (len(done), args.burst, t_end - t_start,
                                                         len(done) / (t_end - t_start), "" if ok else " (INCOMPLETE)"),
            "burst_lat": ("%.0f / %.0f ms" % (pct(blat, 50) * 1000, pct(blat, 95) * 1000)) if blat else "-",
            "rss": "%.1f MB" % rss,
            "cpu": "%.2f s" % cpu,
            "rss_curve": (("%.1f, then " % rss) + ", ".join(curve) + " MB") if curve else "-",
        }
    finally:
        if lp.proc is not None:
            lp.stop()
        if "BENCH_LOG_LEVEL" not in os.environ:  # kept for reading the log
            shutil.rmtree(str(tmp), ignore_errors=True)
        if sshd is not None:
            sshd.cleanup()
        kz.stop()
        zk.stop()


ROWS = [("serial", "serial latency p50 / p95 (n=%(serial)d)"),
        ("serial_zk", "  of it created -> fulfilled written"),
        ("zk_ops", "ZooKeeper ops per serial request"),
        ("cpu_req", "poold CPU per serial request"),
        ("submitted", "burst submitted (client) in"),
        ("burst", "burst of %(burst)d fulfilled"),
        ("burst_lat", "burst latency p50 / p95"),
        ("rss", "poold peak RSS (VmHWM)"),
        ("cpu", "poold CPU (user+sys)"),
        ("rss_curve", "poold RSS after the burst, then per requests")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--serial", type=int, default=100)
    ap.add_argument("--burst", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=0,
                    help="ready nodes of another provider written to ZooKeeper first (poold caches them)")
    ap.add_argument("--static", action="store_true",
                    help="serve from the static driver (one sshd, --burst slots) instead of libvirt's test driver")
    ap.add_argument("--rss-requests", type=int, default=0,
                    help="full request cycles run after the burst, poold's RSS printed after each tenth")
    ap.add_argument("--zk", choices=["both", "plain", "tls"], default="both",
                    help="ZooKeeper transport(s) to measure (default: both, plaintext first)")
    args = ap.parse_args()
    modes = ["plain", "tls"] if args.zk == "both" else [args.zk]
    results = {m: run(args, m == "tls") for m in modes}
    names = {"plain": "plaintext ZooKeeper", "tls": "TLS-only ZooKeeper"}
    print("poold launcher benchmark (%s, %s)" % ("static driver, one sshd" if args.static else "libvirt test:/// driver",
                                                  os.environ["POOLD_BUILD"]))
    print("%-38s" % "metric" + "".join("%-34s" % names[m] for m in modes)
          + ("   (%d other nodes in ZooKeeper)" % args.nodes if args.nodes else ""))
    for key, label in ROWS:
        print("%-38s" % (label % vars(args)) + "".join("%-34s" % results[m][key] for m in modes))


if __name__ == "__main__":
    main()
