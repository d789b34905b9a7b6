"""ZooKeeper over TLS, as production Zuul runs it (nodepool.yaml `zookeeper-tls:
{ca, cert, key}`), against a TLS-only ZooKeeper that requires client
certificates (a throw-away CA from tools/zk-tls-ca.sh):

- poold fulfils a request a kazoo client (as Zuul) submits over TLS; poolctl
  lists nodes over TLS;
- a certificate from the wrong CA, on either side, is one clear log line while
  the client keeps retrying, and never a connection;
- a missing certificate file is a FILE:LINE:COL error at daemon start;
- without zookeeper-tls, plaintext to a plaintext ZooKeeper still works.

These run in every `make check`, whatever POOLD_TEST_ZK_TLS says."""
import re
import signal
import subprocess
import time

import pytest

from conftest import make_chroot
from harness import TLSFiles, four_letter, program
from launcher_fixture import LABEL, LauncherProcess
from test_poolctl import put_node
from zuul_client import ZuulClient

TLS_ERROR = re.compile(r" ERROR \S+: TLS connection to ZooKeeper at 127\.0\.0\.1:\d+ failed: (.*)$", re.M)
UNKNOWN_SERVER = ("certificate verify failed (the server's certificate is not signed by "
                  "zookeeper-tls 'ca')")
REFUSED_CLIENT = "(the server refused the client certificate, zookeeper-tls 'cert')"


@pytest.fixture(scope="module")
def rogue_ca(tmp_path_factory):
    """A second throw-away CA that the TLS server does not know."""
    return TLSFiles(str(tmp_path_factory.mktemp("rogue-ca")), "rogue")


@pytest.fixture
def tls_chroot(zk_tls_server, request):
    return make_chroot(zk_tls_server, request)


@pytest.fixture
def tls_kazoo(zk_tls_server, tls_chroot):
    """kazoo over TLS with the server CA's client certificate, as Zuul connects."""
    client = zk_tls_server.kazoo(tls_chroot, timeout=10)
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def tls_launcher(tmp_path, zk_tls_server, tls_chroot, tls_kazoo):
    lp = LauncherProcess(tmp_path, zk_tls_server, tls_chroot, tls_kazoo)
    yield lp
    if lp.proc is not None:
        rc = lp.stop()
        assert rc == 0, "poold exited %s\n%s" % (rc, lp.log_text()[-6000:])


def plaintext_answer(port, cmd):
    try:
        return four_letter(port, cmd)
    except OSError as e:
        return repr(e)


def test_launcher_over_tls_fulfils_a_zuul_request(tls_launcher, zk_tls_server):
    """poold with zookeeper-tls registers on a TLS-only ZooKeeper (which gives a
    plaintext client no answer) and fulfils a request that a kazoo client submits
    over TLS; the node goes away once used; no TLS error is logged."""
    assert plaintext_answer(zk_tls_server.port, "ruok") != "imok"
    lp = tls_launcher
    cfg = lp.config()
    assert cfg["zookeeper-tls"] == zk_tls_server.tls.zookeeper_tls()
    lp.write_config(cfg)
    lp.images()
    lp.start()
    lp.wait_for(lambda: lp.components("pool"), 10, "pool component")
    zc = ZuulClient(lp.kazoo)
    req_id = zc.submit([LABEL])
    req = zc.wait(req_id, timeout=20)
    assert req["state"] == "fulfilled", req
    nodes = zc.accept_nodes(req_id, req)
    (nid, node, _), = nodes
    assert node["state"] == "ready" and node["allocated_to"] == req_id
    zc.use_nodes(nodes)
    zc.return_nodes(nodes)
    lp.wait_for(lambda: nid not in lp.nodes(), 15, "used node deleted")
    assert "TLS connection" not in lp.log_text()


