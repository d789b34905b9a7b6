"""poold-builder proves an upload by booting it before it serves
(diskimages[].poold.verify, issue 11), with real images booted in a real
libvirtd (the private session daemon of libvirt_fixture.py, QEMU under TCG):

- the image tier's node image (image_fixture.py) passes: while checked its
  upload stays `uploading` (poold_verify checking, `uploading (verifying)` in
  poolctl image-list), then ssh answers, the check commands run over ssh
  against the scanned host keys, and it becomes `ready (verified)`;
- a copy of it with sshd removed (guestfs) fails: `failed (verify: ssh
  timeout ...)` with its log (console included) kept, the cloud image kept
  for inspection, that build never uploaded again, the verified upload of the
  previous build still the ready one;
- a builder stopped (SIGTERM) in the middle of a check deletes its server and
  fails the record without blaming the image: it is uploaded and checked again;
- a builder killed in the middle of a check leaves its verify server behind:
  the restarted builder deletes it (the launcher's leak sweep skips servers
  tagged poold_verify: test_launcher_cleanup.py);
- statsd poold.builder.verify.<image>.<provider> counts passed and failed checks;
- no verify server is left at the end.

Builds come from fake-image-create copying the real images
(FAKE_DIB_COPY_FROM). Cost: the node image (warm stage cache ~30 s), one
guestfs launch (~30-60 s), one good boot (~50-120 s), one check to its
BROKEN_TIMEOUT.
"""
import json
import os
import shutil
import signal
import time
import uuid

import pytest

from builder_fixture import BuilderProcess, diskimage, libvirt_provider, poolctl, wait_for
from image_fixture import built_image, guestfs_backend_settings  # noqa: F401 (fixture)
from libvirt_fixture import libvirtd  # noqa: F401  (session fixture)
from statsd_listener import Listener

GOOD_TIMEOUT = 480      # TCG boot + ssh, ~50-120 s here, more on a busy host
BROKEN_TIMEOUT = 60     # sshd is gone: this is how long the check waits for it


@pytest.fixture
def builder(tmp_path, zk_server, zk_chroot, kazoo):
    b = BuilderProcess(tmp_path, zk_server, zk_chroot, kazoo)
    yield b
    if b.proc and b.proc.poll() is None:
        b.stop()


@pytest.fixture
def broken_image(built_image, tmp_path):  # noqa: F811
    """A copy of the node image whose sshd binary is removed: it boots, ssh never answers."""
    import guestfs
    base = str(tmp_path / "broken")
    shutil.copyfile(built_image.path("qcow2"), base + ".qcow2")
    g = guestfs.GuestFS(python_return_dict=True)
    for s in guestfs_backend_settings():
        g.set_backend_setting(s, "1")
    g.add_drive_opts(base + ".qcow2", format="qcow2", readonly=0)
    g.launch()
    try:
        root = g.inspect_os()[0]
        for dev, mp in sorted(g.inspect_get_mountpoints(root).items(), key=lambda kv: len(kv[0])):
            g.mount(mp, dev)
        assert g.is_file("/usr/sbin/sshd")
        g.rm("/usr/sbin/sshd")
        g.umount_all()
    finally:
        g.shutdown()
        g.close()
    return base


def uploads(builder):
    return builder.uploads("debian", "lv")


def domains(libvirtd):  # noqa: F811
    return [x for x in libvirtd.virsh("list", "--all", "--name").split() if x.strip()]


def verify_of(rec):
    return rec.get("poold_verify") or {}


