"""poold's daemon shape: config errors, the launcher component, clean stop, reload."""
import json
import os
import signal
import subprocess
import time

from harness import program
from launcher_fixture import launcher  # noqa: F401  (fixture)


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
