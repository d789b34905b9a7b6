"""clouds.yaml `cacert` and `verify` against an HTTPS Keystone: a TLS proxy
(python's ssl, certificate from a throw-away CA made with openssl) in front of
the loopback cloud's Keystone. The driver (through ostool) authenticates over
TLS with the CA given by `cacert`, refuses the unknown CA without it, and
skips verification with `verify: false`."""
import json
import os
import socket
import ssl
import subprocess
import threading

import pytest

from harness import program
from openstack_fixture import openstack  # noqa: F401 - session fixture


def make_ca(d):
    """A CA and a server certificate for 127.0.0.1 signed by it; returns (ca.pem, cert, key)."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=poold test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "srv.pem", "-days", "2", "-extfile", "ext.cnf")
    return [os.path.join(d, n) for n in ("ca.pem", "srv.pem", "srv.key")]


class TlsProxy:
    """TLS on 127.0.0.1:<port> -> plain TCP to 127.0.0.1:<target>, a thread per connection."""

    def __init__(self, target_port, cert, key):
        self.target = target_port
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.handshakes_failed = 0
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _serve(self, c):
        try:
            t = self.ctx.wrap_socket(c, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshakes_failed += 1
            c.close()
            return
        u = socket.create_connection(("127.0.0.1", self.target))
        th = threading.Thread(target=self._pipe, args=(u, t), daemon=True)
        th.start()
        self._pipe(t, u)
        th.join(30)
        t.close()
        u.close()

    def stop(self):
        self.stopped = True
        self.sock.close()


@pytest.fixture
def tls(openstack, tmp_path):  # noqa: F811
    ca, cert, key = make_ca(str(tmp_path))
    proxy = TlsProxy(openstack.env["ports"]["keystone"], cert, key)
    yield openstack, proxy, ca
    proxy.stop()


def clouds_yaml(cloud, proxy, tmp_path, **extra):
    with open(cloud.clouds_yaml) as f:
        cfg = json.load(f)
    c = cfg["clouds"]["poold"]
    c["auth"]["auth_url"] = "https://127.0.0.1:%d/v3" % proxy.port
    c.update(extra)
    path = tmp_path / ("clouds-%d.yaml" % len(os.listdir(str(tmp_path))))
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f)
    return str(path)


def quota(path):
    e = dict(os.environ, OS_CLIENT_CONFIG_FILE=path)
    return subprocess.run([program("ostool"), "--provider", "os-tls", "quota"], env=e, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120)


def test_https_keystone_with_cacert_works_and_unknown_ca_is_refused_unless_verify_false(tls, tmp_path):
    cloud, proxy, ca = tls
    r = quota(clouds_yaml(cloud, proxy, tmp_path, cacert=ca))
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(r.stdout)["instances"] >= 1
    assert proxy.handshakes_failed == 0

    # The system CAs do not know this CA: a TLS error naming the URL, nothing sent.
    r = quota(clouds_yaml(cloud, proxy, tmp_path))
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "https://127.0.0.1:%d" % proxy.port in err and "certificate" in err and "poold-pass" not in err
    assert proxy.handshakes_failed >= 1

    r = quota(clouds_yaml(cloud, proxy, tmp_path, verify=False))
    assert r.returncode == 0, r.stderr.decode()
