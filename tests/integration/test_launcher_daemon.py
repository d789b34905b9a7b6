"""poold's daemon shape: config errors, the launcher component, clean stop, reload."""
import json
import os
import signal
import subprocess
import time

from harness import program
from launcher_fixture import PROVIDER, launcher  # noqa: F401  (fixture)


def test_bad_config_exits_1_with_file_line_col(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("zookeeper-servers:\n  - host: 127.0.0.1\nlabels:\n  - name: x\n    bogus-key: 1\n")
    p = subprocess.run([program("poold"), "-c", str(cfg), "-f"], capture_output=True, timeout=30)
    assert p.returncode == 1
    err = p.stderr.decode()
    assert "%s:5:5:" % cfg in err and "bogus-key" in err, err


def test_launcher_component_registered_and_removed_on_sigterm(launcher):
    launcher.write_config()
    launcher.start()
    comps = launcher.components("launcher")
    assert len(comps) == 1
    c = comps[0]
    assert c["kind"] == "launcher" and c["state"] == "running" and c["model_api"] == 0
    assert c["hostname"] == os.uname().nodename.split(".")[0] or c["hostname"] == os.uname().nodename
    assert "version" in c
    rc = launcher.stop()
    assert rc == 0, launcher.log_text()
    assert launcher.components("launcher") == []


def test_sigint_stops_cleanly(launcher):
    launcher.write_config()
    launcher.start()
    assert launcher.stop(signal.SIGINT) == 0, launcher.log_text()


def test_sigterm_while_zookeeper_does_not_answer_stops_at_once(tmp_path):
    """A stop during the first connect (nothing listens at the configured ZooKeeper, e.g. an
    ensemble still down) ends poold within a second with exit 0, instead of after the 60 s
    connect timeout as systemd's stop would wait (issue 13)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]   # bound, never listening: connections are refused
    cfg = tmp_path / "nodepool.yaml"
    cfg.write_text("zookeeper-servers:\n  - host: 127.0.0.1\n    port: %d\nlabels: []\nproviders: []\n" % port)
    log = tmp_path / "poold.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([program("poold"), "-c", str(cfg), "-f"], stdout=out, stderr=subprocess.STDOUT)
    try:
        time.sleep(1.5)     # well inside the connect wait
        assert proc.poll() is None, log.read_text()
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        s.close()
    assert rc == 0, log.read_text()
    assert took < 2.0, "stopped after %.1f s\n%s" % (took, log.read_text())
    assert "stop requested while waiting for ZooKeeper" in log.read_text()


def test_invalid_reload_keeps_running_then_valid_reload_applies(launcher):
    launcher.write_config()
    launcher.start()
    time.sleep(1.1)  # mtime granularity: make the change visible
    launcher.write_config(text="labels: [\n")
    launcher.wait_for(lambda: "keeping the previous one" in launcher.log_text(), 10, "invalid reload")
    assert launcher.proc.poll() is None
    launcher.write_config()
    launcher.wait_for(lambda: "configuration reloaded" in launcher.log_text(), 10, "valid reload")
    launcher.proc.send_signal(signal.SIGHUP)
    launcher.wait_for(lambda: launcher.log_text().count("configuration reloaded") >= 2, 10, "SIGHUP reload")
    assert launcher.stop() == 0


def test_version_and_help_exit_0():
    p = subprocess.run([program("poold"), "--version"], capture_output=True, timeout=10)
    assert p.returncode == 0 and p.stdout.decode().startswith("poold ")
    p = subprocess.run([program("poold"), "--help"], capture_output=True, timeout=10)
    assert p.returncode == 0 and "-c" in p.stdout.decode()


def test_foreign_provider_warned_once_at_start_and_left_alone(launcher):
    """A provider of a driver poold does not launch for (aws) is validated, logged once at start as a
    FILE:LINE:COL warning that another launcher serves it, and gets no pool of poold's."""
    cfg = launcher.config()
    cfg["labels"].append({"name": "ubuntu-jammy"})
    cfg["providers"].append({
        "name": "ec2", "driver": "aws", "region-name": "us-west-2",
        "cloud-images": [{"name": "ubuntu", "image-id": "ami-1", "username": "ubuntu"}],
        "pools": [{"name": "main", "max-servers": 5,
                   "labels": [{"name": "ubuntu-jammy", "cloud-image": "ubuntu", "instance-type": "t3.medium",
                               "key-name": "zuul"}]}]})
    launcher.write_config(cfg)
    launcher.start()
    launcher.wait_for(lambda: launcher.components("pool"), 15, "pool components")
    time.sleep(1)   # several loop iterations: the warning must not repeat
    pools = launcher.components("pool")
    assert sorted(p["provider_name"] for p in pools) == [PROVIDER], pools
    log = launcher.log_text()
    lines = [line for line in log.splitlines() if "uses driver 'aws'" in line]
    assert len(lines) == 1, log
    text = open(launcher.config_path).read().splitlines()
    row = next(i for i, t in enumerate(text) if t.strip() == "driver: aws")
    pos = "%s:%d:%d:" % (launcher.config_path, row + 1, text[row].index("driver") + 1)
    assert "%s provider 'ec2' uses driver 'aws'" % pos in lines[0], lines[0]
    assert launcher.stop() == 0
