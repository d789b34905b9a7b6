"""Test harness: real services started for a test session and stopped after it.

ZooKeeperServer runs Debian's ZooKeeper 3.8 standalone on a free loopback
port with its own data directory, either plaintext or TLS-only (as production
Zuul runs it: client certificates required, a throw-away CA from
tools/zk-tls-ca.sh). Integration tests, benchmarks and the one-machine demo
share it so that every tier starts ZooKeeper the same way.
"""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

# Debian's netty-all.jar is an empty meta jar: TLS (the Netty connection
# factory) needs the single jars it stands for.
ZK_CLASSPATH = ":".join([
    "/usr/share/java/zookeeper.jar",
    "/usr/share/java/zookeeper-jute.jar",
    "/usr/share/java/slf4j-api.jar",
    "/usr/share/java/slf4j-simple.jar",
    "/usr/share/java/metrics-core.jar",
    "/usr/share/java/snappy-java.jar",
] + ["/usr/share/java/netty-%s.jar" % j for j in (
    "buffer", "codec", "common", "handler", "resolver", "transport",
    "transport-native-epoll", "transport-native-unix-common")])

SRCDIR = os.environ.get("POOLD_SRCDIR",
                        os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("POOLD_BUILD", os.path.join(SRCDIR, "build-san"))


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def four_letter(port, cmd, timeout=1.0, tls=None):
    """Send a four-letter word; over TLS with TLS's client certificate if given."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        s = tls.client_context().wrap_socket(raw, server_hostname="localhost") if tls else raw
        s.sendall(cmd.encode())
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data.decode(errors="replace")
            data += chunk


class TLSFiles:
    """A throw-away CA with a server and a client certificate, made by
    tools/zk-tls-ca.sh in DIRECTORY (see there for the files). NAME tells two
    CAs apart."""

    def __init__(self, directory, name="poold test"):
        subprocess.run([os.path.join(SRCDIR, "tools", "zk-tls-ca.sh"), directory, name], check=True)
        self.dir = directory
        self.ca = os.path.join(directory, "ca.pem")
        self.server_pem = os.path.join(directory, "server.pem")
        self.cert = os.path.join(directory, "client.crt")
        self.key = os.path.join(directory, "client.key")

    def zookeeper_tls(self):
        """The zookeeper-tls mapping of nodepool.yaml."""
        return {"ca": self.ca, "cert": self.cert, "key": self.key}

    def kazoo_args(self):
        """KazooClient keyword arguments, as Zuul and Nodepool pass them."""
        return {"use_ssl": True, "ca": self.ca, "certfile": self.cert, "keyfile": self.key}

    def zktool_args(self):
        return [self.ca, self.cert, self.key]

    def client_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.ca)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


class ZooKeeperServer:
    """One standalone ZooKeeper on 127.0.0.1:<free port>, data in a temp dir.

    tls=True: TLS-only (secureClientPort, Netty, PEM key and trust stores,
    client certificates required); self.tls then holds the TLSFiles of its CA,
    whose client certificate every client below uses."""

    def __init__(self, workdir=None, tls=False):
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="poold-zk-")
        self.port = None
        self.proc = None
        self.tls = TLSFiles(os.path.join(self.workdir, "tls")) if tls else None

    @property
    def hosts(self):
        return "127.0.0.1:%d" % self.port

    def kazoo(self, chroot="", **kwargs):
        """A KazooClient (not started) for this server, over TLS if it is TLS-only."""
        from kazoo.client import KazooClient
        return KazooClient(hosts=self.hosts + chroot, **(self.tls.kazoo_args() if self.tls else {}), **kwargs)

    def zookeeper_config(self, chroot=None):
        """zookeeper-servers (and zookeeper-tls if TLS-only) for a nodepool.yaml, as a dict."""
        server = {"host": "127.0.0.1", "port": self.port}
        if chroot:
            server["chroot"] = chroot
        cfg = {"zookeeper-servers": [server]}
        if self.tls:
            cfg["zookeeper-tls"] = self.tls.zookeeper_tls()
        return cfg

    def zookeeper_yaml(self, chroot=None):
        """The same as YAML text, for tests that write their config by hand."""
        text = "zookeeper-servers:\n  - host: 127.0.0.1\n    port: %d\n" % self.port
        if chroot:
            text += "    chroot: %s\n" % chroot
        if self.tls:
            text += "zookeeper-tls:\n" + "".join("  %s: %s\n" % kv for kv in self.tls.zookeeper_tls().items())
        return text

    def zktool_args(self):
        """zktool's trailing TLS arguments (after HOSTS and the session timeout)."""
        return self.tls.zktool_args() if self.tls else []

    def start(self, timeout=60):
        self.port = free_port()
        datadir = os.path.join(self.workdir, "data")
        os.makedirs(datadir, exist_ok=True)
        cfg = os.path.join(self.workdir, "zoo.cfg")
        if self.tls:
            listen = [
                "secureClientPort=%d" % self.port,
                "secureClientPortAddress=127.0.0.1",
                "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
                "ssl.keyStore.location=%s" % self.tls.server_pem,
                "ssl.keyStore.type=PEM",
                "ssl.trustStore.location=%s" % self.tls.ca,
                "ssl.trustStore.type=PEM",
                "ssl.clientAuth=need",
            ]
        else:
            listen = ["clientPort=%d" % self.port, "clientPortAddress=127.0.0.1"]
        with open(cfg, "w") as f:
            f.write("\n".join([
                "tickTime=500",
                "initLimit=10",
                "syncLimit=5",
                "dataDir=%s" % datadir,
            ] + listen + [
                "admin.enableServer=false",
                "4lw.commands.whitelist=ruok,stat,srvr,mntr,cons",
                # Tests expire sessions on purpose; let them be short.
                "minSessionTimeout=1000",
                "maxSessionTimeout=60000",
                "maxClientCnxns=0",
                "",
            ]))
        self.log = open(os.path.join(self.workdir, "zookeeper.log"), "w")
        tls_flags = ["-Dzookeeper.authProvider.x509="
                     "org.apache.zookeeper.server.auth.X509AuthenticationProvider"] if self.tls else []
        self.proc = subprocess.Popen(
            ["java", "-Xmx256m", "-XX:+UseSerialGC", "-Dzookeeper.jmx.log4j.disable=true"] + tls_flags +
            ["-cp", ZK_CLASSPATH, "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("ZooKeeper exited with %s; see %s/zookeeper.log"
                                   % (self.proc.returncode, self.workdir))
            try:
                # ruok answers before the server serves; srvr says when it does.
                if "Mode: standalone" in four_letter(self.port, "srvr", tls=self.tls):
                    return self
            except OSError:  # ssl.SSLError is one
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
