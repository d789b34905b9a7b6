"""A real OpenStack on loopback for the OpenStack tests (tests/openstack/cloud.py).

`openstack` is session-scoped: the cloud starts once for every test that asks
for it (whichever test module imports the fixture) and stops at the end of the
session. POOLD_OS_ENV=/path/env.json reuses a cloud started by hand
(`tests/openstack/cloud.py start DIR`), which is then left running.

OpenStackCloud gives tests an independent view of the cloud over plain REST
(admin token), so what the driver did is checked without the driver.
"""
import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLOUD_PY = os.path.join(ROOT, "tests", "openstack", "cloud.py")

_STATE = {}


class OpenStackCloud:
    def __init__(self, env_path):
        self.env_path = env_path
        with open(env_path) as f:
            self.env = json.load(f)
        self.clouds_yaml = self.env["clouds_yaml"]
        self.project_id = self.env["project_id"]
        self._admin = None
        self._admin_time = 0

    # ------------------------------------------------------------ REST
    def _req(self, method, url, body=None, token=None, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json")
        if token:
            req.add_header("X-Auth-Token", token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None), r.headers
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw), e.headers
            except ValueError:
                return e.code, raw.decode(errors="replace"), e.headers

    def token(self, user, password, project):
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "password": password, "domain": {"name": "Default"}}}},
            "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}
        st, _, h = self._req("POST", self.env["keystone"] + "/auth/tokens", body)
        assert st == 201, st
        return h["X-Subject-Token"]

    def admin(self):
        if not self._admin or time.time() - self._admin_time > 600:
            self._admin = self.token("admin", self.env["admin_password"], "admin")
            self._admin_time = time.time()
        return self._admin

    def nova(self, method, path, body=None):
        return self._req(method, self.env["nova"] + path, body, self.admin(),
                         {"OpenStack-API-Version": "compute 2.47"})

    def glance(self, method, path, body=None):
        return self._req(method, self.env["glance"] + "/v2" + path, body, self.admin())

    def neutron(self, method, path, body=None):
        return self._req(method, self.env["neutron"] + "/v2.0" + path, body, self.admin())

    def cinder(self, method, path, body=None, token=None):
        """Cinder's v3 API without a project id in the URL (microversion 3.67+)."""
        return self._req(method, self.env["cinder"] + path, body, token or self.admin(),
                         {"OpenStack-API-Version": "volume 3.70"})

    def user_token(self):
        return self.token(self.env["user"], self.env["user_password"], self.env["project"])

    def set_volume_quota(self, volumes=-1, gigabytes=-1):
        st, d, _ = self.cinder("PUT", "/os-quota-sets/%s" % self.project_id,
                               {"quota_set": {"volumes": volumes, "gigabytes": gigabytes}})
        assert st == 200, d

    def project_volumes(self):
        st, d, _ = self.cinder("GET", "/volumes/detail?all_tenants=1&project_id=%s" % self.project_id)
        assert st == 200, d
        return d["volumes"]

    def delete_project_volumes(self, timeout=60):
        """Remove every volume of the poold project (after its servers). A volume still
        marked attached to a server that is gone is reset to detached first."""
        deadline = time.time() + timeout
        while True:
            vols = self.project_volumes()
            if not vols:
                return
            assert time.time() < deadline, "volumes not gone: %r" % [(v["id"], v["status"]) for v in vols]
            for v in vols:
                if v["status"] == "deleting":
                    continue
                if v["status"] != "available":
                    self.cinder("POST", "/volumes/%s/action" % v["id"],
                                {"os-reset_status": {"status": "available", "attach_status": "detached"}})
                self.cinder("POST", "/volumes/%s/action" % v["id"], {"os-force_delete": {}})
            time.sleep(0.5)

    def server(self, server_id):
        st, d, _ = self.nova("GET", "/servers/%s" % server_id)
        return d["server"] if st == 200 else None

    def project_servers(self):
        st, d, _ = self.nova("GET", "/servers/detail?all_tenants=1&project_id=%s" % self.project_id)
        assert st == 200, d
        return d["servers"]

    def set_instance_quota(self, n):
        st, d, _ = self.nova("PUT", "/os-quota-sets/%s" % self.project_id, {"quota_set": {"instances": n}})
        assert st == 200, d

    def delete_project_servers(self, timeout=60):
        """Remove every server of the poold project (test isolation)."""
        for s in self.project_servers():
            self.nova("DELETE", "/servers/%s" % s["id"])
        deadline = time.time() + timeout
        while self.project_servers():
            assert time.time() < deadline, "servers not gone: %r" % self.project_servers()
            time.sleep(0.3)

    def wait(self, fn, timeout=60, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = fn()
            if v:
                return v
            time.sleep(0.2)
        raise AssertionError("timed out waiting for %s" % what)

    def env_vars(self):
        return {"OS_CLIENT_CONFIG_FILE": self.clouds_yaml}

    def api_log_count(self, service, needle):
        with open(os.path.join(self.env["state"], "logs", service + ".log"), errors="replace") as f:
            return f.read().count(needle)


def _start():
    if "cloud" in _STATE:
        return _STATE["cloud"]
    env_path = os.environ.get("POOLD_OS_ENV")
    if env_path:
        _STATE["cloud"] = OpenStackCloud(env_path)
        return _STATE["cloud"]
    if os.geteuid() != 0 and subprocess.run([os.path.join(ROOT, "tests", "openstack", "install.sh")]).returncode:
        pytest.skip("the OpenStack packages are missing and installing them needs root")
    state = tempfile.mkdtemp(prefix="poold-openstack-")
    t = time.time()
    r = subprocess.run(["/usr/bin/python3", CLOUD_PY, "start", state], stdout=subprocess.PIPE)
    if r.returncode != 0:
        subprocess.run(["/usr/bin/python3", CLOUD_PY, "stop", state])
        raise RuntimeError("could not start the loopback OpenStack (logs in %s/logs)" % state)
    _STATE["state"] = state
    _STATE["start_time"] = time.time() - t
    _STATE["cloud"] = OpenStackCloud(r.stdout.decode().strip().splitlines()[-1])
    return _STATE["cloud"]


def _stop():
    state = _STATE.pop("state", None)
    if state:
        subprocess.run(["/usr/bin/python3", CLOUD_PY, "stop", state])


@pytest.fixture(scope="session")
def openstack(request):
    first = "cloud" not in _STATE
    cloud = _start()
    if first:
        request.config.add_cleanup(_stop)
    return cloud


@pytest.fixture
def cloud(openstack):  # noqa: F811
    """The session's cloud with the default instance quota, unlimited volume
    quota and no servers or volumes of the project, before and after the test."""
    _reset(openstack)
    yield openstack
    _reset(openstack)


def _reset(openstack):
    openstack.set_instance_quota(10)
    openstack.set_volume_quota()
    openstack.delete_project_servers()
    openstack.delete_project_volumes()
