"""poold's web app (protocol.md §3.2): every listing with Nodepool's columns
and JSON keys (checked against poolctl, which reads ZooKeeper itself), format
negotiation, headers, /ready, /health, /metrics, and hostile requests."""
import http.client
import json
import os
import re
import socket
import subprocess
import time
import urllib.request

import pytest
from kazoo.recipe.lock import Lock

from harness import ZooKeeperServer, free_port, program
from launcher_fixture import IMAGE, LABEL, PROVIDER, LauncherProcess, launcher  # noqa: F401  (fixture)
from zuul_client import ZuulClient

NODE_KEYS = ["id", "provider", "label", "server_id", "public_ipv4", "ipv6", "state", "age", "locked", "pool",
             "hostname", "private_ipv4", "AZ", "username", "connection_port", "launcher", "allocated_to",
             "hold_job", "comment", "user_data", "driver_data"]
NODE_HEADER = ["ID", "Provider", "Label", "Server ID", "Public IPv4", "IPv6", "State", "Age", "Locked", "Pool",
               "Hostname", "Private IPv4", "AZ", "Username", "Port", "Launcher", "Allocated To", "Hold Job",
               "Comment", "User Data", "Driver Data"]
COLUMNS = {
    "node-list": NODE_KEYS,
    "request-list": ["id", "relative_priority", "state", "requestor", "node_types", "nodes", "declined_by",
                     "event_id"],
    "image-list": ["id", "upload_id", "provider", "image", "external_name", "external_id", "state", "age"],
    "dib-image-list": ["id", "image", "builder", "formats", "state", "age"],
    "image-status": ["image", "paused", "build_request", "build_request_age"],
    "label-list": ["label"],
}
HEADERS = {
    "request-list": ["Request ID", "Priority", "State", "Requestor", "Node Types", "Nodes", "Declined By",
                     "Event ID"],
    "image-list": ["Build ID", "Upload ID", "Provider", "Image", "Provider Image Name", "Provider Image ID",
                   "State", "Age"],
    "dib-image-list": ["ID", "Image", "Builder", "Formats", "State", "Age"],
    "image-status": ["Image", "Paused", "Build Request", "Build Request Age"],
    "label-list": ["Label"],
    "node-list": NODE_HEADER,
}
# poolctl subcommand for each listing it also has (label-list is web-only, as in Nodepool).
POOLCTL = {"node-list": ["list", "--detail"], "request-list": ["request-list"], "image-list": ["image-list"],
           "dib-image-list": ["dib-image-list"], "image-status": ["image-status"]}


def node_record(**over):
    now = time.time()
    rec = {"state": "ready", "state_time": now - 3725, "cloud": "elsewhere", "provider": "elsewhere",
           "pool": "p1", "type": ["debian"], "allocated_to": None, "az": "nova", "region": None,
           "public_ipv4": "192.0.2.10", "private_ipv4": "10.0.0.10", "public_ipv6": "2001:db8::10",
           "host_id": None, "interface_ip": "192.0.2.10", "connection_type": "ssh", "connection_port": 22022,
           "ssh_port": 22022, "shell_type": None, "python_path": None, "username": "zuul",
           "image_id": "debian", "launcher": "other-PoolWorker.elsewhere-p1-abc", "created_time": now - 4000,
           "external_id": "srv-1", "hostname": "np1", "comment": None, "user_data": None, "hold_job": None,
           "hold_expiration": None, "host_keys": [], "resources": {"cores": 1, "instances": 1, "ram": 1024},
           "slot": None, "attributes": None, "tenant_name": None, "requestor": None, "driver_data": None}
    rec.update(over)
    return rec


