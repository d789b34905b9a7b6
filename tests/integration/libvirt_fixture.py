"""A real libvirtd for tests that stream image uploads (libvirt's test:///
driver cannot: it keeps volumes as metadata only).

As root there is usually no libvirtd, and starting a second system libvirtd
would fight any other one over /run/libvirt. So the session fixture starts a
*session* libvirtd as the unprivileged user `nobody`, with HOME and
XDG_RUNTIME_DIR in a private temp directory, and connects to it as
qemu:///session?socket=<that dir>/run/libvirt/libvirt-sock (root may connect
to any unix socket). Storage pools live under .base (owned by nobody, so the
daemon can create their directories). As a non-root user plain
qemu:///session is used: libvirt spawns the session daemon by itself.
Everything is stopped and removed at the end of the session.
"""
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

import pytest


class Libvirtd:
    def __init__(self):
        self.base = None
        self.uri = None
        self.pid = None

    def virsh(self, *args, check=True):
        p = subprocess.run(["virsh", "-q", "-c", self.uri] + list(args), capture_output=True, text=True,
                           timeout=60)
        if check and p.returncode != 0:
            raise RuntimeError("virsh %s: %s" % (" ".join(args), p.stderr.strip()))
        return p.stdout

    def volumes(self, pool):
        """Names of the volumes in storage pool POOL ([] if the pool does not exist)."""
        p = subprocess.run(["virsh", "-q", "-c", self.uri, "vol-list", "--pool", pool], capture_output=True,
                           text=True, timeout=60)
        if p.returncode != 0:
            return []
        return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]

    def start(self, timeout=60):
        if not self.base:
            self.base = tempfile.mkdtemp(prefix="poold-libvirt-")
            os.chmod(self.base, 0o755)
        if os.getuid() != 0:
            self.uri = "qemu:///session"
            self.virsh("uri")
            return self
        nobody = pwd.getpwnam("nobody")
        run = os.path.join(self.base, "run")
        os.makedirs(run, mode=0o700, exist_ok=True)
        for d in (self.base, run):
            os.chown(d, nobody.pw_uid, nobody.pw_gid)
        env = {"HOME": self.base, "XDG_RUNTIME_DIR": run, "XDG_CONFIG_HOME": os.path.join(self.base, "config"),
               "XDG_CACHE_HOME": os.path.join(self.base, "cache"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        subprocess.run(["runuser", "-u", "nobody", "--", "env", "-i"] +
                       ["%s=%s" % kv for kv in env.items()] +
                       ["/usr/sbin/libvirtd", "-d", "--timeout", "0"], check=True, timeout=60)
        sock = os.path.join(run, "libvirt", "libvirt-sock")
        pidfile = os.path.join(run, "libvirt", "libvirtd.pid")
        self.uri = "qemu:///session?socket=" + sock
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(sock) and os.path.exists(pidfile):
                try:
                    self.pid = int(open(pidfile).read().strip())
                    self.virsh("uri")
                    return self
                except (ValueError, RuntimeError):
                    pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("session libvirtd did not come up within %ss" % timeout)

    def crash(self):
        """SIGKILL the daemon: its state and domains stay, as after a crash; start()
        brings it back on the same socket."""
        os.kill(self.pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self.pid = None
        for stale in ("libvirtd.pid", "libvirt-sock", "libvirt-sock-ro", "libvirt-admin-sock"):
            try:
                os.unlink(os.path.join(self.base, "run", "libvirt", stale))
            except FileNotFoundError:
                pass

    def stop(self):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGTERM)
                for _ in range(100):
                    os.kill(self.pid, 0)
                    time.sleep(0.1)
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.pid = None
        if self.base:
            self.kill_leftovers()
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def kill_leftovers(self):
        """QEMU processes of this daemon's domains outlive it (a session libvirtd leaves
        its domains running when it exits or is crashed): kill every process whose command
        line names this daemon's private directory, so no VM outlives the test session."""
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmdline = f.read()
                if self.base.encode() in cmdline and int(pid) != os.getpid():
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass


@pytest.fixture(scope="session")
def libvirtd():
    d = Libvirtd().start()
    yield d
    d.stop()