def test_poolctl_lists_nodes_over_tls(tmp_path, zk_tls_server, tls_chroot, tls_kazoo):
    """poolctl with zookeeper-tls reads the node a kazoo client wrote over TLS."""
    put_node(tls_kazoo, "0000000042")
    cfg = tmp_path / "nodepool.yaml"
    cfg.write_text(zk_tls_server.zookeeper_yaml(tls_chroot))
    r = subprocess.run([program("poolctl"), "-c", str(cfg), "list"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "0000000042" in r.stdout and r.stderr == ""


@pytest.mark.parametrize("case", ["unknown-server-cert", "refused-client-cert"])
def test_wrong_ca_is_one_clear_log_line_and_no_connection(case, tmp_path, zk_tls_server, tls_chroot,
                                                         tls_kazoo, rogue_ca):
    """poold whose `ca` does not know the server's certificate, or whose client
    certificate the server does not trust, logs the TLS failure once as an error
    (saying which side refused) while the client retries several times a second
    (debug lines), and never connects: no launcher component appears."""
    good = zk_tls_server.tls
    if case == "unknown-server-cert":
        tls = {"ca": rogue_ca.ca, "cert": good.cert, "key": good.key}
        expected = UNKNOWN_SERVER
    else:
        tls = {"ca": good.ca, "cert": rogue_ca.cert, "key": rogue_ca.key}
        expected = REFUSED_CLIENT
    lp = LauncherProcess(tmp_path, zk_tls_server, tls_chroot, tls_kazoo)
    cfg = lp.config()
    cfg["zookeeper-tls"] = tls
    lp.write_config(cfg)
    lp.start(wait_registered=False, args=("-d",))
    try:
        lp.wait_for(lambda: TLS_ERROR.search(lp.log_text()), 20, "the TLS error")
        # Let the client retry for a while: still that one line.
        deadline = time.time() + 3
        while time.time() < deadline and lp.log_text().count("ssl connect") < 4:
            time.sleep(0.2)
        time.sleep(1)
        log = lp.log_text()
        errors = TLS_ERROR.findall(log)
        assert len(errors) == 1, log[-4000:]
        assert expected in errors[0], errors
        assert log.count("ssl connect") >= 4, log[-4000:]  # retried, at debug level
        assert [l for l in log.splitlines() if " ERROR " in l and "TLS connection" not in l] == [], log[-4000:]
        assert lp.components("launcher") == []
    finally:
        # poold blocks signals until connected (it handles them on its event
        # loop), and waits a minute for ZooKeeper: SIGKILL ends it now.
        lp.stop(signal.SIGKILL)


def test_poolctl_with_a_rogue_ca_exits_1_with_one_tls_line(tmp_path, zk_tls_server, tls_chroot, rogue_ca):
    """poolctl with the wrong `ca` prints the TLS failure once and gives up after
    zookeeper-timeout with exit 1."""
    cfg = tmp_path / "nodepool.yaml"
    cfg.write_text(zk_tls_server.zookeeper_yaml(tls_chroot).replace(zk_tls_server.tls.ca, rogue_ca.ca) +
                   "zookeeper-timeout: 2\n")
    r = subprocess.run([program("poolctl"), "-c", str(cfg), "list"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert len(TLS_ERROR.findall(r.stderr)) == 1 and UNKNOWN_SERVER in r.stderr, r.stderr
    assert "cannot connect to ZooKeeper at 127.0.0.1:%d%s within 2 s" % (zk_tls_server.port, tls_chroot) in r.stderr
    assert len(r.stderr.splitlines()) == 2, r.stderr


def test_missing_cert_file_is_a_positioned_error_at_daemon_start(tmp_path, zk_tls_server):
    """A zookeeper-tls `cert` that does not exist stops poold, poold-builder and
    poolctl config-validate with FILE:LINE:COL and the reason, exit 1."""
    gone = str(tmp_path / "gone.crt")
    cfg = tmp_path / "nodepool.yaml"
    text = zk_tls_server.zookeeper_yaml().replace(zk_tls_server.tls.cert, gone)
    cfg.write_text(text + "images-dir: %s\n" % tmp_path)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if l.startswith("  cert: "))
    # The daemons log it ("FILE:L:C: message"); config-validate adds "error: ".
    want = re.compile(re.escape("%s:%d:9: " % (cfg, line)) + "(error: )?" +
                      re.escape("'cert' in zookeeper-tls: cannot read '%s': No such file or directory" % gone))
    for argv in (["poold", "-f", "-c", str(cfg)], ["poold-builder", "-f", "-c", str(cfg)],
                 ["poolctl", "-c", str(cfg), "config-validate"]):
        r = subprocess.run([program(argv[0])] + argv[1:], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, (argv, r.stderr)
        assert want.search(r.stderr), (argv, r.stderr)


def test_plaintext_without_zookeeper_tls_still_works(tmp_path, zk_plain_server, request):
    """Without zookeeper-tls poolctl talks plaintext to a plaintext ZooKeeper."""
    chroot = make_chroot(zk_plain_server, request)
    kz = zk_plain_server.kazoo(chroot, timeout=10)
    kz.start(timeout=15)
    try:
        put_node(kz, "0000000007")
    finally:
        kz.stop()
        kz.close()
    cfg = tmp_path / "nodepool.yaml"
    cfg.write_text(zk_plain_server.zookeeper_yaml(chroot))
    assert "zookeeper-tls" not in cfg.read_text()
    r = subprocess.run([program("poolctl"), "-c", str(cfg), "list"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "0000000007" in r.stdout


def test_session_expiry_over_tls_does_not_kill_a_program_without_sigpipe_handling(zk_tls_server, tls_chroot,
                                                                                    tls_kazoo):
    """OpenSSL writes with write(), so a write to the connection the server
    closed raises SIGPIPE; zktool, like poolctl, does not ignore it. It watches
    a tree that kazoo changes while zktool is frozen past its session timeout:
    on waking it reads the watch events and writes requests into the closed
    connection. It sees EXPIRED then CONNECTED and keeps serving (shared/zk/zk.c
    keeps SIGPIPE blocked where the library writes; without that it dies)."""
    from test_zk_lock import ZkTool
    tls_kazoo.create("/w/a", b"1", makepath=True)
    t = ZkTool(zk_tls_server.hosts + tls_chroot, 2000, zk_tls_server.zktool_args())
    try:
        assert t.cmd("watch /w 1") == "watching"
        t.wait_event("CACHE SYNCED")
        t.kill(signal.SIGSTOP)
        time.sleep(1)
        for i in range(5):
            tls_kazoo.set("/w/a", b"%d" % i)
            tls_kazoo.create("/w/n%d" % i, b"x")
        time.sleep(3)
        t.kill(signal.SIGCONT)
        t.wait_event("STATE EXPIRED", timeout=15)
        t.wait_event("STATE CONNECTED", timeout=15)
        deadline = time.time() + 10
        while (answer := t.cmd("session")) != "connected timeout=2000 gen=1":
            assert time.time() < deadline, answer
            time.sleep(0.1)
        path = t.cmd("register launcher tls-host")
        assert path.startswith("/nodepool/components/launcher/"), path
        assert tls_kazoo.exists(path)
    finally:
        t.close()
