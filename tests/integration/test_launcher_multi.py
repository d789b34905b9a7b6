"""Several launchers on one config and one ZooKeeper (issue 13).

Real poold processes share one nodepool.yaml and one ZooKeeper chroot; static
hosts are real sshd servers; a Zuul-like client (zuul_client.py) submits a burst
of requests and runs a job on every node it gets, as Zuul's executor does (lock,
in-use, hold a while, used, unlock). What the tests hold the launchers to:

  * a static host never has more than max-parallel-jobs nodes at once, checked
    two ways: the client counts the jobs running on each host at every instant,
    and a sampler lists /nodepool/nodes continuously and counts, per host, the
    nodes not being deleted. Node states only move forward (ready → in-use →
    used → deleting, ready → deleting), so a node in the listing that is read
    afterwards outside `deleting` was outside it when the listing was taken: a
    count above the limit is a real overlap, not an artefact of reading the
    nodes one after another;
  * every request is fulfilled, no node goes to two requests;
  * no lock is left held at the end;
  * with one launcher SIGKILLed mid-burst, the survivors reset its requests and
    finish the work;
  * min-ready with two launchers keeps min-ready nodes, not twice as many.
"""
import collections
import json
import queue
import re
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from launcher_fixture import LABEL, launchers  # noqa: F401  (fixture)
from sshd import SshServer
from test_launcher_static import PROV, host
from zuul_client import NodeRequestFailed, ZuulClient

NODE_ROOT = "/nodepool/nodes"
GONE = ("deleting", "deleted")

N_HOSTS = 4
MAX_PARALLEL = 3
N_REQUESTS = 300
HOLD_S = 0.15          # how long a job keeps its node
BURST_TIMEOUT = 300    # generous: two loaded cores, sanitizer builds


@pytest.fixture
def static_hosts():
    servers = [SshServer().start() for _ in range(N_HOSTS)]
    yield servers
    for s in servers:
        s.cleanup()


def static_multi_config(lp, hosts):
    nodes = [host(s, ["small"], **{"max-parallel-jobs": MAX_PARALLEL}) for s in hosts]
    return {"zookeeper-servers": [{"host": "127.0.0.1", "port": lp.zk_server.port, "chroot": lp.chroot}],
            "zookeeper-timeout": 5.0,
            "webapp": {"port": 0},
            "labels": [{"name": "small"}],
            "providers": [{"name": PROV, "driver": "static", "pools": [{"name": "main", "nodes": nodes}]}]}


def write_config(lp, cfg):
    lp.write_config(text=json.dumps(cfg))   # YAML is a superset of JSON


def start_all(lps):
    for lp in lps:
        lp.start(wait_registered=False)
    for lp in lps:
        lp.wait_for(lambda: lp.log_text().count("registered launcher component"), 20, "launcher up")


class Sampler(threading.Thread):
    """Lists /nodepool/nodes over and over with its own session and keeps, per key
    (key_fn(node) or None to skip), the largest number of nodes seen at once."""

    def __init__(self, zk_hosts, key_fn, limit):
        super().__init__(daemon=True)
        self.zk = KazooClient(hosts=zk_hosts, timeout=10)
        self.zk.start(timeout=15)
        self.key_fn = key_fn
        self.limit = limit
        self.max = collections.Counter()
        self.violations = []
        self.samples = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                children = self.zk.get_children(NODE_ROOT)
            except NoNodeError:
                children = []
            count = collections.Counter()
            seen = collections.defaultdict(list)
            for c in children:
                try:
                    data, _ = self.zk.get("%s/%s" % (NODE_ROOT, c))
                except NoNodeError:
                    continue
                if not data:
                    continue
                node = json.loads(data.decode())
                key = self.key_fn(node)
                if key is None:
                    continue
                count[key] += 1
                seen[key].append((c, node.get("state"), node.get("slot"), node.get("allocated_to")))
            self.samples += 1
            for key, k in count.items():
                self.max[key] = max(self.max[key], k)
                if k > self.limit and len(self.violations) < 20:
                    self.violations.append((key, seen[key]))
            time.sleep(0.01)

    def finish(self):
        self.halt.set()
        self.join(30)
        self.zk.stop()
        self.zk.close()


