"""The web app's long listings (nodes, requests) are made from pre-rendered
rows, formatted off the launcher's loop (poold/webapp.c DESIGN): the output is
byte-identical to poolctl's, a changed record re-renders its row only, and
suspended connections never hang or crash the daemon (many at once, clients
that go away, a stop while listings are being made)."""
import http.client
import json
import re
import socket
import subprocess
import threading
import time

from harness import program
from launcher_fixture import launcher  # noqa: F401  (fixture)
from test_webapp import Web, node_record, start

AGE = re.compile(r"\d\d:\d\d:\d\d:\d\d")


def put_nodes(kz, first, count, **over):
    kz.ensure_path("/nodepool/nodes")
    for base in range(first, first + count, 200):
        tx = kz.transaction()
        for i in range(base, min(base + 200, first + count)):
            tx.create("/nodepool/nodes/%010d" % i, json.dumps(node_record(hostname="np%d" % i, **over)).encode())
        for r in tx.commit():
            assert not isinstance(r, Exception), r


def poolctl_text(launcher, args):
    r = subprocess.run([program("poolctl"), "-c", launcher.config_path] + args, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def metric(web, name, labels=""):
    _, _, text = web.get("/metrics")
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


def wait_listing(web, path, pred, timeout=15):
    deadline = time.time() + timeout
    while True:
        rows = web.json(path)
        if pred(rows) or time.time() > deadline:
            return rows
        time.sleep(0.2)


def test_node_and_request_text_is_byte_identical_to_poolctl(launcher):
    kz = launcher.kazoo
    put_nodes(kz, 1, 40)
    # Non-ASCII, wide and multi-line cells go through the general row path.
    kz.create("/nodepool/nodes/0000000900", json.dumps(node_record(
        comment="two\nlines ü 日本", hold_job="job", state="hold")).encode())
    kz.create("/nodepool/requests/100-0000000001", json.dumps({
        "state": "fulfilled", "state_time": time.time(), "declined_by": [], "node_types": ["debian"],
        "nodes": ["0000000001"], "reuse": True, "requestor": "zuul ü", "requestor_data": None, "provider": None,
        "relative_priority": 0, "event_id": "e", "created_time": time.time(), "tenant_name": "t"}).encode(),
        makepath=True)
    web = start(launcher)
    wait_listing(web, "/node-list.json", lambda rows: len(rows) == 41)
    for path, args in (("/node-list", ["list", "--detail"]), ("/request-list", ["request-list"])):
        for attempt in range(3):
            status, _, body = web.get(path)
            want = poolctl_text(launcher, args)
            # Ages tick between the two reads; everything else must be the same bytes.
            if AGE.sub("AGE", body) == AGE.sub("AGE", want):
                break
            time.sleep(1.1)
        assert status == 200
        assert AGE.sub("AGE", body) == AGE.sub("AGE", want), (path, body, want)
    assert "| two" in body or "two" in web.get("/node-list")[2]


def test_a_changed_record_rerenders_only_its_row_and_shows_at_once(launcher):
    """rows_built counts row renders: a second listing after one change costs one row, not all of them."""
    kz = launcher.kazoo
    put_nodes(kz, 1, 50)
    web = start(launcher)
    rows = wait_listing(web, "/node-list.json", lambda rows: len(rows) == 50)
    built = metric(web, "poold_webapp_rows_built", '{list="node-list"}')
    assert built is not None and built >= 50
    time.sleep(1.1)  # past the answer cache
    web.json("/node-list.json")
    assert metric(web, "poold_webapp_rows_built", '{list="node-list"}') == built  # nothing changed: no render

    rec = node_record(hostname="np7", state="hold", comment="changed")
    kz.set("/nodepool/nodes/0000000007", json.dumps(rec).encode())
    kz.delete("/nodepool/nodes/0000000008")
    put_nodes(kz, 60, 1)
    rows = wait_listing(web, "/node-list.json",
                        lambda rows: any(r["id"] == "0000000007" and r["comment"] == "changed" for r in rows)
                        and "0000000008" not in {r["id"] for r in rows}
                        and "0000000060" in {r["id"] for r in rows})
    by_id = {r["id"]: r for r in rows}
    assert by_id["0000000007"]["state"] == "hold" and "0000000008" not in by_id and "0000000060" in by_id
    assert [r["id"] for r in rows] == sorted(by_id)
    # One changed and one new node: two renders (a poll may have caught them one at a time).
    assert metric(web, "poold_webapp_rows_built", '{list="node-list"}') == built + 2


def test_lock_changes_rerender_the_locked_column(launcher):
    from kazoo.recipe.lock import Lock
    kz = launcher.kazoo
    put_nodes(kz, 1, 3)
    web = start(launcher)
    wait_listing(web, "/node-list.json", lambda rows: len(rows) == 3)
    lock = Lock(kz, "/nodepool/nodes/0000000002/lock")
    assert lock.acquire(timeout=5)
    rows = wait_listing(web, "/node-list.json",
                        lambda rows: {r["id"]: r["locked"] for r in rows}.get("0000000002") == "locked")
    assert {r["id"]: r["locked"] for r in rows} == {"0000000001": "unlocked", "0000000002": "locked",
                                                     "0000000003": "unlocked"}
    lock.release()
    rows = wait_listing(web, "/node-list.json",
                        lambda rows: {r["id"]: r["locked"] for r in rows}.get("0000000002") == "unlocked")
    assert all(r["locked"] == "unlocked" for r in rows)


def test_many_distinct_listings_at_once_all_answer_or_get_503(launcher):
    """More distinct URLs than jobs allowed in flight: each gets 200 (or 503 with Retry-After), none hangs."""
    put_nodes(launcher.kazoo, 1, 300)
    web = start(launcher)
    wait_listing(web, "/node-list.json", lambda rows: len(rows) == 300)
    results = []

    def one(i):
        c = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
        path = "/node-list%s?fields=id,state,x%d" % (".json" if i % 2 else "", i)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        results.append((r.status, r.getheader("Retry-After"), path, body))
        c.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 60
    for status, retry, path, body in results:
        assert status in (200, 503), (status, path)
        if status == 503:
            assert retry == "1"
        elif path.startswith("/node-list.json"):
            assert len(json.loads(body)) == 300
        else:
            assert body.count(b"\n") == 300 + 4 and body.startswith(b"+------------+")
    assert sum(1 for r in results if r[0] == 200) >= 16
    assert web.get("/health")[0] == 200


def test_clients_that_leave_while_their_listing_is_made_do_not_hurt(launcher):
    put_nodes(launcher.kazoo, 1, 500)
    web = start(launcher)
    for i in range(30):
        s = socket.create_connection(("127.0.0.1", web.port), timeout=5)
        s.sendall(b"GET /node-list?fields=id,gone%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
        s.close()  # before the answer: the suspended connection's context must be dropped cleanly
    # Their jobs still finish (MHD cannot see a suspended connection go): a moment of 503, then answers.
    deadline = time.time() + 15
    while True:
        status, hdrs, body = web.get("/node-list.json")
        if status == 200 or time.time() > deadline:
            break
        assert status == 503 and hdrs["Retry-After"] == "1"
        time.sleep(0.1)
    assert status == 200 and len(json.loads(body)) == 500
    assert web.get("/health")[0] == 200


def test_stop_while_listings_are_being_made_exits_cleanly(launcher):
    """SIGTERM with connections suspended (rows refreshing or formatting): no MHD abort, no leak, exit 0."""
    put_nodes(launcher.kazoo, 1, 2000)
    web = start(launcher)
    socks = []
    for i in range(8):
        s = socket.create_connection(("127.0.0.1", web.port), timeout=5)
        s.sendall(b"GET /node-list%s?fields=id,stop%d HTTP/1.1\r\nHost: x\r\n\r\n" % (b".json" if i % 2 else b"", i))
        socks.append(s)
    time.sleep(0.05)
    assert launcher.stop() == 0, launcher.log_text()[-4000:]
    for s in socks:
        s.settimeout(5)
        try:
            reply = s.recv(100)
        except (ConnectionResetError, socket.timeout):
            reply = b""
        s.close()
        assert reply == b"" or re.match(rb"HTTP/1\.1 (200|503)", reply), reply
    assert "ERROR: AddressSanitizer" not in launcher.log_text()
