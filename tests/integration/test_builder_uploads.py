"""poold-builder's uploads into a real libvirt storage pool (a session
libvirtd, libvirt_fixture.py), recorded as Nodepool's ImageUpload records:
tags on the volume, retention of two uploads, retries then failure, leaked
volumes reaped, poolctl listings. Builds come from the fake-image-create
test double; everything else is real."""
import json
import os
import re
import signal
import time
import uuid

import pytest

from builder_fixture import BuilderProcess, diskimage, libvirt_provider, poolctl, wait_for
from libvirt_fixture import libvirtd  # noqa: F401  (session fixture)


@pytest.fixture
def builder(tmp_path, zk_server, zk_chroot, kazoo):
    b = BuilderProcess(tmp_path, zk_server, zk_chroot, kazoo)
    yield b
    b.stop()


@pytest.fixture
def pool_name():
    return "pb-" + uuid.uuid4().hex[:8]


def parse_volume(name):
    """provider, image name, format, tags of a provider_libvirt image volume name."""
    from urllib.parse import unquote
    parts = name.split("@")
    tags = dict(unquote(p).split("=", 1) for p in parts[3:])
    return unquote(parts[0]), unquote(parts[1]), unquote(parts[2]), tags


def ready_uploads(builder, provider, image="debian"):
    return [(b, u, r) for b, u, r in builder.uploads(image, provider) if r["state"] == "ready"]


def test_upload_recorded_ready_with_tags_and_listed_by_poolctl(builder, libvirtd, pool_name, kazoo):  # noqa: F811
    di = diskimage(metadata={"team": "ci"})
    prov = libvirt_provider("lv", libvirtd, pool_name, ["debian"],
                            **{"image-name-format": "np-{image_name}-{timestamp}"})
    builder.config([di], [prov])
    builder.start()
    (bid, uid, rec), = wait_for(lambda: ready_uploads(builder, "lv"), what="a ready upload")
    assert uid == "0000000001"  # the lock child bumped the sequence first, as in Nodepool
    assert rec["format"] == "qcow2" and re.fullmatch(r"np-debian-\d{10}", rec["external_name"])
    build = builder.builds("debian")[bid]
    assert rec["username"] == build["username"] == "zuul"
    vols = libvirtd.volumes(pool_name)
    assert rec["external_id"] in vols
    provider, name, fmt, tags = parse_volume(rec["external_id"])
    assert (provider, name, fmt) == ("lv", rec["external_name"], "qcow2")
    assert tags == {"team": "ci", "nodepool_build_id": bid, "nodepool_upload_id": uid,
                    "nodepool_provider_name": "lv"}
    # The bytes in the pool are the build's qcow2 file.
    with open(os.path.join(builder.images_dir, "debian-%s.qcow2" % bid), "rb") as f:
        local = f.read()
    with open(os.path.join(libvirtd.base, "pools", pool_name, rec["external_id"]), "rb") as f:
        assert f.read() == local

    r = poolctl(builder.config_path, "--json", "image-list")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [(x["id"], x["upload_id"], x["provider"], x["image"], x["external_name"], x["external_id"], x["state"])
            for x in rows] == [(bid, uid, "lv", "debian", rec["external_name"], rec["external_id"], "ready")]
    r = poolctl(builder.config_path, "dib-image-list")
    assert r.returncode == 0 and ("debian-" + bid) in r.stdout and "qcow2,raw" in r.stdout
    # Exactly one upload: nothing is uploaded again.
    time.sleep(1.0)
    assert len(builder.uploads("debian", "lv")) == 1


