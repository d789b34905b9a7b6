"""poold-gitlab-executor driven as GitLab Runner's custom executor drives it
(gitlab_runner.py plays the runner by its documented contract), against the
real poold launcher with static nodes on real sshd servers, with kazoo
looking at ZooKeeper the way Zuul's side of the protocol is checked elsewhere.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import yaml

from gitlab_runner import BUILD_FAILURE, SYSTEM_FAILURE, CustomRunner, Job
from harness import program
from launcher_fixture import LauncherProcess, launcher  # noqa: F401  (fixture)
from sshd import SshServer

PROV = "static-prov"
HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- fixtures
class Pool:
    """poold with a static provider whose nodes are sshd servers we log in to,
    and poold-gitlab-executor's settings pointing at it."""

    def __init__(self, launcher, workdir):
        self.launcher = launcher
        self.kazoo = launcher.kazoo
        self.workdir = workdir
        self.sshds = []
        self.hosts = []
        # Short: the holder's unix socket lives below it (108-byte limit).
        self.state = tempfile.mkdtemp(prefix="pgx-", dir="/tmp")
        self.key = os.path.join(workdir, "id_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key], check=True,
                       stdin=subprocess.DEVNULL)
        with open(self.key + ".pub") as f:
            self.pub = f.read().strip()
        self.settings_path = os.path.join(workdir, "gitlab-executor.yaml")
        self.settings = {}
        # The holder's stderr is /dev/null: sanitizer reports from any of our
        # processes go to files here instead, and the fixture fails on them.
        self.san_dir = os.path.join(workdir, "sanitizer")
        os.makedirs(self.san_dir)
        self.env = dict(os.environ)
        for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
            if var in self.env:
                self.env[var] += ":log_path=%s/%s" % (self.san_dir, var.split("_")[0].lower())

    def sshd(self, port=None):
        s = SshServer(port=port, authorized_keys=[self.pub]).start()
        self.sshds.append(s)
        return s

    def add_host(self, sshd, labels=("small",), **kw):
        h = {"name": "127.0.0.1", "labels": list(labels), "connection-port": sshd.port, "timeout": 2,
             "username": "root"}
        h.update(kw)
        self.hosts.append(h)
        return h

    def write_config(self):
        labels = sorted({lab for h in self.hosts for lab in h["labels"]} | {"nowhere", "small"})
        cfg = {"zookeeper-servers": [{"host": "127.0.0.1", "port": self.launcher.zk_server.port,
                                      "chroot": self.launcher.chroot}],
               "zookeeper-timeout": 5.0,
               "webapp": {"port": 0},
               "labels": [{"name": n} for n in labels],
               "providers": [{"name": PROV, "driver": "static", "pools": [{"name": "main", "nodes": self.hosts}]}]}
        with open(self.launcher.config_path + ".tmp", "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        os.replace(self.launcher.config_path + ".tmp", self.launcher.config_path)

    def start(self, n_ready):
        self.write_config()
        self.launcher.start()
        return self.wait_ready(n_ready)

    def write_settings(self, **extra):
        s = {"zookeeper-hosts": "127.0.0.1:%d%s" % (self.launcher.zk_server.port, self.launcher.chroot),
             "zookeeper-timeout": 5,
             "label": "small",
             "ssh-key": self.key,
             "state-dir": self.state,
             "ssh-connect-timeout": 5,
             "builds-dir": os.path.join(self.workdir, "builds"),
             "cache-dir": os.path.join(self.workdir, "cache"),
             "node-timeout": 60}
        if self.launcher.zk_server.tls:  # the TLS-only tier
            s["zookeeper-tls"] = self.launcher.zk_server.tls.zookeeper_tls()
        s.update(extra)
        self.settings = s
        with open(self.settings_path, "w") as f:
            yaml.safe_dump(s, f, sort_keys=False)
        return self.settings_path

    def runner(self, **kw):
        if not self.settings:
            self.write_settings()
        kw.setdefault("env", self.env)
        return CustomRunner.for_driver(program("poold-gitlab-executor"), self.settings_path, **kw)

    # ---- ZooKeeper views
    def nodes(self):
        return self.launcher.nodes()

    def ready(self):
        return {k: v for k, v in self.nodes().items() if v["state"] == "ready"}

    def wait_ready(self, n, timeout=20):
        return self.launcher.wait_for(lambda: len(self.ready()) == n and self.ready(), timeout,
                                      "%d ready static node(s)" % n)

    def locked(self, node_id):
        path = "/nodepool/nodes/%s/lock" % node_id
        return bool(self.kazoo.exists(path) and self.kazoo.get_children(path))

    def requests(self):
        if not self.kazoo.exists("/nodepool/requests"):
            return {}
        out = {}
        for r in self.kazoo.get_children("/nodepool/requests"):
            try:
                out[r] = json.loads(self.kazoo.get("/nodepool/requests/" + r)[0].decode())
            except Exception:
                pass
        return out

    def job_dirs(self):
        return sorted(d for d in os.listdir(self.state) if d.startswith("job-"))

    def cleanup(self):
        # A failed test may leave holders behind: they must not outlive it.
        for d in self.job_dirs():
            try:
                with open(os.path.join(self.state, d, "node.json")) as f:
                    os.kill(json.load(f)["holder_pid"], signal.SIGKILL)
            except (OSError, ValueError, KeyError):
                pass
        for s in self.sshds:
            s.cleanup()
        shutil.rmtree(self.state, ignore_errors=True)

    def sanitizer_reports(self):
        out = []
        for name in sorted(os.listdir(self.san_dir)):
            with open(os.path.join(self.san_dir, name), errors="replace") as f:
                out.append("%s:\n%s" % (name, f.read()))
        return out


@pytest.fixture
def pool(launcher, tmp_path):  # noqa: F811
    p = Pool(launcher, str(tmp_path))
    yield p
    p.cleanup()
    reports = p.sanitizer_reports()
    assert not reports, "\n".join(reports)


def holders():
    """pids of holder processes alive on this machine (comm gitlab-holder)."""
    out = subprocess.run(["pgrep", "-x", "gitlab-holder"], capture_output=True, text=True)
    return {int(x) for x in out.stdout.split()}


def wait_for(fn, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def stage_env(pool, job_id, **extra):
    """A stage's environment as GitLab Runner gives it, for calling one stage by hand."""
    env = dict(pool.env, BUILD_FAILURE_EXIT_CODE=str(BUILD_FAILURE), SYSTEM_FAILURE_EXIT_CODE=str(SYSTEM_FAILURE),
               CUSTOM_ENV_CI_JOB_ID=str(job_id), TMPDIR=pool.workdir)
    env.update(extra)
    return env


def stage(pool, job_id, *args, env=None, timeout=60):
    return subprocess.run([program("poold-gitlab-executor"), "-c", pool.settings_path, *args],
                          env=env or stage_env(pool, job_id), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, process_group=0)


# ---------------------------------------------------------------- tests
def test_config_stage_prints_the_runner_json_with_the_jobs_label(pool):
    """config_exec: valid JSON with driver name/version, builds_dir, cache_dir,
    builds_dir_is_shared false and job_env carrying the label this job will
    request (its CI/CD variable wins over the runner's default)."""
    pool.write_settings()
    out = stage(pool, 11, "config")
    assert out.returncode == 0, out.stderr
    cfg = json.loads(out.stdout)
    assert cfg["driver"]["name"] == "poold" and cfg["driver"]["version"]
    assert cfg["builds_dir"] == pool.settings["builds-dir"] and cfg["cache_dir"] == pool.settings["cache-dir"]
    assert cfg["builds_dir_is_shared"] is False
    assert cfg["job_env"] == {"POOLD_GITLAB_LABEL": "small"}
    out = stage(pool, 11, "config", env=stage_env(pool, 11, CUSTOM_ENV_POOLD_LABEL="big"))
    assert json.loads(out.stdout)["job_env"] == {"POOLD_GITLAB_LABEL": "big"}


def test_bad_settings_are_reported_with_file_line_column_as_a_system_failure(pool):
    """A settings file with an unknown key and a bad value: every problem as
    FILE:LINE:COL on stderr, and the stage exits SYSTEM_FAILURE_EXIT_CODE."""
    with open(pool.settings_path, "w") as f:
        f.write("zookeeper-hosts: 127.0.0.1:1\nssh-key: /k\nlable: small\nnode-timeout: -5\n")
    out = stage(pool, 12, "config")
    assert out.returncode == SYSTEM_FAILURE
    assert "%s:3:1: error: unknown key 'lable'" % pool.settings_path in out.stderr, out.stderr
    assert "%s:4:15: error: 'node-timeout': -5 must be a positive" % pool.settings_path in out.stderr, out.stderr


def test_job_runs_on_a_warm_static_node_which_is_locked_in_use_then_used(pool):
    """The whole job: every stage runs in the runner's order on the node (over
    ssh, as the node's user, host key checked, all stages on one connection), the node is locked and in-use
    with the job in user_data while the job runs, the request is gone, and at
    cleanup the node is marked used and unlocked, so poold takes it back (the
    static host is registered again as a new node)."""
    a = pool.sshd()
    pool.add_host(a)
    (nid,) = pool.start(1)
    seen = {}
    marker = os.path.join(pool.workdir, "ran-on-node")

    def look():
        # Runs on the node, as the job's step_script: we look from outside at that moment.
        seen["node"] = pool.nodes()[nid]
        seen["locked"] = pool.locked(nid)
        seen["requests"] = pool.requests()
    job = Job(101, ['echo "job says hello from $(id -un) $SSH_CONNECTION"', "touch %s" % marker,
                    "sleep 1.5", "echo done"], after_script=["echo after-script-ran"])
    t = threading.Timer(1.0, look)
    runner = pool.runner()
    # look() must run while step_script does: start it when step_script starts.
    orig = runner._exec

    def exec_hook(name, *a, **kw):
        if name == "step_script":
            t.start()
        return orig(name, *a, **kw)
    runner._exec = exec_hook
    res = runner.run_job(job)
    t.join()
    assert res.status == "success", res.trace()
    assert res.names() == ["config_exec", "prepare_exec", "prepare_script", "get_sources", "restore_cache",
                           "download_artifacts", "step_script", "after_script", "archive_cache",
                           "upload_artifacts_on_success", "cleanup_file_variables", "cleanup_exec"]
    assert all(s.code == 0 for s in res.stages), [(s.name, s.code, s.output.text()) for s in res.stages]
    trace = res.trace()
    assert "job says hello from root 127.0.0.1" in trace and ("%d" % a.port) in trace
    assert "after-script-ran" in trace and os.path.exists(marker)
    prep = res.stage("prepare_exec").output.text()
    assert "Requested a 'small' node" in prep and "Node %s" % nid in prep
    # While the job ran: the node was locked and in-use, with the job in user_data.
    node = seen["node"]
    assert seen["locked"] and node["state"] == "in-use", node
    assert node["user_data"]["gitlab_job_id"] == "101" and node["user_data"]["project_name"] == "group/project"
    assert node["id"] == nid   # written into the record, as Zuul does
    assert seen["requests"] == {}, "the fulfilled request is deleted once the node is locked"
    # After cleanup: used and unlocked, so the launcher took it back and registered the host anew.
    pool.launcher.wait_for(lambda: nid not in pool.nodes() and len(pool.ready()) == 1, 15, "node returned")
    assert pool.job_dirs() == []
    assert "poold: released node %s (in-use -> used, unlocked)" % nid in res.stage("cleanup_exec").output.text()
    # The nine run stages shared one ssh connection (one key exchange, one login), whose
    # master cleanup stopped.
    assert a.read_log().count("Accepted publickey") == 1, a.read_log()
    assert not [c for c in cmdlines() if "ssh.mux" in c and pool.state in c]


def cmdlines():
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                out.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass
    return out


def test_job_output_streams_to_the_runner_as_it_comes(pool):
    """run_exec's output reaches the runner line by line while the script still
    runs: the first line arrives seconds before the stage ends."""
    pool.add_host(pool.sshd())
    pool.start(1)
    job = Job(102, ["echo first-line", "sleep 3", "echo last-line"])
    res = pool.runner().run_job(job)
    assert res.status == "success", res.trace()
    st = res.stage("step_script")
    t_first = res.first_job_output_time("first-line")
    t_last = res.first_job_output_time("last-line")
    assert t_first is not None and t_last is not None
    assert t_last - t_first >= 2.5 and st.ended - t_first >= 2.5, (t_first, t_last, st.ended)


def test_failing_script_is_a_build_failure_and_the_node_is_still_returned(pool):
    """A job script exiting 3: run_exec exits BUILD_FAILURE_EXIT_CODE, the job
    fails as script_failure, after_script and the on_failure stages still run
    on the node, and cleanup returns the node."""
    pool.add_host(pool.sshd())
    (nid,) = pool.start(1)
    res = pool.runner().run_job(Job(103, ["echo about to fail", "exit 3", "echo never"],
                                    after_script=["echo after-script-ran"]))
    assert res.status == "failed" and res.failure_reason == "script_failure", res.trace()
    assert res.stage("step_script").code == BUILD_FAILURE
    assert "about to fail" in res.trace() and "never" not in res.stage("step_script").output.text()
    assert res.stage("after_script").code == 0 and "after-script-ran" in res.trace()
    assert "archive_cache_on_failure" in res.names() and "upload_artifacts_on_failure" in res.names()
    pool.launcher.wait_for(lambda: nid not in pool.nodes(), 15, "node returned")


def test_wrong_host_key_is_a_system_failure_and_nothing_runs_on_the_node(pool):
    """The node's recorded host_keys do not match the server: ssh refuses
    (StrictHostKeyChecking against host_keys only), run_exec exits
    SYSTEM_FAILURE_EXIT_CODE (runner_system_failure, not the job's fault), no
    command ran there, and the node is still returned."""
    a, other = pool.sshd(), SshServer()
    try:
        # Registered without a scan, with another server's key.
        pool.add_host(a, **{"host-key-checking": False, "host-key": other.host_keys()[0]})
    finally:
        other.cleanup()
    (nid,) = pool.start(1)
    marker = os.path.join(pool.workdir, "must-not-exist")
    res = pool.runner().run_job(Job(104, ["touch %s" % marker]))
    assert res.status == "failed" and res.failure_reason == "runner_system_failure", res.trace()
    assert res.stage("prepare_script").code == SYSTEM_FAILURE
    assert "could not run the prepare_script script on node %s" % nid in res.trace()
    assert not os.path.exists(marker)
    pool.launcher.wait_for(lambda: nid not in pool.nodes(), 15, "node returned")


def test_node_dying_mid_job_is_a_system_failure(pool):
    """The node dies between stages (sshd and the job's established connection, which the
    stages share): ssh cannot reach it, run_exec exits SYSTEM_FAILURE_EXIT_CODE, told apart
    from the job failing."""
    a = pool.sshd()
    pool.add_host(a)
    pool.start(1)
    runner = pool.runner()
    orig = runner._exec

    def exec_hook(name, *args, **kw):
        if name == "restore_cache":
            a.die()
        return orig(name, *args, **kw)
    runner._exec = exec_hook
    res = runner.run_job(Job(105, ["echo hi"]))
    assert res.stage("get_sources").code == 0
    assert res.stage("restore_cache").code == SYSTEM_FAILURE
    assert res.status == "failed" and res.failure_reason == "runner_system_failure"
    assert "step_script" not in res.names() and res.stage("cleanup_exec").code == 0


def test_several_jobs_at_once_get_distinct_nodes_and_a_fourth_waits(pool):
    """Three jobs at once on three static slots: each gets its own node (no
    node twice), all succeed. A fourth job's request waits (pending, Zuul's
    JSON with this job in requestor_data) until a node is free, then runs."""
    a = pool.sshd()
    pool.add_host(a, **{"max-parallel-jobs": 3})
    pool.start(3)
    gate = os.path.join(pool.workdir, "gate")
    results = {}

    def run(i, script):
        results[i] = pool.runner().run_job(Job(200 + i, script))
    # The first three wait for the gate file, so they hold their nodes together.
    hold = ["echo node=$SSH_CONNECTION job=$CI_JOB_ID",
            "for i in $(seq 300); do [ -e %s ] && break; sleep 0.1; done" % gate]
    threads = [threading.Thread(target=run, args=(i, hold)) for i in range(3)]
    for t in threads:
        t.start()
    wait_for(lambda: len([n for n in pool.nodes().values() if n["state"] == "in-use"]) == 3, 60,
             "three nodes in use")
    in_use = {k: v["user_data"]["gitlab_job_id"] for k, v in pool.nodes().items() if v["state"] == "in-use"}
    assert sorted(in_use.values()) == ["200", "201", "202"]
    fourth = threading.Thread(target=run, args=(3, ["echo fourth-ran"]))
    fourth.start()
    reqs = wait_for(lambda: {k: v for k, v in pool.requests().items() if v["state"] == "pending"}, 20,
                    "the fourth job's request pending")
    (rid, req), = reqs.items()
    assert rid.startswith("200-") and req["node_types"] == ["small"] and req["reuse"] is True
    assert req["requestor"].startswith("gitlab-runner:") and req["tenant_name"] == "gitlab"
    assert req["requestor_data"]["gitlab_job_id"] == "203"
    assert req["requestor_data"]["project_path"] == "group/project"
    assert len(pool.job_dirs()) == 4
    open(gate, "w").close()
    for t in threads + [fourth]:
        t.join(120)
    assert all(results[i].status == "success" for i in range(4)), {i: r.trace() for i, r in results.items()}
    assert "fourth-ran" in results[3].trace()
    pool.launcher.wait_for(lambda: len(pool.ready()) == 3 and not pool.job_dirs(), 20, "all nodes back")


def test_killed_runner_stops_the_job_on_the_node_and_releases_it(pool):
    """GitLab Runner killed (SIGKILL) mid-job: no cleanup stage ever comes. The
    run stage sees its runner gone and stops ssh, so the job's processes on the
    node end; the holder sees it too and marks the node used and unlocks it at
    once (well before any deadline)."""
    pool.add_host(pool.sshd())
    (nid,) = pool.start(1)
    settings = pool.write_settings()
    pidfile = os.path.join(pool.workdir, "job.pid")
    job = Job(300, ["echo $$ > %s" % pidfile, "echo job-started", "sleep 300"], timeout=3600)
    spec = os.path.join(pool.workdir, "spec.json")
    result = os.path.join(pool.workdir, "result.json")
    runner = CustomRunner.for_driver(program("poold-gitlab-executor"), settings)
    spec_runner = {k: getattr(runner, k) for k in ("config_exec", "config_args", "prepare_exec", "prepare_args",
                                                   "run_exec", "run_args", "cleanup_exec", "cleanup_args")}
    with open(spec, "w") as f:
        json.dump({"runner": dict(spec_runner, env=pool.env), "job": job.to_dict()}, f)
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "gitlab_runner.py"), spec, result],
                            cwd=HERE, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), 60, "the job running")
        job_pid = int(open(pidfile).read())
        with open(os.path.join(pool.state, "job-300", "node.json")) as f:
            holder_pid = json.load(f)["holder_pid"]
        with open(result) as f:
            step = [s for s in json.load(f)["stages"] if s["name"] == "step_script"][0]
        assert pool.nodes()[nid]["state"] == "in-use" and pool.locked(nid)
        proc.kill()
        proc.wait()
        t0 = time.time()
        wait_for(lambda: not alive(job_pid), 15, "the job's process on the node to end")
        wait_for(lambda: not alive(step["pid"]), 15, "the run stage to exit")
        pool.launcher.wait_for(lambda: nid not in pool.nodes(), 15, "the node released")
        assert time.time() - t0 < 15
        assert pool.job_dirs() == []
        wait_for(lambda: not alive(holder_pid), 10, "the holder to exit")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cancelled_stage_stops_the_job_on_the_node_and_cleanup_returns_it(pool):
    """The job times out during step_script: the runner SIGTERMs run_exec's
    process group; the job's processes on the node (a background one too) are
    stopped, the stage ends, and cleanup still returns the node."""
    pool.add_host(pool.sshd())
    (nid,) = pool.start(1)
    pidfile = os.path.join(pool.workdir, "bg.pid")
    job = Job(301, ["sleep 300 & echo $! > %s" % pidfile, "sleep 300"], timeout=6)
    res = pool.runner(graceful_kill_timeout=10).run_job(job)
    st = res.stage("step_script")
    assert st.killed == "SIGTERM" and res.failure_reason == "job_execution_timeout", res.trace()
    assert st.ended - st.started < 15
    bg = int(open(pidfile).read())
    wait_for(lambda: not alive(bg), 10, "the job's background process to be stopped")
    assert res.stage("cleanup_exec").code == 0
    pool.launcher.wait_for(lambda: nid not in pool.nodes(), 15, "node returned")


