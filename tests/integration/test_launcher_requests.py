"""poold serves Zuul-like node requests against libvirt's test driver."""
import json
import time

import pytest

from launcher_fixture import LABEL, PROVIDER, launcher  # noqa: F401  (fixture)
from zuul_client import ZuulClient


def start(launcher, **cfg):
    launcher.write_config(launcher.config(**cfg))
    launcher.images()
    launcher.start()
    launcher.wait_for(lambda: launcher.components("pool"), 10, "pool component")
    return ZuulClient(launcher.kazoo)


def test_pool_component_has_nodepool_fields(launcher):
    start(launcher)
    (c,) = launcher.components("pool")
    assert c["id"].split("-PoolWorker.")[1].startswith("%s-main-" % PROVIDER)
    assert c["name"] == "main" and c["provider_name"] == PROVIDER
    assert c["supported_labels"] == [LABEL] and c["priority"] == 100 and c["paused"] is False


def test_single_node_request_fulfilled_then_node_deleted_after_used(launcher):
    zc = start(launcher)
    req_id = zc.submit([LABEL])
    req = zc.wait(req_id, timeout=20)
    assert req["state"] == "fulfilled", req
    assert len(req["nodes"]) == 1
    nodes = zc.accept_nodes(req_id, req)
    (nid, node, _), = nodes
    assert node["state"] == "ready" and node["allocated_to"] == req_id
    assert node["provider"] == PROVIDER and node["pool"] == "main" and node["type"] == [LABEL]
    assert node["external_id"] and node["launcher"].startswith(launcher.components("pool")[0]["id"][:10])
    assert node["image_id"].startswith("/nodepool/images/debian/builds/")
    assert node["attributes"] == {"executor-zone": "z1"}
    assert node["resources"] == {"cores": 1, "instances": 1, "ram": 64}
    assert node["connection_port"] == node["ssh_port"]
    zc.use_nodes(nodes)
    zc.return_nodes(nodes)
    launcher.wait_for(lambda: nid not in launcher.nodes(), 15, "used node deleted")


def test_multi_node_request_nodes_in_node_types_order(launcher):
    labels = [{"name": "small"}, {"name": "big"}]
    pool = {"labels": [{"name": "small", "diskimage": "debian", "memory": 64, "vcpus": 1},
                       {"name": "big", "diskimage": "debian", "memory": 128, "vcpus": 2}]}
    zc = start(launcher, labels=labels, pool=pool)
    req_id = zc.submit(["big", "small", "big"])
    req = zc.wait(req_id, timeout=20)
    assert req["state"] == "fulfilled", req
    types = [launcher.nodes()[n]["type"] for n in req["nodes"]]
    assert types == [["big"], ["small"], ["big"]]
    nodes = zc.accept_nodes(req_id, req)
    for _, node, _ in nodes:
        assert node["allocated_to"] == req_id
    zc.use_nodes(nodes)
    zc.return_nodes(nodes)
    ids = [n for n, _, _ in nodes]
    launcher.wait_for(lambda: not set(ids) & set(launcher.nodes()), 15, "nodes deleted")


def test_unknown_label_declined_and_request_failed(launcher):
    zc = start(launcher)
    req_id = zc.submit(["no-such-label"])
    req = zc.wait(req_id, timeout=15)
    assert req["state"] == "failed"
    assert req["declined_by"] == [launcher.components("pool")[0]["id"]]


def test_ready_node_is_reused(launcher):
    zc = start(launcher, labels=[{"name": LABEL, "min-ready": 1}])
    launcher.wait_for(lambda: [n for n, v in launcher.nodes().items()
                               if v["state"] == "ready" and v["allocated_to"] is None], 15, "min-ready node")
    ready = [n for n, v in launcher.nodes().items() if v["state"] == "ready" and v["allocated_to"] is None]
    req_id = zc.submit([LABEL])
    req = zc.wait(req_id, timeout=15)
    assert req["state"] == "fulfilled"
    assert req["nodes"][0] in ready
    nodes = zc.accept_nodes(req_id, req)
    zc.use_nodes(nodes)
    zc.return_nodes(nodes)
