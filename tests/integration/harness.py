"""Test harness: real services started for a test session and stopped after it.

ZooKeeperServer runs Debian's ZooKeeper 3.8 standalone on a free loopback
port with its own data directory. Integration tests, benchmarks and the
one-machine demo share it so that every tier starts ZooKeeper the same way.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ZK_CLASSPATH = ":".join([
    "/usr/share/java/zookeeper.jar",
    "/usr/share/java/zookeeper-jute.jar",
    "/usr/share/java/slf4j-api.jar",
    "/usr/share/java/slf4j-simple.jar",
    "/usr/share/java/netty-all.jar",
    "/usr/share/java/metrics-core.jar",
    "/usr/share/java/snappy-java.jar",
])

SRCDIR = os.environ.get("POOLD_SRCDIR",
                        os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("POOLD_BUILD", os.path.join(SRCDIR, "build-san"))


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def four_letter(port, cmd, timeout=1.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(cmd.encode())
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data.decode(errors="replace")
            data += chunk


class ZooKeeperServer:
    """One standalone ZooKeeper on 127.0.0.1:<free port>, data in a temp dir."""

    def __init__(self, workdir=None):
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="poold-zk-")
        self.port = None
        self.proc = None

    @property
    def hosts(self):
        return "127.0.0.1:%d" % self.port

    def start(self, timeout=60):
        self.port = free_port()
        datadir = os.path.join(self.workdir, "data")
        os.makedirs(datadir, exist_ok=True)
        cfg = os.path.join(self.workdir, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write("\n".join([
                "tickTime=500",
                "initLimit=10",
                "syncLimit=5",
                "dataDir=%s" % datadir,
                "clientPort=%d" % self.port,
                "clientPortAddress=127.0.0.1",
                "admin.enableServer=false",
                "4lw.commands.whitelist=ruok,stat,srvr,mntr,cons",
                # Tests expire sessions on purpose; let them be short.
                "minSessionTimeout=1000",
                "maxSessionTimeout=60000",
                "maxClientCnxns=0",
                "",
            ]))
        self.log = open(os.path.join(self.workdir, "zookeeper.log"), "w")
        self.proc = subprocess.Popen(
            ["java", "-Xmx256m", "-XX:+UseSerialGC", "-Dzookeeper.jmx.log4j.disable=true",
             "-cp", ZK_CLASSPATH, "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("ZooKeeper exited with %s; see %s/zookeeper.log"
                                   % (self.proc.returncode, self.workdir))
            try:
                # ruok answers before the server serves; srvr says when it does.
                if "Mode: standalone" in four_letter(self.port, "srvr"):
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("ZooKeeper did not answer ruok within %ss" % timeout)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def program(name):
    """Path of a built program (build-san/bin/... under make check)."""
    path = os.path.join(BUILD, "bin", name)
    if not os.path.exists(path):
        path = os.path.join(BUILD, "tests", "tools", name)
    if not os.path.exists(path):
        raise FileNotFoundError("%s not built under %s" % (name, BUILD))
    return path


def _wait_serving(port, deadline, proc=None, log=None):
    """Wait until the server on port says it serves (srvr: Mode standalone/leader/follower)."""
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("ZooKeeper exited with %s; see %s" % (proc.returncode, log))
        try:
            out = four_letter(port, "srvr")
            for mode in ("standalone", "leader", "follower"):
                if "Mode: %s" % mode in out:
                    return mode
        except OSError:
            pass
        time.sleep(0.1)
    return None


class ZooKeeperEnsemble:
    """N ZooKeeper servers on loopback (N=1: one standalone server) for fault tests.

    Unlike ZooKeeperServer, each server keeps its client port and data directory
    across kill()/restart(), so a restarted server comes back with the same data;
    pause()/resume() freeze and thaw one with SIGSTOP/SIGCONT. Server indexes are
    0..N-1. mode(i) and leader() use the srvr four-letter word; session_server(sid)
    finds the server a session is connected to with cons."""

    def __init__(self, n=1, workdir=None):
        self.n = n
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="poold-zkens-")
        self.ports = [free_port() for _ in range(n)]
        self.peer_ports = [(free_port(), free_port()) for _ in range(n)] if n > 1 else []
        self.procs = [None] * n
        self.logs = [None] * n

    @property
    def hosts(self):
        return ",".join("127.0.0.1:%d" % p for p in self.ports)

    @property
    def port(self):
        """The first server's client port (what single-server configs use)."""
        return self.ports[0]

    def _config(self, i):
        datadir = os.path.join(self.workdir, "data%d" % i)
        os.makedirs(datadir, exist_ok=True)
        lines = [
            "tickTime=500",
            "initLimit=10",
            "syncLimit=5",
            "dataDir=%s" % datadir,
            "clientPort=%d" % self.ports[i],
            "clientPortAddress=127.0.0.1",
            "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,stat,srvr,mntr,cons",
            "minSessionTimeout=1000",
            "maxSessionTimeout=60000",
            "maxClientCnxns=0",
        ]
        if self.n > 1:
            with open(os.path.join(datadir, "myid"), "w") as f:
                f.write("%d\n" % (i + 1))
            for k, (quorum, election) in enumerate(self.peer_ports):
                lines.append("server.%d=127.0.0.1:%d:%d" % (k + 1, quorum, election))
        cfg = os.path.join(self.workdir, "zoo%d.cfg" % i)
        with open(cfg, "w") as f:
            f.write("\n".join(lines + [""]))
        return cfg

    def _spawn(self, i):
        cfg = self._config(i)
        if self.logs[i] is None:
            self.logs[i] = open(os.path.join(self.workdir, "zookeeper%d.log" % i), "a")
        self.procs[i] = subprocess.Popen(
            ["java", "-Xmx256m", "-XX:+UseSerialGC", "-Dzookeeper.jmx.log4j.disable=true",
             "-cp", ZK_CLASSPATH, "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg],
            stdout=self.logs[i], stderr=subprocess.STDOUT, start_new_session=True)

    def start(self, timeout=60):
        """Start every server; return once each one serves."""
        for i in range(self.n):
            self._spawn(i)
        deadline = time.time() + timeout
        for i in range(self.n):
            if not _wait_serving(self.ports[i], deadline, self.procs[i], self.workdir):
                self.stop()
                raise RuntimeError("ZooKeeper server %d did not serve within %ss" % (i, timeout))
        return self

    def restart(self, i, timeout=60, wait=True):
        """Start server i again (same port and data); wait until it serves (not when wait=False)."""
        assert self.procs[i] is None or self.procs[i].poll() is not None, "server %d still runs" % i
        self._spawn(i)
        if wait and not _wait_serving(self.ports[i], time.time() + timeout, self.procs[i], self.workdir):
            raise RuntimeError("ZooKeeper server %d did not serve again within %ss" % (i, timeout))

    def kill(self, i, sig=signal.SIGKILL):
        """Stop server i with sig (SIGKILL: no clean shutdown) and reap it."""
        p = self.procs[i]
        if p is None or p.poll() is not None:
            return
        os.killpg(p.pid, sig)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()

    def pause(self, i):
        os.killpg(self.procs[i].pid, signal.SIGSTOP)

    def resume(self, i):
        os.killpg(self.procs[i].pid, signal.SIGCONT)

    def running(self, i):
        return self.procs[i] is not None and self.procs[i].poll() is None

    def mode(self, i):
        """'standalone', 'leader', 'follower', or None when server i does not serve."""
        try:
            out = four_letter(self.ports[i], "srvr")
        except OSError:
            return None
        for line in out.splitlines():
            if line.startswith("Mode: "):
                return line.split(": ", 1)[1].strip()
        return None

    def leader(self):
        """Index of the current leader (the standalone server), or None."""
        for i in range(self.n):
            if self.running(i) and self.mode(i) in ("leader", "standalone"):
                return i
        return None

    def session_server(self, session_id):
        """Index of the server that session_id (an int) is connected to, or None."""
        want = "sid=0x%x" % session_id
        for i in range(self.n):
            if not self.running(i):
                continue
            try:
                out = four_letter(self.ports[i], "cons")
            except OSError:
                continue
            if any(want + "," in line or want + ")" in line for line in out.splitlines()):
                return i
        return None

    def stop(self):
        for i in range(self.n):
            p = self.procs[i]
            if p is not None and p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGCONT)   # a paused server cannot act on SIGTERM
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
                except ProcessLookupError:
                    pass
            self.procs[i] = None
            if self.logs[i]:
                self.logs[i].close()
                self.logs[i] = None
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