def test_prepare_stopped_while_waiting_withdraws_the_request_and_cleanup_after_it_works(pool):
    """No node free (the only one is busy): prepare waits; the runner stops it
    at prepare_exec_timeout (SIGTERM). The request is withdrawn, the holder
    exits, and cleanup after the failed prepare succeeds with nothing to do."""
    pool.add_host(pool.sshd())
    (nid,) = pool.start(1)
    pool.write_settings()
    # Job 400 takes the node and keeps it.
    env400 = stage_env(pool, 400)
    out = stage(pool, 400, "prepare", env=env400)
    assert out.returncode == 0, out.stderr
    before = holders()
    res = pool.runner(prepare_exec_timeout=3).run_job(Job(401, ["echo never"]))
    assert res.names() == ["config_exec", "prepare_exec", "cleanup_exec"]
    assert res.stage("prepare_exec").killed == "SIGTERM" and res.failure_reason == "job_execution_timeout"
    assert "Requested a 'small' node" in res.stage("prepare_exec").output.text()
    assert pool.requests() == {}, "the waiting request must be withdrawn"
    assert res.stage("cleanup_exec").code == 0
    assert "nothing to give back" in res.stage("cleanup_exec").output.text()
    wait_for(lambda: holders() <= before, 10, "job 401's holder to exit")
    assert pool.job_dirs() == ["job-400"]
    # Past graceful_kill_timeout the runner SIGKILLs: the holder sees prepare gone and withdraws too.
    prep = subprocess.Popen([program("poold-gitlab-executor"), "-c", pool.settings_path, "prepare"],
                            env=stage_env(pool, 402), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            process_group=0)
    wait_for(lambda: pool.requests(), 20, "job 402's request")
    os.killpg(prep.pid, signal.SIGKILL)
    prep.wait()
    wait_for(lambda: not pool.requests() and pool.job_dirs() == ["job-400"], 10,
             "job 402's request withdrawn after prepare was killed")
    out = stage(pool, 400, "cleanup", env=env400)
    assert out.returncode == 0 and "released node %s" % nid in out.stdout, out.stdout + out.stderr
    pool.launcher.wait_for(lambda: nid not in pool.nodes(), 15, "node returned")


