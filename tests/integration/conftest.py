"""pytest fixtures shared by every integration test.

One ZooKeeper per test session (started once, stopped at the end); each test
gets its own chroot inside it so tests cannot see each other's znodes.
"""
import uuid

import pytest
from kazoo.client import KazooClient

from harness import ZooKeeperServer


@pytest.fixture(scope="session")
def zk_server():
    server = ZooKeeperServer().start()
    yield server
    server.stop()


@pytest.fixture
def zk_chroot(zk_server, request):
    """A fresh chroot path for this test, e.g. /t-test_name-1a2b3c4d."""
    name = "/t-%s-%s" % (request.node.name.replace("[", "_").replace("]", "")[:40],
                         uuid.uuid4().hex[:8])
    root = KazooClient(hosts=zk_server.hosts)
    root.start(timeout=15)
    root.ensure_path(name)
    root.stop()
    root.close()
    return name


@pytest.fixture
def zk_hosts(zk_server, zk_chroot):
    """Host string with this test's chroot, as poold's config takes it."""
    return zk_server.hosts + zk_chroot


@pytest.fixture
def kazoo(zk_hosts):
    """A kazoo client on this test's chroot, as Zuul would use it."""
    client = KazooClient(hosts=zk_hosts, timeout=10)
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()
