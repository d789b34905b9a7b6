"""poold rides out ZooKeeper faults in the middle of a burst of requests
(issue 13: restarts, lost sessions, ensemble failover) without losing capacity.

Each test starts its own ZooKeeper (harness.ZooKeeperEnsemble: the faults kill
it), five real sshd hosts with ten slots each (50 static nodes), poold, and a
Zuul-like client (zuul_client.py, retrying through connection losses) that
submits a burst of requests, locks, uses and returns every node it gets. A
fault hits ZooKeeper once a third of the requests are done. Afterwards every
request must have been fulfilled, no node may have gone to two requests, and
once the burst is over ZooKeeper must hold no lock contender (node locks and
request locks), every static slot a READY unallocated node again (none stuck
in used/deleting), and poold must still serve a new request.
"""
import json
import random
import queue
import signal
import threading
import time

import pytest
import yaml
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from harness import ZooKeeperEnsemble
from launcher_fixture import LauncherProcess
from sshd import SshServer
from zuul_client import ZuulClient

PROV = "static-prov"
CHROOT = "/poold"
HOSTS = 5
SLOTS_PER_HOST = 10
SLOTS = HOSTS * SLOTS_PER_HOST
REQUESTS = 200
WORKERS = 40
POOLD_SESSION_S = 5.0
BURST_DEADLINE_S = 100
SETTLE_S = 45


@pytest.fixture
def sshd_hosts():
    servers = [SshServer().start() for _ in range(HOSTS)]
    yield servers
    for s in servers:
        s.cleanup()


@pytest.fixture
def ensemble():
    made = []

    def make(n):
        e = ZooKeeperEnsemble(n).start()
        made.append(e)
        return e
    yield make
    for e in made:
        e.stop()


def make_chroot(ens):
    root = KazooClient(hosts=ens.hosts, timeout=10.0)
    root.start(timeout=30)
    root.ensure_path(CHROOT)
    root.stop()
    root.close()


def zk_client(ens):
    """A Zuul-side kazoo client: a long session (it must outlive poold's in the
    SIGSTOP test) and commands retried through connection losses."""
    c = KazooClient(hosts=ens.hosts + CHROOT, timeout=30.0,
                    connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1.0},
                    command_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1.0, "deadline": 60})
    c.start(timeout=30)
    return c


class Env:
    def __init__(self, tmp_path, ens, sshds):
        make_chroot(ens)
        self.ens = ens
        self.kz = zk_client(ens)
        self.lp = LauncherProcess(tmp_path, ens, CHROOT, self.kz)
        cfg = {"zookeeper-servers": [{"host": "127.0.0.1", "port": p, "chroot": CHROOT} for p in ens.ports],
               "zookeeper-timeout": POOLD_SESSION_S,
               "labels": [{"name": "small"}],
               "providers": [{"name": PROV, "driver": "static", "pools": [{
                   "name": "main",
                   "nodes": [{"name": "127.0.0.1", "labels": ["small"], "connection-port": s.port,
                              "timeout": 2, "max-parallel-jobs": SLOTS_PER_HOST} for s in sshds]}]}]}
        with open(self.lp.config_path, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)

    def close(self):
        if self.lp.proc is not None:
            rc = self.lp.stop()
            assert rc == 0, "poold exited %s\n%s" % (rc, self.lp.log_text()[-6000:])
        self.kz.stop()
        self.kz.close()

    def poold_session(self):
        """poold's session id: the owner of its ephemeral launcher component."""
        path = "/nodepool/components/launcher"
        for c in self.kz.retry(self.kz.get_children, path):
            try:
                return self.kz.retry(self.kz.get, "%s/%s" % (path, c))[1].ephemeralOwner
            except NoNodeError:
                continue
        return None

    def ready_nodes(self):
        return {k: v for k, v in self.lp.nodes().items() if v["state"] == "ready" and not v.get("allocated_to")}

    def contenders(self):
        """Every lock contender left in ZooKeeper: (path, owner session)."""
        out = []
        kz = self.kz

        def children(path):
            try:
                return kz.retry(kz.get_children, path)
            except NoNodeError:
                return []
        for root, sub in (("/nodepool/nodes", "/lock"), ("/nodepool/requests-lock", "")):
            for d in children(root):
                lock = "%s/%s%s" % (root, d, sub)
                for c in children(lock):
                    try:
                        owner = kz.retry(kz.get, "%s/%s" % (lock, c))[1].ephemeralOwner
                    except NoNodeError:
                        continue
                    out.append(("%s/%s" % (lock, c), owner))
        return out


