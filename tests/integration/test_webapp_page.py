"""The status page at / is one self-contained HTML page: headless Chromium
(Debian's `chromium`) loads it, its script fetches the JSON listings and the
rendered DOM shows a node the test created; a screenshot is kept under
<build>/test-artifacts/ for people to look at."""
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

import harness
from test_webapp import node_record, start, write_checked_builds
from launcher_fixture import launcher  # noqa: F401  (fixture)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(url, *extra, timeout=90):
    profile = tempfile.mkdtemp(prefix="poold-chromium-")
    try:
        return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                               "--no-first-run", "--user-data-dir=" + profile, "--window-size=1400,1000",
                               "--virtual-time-budget=15000", *extra, url],
                              capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_page_is_self_contained_html(launcher):
    web = start(launcher)
    status, hdrs, body = web.get("/")
    assert status == 200 and hdrs["Content-Type"].startswith("text/html")
    assert body.startswith("<!DOCTYPE html>") and "</html>" in body
    # No external assets: nothing is loaded from another origin.
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', body, re.I)
    assert "<script src" not in body and "<link" not in body
    # Values go in as text, never as markup.
    assert "innerHTML" not in body


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_status_page_in_headless_chromium_shows_the_node(launcher):
    launcher.kazoo.create("/nodepool/nodes/0000004242", json.dumps(node_record(
        provider="elsewhere", type=["fancy-label"], comment="<img src=x onerror=alert(1)>")).encode(),
        makepath=True)
    web = start(launcher)
    url = "http://127.0.0.1:%d/" % web.port
    r = chromium(url, "--dump-dom")
    assert r.returncode == 0, r.stderr[-3000:]
    dom = r.stdout
    assert "0000004242" in dom, dom[-3000:]
    assert "fancy-label" in dom
    assert re.search(r'id="ready" class="ok">ready<', dom), "the page shows the launcher ready"
    # The hostile comment is shown as text (escaped), not turned into an element.
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom and "<img src" not in dom
    outdir = os.path.join(harness.BUILD, "test-artifacts")
    os.makedirs(outdir, exist_ok=True)
    shot = os.path.join(outdir, "webapp-status.png")
    if os.path.exists(shot):
        os.unlink(shot)
    r = chromium(url, "--screenshot=" + shot)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(shot, "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000, len(png)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_status_page_shows_boot_check_outcomes_of_builds_and_uploads(launcher):
    """The status page's images table shows what the builder's boot checks found, from the
    listings' text State (the JSON keeps Nodepool's plain states): the build's "ready (verify failed
    on p2)" and the upload's "p2: failed (verify: ssh timeout)" (issue 11)."""
    ids = write_checked_builds(launcher.kazoo)
    web = start(launcher)
    url = "http://127.0.0.1:%d/" % web.port
    r = chromium(url, "--dump-dom")
    assert r.returncode == 0, r.stderr[-3000:]
    dom = r.stdout
    assert ids[0] in dom, dom[-3000:]
    assert "ready (verify failed on p2)" in dom and "ready (verified)" in dom and "ready (verifying)" in dom, dom
    assert "p2: failed (verify: ssh timeout)" in dom and "p1: ready (verified)" in dom, dom
    assert "p1: uploading (verifying)" in dom, dom
