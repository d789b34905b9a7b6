"""GitLab Runner's custom executor, played by Python, for testing a driver.

GitLab Runner is not packaged for Debian, so it cannot run here. CustomRunner
drives a custom executor driver exactly as the runner's documented contract
says (docs/executors/custom.md of gitlab-runner, and its executors/custom code):

- one temporary directory per job; every stage runs with it as the working
  directory and as TMPDIR;
- environment: the runner's own, plus BUILD_FAILURE_EXIT_CODE=1 and
  SYSTEM_FAILURE_EXIT_CODE=2, every job variable again as CUSTOM_ENV_<name>,
  CUSTOM_ENV_CI_JOB_IMAGE, and after config_exec the job_env it returned;
- each stage is its own process group (the runner's Setpgid), stdin is the
  null device, stdout and stderr are read until they close (Go's Wait waits
  for its pipe readers, so a child that keeps them open hangs the runner;
  here that is an error after PIPE_GRACE seconds);
- the order: config_exec (stdout is JSON), prepare_exec (tried 3 times, 3 s
  apart, while it exits SYSTEM_FAILURE_EXIT_CODE), then run_exec
  `<run_args> <script> <stage>` for prepare_script, get_sources,
  restore_cache, download_artifacts, step_script, after_script,
  archive_cache (or archive_cache_on_failure), upload_artifacts_on_success
  (or _on_failure), cleanup_file_variables -- the build stages stop at the
  first failure, the rest still run -- and cleanup_exec in every case;
- a stage past its timeout (or a cancelled job) gets SIGTERM on its process
  group, then SIGKILL after graceful_kill_timeout;
- exit codes: 0 ok, BUILD_FAILURE_EXIT_CODE = the job failed
  (script_failure), SYSTEM_FAILURE_EXIT_CODE = runner_system_failure,
  anything else = unknown_failure.

The scripts are bash, like the ones the runner generates for shell "bash"
(set -eo pipefail, exported variables, then the stage's commands).

Run as a program (`python3 gitlab_runner.py SPEC.json RESULT.json`) it runs
one job in its own process, so a test can kill "the runner" mid-job.
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

BUILD_FAILURE = 1
SYSTEM_FAILURE = 2
PIPE_GRACE = 10.0
PREPARE_ATTEMPTS = 3
PREPARE_RETRY_WAIT = 3.0

BUILD_STAGES = ("prepare_script", "get_sources", "restore_cache", "download_artifacts", "step_script")


class StageOutput:
    """Output of one stage, line by line, with the time each line arrived."""

    def __init__(self):
        self.lines = []   # (time, "out"|"err", text)
        self.lock = threading.Lock()

    def text(self, stream=None):
        return "".join(l for _, s, l in self.lines if stream is None or s == stream)


class StageResult:
    def __init__(self, name, argv):
        self.name = name
        self.argv = argv
        self.started = None
        self.ended = None
        self.code = None          # exit status, or -signal
        self.killed = None        # None, "SIGTERM" or "SIGKILL" if we had to stop it
        self.output = StageOutput()
        self.pid = None


class JobResult:
    def __init__(self):
        self.stages = []          # StageResult, in the order run
        self.status = None        # "success" or "failed"
        self.failure_reason = None
        self.config = None        # config_exec's JSON
        self.started = None

    def stage(self, name):
        found = [s for s in self.stages if s.name == name]
        return found[-1] if found else None

    def names(self):
        return [s.name for s in self.stages]

    def trace(self):
        return "".join(s.output.text() for s in self.stages)

    def first_job_output_time(self, marker):
        """When the first line containing marker reached the runner."""
        for s in self.stages:
            for t, _, line in s.output.lines:
                if marker in line:
                    return t
        return None


class Job:
    """A job as the runner would get it from GitLab."""

    def __init__(self, job_id, script, after_script=(), variables=None, timeout=3600,
                 project="group/project"):
        self.id = str(job_id)
        self.script = list(script)
        self.after_script = list(after_script)
        self.timeout = timeout
        self.variables = {
            "CI": "true",
            "GITLAB_CI": "true",
            "CI_JOB_ID": self.id,
            "CI_JOB_NAME": "test-job-%s" % self.id,
            "CI_JOB_TIMEOUT": str(timeout),
            "CI_PIPELINE_ID": "77",
            "CI_PROJECT_PATH": project,
            "CI_PROJECT_DIR": "",
            "CI_JOB_URL": "https://gitlab.example.com/%s/-/jobs/%s" % (project, self.id),
            "CI_SERVER_HOST": "gitlab.example.com",
        }
        self.variables.update(variables or {})

    def to_dict(self):
        return {"id": self.id, "script": self.script, "after_script": self.after_script,
                "variables": self.variables, "timeout": self.timeout}

    @classmethod
    def from_dict(cls, d):
        j = cls(d["id"], d["script"], d.get("after_script", ()), timeout=d.get("timeout", 3600))
        j.variables = d["variables"]
        return j


class CustomRunner:
    """The [runners.custom] section of config.toml, and the runner that uses it."""

    def __init__(self, config_exec=None, config_args=(), prepare_exec=None, prepare_args=(),
                 run_exec=None, run_args=(), cleanup_exec=None, cleanup_args=(),
                 config_exec_timeout=3600, prepare_exec_timeout=3600, cleanup_exec_timeout=3600,
                 graceful_kill_timeout=600, force_kill_timeout=600, builds_dir="/builds", cache_dir="/cache",
                 env=None):
        self.config_exec, self.config_args = config_exec, list(config_args)
        self.prepare_exec, self.prepare_args = prepare_exec, list(prepare_args)
        self.run_exec, self.run_args = run_exec, list(run_args)
        self.cleanup_exec, self.cleanup_args = cleanup_exec, list(cleanup_args)
        self.config_exec_timeout = config_exec_timeout
        self.prepare_exec_timeout = prepare_exec_timeout
        self.cleanup_exec_timeout = cleanup_exec_timeout
        self.graceful_kill_timeout = graceful_kill_timeout
        self.force_kill_timeout = force_kill_timeout
        self.builds_dir = builds_dir
        self.cache_dir = cache_dir
        self.env = dict(env if env is not None else os.environ)
        self.cancel = threading.Event()    # set to cancel the running job, as from GitLab's UI
        self.prepare_retry_wait = PREPARE_RETRY_WAIT

    @classmethod
    def for_driver(cls, program, settings_path, **kw):
        """poold-gitlab-executor configured as its README says."""
        base = ["-c", settings_path]
        return cls(config_exec=program, config_args=base + ["config"],
                   prepare_exec=program, prepare_args=base + ["prepare"],
                   run_exec=program, run_args=base + ["run"],
                   cleanup_exec=program, cleanup_args=base + ["cleanup"], **kw)

    # ------------------------------------------------------------ one stage
    def _stage_env(self, job, tmpdir, job_env):
        env = dict(self.env)
        env["TMPDIR"] = tmpdir
        env["BUILD_FAILURE_EXIT_CODE"] = str(BUILD_FAILURE)
        env["SYSTEM_FAILURE_EXIT_CODE"] = str(SYSTEM_FAILURE)
        for k, v in job.variables.items():
            env["CUSTOM_ENV_" + k] = v
        env["CUSTOM_ENV_CI_JOB_IMAGE"] = ""
        env.update(job_env)
        return env

    def _exec(self, name, argv, env, cwd, timeout, result):
        st = StageResult(name, argv)
        result.stages.append(st)
        st.started = time.time()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, process_group=0)
        st.pid = proc.pid

        def pump(pipe, stream):
            for raw in iter(pipe.readline, b""):
                with st.output.lock:
                    st.output.lines.append((time.time(), stream, raw.decode(errors="replace")))
            pipe.close()

        readers = [threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
                   threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True)]
        for t in readers:
            t.start()
        deadline = st.started + timeout
        while proc.poll() is None:
            if time.time() >= deadline or (self.cancel.is_set() and name not in ("cleanup_exec",)):
                self._terminate(proc, st)
                break
            time.sleep(0.02)
        proc.wait()
        for t in readers:
            t.join(PIPE_GRACE)
            if t.is_alive():
                raise AssertionError("%s exited but its output pipes stayed open %ss later: a child of it kept "
                                     "them (GitLab Runner would hang here)" % (name, PIPE_GRACE))
        st.ended = time.time()
        st.code = proc.returncode
        return st

    def _terminate(self, proc, st):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        st.killed = "SIGTERM"
        try:
            proc.wait(self.graceful_kill_timeout)
        except subprocess.TimeoutExpired:
            st.killed = "SIGKILL"
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    # ------------------------------------------------------------ the job
    def _script(self, job, body):
        lines = ["#!/usr/bin/env bash", "set -eo pipefail", "set +o noclobber"]
        for k, v in sorted(job.variables.items()):
            lines.append("export %s=%s" % (k, shlex_quote(v)))
        lines += body
        return "\n".join(lines) + "\n"

    def _stage_scripts(self, job, builds_dir, cache_dir):
        project_dir = "%s/%s" % (builds_dir, job.variables["CI_PROJECT_PATH"])
        return {
            "prepare_script": ['echo "Running on $(hostname) via poold..."'],
            "get_sources": ['mkdir -p %s' % shlex_quote(project_dir),
                            'cd %s' % shlex_quote(project_dir),
                            'echo "Fetching changes into $PWD"'],
            "restore_cache": ['mkdir -p %s' % shlex_quote(cache_dir), 'echo "No cache to restore"'],
            "download_artifacts": ['echo "No artifacts to download"'],
            "step_script": ['cd %s' % shlex_quote(project_dir)] + job.script,
            "after_script": ['cd %s' % shlex_quote(project_dir)] + job.after_script,
            "archive_cache": ['echo "Saving cache for successful job"'],
            "archive_cache_on_failure": ['echo "Saving cache for failed job"'],
            "upload_artifacts_on_success": ['echo "Uploading artifacts for successful job"'],
            "upload_artifacts_on_failure": ['echo "Uploading artifacts for failed job"'],
            "cleanup_file_variables": ['echo "Cleaning up project directory and file based variables"'],
        }

    def run_job(self, job, result=None):
        """Run the whole job; returns a JobResult (also filled in as it goes)."""
        result = result or JobResult()
        result.started = time.time()
        tmpdir = tempfile.mkdtemp(prefix="custom-executor")
        job_env = {}
        try:
            builds_dir, cache_dir = self.builds_dir, self.cache_dir
            if self.config_exec:
                st = self._exec("config_exec", [self.config_exec] + self.config_args,
                                self._stage_env(job, tmpdir, job_env), tmpdir, self.config_exec_timeout, result)
                if st.code != 0:
                    return self._fail(result, st.code)
                result.config = json.loads(st.output.text("out") or "{}")
                builds_dir = result.config.get("builds_dir", builds_dir)
                cache_dir = result.config.get("cache_dir", cache_dir)
                job_env = {str(k): str(v) for k, v in (result.config.get("job_env") or {}).items()}
            env = self._stage_env(job, tmpdir, job_env)
            if self.prepare_exec:
                for attempt in range(PREPARE_ATTEMPTS):
                    st = self._exec("prepare_exec", [self.prepare_exec] + self.prepare_args, env, tmpdir,
                                    self.prepare_exec_timeout, result)
                    if st.code != SYSTEM_FAILURE or st.killed or self.cancel.is_set():
                        break
                    if attempt + 1 < PREPARE_ATTEMPTS:
                        time.sleep(self.prepare_retry_wait)
                if st.killed or st.code != 0:
                    return self._fail(result, st.code, st.killed)
            scripts = self._stage_scripts(job, builds_dir, cache_dir)
            deadline = result.started + job.timeout
            failed = None

            def run_stage(name):
                sdir = tempfile.mkdtemp(prefix="script", dir=tmpdir)
                path = os.path.join(sdir, "script.")
                with open(path, "w") as f:
                    f.write(self._script(job, scripts[name]))
                os.chmod(path, 0o700)
                return self._exec(name, [self.run_exec] + self.run_args + [path, name], env, tmpdir,
                                  max(0.0, deadline - time.time()), result)

            for name in BUILD_STAGES:
                st = run_stage(name)
                if st.code != 0 or st.killed:
                    failed = st
                    break
            run_stage("after_script")   # its result does not change the job's
            ok = failed is None
            run_stage("archive_cache" if ok else "archive_cache_on_failure")
            run_stage("upload_artifacts_on_success" if ok else "upload_artifacts_on_failure")
            run_stage("cleanup_file_variables")
            if failed:
                return self._fail(result, failed.code, failed.killed)
            result.status = "success"
            return result
        finally:
            if self.cleanup_exec:
                self._exec("cleanup_exec", [self.cleanup_exec] + self.cleanup_args,
                            self._stage_env(job, tmpdir, job_env), tmpdir, self.cleanup_exec_timeout, result)
            shutil.rmtree(tmpdir, ignore_errors=True)

    def _fail(self, result, code, killed=None):
        result.status = "failed"
        if killed:
            result.failure_reason = "canceled" if self.cancel.is_set() else "job_execution_timeout"
        elif code == BUILD_FAILURE:
            result.failure_reason = "script_failure"
        elif code == SYSTEM_FAILURE:
            result.failure_reason = "runner_system_failure"
        else:
            result.failure_reason = "unknown_failure"
        return result


def shlex_quote(s):
    import shlex
    return shlex.quote(s)


# ---------------------------------------------------------------- end to end
def run_gitlab_job_e2e(zk_hosts, label, ssh_key, workdir, job_id=4242, program=None, timeout=1800, zk_tls=None):
    """END-TO-END HELPER (for test_local_e2e.py): run one GitLab job on a node
    of LABEL from a real pool (ZooKeeper at ZK_HOSTS, e.g. poold-local's), as
    GitLab Runner would with poold-gitlab-executor, logging in with SSH_KEY.

    For poold-local: run_gitlab_job_e2e("127.0.0.1:%s" % NODEPOOL_ZK_PORT,
    "debian", "<state>/id_ed25519", tmp_path).

    Returns (JobResult, settings_path). The job prints `uname -a` and the line
    GITLAB-E2E-OK from the node; result.status == "success" and that line in
    result.trace() mean the whole path worked: request, lock, in-use, ssh with
    the node's recorded host keys, used and unlocked at cleanup (the caller
    then sees the node deleted). The executor's state dir (with its log,
    executor.log) is removed on success and kept, named in the settings, on
    failure."""
    from harness import program as built
    os.makedirs(workdir, exist_ok=True)
    state = tempfile.mkdtemp(prefix="pgx-", dir="/tmp")
    settings = os.path.join(workdir, "gitlab-executor.yaml")
    with open(settings, "w") as f:
        settings_doc = {"zookeeper-hosts": zk_hosts, "label": label, "ssh-key": ssh_key,
                        "state-dir": state, "node-timeout": timeout, "ssh-connect-timeout": 60}
        if zk_tls:  # {ca, cert, key}, as nodepool.yaml's zookeeper-tls
            settings_doc["zookeeper-tls"] = zk_tls
        json.dump(settings_doc, f)
    runner = CustomRunner.for_driver(program or built("poold-gitlab-executor"), settings)
    job = Job(job_id, ["uname -a", "echo GITLAB-E2E-OK"], timeout=timeout + 600)
    result = runner.run_job(job)
    if result.status == "success":
        shutil.rmtree(state, ignore_errors=True)
    return result, settings


# ---------------------------------------------------------------- as a program
def main():
    """python3 gitlab_runner.py SPEC.json RESULT.json: one job in this process."""
    spec_path, result_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    runner = CustomRunner(**spec["runner"])
    result = JobResult()

    def dump(status=None):
        out = {"status": status or result.status, "failure_reason": result.failure_reason,
               "stages": [{"name": s.name, "code": s.code, "pid": s.pid, "killed": s.killed,
                           "output": s.output.text()} for s in result.stages]}
        with open(result_path + ".tmp", "w") as f:
            json.dump(out, f)
        os.replace(result_path + ".tmp", result_path)

    # Progress for the test that kills us: which stage runs, with its pid.
    stop = threading.Event()

    def progress():
        while not stop.wait(0.1):
            dump("running")
    t = threading.Thread(target=progress, daemon=True)
    t.start()
    runner.run_job(Job.from_dict(spec["job"]), result)
    stop.set()
    t.join()
    dump()


if __name__ == "__main__":
    main()