class Burst:
    """N_REQUESTS single-node requests submitted at once; worker threads run a job
    on each as soon as it is fulfilled and count the jobs running per host."""

    def __init__(self, kazoo, label, n=N_REQUESTS, workers=4 * N_HOSTS * MAX_PARALLEL, hold=HOLD_S):
        self.zk = kazoo
        self.zc = ZuulClient(kazoo)
        self.label, self.n, self.hold = label, n, hold
        self.q = queue.Queue()
        self.mu = threading.Lock()
        self.busy = collections.Counter()
        self.max_busy = collections.Counter()
        self.node_req = {}
        self.fulfilled = set()
        self.errors = []
        self.done = 0
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]

    def start(self):
        for t in self.threads:
            t.start()
        for _ in range(self.n):
            rid = self.zc.submit([self.label])
            self.zk.DataWatch("/nodepool/requests/" + rid, self._watcher(rid))
        return self

    def _watcher(self, rid):
        def w(data, stat, event=None):
            if data is None:
                self.q.put((rid, None))
                return False
            req = json.loads(data.decode())
            if req.get("state") in ("fulfilled", "failed"):
                self.q.put((rid, req))
                return False
            return True
        return w

    def _work(self):
        while not self.halt.is_set():
            try:
                rid, req = self.q.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._job(rid, req)
            except Exception as e:   # recorded; the test fails on any
                with self.mu:
                    self.errors.append("request %s: %r" % (rid, e))
            finally:
                with self.mu:
                    self.done += 1

    def _job(self, rid, req):
        if req is None or req["state"] != "fulfilled":
            self.zc.delete_request(rid)
            raise NodeRequestFailed("ended %r" % (req,))
        with self.mu:
            self.fulfilled.add(rid)
            for nid in req["nodes"]:
                if nid in self.node_req:
                    self.errors.append("node %s went to %s and %s" % (nid, self.node_req[nid], rid))
                self.node_req[nid] = rid
        nodes = self.zc.accept_nodes(rid, req)
        ports = [n[1]["connection_port"] for n in nodes]
        with self.mu:
            for p in ports:
                self.busy[p] += 1
                self.max_busy[p] = max(self.max_busy[p], self.busy[p])
        self.zc.use_nodes(nodes)
        time.sleep(self.hold)
        with self.mu:
            for p in ports:
                self.busy[p] -= 1
        self.zc.return_nodes(nodes)

    def wait(self, lps, timeout=BURST_TIMEOUT, on_progress=None):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.mu:
                done = self.done
            if on_progress:
                on_progress(done)
            if done >= self.n:
                break
            time.sleep(0.2)
        self.halt.set()
        for t in self.threads:
            t.join(30)
        assert self.done >= self.n, "only %d of %d requests done in %ss\n%s" % (
            self.done, self.n, timeout, "\n".join(lp.log_text()[-3000:] for lp in lps))


def held_locks(zk):
    """Every lock contender under /nodepool (kazoo's names: <uuid>__lock__<seq>)."""
    out = []

    def walk(path):
        try:
            children = zk.get_children(path)
        except NoNodeError:
            return
        for c in children:
            if "__lock__" in c or "__rlock__" in c:
                out.append("%s/%s" % (path, c))
            else:
                walk("%s/%s" % (path, c))
    walk("/nodepool")
    return out


def no_locks_left(lps, zk, timeout=30, leases_too=True):
    """No lock contender left (leases_too=False: except the leases live launchers
    keep under /nodepool/poold-locks/launch and /min-ready)."""
    deadline = time.time() + timeout
    keep = ("/nodepool/poold-locks/launch/", "/nodepool/poold-locks/min-ready/")
    while True:
        left = [p for p in held_locks(zk) if leases_too or not p.startswith(keep)]
        if not left or time.time() > deadline:
            break
        time.sleep(0.5)
    assert not left, "locks still held: %s" % left