def test_label_nobody_serves_fails_prepare_as_a_system_failure_and_a_disallowed_one_as_the_jobs(pool):
    """A label no provider has: poold fails the request, prepare says so and
    exits SYSTEM_FAILURE_EXIT_CODE (retried by the runner, 3 attempts), leaving
    no request behind. A label outside allowed-labels is the job's own error:
    BUILD_FAILURE_EXIT_CODE without asking poold."""
    pool.add_host(pool.sshd())
    pool.start(1)
    pool.write_settings()
    runner = pool.runner()
    runner.prepare_retry_wait = 0.2
    res = runner.run_job(Job(500, ["echo never"], variables={"POOLD_LABEL": "nowhere"}))
    assert res.names() == ["config_exec"] + ["prepare_exec"] * 3 + ["cleanup_exec"]
    assert res.failure_reason == "runner_system_failure"
    assert "could not fulfil node request" in res.stage("prepare_exec").output.text("err")
    assert pool.requests() == {} and pool.job_dirs() == []
    pool.write_settings(**{"allowed-labels": ["small"]})
    res = pool.runner().run_job(Job(501, ["echo never"], variables={"POOLD_LABEL": "big"}))
    assert res.stage("prepare_exec").code == BUILD_FAILURE and res.failure_reason == "script_failure"
    assert "not in this runner's allowed-labels" in res.stage("prepare_exec").output.text("err")