def test_old_uploads_deleted_beyond_two(builder, libvirtd, pool_name, kazoo):  # noqa: F811
    builder.config([diskimage()], [libvirt_provider("lv", libvirtd, pool_name, ["debian"])])
    builder.start()
    seen = {}

    def collect(n):
        for b, u, r in ready_uploads(builder, "lv"):
            seen[(b, u)] = r
        return len(seen) >= n
    for n in range(1, 5):
        wait_for(lambda: collect(n), what="%d uploads" % n)
        if n < 4:
            kazoo.ensure_path("/nodepool/images/debian/request-build")  # one more build, one more upload

    def settled():
        ups = builder.uploads("debian", "lv")
        return len(ups) == 2 and all(r["state"] == "ready" for _, _, r in ups) and ups
    ups = wait_for(settled, what="two uploads left")
    newest = sorted(seen.values(), key=lambda r: r["state_time"])[-2:]
    assert sorted(r["external_id"] for _, _, r in ups) == sorted(r["external_id"] for r in newest)
    kept = {r["external_id"] for r in newest}
    wait_for(lambda: set(libvirtd.volumes(pool_name)) == kept, what="old volumes deleted")
    # Builds whose uploads are gone are retired too, files and all.
    wait_for(lambda: len(builder.builds("debian")) == 2, what="old builds removed")
    for b, _ in seen:
        if b not in builder.builds("debian"):
            assert builder.image_files("debian", b) == []


def test_failing_upload_is_retried_then_failed(builder, libvirtd, pool_name):  # noqa: F811
    # Empty image files: the libvirt provider refuses to upload them.
    builder.config([diskimage(env={"FAKE_DIB_EMPTY": "1"})], [libvirt_provider("lv", libvirtd, pool_name, ["debian"])])
    builder.start()
    failed = wait_for(lambda: [x for x in builder.uploads("debian", "lv") if x[2]["state"] == "failed"],
                      what="a failed upload")
    log = builder.log()
    assert "attempt 1 failed" in log and "attempt 2 failed" in log
    assert "not a non-empty regular file" in log and "(after 3 attempts)" in log
    assert failed[0][2].get("external_id") is None
    assert libvirtd.volumes(pool_name) == []
    # The failed record is cleaned up later; the daemon stays up.
    wait_for(lambda: not [x for x in builder.uploads("debian", "lv") if x[1] == failed[0][1]],
             what="failed record removed")
    assert builder.alive()


def test_image_not_matching_its_sha256_file_is_never_uploaded(builder, libvirtd, pool_name):  # noqa: F811
    """The builder checks the file against its .sha256 (libcrypto's digest) before uploading."""
    builder.config([diskimage(env={"FAKE_DIB_BAD_SHA256": "1"})],
                   [libvirt_provider("lv", libvirtd, pool_name, ["debian"])])
    builder.start()
    wait_for(lambda: [x for x in builder.uploads("debian", "lv") if x[2]["state"] == "failed"],
             what="a failed upload")
    log = builder.log()
    assert re.search(r"debian-\w+\.qcow2: sha256 [0-9a-f]{64} does not match \S+\.qcow2\.sha256 "
                     r"\(after 0 attempts\)", log), log  # refused before any upload attempt
    assert libvirtd.volumes(pool_name) == []


def test_paused_provider_diskimage_is_not_uploaded(builder, libvirtd, pool_name):  # noqa: F811
    builder.config([diskimage()], [libvirt_provider("lv", libvirtd, pool_name, [{"name": "debian", "pause": True}])])
    builder.start()
    wait_for(lambda: builder.ready_builds("debian"), what="a build")
    time.sleep(1.0)
    assert builder.uploads("debian", "lv") == []


def test_poolctl_image_delete_removes_upload_and_volume_then_reuploads(builder, libvirtd, pool_name):  # noqa: F811
    builder.config([diskimage()], [libvirt_provider("lv", libvirtd, pool_name, ["debian"])])
    builder.start()
    (bid, uid, rec), = wait_for(lambda: ready_uploads(builder, "lv"), what="a ready upload")
    r = poolctl(builder.config_path, "image-delete", "--provider", "lv", "--image", "debian", "--build-id", bid,
                "--upload-id", uid)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: rec["external_id"] not in libvirtd.volumes(pool_name), what="volume deleted")
    # The build still has no ready upload: it is uploaded again under a new id.
    (b2, u2, r2), = wait_for(lambda: [x for x in ready_uploads(builder, "lv") if x[1] != uid], what="re-upload")
    assert b2 == bid and u2 > uid