@pytest.fixture
def env_factory(tmp_path, ensemble, sshd_hosts):
    envs = []

    def make(n_servers=1):
        e = Env(tmp_path, ensemble(n_servers), sshd_hosts)
        envs.append(e)
        e.lp.start(wait_registered=False)
        e.lp.wait_for(lambda: e.lp.components("launcher"), 30, "launcher component")
        e.lp.wait_for(lambda: len(e.ready_nodes()) == SLOTS, 60, "%d ready static nodes" % SLOTS)
        return e
    yield make
    for e in envs:
        e.close()


def run_burst(env, fault, n_requests=REQUESTS):
    """Submit n_requests one-node requests and, as Zuul does, handle each one as
    soon as it is fulfilled (a data watch per request; WORKERS threads lock, use
    and return its node). FAULT() runs once a third are done. Returns {request
    id: [node ids]}, the errors met (a request not done by the deadline is one)
    and how many were done when the fault began."""
    zc = ZuulClient(env.kz, retry=True)
    ids = [zc.submit(["small"]) for _ in range(n_requests)]
    done_q = queue.Queue()
    results, errors, final = {}, [], set()
    mu = threading.Lock()
    deadline = time.time() + BURST_DEADLINE_S

    def watch(rid):
        def on_data(data, stat, event=None):
            if data is None:
                return False
            req = json.loads(data.decode())
            if req.get("state") not in ("fulfilled", "failed"):
                return True
            with mu:
                if rid in final:
                    return False
                final.add(rid)
            done_q.put((rid, req))
            return False
        env.kz.DataWatch("/nodepool/requests/" + rid, on_data)

    def worker():
        while time.time() < deadline:
            try:
                rid, req = done_q.get(timeout=0.2)
            except queue.Empty:
                with mu:
                    if len(results) + len(errors) >= n_requests:
                        return
                continue
            try:
                if req["state"] != "fulfilled":
                    raise AssertionError("request %s ended %r" % (rid, req))
                nodes = zc.accept_nodes(rid, req)
                zc.use_nodes(nodes)
                time.sleep(0.02)
                zc.return_nodes(nodes)
                with mu:
                    results[rid] = [nid for nid, _, _ in nodes]
            except Exception as e:  # noqa: BLE001  (every failure is reported below)
                with mu:
                    errors.append("%s: %r" % (rid, e))

    for rid in ids:
        watch(rid)
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    while len(results) + len(errors) < n_requests // 3 and time.time() < deadline:
        time.sleep(0.05)
    assert len(results) < n_requests, "the burst finished before the fault"
    fault_at = len(results)
    fault()
    assert len(results) < n_requests, "the burst finished before the fault was over"
    for t in threads:
        t.join(max(0.0, deadline - time.time()) + 1)
    with mu:   # a worker still busy past the deadline must not change what we check
        results, errors = dict(results), list(errors)
    undone = [rid for rid in ids if rid not in results and not any(e.startswith(rid + ":") for e in errors)]
    errors += ["%s: not fulfilled %ss into the burst: %r" % (rid, BURST_DEADLINE_S, zc.get_request(rid))
               for rid in undone]
    return results, errors, fault_at


