/* holder.c — see holder.h.
 *
 * DESIGN. One event loop (loop.h) watches: the ZooKeeper event fd (the
 * request's data watch, session state), the control socket, the report pipe
 * (an error there means prepare is gone), the runner's pidfd, SIGTERM/SIGINT,
 * and one timer: the node timeout while waiting, then the job deadline. The
 * request is watched asynchronously so cleanup can always reach us; the few
 * steps after fulfilment (lock, delete request, in-use) are short synchronous
 * round trips, the lock bounded by lock-timeout as Zuul's executor does. */
#include "holder.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "job.h"
#include "json_util.h"
#include "log.h"
#include "loop.h"
#include "model_request.h"
#include "poolclient.h"
#include "settings.h"
#include "zk.h"
#include "zk_lock.h"

#define SOCK_NAME "holder.sock"
#define CTL_LINE_MAX 256
#define CTL_READ_TIMEOUT_MS 5000

enum holder_state {
        HOLDER_STARTING,  /* connecting, submitting */
        HOLDER_WAITING,   /* request submitted, not fulfilled yet */
        HOLDER_HELD,      /* node locked and in use */
        HOLDER_LOST,      /* the session that held the lock expired */
        HOLDER_DONE,      /* everything given back */
};

struct holder {
        const struct settings *s;
        const struct job *job;
        struct loop *loop;
        struct zk *zk;
        struct loop_io *zk_io;
        int report_fd;
        struct loop_io *report_io;
        int listen_fd;
        struct loop_io *listen_io;
        int runner_pidfd;
        struct loop_io *runner_io;
        struct loop_timer *timer;
        enum holder_state state;
        struct job_record rec;        /* node.json; its strings are ours */
        struct zk_lock *lock;
        char *lost_why;
        enum node_request_state seen; /* last request state reported */
        bool rearm;                   /* the request watch died with a session */
        int exit_code;
};

/* ------------------------------------------------------------ reporting */

static void report_line(struct holder *h, char kind, const char *text) {
        if (h->report_fd < 0) return;
        _cleanup_free_ char *line = text ? xasprintf("%c %s\n", kind, text) : xasprintf("%c\n", kind);
        size_t len = strlen(line);
        for (size_t off = 0; off < len;) {
                ssize_t w = write(h->report_fd, line + off, len - off);
                if (w < 0 && errno == EINTR) continue;
                if (w < 0) return; /* prepare is gone: the report watch handles that */
                off += (size_t)w;
        }
}

static void report(struct holder *h, const char *fmt, ...) _printf_(2, 3);
static void report(struct holder *h, const char *fmt, ...) {
        va_list ap;
        _cleanup_free_ char *msg = NULL;
        va_start(ap, fmt);
        int r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0) abort(); /* OOM policy */
        log_info("%s", msg);
        report_line(h, 'i', msg);
}

static void close_report(struct holder *h) {
        loop_io_remove(h->report_io);
        h->report_io = NULL;
        if (h->report_fd >= 0) close(h->report_fd);
        h->report_fd = -1;
}

static void save_record(struct holder *h) {
        int r = job_record_write(h->job->dir, &h->rec);
        if (r < 0) log_warning_errno(r, "cannot write %s/node.json: %m", h->job->dir);
}

/* ------------------------------------------------------------ giving back */

/* Give back whatever we have (request or node), forget the job directory and
 * stop the loop. Returns what was done, for the answer to "release". */
static char *holder_finish(struct holder *h, const char *why) {
        char *what = NULL;
        int r;
        loop_timer_cancel(h->timer);
        h->timer = NULL;
        switch (h->state) {
        case HOLDER_STARTING:
        case HOLDER_WAITING:
                if (!h->rec.request_id) {
                        what = xstrdup("nothing (no request made yet)");
                        break;
                }
                r = pool_client_delete_request(h->zk, h->rec.request_id);
                if (r < 0)
                        log_error_errno(r, "cannot delete node request %s: %m", h->rec.request_id);
                what = xasprintf("request %s (%s)", h->rec.request_id, r < 0 ? "could not delete it" : "deleted");
                break;
        case HOLDER_HELD: {
                enum node_state before = _NODE_STATE_INVALID;
                r = pool_client_return_node(h->zk, h->rec.node_id, &before);
                if (r < 0) log_error_errno(r, "cannot mark node %s used: %m", h->rec.node_id);
                int k = zk_lock_release(h->lock);
                if (k < 0) log_error_errno(k, "cannot unlock node %s: %m", h->rec.node_id);
                const char *b = node_state_to_string(before);
                what = xasprintf("node %s (%s%s, unlocked)", h->rec.node_id, b ? b : "gone",
                                 before == NODE_STATE_IN_USE || before == NODE_STATE_READY ? " -> used" : "");
                break;
        }
        case HOLDER_LOST:
                what = xasprintf("nothing (node %s: %s)", h->rec.node_id, h->lost_why);
                break;
        case HOLDER_DONE:
                what = xstrdup("nothing");
                break;
        }
        log_info("released %s: %s", what, why);
        h->state = HOLDER_DONE;
        r = job_dir_remove(h->job->dir);
        if (r < 0) log_warning_errno(r, "cannot remove %s: %m", h->job->dir);
        if (h->loop) loop_exit(h->loop, h->exit_code);
        return what;
}

