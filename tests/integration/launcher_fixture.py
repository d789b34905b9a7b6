"""A real poold launcher process for integration tests.

LauncherProcess writes nodepool.yaml (ZooKeeper = the test's chroot) and a
libvirt test-driver node XML (test:///<abs path>) whose `dir` storage pool holds
the image volumes the launcher boots from, then starts `poold -f` and stops it
with SIGTERM. images() writes the ImageBuild/ImageUpload records a builder
would have written, so the launcher finds a READY upload.
"""
import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from harness import program

PROVIDER = "test-prov"
IMAGE = "debian"
LABEL = "small"


def volume_name(provider, image, fmt="qcow2"):
    """The volume name provider_libvirt gives an upload (libvirt_xml.h)."""
    return "%s@%s@%s" % (provider, image, fmt)


def domain_xml(name, provider=None, node_id=None, pool="main", tags=None):
    """A running test-driver domain; with provider, tagged as provider_libvirt tags its own
    (plus TAGS, a dict, as create() records a request's tags)."""
    meta = ""
    if provider:
        extra = "".join("<poold:tag key='%s'>%s</poold:tag>" % kv for kv in (tags or {}).items())
        meta = ("<metadata><poold:instance xmlns:poold='https://poold.dev/xmlns/instance/1.0'>"
                "<poold:provider>%s</poold:provider><poold:pool>%s</poold:pool>"
                "<poold:node-id>%s</poold:node-id><poold:memory-mib>64</poold:memory-mib>"
                "<poold:vcpus>1</poold:vcpus>%s</poold:instance></metadata>" % (provider, pool, node_id, extra))
    return ("<domain type='test'><name>%s</name>%s<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64'>hvm</type></os></domain>" % (name, meta))


def node_xml(pool_name, pool_path, volumes, domains=(), cpus=None, memory_kib=None):
    """The test driver's node; cpus/memory_kib size the host (what the driver reports as quota)."""
    host = ""
    if cpus:
        host += ("<cpu><nodes>1</nodes><sockets>1</sockets><cores>%d</cores><threads>1</threads>"
                 "<active>%d</active><mhz>1000</mhz><model>test</model></cpu>" % (cpus, cpus))
    if memory_kib:
        host += "<memory>%d</memory>" % memory_kib
    vols = "".join(
        "<volume><name>%s</name><capacity unit='MiB'>10</capacity>"
        "<target><format type='qcow2'/></target></volume>" % v for v in volumes)
    return ("<node>" + host + "<pool type='dir'><name>%s</name><uuid>8f3c6a3e-9e33-4f2e-9b6c-4a0f0d9c2a11</uuid>"
            "<capacity unit='GiB'>100</capacity><available unit='GiB'>90</available>"
            "<target><path>%s</path></target>%s</pool>%s</node>" % (pool_name, pool_path, vols, "".join(domains)))