def check_after(env, results, errors, fault_at, n_requests=REQUESTS):
    """The burst's outcome and ZooKeeper's state once everything settled."""
    lp = env.lp
    assert not errors, "%d of %d request(s) failed (fault after %d): %s\n%s" % (
        len(errors), n_requests, fault_at, errors[:3], lp.log_text()[-3000:])
    assert len(results) == n_requests, "%d of %d requests done" % (len(results), n_requests)
    seen = {}
    for rid, nids in results.items():
        for nid in nids:
            assert nid not in seen, "node %s went to %s and %s" % (nid, seen[nid], rid)
            seen[nid] = rid

    def settled():
        reqs = env.kz.retry(env.kz.get_children, "/nodepool/requests") \
            if env.kz.exists("/nodepool/requests") else []
        nodes = lp.nodes()
        return (not reqs and not env.contenders() and len(nodes) == SLOTS
                and all(v["state"] == "ready" and not v.get("allocated_to") for v in nodes.values()))
    deadline = time.time() + SETTLE_S
    while time.time() < deadline and not settled():
        assert lp.proc.poll() is None, "poold died\n%s" % lp.log_text()[-6000:]
        time.sleep(0.5)
    if not settled():
        me = env.poold_session()
        locks = env.contenders()
        states, stuck = {}, []
        for k, v in sorted(lp.nodes().items()):
            states[v["state"]] = states.get(v["state"], 0) + 1
            if v["state"] != "ready" or v.get("allocated_to"):
                stuck.append((k, v["state"], v.get("allocated_to")))
        pytest.fail("not settled %ss after the burst (fault after %d requests): node states %s (%s), "
                    "%d contender(s) left (%d owned by poold's session 0x%x): %s; requests left: %s\n%s"
                    % (SETTLE_S, fault_at, states, stuck[:6], len(locks), sum(o == me for _, o in locks), me or 0,
                       locks[:6], env.kz.get_children("/nodepool/requests"), lp.log_text()[-3000:]))
    # Still serving: one more job goes through at once.
    zc = ZuulClient(env.kz, retry=True)
    zc.run_job(["small"], timeout=20)


def poold_saw(env, what):
    return "ZooKeeper session %s" % what in env.lp.log_text()


def test_zookeeper_restart_mid_burst_loses_nothing(env_factory):
    """ZooKeeper stopped and started again on the same data (down ~2 s) while
    requests are in flight: all fulfilled, nothing left locked or stuck."""
    env = env_factory(1)

    def fault():
        env.ens.kill(0, signal.SIGTERM)
        time.sleep(2)
        env.ens.restart(0)
    results, errors, at = run_burst(env, fault)
    assert poold_saw(env, "SUSPENDED")
    check_after(env, results, errors, at)


def test_zookeeper_paused_past_session_timeout_mid_burst_loses_nothing(env_factory):
    """ZooKeeper frozen (SIGSTOP) longer than poold's session timeout, then
    thawed: poold's session expires (its locks with it), a new one takes over
    and every request is still fulfilled, nothing left locked or stuck."""
    env = env_factory(1)

    def fault():
        env.ens.pause(0)
        time.sleep(POOLD_SESSION_S + 4)
        env.ens.resume(0)
    results, errors, at = run_burst(env, fault)
    assert poold_saw(env, "EXPIRED"), "the pause did not expire poold's session"
    check_after(env, results, errors, at)


def test_zookeeper_sigkill_mid_burst_loses_nothing(env_factory):
    """ZooKeeper killed (SIGKILL) and started again after ~5 s on the same data:
    all fulfilled, nothing left locked or stuck."""
    env = env_factory(1)

    def fault():
        env.ens.kill(0, signal.SIGKILL)
        time.sleep(5)
        env.ens.restart(0)
    results, errors, at = run_burst(env, fault)
    assert poold_saw(env, "SUSPENDED")
    check_after(env, results, errors, at)


