"""poold-builder's process shape: config errors, component registration,
builder_id.txt, detaching with a pidfile, reload, and a clean stop."""
import json
import os
import signal
import subprocess
import time

import pytest

from harness import program


def write_config(path, zk_server, chroot, images_dir, extra=""):
    with open(path, "w") as f:
        f.write(zk_server.zookeeper_yaml(chroot) + """zookeeper-timeout: 5
images-dir: %s
build-log-dir: %s/logs
labels:
  - name: debian
diskimages:
  - name: debian
    elements: [debian-minimal, vm]
%s""" % (images_dir, images_dir, extra))


def builders(kazoo):
    path = "/nodepool/components/builder"
    if not kazoo.exists(path):
        return []
    out = []
    for child in kazoo.get_children(path):
        data, _ = kazoo.get(path + "/" + child)
        out.append(json.loads(data.decode()))
    return out


def wait_for(pred, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met within %ss" % timeout)


@pytest.fixture
def config(tmp_path, zk_server, zk_chroot):
    path = tmp_path / "nodepool.yaml"
    write_config(path, zk_server, zk_chroot, tmp_path / "images")
    return path


def test_invalid_config_exits_1_naming_file_line_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("images-dir: /tmp/x\nlabels:\n  - name: a\n    min-redy: 1\n")
    p = subprocess.run([program("poold-builder"), "-f", "-c", str(bad)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "%s:4:5: unknown key 'min-redy'" % bad in p.stderr


def test_missing_images_dir_is_refused(tmp_path, zk_server, zk_chroot):
    cfg = tmp_path / "n.yaml"
    cfg.write_text(zk_server.zookeeper_yaml())
    p = subprocess.run([program("poold-builder"), "-f", "-c", str(cfg)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "images-dir is required by the builder" in p.stderr


def test_registers_builder_component_and_stops_cleanly_on_sigterm(config, tmp_path, kazoo):
    proc = subprocess.Popen([program("poold-builder"), "-f", "-c", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        comps = wait_for(lambda: builders(kazoo))
        assert len(comps) == 1
        c = comps[0]
        assert c["kind"] == "builder" and c["state"] == "running" and c["model_api"] == 0
        assert c["hostname"] == os.uname().nodename
        # Nodepool's builder_id.txt: a uuid4 string, created on first start.
        builder_id = (tmp_path / "images" / "builder_id.txt").read_text().strip()
        assert len(builder_id) == 36 and builder_id.count("-") == 4
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out  # non-zero also on any sanitizer report
    assert builders(kazoo) == []


def test_builder_id_survives_restart(config, tmp_path, kazoo):
    ids = []
    for _ in range(2):
        proc = subprocess.Popen([program("poold-builder"), "-f", "-c", str(config)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: builders(kazoo))
        ids.append((tmp_path / "images" / "builder_id.txt").read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert ids[0] == ids[1]


def test_detaches_when_ready_holds_pidfile_and_refuses_a_second_instance(config, tmp_path, kazoo):
    pidfile = tmp_path / "builder.pid"
    logfile = tmp_path / "builder.log"
    p = subprocess.run([program("poold-builder"), "-c", str(config), "-p", str(pidfile),
                        "-l", str(logfile)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, 0)
        assert builders(kazoo), "the parent returned before the daemon registered"
        second = subprocess.run([program("poold-builder"), "-c", str(config), "-p", str(pidfile),
                                 "-l", str(tmp_path / "second.log")],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert "another poold-builder (pid %d)" % pid in (tmp_path / "second.log").read_text()
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pidfile.exists())
    assert "poold-builder stopped" in logfile.read_text()
    assert builders(kazoo) == []


def test_broken_reload_keeps_running_and_logs_position(config, tmp_path, zk_server, zk_chroot, kazoo):
    logfile = tmp_path / "b.log"
    proc = subprocess.Popen([program("poold-builder"), "-f", "-c", str(config), "-l", str(logfile)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: builders(kazoo))
        text = config.read_text() + "bogus-key: 1\n"
        config.write_text(text)
        line = text.count("\n")
        wait_for(lambda: "keeping the previous configuration" in logfile.read_text())
        assert "%s:%d:1: unknown key 'bogus-key'" % (config, line) in logfile.read_text()
        assert proc.poll() is None
        assert builders(kazoo)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