def populate(kz):
    """Records another launcher and a builder would have written; none of them is ours to act on."""
    kz.create("/nodepool/nodes/0000000101", json.dumps(node_record()).encode(), makepath=True)
    kz.create("/nodepool/nodes/0000000102", json.dumps(node_record(
        state="hold", type=["debian", "big"], public_ipv6=None, hold_job="t p job .*", comment="debug <b>me</b>",
        user_data={"zuul_system": "abc"}, driver_data={"k": 1}, external_id={"region": "r1", "id": "x"})).encode())
    kz.create("/nodepool/nodes/0000000103", json.dumps(node_record(state="in-use", allocated_to="200-0000000009")
                                                       ).encode())
    lock = Lock(kz, "/nodepool/nodes/0000000103/lock")
    assert lock.acquire(timeout=5)
    now = time.time()
    for rid, st in (("100-0000000001", "fulfilled"), ("200-0000000002", "failed")):
        kz.create("/nodepool/requests/" + rid, json.dumps({
            "state": st, "state_time": now, "declined_by": ["x-PoolWorker.a-b-c"], "node_types": ["debian", "big"],
            "nodes": ["0000000101"] if st == "fulfilled" else [], "reuse": True, "requestor": "zuul-sys",
            "requestor_data": None, "provider": None, "relative_priority": 3, "event_id": "ev-" + rid,
            "created_time": now, "tenant_name": "t"}).encode(), makepath=True)
    build = "/nodepool/images/centos/builds/" + "a" * 32
    kz.create(build, json.dumps({"state": "ready", "state_time": now - 100, "builder": "b1",
                                 "formats": "qcow2,raw"}).encode(), makepath=True)
    kz.create(build + "/providers/elsewhere/images/0000000001", json.dumps({
        "state": "ready", "state_time": now - 50, "external_id": "img-1", "external_name": "centos-123",
        "format": "qcow2", "username": "zuul"}).encode(), makepath=True)
    kz.create("/nodepool/images/centos/pause", b"")
    kz.create("/nodepool/images/arch/request-build", b"", makepath=True)
    return lock


