"""The web app under floods of partial requests (issue 13, poold/webapp_conns.c):
connections that send a request without its final blank line must not keep
/health (a liveness probe) unanswered, whether they hang up after a while or
never; poold lets go of their sockets soon after; a client trickling its
request byte by byte is cut off; ordinary keep-alive clients are unaffected."""
import http.client
import os
import resource
import socket
import threading
import time

import pytest

from launcher_fixture import launcher  # noqa: F401  (fixture)
from test_webapp import start

FLOOD = 2000          # connections, many times the web app's connection limit (256)
PROBE_EVERY_S = 0.5
PROBE_AFTER_S = 6.0   # probing goes on this long after the flood ended
PROBE_MAX_S = 3.0     # the longest /health may take, during and after a flood
HEADER_TIMEOUT_S = 10  # webapp_conns.c: a request must be whole this long after the accept


def sockets_of(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def probe_health(port, stop, results):
    """GET /health every PROBE_EVERY_S until STOP; RESULTS gets (sent at, seconds or None, status or error)."""
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=240)
            c.request("GET", "/health")
            r = c.getresponse()
            r.read()
            c.close()
            results.append((t0, time.monotonic() - t0, r.status))
        except OSError as e:
            results.append((t0, None, repr(e)))
        stop.wait(max(0.0, PROBE_EVERY_S - (time.monotonic() - t0)))


def flood(port, hold_s):
    """FLOOD connections with a partial request each, held HOLD_S, then closed."""
    socks = []
    try:
        for i in range(FLOOD):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(("127.0.0.1", port))  # completes in the listen backlog, accepted or not
            s.sendall(b"GET /node-list?x=%d HTTP/1.1\r\nHost: flood\r\nUser-Agent: slow\r\n" % i)
            socks.append(s)
        time.sleep(hold_s)
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("hold_s", [3.0, 12.0], ids=["clients-hang-up-after-3s", "clients-hold-12s"])
def test_partial_request_flood_leaves_health_answering_and_sockets_reaped(launcher, hold_s):
    """2,000 partial requests (held 3 s as in the issue, or longer than the header deadline): /health
    answers within PROBE_MAX_S throughout and after, and poold's socket count returns to what it was."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < FLOOD + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, FLOOD + 1000), hard))
    web = start(launcher)
    pid = launcher.proc.pid
    assert web.get("/health")[0] == 200
    baseline = sockets_of(pid)

    stop = threading.Event()
    results = []
    prober = threading.Thread(target=probe_health, args=(web.port, stop, results))
    t_start = time.monotonic()
    prober.start()
    try:
        flood(web.port, hold_s)
        t_closed = time.monotonic()
        time.sleep(PROBE_AFTER_S)
    finally:
        stop.set()
        prober.join(250)
    assert not prober.is_alive(), "a /health probe did not come back within 240 s"

    summary = ["%+.1fs: %s %s" % (t0 - t_start, "%.2fs" % s if s is not None else "-", st) for t0, s, st in results]
    print("\nflood: %d connections held %.1fs, closed at %+.1fs; /health probes (sent at: took):\n  %s"
          % (FLOOD, hold_s, t_closed - t_start, "\n  ".join(summary)))
    assert all(st == 200 for _, _, st in results), summary
    worst = max(s for _, s, _ in results)
    assert worst < PROBE_MAX_S, "/health took %.1fs during the flood:\n%s" % (worst, "\n".join(summary))
    # Probes were sent all along: during the flood and after it (not one long probe covering it all).
    assert sum(1 for t0, _, _ in results if t0 < t_closed) >= (t_closed - t_start) / PROBE_EVERY_S / 2, summary
    assert sum(1 for t0, _, _ in results if t0 > t_closed) >= PROBE_AFTER_S / PROBE_EVERY_S / 2, summary

    # The peers are gone: so are poold's sockets for them.
    deadline = time.monotonic() + 3
    while sockets_of(pid) > baseline + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sockets_of(pid) <= baseline + 2, "poold holds %d sockets, %d before the flood" % (sockets_of(pid), baseline)
    assert web.get("/health")[0] == 200
    assert launcher.proc.poll() is None


def test_request_trickled_byte_by_byte_is_cut_off_at_the_header_deadline(launcher):
    """MHD's own timeout is an idle one: a byte a second would hold a slot forever. poold closes a
    connection whose request is not whole HEADER_TIMEOUT_S after the accept; a keep-alive client that
    sends requests with pauses between them is not affected."""
    web = start(launcher)
    slow = socket.create_connection(("127.0.0.1", web.port), timeout=5)
    keep = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    t0 = time.monotonic()
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 100
    closed_at = keep_sock = None
    for i, byte in enumerate(request):
        try:
            slow.send(bytes([byte]))
        except OSError:
            closed_at = time.monotonic() - t0
            break
        # A request on the keep-alive connection every 2 s, well within the deadline each time.
        if i % 4 == 0:
            keep.request("GET", "/health")
            r = keep.getresponse()
            assert r.status == 200 and r.read() == b"OK\n"
            keep_sock = keep_sock or keep.sock
            assert keep.sock is keep_sock, "the keep-alive connection was closed"
        slow.settimeout(0.5)
        try:
            if slow.recv(100) == b"":
                closed_at = time.monotonic() - t0
                break
        except socket.timeout:
            pass
        except OSError:
            closed_at = time.monotonic() - t0
            break
    slow.close()
    assert closed_at is not None, "a request trickled over %.0fs was never cut off" % (time.monotonic() - t0)
    assert HEADER_TIMEOUT_S - 1 <= closed_at <= HEADER_TIMEOUT_S + 3, closed_at
    # The keep-alive connection has lived past the deadline (its clock restarts with each request).
    assert time.monotonic() - t0 > HEADER_TIMEOUT_S
    keep.request("GET", "/health")
    assert keep.getresponse().status == 200 and keep.sock is keep_sock
    keep.close()
