"""pytest fixtures shared by every integration test.

One ZooKeeper per test session (started once, stopped at the end); each test
gets its own chroot inside it so tests cannot see each other's znodes.

POOLD_TEST_ZK_TLS=1 makes that ZooKeeper TLS-only, as production Zuul runs it:
kazoo clients then connect with the session CA's client certificate, and the
fixtures that write a nodepool.yaml add zookeeper-tls (zk_server.zookeeper_config()).
"""
import os
import uuid

import pytest

from harness import ZooKeeperServer

ZK_TLS = os.environ.get("POOLD_TEST_ZK_TLS", "") not in ("", "0")


def pytest_report_header(config):
    return "ZooKeeper: %s (POOLD_TEST_ZK_TLS)" % ("TLS-only" if ZK_TLS else "plaintext")


@pytest.fixture(scope="session")
def zk_server():
    server = ZooKeeperServer(tls=ZK_TLS).start()
    yield server
    server.stop()


def _extra_server(request, tls):
    """The session's server if it is of that kind, else one more started for the session."""
    if ZK_TLS == tls:
        yield request.getfixturevalue("zk_server")
        return
    server = ZooKeeperServer(tls=tls).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def zk_tls_server(request):
    """A TLS-only ZooKeeper, whatever POOLD_TEST_ZK_TLS says."""
    yield from _extra_server(request, True)


@pytest.fixture(scope="session")
def zk_plain_server(request):
    """A plaintext ZooKeeper, whatever POOLD_TEST_ZK_TLS says."""
    yield from _extra_server(request, False)


def make_chroot(server, request):
    """Create a fresh chroot for this test on SERVER, e.g. /t-test_name-1a2b3c4d."""
    name = "/t-%s-%s" % (request.node.name.replace("[", "_").replace("]", "")[:40],
                         uuid.uuid4().hex[:8])
    root = server.kazoo()
    root.start(timeout=15)
    root.ensure_path(name)
    root.stop()
    root.close()
    return name


@pytest.fixture
def zk_chroot(zk_server, request):
    """A fresh chroot path for this test, e.g. /t-test_name-1a2b3c4d."""
    return make_chroot(zk_server, request)


@pytest.fixture
def zk_hosts(zk_server, zk_chroot):
    """Host string with this test's chroot, as poold's config takes it."""
    return zk_server.hosts + zk_chroot


@pytest.fixture
def kazoo(zk_server, zk_chroot):
    """A kazoo client on this test's chroot, as Zuul would use it."""
    client = zk_server.kazoo(zk_chroot, timeout=10)
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()
