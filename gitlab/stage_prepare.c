/* stage_prepare.c — prepare_exec: get this job a node and keep it locked.
 *
 * DESIGN. The ZooKeeper work happens in the holder (holder.h), a child that
 * outlives this process; here we only fork it and relay its report lines to
 * the job log until it says the node is ready (exit 0) or that it failed.
 * When the runner stops prepare (prepare_exec_timeout, job cancelled:
 * SIGTERM), the holder is told to give everything back, and we wait for it.
 * A runner retrying prepare (it does, on SYSTEM_FAILURE_EXIT_CODE) finds the
 * job directory of the earlier attempt and releases it first. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "dbuf.h"
#include "holder.h"
#include "job.h"
#include "log.h"
#include "loop.h"
#include "settings.h"
#include "stage.h"

#define REPORT_MAX (64 * 1024)

struct prepare {
        struct loop *loop;
        pid_t holder;
        struct dbuf buf;
        int result;        /* 1 ready, -1 failed, 0 not known yet */
        bool cancelled;
};

/* One report line: "i text", "R" or "F text" (holder.h). */
static void on_line(struct prepare *p, const char *line) {
        if (line[0] == 'i' && line[1] == ' ') {
                printf("%s\n", line + 2);
                fflush(stdout);
        } else if (line[0] == 'R') {
                p->result = 1;
                loop_exit(p->loop, 0);
        } else if (line[0] == 'F') {
                fprintf(stderr, "poold-gitlab-executor: %s\n", line[1] ? line + 2 : "the holder failed");
                p->result = -1;
                loop_exit(p->loop, 0);
        }
}

static void on_report(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        struct prepare *p = ud;
        char chunk[4096];
        ssize_t k = read(fd, chunk, sizeof chunk);
        if (k < 0 && (errno == EINTR || errno == EAGAIN)) return;
        if (k <= 0) {
                if (p->result == 0) {
                        fprintf(stderr, "poold-gitlab-executor: the holder process ended without a node\n");
                        p->result = -1;
                }
                loop_exit(loop, 0);
                return;
        }
        if (dbuf_add(&p->buf, chunk, (size_t)k) < 0) {
                fprintf(stderr, "poold-gitlab-executor: the holder's report is too long\n");
                p->result = -1;
                loop_exit(loop, 0);
                return;
        }
        char *start = p->buf.buf;
        for (char *nl; p->result == 0 && (nl = memchr(start, '\n', p->buf.len - (size_t)(start - p->buf.buf)));) {
                *nl = 0;
                on_line(p, start);
                start = nl + 1;
        }
        size_t rest = p->buf.len - (size_t)(start - p->buf.buf);
        memmove(p->buf.buf, start, rest);
        p->buf.len = rest;
        p->buf.buf[rest] = 0;
}

static void on_cancel(struct loop *loop, int signo, void *ud) {
        struct prepare *p = ud;
        if (p->cancelled) return;
        p->cancelled = true;
        printf("Prepare stopped (%s): the holder gives the request back\n", strsignal(signo));
        fflush(stdout);
        /* The holder left our process group on purpose; tell it. It reports F and exits. */
        kill(p->holder, SIGTERM);
}

static int runner_pidfd(void) {
        pid_t runner = getppid();
        int fd = (int)syscall(SYS_pidfd_open, runner, 0);
        if (fd < 0) return negative_errno();
        /* Opened after the runner died and the pid went to someone else? */
        if (getppid() != runner) {
                close(fd);
                return -ESRCH;
        }
        return fd;
}

static void block_signals(void) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        sigprocmask(SIG_BLOCK, &set, NULL);
}

int stage_prepare(const struct settings *s) {
        int build_failure, system_failure;
        job_exit_codes(&build_failure, &system_failure);
        _cleanup_(job_freep) struct job *j = NULL;
        _cleanup_free_ char *err = NULL;
        if (job_from_env(s, true, &j, &err) < 0) {
                /* The job's own configuration (label): retrying cannot help. */
                fprintf(stderr, "poold-gitlab-executor: %s\n", err);
                return build_failure;
        }
        int r = job_state_dir_ensure(s->state_dir);
        if (r < 0) {
                fprintf(stderr, "poold-gitlab-executor: cannot create state-dir %s: %s\n", s->state_dir, strerror(-r));
                return system_failure;
        }
        if (access(j->dir, F_OK) == 0) {
                printf("An earlier prepare of job %s left a node request or node: giving it back first\n", j->id);
                fflush(stdout);
                r = stage_release_job(s, j->dir, stdout);
                if (r < 0) {
                        fprintf(stderr, "poold-gitlab-executor: cannot release what the earlier prepare holds: %s\n",
                                strerror(-r));
                        return system_failure;
                }
        }
        if (mkdir(j->dir, 0700) < 0) {
                fprintf(stderr, "poold-gitlab-executor: cannot create %s: %m\n", j->dir);
                return system_failure;
        }

        _cleanup_close_ int pidfd = -1;
        if (s->watch_runner) {
                pidfd = runner_pidfd();
                if (pidfd < 0) {
                        fprintf(stderr, "poold-gitlab-executor: cannot watch the runner process (pid %d): %s\n",
                                (int)getppid(), strerror(-pidfd));
                        (void)job_dir_remove(j->dir);
                        return system_failure;
                }
        }
        int pipefd[2];
        if (pipe2(pipefd, O_CLOEXEC) < 0) {
                fprintf(stderr, "poold-gitlab-executor: pipe: %m\n");
                (void)job_dir_remove(j->dir);
                return system_failure;
        }
        /* Blocked across fork: a SIGTERM to our process group before the holder
         * has left it stays pending, and the holder's loop then sees it. */
        block_signals();
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
                fprintf(stderr, "poold-gitlab-executor: fork: %m\n");
                close(pipefd[0]);
                close(pipefd[1]);
                (void)job_dir_remove(j->dir);
                return system_failure;
        }
        if (pid == 0) {
                close(pipefd[0]);
                /* Returned up through main() so everything is freed on the way out. */
                return holder_main(s, j, pipefd[1], TAKE_FD(pidfd));
        }
        close(pipefd[1]);
        _cleanup_close_ int report = pipefd[0];

        struct prepare p = { .holder = pid };
        dbuf_init(&p.buf, REPORT_MAX);
        r = loop_new(&p.loop);
        if (r >= 0) r = loop_add_fd(p.loop, report, EPOLLIN, on_report, &p, NULL);
        if (r >= 0) r = loop_add_signal(p.loop, SIGTERM, on_cancel, &p, NULL);
        if (r >= 0) r = loop_add_signal(p.loop, SIGINT, on_cancel, &p, NULL);
        if (r >= 0) r = loop_add_signal(p.loop, SIGHUP, on_cancel, &p, NULL);
        if (r >= 0) r = loop_run(p.loop);
        if (r < 0) {
                fprintf(stderr, "poold-gitlab-executor: prepare's event loop: %s\n", strerror(-r));
                kill(pid, SIGTERM);
                p.result = -1;
        }
        loop_free(p.loop);
        dbuf_free(&p.buf);
        if (p.result > 0) return 0; /* the holder carries on without us */
        /* Failed: the holder has given everything back and is exiting. */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        return system_failure;
}
