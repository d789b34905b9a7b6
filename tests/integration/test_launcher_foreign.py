"""Labels only a foreign driver serves are another launcher's (issue 15).

poold A runs a libvirt provider for LABEL and has an `aws` provider (a driver poold
does not launch for) serving label `big`. poold B, a second launcher on the same
ZooKeeper chroot with its own nodepool.yaml, serves `big` from a static host (a real
sshd). A request for `big` must never be declined or failed by A: while B is down it
stays requested with A absent from declined_by; once B runs, B fulfils it.
"""
import json
import time

import yaml

from launcher_fixture import LABEL, LauncherProcess
from sshd import SshServer
from test_launcher_static import host
from zuul_client import ZuulClient

AWS = {"name": "ec2", "driver": "aws", "region-name": "us-west-2",
       "cloud-images": [{"name": "ubuntu", "image-id": "ami-1", "username": "ubuntu"}],
       "pools": [{"name": "main", "labels": [{"name": "big", "cloud-image": "ubuntu",
                                             "instance-type": "t3.medium", "key-name": "zuul"}]}]}


def request(kazoo, rid):
    data, _ = kazoo.get("/nodepool/requests/" + rid)
    return json.loads(data.decode())


def test_foreign_only_label_left_to_the_launcher_that_serves_it(tmp_path, zk_server, zk_chroot, kazoo):
    """A never declines or fails a request for a label only its aws provider lists (it stays
    requested while nobody serves it, A's own label is still served), logs the provider as left
    to another launcher, and the second launcher B fulfils the request once it runs."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = LauncherProcess(tmp_path / "a", zk_server, zk_chroot, kazoo)
    b = LauncherProcess(tmp_path / "b", zk_server, zk_chroot, kazoo)
    sshd = SshServer().start()
    try:
        cfg = a.config(labels=[{"name": LABEL}, {"name": "big"}])
        cfg["providers"].append(AWS)
        a.write_config(cfg)
        a.images()
        a.start()
        zc = ZuulClient(kazoo)
        rid = zc.submit(["big"])
        # A's own label is served meanwhile: A's passes run and see the `big` request.
        _, req, _ = zc.run_job([LABEL])
        assert req["state"] == "fulfilled"
        time.sleep(3)   # several request passes (and cleanup passes at 500 ms)
        r = request(kazoo, rid)
        assert r["state"] == "requested", r
        assert r["declined_by"] == [], r
        assert a.log_text().count("provider 'ec2' uses driver 'aws'") == 1, a.log_text()[-3000:]

        bcfg = zk_server.zookeeper_config(zk_chroot)
        bcfg.update({"zookeeper-timeout": 5.0, "webapp": {"port": 0}, "labels": [{"name": "big"}],
                     "providers": [{"name": "static-b", "driver": "static",
                                    "pools": [{"name": "main", "nodes": [host(sshd, ["big"])]}]}]})
        b.write_config(text=yaml.safe_dump(bcfg, sort_keys=False))
        b.start()
        r = zc.wait(rid, timeout=30)
        assert r["state"] == "fulfilled", r
        assert r["declined_by"] == [], r
        node = json.loads(kazoo.get("/nodepool/nodes/" + r["nodes"][0])[0].decode())
        assert node["provider"] == "static-b", node
        zc.return_nodes(zc.accept_nodes(rid, r))
    finally:
        for lp in (b, a):
            if lp.proc is not None:
                rc = lp.stop()
                assert rc == 0, "poold exited %s\n%s" % (rc, lp.log_text()[-4000:])
        sshd.cleanup()
