#!/usr/bin/python3
"""Benchmark GitLab jobs through poold-gitlab-executor: warm pool node against
booting a node per job, on the one-machine pool (poold-local, real QEMU).

Run by hand as root (not part of make check), alone on the machine, after
`make programs`:
    /usr/bin/python3 tests/bench/bench_gitlab_executor.py [--jobs 3]

Each job is run the way GitLab Runner runs a custom executor
(tests/integration/gitlab_runner.py: config, prepare, the run sub-stages,
cleanup). Measured per job, from the start of prepare_exec:
  - to the first line from the node (prepare_script's "Running on ..."),
  - to the first line of the job's own script (step_script),
  - and the whole job (config to cleanup).

Two ways of getting the node, same machine, same libvirt, same image, same
domain definition:
  warm          min-ready 1: prepare takes the ready VM poold keeps; before
                each job the bench waits until the refill is ready, so every
                job finds one (a pool sized for its load);
  boot-per-job  min-ready 0 and no ready node: each prepare waits while a VM
                is defined, started and booted to ssh (host keys scanned), and
                cleanup has it deleted -- what a boot-per-job custom executor
                (the libvirt example in GitLab's docs) does in prepare and
                cleanup, here through poold's libvirt driver so that the VM
                recipe is identical and only the pool differs.
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

HERE = pathlib.Path(__file__).resolve().parent
SRC = HERE.parent.parent
sys.path.insert(0, str(HERE.parent / "integration"))

from kazoo.client import KazooClient  # noqa: E402

from gitlab_runner import CustomRunner, Job  # noqa: E402
from image_fixture import stable_keypair  # noqa: E402

LOCAL = str(SRC / "poold" / "poold-local")
BIN = SRC / "build" / "bin"
FIRST = "BENCH-FIRST-LINE"


def wait(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.5)
    raise SystemExit("timed out waiting for " + what)


def node_records(zk):
    out = {}
    for n in zk.get_children("/nodepool/nodes") if zk.exists("/nodepool/nodes") else []:
        try:
            data, _ = zk.get("/nodepool/nodes/" + n)
            out[n] = json.loads(data.decode())
        except Exception:
            pass
    return out


def node_states(zk):
    return {n: rec["state"] for n, rec in node_records(zk).items()}


def warm_node_free(zk):
    """A ready node no request holds: a min-ready node is allocated to poold's own
    min-ready request until poold deletes that request (about a second after the
    node is ready), and a job arriving in that window boots a new node."""
    return any(rec["state"] == "ready" and not rec.get("allocated_to") for rec in node_records(zk).values())


def run_job(runner, job_id):
    job = Job(job_id, ["echo %s" % FIRST, "uname -r"], timeout=3600)
    res = runner.run_job(job)
    if res.status != "success":
        raise SystemExit("job %d failed (%s):\n%s" % (job_id, res.failure_reason, res.trace()[-4000:]))
    t0 = res.stage("prepare_exec").started
    node = res.stage("prepare_script").output.lines[0][0] - t0
    first = res.first_job_output_time(FIRST) - t0
    total = res.stage("cleanup_exec").ended - res.started
    return {"prepare": res.stage("prepare_exec").ended - t0, "node": node, "first": first, "total": total}


def summary(name, rows):
    def col(k):
        v = [r[k] for r in rows]
        return "%.2f (%.2f-%.2f)" % (statistics.median(v), min(v), max(v))
    print("%-13s prepare %s s | first node line %s s | first job line %s s | whole job %s s"
          % (name, col("prepare"), col("node"), col("first"), col("total")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=3, help="jobs per mode (run one after the other)")
    ap.add_argument("--state", default=None, help="state dir (default: a new temporary one)")
    args = ap.parse_args()
    # World-traversable: QEMU runs as libvirt-qemu and reads the pool directory.
    state = args.state or tempfile.mkdtemp(prefix="poold-bench-gitlab-", dir="/var/tmp")
    os.chmod(state, 0o755)
    # The image tests' key pair: the node image's authorized_keys, and its cached stages.
    key, pub = stable_keypair()
    shutil.copy(key, os.path.join(state, "id_ed25519"))
    shutil.copy(pub, os.path.join(state, "id_ed25519.pub"))
    os.chmod(os.path.join(state, "id_ed25519"), 0o600)
    cfg = yaml.safe_load(open(SRC / "etc" / "poold-local.yaml"))
    cfg["providers"][0]["pools"][0]["max-servers"] = 2
    conf = os.path.join(state, "bench-config.yaml")
    with open(conf, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    env = dict(os.environ, POOLD_LOCAL_DIR=state, POOLD_LOCAL_CONFIG=conf,
               POOLD_STAGE_CACHE=os.environ.get("POOLD_TEST_STAGE_CACHE", "/var/cache/poold-test/stages"))
    # What the nodes run under: the same probe poold's libvirt driver uses (domain-type auto).
    accel = subprocess.run([str(BIN / "poold-builder"), "kvm-probe"], capture_output=True, text=True).stdout.strip()
    subprocess.run([LOCAL, "up"], env=env, check=True)
    envfile = dict(l.strip().split("=", 1) for l in open(os.path.join(state, "local.env")) if "=" in l)
    zk_hosts = "127.0.0.1:%s" % envfile["NODEPOOL_ZK_PORT"]
    tls = os.path.join(state, "tls")  # poold-local's ZooKeeper is TLS-only, with its own CA
    zk_tls = {"ca": tls + "/ca.pem", "cert": tls + "/client.crt", "key": tls + "/client.key"}
    zk = KazooClient(hosts=zk_hosts, use_ssl=True, ca=zk_tls["ca"], certfile=zk_tls["cert"], keyfile=zk_tls["key"])
    zk.start(timeout=30)
    exec_state = tempfile.mkdtemp(prefix="pgx-bench-", dir="/tmp")
    settings = os.path.join(state, "gitlab-executor.yaml")
    with open(settings, "w") as f:
        yaml.safe_dump({"zookeeper-hosts": zk_hosts, "label": "debian", "ssh-key": os.path.join(state, "id_ed25519"),
                        "state-dir": exec_state, "node-timeout": 1800, "ssh-connect-timeout": 60,
                        "zookeeper-tls": zk_tls}, f)
    runner = CustomRunner.for_driver(str(BIN / "poold-gitlab-executor"), settings)
    try:
        warm = []
        for i in range(args.jobs):
            wait(lambda: warm_node_free(zk), 900, "a ready (warm) node")
            warm.append(run_job(runner, 1000 + i))

        # No warm node from now on: every job boots its own VM.
        live = os.path.join(state, "nodepool.yaml")
        cfg["labels"][0]["min-ready"] = 0
        with open(live + ".tmp", "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        os.replace(live + ".tmp", live)
        time.sleep(3)  # poold reloads on mtime
        wait(lambda: all(s in ("ready", "deleting", "used") for s in node_states(zk).values()), 900,
             "the last refill")
        for n in node_states(zk):
            subprocess.run([str(BIN / "poolctl"), "-c", live, "delete", n],
                           env=dict(os.environ, NODEPOOL_STATE_DIR=state,
                                    NODEPOOL_ZK_PORT=envfile["NODEPOOL_ZK_PORT"]), capture_output=True)
        wait(lambda: not node_states(zk), 300, "no nodes")
        cold = []
        for i in range(args.jobs):
            cold.append(run_job(runner, 2000 + i))
            wait(lambda: not node_states(zk), 300, "the job's VM deleted")

        print("\nGitLab job via poold-gitlab-executor, %d jobs per mode, nodes under %s, median (min-max):"
              % (args.jobs, accel))
        summary("warm", warm)
        summary("boot-per-job", cold)
        print("prepare to first job line: boot-per-job / warm = %.1fx"
              % (statistics.median(r["first"] for r in cold) / statistics.median(r["first"] for r in warm)))
    finally:
        zk.stop()
        subprocess.run([LOCAL, "down"], env=env)
        shutil.rmtree(exec_state, ignore_errors=True)


if __name__ == "__main__":
    main()