def test_leaked_volume_is_reaped_after_two_passes(builder, libvirtd, pool_name, kazoo):  # noqa: F811
    builder.config([diskimage()], [libvirt_provider("lv", libvirtd, pool_name, ["debian"])])
    builder.start()
    (bid, uid, rec), = wait_for(lambda: ready_uploads(builder, "lv"), what="a ready upload")
    leak = "lv@debian-1@qcow2@nodepool_build_id=%s@nodepool_upload_id=0000000099@nodepool_provider_name=lv" % ("e" * 32)
    other = "lv@hand-made@qcow2"  # ours by name but without our tags: not ours to reap
    libvirtd.virsh("vol-create-as", pool_name, leak, "4096", "--format", "raw")
    libvirtd.virsh("vol-create-as", pool_name, other, "4096", "--format", "raw")
    wait_for(lambda: leak not in libvirtd.volumes(pool_name), what="leaked volume deleted")
    log = builder.log()
    assert "image %s is unknown to ZooKeeper; deleting it if still so" % leak in log
    assert "deleting the leak" in log
    assert rec["external_id"] in libvirtd.volumes(pool_name)
    assert other in libvirtd.volumes(pool_name)


def test_upload_survives_restart_and_two_builders_upload_once(tmp_path, zk_server, zk_chroot, kazoo,
                                                              libvirtd, pool_name):  # noqa: F811
    b1 = BuilderProcess(tmp_path, zk_server, zk_chroot, kazoo, name="b1")
    b2 = BuilderProcess(tmp_path, zk_server, zk_chroot, kazoo, name="b2")
    for b in (b1, b2):
        b.config([diskimage()], [libvirt_provider("lv", libvirtd, pool_name, ["debian"])])
    try:
        b1.start()
        b2.start()
        wait_for(lambda: ready_uploads(b1, "lv"), what="an upload")
        time.sleep(1.5)
        ups = b1.uploads("debian", "lv")
        assert len(ups) == 1, ups
        assert len(b1.builds("debian")) == 1
        # Only the builder holding the files uploaded it.
        (bid, _, _), = ups
        owner = b1 if b1.image_files("debian", bid) else b2
        assert b1.builds("debian")[bid]["builder_id"] == owner.builder_id()
    finally:
        b1.stop()
        b2.stop()


def test_upload_timeout_fails_the_record_and_drops_the_late_image(builder, libvirtd, pool_name):  # noqa: F811
    # 16 MiB take longer than 30 ms to checksum and stream: every upload times out.
    builder.config([diskimage(env={"FAKE_DIB_MB": "16"}, formats=["qcow2"])],
                   [libvirt_provider("lv", libvirtd, pool_name, ["debian"])])
    builder.env["POOLD_UPLOAD_TIMEOUT_MS"] = "30"
    builder.env["POOLD_UPLOAD_RETRY_MS"] = "2000"  # no second upload during the test
    builder.start()
    failed = wait_for(lambda: [x for x in builder.uploads("debian", "lv") if x[2]["state"] == "failed"],
                      what="a timed-out upload")
    uid = failed[0][1]
    assert "upload %s of image debian-%s to lv failed: image-upload-timeout reached" % (uid, failed[0][0]) \
        in builder.log()
    wait_for(lambda: "upload %s finished after its timeout: deleting" % uid in builder.log(), timeout=60,
             what="the late upload finishing")
    wait_for(lambda: not [v for v in libvirtd.volumes(pool_name) if "nodepool_upload_id=" + uid in v],
             what="the late volume deleted")
    assert not [x for x in builder.uploads("debian", "lv") if x[2]["state"] == "ready"]


