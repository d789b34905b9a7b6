"""A real poold-builder process for integration tests.

BuilderProcess writes nodepool.yaml (ZooKeeper = the test's chroot, images in
the test's tmp dir, diskimages built by tests/integration/fake-image-create
through `dib-cmd`, the test double for disk-image-create's file contract), starts
`poold-builder -f` with short pass intervals and stops it with SIGTERM,
asserting a clean exit (non-zero also on any sanitizer report). Readers
return the build/upload records exactly as stored in ZooKeeper.
"""
import json
import os
import signal
import subprocess
import time

import yaml

from harness import program

FAKE_DIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake-image-create")
ROOT = "/nodepool/images"


def wait_for(pred, timeout=20.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("%s not met within %ss" % (what, timeout))


def diskimage(name="debian", env=None, **extra):
    d = {"name": name, "elements": ["debian-minimal", "vm"], "dib-cmd": FAKE_DIB,
         "formats": ["qcow2", "raw"], "release": "bookworm", "env-vars": {"FAKE_DIB_SLEEP": "0.1"}}
    d["env-vars"].update(env or {})
    d.update(extra)
    return d


def libvirt_provider(name, libvirtd, pool, images, **extra):
    p = {"name": name, "driver": "libvirt", "uri": libvirtd.uri, "storage-pool": pool,
         "storage-pool-path": os.path.join(libvirtd.base, "pools", pool),
         "diskimages": [{"name": i} if isinstance(i, str) else i for i in images],
         "pools": [{"name": "main", "max-servers": 1,
                    "labels": [{"name": "lbl-" + (images[0] if isinstance(images[0], str) else images[0]["name"]),
                                "diskimage": images[0] if isinstance(images[0], str) else images[0]["name"]}]}]}
    p.update(extra)
    return p


class BuilderProcess:
    def __init__(self, tmp_path, zk_server, zk_chroot, kazoo, name="b1", images_dir=None):
        self.tmp = tmp_path
        self.zk_server = zk_server
        self.chroot = zk_chroot
        self.kazoo = kazoo
        self.name = name
        self.proc = None
        self.images_dir = str(images_dir or tmp_path / ("images-" + name))
        self.log_dir = str(tmp_path / ("logs-" + name))
        self.config_path = str(tmp_path / ("nodepool-%s.yaml" % name))
        self.log_path = str(tmp_path / ("builder-%s.log" % name))
        self.env = {"POOLD_BUILDER_INTERVAL_MS": "200", "POOLD_CLEANUP_INTERVAL_MS": "500",
                    "POOLD_BUILD_RETRY_MS": "300", "POOLD_UPLOAD_RETRY_MS": "100"}

    def config(self, diskimages, providers=None, **top):
        labels = set()
        for p in providers or []:
            for pool in p.get("pools", []):
                for lab in pool.get("labels", []):
                    labels.add(lab["name"])
        cfg = self.zk_server.zookeeper_config(self.chroot)
        cfg.update({"zookeeper-timeout": 5, "images-dir": self.images_dir, "build-log-dir": self.log_dir,
                    "labels": [{"name": lab} for lab in sorted(labels)] or [{"name": "none"}],
                    "diskimages": diskimages, "providers": providers or []})
        cfg.update(top)
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            yaml.safe_dump(cfg, f)
        os.replace(tmp, self.config_path)
        return cfg

    def start(self, *args, env=None):
        e = dict(os.environ)
        e.update(self.env)
        e.update(env or {})
        self.stderr = open(str(self.tmp / ("builder-%s.stderr" % self.name)), "w+")
        self.proc = subprocess.Popen([program("poold-builder"), "-f", "-d", "-c", self.config_path,
                                      "-l", self.log_path] + list(args),
                                     stdout=subprocess.DEVNULL, stderr=self.stderr, env=e)

        def up():
            if self.proc.poll() is not None:
                self.stderr.seek(0)
                raise AssertionError("poold-builder exited %s at start:\n%s" % (self.proc.returncode,
                                                                                self.stderr.read()))
            return "registered as" in self.log()
        wait_for(up, what="poold-builder registered")
        return self

    def stop(self):
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(60)
        self.proc = None
        assert rc == 0, "poold-builder exited %s; log:\n%s" % (rc, self.log())

    def log(self):
        try:
            return open(self.log_path).read()
        except FileNotFoundError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # ------------------------------------------------------------ ZooKeeper
    def builds(self, image):
        """{build_id: record} of IMAGE; malformed records are skipped."""
        path = "%s/%s/builds" % (ROOT, image)
        out = {}
        if not self.kazoo.exists(path):
            return out
        for b in self.kazoo.get_children(path):
            if b == "lock":
                continue
            try:
                data, _ = self.kazoo.get(path + "/" + b)
                out[b] = json.loads(data.decode())
            except Exception:
                continue
        return out

    def ready_builds(self, image):
        return {k: v for k, v in self.builds(image).items() if v.get("state") == "ready"}

    def uploads(self, image, provider):
        """[(build_id, upload_id, record)] of IMAGE to PROVIDER."""
        out = []
        for b in self.builds(image):
            path = "%s/%s/builds/%s/providers/%s/images" % (ROOT, image, b, provider)
            if not self.kazoo.exists(path):
                continue
            for u in self.kazoo.get_children(path):
                if u == "lock":
                    continue
                try:
                    data, _ = self.kazoo.get(path + "/" + u)
                    out.append((b, u, json.loads(data.decode())))
                except Exception:
                    continue
        return out

    def image_files(self, image, build_id):
        prefix = "%s-%s" % (image, build_id)
        try:
            return sorted(f for f in os.listdir(self.images_dir) if f == prefix or f.startswith(prefix + "."))
        except FileNotFoundError:
            return []

    def builder_id(self):
        path = os.path.join(self.images_dir, "builder_id.txt")
        wait_for(lambda: os.path.exists(path), what="builder_id.txt")
        return open(path).read().strip()


def poolctl(config_path, *args):
    return subprocess.run([program("poolctl"), "-c", config_path] + list(args), capture_output=True, text=True,
                          timeout=60)
