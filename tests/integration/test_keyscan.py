"""keyscan (nodescan) against a real OpenSSH sshd and fake servers, through tests/tools/keyscantool."""
import os
import re
import socket
import subprocess
import threading
import time

import pytest

from harness import free_port, program
from sshd import SshServer


def scan(port, timeout_ms=2000, ctype="ssh", cancel_ms=None, host="127.0.0.1"):
    """Run keyscantool; returns (exit code, status errno name, msg, keys, elapsed_ms, stderr)."""
    cmd = [program("keyscantool"), "-T", str(timeout_ms), "-t", ctype]
    if cancel_ms:
        cmd += ["-c", str(cancel_ms)]
    cmd += [host, str(port)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert "Sanitizer" not in p.stderr, p.stderr
    fields = {}
    keys = []
    for line in p.stdout.splitlines():
        if line.startswith("key="):
            keys.append(line[4:])
        elif "=" in line:
            k, v = line.split("=", 1)
            fields[k] = v
        else:
            fields[line] = True
    status = fields.get("status", "").split(" ")[-1]
    return p.returncode, status, fields.get("msg", ""), keys, int(fields.get("elapsed_ms", -1)), p.stderr


class FakeServer:
    """A TCP listener on 127.0.0.1 that does `behaviour(conn)` with every connection."""

    def __init__(self, behaviour):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.behaviour = behaviour
        self.accepted = 0
        self.stopping = threading.Event()
        self.conns = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)
            try:
                self.behaviour(conn)
            except OSError:
                pass

    def close(self):
        self.stopping.set()
        self.thread.join()
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def sshd():
    server = SshServer().start()
    yield server
    server.cleanup()


def test_keys_equal_the_servers_host_public_keys_in_stable_order(sshd):
    rc, status, msg, keys, elapsed, _ = scan(sshd.port, timeout_ms=5000)
    assert (rc, status) == (0, "OK"), msg
    expected = sshd.host_keys()   # ed25519, ecdsa, rsa: the documented order
    assert keys == expected
    assert [k.split()[0] for k in keys] == ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"]


def test_closed_port_times_out_after_retrying_within_the_timeout():
    port = free_port()
    rc, status, msg, keys, elapsed, _ = scan(port, timeout_ms=2000)
    assert (rc, status) == (1, "ETIMEDOUT")
    assert keys == []
    assert 1900 <= elapsed <= 3500, elapsed
    # Retried about once a second: 2 attempts in 2 s, or 3 when the third
    # falls just inside the deadline; the last refused.
    m = re.search(r"(\d+) attempt\(s\)", msg)
    assert m and int(m.group(1)) in (2, 3) and "refused" in msg, msg


def test_port_that_opens_late_is_found():
    server = SshServer()
    try:
        starter = threading.Timer(1.5, server.start)
        starter.start()
        rc, status, msg, keys, elapsed, _ = scan(server.port, timeout_ms=10000)
        starter.join()
        assert (rc, status) == (0, "OK"), msg
        assert keys == server.host_keys()
        assert elapsed >= 1400, elapsed
    finally:
        server.cleanup()


def test_non_ssh_listener_gives_eproto_before_the_timeout():
    def http(conn):
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        conn.close()
    srv = FakeServer(http)
    try:
        rc, status, msg, keys, elapsed, _ = scan(srv.port, timeout_ms=5000)
        assert (rc, status) == (1, "EPROTO"), msg
        assert elapsed < 2500, elapsed
    finally:
        srv.close()


def test_non_ssh_listener_that_stays_silent_after_a_line_gives_eproto_at_the_deadline():
    srv = FakeServer(lambda conn: conn.sendall(b"220 smtp.example ESMTP\r\n"))
    try:
        rc, status, msg, keys, elapsed, _ = scan(srv.port, timeout_ms=1500)
        assert (rc, status) == (1, "EPROTO"), msg
        assert "220 smtp" in msg
    finally:
        srv.close()


def test_connection_closed_without_a_byte_is_retried_like_a_refusal():
    """A slirp port forward accepts and closes while the guest boots: not a protocol error."""
    srv = FakeServer(lambda conn: conn.close())
    try:
        rc, status, msg, keys, elapsed, _ = scan(srv.port, timeout_ms=2000)
        assert (rc, status) == (1, "ETIMEDOUT"), msg
        assert srv.accepted >= 2
    finally:
        srv.close()


def test_silent_listener_times_out_waiting_for_the_banner():
    srv = FakeServer(lambda conn: None)
    try:
        rc, status, msg, keys, elapsed, _ = scan(srv.port, timeout_ms=1500)
        assert (rc, status) == (1, "ETIMEDOUT"), msg
        assert "banner" in msg
        assert elapsed < 3000
    finally:
        srv.close()


def test_banner_without_host_keys_is_a_failure_and_keyscan_is_bounded():
    """A fake SSH server that sends a banner and nothing else: zero keys -> EPROTO, never a hang."""
    srv = FakeServer(lambda conn: conn.sendall(b"SSH-2.0-Fake_1.0\r\n"))
    try:
        rc, status, msg, keys, elapsed, _ = scan(srv.port, timeout_ms=1000)
        assert rc == 1 and status in ("EPROTO", "ETIMEDOUT"), msg
        assert keys == []
        # ssh-keyscan got -T3 (the minimum) and a kill 2 s later at worst.
        assert elapsed < 7000, elapsed
    finally:
        srv.close()


def test_cancel_during_key_collection_kills_ssh_keyscan():
    srv = FakeServer(lambda conn: conn.sendall(b"SSH-2.0-Fake_1.0\r\n"))
    try:
        rc, status, msg, keys, elapsed, stderr = scan(srv.port, timeout_ms=1000, cancel_ms=800)
        assert rc == 3, (status, msg, stderr)
        left = subprocess.run(["pgrep", "-f", "ssh-keyscan .*-p%d " % srv.port], capture_output=True)
        assert left.returncode == 1, left.stdout
    finally:
        srv.close()


def test_winrm_connection_type_only_checks_the_port(sshd):
    rc, status, msg, keys, elapsed, _ = scan(sshd.port, timeout_ms=3000, ctype="winrm")
    assert (rc, status) == (0, "OK"), msg
    assert keys == []
    # A non-SSH listener is fine for a port check.
    srv = FakeServer(lambda conn: conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n"))
    try:
        rc, status, msg, keys, _, _ = scan(srv.port, timeout_ms=3000, ctype="winrm")
        assert (rc, status) == (0, "OK") and keys == []
    finally:
        srv.close()
    rc, status, msg, keys, _, _ = scan(free_port(), timeout_ms=1200, ctype="winrm")
    assert (rc, status) == (1, "ETIMEDOUT")


def test_host_name_is_resolved_and_each_address_tried(sshd):
    """"localhost" goes through getaddrinfo_a; if it gives ::1 first (no sshd there), 127.0.0.1 is tried next."""
    rc, status, msg, keys, _, _ = scan(sshd.port, timeout_ms=5000, host="localhost")
    assert (rc, status) == (0, "OK"), msg
    assert keys == sshd.host_keys()


def test_unresolvable_name_fails_fast():
    rc, status, msg, keys, elapsed, _ = scan(22, timeout_ms=5000, host="no-such-host.invalid")
    assert rc == 1 and status != "OK"
    assert "resolving" in msg
