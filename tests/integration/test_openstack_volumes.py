"""Volume quota against the real loopback OpenStack's Cinder (API, scheduler and
a volume service on Cinder's fake driver): boot-from-volume nodes launch on Nova
with a Cinder volume and record it in their resources; poold reads Cinder's
limits and used totals as part of the provider's quota, and a boot-from-volume
request waits at the cloud's limit, then is served when a volume node goes."""
import time

from launcher_fixture import IMAGE, LABEL, PROVIDER
from openstack_fixture import cloud, openstack  # noqa: F401 - fixtures
from test_openstack_launcher import glance_image, oslauncher, os_config  # noqa: F401 - fixtures
from zuul_client import ZuulClient

BFV = "bfv-label"


def start_with_bfv_label(lp, volume_size, pool=None):
    cfg = os_config(lp)
    cfg["providers"][0]["pools"][0].update(pool or {})
    cfg["labels"].append({"name": BFV})
    cfg["providers"][0]["pools"][0]["labels"].append(
        {"name": BFV, "diskimage": IMAGE, "min-ram": 100, "boot-from-volume": True, "volume-size": volume_size})
    lp.write_config(cfg)
    lp.images(external_id=lp.glance_image)
    lp.start(env=lp.cloud.env_vars())
    return ZuulClient(lp.kazoo)


def foreign_volume(cloud, size):
    """A volume of the project that is no node's (someone else's): Cinder counts it as used."""
    st, d, _ = cloud.cinder("POST", "/volumes", {"volume": {"size": size, "name": "foreign"}},
                            token=cloud.user_token())
    assert st == 202, d
    return d["volume"]["id"]


def waits_at_cinder_limit_then_served(lp, cloud, zuul, volume_size, reason):
    """A first boot-from-volume node becomes ready on Nova + Cinder with its volume in
    its resources; a second request waits at a volume limit (REASON logged, the pool
    paused, no second server); when the first node is returned (its server and volume
    deleted), the second is served."""
    first = zuul.submit([BFV])
    req = zuul.wait(first, timeout=120)
    assert req["state"] == "fulfilled", req
    nodes = zuul.accept_nodes(first, req)
    res = nodes[0][1]["resources"]
    assert res["volumes"] == 1 and res["volume-gb"] == volume_size and res["instances"] == 1, res
    server = cloud.server(nodes[0][1]["external_id"])
    assert server["status"] == "ACTIVE" and len(server["os-extended-volumes:volumes_attached"]) == 1, server

    waiting = zuul.submit([BFV])
    lp.wait_for(lambda: reason in lp.log_text(), 60, "the pool meeting Cinder's limit")
    lp.wait_for(lambda: all(p.get("paused") for p in lp.components("pool") or [{}]), 30, "pool paused")
    time.sleep(3)
    assert zuul.get_request(waiting)["state"] in ("requested", "pending"), zuul.get_request(waiting)
    assert len(cloud.project_servers()) == 1

    zuul.use_nodes(nodes)
    zuul.return_nodes(nodes)
    req = zuul.wait(waiting, timeout=120)
    assert req["state"] == "fulfilled", req
    zuul.return_nodes(zuul.accept_nodes(waiting, req))


def test_cinder_volume_limit_reached_waits_and_is_served_when_a_volume_node_goes(oslauncher):
    """Cinder allows the project 2 volumes and one volume that is not poold's uses one."""
    lp, cloud = oslauncher, oslauncher.cloud
    cloud.set_volume_quota(volumes=2)
    foreign_volume(cloud, 1)
    zuul = start_with_bfv_label(lp, volume_size=1)
    waits_at_cinder_limit_then_served(lp, cloud, zuul, 1, "provider quota reached: volumes 1 + 1 unmanaged of 2")


def test_cinder_gigabyte_limit_reached_waits_and_is_served_when_a_volume_node_goes(oslauncher):
    """Cinder allows 12 GB and 4 are used by a volume not poold's: a node booting from a
    5 GB volume fits, a second does not (5 + 4 + 5 > 12)."""
    lp, cloud = oslauncher, oslauncher.cloud
    cloud.set_volume_quota(gigabytes=12)
    foreign_volume(cloud, 4)
    zuul = start_with_bfv_label(lp, volume_size=5)
    waits_at_cinder_limit_then_served(lp, cloud, zuul, 5,
                                      "provider quota reached: volume-gb 5 + 4 unmanaged of 12 GB")


def test_pool_max_volumes_waits_and_is_served_when_a_volume_node_goes(oslauncher):
    """Pool max-volumes: 1 with Cinder unlimited: the pool's own limit holds the second."""
    lp, cloud = oslauncher, oslauncher.cloud
    zuul = start_with_bfv_label(lp, volume_size=1, pool={"max-volumes": 1})
    waits_at_cinder_limit_then_served(lp, cloud, zuul, 1, "max-volumes reached")


def test_volume_others_use_makes_request_wait_until_it_is_deleted(oslauncher):
    """Cinder's one allowed volume is used by someone else: a label without a volume is
    served, a boot-from-volume request waits (not declined: Cinder's count also holds
    volumes of poold's own deleted nodes for a while) and is served once that volume
    is deleted, poold reading Cinder's totals again while it waits."""
    lp, cloud = oslauncher, oslauncher.cloud
    cloud.set_volume_quota(volumes=1)
    foreign = foreign_volume(cloud, 1)
    zuul = start_with_bfv_label(lp, volume_size=1)
    plain = zuul.submit([LABEL])
    req = zuul.wait(plain, timeout=90)
    assert req["state"] == "fulfilled", req
    nodes = zuul.accept_nodes(plain, req)
    assert "volumes" not in nodes[0][1]["resources"]
    bfv = zuul.submit([BFV])
    lp.wait_for(lambda: "provider quota reached: volumes 0 + 1 unmanaged of 1" in lp.log_text(), 60,
                "the pool meeting Cinder's volume limit")
    time.sleep(3)
    assert zuul.get_request(bfv)["state"] in ("requested", "pending"), zuul.get_request(bfv)
    assert len(cloud.project_servers()) == 1
    cloud.wait(lambda: cloud.cinder("GET", "/volumes/%s" % foreign)[1]["volume"]["status"] == "available", 60,
               "the foreign volume built")
    st, d, _ = cloud.cinder("DELETE", "/volumes/%s" % foreign)
    assert st == 202, d
    req = zuul.wait(bfv, timeout=120)
    assert req["state"] == "fulfilled", req
    zuul.return_nodes(nodes + zuul.accept_nodes(bfv, req))
