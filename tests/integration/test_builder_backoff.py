"""An image whose builds keep failing backs off (poold's addition to
Nodepool's fixed retry): the wait doubles with each failure in a row up to a
cap, is written into the failed build record (poold_failures,
poold_retry_time), which cleanup keeps while it is the image's newest
finished build, so a restarted builder still waits and poolctl dib-image-list
says so; statsd gauges carry the count and the next attempt; a successful
build or `poolctl image-build` ends it. The image command is the
fake-image-create test double; ZooKeeper and the daemon are real."""
import json
import re
import time

import pytest

from builder_fixture import BuilderProcess, diskimage, poolctl, wait_for
from statsd_listener import Listener, has


@pytest.fixture
def builder(tmp_path, zk_server, zk_chroot, kazoo):
    b = BuilderProcess(tmp_path, zk_server, zk_chroot, kazoo)
    yield b
    b.stop()


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


def failed(builder, image="debian"):
    return {k: v for k, v in builder.builds(image).items() if v["state"] == "failed"}


def test_wait_doubles_up_to_the_cap_recorded_logged_and_measured(builder, listener):
    builder.env.update({"POOLD_BUILD_RETRY_MS": "400", "POOLD_BUILD_RETRY_MAX_MS": "1600"})
    builder.config([diskimage(env={"FAKE_DIB_FAIL": "1", "FAKE_DIB_SLEEP": "0.4"})])
    builder.start(env=listener.env())
    seen_failed, started = {}, {}

    def five():
        for bid, rec in builder.builds("debian").items():
            if rec["state"] == "building":
                started.setdefault(bid, rec["state_time"])
            elif rec["state"] == "failed":
                seen_failed.setdefault(bid, rec)
        return len(seen_failed) >= 5
    wait_for(five, timeout=60, what="five failed builds")
    recs = sorted(seen_failed.items(), key=lambda kv: kv[1]["state_time"])
    assert [r["poold_failures"] for _, r in recs[:5]] == [1, 2, 3, 4, 5]
    for (_, r), want in zip(recs, [0.4, 0.8, 1.6, 1.6, 1.6]):
        assert abs(r["poold_retry_time"] - r["state_time"] - want) < 0.05, r
    # Each next build started only once the previous one's wait was over.
    for (_, prev), (bid, _) in zip(recs, recs[1:5]):
        assert bid in started, "build %s never seen building" % bid
        assert started[bid] >= prev["poold_retry_time"] - 0.01, (prev, started[bid])

    log = builder.log()
    assert "image debian failed 1 time in a row; next attempt in 0.4 s" in log
    assert "image debian failed 2 times in a row; next attempt in 0.8 s" in log
    assert "image debian failed 4 times in a row; next attempt in 1.6 s" in log
    lines = listener.wait(lambda ls: has(ls, "nodepool.dib_image_build.debian.status.consecutive_failures", "g", 5),
                          what="the failure count gauge")
    nexts = [float(l.split(":")[1].split("|")[0]) for l in lines
             if l.startswith("nodepool.dib_image_build.debian.status.next_attempt:")]
    assert int(recs[0][1]["poold_retry_time"]) in nexts
    # Older failed records go; the newest one stays while the image keeps failing.
    wait_for(lambda: len(failed(builder)) == 1, what="older failed records removed")


def test_backoff_survives_restart_shows_in_dib_image_list_and_image_build_resets_it(builder, kazoo):
    builder.env["POOLD_BUILD_RETRY_MS"] = "600000"  # 10 min: no retry during the test unless asked
    builder.config([diskimage(env={"FAKE_DIB_FAIL": "1"})])
    builder.start()
    (bid, rec), = wait_for(lambda: failed(builder), what="a failed build").items()
    assert rec["poold_failures"] == 1 and abs(rec["poold_retry_time"] - rec["state_time"] - 600) < 1
    assert "image debian failed 1 time in a row; next attempt in 10 min" in builder.log()
    time.sleep(1.5)  # three cleanup passes
    assert list(builder.builds("debian")) == [bid]

    r = poolctl(builder.config_path, "dib-image-list")
    assert r.returncode == 0, r.stderr
    row = [l for l in r.stdout.splitlines() if bid in l][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4] == "failed (next in 10 min)", cells
    objs = json.loads(poolctl(builder.config_path, "--json", "dib-image-list").stdout)
    assert objs[0]["state"] == "failed"
    assert list(objs[0]) == ["id", "image", "builder", "formats", "state", "age"]  # Nodepool's keys only

    # A restarted builder reads the wait from ZooKeeper.
    builder.stop()
    builder.start()
    time.sleep(1.5)
    assert list(builder.builds("debian")) == [bid]

    # poolctl image-build skips the wait and starts counting again.
    r = poolctl(builder.config_path, "image-build", "debian")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: [k for k in failed(builder) if k != bid], what="a build on request")
    assert "manual build request for image debian: back-off after 1 failed build in a row reset" in builder.log()
    wait_for(lambda: bid not in builder.builds("debian"), what="the older failed record removed")
    (bid2, rec2), = failed(builder).items()
    assert rec2["poold_failures"] == 1
    # The request stays (Nodepool removes it after a success only) but no longer skips the wait.
    assert kazoo.exists("/nodepool/images/debian/request-build")
    time.sleep(1.5)
    assert list(builder.builds("debian")) == [bid2]


def test_success_ends_the_backoff(builder, listener):
    builder.env.update({"POOLD_BUILD_RETRY_MS": "300", "POOLD_BUILD_RETRY_MAX_MS": "600"})
    builder.config([diskimage(env={"FAKE_DIB_FAIL": "1"})])
    builder.start(env=listener.env())
    wait_for(lambda: any(r.get("poold_failures", 0) >= 2 for r in failed(builder).values()),
             what="two failures in a row")
    builder.config([diskimage()])  # fixed: reloaded within a second
    (rid, rec), = wait_for(lambda: builder.ready_builds("debian"), what="a successful build").items()
    assert "poold_failures" not in rec and "poold_retry_time" not in rec
    assert re.search(r"image debian built after \d+ failed builds in a row: back-off over", builder.log())
    wait_for(lambda: not failed(builder), what="failed records removed once a build is ready")
    listener.wait(lambda ls: has(ls, "nodepool.dib_image_build.debian.status.consecutive_failures", "g", 0) and
                  has(ls, "nodepool.dib_image_build.debian.status.next_attempt", "g", 0), what="gauges reset")
    r = poolctl(builder.config_path, "dib-image-list")
    assert "failed" not in r.stdout
