"""Proves the harness itself: a real ZooKeeper answers, and chroots isolate tests."""
from harness import four_letter


def test_zookeeper_is_real_and_answers(zk_server):
    assert four_letter(zk_server.port, "ruok", tls=zk_server.tls) == "imok"
    assert "Zookeeper version: 3.8" in four_letter(zk_server.port, "srvr", tls=zk_server.tls)


def test_chroot_is_private_to_the_test(kazoo, zk_chroot):
    kazoo.create("/nodepool/requests/100-", b"{}", sequence=True, makepath=True)
    assert len(kazoo.get_children("/nodepool/requests")) == 1


def _with_zookeeper(tmp_path, script):
    """tests/tools/with-zookeeper running SCRIPT (sh), which writes the exported
    address to a file; returns the wrapper process and that address."""
    import os
    import subprocess
    import time
    from harness import SRCDIR
    out = tmp_path / "hosts"
    proc = subprocess.Popen(["/usr/bin/python3", os.path.join(SRCDIR, "tests", "tools", "with-zookeeper"),
                             "sh", "-c", 'echo "$POOLD_TEST_ZK_HOSTS" > %s.tmp; mv %s.tmp %s; %s'
                             % (out, out, out, script)])
    deadline = time.time() + 60
    while not out.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    return proc, out.read_text().strip() if out.exists() else None


def _answers(hosts):
    try:
        return four_letter(int(hosts.rsplit(":", 1)[1]), "ruok") == "imok"
    except OSError:
        return False


def test_with_zookeeper_runs_the_command_beside_zookeeper_and_stops_it(tmp_path):
    """The unit tests' wrapper exports a live server and passes the command's status on."""
    proc, hosts = _with_zookeeper(tmp_path, "exit 3")
    assert proc.wait(60) == 3
    assert hosts and hosts.startswith("127.0.0.1:")
    assert not _answers(hosts)


def test_with_zookeeper_stops_zookeeper_on_sigterm(tmp_path):
    """SIGTERM to the wrapper ends the command, what it started and the server."""
    import signal
    import os
    import time
    pidfile = tmp_path / "sleep.pid"
    proc, hosts = _with_zookeeper(tmp_path, "sleep 600 & echo $! > %s; wait" % pidfile)
    try:
        assert hosts and _answers(hosts)
        deadline = time.time() + 30
        while not pidfile.exists() and time.time() < deadline:
            time.sleep(0.05)
        sleeper = int(pidfile.read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 128 + signal.SIGTERM
        assert not _answers(hosts)
        time.sleep(0.2)
        assert not os.path.exists("/proc/%d" % sleeper) or "Z" in open("/proc/%d/stat" % sleeper).read().split()[2]
    finally:
        if proc.poll() is None:
            proc.kill()
