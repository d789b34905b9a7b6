"""poolctl's image subcommands, info, erase and export/import-image-data on
records written by kazoo as nodepool-builder writes them (protocol.md §1.6)."""
import json
import os
import re
import stat
import time

from kazoo.recipe.lock import Lock

from test_poolctl import ctl, put_node, table_rows  # noqa: F401  (ctl is a fixture)

BUILD = "a" * 32


def put_build(kazoo, image, build_id, **over):
    rec = {"state": "ready", "state_time": time.time() - 90061, "builder": "b1.example.org", "builder_id": "u-1",
           "formats": "qcow2,raw", "username": "zuul", "python_path": "/usr/bin/python3", "shell_type": None}
    rec.update(over)
    kazoo.create("/nodepool/images/%s/builds/%s" % (image, build_id), json.dumps(rec).encode(), makepath=True)
    return rec


def put_upload(kazoo, image, build_id, provider, **over):
    rec = {"state": "ready", "state_time": time.time() - 60, "external_id": "img-1", "external_name": "debian-1700",
           "format": "qcow2", "username": "zuul", "python_path": "/usr/bin/python3", "shell_type": None}
    rec.update(over)
    d = "/nodepool/images/%s/builds/%s/providers/%s/images" % (image, build_id, provider)
    kazoo.ensure_path(d + "/lock")  # the upload worker's lock dir bumps the counter, as in Nodepool
    return kazoo.create(d + "/", json.dumps(rec).encode(), sequence=True).rsplit("/", 1)[1]


def test_dib_image_list_and_image_list_columns(ctl, kazoo):
    rec = put_build(kazoo, "debian", BUILD)
    put_build(kazoo, "debian", "0000000002", state="building", formats="qcow2")
    up = put_upload(kazoo, "debian", BUILD, "local")
    assert up == "0000000001"
    kazoo.ensure_path("/nodepool/images/debian/builds/lock")
    r = ctl("dib-image-list")
    assert r.returncode == 0, r.stderr
    header, rows = table_rows(r.stdout)
    assert header == ["ID", "Image", "Builder", "Formats", "State", "Age"]
    assert rows[0] == ["debian-0000000002", "debian", "b1.example.org", "qcow2", "building", rows[0][5]]
    assert rows[1][:5] == ["debian-" + BUILD, "debian", "b1.example.org", "qcow2,raw", "ready"]
    assert re.fullmatch(r"01:01:01:0[0-9]", rows[1][5])  # 90061 s
    objs = json.loads(ctl("--json", "dib-image-list").stdout)
    assert list(objs[1].keys()) == ["id", "image", "builder", "formats", "state", "age"]
    assert objs[1]["formats"] == ["qcow2", "raw"] and objs[1]["age"] == int(rec["state_time"])

    r = ctl("image-list")
    assert r.returncode == 0, r.stderr
    header, rows = table_rows(r.stdout)
    assert header == ["Build ID", "Upload ID", "Provider", "Image", "Provider Image Name", "Provider Image ID",
                      "State", "Age"]
    assert rows == [[BUILD, "0000000001", "local", "debian", "debian-1700", "img-1", "ready", rows[0][7]]]
    assert re.fullmatch(r"00:00:01:0[0-9]", rows[0][7])


def test_pause_shows_in_lists_and_unpause_removes_flag(ctl, kazoo):
    put_build(kazoo, "debian", BUILD)
    assert ctl("image-pause", "debian").returncode == 0
    assert kazoo.exists("/nodepool/images/debian/pause")
    _, rows = table_rows(ctl("dib-image-list").stdout)
    assert rows[0][4] == "paused"
    header, rows = table_rows(ctl("image-status").stdout)
    assert header == ["Image", "Paused", "Build Request", "Build Request Age"]
    assert rows == [["debian", "True", "", ""]]
    assert ctl("image-unpause", "debian").returncode == 0
    assert kazoo.exists("/nodepool/images/debian/pause") is None
    assert ctl("image-unpause", "debian").returncode == 0  # idempotent
    _, rows = table_rows(ctl("dib-image-list").stdout)
    assert rows[0][4] == "ready"