def test_holder_gives_the_node_back_at_the_job_deadline_when_no_cleanup_comes(pool):
    """The runner lives on but never calls cleanup: the holder marks the node
    used and unlocks it once the job's timeout (CI_JOB_TIMEOUT) plus
    cleanup-grace has passed, so no node stays locked forever."""
    pool.add_host(pool.sshd())
    (nid,) = pool.start(1)
    pool.write_settings(**{"cleanup-grace": 1})
    out = stage(pool, 600, "prepare", env=stage_env(pool, 600, CUSTOM_ENV_CI_JOB_TIMEOUT="2"))
    assert out.returncode == 0, out.stderr
    assert pool.locked(nid) and pool.nodes()[nid]["state"] == "in-use"
    t0 = time.time()
    pool.launcher.wait_for(lambda: nid not in pool.nodes(), 15, "node released at the deadline")
    assert time.time() - t0 >= 1.5
    assert pool.job_dirs() == []


def test_cleanup_returns_the_node_when_the_holder_was_killed(pool):
    """The holder process is killed (SIGKILL): cleanup finds no holder, waits
    out the dead session's lock, and marks the node used and unlocks it itself
    from the job's record."""
    pool.add_host(pool.sshd())
    (nid,) = pool.start(1)
    pool.write_settings()
    env = stage_env(pool, 700)
    assert stage(pool, 700, "prepare", env=env).returncode == 0
    with open(os.path.join(pool.state, "job-700", "node.json")) as f:
        rec = json.load(f)
    assert rec["node_id"] == nid
    os.kill(rec["holder_pid"], signal.SIGKILL)
    out = stage(pool, 700, "cleanup", env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "holder process is gone" in out.stdout and "Node %s returned (in-use -> used)" % nid in out.stdout
    pool.launcher.wait_for(lambda: nid not in pool.nodes(), 15, "node returned")
    assert pool.job_dirs() == []


def test_retried_prepare_gives_back_what_the_first_attempt_holds(pool):
    """The runner retries prepare (after a system failure): the second attempt
    finds the first one's node, gives it back, and gets a node of its own."""
    a = pool.sshd()
    pool.add_host(a, **{"max-parallel-jobs": 2})
    pool.start(2)
    pool.write_settings()
    env = stage_env(pool, 800)
    assert stage(pool, 800, "prepare", env=env).returncode == 0
    first = json.load(open(os.path.join(pool.state, "job-800", "node.json")))["node_id"]
    out = stage(pool, 800, "prepare", env=env)
    assert out.returncode == 0, out.stderr
    assert "An earlier prepare of job 800" in out.stdout and "released node %s" % first in out.stdout
    second = json.load(open(os.path.join(pool.state, "job-800", "node.json")))["node_id"]
    assert second != first
    pool.launcher.wait_for(lambda: first not in pool.nodes(), 15, "first node returned")
    assert stage(pool, 800, "cleanup", env=env).returncode == 0


def test_stages_work_with_stdin_closed_and_run_without_prepare_is_a_system_failure(pool):
    """The contract's edges: a stage started with fd 0 closed still works
    (config); run and cleanup for a job that never prepared say so: run exits
    SYSTEM_FAILURE_EXIT_CODE, cleanup succeeds with nothing to do."""
    pool.write_settings()
    exe = program("poold-gitlab-executor")
    out = subprocess.run([exe, "-c", pool.settings_path, "config"], env=stage_env(pool, 900),
                         capture_output=True, text=True, timeout=30, stdin=None,
                         preexec_fn=lambda: os.close(0))
    assert out.returncode == 0 and json.loads(out.stdout)["driver"]["name"] == "poold", out.stderr
    script = os.path.join(pool.workdir, "script.")
    with open(script, "w") as f:
        f.write("echo hi\n")
    out = stage(pool, 901, "run", script, "step_script")
    assert out.returncode == SYSTEM_FAILURE and "has no node" in out.stderr
    out = stage(pool, 901, "cleanup")
    assert out.returncode == 0 and "nothing to give back" in out.stdout


def test_shipped_sample_settings_load_and_give_the_runner_their_dirs(pool):
    """etc/gitlab/gitlab-executor.yaml loads without errors and the config stage
    reports its dirs."""
    sample = os.path.join(HERE, "..", "..", "etc", "gitlab", "gitlab-executor.yaml")
    out = subprocess.run([program("poold-gitlab-executor"), "-c", sample, "config"], env=stage_env(pool, 1),
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "error" not in out.stderr, out.stderr
    cfg = json.loads(out.stdout)
    assert cfg["builds_dir"] == "/tmp/gitlab/builds" and cfg["job_env"] == {"POOLD_GITLAB_LABEL": "debian-bookworm"}


def test_e2e_helper_runs_a_job_through_the_whole_path(pool):
    """run_gitlab_job_e2e, the helper the libvirt end-to-end test calls, works
    against a pool: here the static one (the end-to-end tier runs it on a VM)."""
    from gitlab_runner import run_gitlab_job_e2e
    pool.add_host(pool.sshd())
    (nid,) = pool.start(1)
    res, _ = run_gitlab_job_e2e("127.0.0.1:%d%s" % (pool.launcher.zk_server.port, pool.launcher.chroot),
                                "small", pool.key, pool.workdir, timeout=60)
    assert res.status == "success" and "GITLAB-E2E-OK" in res.trace(), res.trace()
    pool.launcher.wait_for(lambda: nid not in pool.nodes(), 15, "node returned")
