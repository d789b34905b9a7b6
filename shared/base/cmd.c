/* cmd.c — see cmd.h.
 *
 * DESIGN: everything the child needs (argv, envp, the resolved program path,
 * the fds it will dup) is prepared before fork(), so the child only makes
 * async-signal-safe calls — the daemons are multi-threaded. All signals are
 * blocked across fork() so no handler runs in the child before it resets the
 * dispositions. Exec failure travels back through a CLOEXEC pipe: EOF means
 * exec succeeded, four bytes are the child's errno.
 *
 * Completion is observed through a pidfd (poll()-able, no SIGCHLD races);
 * the child is reaped with waitpid() only after its exit was observed, so on
 * timeout the process group can still be SIGKILLed while the leader is a
 * zombie (its pgid cannot be reused yet). Without pidfd support we poll
 * waitid(WNOWAIT) every CMD_POLL_MS instead. Output pipes are drained when
 * the child exits; a grandchild keeping them open does not hold us up.
 *
 * Stdin input goes through a socketpair so send(MSG_NOSIGNAL) gives EPIPE
 * instead of SIGPIPE when the child does not read it all. */
#include "cmd.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "alloc.h"
#include "log.h"

#define CMD_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define CMD_DEFAULT_GRACE_MS 5000
#define CMD_POLL_MS 20
#define CMD_CHUNK 16384
/* Bound on reading after the child exited, against a grandchild spewing forever. */
#define CMD_DRAIN_MAX (16u << 20)

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

struct cmd_stream {
        int fd; /* parent's read end, -1 when closed */
        struct dbuf buf;
        bool truncated;
        struct loop_io *io;
};

struct cmd {
        char **argv;
        size_t argc, argv_alloc;
        char **env;
        size_t nenv;
        int *pass_fds;
        size_t npass;

        char *input;
        size_t input_len, input_off;
        int in_fd;

        bool capture;
        int log_fd;
        struct cmd_stream out[2];

        char *cwd;
        uint64_t timeout_ms, grace_ms;
        int stdin_fd;       /* cmd_set_stdin_fd(), -1 when not set */
        int pdeath_sig;     /* cmd_set_parent_death_signal(), 0 when not set */
        pid_t parent_pid;   /* who forked: the child checks it is still its parent */

        bool started, reaped;
        pid_t pid;
        int pidfd;
        uint64_t start_ms, term_ms;
        bool term_sent, kill_sent;
        struct cmd_status status;

        struct loop *loop;
        struct loop_io *in_io, *pid_io;
        struct loop_timer *timer;      /* timeout, then grace */
        struct loop_timer *poll_timer; /* exit polling without pidfd */
        cmd_done_fn done;
        void *done_ud;
};

static const char *const outcome_names[_CMD_OUTCOME_MAX] = {
        [CMD_EXITED] = "exited",
        [CMD_SIGNALED] = "killed by signal",
        [CMD_TIMED_OUT] = "timed out",
};

const char *cmd_outcome_to_string(enum cmd_outcome o) {
        if (o < 0 || o >= _CMD_OUTCOME_MAX) return NULL;
        return outcome_names[o];
}

bool cmd_status_success(const struct cmd_status *st) { return st->outcome == CMD_EXITED && st->code == 0; }

/* ------------------------------------------------------------ building */

static void argv_push(struct cmd *cmd, char *s) {
        if (cmd->argc + 2 > cmd->argv_alloc) {
                cmd->argv_alloc = cmd->argv_alloc ? cmd->argv_alloc * 2 : 8;
                cmd->argv = xrealloc(cmd->argv, cmd->argv_alloc * sizeof(char *));
        }
        cmd->argv[cmd->argc++] = s;
        cmd->argv[cmd->argc] = NULL;
}

struct cmd *cmd_new(const char *prog) {
        struct cmd *cmd = xnew(struct cmd, 1);
        cmd->in_fd = -1;
        cmd->stdin_fd = -1;
        cmd->log_fd = -1;
        cmd->out[0].fd = cmd->out[1].fd = -1;
        cmd->pid = -1;
        cmd->pidfd = -1;
        cmd->grace_ms = CMD_DEFAULT_GRACE_MS;
        argv_push(cmd, xstrdup(prog));
        cmd->env = xnew(char *, 1);
        cmd_setenv(cmd, "PATH", CMD_DEFAULT_PATH);
        cmd_setenv(cmd, "LC_ALL", "C");
        const char *home = getenv("HOME");
        cmd_setenv(cmd, "HOME", home && *home ? home : "/");
        return cmd;
}

