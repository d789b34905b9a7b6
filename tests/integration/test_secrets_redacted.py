"""Cloud credentials never reach poold's log, /pool-list, ZooKeeper or the
driver's error text, whatever the cloud answers (issue 13, shared/base/redact.c).

The cloud here is a small HTTP server on loopback that speaks Keystone's real
wire API for POST /v3/auth/tokens and answers the way a broken or hostile
deployment might: a 401 whose message echoes the whole request (the auth body
holds the password or the application credential secret), or a token and a
compute catalog, then a 401 from "Nova" that echoes the X-Auth-Token it got.
The real launcher (quota probe -> Keystone -> pause the pool, reason on
/pool-list) and the real driver through tests/tools/ostool are driven at it."""
import http.server
import json
import os
import subprocess
import threading
import uuid

import pytest
import yaml

from harness import free_port, program
from launcher_fixture import IMAGE, LABEL, PROVIDER, launcher  # noqa: F401  (fixture)
from test_webapp import Web
from zuul_client import ZuulClient

MARK = "***"  # REDACT_MARK


class EchoCloud(http.server.ThreadingHTTPServer):
    """mode "keystone": every auth is refused with the request echoed in the message.
    mode "nova": auth succeeds (a fresh token each time); every compute call is refused with the
    request's headers, and the token by itself, echoed."""

    daemon_threads = True

    def __init__(self, mode):
        super().__init__(("127.0.0.1", 0), EchoHandler)
        self.mode = mode
        self.tokens = []
        self.auth_bodies = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]

    def stop(self):
        self.shutdown()
        self.server_close()


class EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def unauthorized(self, echoed):
        self.reply(401, {"error": {"code": 401, "title": "Unauthorized",
                                   "message": "The request you have made requires authentication. "
                                              "You sent: " + echoed}})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode("utf-8", "replace")
        if not self.path.endswith("/v3/auth/tokens"):
            return self.unauthorized("%s %s" % (self.path, raw))
        self.server.auth_bodies.append(raw)
        if self.server.mode == "keystone":
            return self.unauthorized(raw + " with headers " + str(self.headers).replace("\n", " "))
        token = "gAAAAA" + uuid.uuid4().hex + uuid.uuid4().hex
        self.server.tokens.append(token)
        compute = self.server.url + "/compute/v2.1"
        self.reply(201, {"token": {
            "methods": ["password"], "expires_at": "2099-01-01T00:00:00.000000Z",
            "issued_at": "2024-01-01T00:00:00.000000Z",
            "user": {"id": "u1", "name": "poold-user", "domain": {"id": "default", "name": "Default"}},
            "project": {"id": "p1", "name": "poold", "domain": {"id": "default", "name": "Default"}},
            "catalog": [{"type": "compute", "name": "nova", "id": "c1", "endpoints": [
                {"id": "e1", "interface": "public", "region": "RegionOne", "region_id": "RegionOne",
                 "url": compute}]}]}}, headers=[("X-Subject-Token", token)])

    def do_GET(self):
        token = self.headers.get("X-Auth-Token", "")
        self.unauthorized("%s %s (token %s was rejected) headers: %s"
                          % (self.command, self.path, token, str(self.headers).replace("\n", " ")))


def write_clouds(tmp_path, auth_url, password, secret):
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": {
        "echo-pw": {"auth": {"auth_url": auth_url + "/v3", "username": "poold-user", "password": password,
                             "project_name": "poold", "user_domain_name": "Default",
                             "project_domain_name": "Default"},
                    "region_name": "RegionOne", "identity_api_version": 3},
        "echo-ac": {"auth_type": "v3applicationcredential",
                    "auth": {"auth_url": auth_url + "/v3", "application_credential_id": "ac-1234",
                             "application_credential_secret": secret},
                    "region_name": "RegionOne", "identity_api_version": 3}}}))
    os.chmod(path, 0o600)
    return {"OS_CLIENT_CONFIG_FILE": str(path)}


def secrets():
    """A password with characters a JSON encoder escapes, and an application credential secret;
    each has a unique core that must appear nowhere, in whatever encoding."""
    core_pw, core_ac = uuid.uuid4().hex, uuid.uuid4().hex
    return core_pw, core_ac, 'pw"%s\\é' % core_pw, "ac-%s" % core_ac


