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
