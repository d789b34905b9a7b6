"""poold-builder's builds recorded in ZooKeeper as Nodepool's builder records
them (protocol.md §1.6, §4.1): scheduling, the child process, its log,
failure, build-timeout, request-build, pause, retention, two builders sharing
one ZooKeeper, malformed records. The image command is the fake-image-create
test double (dib-cmd); ZooKeeper and the daemon are real."""
import json
import os
import re
import subprocess
import time

import pytest
from kazoo.recipe.lock import Lock

from builder_fixture import BuilderProcess, diskimage, poolctl, wait_for
from harness import program

HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def builder(tmp_path, zk_server, zk_chroot, kazoo):
    b = BuilderProcess(tmp_path, zk_server, zk_chroot, kazoo)
    yield b
    b.stop()


def test_build_recorded_ready_with_formats_outputs_and_log(builder, tmp_path, kazoo):
    rec_dir = tmp_path / "rec"
    rec_dir.mkdir()
    builder.config([diskimage(env={"FAKE_DIB_RECORD": str(rec_dir), "MY_VAR": "x y"}, username="ci",
                              **{"python-path": "/usr/bin/python3", "shell-type": "bash"})],
                   **{"elements-dir": "/opt/elements"})
    builder.start()
    ready = wait_for(lambda: builder.ready_builds("debian"), what="a ready build")
    (bid, rec), = ready.items()
    assert HEX32.match(bid)
    assert rec["state"] == "ready" and rec["formats"] == "qcow2,raw"
    assert rec["builder"] == os.uname().nodename and rec["builder_id"] == builder.builder_id()
    assert rec["username"] == "ci" and rec["python_path"] == "/usr/bin/python3" and rec["shell_type"] == "bash"
    assert isinstance(rec["state_time"], float) and abs(rec["state_time"] - time.time()) < 60

    base = "debian-" + bid
    assert builder.image_files("debian", bid) == sorted(
        [base + s for s in (".qcow2", ".qcow2.md5", ".qcow2.sha256", ".raw", ".raw.md5", ".raw.sha256")])

    # Nodepool's exact command line and environment.
    out = os.path.join(builder.images_dir, base)
    seen = json.loads((rec_dir / (base + ".json")).read_text())
    assert seen["argv"][1:] == ["-x", "-t", "qcow2,raw", "--checksum", "--no-tmpfs",
                                "--qemu-img-options", "compat=0.10", "-o", out, "debian-minimal", "vm"]
    env = seen["env"]
    assert env["DIB_RELEASE"] == "bookworm" and env["DIB_IMAGE_NAME"] == "debian"
    assert env["DIB_IMAGE_FILENAME"] == out and env["ELEMENTS_PATH"] == "/opt/elements"
    assert env["DIB_DEV_USER_USERNAME"] == "ci" and env["MY_VAR"] == "x y"
    assert env["POOLD_BUILDER_INTERVAL_MS"] == "200"  # the daemon's own environment is passed on

    log = open(os.path.join(builder.log_dir, base + ".log")).read()
    assert "fake-image-create: building %s (qcow2,raw) from debian-minimal vm" % out in log
    assert log.endswith("Exit code: 0\n")

    # Nothing else is built while the build is fresh (rebuild-age one day).
    time.sleep(1.0)
    assert list(builder.builds("debian")) == [bid]


def test_stage_cache_limits_reach_the_build_and_bad_ones_are_refused(builder, tmp_path):
    """--stage-cache-max-age/--stage-cache-max-size reach disk-image-create (which prunes with
    them) through the build's environment; a value that does not parse stops the daemon at
    start, naming it, rather than failing every build later."""
    rec_dir = tmp_path / "rec"
    rec_dir.mkdir()
    builder.config([diskimage(env={"FAKE_DIB_RECORD": str(rec_dir)})])
    bad = ((["--stage-cache-max-age", "3x"], {}, "--stage-cache-max-age '3x' is not an age"),
           (["--stage-cache-max-size", "lots"], {}, "--stage-cache-max-size 'lots' is not a size"),
           ([], {"POOLD_STAGE_CACHE_MAX_SIZE": "-1G"}, "POOLD_STAGE_CACHE_MAX_SIZE='-1G' is not a size"))
    for args, env, why in bad:
        p = subprocess.run([program("poold-builder"), "-f", "-c", builder.config_path] + args,
                           capture_output=True, text=True, timeout=30, env=dict(os.environ, **env))
        assert p.returncode == 2 and why in p.stderr, p.stderr
    builder.start("--stage-cache-max-age", "3d", "--stage-cache-max-size", "5G")
    (bid, _), = wait_for(lambda: builder.ready_builds("debian"), what="a build").items()
    env = json.loads((rec_dir / ("debian-%s.json" % bid)).read_text())["env"]
    assert env["POOLD_STAGE_CACHE_MAX_AGE"] == "3d" and env["POOLD_STAGE_CACHE_MAX_SIZE"] == "5G"