class Web:
    def __init__(self, port):
        self.port = port

    def get(self, path, headers=None, method="GET"):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, dict(r.getheaders()), body.decode("utf-8", "replace")

    def json(self, path):
        status, _, body = self.get(path, {"Accept": "application/json"})
        assert status == 200, (path, status, body)
        return json.loads(body)

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.get("/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("/ready never answered 200")


def start(launcher, env=None, **cfg_over):
    port = free_port()
    cfg = launcher.config(**cfg_over)
    cfg["webapp"] = {"port": port, "listen_address": "127.0.0.1"}
    launcher.write_config(cfg)
    launcher.images()
    launcher.start(env=env)
    web = Web(port)
    web.wait_ready()
    return web


def table_rows(text):
    lines = text.splitlines()
    assert re.fullmatch(r"(\+-+)+\+", lines[0]), text
    cells = lambda l: [c.strip() for c in l.split("|")[1:-1]]
    return cells(lines[1]), [cells(l) for l in lines[3:-1]]


def poolctl_json(launcher, args):
    r = subprocess.run([program("poolctl"), "-c", launcher.config_path, "--json"] + args, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_every_listing_has_nodepools_columns_and_matches_poolctl(launcher):
    lock = populate(launcher.kazoo)
    web = start(launcher)
    # The pool component is registered once /ready says so; label-list comes from it.
    for name, keys in COLUMNS.items():
        rows = web.json("/%s.json" % name)
        assert rows, name
        for row in rows:
            assert list(row.keys()) == keys, (name, row)
        status, hdrs, text = web.get("/" + name)
        assert status == 200 and hdrs["Content-Type"].startswith("text/plain"), (name, status)
        header, trows = table_rows(text)
        assert header == HEADERS[name], name
        assert len(trows) == len(rows), name
        if name in POOLCTL:
            assert rows == poolctl_json(launcher, POOLCTL[name]), name
    nodes = {n["id"]: n for n in web.json("/node-list.json")}
    assert {"0000000101", "0000000102", "0000000103"} <= set(nodes)
    assert nodes["0000000103"]["locked"] == "locked" and nodes["0000000101"]["locked"] == "unlocked"
    assert nodes["0000000102"]["label"] == ["debian", "big"] and nodes["0000000102"]["comment"] == "debug <b>me</b>"
    assert nodes["0000000102"]["server_id"] == {"region": "r1", "id": "x"}
    assert isinstance(nodes["0000000101"]["age"], float)
    status_rows = {r["image"]: r for r in web.json("/image-status.json")}
    assert status_rows["centos"]["paused"] is True and status_rows["arch"]["build_request"] == "pending"
    assert [r["state"] for r in web.json("/dib-image-list.json") if r["image"] == "centos"] == ["paused"]
    assert web.json("/label-list.json") == [{"label": LABEL}]
    lock.release()


def test_node_list_filter_fields_and_format_negotiation(launcher):
    populate(launcher.kazoo).release()
    web = start(launcher)
    assert [n["id"] for n in web.json("/node-list.json?node_id=0000000102")] == ["0000000102"]
    assert web.json("/node-list.json?node_id=9999999999") == []
    # ?fields= filters the text table only, as in Nodepool.
    status, _, text = web.get("/node-list?fields=id,state&node_id=0000000101")
    header, rows = table_rows(text)
    assert header == ["ID", "State"] and rows == [["0000000101", "ready"]]
    assert list(web.json("/node-list.json?fields=id&node_id=0000000101")[0]) == NODE_KEYS
    # Accept: JSON only when application/json is strictly preferred (webob best_match).
    for accept, is_json in [("application/json", True), ("text/plain", False), (None, False), ("*/*", False),
                            ("text/html;q=0.5, application/json", True), ("application/json;q=0.1, */*", False),
                            ("garbage;;q=x,,", False)]:
        status, hdrs, body = web.get("/label-list", {"Accept": accept} if accept else {})
        assert status == 200
        assert hdrs["Content-Type"].startswith("application/json" if is_json else "text/plain"), accept
        assert body.startswith("[") == is_json, (accept, body)


def test_headers_cors_cache_and_conditional_get(launcher):
    web = start(launcher)
    status, hdrs, _ = web.get("/node-list")
    assert status == 200
    assert hdrs["Access-Control-Allow-Origin"] == "*"
    assert hdrs["Cache-Control"] == "public, max-age=1"
    assert "Last-Modified" in hdrs and "Expires" in hdrs
    status, hdrs2, body = web.get("/node-list", {"If-Modified-Since": hdrs["Last-Modified"]})
    assert status == 304 and body == ""
    status, _, _ = web.get("/node-list", {"If-Modified-Since": "Thu, 01 Jan 1998 00:00:00 GMT"})
    assert status == 200
    status, hdrs, body = web.get("/node-list", method="HEAD")
    assert status == 200 and body == ""


def test_bad_requests_get_4xx_and_the_daemon_survives(launcher):
    web = start(launcher)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, hdrs, _ = web.get("/node-list", method=method)
        assert status == 405 and "GET" in hdrs.get("Allow", ""), method
    assert web.get("/nope")[0] == 404
    assert web.get("/node-list.json/../../etc/passwd")[0] == 404
    assert web.get("/node-list?node_id=" + "9" * 1000)[0] == 400
    status = web.get("/" + "a" * 100000)[0]
    assert 400 <= status < 500, status
    status = web.get("/health", {"X-Big": "b" * 100000})[0]
    assert 400 <= status < 500, status
    # A POST with a body: refused without reading it.
    c = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    c.request("POST", "/node-list", body=b"x" * 200000, headers={"Content-Type": "application/octet-stream"})
    assert c.getresponse().status == 405
    c.close()
    # Raw garbage, a truncated request line, binary bytes, a half-open connection.
    for raw in (b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\x00\xff\xfe" * 1000 + b"\r\n\r\n", b"GET /"):
        s = socket.create_connection(("127.0.0.1", web.port), timeout=5)
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        try:
            reply = s.recv(200)
        except (ConnectionResetError, socket.timeout):
            reply = b""
        s.close()
        assert reply == b"" or re.match(rb"HTTP/1\.[01] [45]\d\d", reply), (raw[:20], reply)
    assert web.get("/health")[:1] == (200,)
    assert launcher.proc.poll() is None


def wait_metric(web, pattern, timeout=10):
    deadline = time.time() + timeout
    while True:
        status, hdrs, text = web.get("/metrics")
        if re.search(pattern, text, re.M) or time.time() > deadline:
            return status, hdrs, text
        time.sleep(0.3)


def test_health_and_metrics_after_a_launch(launcher):
    web = start(launcher)
    assert web.get("/health")[0] == 200
    zc = ZuulClient(launcher.kazoo, system_id="zuul.example:sys")
    req_id = zc.submit([LABEL])
    assert zc.wait(req_id, timeout=30)["state"] == "fulfilled"
    # The node cache sees the ready node a moment after the request is fulfilled.
    status, hdrs, text = wait_metric(web, r'^poold_nodes\{state="ready",provider="%s",label="%s"\} 1$'
                                     % (PROVIDER, LABEL))
    assert status == 200 and hdrs["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE poold_nodes gauge" in text and "# TYPE poold_launch_seconds histogram" in text
    assert re.search(r'^poold_nodes\{state="ready",provider="%s",label="%s"\} 1$' % (PROVIDER, LABEL), text, re.M)
    assert re.search(r'^poold_nodes\{state="failed",provider="%s",label="%s"\} 0$' % (PROVIDER, LABEL), text, re.M)
    assert re.search(r'^poold_launch_total\{provider="%s",pool="main",label="%s",az="[^"]*",'
                     r'requestor="zuul.example:sys",result="ready"\} 1$' % (PROVIDER, LABEL), text, re.M), text
    assert re.search(r'^poold_launch_seconds_count\{provider="%s",label="%s",result="ready"\} 1$'
                     % (PROVIDER, LABEL), text, re.M)
    assert re.search(r'^poold_launch_seconds_bucket\{provider="%s",label="%s",result="ready",le="\+Inf"\} 1$'
                     % (PROVIDER, LABEL), text, re.M)
    assert re.search(r'^poold_request_fulfil_seconds_count\{result="fulfilled"\} 1$', text, re.M)
    assert re.search(r'^poold_provider_max_servers\{provider="%s"\} 10$' % PROVIDER, text, re.M)
    assert re.search(r'^poold_request_queue_depth 0$', text, re.M)
    assert re.search(r'^poold_ready 1$', text, re.M)
    # The session's ZooKeeper traffic, by operation: the launch took creates, gets and multis (the
    # request's lock and `pending`, the node's lock and `building`, the fulfilment) at least.
    assert "# TYPE poold_zk_operations_total counter" in text
    ops = {m.group(1): float(m.group(2))
           for m in re.finditer(r'^poold_zk_operations_total\{op="(\w+)"\} (\S+)$', text, re.M)}
    assert set(ops) == {"get", "exists", "children", "set", "create", "delete", "multi"}, text
    assert ops["create"] >= 2 and ops["get"] >= 1 and ops["multi"] >= 3, ops
    assert float(re.search(r'^poold_zk_watch_events_total (\S+)$', text, re.M).group(1)) >= 1
    # Counters only grow between scrapes (past the 1 s answer cache).
    zc.run_job([LABEL])
    time.sleep(1.2)
    later = {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^poold_zk_operations_total\{op="(\w+)"\} (\S+)$', web.get("/metrics")[2], re.M)}
    assert all(later[k] >= ops[k] for k in ops) and later["create"] > ops["create"], (ops, later)


def test_build_back_off_shown_in_metrics(launcher):
    """An image whose newest build failed for the 3rd time in a row (the builder's poold_failures and
    poold_retry_time on the record) shows poold_image_build_failures 3 and the retry time; an image
    whose newest build is ready shows 0 failures (issue 11)."""
    web = start(launcher)
    now = time.time()
    launcher.kazoo.create("/nodepool/images/flaky/builds/" + "0" * 31 + "1", json.dumps(
        {"state": "ready", "state_time": now - 600, "builder": "b1", "formats": "qcow2"}).encode(), makepath=True)
    launcher.kazoo.create("/nodepool/images/flaky/builds/" + "0" * 31 + "2", json.dumps(
        {"state": "failed", "state_time": now - 60, "builder": "b1", "poold_failures": 3,
         "poold_retry_time": now + 180}).encode(), makepath=True)
    text = wait_metric(web, r'^poold_image_build_failures\{image="flaky"\} 3$')[2]
    assert re.search(r'^poold_image_build_failures\{image="flaky"\} 3$', text, re.M), text
    m = re.search(r'^poold_image_build_retry_timestamp_seconds\{image="flaky"\} (\S+)$', text, re.M)
    assert m and abs(float(m.group(1)) - (now + 180)) < 1, text
    assert re.search(r'^poold_image_build_failures\{image="%s"\} 0$' % IMAGE, text, re.M), text


def test_upload_boot_checks_shown_in_metrics_and_image_list(launcher):
    """Uploads poold-builder checks by booting them (poold_verify on the record) are counted in
    poold_image_upload_verify by image, provider and check state, and /image-list's text State says
    `uploading (verifying)` / `failed (verify: <reason>)` while its JSON state stays Nodepool's (issue 11)."""
    web = start(launcher)
    now = time.time()
    base = "/nodepool/images/vimg/builds/" + "0" * 31 + "1"
    launcher.kazoo.create(base, json.dumps({"state": "ready", "state_time": now, "builder": "b1",
                                            "formats": "qcow2"}).encode(), makepath=True)
    ups = base + "/providers/%s/images/" % PROVIDER
    launcher.kazoo.create(ups + "0000000001", json.dumps(
        {"state": "uploading", "state_time": now, "poold_verify": {"state": "checking"}}).encode(), makepath=True)
    launcher.kazoo.create(ups + "0000000002", json.dumps(
        {"state": "failed", "state_time": now, "external_id": "x2",
         "poold_verify": {"state": "failed", "reason": "ssh timeout (no ssh after 90 s)"}}).encode())
    launcher.kazoo.create(ups + "0000000003", json.dumps(
        {"state": "failed", "state_time": now, "poold_verify": {"state": "failed", "reason": "x"}}).encode())
    pat = r'^poold_image_upload_verify\{image="vimg",provider="%s",state="%s"\} %d$'
    text = wait_metric(web, pat % (PROVIDER, "failed", 2))[2]
    assert re.search(pat % (PROVIDER, "failed", 2), text, re.M), text
    assert re.search(pat % (PROVIDER, "checking", 1), text, re.M), text
    table = web.get("/image-list")[2]
    assert "uploading (verifying)" in table and "failed (verify: ssh timeout (no ssh after 90 s))" in table, table
    rows = [r for r in web.json("/image-list.json") if r["image"] == "vimg"]
    assert sorted(r["state"] for r in rows) == ["failed", "failed", "uploading"], rows


def write_checked_builds(kz):
    """Builds of image "vimg2" whose uploads poold-builder checked (poold_verify); their build ids."""
    now = time.time()
    ids = ["0" * 31 + str(i) for i in (1, 2, 3, 4)]
    ups = {  # per build: (provider, upload id, state, poold_verify state)
        ids[0]: [("p1", "0000000001", "ready", "passed"), ("p2", "0000000001", "failed", "failed")],
        ids[1]: [("p1", "0000000001", "ready", "passed"), ("p2", "0000000001", "ready", "passed")],
        ids[2]: [("p1", "0000000001", "ready", None)],
        ids[3]: [("p1", "0000000001", "failed", "failed"), ("p1", "0000000002", "uploading", "checking")],
    }
    for bid in ids:
        base = "/nodepool/images/vimg2/builds/" + bid
        kz.create(base, json.dumps({"state": "ready", "state_time": now, "builder": "b1",
                                    "formats": "qcow2"}).encode(), makepath=True)
        for prov, uid, state, verify in ups[bid]:
            rec = {"state": state, "state_time": now}
            if verify:
                rec["poold_verify"] = {"state": verify, "reason": "ssh timeout" if verify == "failed" else None}
            kz.create(base + "/providers/%s/images/%s" % (prov, uid), json.dumps(rec).encode(), makepath=True)
    return ids


def test_dib_image_list_state_says_what_the_boot_checks_found(launcher):
    """/dib-image-list's text State (and poolctl dib-image-list's) adds the outcome of the builder's
    boot checks of the build's uploads, per provider by its newest checked upload: failures name
    the provider, a running check says verifying, all passed says verified, no check adds nothing;
    the JSON state stays Nodepool's plain "ready" (issue 11)."""
    ids = write_checked_builds(launcher.kazoo)
    web = start(launcher)
    want = {"vimg2-" + ids[0]: "ready (verify failed on p2)", "vimg2-" + ids[1]: "ready (verified)",
            "vimg2-" + ids[2]: "ready", "vimg2-" + ids[3]: "ready (verifying)"}

    def states(text):
        header, rows = table_rows(text)
        return {r[0]: r[header.index("State")] for r in rows if r[0].startswith("vimg2-")}
    deadline = time.time() + 20
    while states(web.get("/dib-image-list")[2]) != want and time.time() < deadline:
        time.sleep(0.2)  # the cache fills from watch events
    assert states(web.get("/dib-image-list")[2]) == want
    r = subprocess.run([program("poolctl"), "-c", launcher.config_path, "dib-image-list"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert states(r.stdout) == want
    rows = [x for x in web.json("/dib-image-list.json") if x["image"] == "vimg2"]
    assert [x["state"] for x in rows] == ["ready"] * 4 and "verif" not in json.dumps(rows), rows
    assert rows == [x for x in poolctl_json(launcher, ["dib-image-list"]) if x["image"] == "vimg2"]


def test_request_queue_depth_counts_waiting_requests(launcher):
    web = start(launcher)
    # A label no pool has, from a requestor whose request another (fake) pool could take: it stays requested.
    launcher.kazoo.create("/nodepool/components/pool/other0000000001", json.dumps({
        "id": "other-PoolWorker.x-y-z", "supported_labels": ["gpu"], "kind": "pool", "hostname": "other",
        "state": "running", "model_api": 0, "version": "x", "name": "y", "provider_name": "x", "priority": 100,
        "paused": False}).encode(), ephemeral=True, makepath=True)
    zc = ZuulClient(launcher.kazoo)
    zc.submit(["gpu"])
    zc.submit(["gpu"])
    text = wait_metric(web, r"^poold_request_queue_depth 2$")[2]
    assert re.search(r"^poold_request_queue_depth 2$", text, re.M), text
    assert re.search(r'^poold_requests\{state="requested"\} 2$', text, re.M)


def test_ready_flips_to_503_without_zookeeper_and_back(tmp_path):
    zk = ZooKeeperServer(workdir=str(tmp_path / "zk"))
    zk.start()
    port = zk.port
    try:
        from kazoo.client import KazooClient
        root = KazooClient(hosts=zk.hosts, timeout=10)
        root.start()
        root.ensure_path("/ready")
        root.stop()
        kz = KazooClient(hosts=zk.hosts + "/ready", timeout=10)
        kz.start()
        lp = LauncherProcess(tmp_path, zk, "/ready", kz)
        web = start(lp)
        assert web.get("/ready")[0] == 200
        kz.stop()
        zk.stop()
        deadline = time.time() + 15
        while web.get("/ready")[0] != 503:
            assert time.time() < deadline, "/ready stayed 200 without ZooKeeper"
            time.sleep(0.1)
        assert web.get("/health")[0] == 200  # alive, just not ready
        # Same port, same data: the session resumes and /ready comes back.
        import harness
        orig = harness.free_port
        harness.free_port = lambda: port
        try:
            zk.start()
        finally:
            harness.free_port = orig
        web.wait_ready(30)
        assert lp.stop() == 0
    finally:
        zk.stop()


def test_webapp_port_zero_disables_the_server(launcher):
    cfg = launcher.config()
    cfg["webapp"] = {"port": 0}
    launcher.write_config(cfg)
    launcher.start()
    launcher.wait_for(lambda: "web app disabled" in launcher.log_text(), 10, "disabled message")
    assert launcher.proc.poll() is None