def settled_static_nodes(lps, zk):
    """All slots registered again, nothing else left: N_HOSTS * MAX_PARALLEL ready nodes."""
    def ok():
        nodes = lps[0].nodes()
        return (len(nodes) == N_HOSTS * MAX_PARALLEL
                and all(v["state"] == "ready" and v["allocated_to"] is None for v in nodes.values()))
    lps[-1].wait_for(ok, 60, "every slot registered again, nothing else")
    per_host = collections.Counter(v["connection_port"] for v in lps[0].nodes().values())
    assert set(per_host.values()) == {MAX_PARALLEL}, per_host
    slots = collections.Counter((v["connection_port"], v["slot"]) for v in lps[0].nodes().values())
    assert set(slots.values()) == {1}, slots


def check_burst(burst, sampler):
    assert not burst.errors, burst.errors[:20]
    assert len(burst.fulfilled) == burst.n
    assert max(burst.max_busy.values()) <= MAX_PARALLEL, "jobs at once per host: %s" % dict(burst.max_busy)
    assert sampler.samples > 20
    assert not sampler.violations, "nodes at once per host: %s; e.g. %s" % (dict(sampler.max),
                                                                            sampler.violations[:3])


def test_two_launchers_burst_never_exceed_max_parallel_jobs(launchers, static_hosts, zk_hosts, kazoo):
    """Two launchers, one static config: a burst of 300 requests is served with no
    host ever over max-parallel-jobs, every request fulfilled, no node given twice,
    no lock left, and the slots registered exactly once each afterwards."""
    lps = launchers(2)
    write_config(lps[0], static_multi_config(lps[0], static_hosts))
    start_all(lps)
    lps[0].wait_for(lambda: len(lps[0].nodes()) == N_HOSTS * MAX_PARALLEL, 30, "static nodes registered")
    sampler = Sampler(zk_hosts, lambda n: None if n.get("state") in GONE else n.get("connection_port"),
                      MAX_PARALLEL)
    sampler.start()
    try:
        burst = Burst(kazoo, "small").start()
        burst.wait(lps)
    finally:
        sampler.finish()
    check_burst(burst, sampler)
    settled_static_nodes(lps, kazoo)
    no_locks_left(lps, kazoo)
    # both launchers did part of the work
    for lp in lps:
        assert "accepted request" in lp.log_text(), lp.tmp


def test_three_launchers_one_sigkilled_mid_burst_survivors_finish(launchers, static_hosts, zk_hosts, kazoo):
    """Three launchers; one is SIGKILLed a third of the way through a 300-request
    burst. The survivors reset the requests it had accepted (once its session
    ends) and serve everything, no host ever over max-parallel-jobs, no node
    given twice, and no lock of the dead launcher (or anyone) left behind."""
    lps = launchers(3)
    write_config(lps[0], static_multi_config(lps[0], static_hosts))
    start_all(lps)
    lps[0].wait_for(lambda: len(lps[0].nodes()) == N_HOSTS * MAX_PARALLEL, 30, "static nodes registered")
    sampler = Sampler(zk_hosts, lambda n: None if n.get("state") in GONE else n.get("connection_port"),
                      MAX_PARALLEL)
    sampler.start()
    victim, survivors = lps[0], lps[1:]
    mark = {}

    def kill_at_a_third(done):
        if "killed" not in mark and done >= N_REQUESTS // 3:
            mark["killed"] = victim.stop(sig=9)
            mark["logs"] = [len(lp.log_text()) for lp in survivors]
    try:
        burst = Burst(kazoo, "small").start()
        burst.wait(survivors, on_progress=kill_at_a_third)
    finally:
        sampler.finish()
    assert mark.get("killed") == -9
    check_burst(burst, sampler)
    settled_static_nodes(survivors, kazoo)
    no_locks_left(survivors, kazoo)
    after = "".join(lp.log_text()[off:] for lp, off in zip(survivors, mark["logs"]))
    assert "accepted request" in after
    # the victim had accepted requests that were waiting for nodes: someone reset them
    victim_accepted = set(re.findall(r"accepted request (\S+)", victim.log_text()))
    victim_done = set(re.findall(r"request (\S+) fulfilled", victim.log_text()))
    if victim_accepted - victim_done:
        assert "was lost by its launcher: reset to requested" in after