def test_good_image_verified_ready_broken_failed_kept_and_never_reuploaded(builder, libvirtd, built_image,  # noqa: F811
                                                                          broken_image, kazoo):
    pool = "pv-" + uuid.uuid4().hex[:8]
    prov = libvirt_provider("lv", libvirtd, pool, ["debian"], **{
        "domain-type": "qemu", "network-mode": "user", "port-range": [23400, 23449]})
    di = diskimage(formats=["qcow2"], env={"FAKE_DIB_COPY_FROM": built_image.base})
    di["poold"] = {"verify": {"timeout": GOOD_TIMEOUT, "username": "zuul", "private-key": built_image.private_key,
                              "commands": ["sudo -n true", "test -x /usr/sbin/sshd"]}}
    builder.config([di], [prov])
    statsd = Listener()
    builder.start(env=statsd.env())

    # Checked: still Nodepool's `uploading` (no launcher boots it), poold_verify says so.
    (b1, u1, rec), = wait_for(lambda: [x for x in uploads(builder) if verify_of(x[2]).get("state") == "checking"],
                              timeout=300, what="the first upload under its check")
    assert rec["state"] == "uploading" and rec["external_id"]
    assert verify_of(rec)["log"].endswith("debian-%s.verify-lv-%s.log" % (b1, u1))
    text = poolctl(builder.config_path, "image-list").stdout
    assert "uploading (verifying)" in text, text
    wait_for(lambda: [d for d in domains(libvirtd) if d.startswith("lv-np9%s" % u1)], timeout=60,
             what="the verify server defined")

    (_, _, rec), = wait_for(lambda: [x for x in uploads(builder) if x[2]["state"] != "uploading"],
                            timeout=GOOD_TIMEOUT + 60, what="the first check over")
    assert rec["state"] == "ready", (rec, builder.log()[-4000:])
    assert verify_of(rec)["state"] == "passed"
    log = builder.log()
    assert "verified upload %s of image debian-%s to lv" % (u1, b1) in log
    assert not os.path.exists(verify_of(rec).get("log") or builder.log_dir + "/none")  # kept on failure only
    text = poolctl(builder.config_path, "image-list").stdout
    assert "ready (verified)" in text, text
    js = json.loads(poolctl(builder.config_path, "--json", "image-list").stdout)
    assert [r["state"] for r in js] == ["ready"]  # the JSON state stays Nodepool's
    wait_for(lambda: not domains(libvirtd), timeout=60, what="the verify server deleted")
    good_volume = rec["external_id"]

    # A broken build: its check starts; the builder is killed with the server booting.
    di["env-vars"]["FAKE_DIB_COPY_FROM"] = broken_image
    di["poold"]["verify"]["timeout"] = BROKEN_TIMEOUT
    reloads = builder.log().count("configuration changed, reloading")
    builder.config([di], [prov])
    wait_for(lambda: builder.log().count("configuration changed, reloading") > reloads, timeout=30,
             what="the builder reloaded its configuration")
    r = poolctl(builder.config_path, "image-build", "debian")
    assert r.returncode == 0, r.stderr

    def checking_with_server():
        return [x for x in uploads(builder) if x[0] != b1 and verify_of(x[2]).get("server")
                and x[2]["state"] == "uploading"]
    (b2, u2, rec), = wait_for(checking_with_server, timeout=300, what="the broken build's check booting")
    stopped = verify_of(rec)["server"]
    builder.stop()  # SIGTERM: a clean exit
    assert "deleted verify server %s (the builder stopped)" % stopped in builder.log()
    assert stopped not in domains(libvirtd)
    rec, = [x[2] for x in uploads(builder) if (x[0], x[1]) == (b2, u2)]
    assert rec["state"] == "failed" and "poold_verify" not in rec, rec  # not the image's fault
    builder.start(env=statsd.env())

    # The stopped check's record goes and the build is checked again; this time the builder is killed.
    (b2b, u2, rec), = wait_for(checking_with_server, timeout=300, what="the broken build's check booting again")
    assert b2b == b2
    left = verify_of(rec)["server"]
    assert left in domains(libvirtd)
    builder.proc.send_signal(signal.SIGKILL)
    builder.proc.wait(30)
    builder.proc = None
    builder.start(env=statsd.env())
    wait_for(lambda: "verify server %s (debian/%s/lv/%s) of provider lv was left behind" % (left, b2, u2)
             in builder.log(), timeout=60, what="the leftover verify server found")
    wait_for(lambda: left not in domains(libvirtd), timeout=60, what="the leftover verify server deleted")

    # The abandoned record goes; the broken build is uploaded and checked again, and fails.
    def failed_checks():
        return [x for x in uploads(builder) if x[0] == b2 and x[2]["state"] == "failed"
                and verify_of(x[2]).get("state") == "failed"]
    (_, u3, rec), = wait_for(failed_checks, timeout=BROKEN_TIMEOUT + 300, what="the broken build failed its check")
    v = verify_of(rec)
    assert v["reason"].startswith("ssh timeout"), v
    with open(v["log"]) as f:
        vlog = f.read()
    assert "ssh timeout" in vlog and "---- console of" in vlog, vlog[-3000:]
    assert rec["external_id"] in libvirtd.volumes(pool)  # kept for inspection
    text = poolctl(builder.config_path, "image-list").stdout
    assert "failed (verify: ssh timeout" in text, text

    # Never uploaded again, not cleaned away; the verified upload of build 1 still serves.
    time.sleep(4)  # eight cleanup and twenty scheduling passes (builder_fixture's intervals)
    assert [x[1] for x in uploads(builder) if x[0] == b2] == [u3]
    ready = [x for x in uploads(builder) if x[2]["state"] == "ready"]
    assert [(x[0], x[1]) for x in ready] == [(b1, u1)]
    assert good_volume in libvirtd.volumes(pool)
    wait_for(lambda: not domains(libvirtd), timeout=60, what="no verify server left")
    assert "leaked" not in builder.log()
    builder.stop()
    lines = statsd.lines()
    assert "poold.builder.verify.debian.lv.passed:1|c" in lines, lines
    assert "poold.builder.verify.debian.lv.failed:1|c" in lines, lines
    assert len([l for l in lines if l.startswith("poold.builder.verify.debian.lv:") and l.endswith("|ms")]) == 2