def test_image_build_creates_request_and_refuses_unknown_or_paused(ctl, kazoo):
    r = ctl("image-build", "debian")
    assert r.returncode == 0, r.stderr
    assert kazoo.exists("/nodepool/images/debian/request-build")
    _, rows = table_rows(ctl("image-status").stdout)
    assert rows[0][:3] == ["debian", "False", "pending"]
    assert re.fullmatch(r"00:00:00:0[0-9]", rows[0][3])
    lock = Lock(kazoo, "/nodepool/images/debian/builds/lock")
    assert lock.acquire(timeout=5)
    _, rows = table_rows(ctl("image-status").stdout)
    assert rows[0][2] == "building"
    lock.release()

    r = ctl("image-build", "nosuch")
    assert r.returncode == 1 and "nosuch" in r.stderr
    r = ctl("image-build", "frozen")  # pause: true in the config
    assert r.returncode == 1 and "paused" in r.stderr
    assert kazoo.exists("/nodepool/images/frozen/request-build") is None
    assert ctl("image-build").returncode == 2


def test_image_delete_marks_upload_deleting_and_refuses_uploading(ctl, kazoo):
    put_build(kazoo, "debian", BUILD)
    ready = put_upload(kazoo, "debian", BUILD, "local")
    busy = put_upload(kazoo, "debian", BUILD, "local", state="uploading")
    args = ["image-delete", "--provider", "local", "--image", "debian", "--build-id", BUILD, "--upload-id"]
    r = ctl(*args, ready)
    assert r.returncode == 0, r.stderr
    path = "/nodepool/images/debian/builds/%s/providers/local/images/" % BUILD
    rec = json.loads(kazoo.get(path + ready)[0])
    assert rec["state"] == "deleting" and rec["external_id"] == "img-1"
    r = ctl(*args, busy)
    assert r.returncode == 1 and "in progress" in r.stderr
    assert json.loads(kazoo.get(path + busy)[0])["state"] == "uploading"
    assert ctl(*args, "0000000077").returncode == 1
    assert ctl("image-delete", "--provider", "local").returncode == 2


def test_dib_image_delete_splits_on_last_dash_and_refuses_building(ctl, kazoo):
    put_build(kazoo, "ubuntu-jammy", BUILD)
    put_build(kazoo, "ubuntu-jammy", "0000000003", state="building")
    r = ctl("dib-image-delete", "ubuntu-jammy-" + BUILD)
    assert r.returncode == 0, r.stderr
    assert json.loads(kazoo.get("/nodepool/images/ubuntu-jammy/builds/" + BUILD)[0])["state"] == "deleting"
    r = ctl("dib-image-delete", "ubuntu-jammy-0000000003")
    assert r.returncode == 1 and "in progress" in r.stderr
    assert json.loads(kazoo.get("/nodepool/images/ubuntu-jammy/builds/0000000003")[0])["state"] == "building"
    assert ctl("dib-image-delete", "ubuntu-jammy-ffff").returncode == 1


def test_info_lists_provider_uploads_and_nodes(ctl, kazoo):
    put_build(kazoo, "debian", BUILD)
    put_upload(kazoo, "debian", BUILD, "local")
    put_upload(kazoo, "debian", BUILD, "local")
    put_upload(kazoo, "debian", BUILD, "other")
    put_node(kazoo, "0000000001", external_id="local-np0000000001")
    put_node(kazoo, "0000000002", provider="other")
    r = ctl("info", "local")
    assert r.returncode == 0, r.stderr
    before, nodes = r.stdout.split("\nNodes:\n")
    assert before.startswith("ZooKeeper data for provider local\n\nImage data:\n")
    header, rows = table_rows(before.split("Image data:\n")[1])
    assert header == ["Image Name", "Build ID", "Upload IDs"]
    assert rows == [["debian", BUILD, "0000000001,0000000002"]]
    header, rows = table_rows(nodes)
    assert header == ["ID", "Server ID"] and rows == [["0000000001", "local-np0000000001"]]