def test_two_launchers_min_ready_not_doubled(launchers, zk_hosts, kazoo):
    """Two launchers with min-ready 2: twenty jobs each take a min-ready node and
    min-ready makes exactly one new node each time (22 min-ready requests in all,
    across both launchers); the nodes kept for min-ready (init, building or ready,
    unallocated or held by a min-ready request) never exceed 2 at any moment, and
    exactly 2 remain at the end."""
    lps = launchers(2)
    lps[0].write_config(lps[0].config(labels=[{"name": LABEL, "min-ready": 2}]))
    lps[0].images()

    def min_ready_node(n):
        if n.get("state") not in ("init", "building", "ready"):
            return None
        alloc = n.get("allocated_to")
        return n["type"][0] if alloc is None or alloc.startswith("900-") else None
    sampler = Sampler(zk_hosts, min_ready_node, 2)
    sampler.start()
    zc = ZuulClient(kazoo)

    def ready_free():
        return sorted(k for k, v in lps[0].nodes().items() if v["state"] == "ready" and v["allocated_to"] is None)
    try:
        start_all(lps)
        before = lps[0].wait_for(lambda: len(ready_free()) >= 2 and ready_free(), 30, "two min-ready nodes")
        for _ in range(20):
            # the job takes one of the min-ready nodes; min-ready makes a new one
            _, req, _ = zc.run_job([LABEL], timeout=30)
            assert req["nodes"][0] in before, (req, before)
            before = lps[0].wait_for(lambda: len(ready_free()) >= 2 and req["nodes"][0] not in ready_free()
                                     and ready_free(), 30, "min-ready refilled")
        time.sleep(2)   # four min-ready passes of each launcher: nothing more may come
    finally:
        sampler.finish()
    assert len(ready_free()) == 2, lps[0].nodes()
    made = sum(lp.log_text().count("min-ready: requested a %s node" % LABEL) for lp in lps)
    assert made == 2 + 20, made
    assert sampler.samples > 20
    assert not sampler.violations, "min-ready nodes at once: %s; e.g. %s" % (dict(sampler.max),
                                                                           sampler.violations[:3])


MAX_SERVERS = 4


def lease_holder(lps, zk, kind="launch"):
    """The launcher whose pid is the identifier of the lease contender of KIND."""
    root = "/nodepool/poold-locks/" + kind
    for c in held_locks(zk):
        if c.startswith(root + "/"):
            data, _ = zk.get(c)
            pid = int(data.decode().rsplit("-", 1)[1])
            return next(lp for lp in lps if lp.proc is not None and lp.proc.pid == pid)
    return None


def test_launchers_sharing_a_cloud_pool_never_exceed_max_servers(launchers, zk_hosts, kazoo):
    """Launchers on one libvirt pool with max-servers 4 serve a burst of 150
    requests (every job uses a new node) while the launcher launching for the
    pool is SIGKILLed (after 30 jobs) and a new launcher joins (after 60; it may
    take the pool over from the survivor): the pool never has more than 4 nodes
    at once (counted as quota counts them: every node until its znode is gone),
    every request is fulfilled, no node goes to two requests, and no lock is
    left but the leases of live launchers (none at all once they stop)."""
    lps = launchers(2)
    lps[0].write_config(lps[0].config(pool={"max-servers": MAX_SERVERS}))
    lps[0].images()
    start_all(lps)
    sampler = Sampler(zk_hosts, lambda n: n.get("pool"), MAX_SERVERS)
    sampler.start()
    mark = {}

    def kill_then_join(done):
        if "killed" not in mark and done >= 30:
            victim = lease_holder(lps, kazoo)
            mark["holder"] = victim is not None or held_locks(kazoo)
            victim = victim or lps[0]
            mark["killed"] = victim.stop(sig=9)
        if "joined" not in mark and done >= 60:
            mark["joined"] = launchers(1)[0]
            start_all([mark["joined"]])
    try:
        burst = Burst(kazoo, LABEL, n=150, workers=3 * MAX_SERVERS, hold=0.1).start()
        burst.wait(lps, on_progress=kill_then_join)
    finally:
        sampler.finish()
    assert mark.get("killed") == -9
    live = [lp for lp in lps + [mark["joined"]] if lp.proc is not None]
    assert not burst.errors, burst.errors[:20]
    assert len(burst.fulfilled) == burst.n
    assert sampler.samples > 20
    assert not sampler.violations, "nodes of the pool at once: %s; e.g. %s" % (dict(sampler.max),
                                                                             sampler.violations[:3])
    assert mark["holder"] is True, "no launcher held the launch lease: %s" % (mark["holder"],)
    live[0].wait_for(lambda: not live[0].nodes(), 30, "every used node deleted")
    no_locks_left(live, kazoo, leases_too=False)
    for lp in live:
        assert lp.stop() == 0
    no_locks_left(live, kazoo)