/* Before the node is ours: give back, tell prepare why, stop. */
static void holder_fail(struct holder *h, const char *fmt, ...) _printf_(2, 3);
static void holder_fail(struct holder *h, const char *fmt, ...) {
        va_list ap;
        _cleanup_free_ char *msg = NULL;
        va_start(ap, fmt);
        int r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0) abort();
        log_error("%s", msg);
        h->exit_code = 1;
        free(holder_finish(h, msg));
        report_line(h, 'F', msg);
        close_report(h);
}

/* ------------------------------------------------------------ the node */

static json_t *user_data(const struct holder *h) {
        /* Zuul writes {zuul_system, project_name}; we say which GitLab job has it. */
        json_t *u = json_util_must(json_object());
        json_object_set_new(u, "gitlab_job_id", json_util_must(json_string(h->job->id)));
        json_object_set_new(u, "requestor", json_util_must(json_string(h->s->requestor)));
        if (h->job->project) json_object_set_new(u, "project_name", json_util_must(json_string(h->job->project)));
        return u;
}

static void on_deadline(struct loop *loop, struct loop_timer *t, void *ud);

static void take_node(struct holder *h, const char *node_id) {
        _cleanup_free_ char *identifier = xasprintf("%s job %s", h->s->requestor, h->job->id);
        _cleanup_(node_freep) struct node *n = NULL;
        struct zk_lock *lock = NULL;
        int r = pool_client_lock_node(h->zk, node_id, h->rec.request_id, identifier,
                                      (int)(h->s->lock_timeout * 1000), &lock, &n);
        if (r < 0) {
                holder_fail(h, "cannot lock node %s of request %s: %s", node_id, h->rec.request_id,
                            r == -ESTALE     ? "it is not allocated to this request"
                            : r == -ETIMEDOUT ? "someone else holds its lock"
                            : r == -EBADMSG   ? "its record is malformed"
                                              : strerror(-r));
                return;
        }
        h->lock = lock;
        /* Zuul deletes the request once it holds (or failed to lock) the nodes. */
        r = pool_client_delete_request(h->zk, h->rec.request_id);
        if (r < 0) log_warning_errno(r, "cannot delete fulfilled request %s: %m", h->rec.request_id);

        const char *why = NULL;
        if (n->connection_type && strcmp(n->connection_type, "ssh") != 0)
                why = "its connection-type is not ssh";
        else if (!n->interface_ip)
                why = "it has no interface_ip";
        else if (!n->host_keys[0])
                why = "it has no host_keys (host-key-checking is off in its pool), so ssh could not check its identity";
        if (why) {
                /* Left unused and unlocked: the launcher takes it back as any unallocated node. */
                (void)zk_lock_release(h->lock);
                zk_lock_free(TAKE_PTR(h->lock));
                h->state = HOLDER_DONE; /* nothing of ours left to give back */
                holder_fail(h, "node %s cannot be used: %s", node_id, why);
                return;
        }
        h->state = HOLDER_HELD;
        h->rec.node_id = xstrdup(node_id);
        h->rec.provider = xstrdup(n->provider);
        h->rec.interface_ip = xstrdup(n->interface_ip);
        h->rec.connection_port = n->connection_port;
        h->rec.username = xstrdup(n->username ? n->username : "zuul");

        _cleanup_(json_util_decrefp) json_t *u = user_data(h);
        r = pool_client_use_node(h->zk, node_id, u);
        if (r < 0) {
                holder_fail(h, "cannot mark node %s in-use: %s", node_id, strerror(-r));
                return;
        }
        r = job_known_hosts_write(h->job->dir, n->interface_ip, n->connection_port, n->host_keys);
        if (r < 0) {
                holder_fail(h, "cannot write %s/known_hosts: %s", h->job->dir, strerror(-r));
                return;
        }
        int64_t hold_s = h->job->timeout_s + h->s->cleanup_grace;
        h->rec.locked_time = model_now();
        h->rec.deadline = h->rec.locked_time + (double)hold_s;
        save_record(h);
        h->timer = loop_add_timer(h->loop, (uint64_t)hold_s * 1000, false, on_deadline, h);
        report(h, "Node %s (provider %s) is ours: %s@%s port %d; held until the job ends, at most %lld s",
               node_id, n->provider ? n->provider : "?", h->rec.username, n->interface_ip, n->connection_port,
               (long long)hold_s);
        report_line(h, 'R', NULL);
        close_report(h);
}