def test_erase_force_removes_only_that_providers_data(ctl, kazoo):
    put_build(kazoo, "debian", BUILD)
    put_upload(kazoo, "debian", BUILD, "local")
    put_upload(kazoo, "debian", BUILD, "other")
    put_node(kazoo, "0000000001")
    put_node(kazoo, "0000000002", provider="other")
    r = ctl("erase", "local", input="n\n")
    assert r.returncode == 0 and "No data erased" in r.stdout
    assert kazoo.exists("/nodepool/nodes/0000000001")
    r = ctl("erase", "local", "--force")
    assert r.returncode == 0, r.stderr
    base = "/nodepool/images/debian/builds/" + BUILD
    assert kazoo.exists(base + "/providers/local") is None
    assert kazoo.exists(base + "/providers/other/images/0000000001")
    assert kazoo.exists(base)
    assert kazoo.exists("/nodepool/nodes/0000000001") is None
    assert kazoo.exists("/nodepool/nodes/0000000002")


def test_erase_prompt_yes_erases(ctl, kazoo):
    put_node(kazoo, "0000000001")
    r = ctl("erase", "local", input="y\n")
    assert r.returncode == 0, r.stderr
    assert "[N/y]" in r.stdout
    assert kazoo.exists("/nodepool/nodes/0000000001") is None


def test_export_wipe_import_round_trip_restores_data_and_sequence_counter(ctl, kazoo, tmp_path):
    put_build(kazoo, "debian", BUILD)
    put_build(kazoo, "debian", "0000000004", state="failed", formats="raw")
    for _ in range(5):
        last = put_upload(kazoo, "debian", BUILD, "local", external_name="ü-name")
    assert last == "0000000005"
    kazoo.ensure_path("/nodepool/images/debian/pause")
    kazoo.ensure_path("/nodepool/images/debian/request-build")  # not exported: a transient request

    def snapshot():
        out = {}
        def walk(p):
            data, st = kazoo.get(p)
            out[p] = data
            for c in kazoo.get_children(p):
                walk(p.rstrip("/") + "/" + c)
        walk("/nodepool/images")
        return out

    dump = tmp_path / "export.json"
    r = ctl("export-image-data", str(dump))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(dump).st_mode) == 0o600
    data = json.loads(dump.read_text())
    assert data["/nodepool/images/debian/pause"] == ""
    up5 = "/nodepool/images/debian/builds/%s/providers/local/images/0000000005" % BUILD
    assert json.loads(data[up5])["external_name"] == "ü-name"
    assert "/nodepool/images/debian/request-build" not in data
    assert len(data) == 1 + 2 + 5
    before = {p: v for p, v in snapshot().items() if p in data}

    kazoo.delete("/nodepool/images", recursive=True)
    r = ctl("import-image-data", str(dump))
    assert r.returncode == 0, r.stderr
    after = snapshot()
    assert {p: after[p] for p in data} == before
    # No dummy children were left behind, and the counter is past the imported ids.
    d = "/nodepool/images/debian/builds/%s/providers/local/images" % BUILD
    assert sorted(kazoo.get_children(d)) == ["0000000001", "0000000002", "0000000003", "0000000004",
                                             "0000000005"]
    new = kazoo.create(d + "/", b"{}", sequence=True).rsplit("/", 1)[1]
    assert int(new) > 5


def test_import_rejects_non_image_paths_without_writing(ctl, kazoo, tmp_path):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({"/nodepool/images/x/pause": "", "/zuul/evil": "x"}))
    r = ctl("import-image-data", str(f))
    assert r.returncode == 1
    assert kazoo.exists("/nodepool/images/x/pause") is None
