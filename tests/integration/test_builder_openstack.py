"""poold-builder uploading to a real Glance (the loopback OpenStack of
openstack_fixture.py), recorded as Nodepool's ImageUpload records: Nodepool's
image name and properties, the build's checksums, clouds.yaml's image_format,
retention of two uploads, leaked images reaped while foreign ones stay, and
the launcher booting a Nova server from the uploaded image for a Zuul-like
client. Builds come from the fake-image-create test double; everything else
is real. Every check of the cloud goes through its own REST API, not the
driver."""
import hashlib
import json
import os
import re
import subprocess
import time
import uuid

import pytest

from builder_fixture import BuilderProcess, diskimage, wait_for
from harness import program
from launcher_fixture import LauncherProcess
from openstack_fixture import cloud, openstack  # noqa: F401 - fixtures
from statsd_listener import Listener, has
from zuul_client import ZuulClient

PROV = "os-b"
LABEL = "small"




@pytest.fixture
def clouds_yaml(cloud, tmp_path):
    """The fixture's clouds.yaml plus `poold-raw` (image_format: raw), mode 0600."""
    with open(cloud.clouds_yaml) as f:
        cfg = json.load(f)
    raw = json.loads(json.dumps(cfg["clouds"]["poold"]))
    raw["image_format"] = "raw"
    cfg["clouds"]["poold-raw"] = raw
    path = tmp_path / "clouds.yaml"
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f)
    return str(path)


@pytest.fixture
def builder(tmp_path, zk_server, zk_chroot, kazoo, cloud):
    b = BuilderProcess(tmp_path, zk_server, zk_chroot, kazoo)
    yield b
    b.stop()
    # Whatever this test's builder left in Glance (tagged with its provider).
    for img in project_images(cloud):
        if img.get("nodepool_provider_name") == PROV:
            cloud.glance("DELETE", "/images/%s" % img["id"])


def os_provider(cloud_name="poold", meta=None, **extra):
    # No empty `meta: {}`: config_yaml.c's canonical form trips UBSan on an empty map.
    p = {"name": PROV, "driver": "openstack", "cloud": cloud_name, "rate": 0.01,
         "diskimages": [dict({"name": "debian"}, **({"meta": meta} if meta else {}))],
         "pools": [{"name": "main", "max-servers": 2, "host-key-checking": False,
                    # No networks: the driver's default must boot on this Neutron without any network.
                    "labels": [{"name": LABEL, "diskimage": "debian", "min-ram": 100}]}]}
    p.update(extra)
    return p


def project_images(cloud):
    st, d, _ = cloud.glance("GET", "/images?limit=1000&owner=%s" % cloud.project_id)
    assert st == 200, d
    return d["images"]


def glance_image(cloud, image_id):
    st, d, _ = cloud.glance("GET", "/images/%s" % image_id)
    return d if st == 200 else None


def ready_uploads(builder, image="debian"):
    return [(b, u, r) for b, u, r in builder.uploads(image, PROV) if r["state"] == "ready"]


def digest(path, algo):
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def test_upload_to_glance_is_active_with_nodepool_name_properties_tag_and_checksums(builder, clouds_yaml, cloud):
    builder.config([diskimage(metadata={"team": "ci", "shared": "from-diskimage"})],
                   [os_provider(meta={"os_distro": "debian", "shared": "from-provider"})])
    builder.start(env={"OS_CLIENT_CONFIG_FILE": clouds_yaml})
    (bid, uid, rec), = wait_for(lambda: ready_uploads(builder), 120, "a ready upload")
    assert rec["format"] == "qcow2"
    assert re.fullmatch(r"debian-\d{10}", rec["external_name"])
    img = glance_image(cloud, rec["external_id"])
    assert img is not None, "external_id %s is not a Glance image" % rec["external_id"]
    assert img["status"] == "active" and img["name"] == rec["external_name"]
    assert img["disk_format"] == "qcow2" and img["container_format"] == "bare"
    assert img["visibility"] == "private" and img["owner"] == cloud.project_id
    assert "nodepool" in img["tags"]
    # Diskimage metadata, the provider's meta over it, then Nodepool's own properties.
    assert img["team"] == "ci" and img["os_distro"] == "debian" and img["shared"] == "from-provider"
    assert img["nodepool_build_id"] == bid and img["nodepool_upload_id"] == uid
    assert img["nodepool_provider_name"] == PROV
    local = os.path.join(builder.images_dir, "debian-%s.qcow2" % bid)
    # The bytes in Glance are the build's file (Glance computes checksum/os_hash itself) ...
    assert img["size"] == os.path.getsize(local)
    assert img["checksum"] == digest(local, "md5")
    assert img["os_hash_algo"] == "sha512" and img["os_hash_value"] == digest(local, "sha512")
    # ... and the builder passed the build's .md5/.sha256 as openstacksdk does.
    assert img["owner_specified.openstack.md5"] == open(local + ".md5").read().split()[0] == digest(local, "md5")
    assert img["owner_specified.openstack.sha256"] == digest(local, "sha256")
    assert img["owner_specified.openstack.object"] == "images/" + rec["external_name"]
    # Exactly one upload: nothing is uploaded again.
    time.sleep(1.5)
    assert len(builder.uploads("debian", PROV)) == 1
    assert len([i for i in project_images(cloud) if i.get("nodepool_provider_name") == PROV]) == 1


