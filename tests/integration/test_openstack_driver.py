"""The openstack provider driver (through tests/tools/ostool) against a real
Keystone/Nova/Glance/Neutron on loopback; every effect is checked with the
cloud's own REST API, independently of the driver."""
import json
import os
import subprocess
import time
import uuid

import pytest

from harness import program
from openstack_fixture import cloud, openstack  # noqa: F401 - fixtures

PROVIDER = "os-drv"


def ostool(cloud, *args, env=None, check=True):
    e = dict(os.environ)
    e.update(cloud.env_vars())
    e.update(env or {})
    r = subprocess.run([program("ostool"), "--provider", PROVIDER, *args], env=e,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    out = r.stdout.decode()
    if check:
        assert r.returncode == 0, "ostool %s -> %d: %s" % (args, r.returncode, r.stderr.decode())
        return json.loads(out)
    return r




@pytest.fixture
def image(cloud, tmp_path):
    """A small image uploaded through the driver (deleted afterwards)."""
    path = tmp_path / "tiny.raw"
    path.write_bytes(b"\0" * 65536)
    name = "debian-%s" % uuid.uuid4().hex[:8]
    img = ostool(cloud, "upload", str(path), "raw", name, "nodepool_build_id=1", "nodepool_upload_id=1")
    yield img["id"]
    ostool(cloud, "image-delete", img["id"], check=False)


def test_create_picks_smallest_flavor_for_min_ram_writes_metadata_and_delete_confirms_gone(cloud, image):
    created = ostool(cloud, "--min-ram", "100", "--network", "none", "--prop", "team=ci",
                     "--userdata", "#cloud-config\n", "--key-name", "", "create", "0000000042", image,
                     check=False)
    # An empty key name is refused by Nova: proves key_name is passed through.
    assert created.returncode != 0 and b"key" in created.stderr.lower()
    s = ostool(cloud, "--min-ram", "100", "--network", "none", "--prop", "team=ci",
               "--userdata", "#cloud-config\n", "create", "0000000042", image)[0]
    active = ostool(cloud, "wait", s["id"])
    assert active["state"] == "active"
    assert (active["cores"], active["ram"]) == (1, 128)
    assert active["region"] == "RegionOne"

    nova = cloud.server(s["id"])
    assert nova["flavor"]["original_name"] == "poold.medium"  # the smallest with >= 100 MiB
    assert nova["metadata"] == {"nodepool_provider_name": PROVIDER, "nodepool_pool_name": "main",
                                "nodepool_node_id": "0000000042", "groups": "%s,debian,small" % PROVIDER,
                                "team": "ci"}
    assert nova["name"] == "np0000000042"
    assert nova["image"]["id"] == image

    ostool(cloud, "delete", s["id"])
    assert cloud.server(s["id"]) is None  # gone when delete returns
    r = ostool(cloud, "delete", s["id"], check=False)
    assert r.returncode == 4  # -ENOENT: nothing left to delete


def test_flavor_by_exact_name_and_no_matching_flavor_is_a_clear_error(cloud, image):
    s = ostool(cloud, "--flavor-name", "poold.large", "--network", "none", "create", "0000000043", image)[0]
    assert cloud.server(s["id"])["flavor"]["original_name"] == "poold.large"
    assert s["cores"] == 2 and s["ram"] == 256
    r = ostool(cloud, "--min-ram", "100000", "--network", "none", "create", "0000000044", image, check=False)
    assert r.returncode == 4 and b"no flavor with at least 100000 MiB" in r.stderr


def test_config_drive_and_availability_zone_reach_nova(cloud, image):
    s = ostool(cloud, "--flavor-name", "poold.small", "--network", "none", "--config-drive", "--az", "nova",
               "create", "0000000045", image)[0]
    nova = cloud.server(s["id"])
    assert nova["config_drive"] in (True, "True")
    assert ostool(cloud, "wait", s["id"])["az"] == "nova"


def test_availability_zones_are_novas_and_a_zone_nova_lacks_is_refused_leaving_no_server(cloud, image):
    # The fixture's one compute host is in Nova's default zone.
    assert ostool(cloud, "azs") == ["nova"]
    r = ostool(cloud, "--flavor-name", "poold.small", "--network", "none", "--az", "poold-no-such-zone",
               "create", "0000000047", image, check=False)
    # Proves the zone is sent: Nova refuses it (400), a clear error, nothing created.
    assert r.returncode != 0 and b"availability zone is not available" in r.stderr, r.stderr
    assert [s for s in cloud.project_servers() if s["name"] == "np0000000047"] == []


def test_get_is_served_from_one_server_list_per_second(cloud, image):
    s = ostool(cloud, "--flavor-name", "poold.small", "--network", "none", "create", "0000000046", image)[0]
    needle = "GET /v2.1/servers/detail =>"  # uwsgi request log line: one per call
    before = cloud.api_log_count("nova-api", needle)
    t = time.monotonic()
    calls = ostool(cloud, "poll", s["id"], "3")["calls"]
    elapsed = time.monotonic() - t
    lists = cloud.api_log_count("nova-api", needle) - before
    assert calls == 30
    # At most one list per second (plus the first), whatever the number of get() calls.
    assert 1 <= lists <= int(elapsed) + 1, "%d list calls for %d get() calls in %.1f s" % (lists, calls, elapsed)


def test_rate_spaces_api_calls(cloud):
    t = time.monotonic()
    ostool(cloud, "--rate", "0.5", "--calls", "5", "quota")
    assert time.monotonic() - t >= 2.0  # 5 calls, 0.5 s apart


def test_nova_quota_refusal_is_edquot_and_limits_are_read(cloud, image):
    cloud.set_instance_quota(1)
    assert ostool(cloud, "quota")["instances"] == 1
    ostool(cloud, "--flavor-name", "poold.small", "--network", "none", "create", "0000000047", image)
    r = ostool(cloud, "--flavor-name", "poold.small", "--network", "none", "create", "0000000048", image,
               check=False)
    assert r.returncode == 3, r.stderr  # -EDQUOT
    assert b"Quota exceeded for instances" in r.stderr


def test_list_returns_servers_with_ownership_tags_for_leak_detection(cloud, image):
    s = ostool(cloud, "--flavor-name", "poold.small", "--network", "none", "--calls", "3",
               "create", "leak", image)
    ids = {x["id"] for x in s}
    listed = {x["id"]: x for x in ostool(cloud, "list")}
    assert ids <= set(listed)
    for i in ids:
        assert listed[i]["tags"]["nodepool_provider_name"] == PROVIDER
        assert listed[i]["tags"]["nodepool_node_id"].startswith("leak-")


def test_concurrent_creates_each_find_their_server_at_once(cloud, image):
    """Every thread get()s its own server right after create, as the launcher does.
    Exercises the race the launcher hit ("server ... does not exist"): a list that
    started while a create's POST was in flight lacks that server, so get() must
    list again. Only catches it when this Nova serves the list and a POST at once."""
    s = ostool(cloud, "--flavor-name", "poold.small", "--network", "none", "--calls", "6", "--get-after-create",
               "create", "race", image)
    assert len(s) == 6 and all("id" in x for x in s), s


def test_application_credential_auth_works(cloud, image):
    s = ostool(cloud, "--cloud", "poold-appcred", "--flavor-name", "poold.small", "--network", "none",
               "create", "0000000049", image)[0]
    assert cloud.server(s["id"])["tenant_id"] == cloud.project_id


def test_wrong_password_is_a_clear_error_without_the_secret(cloud):
    r = ostool(cloud, "--cloud", "poold-badpass", "list", check=False)
    assert r.returncode == 5  # -EACCES
    err = r.stderr.decode()
    assert "Keystone refused the credentials of poold" in err
    assert "wrong" not in err  # the password itself


def test_console_log_of_a_fake_server(cloud, image):
    s = ostool(cloud, "--flavor-name", "poold.small", "--network", "none", "create", "0000000050", image)[0]
    ostool(cloud, "wait", s["id"])
    assert "FAKE CONSOLE OUTPUT" in ostool(cloud, "console", s["id"])["console"]


def test_image_upload_recorded_in_glance_with_tags_then_deleted(cloud, tmp_path):
    data = os.urandom(300 * 1024)
    path = tmp_path / "img.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(path), "16M"], check=True, stdout=subprocess.DEVNULL)
    name = "debian-%s" % uuid.uuid4().hex[:8]
    up = ostool(cloud, "upload", str(path), "qcow2", name, "nodepool_build_id=0000000001",
                "nodepool_upload_id=0000000007", "image_owner=ci")
    st, img, _ = cloud.glance("GET", "/images/%s" % up["id"])
    assert st == 200
    assert img["status"] == "active" and img["name"] == name and img["disk_format"] == "qcow2"
    assert img["size"] == os.path.getsize(path)
    assert "nodepool" in img["tags"]
    assert img["nodepool_build_id"] == "0000000001" and img["nodepool_upload_id"] == "0000000007"
    assert img["nodepool_provider_name"] == PROVIDER and img["image_owner"] == "ci"

    listed = {i["id"]: i for i in ostool(cloud, "image-list")}
    assert listed[up["id"]]["tags"]["nodepool_upload_id"] == "0000000007"
    # Same name again: refused, never overwritten.
    r = ostool(cloud, "upload", str(path), "qcow2", name, check=False)
    assert r.returncode == 6, r.stderr

    ostool(cloud, "image-delete", up["id"])
    st, _, _ = cloud.glance("GET", "/images/%s" % up["id"])
    assert st == 404
    assert ostool(cloud, "image-delete", up["id"], check=False).returncode == 4
    assert up["id"] not in {i["id"] for i in ostool(cloud, "image-list")}
    del data


def test_image_upload_of_a_missing_file_leaves_nothing(cloud, tmp_path):
    before = {i["id"] for i in ostool(cloud, "image-list")}
    r = ostool(cloud, "upload", str(tmp_path / "nope.qcow2"), "qcow2", "x-%s" % uuid.uuid4().hex[:6],
               check=False)
    assert r.returncode == 4
    assert {i["id"] for i in ostool(cloud, "image-list")} == before