def test_build_and_upload_send_nodepool_statsd_metrics(builder, libvirtd, pool_name):  # noqa: F811
    """A real build and upload send Nodepool's builder metrics to STATSD_HOST:STATSD_PORT."""
    from statsd_listener import Listener, has
    listener = Listener()
    try:
        builder.config([diskimage()], [libvirt_provider("lv", libvirtd, pool_name, ["debian"])])
        builder.start(env=listener.env())
        wait_for(lambda: ready_uploads(builder, "lv"), what="a ready upload")
        lines = listener.wait(lambda ls: any(l.startswith("nodepool.image_update.debian.lv:") for l in ls),
                              what="upload metrics")
        assert has(lines, "nodepool.dib_image_build.debian.status.rc", "g", 0)
        assert any(l.startswith("nodepool.dib_image_build.debian.status.duration:") for l in lines)
        assert any(l.startswith("nodepool.dib_image_build.debian.qcow2.size:") for l in lines)
        assert has(lines, "nodepool.image_update.debian.lv", "c", 1)
        host = [l.split(".")[2] for l in lines if l.startswith("nodepool.builder.")][0]
        assert has(lines, "nodepool.builder.%s.image.debian.build.state" % host, "g", 1)
        assert has(lines, "nodepool.builder.%s.image.debian.build.state" % host, "g", 0)
        assert has(lines, "nodepool.builder.%s.image.debian.provider.lv.upload.state" % host, "g", 2)
    finally:
        listener.close()


def test_alien_image_list_shows_tagged_volumes_without_an_upload_record(builder, libvirtd, pool_name,
                                                                         kazoo):  # noqa: F811
    """poolctl alien-image-list (Nodepool's): cloud images carrying our build tags
    whose upload is not in ZooKeeper; the real upload and untagged volumes are not
    listed; a provider filter and --json work; an unknown provider is an error."""
    builder.config([diskimage()], [libvirt_provider("lv", libvirtd, pool_name, ["debian"])])
    builder.start()
    (bid, uid, rec), = wait_for(lambda: ready_uploads(builder, "lv"), what="a ready upload")
    builder.stop()  # its leak pass would delete the alien before we look
    alien = "lv@debian-7@qcow2@nodepool_build_id=%s@nodepool_upload_id=0000000077@nodepool_provider_name=lv" % ("a" * 32)
    libvirtd.virsh("vol-create-as", pool_name, alien, "4096", "--format", "raw")
    libvirtd.virsh("vol-create-as", pool_name, "lv@hand-made@qcow2", "4096", "--format", "raw")
    out = poolctl(builder.config_path, "alien-image-list")
    assert out.returncode == 0, out.stderr
    header = [c.strip() for c in out.stdout.splitlines()[1].strip("|").split("|")]
    assert header == ["Provider", "Name", "Image ID"], out.stdout
    assert alien in out.stdout
    assert rec["external_id"] not in out.stdout and "hand-made" not in out.stdout, out.stdout
    js = poolctl(builder.config_path, "--json", "alien-image-list", "lv")
    assert js.returncode == 0, js.stderr
    assert [r["id"] for r in json.loads(js.stdout)] == [alien], js.stdout
    bad = poolctl(builder.config_path, "alien-image-list", "nosuch")
    assert bad.returncode == 1 and "nosuch is not in the configuration" in bad.stderr


HOOK = """#!/usr/bin/python3
import json, os, sys
pool_dir, record, rc = %r, %r, %d
with open(record, "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "volume_there": os.path.exists(os.path.join(pool_dir, sys.argv[2])),
                        "file_there": os.path.exists(sys.argv[3])}) + "\\n")
print("hook stdout for", sys.argv[2])
print("hook stderr: %s", file=sys.stderr)
sys.exit(rc)
"""


def write_hook(tmp_path, libvirtd, pool_name, rc, say="fine"):
    path = str(tmp_path / "post-upload-hook")
    record = str(tmp_path / "hook-calls.jsonl")
    with open(path, "w") as f:
        f.write(HOOK % (os.path.join(libvirtd.base, "pools", pool_name), record, rc, say))
    os.chmod(path, 0o755)
    return path, record


def hook_calls(record):
    try:
        return [json.loads(line) for line in open(record)]
    except FileNotFoundError:
        return []