/* ------------------------------------------------------------ the request */

static void watch_request(struct holder *h);

static void on_request_changed(struct zk *zk, const struct zk_watch_event *ev, void *ud) {
        struct holder *h = ud;
        if (h->state == HOLDER_WAITING) watch_request(h);
}

static void on_request(struct zk *zk, const struct zk_result *res, void *ud) {
        struct holder *h = ud;
        if (h->state != HOLDER_WAITING) return;
        if (res->r == -ENOENT) {
                h->state = HOLDER_DONE; /* nothing left to delete */
                holder_fail(h, "node request %s was deleted by someone else", h->rec.request_id);
                return;
        }
        if (res->r < 0) {
                /* Connection trouble: look again once the session is back. */
                log_warning_errno(res->r, "reading node request %s: %m", h->rec.request_id);
                h->rearm = true;
                return;
        }
        _cleanup_(node_request_freep) struct node_request *q = NULL;
        struct model_error err;
        int r = node_request_from_json(res->data, res->len, h->rec.request_id, &q, &err);
        if (r < 0) {
                holder_fail(h, "node request %s is malformed: %s", h->rec.request_id, err.msg);
                return;
        }
        if (q->state == NODE_REQUEST_STATE_FULFILLED) {
                if (!q->nodes[0]) {
                        holder_fail(h, "node request %s was fulfilled without a node", h->rec.request_id);
                        return;
                }
                take_node(h, q->nodes[0]);
                return;
        }
        if (q->state == NODE_REQUEST_STATE_FAILED) {
                holder_fail(h, "poold could not fulfil node request %s for label '%s' (declined by %zu launcher%s: "
                            "is the label served by any provider?)",
                            h->rec.request_id, h->job->label, model_strv_length(q->declined_by),
                            model_strv_length(q->declined_by) == 1 ? "" : "s");
                return;
        }
        if (q->state == NODE_REQUEST_STATE_PENDING && h->seen != NODE_REQUEST_STATE_PENDING)
                report(h, "A launcher accepted request %s and is providing the node", h->rec.request_id);
        h->seen = q->state;
        if (!res->watch_registered) h->rearm = true;
}

static void watch_request(struct holder *h) {
        _cleanup_free_ char *path = npzk_request_path(h->rec.request_id);
        h->rearm = false;
        (void)zk_aget(h->zk, path, on_request_changed, on_request, h);
}

static void on_zk_state(struct zk *zk, enum zk_state state, void *ud) {
        struct holder *h = ud;
        if (state == ZK_STATE_EXPIRED) {
                log_warning("ZooKeeper session expired");
                h->rearm = true;
                if (h->state == HOLDER_HELD && !zk_lock_is_held(h->lock)) {
                        /* The lock went with the session; Zuul's executor would lose the node the same way. */
                        h->state = HOLDER_LOST;
                        h->lost_why = xstrdup("the ZooKeeper session holding its lock expired");
                        log_error("node %s: %s", h->rec.node_id, h->lost_why);
                }
        } else if (state == ZK_STATE_CONNECTED && h->rearm && h->state == HOLDER_WAITING)
                watch_request(h);
}

static void on_zk(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        struct holder *h = ud;
        zk_dispatch(h->zk);
}

/* ------------------------------------------------------------ events */

static void on_node_timeout(struct loop *loop, struct loop_timer *t, void *ud) {
        struct holder *h = ud;
        h->timer = NULL;
        holder_fail(h, "no '%s' node within node-timeout (%lld s); request %s withdrawn", h->job->label,
                    (long long)h->s->node_timeout, h->rec.request_id);
}

static void on_deadline(struct loop *loop, struct loop_timer *t, void *ud) {
        struct holder *h = ud;
        h->timer = NULL;
        free(holder_finish(h, "the job's deadline passed without a cleanup stage"));
}

static void on_report_closed(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        struct holder *h = ud;
        close_report(h);
        if (h->state == HOLDER_STARTING || h->state == HOLDER_WAITING)
                free(holder_finish(h, "prepare went away before the node was ready"));
}