void cmd_arg(struct cmd *cmd, const char *arg) { argv_push(cmd, xstrdup(arg)); }

void cmd_argf(struct cmd *cmd, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;
        va_start(ap, fmt);
        int r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0) abort(); /* OOM policy: see alloc.h */
        argv_push(cmd, s);
}

void cmd_args(struct cmd *cmd, ...) {
        va_list ap;
        va_start(ap, cmd);
        for (const char *a; (a = va_arg(ap, const char *));) cmd_arg(cmd, a);
        va_end(ap);
}

static ssize_t env_find(const struct cmd *cmd, const char *name) {
        size_t n = strlen(name);
        for (size_t i = 0; i < cmd->nenv; i++)
                if (strncmp(cmd->env[i], name, n) == 0 && cmd->env[i][n] == '=') return (ssize_t)i;
        return -1;
}

void cmd_setenv(struct cmd *cmd, const char *name, const char *value) {
        char *e = xasprintf("%s=%s", name, value);
        ssize_t i = env_find(cmd, name);
        if (i >= 0) {
                free(cmd->env[i]);
                cmd->env[i] = e;
                return;
        }
        cmd->env = xrealloc(cmd->env, (cmd->nenv + 2) * sizeof(char *));
        cmd->env[cmd->nenv++] = e;
        cmd->env[cmd->nenv] = NULL;
}

void cmd_pass_env(struct cmd *cmd, const char *name) {
        const char *v = getenv(name);
        if (v) cmd_setenv(cmd, name, v);
}

void cmd_pass_fd(struct cmd *cmd, int fd) {
        if (fd < 3) return; /* 0/1/2 are always set up explicitly */
        cmd->pass_fds = xrealloc(cmd->pass_fds, (cmd->npass + 1) * sizeof(int));
        cmd->pass_fds[cmd->npass++] = fd;
}

void cmd_set_input(struct cmd *cmd, const void *buf, size_t len) {
        free(cmd->input);
        cmd->input = xmalloc(len);
        if (len) memcpy(cmd->input, buf, len);
        cmd->input_len = len;
        cmd->input_off = 0;
}

void cmd_set_stdin_fd(struct cmd *cmd, int fd) {
        free(cmd->input);
        cmd->input = NULL;
        cmd->input_len = cmd->input_off = 0;
        cmd->stdin_fd = fd;
}

void cmd_set_parent_death_signal(struct cmd *cmd, int sig) { cmd->pdeath_sig = sig; }

void cmd_capture_output(struct cmd *cmd, size_t max_bytes) {
        cmd->capture = true;
        dbuf_init(&cmd->out[0].buf, max_bytes);
        dbuf_init(&cmd->out[1].buf, max_bytes);
}

void cmd_set_log_fd(struct cmd *cmd, int fd) { cmd->log_fd = fd; }

void cmd_set_cwd(struct cmd *cmd, const char *dir) {
        free(cmd->cwd);
        cmd->cwd = xstrdup(dir);
}

void cmd_set_timeout(struct cmd *cmd, uint64_t ms) { cmd->timeout_ms = ms; }
void cmd_set_kill_grace(struct cmd *cmd, uint64_t ms) { cmd->grace_ms = ms; }

pid_t cmd_get_pid(const struct cmd *cmd) { return cmd->pid; }
int cmd_get_pidfd(const struct cmd *cmd) { return cmd->pidfd; }
const struct dbuf *cmd_stdout(const struct cmd *cmd) { return &cmd->out[0].buf; }
const struct dbuf *cmd_stderr(const struct cmd *cmd) { return &cmd->out[1].buf; }

bool cmd_output_truncated(const struct cmd *cmd, int fd) {
        if (fd != 1 && fd != 2) return false;
        return cmd->out[fd - 1].truncated;
}

/* -------------------------------------------------------------- spawning */

