"""A real OpenSSH sshd for integration tests.

SshServer runs /usr/sbin/sshd -D -e on a free 127.0.0.1 port with freshly
generated ed25519, ecdsa and rsa host keys in a temporary directory (as
root; no PAM, no password logins). start() returns once the port answers
with an SSH banner; stop() kills and waits.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import free_port

SSHD = "/usr/sbin/sshd"
KEY_TYPES = ("ed25519", "ecdsa", "rsa")


def read_banner(port, timeout=1.0):
    """The first line 127.0.0.1:port sends, or None when it does not answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            data = b""
            while b"\n" not in data and len(data) < 1024:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            return data.split(b"\n")[0].decode(errors="replace").rstrip("\r")
    except OSError:
        return None


class SshServer:
    """One sshd on 127.0.0.1:<port> with its own host keys and config."""

    def __init__(self, port=None, key_types=KEY_TYPES, authorized_keys=None):
        """authorized_keys: public key lines that may log in (as any user,
        root included: key only); None = no logins at all."""
        self.workdir = tempfile.mkdtemp(prefix="poold-sshd-")
        self.port = port or free_port()
        self.key_types = tuple(key_types)
        self.authorized_keys = authorized_keys
        self.proc = None
        self.log = None
        self.config = os.path.join(self.workdir, "sshd_config")
        self._generate()

    def _generate(self):
        keys = []
        for t in self.key_types:
            path = os.path.join(self.workdir, "ssh_host_%s_key" % t)
            cmd = ["ssh-keygen", "-q", "-t", t, "-N", "", "-f", path]
            if t == "rsa":
                cmd[4:4] = ["-b", "2048"]   # enough for a test, and quick
            subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
            keys.append(path)
        logins = ["PermitRootLogin no"]
        if self.authorized_keys is not None:
            path = os.path.join(self.workdir, "authorized_keys")
            with open(path, "w") as f:
                f.write("".join(k.strip() + "\n" for k in self.authorized_keys))
            logins = ["PermitRootLogin prohibit-password", "AuthorizedKeysFile %s" % path]
        with open(self.config, "w") as f:
            f.write("\n".join(
                ["ListenAddress 127.0.0.1:%d" % self.port]
                + ["HostKey %s" % k for k in keys]
                + ["PidFile %s" % os.path.join(self.workdir, "sshd.pid"),
                   "UsePAM no",
                   "StrictModes no",
                   "PasswordAuthentication no",
                   "KbdInteractiveAuthentication no"]
                + logins
                + ["LogLevel VERBOSE",
                   ""]))

    def host_keys(self):
        """The server's public host keys as "<type> <base64>" strings."""
        out = []
        for t in self.key_types:
            with open(os.path.join(self.workdir, "ssh_host_%s_key.pub" % t)) as f:
                fields = f.read().split()
                out.append("%s %s" % (fields[0], fields[1]))
        return out

    def start(self, timeout=10):
        # sshd refuses to start without its privilege separation directory.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.log = open(os.path.join(self.workdir, "sshd.log"), "w")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", self.config],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sshd exited with %s: %s" % (self.proc.returncode, self.read_log()))
            banner = read_banner(self.port, timeout=0.5)
            if banner and banner.startswith("SSH-2.0-"):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("sshd did not answer within %ss" % timeout)

    def read_log(self):
        try:
            with open(os.path.join(self.workdir, "sshd.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        if self.log:
            self.log.close()
            self.log = None

    def die(self):
        """The node dies: sshd and every connection it serves (each connection's
        sshd calls setsid(), so stop() alone leaves established sessions up)."""
        if self.proc and self.proc.poll() is None:
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open("/proc/%s/stat" % entry) as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                    if ppid == self.proc.pid:
                        os.kill(int(entry), signal.SIGKILL)
                except (OSError, ValueError, IndexError):
                    pass
        self.stop()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
