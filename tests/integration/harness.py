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