/* Resolve prog against the child's PATH, as execvp would but before fork. */
static int resolve_program(const struct cmd *cmd, char **ret_path) {
        const char *prog = cmd->argv[0];
        if (!*prog) return -ENOENT;
        if (strchr(prog, '/')) {
                *ret_path = xstrdup(prog);
                return 0;
        }
        ssize_t i = env_find(cmd, "PATH");
        const char *path = i >= 0 ? cmd->env[i] + 5 : CMD_DEFAULT_PATH;
        int r = -ENOENT;
        for (const char *p = path; *p;) {
                size_t n = strcspn(p, ":");
                _cleanup_free_ char *cand = xasprintf("%.*s/%s", (int)n, n ? p : ".", prog);
                struct stat st;
                if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
                        if (access(cand, X_OK) == 0) {
                                *ret_path = TAKE_PTR(cand);
                                return 0;
                        }
                        r = -EACCES; /* keep looking, as execvp does */
                }
                p += n;
                if (*p == ':') p++;
        }
        return r;
}

/* Mark every fd >= 3 close-on-exec. Async-signal-safe (child side). */
static void child_cloexec_all(void) {
        if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
        /* Old kernel: walk /proc/self/fd with raw getdents64, no malloc. */
        int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
                char buf[4096];
                long n;
                while ((n = syscall(SYS_getdents64, dfd, buf, sizeof buf)) > 0) {
                        for (long off = 0; off < n;) {
                                struct dirent64 *d = (struct dirent64 *)(buf + off);
                                off += d->d_reclen;
                                int fd = 0;
                                const char *s = d->d_name;
                                if (*s < '0' || *s > '9') continue;
                                for (; *s >= '0' && *s <= '9'; s++) fd = fd * 10 + (*s - '0');
                                if (fd >= 3 && fd != dfd) fcntl(fd, F_SETFD, FD_CLOEXEC);
                        }
                }
                close(dfd);
                return;
        }
        for (int fd = 3; fd < 65536; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static _noreturn_ void child_fail(int errpipe) {
        int e = errno;
        ssize_t w = write(errpipe, &e, sizeof e);
        (void)w;
        _exit(127);
}

/* In the child: only async-signal-safe calls from here to execve. */
static _noreturn_ void child_exec(const struct cmd *cmd, const char *path, const int src[3], int errpipe) {
        struct sigaction sa = { .sa_handler = SIG_DFL };
        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &sa, NULL);

        if (setpgid(0, 0) < 0) child_fail(errpipe);
        if (cmd->pdeath_sig) {
                if (prctl(PR_SET_PDEATHSIG, cmd->pdeath_sig) < 0) child_fail(errpipe);
                /* The parent may have died before prctl: then nobody would signal us. */
                if (getppid() != cmd->parent_pid) _exit(128 + cmd->pdeath_sig);
        }

        /* Lift the sources above 2 first so one dup2 cannot clobber another's source. */
        int high[3];
        for (int i = 0; i < 3; i++)
                if ((high[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3)) < 0) child_fail(errpipe);
        for (int i = 0; i < 3; i++)
                if (dup2(high[i], i) < 0) child_fail(errpipe);

        if (cmd->cwd && chdir(cmd->cwd) < 0) child_fail(errpipe);

        child_cloexec_all();
        for (size_t i = 0; i < cmd->npass; i++)
                if (fcntl(cmd->pass_fds[i], F_SETFD, 0) < 0) child_fail(errpipe);

        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(path, cmd->argv, cmd->env);
        child_fail(errpipe);
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void close_fdp(int *fd) {
        if (*fd >= 0) close(*fd);
        *fd = -1;
}

static void reap(struct cmd *cmd) {
        if (cmd->reaped || cmd->pid <= 0) return;
        int status = 0;
        while (waitpid(cmd->pid, &status, 0) < 0 && errno == EINTR) {}
        cmd->reaped = true;
        if (WIFEXITED(status))
                cmd->status = (struct cmd_status){ CMD_EXITED, WEXITSTATUS(status) };
        else
                cmd->status = (struct cmd_status){ CMD_SIGNALED, WIFSIGNALED(status) ? WTERMSIG(status) : 0 };
        if (cmd->term_sent) cmd->status.outcome = CMD_TIMED_OUT;
        close_fdp(&cmd->pidfd);
}

int cmd_start(struct cmd *cmd) {
        if (cmd->started) return -EALREADY;
        cmd->started = true;

        _cleanup_free_ char *path = NULL;
        int r = resolve_program(cmd, &path);
        if (r < 0) return log_debug_errno(r, "cmd: %s: %m", cmd->argv[0]);

        /* Every fd created here is closed at the end; the parent's keepers are TAKE_FD'd. */
        _cleanup_close_ int devnull = -1, in_child = -1, in_parent = -1;
        _cleanup_close_ int out_r = -1, out_w = -1, err_r = -1, err_w = -1;
        _cleanup_close_ int errpipe_r = -1, errpipe_w = -1;
        int src[3];

        if (!cmd->input || (!cmd->capture && cmd->log_fd < 0)) {
                devnull = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
                if (devnull < 0) return negative_errno();
        }
        if (cmd->input) {
                int sv[2];
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return negative_errno();
                in_parent = sv[0];
                in_child = sv[1];
                shutdown(in_parent, SHUT_RD);
                set_nonblock(in_parent);
                src[0] = in_child;
        } else if (cmd->stdin_fd >= 0)
                src[0] = cmd->stdin_fd;
        else
                src[0] = devnull;

        if (cmd->capture) {
                int p[2];
                if (pipe2(p, O_CLOEXEC) < 0) return negative_errno();
                out_r = p[0], out_w = p[1];
                if (pipe2(p, O_CLOEXEC) < 0) return negative_errno();
                err_r = p[0], err_w = p[1];
                set_nonblock(out_r);
                set_nonblock(err_r);
                src[1] = out_w;
                src[2] = err_w;
        } else if (cmd->log_fd >= 0)
                src[1] = src[2] = cmd->log_fd; /* kernel keeps the order: one open file */
        else
                src[1] = src[2] = devnull;

        int ep[2];
        if (pipe2(ep, O_CLOEXEC) < 0) return negative_errno();
        errpipe_r = ep[0], errpipe_w = ep[1];

        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        cmd->parent_pid = getpid();
        pid_t pid = fork();
        if (pid == 0) child_exec(cmd, path, src, errpipe_w);
        int fork_errno = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (pid < 0) return log_debug_errno(fork_errno, "cmd: fork: %m");

        /* Also from the parent, so a kill(-pid) right after fork cannot miss. */
        (void)setpgid(pid, pid);
        cmd->pid = pid;
        close_fdp(&errpipe_w);
        close_fdp(&in_child);
        close_fdp(&out_w);
        close_fdp(&err_w);

        int child_errno = 0;
        ssize_t n;
        while ((n = read(errpipe_r, &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {}
        if (n == (ssize_t)sizeof child_errno) {
                reap(cmd);
                cmd->pid = -1;
                return log_debug_errno(child_errno, "cmd: %s: exec: %m", path);
        }

        cmd->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (cmd->pidfd < 0 && errno != ENOSYS) {
                r = negative_errno();
                kill(-pid, SIGKILL);
                reap(cmd);
                return log_debug_errno(r, "cmd: pidfd_open: %m");
        }
        cmd->in_fd = TAKE_FD(in_parent);
        cmd->out[0].fd = TAKE_FD(out_r);
        cmd->out[1].fd = TAKE_FD(err_r);
        cmd->start_ms = loop_now_ms();
        log_debug("cmd: started %s as pid %d", path, (int)pid);
        return 0;
}

/* ------------------------------------------------------------ pumping */

static void write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t w = write(fd, p, n);
                if (w < 0) {
                        if (errno == EINTR) continue;
                        return; /* a full disk must not wedge the child */
                }
                p += w;
                n -= (size_t)w;
        }
}

/* Read what is available on stream i; up to limit bytes. Returns true at EOF/error. */
static bool stream_read(struct cmd *cmd, int i, size_t limit) {
        struct cmd_stream *s = &cmd->out[i];
        char buf[CMD_CHUNK];
        size_t total = 0;
        while (s->fd >= 0 && total < limit) {
                ssize_t n = read(s->fd, buf, sizeof buf);
                if (n < 0) {
                        if (errno == EINTR) continue;
                        if (errno == EAGAIN) return false;
                        return true;
                }
                if (n == 0) return true;
                total += (size_t)n;
                if (cmd->log_fd >= 0) write_all(cmd->log_fd, buf, (size_t)n);
                size_t room = s->buf.max - s->buf.len;
                size_t keep = MIN((size_t)n, room);
                if (keep && dbuf_add(&s->buf, buf, keep) < 0) keep = 0;
                if (keep < (size_t)n) s->truncated = true;
        }
        return false;
}

static void stream_close(struct cmd *cmd, int i) {
        loop_io_remove(cmd->out[i].io);
        cmd->out[i].io = NULL;
        close_fdp(&cmd->out[i].fd);
}

static void input_close(struct cmd *cmd) {
        loop_io_remove(cmd->in_io);
        cmd->in_io = NULL;
        close_fdp(&cmd->in_fd);
}

/* Send more input; closes the socket (EOF for the child) when done or refused. */
static void input_write(struct cmd *cmd) {
        while (cmd->in_fd >= 0) {
                if (cmd->input_off == cmd->input_len) {
                        input_close(cmd);
                        return;
                }
                ssize_t n = send(cmd->in_fd, cmd->input + cmd->input_off, cmd->input_len - cmd->input_off,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR) continue;
                        if (errno == EAGAIN) return;
                        input_close(cmd); /* EPIPE: the child stopped reading; not our error */
                        return;
                }
                cmd->input_off += (size_t)n;
        }
}

static bool child_exited_nowait(struct cmd *cmd) {
        siginfo_t si = { 0 };
        if (waitid(P_PID, (id_t)cmd->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) return errno == ECHILD;
        return si.si_pid != 0;
}

static void send_term(struct cmd *cmd) {
        log_debug("cmd: pid %d timed out after %llu ms, sending SIGTERM", (int)cmd->pid,
                  (unsigned long long)cmd->timeout_ms);
        kill(-cmd->pid, SIGTERM);
        cmd->term_sent = true;
        cmd->term_ms = loop_now_ms();
}

static void send_kill(struct cmd *cmd) {
        kill(-cmd->pid, SIGKILL);
        kill(cmd->pid, SIGKILL); /* in case it left its group */
        cmd->kill_sent = true;
}

/* The child has exited (not yet reaped): collect the rest and reap. */
static void finish_exited(struct cmd *cmd) {
        for (int i = 0; i < 2; i++) {
                if (cmd->out[i].fd >= 0) stream_read(cmd, i, CMD_DRAIN_MAX);
                stream_close(cmd, i);
        }
        input_close(cmd);
        /* Leader is a zombie, so the pgid is still ours: take the stragglers down. */
        if (cmd->term_sent) kill(-cmd->pid, SIGKILL);
        reap(cmd);
}

int cmd_finish(struct cmd *cmd, struct cmd_status *ret_status) {
        if (!cmd->started || cmd->pid <= 0) return -ECHILD;
        if (cmd->loop) return -EBUSY;
        while (!cmd->reaped) {
                struct pollfd pfd[4];
                int n = 0, idx_out[2] = { -1, -1 }, idx_in = -1, idx_pid = -1;
                for (int i = 0; i < 2; i++)
                        if (cmd->out[i].fd >= 0) {
                                idx_out[i] = n;
                                pfd[n++] = (struct pollfd){ .fd = cmd->out[i].fd, .events = POLLIN };
                        }
                if (cmd->in_fd >= 0) {
                        idx_in = n;
                        pfd[n++] = (struct pollfd){ .fd = cmd->in_fd, .events = POLLOUT };
                }
                if (cmd->pidfd >= 0) {
                        idx_pid = n;
                        pfd[n++] = (struct pollfd){ .fd = cmd->pidfd, .events = POLLIN };
                }

                int64_t timeout = cmd->pidfd >= 0 ? -1 : CMD_POLL_MS;
                uint64_t now = loop_now_ms();
                uint64_t deadline = 0;
                if (cmd->timeout_ms && !cmd->term_sent) deadline = cmd->start_ms + cmd->timeout_ms;
                else if (cmd->term_sent && !cmd->kill_sent) deadline = cmd->term_ms + cmd->grace_ms;
                if (deadline) {
                        int64_t left = deadline > now ? (int64_t)(deadline - now) : 0;
                        timeout = timeout < 0 ? left : MIN(timeout, left);
                }

                int k = poll(pfd, (nfds_t)n, (int)MIN(timeout, (int64_t)INT32_MAX));
                if (k < 0 && errno != EINTR) {
                        int r = negative_errno();
                        send_kill(cmd);
                        finish_exited(cmd);
                        return log_debug_errno(r, "cmd: poll: %m");
                }
                for (int i = 0; i < 2 && k > 0; i++)
                        if (idx_out[i] >= 0 && pfd[idx_out[i]].revents && stream_read(cmd, i, SIZE_MAX))
                                stream_close(cmd, i);
                if (k > 0 && idx_in >= 0 && pfd[idx_in].revents) input_write(cmd);

                bool exited = idx_pid >= 0 ? (k > 0 && pfd[idx_pid].revents) : child_exited_nowait(cmd);
                if (exited) {
                        finish_exited(cmd);
                        break;
                }
                now = loop_now_ms();
                if (cmd->timeout_ms && !cmd->term_sent && now >= cmd->start_ms + cmd->timeout_ms) send_term(cmd);
                else if (cmd->term_sent && !cmd->kill_sent && now >= cmd->term_ms + cmd->grace_ms) send_kill(cmd);
        }
        *ret_status = cmd->status;
        return 0;
}

int cmd_run(struct cmd *cmd, struct cmd_status *ret_status) {
        int r = cmd_start(cmd);
        if (r < 0) return r;
        return cmd_finish(cmd, ret_status);
}

/* ------------------------------------------------------------ async */

static void async_complete(struct cmd *cmd) {
        loop_io_remove(cmd->pid_io);
        cmd->pid_io = NULL;
        loop_timer_cancel(cmd->timer);
        cmd->timer = NULL;
        loop_timer_cancel(cmd->poll_timer);
        cmd->poll_timer = NULL;
        finish_exited(cmd);
        cmd->loop = NULL;
        struct cmd_status st = cmd->status;
        cmd->done(cmd, &st, cmd->done_ud); /* may free cmd */
}

static void on_async_out(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        struct cmd *cmd = ud;
        int i = io == cmd->out[0].io ? 0 : 1;
        if (stream_read(cmd, i, 4 * CMD_CHUNK)) stream_close(cmd, i);
}

static void on_async_in(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        input_write(ud);
}

static void on_async_pidfd(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        async_complete(ud);
}

static void on_async_poll(struct loop *loop, struct loop_timer *t, void *ud) {
        struct cmd *cmd = ud;
        if (child_exited_nowait(cmd)) async_complete(cmd);
}

static void on_async_timeout(struct loop *loop, struct loop_timer *t, void *ud) {
        struct cmd *cmd = ud;
        if (!cmd->term_sent) {
                send_term(cmd);
                loop_timer_reschedule(t, cmd->grace_ms);
        } else {
                send_kill(cmd);
                cmd->timer = NULL; /* one-shot: the loop frees it after we return */
        }
}

int cmd_start_async(struct cmd *cmd, struct loop *loop, cmd_done_fn done, void *ud) {
        int r = cmd_start(cmd);
        if (r < 0) return r;
        cmd->loop = loop;
        cmd->done = done;
        cmd->done_ud = ud;
        for (int i = 0; i < 2 && r >= 0; i++)
                if (cmd->out[i].fd >= 0) r = loop_add_fd(loop, cmd->out[i].fd, EPOLLIN, on_async_out, cmd, &cmd->out[i].io);
        if (r >= 0 && cmd->in_fd >= 0) r = loop_add_fd(loop, cmd->in_fd, EPOLLOUT, on_async_in, cmd, &cmd->in_io);
        if (r >= 0 && cmd->pidfd >= 0) r = loop_add_fd(loop, cmd->pidfd, EPOLLIN, on_async_pidfd, cmd, &cmd->pid_io);
        if (r < 0) {
                /* cmd_free() unregisters what was added, kills and reaps. */
                return log_debug_errno(r, "cmd: registering with the loop: %m");
        }
        if (cmd->pidfd < 0) cmd->poll_timer = loop_add_timer(loop, CMD_POLL_MS, true, on_async_poll, cmd);
        if (cmd->timeout_ms) {
                uint64_t elapsed = loop_now_ms() - cmd->start_ms;
                cmd->timer = loop_add_timer(loop, cmd->timeout_ms > elapsed ? cmd->timeout_ms - elapsed : 0, false,
                                            on_async_timeout, cmd);
        }
        return 0;
}

/* ------------------------------------------------------------ free */

void cmd_free(struct cmd *cmd) {
        if (!cmd) return;
        if (cmd->started && cmd->pid > 0 && !cmd->reaped) {
                send_kill(cmd);
                loop_io_remove(cmd->pid_io);
                loop_timer_cancel(cmd->timer);
                loop_timer_cancel(cmd->poll_timer);
                finish_exited(cmd);
        }
        for (int i = 0; i < 2; i++) {
                stream_close(cmd, i);
                dbuf_free(&cmd->out[i].buf);
        }
        input_close(cmd);
        close_fdp(&cmd->pidfd);
        for (size_t i = 0; i < cmd->argc; i++) free(cmd->argv[i]);
        free(cmd->argv);
        for (size_t i = 0; i < cmd->nenv; i++) free(cmd->env[i]);
        free(cmd->env);
        free(cmd->pass_fds);
        free(cmd->input);
        free(cmd->cwd);
        free(cmd);
}