static void on_runner_exit(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        struct holder *h = ud;
        loop_io_remove(h->runner_io);
        h->runner_io = NULL;
        free(holder_finish(h, "the GitLab Runner process exited"));
}

static void on_signal(struct loop *loop, int signo, void *ud) {
        struct holder *h = ud;
        bool before_ready = h->report_fd >= 0;
        _cleanup_free_ char *why = xasprintf("got %s", strsignal(signo));
        if (before_ready) {
                holder_fail(h, "prepare was cancelled (%s)", why);
                return;
        }
        free(holder_finish(h, why));
}

static void on_ignored_signal(struct loop *loop, int signo, void *ud) {}

/* ------------------------------------------------------------ control socket */

static char *status_line(const struct holder *h) {
        switch (h->state) {
        case HOLDER_STARTING: return xstrdup("waiting (connecting)");
        case HOLDER_WAITING: return xasprintf("waiting %s", h->rec.request_id);
        case HOLDER_HELD:
                return zk_lock_is_held(h->lock) ? xasprintf("held %s", h->rec.node_id)
                                                : xasprintf("lost node %s: its lock is gone", h->rec.node_id);
        case HOLDER_LOST: return xasprintf("lost node %s: %s", h->rec.node_id, h->lost_why);
        case HOLDER_DONE: break;
        }
        return xstrdup("lost: already released");
}

static void on_client(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        struct holder *h = ud;
        _cleanup_close_ int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) return;
        struct ucred cred;
        socklen_t cl = sizeof cred;
        /* The directory is 0700 already; this is belt and braces. */
        if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || (cred.uid != getuid() && cred.uid != 0))
                return;
        struct timeval tv = { .tv_sec = CTL_READ_TIMEOUT_MS / 1000 };
        (void)setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char line[CTL_LINE_MAX];
        size_t len = 0;
        while (len < sizeof line - 1) {
                ssize_t k = read(c, line + len, sizeof line - 1 - len);
                if (k < 0 && errno == EINTR) continue;
                if (k <= 0) break;
                len += (size_t)k;
                if (memchr(line, '\n', len)) break;
        }
        line[len] = 0;
        line[strcspn(line, "\r\n")] = 0;
        _cleanup_free_ char *answer = NULL;
        if (strcmp(line, "status") == 0)
                answer = status_line(h);
        else if (strcmp(line, "release") == 0) {
                _cleanup_free_ char *what = holder_finish(h, "released by the cleanup stage");
                answer = xasprintf("released %s", what);
        } else
                answer = xasprintf("error unknown request '%.40s'", line);
        _cleanup_free_ char *out = xasprintf("%s\n", answer);
        (void)send(c, out, strlen(out), MSG_NOSIGNAL);
}

static int listen_control(struct holder *h) {
        _cleanup_free_ char *path = job_path(h->job->dir, SOCK_NAME);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof sa.sun_path) return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) return negative_errno();
        (void)unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 8) < 0) return negative_errno();
        h->listen_fd = TAKE_FD(fd);
        return loop_add_fd(h->loop, h->listen_fd, EPOLLIN, on_client, h, &h->listen_io);
}

/* ------------------------------------------------------------ main */

static void detach_stdio(void) {
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd < 0) return;
        for (int i = 0; i < 3; i++) (void)dup2(fd, i);
        if (fd > 2) close(fd);
}