def test_failed_build_recorded_failed_and_log_kept(builder, kazoo):
    builder.config([diskimage(env={"FAKE_DIB_FAIL": "1"})])
    builder.start()
    failed = wait_for(lambda: [(k, v) for k, v in builder.builds("debian").items() if v["state"] == "failed"],
                      what="a failed build")
    bid, rec = failed[0]
    assert rec["builder_id"] == builder.builder_id() and "formats" not in rec
    log = open(os.path.join(builder.log_dir, "debian-%s.log" % bid)).read()
    assert "ERROR: element failed" in log and log.endswith("Exit code: 3\n")
    assert "build of image debian-%s failed: exit code 3" % bid in builder.log()
    # Cleanup removes the failed record but keeps its log.
    wait_for(lambda: bid not in builder.builds("debian"), what="failed build record removed")
    assert os.path.exists(os.path.join(builder.log_dir, "debian-%s.log" % bid))
    assert builder.alive()


def test_build_timeout_kills_the_child_and_fails(builder):
    builder.config([diskimage(env={"FAKE_DIB_HANG": "1"}, **{"build-timeout": 1})])
    t0 = time.time()
    builder.start()
    failed = wait_for(lambda: [(k, v) for k, v in builder.builds("debian").items() if v["state"] == "failed"],
                      what="a timed-out build")
    assert time.time() - t0 < 15
    bid = failed[0][0]
    log = open(os.path.join(builder.log_dir, "debian-%s.log" % bid)).read()
    assert "fake-image-create: hanging" in log
    assert "Build timeout for image debian" in log and re.search(r"Exit code: -(15|9)\n$", log)
    assert "build-timeout reached" in builder.log()
    # The hanging child is gone: no process still runs the fake builder with this output.
    out = os.path.join(builder.images_dir, "debian-" + bid)
    procs = [p for p in os.listdir("/proc") if p.isdigit()]
    for p in procs:
        try:
            cmdline = open("/proc/%s/cmdline" % p, "rb").read().decode(errors="replace")
        except OSError:
            continue
        assert out not in cmdline, "the timed-out build still runs as pid %s" % p


def test_request_build_triggers_a_rebuild_and_is_removed(builder, kazoo):
    builder.config([diskimage()])
    builder.start()
    first = wait_for(lambda: builder.ready_builds("debian"), what="first build")
    kazoo.create("/nodepool/images/debian/request-build", b"")
    two = wait_for(lambda: len(builder.ready_builds("debian")) == 2 and builder.ready_builds("debian"),
                   what="rebuild on request")
    assert set(first) < set(two)
    wait_for(lambda: not kazoo.exists("/nodepool/images/debian/request-build"), what="request removed")


def test_poolctl_image_build_request_is_honoured(builder, kazoo):
    builder.config([diskimage()])
    builder.start()
    wait_for(lambda: builder.ready_builds("debian"), what="first build")
    r = poolctl(builder.config_path, "image-build", "debian")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: len(builder.ready_builds("debian")) == 2, what="build from poolctl image-build")
    r = poolctl(builder.config_path, "--json", "dib-image-list")
    rows = json.loads(r.stdout)
    assert {row["state"] for row in rows} == {"ready"} and len(rows) == 2
    assert all(row["builder"] == os.uname().nodename and row["formats"] == ["qcow2", "raw"] for row in rows)


def test_paused_in_config_is_not_built(builder, kazoo):
    builder.config([diskimage(pause=True), diskimage(name="other")])
    builder.start()
    wait_for(lambda: builder.ready_builds("other"), what="the unpaused image built")
    time.sleep(1.0)
    assert builder.builds("debian") == {}