def test_glance_upload_calls_reach_statsd_as_nodepool_task_metrics(builder, clouds_yaml, cloud):
    """The builder's Glance calls are sent as openstacksdk sends them for Nodepool: the image
    create (POST /v2/images, 201) and the data upload (PUT /v2/images/<id>/file, 204) as timer
    and counter nodepool.task.<provider>.image.<METHOD>.<operation>.<status>, plus .attempted."""
    listener = Listener()
    try:
        builder.config([diskimage(formats=["qcow2"])], [os_provider()])
        builder.start(env=dict(listener.env(), OS_CLIENT_CONFIG_FILE=clouds_yaml))
        wait_for(lambda: ready_uploads(builder), 120, "a ready upload")
        task = "nodepool.task.%s.image." % PROV
        lines = listener.wait(lambda ls: has(ls, task + "PUT.image_file.204", "ms"), what="the upload's timers")
        assert has(lines, task + "POST.images.201", "ms") and has(lines, task + "POST.images.201", "c", 1)
        assert has(lines, task + "POST.images.attempted", "c", 1)
        assert has(lines, task + "PUT.image_file.204", "c", 1)
        assert has(lines, task + "PUT.image_file.attempted", "c", 1)
    finally:
        listener.close()


def test_clouds_yaml_image_format_raw_is_built_and_uploaded(builder, clouds_yaml, cloud):
    # The diskimage asks for qcow2 only: raw is built because the cloud wants it.
    builder.config([diskimage(formats=["qcow2"])], [os_provider("poold-raw")])
    builder.start(env={"OS_CLIENT_CONFIG_FILE": clouds_yaml})
    (bid, uid, rec), = wait_for(lambda: ready_uploads(builder), 120, "a ready upload")
    assert sorted(builder.builds("debian")[bid]["formats"].split(",")) == ["qcow2", "raw"]
    assert rec["format"] == "raw"
    img = glance_image(cloud, rec["external_id"])
    local = os.path.join(builder.images_dir, "debian-%s.raw" % bid)
    assert img["disk_format"] == "raw" and img["status"] == "active"
    assert img["checksum"] == digest(local, "md5") != digest(local[:-4] + ".qcow2", "md5")
    assert img["owner_specified.openstack.sha256"] == digest(local, "sha256")


def test_retention_keeps_two_uploads_in_zookeeper_and_glance(builder, clouds_yaml, cloud, kazoo):
    builder.config([diskimage()], [os_provider()])
    builder.start(env={"OS_CLIENT_CONFIG_FILE": clouds_yaml})
    seen = {}

    def collect(n):
        for b, u, r in ready_uploads(builder):
            seen[(b, u)] = r
        return len(seen) >= n
    for n in range(1, 4):
        wait_for(lambda: collect(n), 120, "%d uploads" % n)
        if n < 3:
            kazoo.ensure_path("/nodepool/images/debian/request-build")

    def settled():
        ups = builder.uploads("debian", PROV)
        return len(ups) == 2 and all(r["state"] == "ready" for _, _, r in ups) and ups
    ups = wait_for(settled, 60, "two uploads left")
    newest = sorted(seen.values(), key=lambda r: r["state_time"])[-2:]
    kept = {r["external_id"] for r in newest}
    assert {r["external_id"] for _, _, r in ups} == kept
    oldest = (set(r["external_id"] for r in seen.values()) - kept).pop()
    wait_for(lambda: glance_image(cloud, oldest) is None, 60, "the oldest Glance image deleted")
    for i in kept:
        assert glance_image(cloud, i)["status"] == "active"
    assert {i["id"] for i in project_images(cloud) if i.get("nodepool_provider_name") == PROV} == kept


