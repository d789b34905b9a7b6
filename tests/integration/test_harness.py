"""Proves the harness itself: a real ZooKeeper answers, and chroots isolate tests."""
from harness import four_letter


def test_zookeeper_is_real_and_answers(zk_server):
    assert four_letter(zk_server.port, "ruok", tls=zk_server.tls) == "imok"
    assert "Zookeeper version: 3.8" in four_letter(zk_server.port, "srvr", tls=zk_server.tls)


def test_chroot_is_private_to_the_test(kazoo, zk_chroot):
    kazoo.create("/nodepool/requests/100-", b"{}", sequence=True, makepath=True)
    assert len(kazoo.get_children("/nodepool/requests")) == 1
