#!/usr/bin/python3
"""A real, minimal OpenStack on 127.0.0.1 for poold's tests.

    cloud.py start STATE_DIR   install (when missing), start, set up; prints the
                               env.json path; STATE_DIR/env.json has ports, users,
                               the application credential and the clouds.yaml path
    cloud.py stop STATE_DIR    stop exactly the processes start launched

Services (each in its own session/process group, pid in STATE_DIR/pids/):
PostgreSQL 15 (one private cluster for every service), RabbitMQ, Keystone,
Placement and Nova API under uwsgi, Glance API, Nova conductor + scheduler +
compute with the fake virt driver, an API-only Neutron (ML2 binding every
port through tests/openstack/neutron_bind, and the router service plugin for
floating IPs; no agents), and Cinder (API, scheduler, and a volume service
with Cinder's own fake driver from cinder.tests, which keeps volumes as
database records only: boot-from-volume servers become ACTIVE). See
shared/docs/openstack-on-loopback.md for why each piece is set up like this.

Slow first-time work (database schemas, Keystone bootstrap, users, cells,
flavors) is cached as a tarball of the initialised PostgreSQL cluster and
keys, keyed by the installed package versions, in $POOLD_OS_CACHE (default
/var/cache/poold-openstack). A cached start restores it and rewrites the
ports stored in the databases (endpoints, cell mappings).
"""
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PG_BIN = "/usr/lib/postgresql/15/bin"
PASSWORD = "poold-secret"          # every service user's password (test-only cloud)
ADMIN_PASSWORD = "admin-secret"
USER = "poold"
USER_PASSWORD = "poold-pass"
PROJECT = "poold"
REGION = "RegionOne"
FLAVORS = [("poold.small", 64, 1, 1), ("poold.medium", 128, 1, 1),
           ("poold.large", 256, 2, 1), ("poold.xlarge", 512, 4, 1)]
VERSIONED_PKGS = ["keystone", "glance-api", "nova-api", "python3-nova", "neutron-api", "placement-api",
                  "cinder-api", "postgresql-15", "rabbitmq-server"]
SERVICES = ["keystone", "placement", "nova-api", "glance", "neutron", "cinder", "cinder-scheduler",
            "cinder-volume", "nova-conductor", "nova-scheduler", "nova-compute"]
# Bump when init_databases()/setup_keystone() change what the cached state holds.
CACHE_FORMAT = "2"
PORT_NAMES = ["pg", "epmd", "rabbit", "rabbit_dist", "keystone", "glance", "placement", "nova", "neutron",
              "cinder"]


def log(msg):
    print("[cloud %.1fs] %s" % (time.time() - T0, msg), file=sys.stderr, flush=True)


T0 = time.time()


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def run(cmd, env=None, user=None, check=True, quiet=True):
    r = subprocess.run(cmd, env=env, user=user, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s" % (" ".join(cmd), r.returncode,
                                                     r.stdout.decode(errors="replace")[-4000:]))
    return r.stdout.decode(errors="replace")