class LauncherProcess:
    def __init__(self, tmp_path, zk_server, zk_chroot, kazoo):
        self.tmp = tmp_path
        self.zk_server = zk_server
        self.chroot = zk_chroot
        self.kazoo = kazoo
        self.proc = None
        self.config_path = str(tmp_path / "nodepool.yaml")
        self.log_path = str(tmp_path / "poold.log")
        self.xml_path = str(tmp_path / "node.xml")
        self.volumes = [volume_name(PROVIDER, IMAGE)]
        self.domains = []   # domain_xml() strings the hypervisor starts with (made behind poold's back)
        self.host_cpus = None       # the test host's size (libvirt's default: 16 CPUs, 3 GiB)
        self.host_memory_kib = None

    # ------------------------------------------------------------ config
    def config(self, labels=None, pool=None, provider=None, extra=None):
        labels = labels if labels is not None else [{"name": LABEL}]
        pool_cfg = {"name": "main", "max-servers": 10, "host-key-checking": False,
                    "node-attributes": {"executor-zone": "z1"},
                    "labels": [{"name": LABEL, "diskimage": IMAGE, "memory": 64, "vcpus": 1}]}
        if pool:
            pool_cfg.update(pool)
        prov = {"name": PROVIDER, "driver": "libvirt", "uri": "test://" + self.xml_path,
                "launch-retries": 2, "diskimages": [{"name": IMAGE}], "pools": [pool_cfg]}
        if provider:
            prov.update(provider)
        cfg = self.zk_server.zookeeper_config(self.chroot)
        cfg.update({"zookeeper-timeout": 5.0,
                    # No web app unless a test asks (extra): tests run side by side.
                    "webapp": {"port": 0},
                    "labels": labels,
                    "diskimages": [{"name": IMAGE, "elements": ["debian-minimal"]}],
                    "providers": [prov]})
        if extra:
            cfg.update(extra)
        return cfg

    def write_config(self, cfg=None, text=None):
        if text is None:
            text = yaml.safe_dump(cfg if cfg is not None else self.config(), sort_keys=False)
        with open(self.config_path + ".tmp", "w") as f:
            f.write(text)
        os.replace(self.config_path + ".tmp", self.config_path)
        with open(self.xml_path, "w") as f:
            f.write(node_xml("poold", str(self.tmp / "pool"), self.volumes, self.domains,
                             self.host_cpus, self.host_memory_kib))
        os.makedirs(str(self.tmp / "pool"), exist_ok=True)

    # ------------------------------------------------------------ images
    def images(self, image=IMAGE, provider=PROVIDER, external_id=None):
        """Write a READY build and a READY upload of image for provider."""
        now = time.time()
        build = "/nodepool/images/%s/builds/%s" % (image, "0" * 31 + "1")
        self.kazoo.create(build, json.dumps({"state": "ready", "state_time": now,
                                             "builder": "b1", "formats": "qcow2"}).encode(),
                          makepath=True)
        up = self.kazoo.create("%s/providers/%s/images/" % (build, provider),
                               json.dumps({"state": "ready", "state_time": now,
                                           "external_id": external_id or volume_name(provider, image),
                                           "external_name": image, "format": "qcow2",
                                           "username": "zuul", "python_path": "/usr/bin/python3",
                                           "shell_type": None}).encode(),
                               sequence=True, makepath=True)
        return up

    # ------------------------------------------------------------ process
    def start(self, env=None, wait_registered=True, args=()):
        e = dict(os.environ)
        e.setdefault("POOLD_CLEANUP_INTERVAL_MS", "500")
        if env:
            e.update(env)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([program("poold"), "-c", self.config_path, "-f", *args],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=e)
        if wait_registered:
            self.wait_for(lambda: self.components("launcher"), 15, "launcher component")
        return self

    def components(self, kind):
        path = "/nodepool/components/%s" % kind
        out = []
        if not self.kazoo.exists(path):
            return out
        for c in self.kazoo.get_children(path):
            try:
                data, _ = self.kazoo.get("%s/%s" % (path, c))
            except Exception:
                continue
            out.append(json.loads(data.decode()))
        return out

    def wait_for(self, fn, timeout=15, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = fn()
            if v:
                return v
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError("poold exited (%s) while waiting for %s\n%s"
                                     % (self.proc.returncode, what, self.log_text()))
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s\n%s" % (what, self.log_text()[-6000:]))

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stop poold; returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("poold did not stop within %ss\n%s" % (timeout, self.log_text()))
        rc = self.proc.returncode
        self.proc = None
        self.log.close()
        return rc

    # ------------------------------------------------------------ ZK helpers
    def nodes(self):
        out = {}
        if not self.kazoo.exists("/nodepool/nodes"):
            return out
        for n in self.kazoo.get_children("/nodepool/nodes"):
            try:
                data, _ = self.kazoo.get("/nodepool/nodes/" + n)
            except Exception:
                continue
            if data:
                out[n] = json.loads(data.decode())
        return out


@pytest.fixture
def launchers(tmp_path, zk_server, zk_chroot, kazoo):
    """Several launchers on one config file and one ZooKeeper chroot: make(n) returns n
    LauncherProcess objects (own log each) that all read the first one's nodepool.yaml
    and libvirt node XML. Those still running at the end must exit 0 on SIGTERM."""
    made = []

    def make(n):
        for _ in range(n):
            d = tmp_path / ("launcher-%d" % len(made))
            d.mkdir()
            lp = LauncherProcess(d, zk_server, zk_chroot, kazoo)
            if made:
                lp.config_path, lp.xml_path = made[0].config_path, made[0].xml_path
            made.append(lp)
        return made[-n:]
    yield make
    bad = []
    for lp in made:
        if lp.proc is not None:
            rc = lp.stop()
            if rc != 0:
                bad.append("poold in %s exited %s\n%s" % (lp.tmp, rc, lp.log_text()[-4000:]))
    assert not bad, "\n".join(bad)


@pytest.fixture
def launcher(tmp_path, zk_server, zk_chroot, kazoo):
    lp = LauncherProcess(tmp_path, zk_server, zk_chroot, kazoo)
    yield lp
    if lp.proc is not None:
        rc = lp.stop()
        assert rc == 0, "poold exited %s\n%s" % (rc, lp.log_text()[-6000:])