def test_two_launchers_request_whose_launch_fails_still_fails(launchers, kazoo):
    """With one launcher launching for the pool, a request whose launch fails
    (its image volume is missing) is declined by that launcher and then by the
    other one's pool of the same name, so it ends `failed` as with Nodepool —
    not `requested` for ever — and the failed node is deleted."""
    lps = launchers(2)
    cfg = lps[0].config(labels=[{"name": LABEL}, {"name": "broken"}],
                        pool={"labels": [{"name": LABEL, "diskimage": "debian", "memory": 64, "vcpus": 1},
                                         {"name": "broken", "diskimage": "broken", "memory": 64, "vcpus": 1}]},
                        provider={"launch-retries": 1, "diskimages": [{"name": "debian"}, {"name": "broken"}]})
    cfg["diskimages"].append({"name": "broken", "elements": ["x"]})
    lps[0].write_config(cfg)
    lps[0].images()
    lps[0].images(image="broken")   # its volume does not exist in the storage pool
    start_all(lps)
    zc = ZuulClient(kazoo)
    req_id = zc.submit(["broken"])
    req = zc.wait(req_id, timeout=30)
    assert req["state"] == "failed" and len(req["declined_by"]) == 2, req
    lps[0].wait_for(lambda: not lps[0].nodes(), 15, "failed node deleted")


def test_dead_launchers_request_is_taken_over_within_the_session_timeout(launchers, kazoo):
    """Launcher A accepts a request that must wait (the only static slot is in use), then is
    SIGKILLed. B runs with the daemon's 60 s cleanup interval, so only its reaction to A's
    component going away can serve the request in time: once the slot is free, the request
    is fulfilled by B within the session timeout (5 s) plus 5 s of the kill (issue 13)."""
    with SshServer() as sshd:
        a, b = launchers(2)
        cfg = static_multi_config(a, [sshd])
        cfg["providers"][0]["pools"][0]["nodes"][0]["max-parallel-jobs"] = 1
        write_config(a, cfg)
        slow = {"POOLD_CLEANUP_INTERVAL_MS": "60000"}
        a.start(env=slow)
        a.wait_for(lambda: [n for n in a.nodes().values() if n["state"] == "ready"], 15, "static node")
        zc = ZuulClient(kazoo)
        r1 = zc.submit(["small"])
        held = zc.accept_nodes(r1, zc.wait(r1, timeout=15))
        r2 = zc.submit(["small"])
        a.wait_for(lambda: (zc.get_request(r2) or {}).get("state") == "pending", 15, "A accepts the second")
        b.start(env=slow)
        b.wait_for(lambda: len(b.components("pool")) == 2, 15, "both pools registered")
        t_kill = time.monotonic()
        assert a.stop(sig=9) == -9
        zc.use_nodes(held)
        zc.return_nodes(held)
        req = zc.wait(r2, timeout=30)
        took = time.monotonic() - t_kill
        assert req["state"] == "fulfilled", req
        assert took < 5.0 + 5.0, "taken over after %.1f s" % took
        assert "was lost by its launcher: reset to requested" in b.log_text()
        zc.return_nodes(zc.accept_nodes(r2, req))