def test_poolctl_image_pause_stops_builds_until_unpaused(builder, kazoo):
    builder.config([diskimage()])
    r = poolctl(builder.config_path, "image-pause", "debian")
    assert r.returncode == 0, r.stderr
    builder.start()
    time.sleep(1.5)
    assert builder.builds("debian") == {}
    assert "watching /nodepool/images" in builder.log()
    r = poolctl(builder.config_path, "image-unpause", "debian")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: builder.ready_builds("debian"), what="build after unpause")


def test_rebuild_age_and_retention_keep_two_newest_ready(builder, kazoo):
    builder.config([diskimage(**{"rebuild-age": 1})])
    builder.start()
    seen = {}

    def enough():
        seen.update({k: v["state_time"] for k, v in builder.ready_builds("debian").items()})
        return len(seen) >= 4
    wait_for(enough, timeout=40, what="four builds over time")

    def settled():
        ready = builder.ready_builds("debian")
        return len(ready) <= 2 and ready
    wait_for(settled, what="retention down to two ready builds")
    time.sleep(0.3)
    builder.stop()
    ready = builder.ready_builds("debian")
    gone = [b for b in seen if b not in builder.builds("debian")]
    assert gone, "old builds were never removed"
    for b in gone:
        assert builder.image_files("debian", b) == [], "files of removed build %s left behind" % b
    for b in ready:
        assert builder.image_files("debian", b), "files of kept build %s removed" % b
    # The two kept are the newest ones.
    assert sorted(ready.values(), key=lambda r: r["state_time"]) == \
        sorted(ready.values(), key=lambda r: r["state_time"])[-2:]


def test_dib_image_delete_and_files_unknown_to_zookeeper_are_removed(builder, kazoo):
    builder.config([diskimage()])
    builder.start()
    (bid, _), = wait_for(lambda: builder.ready_builds("debian"), what="a build").items()
    # A file of a build ZooKeeper does not know (e.g. its record was erased).
    stray = os.path.join(builder.images_dir, "debian-%s.qcow2" % ("f" * 32))
    open(stray, "w").write("x")
    keep = os.path.join(builder.images_dir, "notes.txt")
    open(keep, "w").write("not an image")
    wait_for(lambda: not os.path.exists(stray), what="stray file removed")
    assert os.path.exists(keep)
    r = poolctl(builder.config_path, "dib-image-delete", "debian-" + bid)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: bid not in builder.builds("debian"), what="deleted build removed")
    assert builder.image_files("debian", bid) == []


def test_image_removed_from_config_has_its_builds_deleted(builder, kazoo):
    builder.config([diskimage(), diskimage(name="other")])
    builder.start()
    (bid, _), = wait_for(lambda: builder.ready_builds("other"), what="other built").items()
    wait_for(lambda: builder.ready_builds("debian"), what="debian built")
    builder.config([diskimage()])
    wait_for(lambda: builder.builds("other") == {}, what="builds of the removed image deleted")
    assert builder.image_files("other", bid) == []
    assert builder.ready_builds("debian")


def test_two_builders_never_build_one_image_at_once(tmp_path, zk_server, zk_chroot, kazoo):
    b1 = BuilderProcess(tmp_path, zk_server, zk_chroot, kazoo, name="b1")
    b2 = BuilderProcess(tmp_path, zk_server, zk_chroot, kazoo, name="b2")
    images = [diskimage(name="img%d" % i, env={"FAKE_DIB_SLEEP": "0.5"}) for i in range(4)]
    for b in (b1, b2):
        b.config(images)
    overlaps = []
    try:
        b1.start()
        b2.start()
        deadline = time.time() + 40
        while time.time() < deadline:
            done = 0
            for i in range(4):
                builds = b1.builds("img%d" % i)
                if sum(1 for r in builds.values() if r["state"] == "building") > 1:
                    overlaps.append(builds)
                done += any(r["state"] == "ready" for r in builds.values())
            if done == 4:
                break
            time.sleep(0.05)
        assert done == 4, "not every image was built"
        ids = {b1.builder_id(), b2.builder_id()}
        owners = set()
        for i in range(4):
            builds = b1.builds("img%d" % i)
            assert len(builds) == 1, "image img%d built twice: %s" % (i, builds)
            owners |= {r["builder_id"] for r in builds.values()}
        assert owners <= ids
        assert overlaps == []
    finally:
        b1.stop()
        b2.stop()


def test_build_lock_held_elsewhere_blocks_building(builder, kazoo):
    builder.config([diskimage()])
    lock = Lock(kazoo, "/nodepool/images/debian/builds/lock")
    assert lock.acquire(blocking=False)
    try:
        builder.start()
        time.sleep(1.5)
        assert builder.builds("debian") == {}
    finally:
        lock.release()
    wait_for(lambda: builder.ready_builds("debian"), what="build once the lock is free")


