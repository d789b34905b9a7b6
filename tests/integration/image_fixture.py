"""A default node image built once per test session with poold-builder.

`built_image` (session scope) runs

    poold-builder disk-image-create -t qcow2,raw --checksum -o <tmp>/node \
        debian-minimal vm openssh-server simple-init node-user growroot

with the stage cache under a stable path (POOLD_TEST_STAGE_CACHE, default
/var/cache/poold-test/stages) and a stable SSH key pair next to it, so a
second session on the same machine is served from the cache. Tests that need
a bootable node image (end-to-end launcher tests) can use it: the image has
user `zuul` (key pair: built_image.private_key) with passwordless sudo, sshd
on port 22, DHCP on the first NIC, a serial console on ttyS0.

What it costs (2 shared cores under load, QEMU in TCG, measured): with an
empty cache 11.5 min — root.d (debootstrap + apt-get update on the host)
~3 min, the install.d appliance ~7 min (launch 15-60 s, base tree copied in
~1 min, apt installing kernel, GRUB, openssh-server, sudo, cloud-guest-utils
in the emulated appliance ~5-6 min), finalise.d (GRUB) ~1 min; with a warm
cache ~20-25 s (qemu-img convert to qcow2 and a 2 GiB raw, checksums).
The cache holds ~1.2 GB for this image.
"""
import os
import subprocess
import time

import pytest

from harness import program

CACHE_ROOT = os.environ.get("POOLD_TEST_CACHE_ROOT", "/var/cache/poold-test")
STAGE_CACHE = os.environ.get("POOLD_TEST_STAGE_CACHE", os.path.join(CACHE_ROOT, "stages"))
DEFAULT_ELEMENTS = ["debian-minimal", "vm", "openssh-server", "simple-init", "node-user", "growroot"]
BUILD_TIMEOUT = 3600


def guestfs_backend_settings():
    """The libguestfs settings poold-builder itself would use here: its KVM probe
    (`poold-builder kvm-probe`) decides, so a /dev/kvm whose KVM cannot run QEMU
    does not crash the tests' inspection appliance either."""
    p = subprocess.run([program("poold-builder"), "kvm-probe"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return [] if p.stdout.startswith("kvm:") else ["force_tcg"]


class BuildResult:
    def __init__(self, base, formats, returncode, log, elapsed):
        self.base = base
        self.formats = formats
        self.returncode = returncode
        self.log = log
        self.elapsed = elapsed

    def path(self, fmt):
        return "%s.%s" % (self.base, fmt)

    def lines(self, needle):
        return [l for l in self.log.splitlines() if needle in l]


def stable_keypair():
    """An SSH key pair that stays the same across sessions: its public half is
    part of the image's cache key (DIB_DEV_USER_AUTHORIZED_KEYS content)."""
    os.makedirs(CACHE_ROOT, exist_ok=True)
    key = os.path.join(CACHE_ROOT, "id_ed25519")
    if not os.path.exists(key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "poold-test", "-f", key],
                       check=True)
    return key, key + ".pub"


def run_build(outdir, name="node", formats=("qcow2", "raw"), elements=DEFAULT_ELEMENTS, elements_path=None,
              extra_env=None, stage_cache=STAGE_CACHE):
    """Run disk-image-create the way the builder daemon does; return a BuildResult."""
    _, pub = stable_keypair()
    env = dict(os.environ)
    env.update({
        "DIB_IMAGE_NAME": name,
        # As poold-builder runs it for etc/poold-local.yaml (release: bookworm,
        # username: zuul), so the end-to-end test reuses these cached stages.
        "DIB_RELEASE": "bookworm",
        "DIB_DEV_USER_USERNAME": "zuul",
        "DIB_DEV_USER_AUTHORIZED_KEYS": pub,
        "POOLD_STAGE_CACHE": stage_cache,
        "LIBGUESTFS_BACKEND": "direct",
    })
    env.pop("ELEMENTS_PATH", None)
    if elements_path:
        env["ELEMENTS_PATH"] = elements_path
    env.update(extra_env or {})
    base = os.path.join(str(outdir), name)
    cmd = [program("poold-builder"), "disk-image-create", "-t", ",".join(formats), "--checksum",
           "-o", base] + list(elements)
    logpath = base + ".log"
    t0 = time.monotonic()
    with open(logpath, "w") as log:
        proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT)
    elapsed = time.monotonic() - t0
    with open(logpath) as f:
        text = f.read()
    return BuildResult(base, formats, proc.returncode, text, elapsed)


class BuiltImage(BuildResult):
    private_key = None
    public_key = None


@pytest.fixture(scope="session")
def built_image(tmp_path_factory):
    """The default node image (qcow2 + raw, with checksums), built once per session."""
    outdir = tmp_path_factory.mktemp("image")
    res = run_build(outdir)
    if res.returncode != 0:
        pytest.fail("image build failed (exit %d); last lines of the log:\n%s"
                    % (res.returncode, "\n".join(res.log.splitlines()[-40:])))
    img = BuiltImage(res.base, res.formats, res.returncode, res.log, res.elapsed)
    img.private_key, img.public_key = stable_keypair()
    return img