static int start(struct holder *h) {
        int r = loop_new(&h->loop);
        if (r < 0) return log_error_errno(r, "cannot create the event loop: %m");
        /* Before zk_new() starts threads: signals must be blocked in all of them. */
        if ((r = loop_add_signal(h->loop, SIGTERM, on_signal, h, NULL)) < 0 ||
            (r = loop_add_signal(h->loop, SIGINT, on_signal, h, NULL)) < 0 ||
            (r = loop_add_signal(h->loop, SIGHUP, on_ignored_signal, h, NULL)) < 0)
                return log_error_errno(r, "cannot handle signals: %m");
        r = listen_control(h);
        if (r < 0) {
                holder_fail(h, "cannot listen on %s/%s: %s", h->job->dir, SOCK_NAME, strerror(-r));
                return r;
        }
        if (h->report_fd >= 0 && (r = loop_add_fd(h->loop, h->report_fd, 0, on_report_closed, h, &h->report_io)) < 0)
                return log_error_errno(r, "cannot watch the report pipe: %m");
        if (h->runner_pidfd >= 0 &&
            (r = loop_add_fd(h->loop, h->runner_pidfd, EPOLLIN, on_runner_exit, h, &h->runner_io)) < 0)
                return log_error_errno(r, "cannot watch the runner process: %m");

        h->rec.job_id = xstrdup(h->job->id);
        h->rec.label = xstrdup(h->job->label);
        h->rec.holder_pid = getpid();
        save_record(h);

        int timeout_ms = (int)(h->s->zk_timeout * 1000);
        struct zk_tls tls;
        r = zk_new(h->s->zk_hosts, timeout_ms, settings_zk_tls(h->s, &tls), &h->zk);
        if (r >= 0) r = zk_connect_wait(h->zk, timeout_ms);
        if (r < 0) {
                holder_fail(h, "cannot connect to ZooKeeper at %s within %.0f s: %s", h->s->zk_hosts,
                            h->s->zk_timeout, r == -ETIMEDOUT ? "no answer" : strerror(-r));
                return r;
        }
        zk_add_state_listener(h->zk, on_zk_state, h);
        if ((r = loop_add_fd(h->loop, zk_event_fd(h->zk), EPOLLIN, on_zk, h, &h->zk_io)) < 0)
                return log_error_errno(r, "cannot watch the ZooKeeper session: %m");

        r = pool_client_submit(h->zk, h->s, h->job, &h->rec.request_id);
        if (r < 0) {
                holder_fail(h, "cannot submit a node request: %s", strerror(-r));
                return r;
        }
        h->state = HOLDER_WAITING;
        save_record(h);
        report(h, "Requested a '%s' node from poold (label from %s): request %s, priority %03lld", h->job->label,
               h->job->label_from, h->rec.request_id, (long long)h->s->priority);
        h->timer = loop_add_timer(h->loop, (uint64_t)h->s->node_timeout * 1000, false, on_node_timeout, h);
        watch_request(h);
        return 0;
}

int holder_main(const struct settings *s, const struct job *j, int report_fd, int runner_pidfd) {
        struct holder h = {
                .s = s,
                .job = j,
                .report_fd = report_fd,
                .listen_fd = -1,
                .runner_pidfd = runner_pidfd,
                .seen = NODE_REQUEST_STATE_REQUESTED,
        };
        /* Out of the runner's process group and session: its kill of a
         * timed-out stage must not reach us, and its pipes must close. */
        (void)setsid();
        detach_stdio();
        struct sigaction ign = { .sa_handler = SIG_IGN };
        sigaction(SIGPIPE, &ign, NULL);
        (void)prctl(PR_SET_NAME, "gitlab-holder");
        _cleanup_free_ char *component = xasprintf("poold-gitlab-executor job %s", j->id);
        log_setup(component, LOG_LEVEL_INFO);
        if (log_open_file(s->log_file, false) < 0) log_close();

        int r = start(&h);
        if (r >= 0 && h.state != HOLDER_DONE) r = loop_run(h.loop);
        /* Setup failed half way, or the loop broke: never leave anything behind. */
        if (h.state != HOLDER_DONE) holder_fail(&h, "the holder stopped on an error (see %s)", s->log_file);
        close_report(&h);
        loop_io_remove(h.listen_io);
        loop_io_remove(h.runner_io);
        loop_io_remove(h.zk_io);
        if (h.listen_fd >= 0) close(h.listen_fd);
        if (h.runner_pidfd >= 0) close(h.runner_pidfd);
        zk_lock_free(h.lock);
        zk_free(h.zk);
        loop_free(h.loop);
        free(h.rec.job_id);
        free(h.rec.label);
        free(h.rec.request_id);
        free(h.rec.node_id);
        free(h.rec.provider);
        free(h.rec.interface_ip);
        free(h.rec.username);
        free(h.lost_why);
        log_close();
        return h.exit_code;
}

/* ------------------------------------------------------------ client */

int holder_call(const char *job_dir, const char *request, int timeout_ms, char **ret_reply) {
        _cleanup_free_ char *path = job_path(job_dir, SOCK_NAME);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof sa.sun_path) return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return negative_errno();
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) return negative_errno();
        struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        _cleanup_free_ char *line = xasprintf("%s\n", request);
        if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0) return negative_errno();
        char buf[CTL_LINE_MAX];
        size_t len = 0;
        while (len < sizeof buf - 1) {
                ssize_t k = read(fd, buf + len, sizeof buf - 1 - len);
                if (k < 0 && errno == EINTR) continue;
                if (k < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : negative_errno();
                if (k == 0) break;
                len += (size_t)k;
                if (memchr(buf, '\n', len)) break;
        }
        if (len == 0) return -ECONNRESET;
        buf[len] = 0;
        buf[strcspn(buf, "\n")] = 0;
        *ret_reply = xstrdup(buf);
        return 0;
}
