/* stage_run.c — run_exec: one of the runner's scripts, on the node, over ssh.
 *
 * DESIGN. ssh writes the job's output straight into our stdout (the runner's
 * pipe), so it streams as it comes, in order. Its stdin is a pipe we feed the
 * script into from the loop and then keep open until ssh exits (remote.h:
 * the open connection is what keeps the job alive on the node). A stage the
 * runner stops (SIGTERM), or a runner that dies, makes us SIGTERM ssh; ssh
 * itself dies with us even on SIGKILL (parent-death signal), since it sits in
 * its own process group, out of reach of the runner's group kill. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "alloc.h"
#include "cmd.h"
#include "holder.h"
#include "job.h"
#include "log.h"
#include "loop.h"
#include "remote.h"
#include "settings.h"
#include "stage.h"

#define STATUS_TIMEOUT_MS 10000
/* After SIGTERM, ssh gets this long before SIGKILL. */
#define CANCEL_GRACE_MS 5000

struct run {
        struct loop *loop;
        struct cmd *ssh;
        int script_fd;
        off_t script_len, sent;
        int in_fd;                 /* write end of ssh's stdin */
        struct loop_io *in_io;
        struct loop_io *runner_io;
        bool done, cancelled;
        const char *cancel_why;
        struct cmd_status st;
};

static void on_ssh_done(struct cmd *cmd, const struct cmd_status *st, void *ud) {
        struct run *r = ud;
        r->st = *st;
        r->done = true;
        loop_exit(r->loop, 0);
}

static void on_writable(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        struct run *r = ud;
        char buf[16384];
        if (!(revents & EPOLLOUT) || r->sent >= r->script_len) {
                /* All sent (or ssh closed its stdin): stop watching, keep the pipe open. */
                loop_io_remove(r->in_io);
                r->in_io = NULL;
                return;
        }
        size_t want = (size_t)MIN((off_t)sizeof buf, r->script_len - r->sent);
        ssize_t k = pread(r->script_fd, buf, want, r->sent);
        if (k <= 0) {
                /* The wrapper notices a short script and fails the stage as ours. */
                loop_io_remove(r->in_io);
                r->in_io = NULL;
                return;
        }
        ssize_t w = write(fd, buf, (size_t)k);
        if (w > 0) r->sent += w;
        else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                loop_io_remove(r->in_io);
                r->in_io = NULL;
        }
}

static void on_kill_timer(struct loop *loop, struct loop_timer *t, void *ud) {
        struct run *r = ud;
        if (!r->done) kill(-cmd_get_pid(r->ssh), SIGKILL);
}

static void cancel(struct run *r, const char *why) {
        if (r->cancelled || r->done) return;
        r->cancelled = true;
        r->cancel_why = why;
        fprintf(stderr, "poold-gitlab-executor: %s: stopping the job on the node\n", why);
        kill(-cmd_get_pid(r->ssh), SIGTERM);
        loop_add_timer(r->loop, CANCEL_GRACE_MS, false, on_kill_timer, r);
}

static void on_signal(struct loop *loop, int signo, void *ud) { cancel(ud, "the runner stopped this stage"); }

static void on_runner_exit(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        struct run *r = ud;
        loop_io_remove(r->runner_io);
        r->runner_io = NULL;
        cancel(r, "the GitLab Runner process exited");
}

static int watch_runner(struct run *r) {
        pid_t runner = getppid();
        int fd = (int)syscall(SYS_pidfd_open, runner, 0);
        if (fd < 0) return negative_errno();
        if (getppid() != runner) {
                close(fd);
                return -ESRCH;
        }
        int k = loop_add_fd(r->loop, fd, EPOLLIN, on_runner_exit, r, &r->runner_io);
        if (k < 0) {
                close(fd);
                return k;
        }
        return fd;
}