def test_malformed_records_are_logged_skipped_and_kept(builder, kazoo):
    bad_build = "/nodepool/images/debian/builds/" + "b" * 32
    kazoo.create(bad_build, b"{not json", makepath=True)
    good = {"state": "ready", "state_time": time.time(), "builder_id": "someone-else", "formats": "qcow2,raw"}
    kazoo.create("/nodepool/images/debian/builds/" + "c" * 32, json.dumps(good).encode())
    bad_upload = "/nodepool/images/debian/builds/%s/providers/p/images/0000000001" % ("c" * 32)
    kazoo.create(bad_upload, b'{"state": 7}', makepath=True)
    builder.config([diskimage(**{"rebuild-age": 1})])
    builder.start()
    # It keeps building (the other builder's build goes stale after 1 s) ...
    wait_for(lambda: any(r.get("builder_id") == builder.builder_id() for r in builder.ready_builds("debian").values()),
             what="a build of ours")
    time.sleep(1.5)
    assert builder.alive()
    log = builder.log()
    assert "malformed record %s" % bad_build in log and "malformed record %s" % bad_upload in log
    assert log.count("malformed record %s" % bad_build) == 1  # logged once
    # ... and never touches what it cannot read.
    assert kazoo.get(bad_build)[0] == b"{not json"
    assert kazoo.get(bad_upload)[0] == b'{"state": 7}'


def test_stop_during_a_build_kills_the_child_and_records_failed(builder, kazoo):
    builder.config([diskimage(env={"FAKE_DIB_HANG": "1"})])
    builder.start()
    (bid, rec), = wait_for(lambda: builder.builds("debian"), what="a build in progress").items()
    assert rec["state"] == "building"
    log_path = os.path.join(builder.log_dir, "debian-%s.log" % bid)
    wait_for(lambda: os.path.exists(log_path) and "hanging" in open(log_path).read(), what="the child running")
    builder.stop()
    assert builder.builds("debian")[bid]["state"] == "failed"
    assert open(log_path).read().endswith("Exit code: -9\n")
    assert not kazoo.get_children("/nodepool/images/debian/builds/lock")  # lock released
    out = os.path.join(builder.images_dir, "debian-" + bid)
    for p in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            assert out not in open("/proc/%s/cmdline" % p, "rb").read().decode(errors="replace")
        except OSError:
            pass


def test_formats_are_provider_needs_plus_formats_and_none_means_no_build(builder, kazoo):
    # No provider uses "lonely" and it lists no formats: Nodepool does not build it.
    builder.config([diskimage(name="lonely", formats=[]), diskimage(name="withfmt", formats=["raw"])])
    builder.start()
    (_, rec), = wait_for(lambda: builder.ready_builds("withfmt"), what="withfmt built").items()
    assert rec["formats"] == "raw"
    time.sleep(1.0)
    assert builder.builds("lonely") == {}


def test_records_left_by_a_crashed_builder_are_cleaned(tmp_path, zk_server, zk_chroot, kazoo):
    b = BuilderProcess(tmp_path, zk_server, zk_chroot, kazoo)
    os.makedirs(b.images_dir)
    me = "11111111-2222-4333-8444-555555555555"
    open(os.path.join(b.images_dir, "builder_id.txt"), "w").write(me + "\n")
    # A build of ours left in `building` with nobody holding the build lock, with a partial file.
    crashed = "d" * 32
    kazoo.create("/nodepool/images/debian/builds/" + crashed,
                 json.dumps({"state": "building", "state_time": time.time() - 100, "builder_id": me}).encode(),
                 makepath=True)
    partial = os.path.join(b.images_dir, "debian-%s.qcow2" % crashed)
    open(partial, "w").write("half")
    # Another builder's READY build with an `uploading` upload nobody holds (it crashed mid-upload).
    other = "a" * 32
    kazoo.create("/nodepool/images/debian/builds/" + other,
                 json.dumps({"state": "ready", "state_time": time.time(), "builder_id": "other",
                             "formats": "qcow2"}).encode())
    up = kazoo.create("/nodepool/images/debian/builds/%s/providers/gone/images/" % other,
                      json.dumps({"state": "uploading", "state_time": time.time()}).encode(),
                      makepath=True, sequence=True)
    b.config([diskimage(**{"rebuild-age": 86400})])
    try:
        b.start()
        wait_for(lambda: crashed not in b.builds("debian"), what="crashed build removed")
        assert not os.path.exists(partial)
        wait_for(lambda: not kazoo.exists(up), what="abandoned upload record removed")
        assert "build debian-%s was interrupted: marked failed" % crashed in b.log()
        assert other in b.builds("debian")  # not ours: left to its builder
    finally:
        b.stop()