def zk_dump(kz, path="/"):
    out = []
    for child in kz.get_children(path):
        p = path.rstrip("/") + "/" + child
        data, _ = kz.get(p)
        out.append(p + " " + (data or b"").decode("utf-8", "replace"))
        out.extend(zk_dump(kz, p))
    return out


def assert_clean(text, cores, where):
    for c in cores:
        assert c not in text, "a secret reached %s:\n%s" % (where, text[-3000:])


@pytest.fixture
def echo_cloud(request):
    servers = []

    def make(mode):
        s = EchoCloud(mode)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.stop()


@pytest.mark.parametrize("cloud", ["echo-pw", "echo-ac"])
def test_keystone_echoing_the_auth_request_leaks_no_credential_to_log_pool_list_or_zookeeper(
        launcher, echo_cloud, tmp_path, cloud):
    core_pw, core_ac, password, secret = secrets()
    server = echo_cloud("keystone")
    env = write_clouds(tmp_path, server.url, password, secret)
    port = free_port()
    cfg = launcher.config()
    cfg["webapp"] = {"port": port, "listen_address": "127.0.0.1"}
    cfg["providers"] = [{
        "name": PROVIDER, "driver": "openstack", "cloud": cloud, "rate": 0.01, "launch-retries": 2,
        "diskimages": [{"name": IMAGE}],
        "pools": [{"name": "main", "max-servers": 2, "networks": ["none"],
                   "labels": [{"name": LABEL, "diskimage": IMAGE, "min-ram": 100}]}]}]
    launcher.write_config(cfg)
    launcher.images(external_id="img-1")
    launcher.start(env=env)
    web = Web(port)
    zuul = ZuulClient(launcher.kazoo)
    req_id = zuul.submit([LABEL])
    launcher.wait_for(lambda: "refuses our credentials" in launcher.log_text(), 60, "the auth error logged")

    def pool_reason():
        pools = web.json("/pool-list")
        return pools and pools[0].get("pause_reason")
    reason = launcher.wait_for(pool_reason, 30, "the pool paused with a reason")
    # The echo did reach the message, and was masked there.
    assert server.auth_bodies and (core_pw if cloud == "echo-pw" else core_ac) in server.auth_bodies[0]
    assert_clean(json.dumps(web.json("/pool-list")), [core_pw, core_ac], "/pool-list")
    assert "You sent:" in reason and MARK in reason, reason
    assert "Keystone refused the credentials of %s" % ("poold-user" if cloud == "echo-pw" else "ac-1234") in reason
    assert_clean(web.get("/pool-list")[2], [core_pw, core_ac], "/pool-list (text)")
    assert_clean("\n".join(zk_dump(launcher.kazoo)), [core_pw, core_ac], "ZooKeeper")
    assert zuul.get_request(req_id)["state"] in ("requested", "pending")
    assert launcher.stop() == 0
    assert_clean(launcher.log_text(), [core_pw, core_ac], "poold's log")

    # The driver's error text itself, as poolctl-like tools print it.
    r = subprocess.run([program("ostool"), "--cloud", cloud, "--provider", PROVIDER, "quota"],
                       env=dict(os.environ, **env), capture_output=True, text=True, timeout=60)
    assert r.returncode == 5, r  # -EACCES
    assert_clean(r.stdout + r.stderr, [core_pw, core_ac], "ostool's output")
    assert "You sent:" in r.stderr and MARK in r.stderr, r.stderr


def test_nova_echoing_the_token_leaks_no_token(echo_cloud, tmp_path):
    core_pw, core_ac, password, secret = secrets()
    server = echo_cloud("nova")
    env = write_clouds(tmp_path, server.url, password, secret)
    r = subprocess.run([program("ostool"), "--cloud", "echo-pw", "--provider", PROVIDER, "quota"],
                       env=dict(os.environ, **env), capture_output=True, text=True, timeout=60)
    # A 401 from Nova: re-authenticated once (a second token), refused again.
    assert r.returncode == 5, r
    assert len(server.tokens) == 2, server.tokens
    assert_clean(r.stdout + r.stderr, server.tokens + [core_pw], "ostool's output")
    assert "was rejected" in r.stderr and MARK in r.stderr, r.stderr