def test_leaked_glance_image_deleted_after_two_passes_foreign_images_untouched(builder, clouds_yaml, cloud,
                                                                               tmp_path):
    e = dict(os.environ, OS_CLIENT_CONFIG_FILE=clouds_yaml)
    path = tmp_path / "leak.raw"
    path.write_bytes(b"\0" * 4096)

    def upload(provider, *tags):
        r = subprocess.run([program("ostool"), "--provider", provider, "upload", str(path), "raw",
                            "leak-%s" % uuid.uuid4().hex[:8], *tags], env=e, stdout=subprocess.PIPE, check=True)
        return json.loads(r.stdout)["id"]
    # Ours by its tags, but no such upload in ZooKeeper.
    leaked = upload(PROV, "nodepool_build_id=" + "f" * 32, "nodepool_upload_id=0000000099")
    # Another provider's image with the same tags, and a plain image without any: not ours.
    other = upload("os-other", "nodepool_build_id=" + "f" * 32, "nodepool_upload_id=0000000099")
    tok = cloud.token(cloud.env["user"], cloud.env["user_password"], cloud.env["project"])
    st, plain, _ = cloud._req("POST", cloud.env["glance"] + "/v2/images",
                              {"name": "plain-%s" % uuid.uuid4().hex[:6], "disk_format": "raw",
                               "container_format": "bare"}, tok)
    assert st == 201, plain
    try:
        builder.config([diskimage()], [os_provider()])
        builder.start(env={"OS_CLIENT_CONFIG_FILE": clouds_yaml})
        (_, _, rec), = wait_for(lambda: ready_uploads(builder), 120, "a ready upload")
        wait_for(lambda: glance_image(cloud, leaked) is None, 60, "leaked image deleted")
        log = builder.log()
        # First seen, then deleted at the next pass.
        assert log.index("image %s is unknown to ZooKeeper" % leaked) < log.index("deleting the leak")
        assert "deleted image %s from provider %s" % (leaked, PROV) in log
        time.sleep(2)  # a few more passes
        assert glance_image(cloud, other)["status"] == "active"
        assert glance_image(cloud, plain["id"]) is not None
        assert glance_image(cloud, rec["external_id"])["status"] == "active"
    finally:
        cloud.glance("DELETE", "/images/%s" % other)
        cloud.glance("DELETE", "/images/%s" % plain["id"])


def test_launcher_boots_nova_server_from_the_builders_glance_upload_for_zuul(builder, clouds_yaml, cloud,
                                                                             tmp_path, zk_server, zk_chroot,
                                                                             kazoo):
    builder.config([diskimage()], [os_provider()])
    builder.start(env={"OS_CLIENT_CONFIG_FILE": clouds_yaml})
    (bid, uid, rec), = wait_for(lambda: ready_uploads(builder), 120, "a ready upload")

    # The launcher shares the builder's ZooKeeper and finds the READY upload itself.
    lp = LauncherProcess(tmp_path, zk_server, zk_chroot, kazoo)
    cfg = lp.config(labels=[{"name": LABEL}])
    cfg["diskimages"] = [{"name": "debian", "elements": ["debian-minimal"]}]
    cfg["providers"] = [os_provider(**{"launch-retries": 2, "launch-timeout": 120})]
    lp.write_config(cfg)
    lp.start(env={"OS_CLIENT_CONFIG_FILE": clouds_yaml})
    try:
        zuul = ZuulClient(kazoo)
        req_id = zuul.submit([LABEL])
        req = zuul.wait(req_id, timeout=120)
        assert req["state"] == "fulfilled", req
        nodes = zuul.accept_nodes(req_id, req)
        node_id, node, _ = nodes[0]
        assert node["provider"] == PROV
        assert node["image_id"] == "/nodepool/images/debian/builds/%s/providers/%s/images/%s" % (bid, PROV, uid)
        s = cloud.server(node["external_id"])
        assert s is not None and s["status"] == "ACTIVE"
        assert s["image"]["id"] == rec["external_id"]
        assert s["metadata"]["nodepool_node_id"] == node_id
        assert s["flavor"]["original_name"] == "poold.medium"
        assert s["addresses"] == {}  # booted with networks=none: this cloud has no network to give
        zuul.use_nodes(nodes)
        zuul.return_nodes(nodes)
        lp.wait_for(lambda: node_id not in lp.nodes(), 60, "used node deleted")
        cloud.wait(lambda: cloud.server(node["external_id"]) is None, 60, "server gone")
    finally:
        rc = lp.stop()
        assert rc == 0, "poold exited %s\n%s" % (rc, lp.log_text()[-6000:])