def test_build_workers_bound_concurrent_builds(builder, kazoo):
    images = [diskimage(name="img%d" % i, env={"FAKE_DIB_SLEEP": "1.0"}) for i in range(3)]

    def building():
        return sum(1 for i in range(3) for r in builder.builds("img%d" % i).values() if r["state"] == "building")
    builder.config(images)
    builder.start("--build-workers", "2")
    peak = 0
    deadline = time.time() + 30
    while time.time() < deadline:
        peak = max(peak, building())
        if all(builder.ready_builds("img%d" % i) for i in range(3)):
            break
        time.sleep(0.05)
    assert all(builder.ready_builds("img%d" % i) for i in range(3))
    assert peak == 2, "expected two builds at once with --build-workers 2, saw at most %d" % peak


def test_boot_check_logs_go_with_their_failed_upload_and_orphans_after_a_day(builder, kazoo):
    """Logs of failed boot checks (build-log-dir/<image>-<build>.verify-<provider>-<upload>.log) do
    not pile up (issue 11): when the cleanup deletes a failed upload record (only the newest failed
    one per image and provider stays) its log and known_hosts go with it; a verify log that no upload
    record names is removed once a day old, a fresh one (a check just starting) is kept, and so are
    the kept record's log however old, build logs and other files. Records are written into ZooKeeper
    (image and provider unknown to this builder's config: nothing in a cloud)."""
    builder.config([])
    os.makedirs(builder.log_dir, exist_ok=True)
    now = time.time()
    bid, bid2 = "a" * 32, "b" * 32
    base = "/nodepool/images/vimg/builds/"
    kazoo.create(base + bid, json.dumps({"state": "ready", "state_time": now - 1000, "builder": "other",
                                         "builder_id": "someone-else", "formats": ["qcow2"]}).encode(),
                 makepath=True)
    log = lambda b, u: os.path.join(builder.log_dir, "vimg-%s.verify-elsewhere-%s.log" % (b, u))
    ups = base + bid + "/providers/elsewhere/images/"
    for uid, age in (("0000000001", 100), ("0000000002", 50)):
        kazoo.create(ups + uid, json.dumps({"state": "failed", "state_time": now - age, "poold_verify": {
            "state": "failed", "reason": "ssh timeout", "log": log(bid, uid)}}).encode(), makepath=True)
    files = {"old_failed": log(bid, "0000000001"), "old_failed_kh": log(bid, "0000000001") + ".known_hosts",
             "kept": log(bid, "0000000002"), "orphan": log(bid2, "0000000009"),
             "orphan_kh": log(bid2, "0000000009") + ".known_hosts", "fresh_orphan": log(bid2, "0000000008"),
             "build_log": os.path.join(builder.log_dir, "vimg-%s.log" % bid2),
             "other": os.path.join(builder.log_dir, "notes.verify-x-1.log")}
    two_days_ago = now - 2 * 86400
    for k, p in files.items():
        with open(p, "w") as f:
            f.write(k + "\n")
        if k not in ("old_failed", "old_failed_kh", "fresh_orphan"):
            os.utime(p, (two_days_ago, two_days_ago))
    builder.start()
    wait_for(lambda: not kazoo.exists(ups + "0000000001"), what="the older failed upload record deleted")
    gone = ("old_failed", "old_failed_kh", "orphan", "orphan_kh")
    wait_for(lambda: not any(os.path.exists(files[k]) for k in gone), what="its log and the orphan removed")
    time.sleep(1.5)  # three more cleanup passes (500 ms)
    assert kazoo.exists(ups + "0000000002")
    assert sorted(k for k, p in files.items() if os.path.exists(p)) == ["build_log", "fresh_orphan", "kept",
                                                                       "other"]
    text = builder.log()
    assert "removed boot check log %s (its upload record is deleted)" % files["old_failed"] in text, text
    assert "removed boot check log %s (no upload record names it)" % files["orphan"] in text, text