def test_post_upload_hook_runs_with_provider_external_id_and_local_path(builder, libvirtd, pool_name,
                                                                        tmp_path):  # noqa: F811
    """Nodepool's post-upload-hook: after the image is in the provider and before the
    upload is recorded ready, HOOK PROVIDER EXTERNAL_ID LOCAL_PATH runs once."""
    hook, record = write_hook(tmp_path, libvirtd, pool_name, 0)
    builder.config([diskimage()], [libvirt_provider("lv", libvirtd, pool_name, ["debian"],
                                                    **{"post-upload-hook": hook})])
    builder.start()
    (bid, uid, rec), = wait_for(lambda: ready_uploads(builder, "lv"), what="a ready upload")
    calls = hook_calls(record)  # written before the hook exited, so before `ready`
    local = os.path.join(builder.images_dir, "debian-%s.qcow2" % bid)
    assert calls == [{"argv": ["lv", rec["external_id"], local], "volume_there": True, "file_there": True}]
    log = builder.log()
    assert "upload %s: post-upload-hook succeeded" % uid in log
    assert "hook stdout for %s" % rec["external_id"] in log and "hook stderr: fine" in log
    assert rec["external_id"] in libvirtd.volumes(pool_name)
    time.sleep(1.0)
    assert len(hook_calls(record)) == 1 and len(builder.uploads("debian", "lv")) == 1


def test_failing_post_upload_hook_fails_the_upload_and_deletes_the_image(builder, libvirtd, pool_name,
                                                                         tmp_path):  # noqa: F811
    """As in Nodepool: a hook exiting non-zero deletes the uploaded image and the
    upload is recorded failed (its stdout/stderr logged); the daemon carries on."""
    hook, record = write_hook(tmp_path, libvirtd, pool_name, 3, say="no thanks")
    builder.config([diskimage()], [libvirt_provider("lv", libvirtd, pool_name, ["debian"],
                                                    **{"post-upload-hook": hook})])
    builder.env["POOLD_UPLOAD_RETRY_MS"] = "2000"  # no second upload during the test
    builder.start()
    (bid, uid, rec), = wait_for(lambda: [x for x in builder.uploads("debian", "lv") if x[2]["state"] == "failed"],
                                what="a failed upload")
    (call,) = hook_calls(record)
    assert call["argv"][0] == "lv" and call["volume_there"], call  # the image was uploaded when the hook ran
    wait_for(lambda: call["argv"][1] not in libvirtd.volumes(pool_name), what="the uploaded image deleted")
    log = builder.log()
    assert "upload %s: post-upload-hook failed: deleting %s" % (uid, call["argv"][1]) in log
    assert "deleted image %s from provider lv" % call["argv"][1] in log and "deleting the leak" not in log
    assert "upload %s of image debian-%s to lv failed: post-upload-hook %s: exited 3" % (uid, bid, hook) in log
    assert "hook stderr: no thanks" in log
    assert rec.get("external_id") is None
    assert not ready_uploads(builder, "lv") and builder.alive()


def test_delete_after_upload_removes_formats_uploaded_everywhere_except_keep_formats(builder, libvirtd, pool_name,
                                                                                      kazoo):  # noqa: F811
    """Nodepool's delete-after-upload: each local format (file, .md5, .sha256) goes
    once every provider listing the image has a ready upload of the build (a
    paused one holds it back), or at once when no provider uploads it; keep-formats
    stay. The build stays ready."""
    di = diskimage(formats=["qcow2", "raw", "vhd"], **{"delete-after-upload": True, "keep-formats": ["vhd"]})
    pool2 = pool_name + "-2"

    def providers(pause):
        return [libvirt_provider("lv", libvirtd, pool_name, ["debian"]),
                libvirt_provider("lv2", libvirtd, pool2, [{"name": "debian", "pause": pause}])]
    builder.config([di], providers(True))
    builder.start()
    (bid, _, _), = wait_for(lambda: ready_uploads(builder, "lv"), what="a ready upload to lv")
    base = "debian-" + bid
    qcow2 = [base + ".qcow2", base + ".qcow2.md5", base + ".qcow2.sha256"]
    vhd = [base + ".vhd", base + ".vhd.md5", base + ".vhd.sha256"]
    wait_for(lambda: not [f for f in builder.image_files("debian", bid) if ".raw" in f], what="raw files removed")
    time.sleep(1.5)  # three cleanup passes: lv2 (paused) has no upload yet, so qcow2 stays
    assert set(qcow2 + vhd) <= set(builder.image_files("debian", bid)), builder.image_files("debian", bid)

    builder.config([di], providers(False))
    builder.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: ready_uploads(builder, "lv2"), what="a ready upload to lv2")
    wait_for(lambda: not set(qcow2) & set(builder.image_files("debian", bid)), what="qcow2 files removed")
    assert set(vhd) <= set(builder.image_files("debian", bid)), builder.image_files("debian", bid)
    for f in [base + ".raw", base + ".raw.sha256"] + qcow2:  # they existed, and went this way
        assert "removed %s/%s (delete-after-upload)" % (builder.images_dir, f) in builder.log()
    assert builder.builds("debian")[bid]["state"] == "ready"
    assert [r["state"] for _, _, r in builder.uploads("debian", "lv") + builder.uploads("debian", "lv2")] == \
        ["ready", "ready"]


