"""A client that behaves as Zuul's scheduler and executor do (protocol.md §1.10).

It talks to poold only through ZooKeeper, with kazoo, as Zuul does:
  1. submit a persistent sequential request with Zuul's JSON
     (/nodepool/requests/<PPP>-, makepath)
  2. wait until the request is fulfilled or failed
  3. for each node, in request order: require allocated_to == request id,
     lock /nodepool/nodes/<id>/lock with a kazoo Lock (timeout 30), re-check
  4. delete the request (Zuul does so whether locking worked or not)
  5. set state in-use with user_data, then used, then unlock

With retry=True every read and write goes through kazoo's command retry (the
client's command_retry setting), as Zuul rides out ZooKeeper connection losses;
node updates are read-modify-write loops, so a write whose answer was lost is
not applied twice.
"""
import json
import threading
import time
import uuid

from kazoo.exceptions import BadVersionError, NoNodeError
from kazoo.recipe.lock import Lock

REQUEST_ROOT = "/nodepool/requests"
NODE_ROOT = "/nodepool/nodes"


class NodeRequestFailed(Exception):
    pass


class ZuulClient:
    def __init__(self, kazoo, system_id=None, retry=False):
        self.zk = kazoo
        self.system_id = system_id or uuid.uuid4().hex
        self.retry = retry

    def _do(self, fn, *args, **kw):
        return self.zk.retry(fn, *args, **kw) if self.retry else fn(*args, **kw)

    # ---------------------------------------------------------------- requests
    def submit(self, labels, priority=200, relative_priority=0, reuse=True,
               provider=None, tenant="tenant-one", ephemeral=False, extra=None):
        """Create a node request as Zuul >= 5 does; returns its id."""
        data = self.request_data(labels, relative_priority, reuse, provider, tenant, extra)
        path = self.zk.create("%s/%03d-" % (REQUEST_ROOT, priority),
                              json.dumps(data).encode("utf8"),
                              sequence=True, makepath=True, ephemeral=ephemeral)
        return path.rsplit("/", 1)[1]

    def request_data(self, labels, relative_priority=0, reuse=True, provider=None, tenant="tenant-one",
                     extra=None):
        """The JSON object Zuul writes for a new request."""
        now = time.time()
        data = {
            "state": "requested",
            "state_time": now,
            "declined_by": [],
            "node_types": list(labels),
            "nodes": [],
            "reuse": reuse,
            "requestor": self.system_id,
            "requestor_data": {
                "build_set_uuid": uuid.uuid4().hex,
                "tenant_name": tenant,
                "pipeline_name": "check",
                "job_uuid": uuid.uuid4().hex,
                "job_name": "tox-py311",
                "span_info": {"trace_id": uuid.uuid4().hex},
            },
            "provider": provider,
            "relative_priority": relative_priority,
            "event_id": uuid.uuid4().hex,
            "created_time": now,
            "tenant_name": tenant,
        }
        if extra:
            data.update(extra)
        return data

    def get_request(self, req_id):
        try:
            data, _ = self._do(self.zk.get, "%s/%s" % (REQUEST_ROOT, req_id))
        except NoNodeError:
            return None
        return json.loads(data.decode("utf8"))

    def wait(self, req_id, timeout=30.0, states=("fulfilled", "failed")):
        """Wait for the request to reach one of states, using a data watch."""
        done = threading.Event()
        result = {}

        def watcher(data, stat, event=None):
            if data is None:
                result["req"] = None
                done.set()
                return False
            req = json.loads(data.decode("utf8"))
            if req.get("state") in states:
                result["req"] = req
                done.set()
                return False
            return True

        self.zk.DataWatch("%s/%s" % (REQUEST_ROOT, req_id), watcher)
        if not done.wait(timeout):
            raise TimeoutError("request %s not %s within %ss: %r"
                               % (req_id, "/".join(states), timeout, self.get_request(req_id)))
        return result["req"]

    def delete_request(self, req_id):
        try:
            self._do(self.zk.delete, "%s/%s" % (REQUEST_ROOT, req_id))
        except NoNodeError:
            pass

    # ---------------------------------------------------------------- nodes
    def get_node(self, node_id):
        try:
            data, stat = self._do(self.zk.get, "%s/%s" % (NODE_ROOT, node_id))
        except NoNodeError:
            return None, None
        return json.loads(data.decode("utf8")), stat

    def _store_node(self, node_id, node, stat):
        self._do(self.zk.set, "%s/%s" % (NODE_ROOT, node_id), json.dumps(node).encode("utf8"),
                 version=stat.version)

    def _update_node(self, node_id, change):
        """Read, change(node), write with the read version; again when it moved
        meanwhile (a retried write whose first answer was lost). False if gone."""
        while True:
            node, stat = self.get_node(node_id)
            if node is None:
                return False
            change(node)
            try:
                self._store_node(node_id, node, stat)
                return True
            except BadVersionError:
                if not self.retry:
                    raise

    def accept_nodes(self, req_id, req, lock_timeout=30):
        """Lock every node of a fulfilled request as Zuul's executor does.

        Returns a list of (node_id, node_dict, Lock). Deletes the request."""
        locked = []
        try:
            for node_id in req["nodes"]:
                node, _ = self.get_node(node_id)
                if node is None or node.get("allocated_to") != req_id:
                    raise NodeRequestFailed("node %s not allocated to %s: %r"
                                            % (node_id, req_id, node))
                lock = Lock(self.zk, "%s/%s/lock" % (NODE_ROOT, node_id))
                if not lock.acquire(timeout=lock_timeout):
                    raise NodeRequestFailed("could not lock node %s" % node_id)
                locked.append((node_id, lock))
                node, _ = self.get_node(node_id)
                if node is None or node.get("allocated_to") != req_id:
                    raise NodeRequestFailed("node %s reallocated while locking" % node_id)
        except Exception:
            for _, lock in locked:
                lock.release()
            raise
        finally:
            self.delete_request(req_id)
        return [(nid, self.get_node(nid)[0], lock) for nid, lock in locked]

    def use_nodes(self, nodes, project="opendev.org/org/project"):
        def change(node, node_id):
            node["state"] = "in-use"
            node["state_time"] = time.time()
            node["id"] = node_id  # Zuul writes the id into the JSON
            node["user_data"] = {"zuul_system": self.system_id, "project_name": project}
        for node_id, _, _ in nodes:
            if not self._update_node(node_id, lambda n, i=node_id: change(n, i)):
                raise NodeRequestFailed("node %s vanished while locked" % node_id)

    def return_nodes(self, nodes):
        """Mark used and unlock, as Zuul's returnNodeSet does."""
        def change(node):
            node["state"] = "used"
            node["state_time"] = time.time()
        for node_id, _, lock in nodes:
            self._update_node(node_id, change)
            lock.release()

    def run_job(self, labels, timeout=30.0, **kw):
        """The whole cycle for one nodeset; returns (request, nodes) after use."""
        req_id = self.submit(labels, **kw)
        req = self.wait(req_id, timeout=timeout)
        if req is None or req["state"] != "fulfilled":
            self.delete_request(req_id)
            raise NodeRequestFailed("request %s ended %r" % (req_id, req))
        nodes = self.accept_nodes(req_id, req)
        self.use_nodes(nodes)
        self.return_nodes(nodes)
        return req_id, req, nodes