def test_ensemble_leader_then_poold_server_killed_mid_burst_loses_nothing(env_factory):
    """Three servers: the leader is killed mid-burst (and comes back), then the
    server poold is connected to: poold fails over each time; nothing lost,
    no node given twice, nothing left locked or stuck."""
    env = env_factory(3)
    ens = env.ens
    log = []

    def fault():
        leader = ens.leader()
        assert leader is not None
        log.append("killed leader %d" % leader)
        ens.kill(leader, signal.SIGKILL)
        deadline = time.time() + 20
        while time.time() < deadline and ens.leader() in (None, leader):
            time.sleep(0.1)
        log.append("new leader %s" % ens.leader())
        ens.restart(leader)     # back as a follower: two servers may go down no more
        deadline = time.time() + 20
        sid, victim = env.poold_session(), None
        while time.time() < deadline and victim is None:
            victim = ens.session_server(sid) if sid else None
            if victim is None:
                time.sleep(0.2)
                sid = env.poold_session()
        assert victim is not None, "poold's session 0x%x is on no server" % (sid or 0)
        log.append("killed poold's server %d (%s)" % (victim, ens.mode(victim)))
        ens.kill(victim, signal.SIGKILL)
        time.sleep(1)
        ens.restart(victim, wait=False)
    # A longer burst: both faults (a server restart in between) fall inside it.
    results, errors, at = run_burst(env, fault, 3 * REQUESTS)
    print("; ".join(log))
    assert env.lp.log_text().count("ZooKeeper session SUSPENDED") >= 2
    check_after(env, results, errors, at, 3 * REQUESTS)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["restart", "sigkill"])
def test_tree_cache_matches_zookeeper_after_restart_under_write_load(ensemble, sig):
    """zk_cache (through zktool) mirrors 40 nodes — data and lock contenders —
    while kazoo keeps changing them and ZooKeeper is stopped and started again
    on the same data, twice (the session survives): once the writes stop, every
    cached node equals ZooKeeper's, so no watch was lost across the reconnects."""
    from test_zk_lock import ZkTool
    ens = ensemble(1)
    make_chroot(ens)
    kz = zk_client(ens)
    tool = None
    try:
        n = 40
        for i in range(n):
            kz.create("/nodes/%010d/lock" % i, b"", makepath=True)
            kz.set("/nodes/%010d" % i, b"v0")
        tool = ZkTool(ens.hosts + CHROOT, int(POOLD_SESSION_S * 1000))
        assert tool.cmd("watch /nodes 1 locks") == "watching"
        tool.wait_event("CACHE SYNCED")
        stop = time.time() + 14
        held = {}

        def writer():
            k, rnd = 0, random.Random(13)
            while time.time() < stop:
                i = rnd.randrange(n)
                path = "/nodes/%010d" % i
                if rnd.random() < 0.5:
                    kz.retry(kz.set, path, b"v%d" % k)
                elif i in held:
                    kz.retry(kz.delete, held.pop(i))
                else:
                    held[i] = kz.retry(kz.create, path + "/lock/w__lock__", b"", ephemeral=True, sequence=True)
                k += 1
                time.sleep(0.002)
        th = threading.Thread(target=writer)
        th.start()
        for _ in range(2):
            time.sleep(2)
            ens.kill(0, sig)
            time.sleep(2)
            ens.restart(0)
        th.join()
        tool.wait_event("STATE SUSPENDED")     # the session lived on: no EXPIRED, no full reload
        assert not [e for e in tool.events if e.startswith("STATE EXPIRED")]

        def diff():
            out = []
            for i in range(n):
                path = "/nodes/%010d" % i
                data, st = kz.get(path)
                want = "present v%d locks=%d %s" % (st.version, len(kz.get_children(path + "/lock")), data.decode())
                got = tool.cmd("cache-get " + path)
                if got != want:
                    out.append((path, got, want))
            return out
        deadline = time.time() + 10
        while diff() and time.time() < deadline:
            time.sleep(0.2)
        assert not diff()
    finally:
        if tool is not None and tool.proc.poll() is None:
            tool.close()
        kz.stop()
        kz.close()