def test_hanging_post_upload_hook_is_bounded_by_image_upload_timeout(builder, libvirtd, pool_name,
                                                                      tmp_path):  # noqa: F811
    """A hook that never exits is killed when what is left of image-upload-timeout
    runs out (at least 1 s); the upload is failed and the uploaded image deleted."""
    hook = str(tmp_path / "hanging-hook")
    pidfile = str(tmp_path / "hook.pid")
    with open(hook, "w") as f:
        f.write("#!/bin/sh\necho $$ > %s\nexec sleep 600\n" % pidfile)
    os.chmod(hook, 0o755)
    builder.config([diskimage()], [libvirt_provider("lv", libvirtd, pool_name, ["debian"],
                                                    **{"post-upload-hook": hook})])
    builder.env["POOLD_UPLOAD_TIMEOUT_MS"] = "1500"
    builder.env["POOLD_UPLOAD_RETRY_MS"] = "5000"  # no second upload during the test
    builder.start()
    (bid, uid, _), = wait_for(lambda: [x for x in builder.uploads("debian", "lv") if x[2]["state"] == "failed"],
                              what="a timed-out upload")
    assert "upload %s of image debian-%s to lv failed: image-upload-timeout reached" % (uid, bid) in builder.log()
    pid = int(open(pidfile).read())
    wait_for(lambda: "upload %s finished after its timeout: deleting" % uid in builder.log(), what="hook killed")
    wait_for(lambda: not os.path.exists("/proc/%d" % pid) or
             open("/proc/%d/stat" % pid).read().split()[2] == "Z", what="the hook process gone")
    wait_for(lambda: not [v for v in libvirtd.volumes(pool_name) if "nodepool_upload_id=" + uid in v],
             what="the uploaded image deleted")
    assert not ready_uploads(builder, "lv")


def test_empty_record_left_by_a_late_lock_is_removed_but_a_locked_one_is_kept(builder, libvirtd, pool_name,
                                                                              kazoo):  # noqa: F811
    """A lock taken on an upload record just deleted recreates the record without data (the lock
    directory is made like kazoo's ensure_path, parents too). The builder's cleanup removes such an
    empty record holding nothing but an empty lock directory, instead of logging it as malformed
    forever; an empty record whose lock someone holds is kept, and the real upload is untouched."""
    builder.config([diskimage()], [libvirt_provider("lv", libvirtd, pool_name, ["debian"])])
    builder.start()
    (bid, uid, rec), = wait_for(lambda: ready_uploads(builder, "lv"), what="a ready upload")
    base = "/nodepool/images/debian/builds/%s/providers/lv/images/" % bid
    ghost, held = base + "0000000077", base + "0000000078"
    kazoo.ensure_path(ghost + "/lock")      # what the late lock leaves once it is released
    lock = kazoo.Lock(held + "/lock", "test")
    assert lock.acquire(timeout=10)
    try:
        wait_for(lambda: not kazoo.exists(ghost), what="the empty record removed")
        assert "removed empty record " + ghost in builder.log()
        time.sleep(1.5)     # three more cleanup passes (500 ms)
        assert kazoo.exists(held)
        assert [(b, u) for b, u, _ in ready_uploads(builder, "lv")] == [(bid, uid)]
    finally:
        lock.release()