class Cloud:
    def __init__(self, state):
        self.state = os.path.abspath(state)
        self.etc = os.path.join(self.state, "etc")
        self.logs = os.path.join(self.state, "logs")
        self.pids = os.path.join(self.state, "pids")

    # ------------------------------------------------------------ processes
    def spawn(self, name, cmd, env=None, user=None):
        e = dict(os.environ)
        e.update(env or {})
        logf = open(os.path.join(self.logs, name + ".log"), "ab")
        p = subprocess.Popen(cmd, env=e, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, user=user, cwd=self.state)
        logf.close()
        with open(os.path.join(self.pids, name + ".pid"), "w") as f:
            f.write(str(p.pid))
        return p

    def stop(self):
        if not os.path.isdir(self.pids):
            return
        # Reverse start order: computes before the APIs they call, the database last.
        names = [n[:-4] for n in os.listdir(self.pids) if n.endswith(".pid")]
        order = {n: i for i, n in enumerate(["pg", "epmd", "rabbit"] + SERVICES)}
        names.sort(key=lambda n: -order.get(n, 100))
        # Everything is disposable test state: SIGTERM all groups at once, SIGKILL
        # what is left after 3 s (some OpenStack services ignore SIGTERM for long).
        groups = {}
        for n in names:
            path = os.path.join(self.pids, n + ".pid")
            try:
                groups[n] = int(open(path).read().strip())
            except (OSError, ValueError):
                os.unlink(path)
        for pid in groups.values():
            self._signal(pid, signal.SIGTERM)
        deadline = time.time() + 3
        while time.time() < deadline and any(self._alive(p) for p in groups.values()):
            self._reap(groups.values())
            time.sleep(0.1)
        for pid in groups.values():
            self._signal(pid, signal.SIGKILL)
        while any(self._alive(p) for p in groups.values()):
            self._reap(groups.values())
            time.sleep(0.05)
        for n in groups:
            os.unlink(os.path.join(self.pids, n + ".pid"))

    @staticmethod
    def _signal(pid, sig):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass

    @staticmethod
    def _alive(pid):
        try:
            os.killpg(pid, 0)
            return True
        except ProcessLookupError:
            return False

    @staticmethod
    def _reap(pids):
        # Our own children (a start that failed in this process) must be reaped.
        for pid in pids:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass

    # ------------------------------------------------------------ waiting
    def wait_http(self, name, url, timeout=180, ok=(200, 300, 401)):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status in ok or r.status < 500:
                        return
            except urllib.error.HTTPError as e:
                if e.code < 500:
                    return
                last = e
            except Exception as e:  # noqa: BLE001 - connection refused while starting
                last = e
            self.check_alive(name)
            time.sleep(0.3)
        raise RuntimeError("%s did not answer at %s: %s (see %s/%s.log)" % (name, url, last, self.logs, name))

    def check_alive(self, name):
        path = os.path.join(self.pids, name + ".pid")
        pid = int(open(path).read())
        try:
            r = os.waitpid(pid, os.WNOHANG)
            if r[0] == pid:
                raise RuntimeError("%s exited (see %s/%s.log):\n%s" % (
                    name, self.logs, name, open(os.path.join(self.logs, name + ".log"),
                                                errors="replace").read()[-3000:]))
        except ChildProcessError:
            pass

    # ------------------------------------------------------------ REST
    def api(self, method, url, body=None, token=None, headers=None, expect=(200, 201, 202, 204)):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json")
        if token:
            req.add_header("X-Auth-Token", token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None), r.headers
        except urllib.error.HTTPError as e:
            raw = e.read()
            if e.code in expect:
                return e.code, None, e.headers
            raise RuntimeError("%s %s -> %d: %s" % (method, url, e.code, raw[:500].decode(errors="replace")))

    def token(self, user, password, project, domain="Default"):
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "password": password, "domain": {"name": domain}}}},
            "scope": {"project": {"name": project, "domain": {"name": domain}}}}}
        _, _, h = self.api("POST", self.kurl + "/v3/auth/tokens", body)
        return h["X-Subject-Token"]

    # ------------------------------------------------------------ config files
    def write(self, rel, text):
        path = os.path.join(self.etc, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def db(self, name):
        return "postgresql+psycopg2://postgres@127.0.0.1:%d/%s" % (self.p["pg"], name)

    def authtoken(self, user):
        return """
[keystone_authtoken]
www_authenticate_uri = {k}/v3
auth_url = {k}/v3
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = {u}
password = {pw}
""".format(k=self.kurl, u=user, pw=PASSWORD)

    def service_auth(self, section, user):
        return """
[{s}]
auth_url = {k}/v3
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = {u}
password = {pw}
region_name = {r}
""".format(s=section, k=self.kurl, u=user, pw=PASSWORD, r=REGION)

    def write_configs(self):
        p = self.p
        st = self.state
        self.write("keystone/keystone.conf", """
[DEFAULT]
log_file =
[database]
connection = {db}
[token]
provider = fernet
[fernet_tokens]
key_repository = {st}/keys/fernet
[fernet_receipts]
key_repository = {st}/keys/fernet
[credential]
key_repository = {st}/keys/credential
""".format(db=self.db("keystone"), st=st))
        self.write("uwsgi/keystone.ini", self.uwsgi("/usr/bin/keystone-wsgi-public", p["keystone"],
                                                    "OS_KEYSTONE_CONFIG_DIR", self.etc + "/keystone"))
        self.write("placement/placement.conf", """
[api]
auth_strategy = keystone
[placement_database]
connection = {db}
""".format(db=self.db("placement")) + self.authtoken("placement"))
        self.write("uwsgi/placement.ini", self.uwsgi("/usr/bin/placement-api", p["placement"],
                                                     "OS_PLACEMENT_CONFIG_DIR", self.etc + "/placement"))
        rabbit = "rabbit://guest:guest@127.0.0.1:%d/" % p["rabbit"]
        self.write("glance/glance-api.conf", """
[DEFAULT]
bind_host = 127.0.0.1
bind_port = {port}
workers = 0
enabled_backends = file:file
[database]
connection = {db}
[glance_store]
default_backend = file
[file]
filesystem_store_datadir = {st}/glance-images
[paste_deploy]
flavor = keystone
config_file = {st}/etc/glance/glance-api-paste.ini
[oslo_concurrency]
lock_path = {st}/lock
[oslo_policy]
enforce_new_defaults = false
""".format(port=p["glance"], db=self.db("glance"), st=st) + self.authtoken("glance"))
        shutil.copy("/etc/glance/glance-api-paste.ini", os.path.join(self.etc, "glance"))
        nova = """
[DEFAULT]
transport_url = {rabbit}
compute_driver = fake.FakeDriver
host = poold-fake
my_ip = 127.0.0.1
state_path = {st}/nova
instances_path = {st}/nova/instances
enabled_apis = osapi_compute
[api]
auth_strategy = keystone
[api_database]
connection = {api_db}
[database]
connection = {nova_db}
[wsgi]
api_paste_config = {st}/etc/nova/api-paste.ini
[oslo_concurrency]
lock_path = {st}/lock
[scheduler]
discover_hosts_in_cells_interval = 2
[vnc]
enabled = false
[oslo_messaging_notifications]
driver = noop
[glance]
region_name = {r}
[oslo_policy]
enforce_new_defaults = false
enforce_scope = false
""".format(rabbit=rabbit, st=st, api_db=self.db("nova_api"), nova_db=self.db("nova"), r=REGION)
        # Cinder lets only Nova (a service token) delete an in-use volume's
        # attachment (OSSA-2023-003): without it a boot-from-volume server's
        # volume outlives the server.
        nova += self.authtoken("nova") + self.service_auth("placement", "placement") + \
            self.service_auth("neutron", "neutron") + self.service_auth("service_user", "nova") + \
            "send_service_user_token = true\n"
        self.write("nova/nova.conf", nova)
        shutil.copy("/etc/nova/api-paste.ini", os.path.join(self.etc, "nova"))
        # Processes, not threads: nova-api is eventlet-patched, and a uwsgi thread that
        # resumes another's greenlet dies ("cannot switch to a different thread"),
        # leaving concurrent POST /servers unanswered.
        self.write("uwsgi/nova-api.ini", self.uwsgi("/usr/bin/nova-api-wsgi", p["nova"],
                                                    "OS_NOVA_CONFIG_DIR", self.etc + "/nova",
                                                    processes=3, threads=1))
        self.write("neutron/neutron.conf", """
[DEFAULT]
bind_host = 127.0.0.1
bind_port = {port}
core_plugin = ml2
service_plugins = router
api_workers = 0
rpc_workers = 0
rpc_state_report_workers = 0
transport_url = {rabbit}
auth_strategy = keystone
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
api_paste_config = /etc/neutron/api-paste.ini
state_path = {st}/neutron
[database]
connection = {db}
[oslo_concurrency]
lock_path = {st}/lock
[agent]
root_helper = true
""".format(port=p["neutron"], rabbit=rabbit, db=self.db("neutron"), st=st) + self.authtoken("neutron"))
        self.write("neutron/ml2_conf.ini", """
[ml2]
type_drivers = flat
tenant_network_types =
mechanism_drivers = poold_bind
extension_drivers =
[ml2_type_flat]
flat_networks = *
""")

        # The volume service's backend is the fake driver Cinder's own tests use
        # (python3-cinder ships it): volumes are records, no LVM or iSCSI.
        self.write("cinder/cinder.conf", """
[DEFAULT]
host = poold-fake
enabled_backends = fake
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = {port}
osapi_volume_workers = 1
transport_url = {rabbit}
auth_strategy = keystone
api_paste_config = /etc/cinder/api-paste.ini
state_path = {st}/cinder
log_dir =
[database]
connection = {db}
[oslo_concurrency]
lock_path = {st}/lock
[oslo_messaging_notifications]
driver = noop
[oslo_policy]
enforce_new_defaults = false
enforce_scope = false
[fake]
volume_driver = cinder.tests.fake_driver.FakeLoggingVolumeDriver
volume_backend_name = fake
""".format(port=p["cinder"], rabbit=rabbit, db=self.db("cinder"), st=st) + self.authtoken("cinder") +
                   "service_token_roles = admin,service\n")

    def uwsgi(self, wsgi_file, port, env_name, env_value, processes=1, threads=4):
        return """[uwsgi]
plugins = python3
http-socket = 127.0.0.1:{port}
wsgi-file = {f}
master = true
processes = {processes}
threads = {threads}
lazy-apps = true
die-on-term = true
buffer-size = 65535
add-header = Connection: close
env = {en}={ev}
""".format(port=port, f=wsgi_file, en=env_name, ev=env_value, processes=processes, threads=threads)

    # ------------------------------------------------------------ services
    def start_pg(self, fresh):
        pgdata = os.path.join(self.state, "pg")
        if fresh:
            os.makedirs(pgdata, exist_ok=True)
            shutil.chown(pgdata, "postgres", "postgres")
            run([PG_BIN + "/initdb", "-D", pgdata, "--auth=trust", "-U", "postgres", "-E", "UTF8",
                 "--no-sync"], user="postgres")
        sock = os.path.join(self.state, "pgsock")
        os.makedirs(sock, exist_ok=True)
        shutil.chown(sock, "postgres", "postgres")
        self.spawn("pg", [PG_BIN + "/postgres", "-D", pgdata, "-c", "listen_addresses=127.0.0.1",
                          "-p", str(self.p["pg"]), "-c", "fsync=off", "-c", "synchronous_commit=off",
                          "-c", "full_page_writes=off", "-c", "unix_socket_directories=" + sock,
                          "-c", "max_connections=300"], user="postgres")
        deadline = time.time() + 60
        while time.time() < deadline:
            r = subprocess.run([PG_BIN + "/pg_isready", "-h", "127.0.0.1", "-p", str(self.p["pg"])],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if r.returncode == 0:
                return
            self.check_alive("pg")
            time.sleep(0.2)
        raise RuntimeError("postgres did not start")

    def psql(self, db, sql):
        return run([PG_BIN + "/psql", "-h", "127.0.0.1", "-p", str(self.p["pg"]), "-U", "postgres", "-d", db,
                    "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])

    def start_rabbit(self):
        rdir = os.path.join(self.state, "rabbit")
        os.makedirs(rdir, exist_ok=True)
        env = {"HOME": rdir, "ERL_EPMD_ADDRESS": "127.0.0.1", "ERL_EPMD_PORT": str(self.p["epmd"])}
        self.spawn("epmd", ["epmd", "-address", "127.0.0.1", "-port", str(self.p["epmd"])], env=env)
        time.sleep(0.3)
        with open(os.path.join(rdir, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        with open(os.path.join(rdir, "rabbitmq.conf"), "w") as f:
            f.write("listeners.tcp.default = 127.0.0.1:%d\n" % self.p["rabbit"])
        env.update({
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.p["rabbit"]),
            "RABBITMQ_DIST_PORT": str(self.p["rabbit_dist"]), "RABBITMQ_NODENAME": "poold@localhost",
            "RABBITMQ_MNESIA_BASE": rdir + "/mnesia", "RABBITMQ_LOG_BASE": rdir + "/log",
            "RABBITMQ_CONFIG_FILE": rdir + "/rabbitmq", "RABBITMQ_ENABLED_PLUGINS_FILE": rdir + "/enabled_plugins",
            "RABBITMQ_PID_FILE": rdir + "/rabbit.pid", "RABBITMQ_LOGS": "-",
            "RABBITMQ_ADVANCED_CONFIG_FILE": rdir + "/advanced.config",
        })
        self.spawn("rabbit", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env=env)

    def wait_rabbit(self):
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.p["rabbit"]), timeout=1):
                    return
            except OSError:
                self.check_alive("rabbit")
                time.sleep(0.3)
        raise RuntimeError("rabbitmq did not start (see %s/rabbit.log)" % self.logs)

    def uwsgi_start(self, name):
        self.spawn(name, ["uwsgi", "--ini", os.path.join(self.etc, "uwsgi", name + ".ini")])

    def nova_cmd(self, name, module, service="nova"):
        conf = os.path.join(self.etc, service, service + ".conf")
        code = ("import sys; sys.argv = ['%s', '--config-file', '%s']; from %s import main; main()"
                % (name, conf, module))
        self.spawn(name, ["/usr/bin/python3", "-c", code])

    # ------------------------------------------------------------ first-time setup
    def init_databases(self):
        for d in ["keystone", "glance", "placement", "nova_api", "nova", "nova_cell0", "neutron", "cinder"]:
            self.psql("postgres", "CREATE DATABASE %s" % d)
        kconf = ["--config-file", os.path.join(self.etc, "keystone", "keystone.conf")]
        nconf = ["--config-file", os.path.join(self.etc, "nova", "nova.conf")]
        os.makedirs(os.path.join(self.state, "keys"), exist_ok=True)
        jobs = [
            ["keystone-manage"] + kconf + ["db_sync"],
            ["glance-manage", "--config-file", os.path.join(self.etc, "glance", "glance-api.conf"), "db_sync"],
            ["placement-manage", "--config-file", os.path.join(self.etc, "placement", "placement.conf"),
             "db", "sync"],
            ["sh", "-c", "nova-manage {c} api_db sync && nova-manage {c} cell_v2 map_cell0 "
             "--database_connection {cell0} && nova-manage {c} cell_v2 create_cell --name cell1 "
             "&& nova-manage {c} db sync".format(c=" ".join(nconf), cell0=self.db("nova_cell0"))],
            ["/usr/bin/python3", "-c", self.neutron_schema_code()],
            ["cinder-manage", "--config-file", os.path.join(self.etc, "cinder", "cinder.conf"), "db", "sync"],
        ]
        procs = [(j, subprocess.Popen(j, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)) for j in jobs]
        for j, pr in procs:
            out = pr.communicate()[0]
            if pr.returncode != 0:
                raise RuntimeError("%s failed:\n%s" % (" ".join(j)[:200], out.decode(errors="replace")[-4000:]))
        run(["neutron-db-manage", "--config-file", os.path.join(self.etc, "neutron", "neutron.conf"),
             "--config-file", os.path.join(self.etc, "neutron", "ml2_conf.ini"), "stamp", "heads"])
        run(["keystone-manage"] + kconf + ["fernet_setup", "--keystone-user", "root", "--keystone-group", "root"])
        run(["keystone-manage"] + kconf + ["credential_setup", "--keystone-user", "root",
                                           "--keystone-group", "root"])
        run(["keystone-manage"] + kconf + ["bootstrap", "--bootstrap-password", ADMIN_PASSWORD,
                                           "--bootstrap-admin-url", self.kurl + "/v3",
                                           "--bootstrap-public-url", self.kurl + "/v3",
                                           "--bootstrap-internal-url", self.kurl + "/v3",
                                           "--bootstrap-region-id", REGION])

    def neutron_schema_code(self):
        # The models' metadata creates the schema in seconds; the migrations take 80 s.
        return ("import sqlalchemy as sa\n"
                "from neutron.db.migration.models import head\n"
                "e = sa.create_engine(%r)\n"
                "head.get_metadata().create_all(e)\n" % self.db("neutron"))

    def setup_keystone(self):
        """Service users, catalog, the poold project/user and flavors (first start only)."""
        admin = self.token("admin", ADMIN_PASSWORD, "admin")
        k = self.kurl + "/v3"
        _, d, _ = self.api("GET", k + "/roles", token=admin)
        roles = {r["name"]: r["id"] for r in d["roles"]}
        if "member" not in roles:
            _, d, _ = self.api("POST", k + "/roles", {"role": {"name": "member"}}, token=admin)
            roles["member"] = d["role"]["id"]
        _, d, _ = self.api("POST", k + "/projects", {"project": {"name": "service", "domain_id": "default"}},
                           token=admin)
        service_project = d["project"]["id"]
        _, d, _ = self.api("POST", k + "/projects", {"project": {"name": PROJECT, "domain_id": "default"}},
                           token=admin)
        poold_project = d["project"]["id"]
        for name in ["nova", "glance", "placement", "neutron", "cinder"]:
            _, d, _ = self.api("POST", k + "/users", {"user": {"name": name, "password": PASSWORD,
                                                               "domain_id": "default"}}, token=admin)
            for role in ["admin", "service"] if "service" in roles else ["admin"]:
                self.api("PUT", "%s/projects/%s/users/%s/roles/%s" % (k, service_project, d["user"]["id"],
                                                                      roles[role]), token=admin)
        _, d, _ = self.api("POST", k + "/users", {"user": {"name": USER, "password": USER_PASSWORD,
                                                           "domain_id": "default",
                                                           "default_project_id": poold_project}}, token=admin)
        user_id = d["user"]["id"]
        for role in ["member", "reader"] if "reader" in roles else ["member"]:
            self.api("PUT", "%s/projects/%s/users/%s/roles/%s" % (k, poold_project, user_id, roles[role]),
                     token=admin)
        catalog = [("glance", "image", "glance"), ("placement", "placement", "placement"),
                   ("nova", "compute", "nova"), ("neutron", "network", "neutron"),
                   ("cinderv3", "volumev3", "cinder")]
        for name, typ, port_name in catalog:
            _, d, _ = self.api("POST", k + "/services", {"service": {"name": name, "type": typ}}, token=admin)
            url = "http://127.0.0.1:%d" % self.p[port_name]
            if typ == "compute":
                url += "/v2.1"
            elif typ == "volumev3":
                url += "/v3/$(project_id)s"  # as devstack registers it; Keystone fills it in per token
            for itf in ["public", "internal", "admin"]:
                self.api("POST", k + "/endpoints", {"endpoint": {"service_id": d["service"]["id"], "interface": itf,
                                                                 "url": url, "region_id": REGION}}, token=admin)
        # The application credential (its secret is shown only now).
        user_tok = self.token(USER, USER_PASSWORD, PROJECT)
        _, d, _ = self.api("POST", "%s/users/%s/application_credentials" % (k, user_id),
                           {"application_credential": {"name": "poold-ci", "secret": "poold-appcred-secret"}},
                           token=user_tok)
        self.meta = {"user_id": user_id, "project_id": poold_project,
                     "app_cred_id": d["application_credential"]["id"],
                     "app_cred_secret": "poold-appcred-secret"}

    def setup_nova(self):
        admin = self.token("admin", ADMIN_PASSWORD, "admin")
        base = "http://127.0.0.1:%d/v2.1" % self.p["nova"]
        _, d, _ = self.api("GET", base + "/flavors", token=admin)
        have = {f["name"] for f in d["flavors"]}
        for name, ram, vcpus, disk in FLAVORS:
            if name in have:
                continue
            self.api("POST", base + "/flavors", {"flavor": {"name": name, "ram": ram, "vcpus": vcpus,
                                                            "disk": disk}}, token=admin)

    def discover_hosts(self, timeout=120):
        nconf = ["--config-file", os.path.join(self.etc, "nova", "nova.conf")]
        deadline = time.time() + timeout
        while time.time() < deadline:
            run(["nova-manage"] + nconf + ["cell_v2", "discover_hosts"], check=False)
            out = self.psql("nova_api", "SELECT count(*) FROM host_mappings")
            if out.strip() not in ("", "0"):
                return
            self.check_alive("nova-compute")
            time.sleep(1)
        raise RuntimeError("the fake compute host was never mapped (see %s/nova-compute.log)" % self.logs)

    def wait_compute_up(self, timeout=120):
        admin = self.token("admin", ADMIN_PASSWORD, "admin")
        base = "http://127.0.0.1:%d/v2.1" % self.p["nova"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            _, d, _ = self.api("GET", base + "/os-hypervisors/detail", token=admin)
            hv = d.get("hypervisors", [])
            if hv and hv[0].get("state") == "up":
                # Placement must know the resource provider before scheduling works.
                _, rp, _ = self.api("GET", "http://127.0.0.1:%d/resource_providers" % self.p["placement"],
                                    token=admin, headers={"OpenStack-API-Version": "placement 1.20"})
                if rp.get("resource_providers"):
                    return
            time.sleep(1)
        raise RuntimeError("no compute host is up (see %s/nova-compute.log)" % self.logs)

    # ------------------------------------------------------------ cache
    def cache_key(self):
        vers = run(["dpkg-query", "-W", "-f", "${Package}=${Version}\n"] + VERSIONED_PKGS)
        h = hashlib.sha256(vers.encode())
        h.update(CACHE_FORMAT.encode())
        return h.hexdigest()[:16]

    def cache_path(self):
        d = os.environ.get("POOLD_OS_CACHE", "/var/cache/poold-openstack")
        return os.path.join(d, "state-%s.tar" % self.cache_key())

    def save_cache(self):
        path = self.cache_path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # A clean shutdown of PostgreSQL so the copied cluster is consistent.
        subprocess.run([PG_BIN + "/pg_ctl", "-D", os.path.join(self.state, "pg"), "stop", "-m", "fast", "-w"],
                       user="postgres", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tmp = path + ".tmp%d" % os.getpid()
        with tarfile.open(tmp, "w") as t:
            t.add(os.path.join(self.state, "pg"), arcname="pg")
            t.add(os.path.join(self.state, "keys"), arcname="keys")
            info = json.dumps({"ports": self.p, "meta": self.meta}).encode()
            ti = tarfile.TarInfo("cache.json")
            ti.size = len(info)
            import io
            t.addfile(ti, io.BytesIO(info))
        os.replace(tmp, path)
        os.unlink(os.path.join(self.pids, "pg.pid"))
        # States of other package versions are dead weight (150 MB each).
        for old in os.listdir(os.path.dirname(path)):
            if old.startswith("state-") and old != os.path.basename(path):
                os.unlink(os.path.join(os.path.dirname(path), old))

    def restore_cache(self):
        path = self.cache_path()
        if not os.path.exists(path):
            return None
        with tarfile.open(path) as t:
            t.extractall(self.state)
        info = json.load(open(os.path.join(self.state, "cache.json")))
        return info

    def rewrite_ports(self, old):
        for name in ["keystone", "glance", "placement", "nova", "neutron", "cinder"]:
            a, b = "127.0.0.1:%d" % old[name], "127.0.0.1:%d" % self.p[name]
            self.psql("keystone", "UPDATE endpoint SET url = replace(url, '%s', '%s')" % (a, b))
        for name in ["pg", "rabbit"]:
            a, b = "127.0.0.1:%d" % old[name], "127.0.0.1:%d" % self.p[name]
            self.psql("nova_api", "UPDATE cell_mappings SET transport_url = replace(transport_url, '%s', '%s'), "
                      "database_connection = replace(database_connection, '%s', '%s')" % (a, b, a, b))

    # ------------------------------------------------------------ start
    def start(self):
        for d in [self.state, self.etc, self.logs, self.pids, os.path.join(self.state, "lock")]:
            os.makedirs(d, exist_ok=True)
        os.chmod(self.state, 0o755)
        self.p = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES))))
        self.kurl = "http://127.0.0.1:%d" % self.p["keystone"]
        self.write_configs()
        cached = self.restore_cache()
        self.start_rabbit()
        if cached:
            log("restored the initialised state from %s" % self.cache_path())
            self.meta = cached["meta"]
            shutil.chown(os.path.join(self.state, "pg"), "postgres", "postgres")
            self.start_pg(fresh=False)
            self.rewrite_ports(cached["ports"])
        else:
            log("no cached state: initialising databases (slow, once per package versions)")
            self.start_pg(fresh=True)
            self.init_databases()
            log("databases ready")
        self.uwsgi_start("keystone")
        self.uwsgi_start("placement")
        self.wait_http("keystone", self.kurl + "/v3")
        if not cached:
            self.setup_keystone()
            # Cache now: what follows is quick on every start.
            self.save_cache()
            self.start_pg(fresh=False)
            log("cached the initialised state in %s" % self.cache_path())
        log("keystone ready")
        self.spawn("glance", ["glance-api", "--config-file", os.path.join(self.etc, "glance", "glance-api.conf")])
        # Without service plugins nothing loads the port-forwarding and DVR models, yet
        # GET /ports names its relationship (Nova asks for ports of every server).
        code = ("import sys; from neutron.cmd.eventlet.server import main; "
                "import neutron.db.migration.models.head; from sqlalchemy import orm; orm.configure_mappers(); "
                "sys.argv = ['neutron-server', '--config-file', %r, '--config-file', %r]; sys.exit(main())"
                % (os.path.join(self.etc, "neutron", "neutron.conf"), os.path.join(self.etc, "neutron", "ml2_conf.ini")))
        # poold_bind (neutron_bind/) binds the ports Nova asks for: no agent runs here.
        self.spawn("neutron", ["/usr/bin/python3", "-c", code], env={"PYTHONPATH": os.path.join(HERE, "neutron_bind")})
        self.spawn("cinder", ["cinder-api", "--config-file", os.path.join(self.etc, "cinder", "cinder.conf")])
        self.wait_rabbit()
        log("rabbitmq ready")
        self.uwsgi_start("nova-api")
        self.nova_cmd("nova-conductor", "nova.cmd.conductor")
        self.nova_cmd("nova-scheduler", "nova.cmd.scheduler")
        self.wait_http("placement", "http://127.0.0.1:%d/" % self.p["placement"])
        self.nova_cmd("cinder-scheduler", "cinder.cmd.scheduler", service="cinder")
        self.nova_cmd("cinder-volume", "cinder.cmd.volume", service="cinder")
        self.nova_cmd("nova-compute", "nova.cmd.compute")
        self.wait_http("nova-api", "http://127.0.0.1:%d/" % self.p["nova"])
        self.wait_http("glance", "http://127.0.0.1:%d/" % self.p["glance"])
        self.wait_http("neutron", "http://127.0.0.1:%d/" % self.p["neutron"])
        self.wait_http("cinder", "http://127.0.0.1:%d/" % self.p["cinder"])
        self.setup_nova()
        self.discover_hosts()
        self.wait_compute_up()
        log("all services up")
        return self.write_env()

    def write_env(self):
        clouds = {"clouds": {
            "poold": {"auth": {"auth_url": self.kurl + "/v3", "username": USER, "password": USER_PASSWORD,
                               "project_name": PROJECT, "user_domain_name": "Default",
                               "project_domain_name": "Default"},
                      "region_name": REGION, "interface": "public", "identity_api_version": 3},
            "poold-appcred": {"auth_type": "v3applicationcredential",
                              "auth": {"auth_url": self.kurl + "/v3",
                                       "application_credential_id": self.meta["app_cred_id"],
                                       "application_credential_secret": self.meta["app_cred_secret"]},
                              "region_name": REGION},
            "poold-badpass": {"auth": {"auth_url": self.kurl + "/v3", "username": USER, "password": "wrong",
                                       "project_name": PROJECT, "user_domain_name": "Default",
                                       "project_domain_name": "Default"},
                              "region_name": REGION},
            "admin": {"auth": {"auth_url": self.kurl + "/v3", "username": "admin", "password": ADMIN_PASSWORD,
                               "project_name": "admin", "user_domain_name": "Default",
                               "project_domain_name": "Default"},
                      "region_name": REGION},
        }}
        cpath = os.path.join(self.state, "clouds.yaml")
        with open(cpath, "w") as f:
            json.dump(clouds, f, indent=1)  # JSON is YAML
        os.chmod(cpath, 0o600)
        env = {"state": self.state, "ports": self.p, "keystone": self.kurl + "/v3", "clouds_yaml": cpath,
               "admin_password": ADMIN_PASSWORD, "user": USER, "user_password": USER_PASSWORD,
               "project": PROJECT, "region": REGION, "flavors": FLAVORS,
               "nova": "http://127.0.0.1:%d/v2.1" % self.p["nova"],
               "glance": "http://127.0.0.1:%d" % self.p["glance"],
               "neutron": "http://127.0.0.1:%d" % self.p["neutron"],
               "cinder": "http://127.0.0.1:%d/v3" % self.p["cinder"]}
        env.update(self.meta)
        path = os.path.join(self.state, "env.json")
        with open(path, "w") as f:
            json.dump(env, f, indent=1)
        return path


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        print(__doc__, file=sys.stderr)
        return 2
    cmd, state = sys.argv[1], sys.argv[2]
    c = Cloud(state)
    if cmd == "stop":
        t = time.time()
        c.stop()
        log("stopped in %.1f s" % (time.time() - t))
        return 0
    r = subprocess.run([os.path.join(HERE, "install.sh")])
    if r.returncode != 0:
        return r.returncode
    log("packages present")
    try:
        path = c.start()
    except BaseException:
        c.stop()
        raise
    log("started: %s" % path)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
