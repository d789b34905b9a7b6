"""A statsd listener on a loopback UDP port, for tests of the daemons' metrics."""
import re
import socket
import time

LINE = re.compile(r"^([A-Za-z0-9_.\-]+):(-?[0-9.]+)\|(g|c|ms)$")


class Listener:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # Tests read the socket only when they look: a receive buffer of several
        # megabytes (root may exceed rmem_max) keeps minutes of metrics.
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 8 << 20)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.datagrams = []

    def env(self, **extra):
        e = {"STATSD_HOST": "127.0.0.1", "STATSD_PORT": str(self.port)}
        e.update(extra)
        return e

    def drain(self):
        while True:
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                return
            self.datagrams.append(d)

    def lines(self):
        self.drain()
        out = []
        for d in self.datagrams:
            assert len(d) <= 512, "datagram above python-statsd's 512 bytes: %d" % len(d)
            for l in d.decode().split("\n"):
                assert LINE.match(l), l
                out.append(l)
        return out

    def wait(self, pred, timeout=15, what="lines"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            ls = self.lines()
            if pred(ls):
                return ls
        raise AssertionError("timed out waiting for %s; got:\n%s" % (what, "\n".join(self.lines())))

    def close(self):
        self.sock.close()


def has(lines, name, kind, value=None):
    for l in lines:
        m = LINE.match(l)
        if m.group(1) == name and m.group(3) == kind and (value is None or float(m.group(2)) == value):
            return True
    return False
