"""Volume quota against the real loopback OpenStack's Cinder API (cinder-api
with its database; no volume service runs, so no volume is ever built): poold
reads Cinder's limits and used totals as part of the provider's quota, and a
boot-from-volume request waits at the cloud's volume limit instead of failing.
Launching boot-from-volume servers needs a volume backend: the launcher core's
unit tests (tests/unit/test_launcher_core.c) cover that with the fake cloud."""
import time

from launcher_fixture import IMAGE, LABEL, PROVIDER
from openstack_fixture import cloud, openstack  # noqa: F401 - fixtures
from test_openstack_launcher import glance_image, oslauncher, os_config  # noqa: F401 - fixtures
from zuul_client import ZuulClient

BFV = "bfv-label"


def start_with_bfv_label(lp, volume_size):
    cfg = os_config(lp)
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


def test_cinder_volume_limit_reached_keeps_boot_from_volume_request_waiting(oslauncher):
    """Cinder allows the project 1 volume and a volume that is not poold's uses it: a
    boot-from-volume request waits (the pool pauses saying so, no server is created),
    and a request without a volume was served before, so only the volume limit holds it."""
    lp, cloud = oslauncher, oslauncher.cloud
    cloud.set_volume_quota(volumes=1)
    foreign_volume(cloud, 1)
    zuul = start_with_bfv_label(lp, volume_size=1)
    plain = zuul.submit([LABEL])
    req = zuul.wait(plain, timeout=90)
    assert req["state"] == "fulfilled", req
    nodes = zuul.accept_nodes(plain, req)
    assert "volumes" not in nodes[0][1]["resources"]
    servers_before = len(cloud.project_servers())

    waiting = zuul.submit([BFV])
    lp.wait_for(lambda: "provider quota reached: volumes 0 + 1 unmanaged of 1" in lp.log_text(), 60,
                "the pool meeting Cinder's volume limit")
    lp.wait_for(lambda: all(p.get("paused") for p in lp.components("pool") or [{}]), 30, "pool paused")
    time.sleep(3)
    assert zuul.get_request(waiting)["state"] in ("requested", "pending"), zuul.get_request(waiting)
    assert len(cloud.project_servers()) == servers_before
    zuul.return_nodes(nodes)


def test_cinder_gigabyte_limit_counts_the_label_volume_size(oslauncher):
    """Cinder allows 10 GB, 4 are used by a volume not poold's: a label booting from a
    7 GB volume waits at the gigabyte limit (4 + 7 > 10), not at the volume count."""
    lp, cloud = oslauncher, oslauncher.cloud
    cloud.set_volume_quota(gigabytes=10)
    foreign_volume(cloud, 4)
    zuul = start_with_bfv_label(lp, volume_size=7)
    waiting = zuul.submit([BFV])
    lp.wait_for(lambda: "provider quota reached: volume-gb 0 + 4 unmanaged of 10 GB" in lp.log_text(), 60,
                "the pool meeting Cinder's gigabyte limit")
    time.sleep(2)
    assert zuul.get_request(waiting)["state"] in ("requested", "pending"), zuul.get_request(waiting)
    assert cloud.project_servers() == []