int stage_run(const struct settings *s, const char *script_path, const char *stage_name) {
        int build_failure, system_failure;
        job_exit_codes(&build_failure, &system_failure);
        _cleanup_(job_freep) struct job *j = NULL;
        _cleanup_free_ char *err = NULL;
        if (job_from_env(s, false, &j, &err) < 0) {
                fprintf(stderr, "poold-gitlab-executor: %s\n", err);
                return system_failure;
        }
        _cleanup_(job_record_freep) struct job_record *rec = NULL;
        int k = job_record_read(j->dir, &rec);
        if (k < 0 || !rec->node_id || !rec->interface_ip || !rec->username) {
                fprintf(stderr, "poold-gitlab-executor: job %s has no node (%s): did prepare succeed?\n", j->id,
                        k == -ENOENT ? "nothing recorded" : k < 0 ? strerror(-k) : "no node recorded yet");
                return system_failure;
        }
        _cleanup_free_ char *status = NULL;
        k = holder_call(j->dir, "status", STATUS_TIMEOUT_MS, &status);
        if (k < 0 || strncmp(status, "held ", 5) != 0) {
                fprintf(stderr, "poold-gitlab-executor: node %s of job %s is not held any more: %s\n", rec->node_id,
                        j->id, k < 0 ? "its holder process is gone" : status);
                return system_failure;
        }

        _cleanup_close_ int script_fd = open(script_path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (script_fd < 0 || fstat(script_fd, &st) < 0) {
                fprintf(stderr, "poold-gitlab-executor: cannot read the %s script %s: %m\n", stage_name, script_path);
                return system_failure;
        }
        if (!S_ISREG(st.st_mode)) {
                fprintf(stderr, "poold-gitlab-executor: the %s script %s is not a regular file\n", stage_name,
                        script_path);
                return system_failure;
        }
        int pipefd[2];
        if (pipe2(pipefd, O_CLOEXEC) < 0) {
                fprintf(stderr, "poold-gitlab-executor: pipe: %m\n");
                return system_failure;
        }
        _cleanup_close_ int in_read = pipefd[0];
        _cleanup_close_ int in_write = pipefd[1];
        (void)fcntl(in_write, F_SETFL, O_NONBLOCK);
        /* Writing to a pipe ssh no longer reads must be an error, not our death. */
        struct sigaction ign = { .sa_handler = SIG_IGN };
        sigaction(SIGPIPE, &ign, NULL);

        _cleanup_free_ char *wrapper = remote_wrapper((size_t)st.st_size);
        _cleanup_(cmd_freep) struct cmd *ssh = cmd_new("ssh");
        remote_ssh_args(ssh, s, rec, j->dir, wrapper);
        cmd_set_stdin_fd(ssh, in_read);
        cmd_set_log_fd(ssh, STDOUT_FILENO);
        cmd_set_parent_death_signal(ssh, SIGTERM);

        struct run r = { .ssh = ssh, .script_fd = script_fd, .script_len = st.st_size, .in_fd = in_write };
        _cleanup_close_ int runner_fd = -1;
        fflush(stdout);
        k = loop_new(&r.loop);
        if (k >= 0) k = loop_add_signal(r.loop, SIGTERM, on_signal, &r, NULL);
        if (k >= 0) k = loop_add_signal(r.loop, SIGINT, on_signal, &r, NULL);
        if (k >= 0) k = loop_add_signal(r.loop, SIGHUP, on_signal, &r, NULL);
        if (k >= 0 && s->watch_runner) k = runner_fd = watch_runner(&r);
        if (k >= 0) k = cmd_start_async(ssh, r.loop, on_ssh_done, &r);
        if (k >= 0) {
                close(TAKE_FD(in_read)); /* ssh has it; EOF must come from our end only */
                k = loop_add_fd(r.loop, in_write, EPOLLOUT, on_writable, &r, &r.in_io);
        }
        if (k >= 0) k = loop_run(r.loop);
        if (k < 0 && !r.done) fprintf(stderr, "poold-gitlab-executor: cannot run ssh: %s\n", strerror(-k));
        cmd_free(TAKE_PTR(ssh)); /* kills and reaps ssh if the loop failed */
        loop_free(r.loop);
        if (!r.done) return system_failure;

        if (r.st.outcome == CMD_EXITED && r.st.code == 0) return 0;
        if (r.cancelled) return build_failure; /* the job did not finish; not the infrastructure's fault */
        if (r.st.outcome == CMD_EXITED && r.st.code != REMOTE_SSH_FAILURE) return build_failure;
        fprintf(stderr, "poold-gitlab-executor: could not run the %s script on node %s (%s@%s port %d): ssh %s %d\n",
                stage_name, rec->node_id, rec->username, rec->interface_ip, rec->connection_port,
                cmd_outcome_to_string(r.st.outcome), r.st.code);
        return system_failure;
}
