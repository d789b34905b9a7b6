/* keyscan.c — see keyscan.h.
 *
 * DESIGN: one struct keyscan is a small state machine driven only by loop
 * callbacks (timers, fd watches, cmd completion), so the loop never blocks:
 *
 *   KICK → RESOLVE → CONNECT ⇄ WAIT_RETRY → BANNER → KEYSCAN → done
 *
 * The first step runs from a 0 ms timer so the callback never fires from
 * inside keyscan_start(). An IP literal resolves synchronously; a name goes
 * through getaddrinfo_a() and is polled every 20 ms (no signal, no callback
 * thread touching our memory). A cancel while glibc still resolves hands the
 * request to a detached thread that waits for it and frees it, because glibc
 * writes into the request until it finishes.
 *
 * One deadline timer covers connect + banner; a late deadline while bytes
 * that are not an SSH banner were seen is -EPROTO, otherwise -ETIMEDOUT.
 * ssh-keyscan is given the numeric address we connected to, so it needs no
 * second resolution and a host name can never be mistaken for an option. */
#include "keyscan.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "cmd.h"
#include "dbuf.h"
#include "log.h"

#define KEYSCAN_GAI_POLL_MS 20
#define KEYSCAN_MIN_KEYSCAN_S 3
#define KEYSCAN_KILL_GRACE_MS 1000
#define KEYSCAN_BANNER_LINE_MAX 255
#define KEYSCAN_PRE_BANNER_LINES 16
/* "localhost" gives ::1 and 127.0.0.1; a server listens on one of them. */
#define KEYSCAN_ADDRS_MAX 4

enum keyscan_state {
        KEYSCAN_KICK,
        KEYSCAN_RESOLVE,
        KEYSCAN_CONNECT,
        KEYSCAN_WAIT_RETRY,
        KEYSCAN_BANNER,
        KEYSCAN_COLLECT,
};

/* Everything glibc may still write while an asynchronous lookup runs. */
struct keyscan_gai {
        struct gaicb req;
        struct addrinfo hints;
        char *host;
        char service[8];
};

struct keyscan {
        struct loop *loop;
        char *host;
        int port;
        bool gather;
        uint64_t timeout_ms, deadline_ms;
        keyscan_done_fn cb;
        void *ud;
        enum keyscan_state state;

        struct keyscan_gai *gai;
        struct sockaddr_storage addrs[KEYSCAN_ADDRS_MAX];
        socklen_t addrlens[KEYSCAN_ADDRS_MAX];
        size_t n_addrs, cur;     /* the address being tried */
        char addrstr[INET6_ADDRSTRLEN];

        int fd;
        struct loop_io *io;
        struct loop_timer *kick, *deadline, *try_timer, *retry, *gai_poll;
        struct dbuf banner;
        unsigned attempts;
        int last_error;
        struct cmd *cmd;
};

/* ------------------------------------------------------------ pure helpers */

bool keyscan_gathers_keys(const char *connection_type) {
        return !connection_type || strcmp(connection_type, "ssh") == 0 || strcmp(connection_type, "network_cli") == 0;
}

bool keyscan_error_is_retryable(int error) {
        error = error < 0 ? -error : error;
        return error == ECONNREFUSED || error == EHOSTUNREACH || error == ENETUNREACH || error == ETIMEDOUT ||
               error == ECONNRESET || error == ECONNABORTED;
}

void keyscan_strv_free(char **keys) {
        if (!keys) return;
        for (char **k = keys; *k; k++) free(*k);
        free(keys);
}

static int key_type_rank(const char *key) {
        static const char *const order[] = { "ssh-ed25519 ", "ecdsa-sha2-nistp256 ", "ecdsa-sha2-nistp384 ",
                                             "ecdsa-sha2-nistp521 ", "ssh-rsa " };
        for (size_t i = 0; i < ELEMENTSOF(order); i++)
                if (strncmp(key, order[i], strlen(order[i])) == 0) return (int)i;
        return (int)ELEMENTSOF(order);
}

static bool valid_key_type(const char *s, size_t n) {
        if (n == 0 || n > 64) return false;
        for (size_t i = 0; i < n; i++)
                if (!(('a' <= s[i] && s[i] <= 'z') || ('A' <= s[i] && s[i] <= 'Z') || ('0' <= s[i] && s[i] <= '9') ||
                      s[i] == '-' || s[i] == '.' || s[i] == '@'))
                        return false;
        return true;
}

static bool valid_base64(const char *s, size_t n) {
        if (n < 4) return false;
        size_t pad = 0;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c == '=') {
                        pad++;
                        continue;
                }
                if (pad) return false; /* data after padding */
                if (!(('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '+' || c == '/'))
                        return false;
        }
        return pad <= 2;
}

/* Next whitespace-separated field of [*p, end); false when none. */
static bool next_field(const char **p, const char *end, const char **ret, size_t *ret_len) {
        const char *s = *p;
        while (s < end && (*s == ' ' || *s == '\t' || *s == '\r')) s++;
        const char *e = s;
        while (e < end && *e != ' ' && *e != '\t' && *e != '\r') e++;
        if (e == s) return false;
        *ret = s;
        *ret_len = (size_t)(e - s);
        *p = e;
        return true;
}

int keyscan_parse(const char *text, char ***ret_keys) {
        char **keys = xnew(char *, 1);
        size_t n = 0;
        for (const char *line = text ? text : ""; *line;) {
                const char *nl = strchr(line, '\n');
                const char *end = nl ? nl : line + strlen(line);
                const char *p = line, *host, *type, *b64;
                size_t hl, tl, bl;
                line = nl ? nl + 1 : end;
                if (!next_field(&p, end, &host, &hl) || host[0] == '#') continue;
                if (!next_field(&p, end, &type, &tl) || !next_field(&p, end, &b64, &bl)) continue;
                if (!valid_key_type(type, tl) || !valid_base64(b64, bl)) continue;
                char *key = xasprintf("%.*s %.*s", (int)tl, type, (int)bl, b64);
                bool dup = false;
                for (size_t i = 0; i < n && !dup; i++) dup = strcmp(keys[i], key) == 0;
                if (dup) {
                        free(key);
                        continue;
                }
                keys = xrealloc(keys, (n + 2) * sizeof(char *));
                /* Insertion sort by type rank; equal ranks keep input order. */
                size_t at = n;
                while (at > 0 && key_type_rank(keys[at - 1]) > key_type_rank(key)) {
                        keys[at] = keys[at - 1];
                        at--;
                }
                keys[at] = key;
                keys[++n] = NULL;
        }
        *ret_keys = keys;
        return (int)n;
}

int keyscan_banner_check(const char *buf, size_t len) {
        if (len > KEYSCAN_BANNER_MAX) return -EPROTO;
        size_t lines = 0;
        for (size_t start = 0; start < len;) {
                const char *nl = memchr(buf + start, '\n', len - start);
                size_t end = nl ? (size_t)(nl - buf) : len;
                if (memchr(buf + start, '\0', end - start)) return -EPROTO;
                if (end - start > KEYSCAN_BANNER_LINE_MAX) return -EPROTO;
                bool ssh = end - start >= 4 && memcmp(buf + start, "SSH-", 4) == 0;
                /* Decide on "SSH-x" as soon as the version is visible, complete line or not. */
                if (ssh) {
                        size_t have = end - start;
                        if (have >= 8 && memcmp(buf + start, "SSH-2.0-", 8) == 0) return nl ? 1 : 0;
                        if (have >= 9 && memcmp(buf + start, "SSH-1.99-", 9) == 0) return nl ? 1 : 0;
                        if (strncmp("SSH-2.0-", buf + start, MIN(have, 8)) != 0 &&
                            strncmp("SSH-1.99-", buf + start, MIN(have, 9)) != 0)
                                return -EPROTO;
                        return 0;
                }
                if (!nl) return 0;
                if (++lines > KEYSCAN_PRE_BANNER_LINES) return -EPROTO;
                start = end + 1;
        }
        return 0;
}

/* ------------------------------------------------------------ teardown */

static void *gai_reaper(void *p) {
        struct keyscan_gai *g = p;
        struct gaicb *list[] = { &g->req };
        while (gai_error(&g->req) == EAI_INPROGRESS) (void)gai_suspend((const struct gaicb *const *)list, 1, NULL);
        if (g->req.ar_result) freeaddrinfo(g->req.ar_result);
        free(g->host);
        free(g);
        return NULL;
}

static void gai_release(struct keyscan_gai *g) {
        if (!g) return;
        if (gai_error(&g->req) == EAI_INPROGRESS && gai_cancel(&g->req) == EAI_NOTCANCELED) {
                pthread_t t;
                pthread_attr_t attr;
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                int r = pthread_create(&t, &attr, gai_reaper, g);
                pthread_attr_destroy(&attr);
                if (r == 0) return;
                /* No thread: wait here; bounded by the resolver's own timeouts. */
                gai_reaper(g);
                return;
        }
        gai_reaper(g);
}

static void close_socket(struct keyscan *s) {
        loop_io_remove(s->io);
        s->io = NULL;
        if (s->fd >= 0) close(s->fd);
        s->fd = -1;
        loop_timer_cancel(s->try_timer);
        s->try_timer = NULL;
}

static void keyscan_free(struct keyscan *s) {
        close_socket(s);
        loop_timer_cancel(s->kick);
        loop_timer_cancel(s->deadline);
        loop_timer_cancel(s->retry);
        loop_timer_cancel(s->gai_poll);
        gai_release(s->gai);
        cmd_free(s->cmd);
        dbuf_free(&s->banner);
        free(s->host);
        free(s);
}

void keyscan_cancel(struct keyscan *scan) {
        if (!scan) return;
        log_debug("keyscan %s:%d: cancelled", scan->host, scan->port);
        keyscan_free(scan);
}

static void finish(struct keyscan *s, int error, char **keys, const char *fmt, ...) _printf_(4, 5);
static void finish(struct keyscan *s, int error, char **keys, const char *fmt, ...) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        log_debug("keyscan %s:%d: %s", s->host, s->port, msg);
        keyscan_done_fn cb = s->cb;
        void *ud = s->ud;
        /* Tear down first so nothing of ours fires again, even if cb runs the loop's exit. */
        keyscan_free(s);
        cb(error, keys, msg, ud);
}

/* ------------------------------------------------------------ state machine */

static void start_connect(struct keyscan *s);

static uint64_t remaining_ms(const struct keyscan *s) {
        uint64_t now = loop_now_ms();
        return s->deadline_ms > now ? s->deadline_ms - now : 0;
}

static void on_retry(struct loop *loop, struct loop_timer *t, void *ud) {
        struct keyscan *s = ud;
        s->retry = NULL; /* one-shot: freed by the loop */
        start_connect(s);
}

/* A try failed with a retryable error: close and try again in a second. */
static void schedule_retry(struct keyscan *s, int error) {
        s->last_error = error;
        close_socket(s);
        dbuf_reset(&s->banner);
        s->state = KEYSCAN_WAIT_RETRY;
        log_debug_errno(error, "keyscan %s:%d: attempt %u (%s): %m; retrying", s->host, s->port, s->attempts,
                        s->addrstr);
        /* Every address of a round is tried at once; only then do we pause. */
        if (s->cur + 1 < s->n_addrs) {
                s->cur++;
                start_connect(s);
                return;
        }
        s->cur = 0;
        uint64_t left = remaining_ms(s);
        /* The deadline timer ends it when there is no time left for another try. */
        if (left > 0) s->retry = loop_add_timer(s->loop, MIN((uint64_t)KEYSCAN_RETRY_MS, left), false, on_retry, s);
}

static void on_keyscan_done(struct cmd *cmd, const struct cmd_status *st, void *ud) {
        struct keyscan *s = ud;
        char **keys = NULL;
        int n = keyscan_parse(dbuf_str(cmd_stdout(cmd)), &keys);
        if (n > 0) {
                finish(s, 0, keys, "%d host key(s) after %u attempt(s)", n, s->attempts);
                return;
        }
        keyscan_strv_free(keys);
        /* First stderr line, as the reason, without its newline. */
        const char *err = dbuf_str(cmd_stderr(cmd));
        int errlen = (int)strcspn(err, "\n");
        if (st->outcome == CMD_TIMED_OUT)
                finish(s, -ETIMEDOUT, NULL, "ssh-keyscan timed out");
        else
                finish(s, -EPROTO, NULL, "ssh-keyscan found no host key (%s %d)%s%.*s",
                       cmd_outcome_to_string(st->outcome), st->code, errlen ? ": " : "", MIN(errlen, 160), err);
}

static void start_collect(struct keyscan *s) {
        close_socket(s);
        loop_timer_cancel(s->deadline);
        s->deadline = NULL;
        s->state = KEYSCAN_COLLECT;
        uint64_t secs = (remaining_ms(s) + 999) / 1000;
        if (secs < KEYSCAN_MIN_KEYSCAN_S) secs = KEYSCAN_MIN_KEYSCAN_S;
        s->cmd = cmd_new("ssh-keyscan");
        cmd_argf(s->cmd, "-T%llu", (unsigned long long)secs);
        cmd_argf(s->cmd, "-p%d", s->port);
        cmd_args(s->cmd, "-t", "ed25519,ecdsa,rsa", "--", s->addrstr, NULL);
        cmd_capture_output(s->cmd, KEYSCAN_OUTPUT_MAX);
        /* -T bounds each connection; the kill bounds the whole run. */
        cmd_set_timeout(s->cmd, secs * 1000 + 2000);
        cmd_set_kill_grace(s->cmd, KEYSCAN_KILL_GRACE_MS);
        int r = cmd_start_async(s->cmd, s->loop, on_keyscan_done, s);
        if (r < 0) finish(s, r, NULL, "running ssh-keyscan: %s", strerror(-r));
}

static void on_banner(struct keyscan *s, int fd) {
        char buf[1024];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
                int e = errno;
                if (e == EAGAIN || e == EINTR) return;
                if (s->banner.len == 0 && keyscan_error_is_retryable(e)) {
                        schedule_retry(s, -e);
                        return;
                }
                finish(s, -e, NULL, "reading the SSH banner: %s", strerror(e));
                return;
        }
        if (n == 0) {
                /* Closed before saying anything: a port forward with no guest behind it yet. */
                if (s->banner.len == 0) {
                        schedule_retry(s, -ECONNRESET);
                        return;
                }
                finish(s, -EPROTO, NULL, "connection closed without an SSH banner");
                return;
        }
        size_t take = MIN((size_t)n, KEYSCAN_BANNER_MAX + 1 - s->banner.len);
        if (dbuf_add(&s->banner, buf, take) < 0) {
                finish(s, -EPROTO, NULL, "no SSH banner in the first %d bytes", KEYSCAN_BANNER_MAX);
                return;
        }
        int r = keyscan_banner_check(s->banner.buf, s->banner.len);
        if (r < 0) {
                finish(s, -EPROTO, NULL, "not an SSH server: \"%.40s\"", dbuf_str(&s->banner));
                return;
        }
        if (r > 0) {
                log_debug("keyscan %s:%d: SSH banner seen", s->host, s->port);
                start_collect(s);
        }
}

static void connected(struct keyscan *s) {
        loop_timer_cancel(s->try_timer);
        s->try_timer = NULL;
        if (!s->gather) {
                close_socket(s);
                finish(s, 0, xnew(char *, 1), "port open after %u attempt(s)", s->attempts);
                return;
        }
        s->state = KEYSCAN_BANNER;
        int r = loop_io_set_events(s->io, EPOLLIN);
        if (r < 0) finish(s, r, NULL, "watching the socket: %s", strerror(-r));
}

static void on_connect(struct keyscan *s, int fd) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (err == 0) {
                connected(s);
                return;
        }
        if (keyscan_error_is_retryable(err)) {
                schedule_retry(s, -err);
                return;
        }
        finish(s, -err, NULL, "connecting to %s port %d: %s", s->addrstr, s->port, strerror(err));
}

/* One watch per socket; what an event means depends on the state. */
static void on_socket(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        struct keyscan *s = ud;
        if (s->state == KEYSCAN_CONNECT)
                on_connect(s, fd);
        else if (s->state == KEYSCAN_BANNER)
                on_banner(s, fd);
}

static void on_try_timeout(struct loop *loop, struct loop_timer *t, void *ud) {
        struct keyscan *s = ud;
        s->try_timer = NULL; /* one-shot: freed by the loop */
        schedule_retry(s, -ETIMEDOUT);
}

static void start_connect(struct keyscan *s) {
        s->attempts++;
        s->state = KEYSCAN_CONNECT;
        const struct sockaddr *sa = (const struct sockaddr *)&s->addrs[s->cur];
        const void *a = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                                                 : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (!inet_ntop(sa->sa_family, a, s->addrstr, sizeof s->addrstr)) {
                finish(s, negative_errno(), NULL, "unusable address for %s", s->host);
                return;
        }
        s->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->fd < 0) {
                int e = errno;
                finish(s, -e, NULL, "socket: %s", strerror(e));
                return;
        }
        int r = connect(s->fd, sa, s->addrlens[s->cur]);
        if (r < 0 && errno != EINPROGRESS) {
                int e = errno;
                if (keyscan_error_is_retryable(e)) {
                        schedule_retry(s, -e);
                        return;
                }
                finish(s, -e, NULL, "connecting to %s port %d: %s", s->addrstr, s->port, strerror(e));
                return;
        }
        /* Connected at once (loopback can) or not: EPOLLOUT says when, SO_ERROR how. */
        r = loop_add_fd(s->loop, s->fd, EPOLLOUT, on_socket, s, &s->io);
        if (r < 0) {
                finish(s, r, NULL, "watching the socket: %s", strerror(-r));
                return;
        }
        /* The deadline timer cuts a try short when less time than this is left. */
        s->try_timer = loop_add_timer(s->loop, KEYSCAN_CONNECT_TRY_MS, false, on_try_timeout, s);
}

static void resolved(struct keyscan *s, int gai_r, const struct addrinfo *res) {
        if (gai_r != 0) {
                finish(s, gai_r == EAI_SYSTEM ? negative_errno() : -EHOSTUNREACH, NULL, "resolving %s: %s", s->host,
                       gai_strerror(gai_r));
                return;
        }
        for (const struct addrinfo *ai = res; ai && s->n_addrs < KEYSCAN_ADDRS_MAX; ai = ai->ai_next) {
                if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
                if (ai->ai_addrlen > sizeof s->addrs[0]) continue;
                memcpy(&s->addrs[s->n_addrs], ai->ai_addr, ai->ai_addrlen);
                s->addrlens[s->n_addrs++] = ai->ai_addrlen;
        }
        if (s->n_addrs == 0) {
                finish(s, -EHOSTUNREACH, NULL, "resolving %s: no usable address", s->host);
                return;
        }
        start_connect(s);
}

static void on_gai_poll(struct loop *loop, struct loop_timer *t, void *ud) {
        struct keyscan *s = ud;
        int r = gai_error(&s->gai->req);
        if (r == EAI_INPROGRESS) return;
        loop_timer_cancel(s->gai_poll); /* repeating: ours to cancel */
        s->gai_poll = NULL;
        struct keyscan_gai *g = TAKE_PTR(s->gai);
        resolved(s, r, g->req.ar_result);
        gai_reaper(g); /* finished: frees at once */
}

static void start_resolve(struct keyscan *s) {
        s->state = KEYSCAN_RESOLVE;
        struct keyscan_gai *g = xnew(struct keyscan_gai, 1);
        g->host = xstrdup(s->host);
        snprintf(g->service, sizeof g->service, "%d", s->port);
        g->hints.ai_family = AF_UNSPEC;
        g->hints.ai_socktype = SOCK_STREAM;
        g->hints.ai_flags = AI_NUMERICSERV;
        g->req.ar_name = g->host;
        g->req.ar_service = g->service;
        g->req.ar_request = &g->hints;

        /* IP literals need no lookup: resolve them here, without a thread. */
        struct addrinfo hints = g->hints, *res = NULL;
        hints.ai_flags |= AI_NUMERICHOST;
        if (getaddrinfo(s->host, g->service, &hints, &res) == 0) {
                free(g->host);
                free(g);
                resolved(s, 0, res);
                freeaddrinfo(res);
                return;
        }
        struct gaicb *list[] = { &g->req };
        int r = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
        if (r != 0) {
                free(g->host);
                free(g);
                finish(s, -EAGAIN, NULL, "resolving %s: %s", s->host, gai_strerror(r));
                return;
        }
        s->gai = g;
        s->gai_poll = loop_add_timer(s->loop, KEYSCAN_GAI_POLL_MS, true, on_gai_poll, s);
}

static void on_kick(struct loop *loop, struct loop_timer *t, void *ud) {
        struct keyscan *s = ud;
        s->kick = NULL; /* one-shot: freed by the loop */
        start_resolve(s);
}

static void on_deadline(struct loop *loop, struct loop_timer *t, void *ud) {
        struct keyscan *s = ud;
        s->deadline = NULL; /* one-shot: freed by the loop */
        if (s->state == KEYSCAN_BANNER && s->banner.len > 0)
                finish(s, -EPROTO, NULL, "no SSH banner within %llu ms: \"%.40s\"", (unsigned long long)s->timeout_ms,
                       dbuf_str(&s->banner));
        else if (s->state == KEYSCAN_BANNER)
                finish(s, -ETIMEDOUT, NULL, "connected but no SSH banner within %llu ms",
                       (unsigned long long)s->timeout_ms);
        else if (s->last_error)
                finish(s, -ETIMEDOUT, NULL, "timeout after %llu ms and %u attempt(s), last: %s",
                       (unsigned long long)s->timeout_ms, s->attempts, strerror(-s->last_error));
        else
                finish(s, -ETIMEDOUT, NULL, "timeout after %llu ms", (unsigned long long)s->timeout_ms);
}

int keyscan_start(struct loop *loop, const char *host, int port, uint64_t timeout_ms, const char *connection_type,
                  keyscan_done_fn cb, void *ud, struct keyscan **ret_scan) {
        if (!loop || !host || !*host || port <= 0 || port > 65535 || timeout_ms == 0 || !cb) return -EINVAL;
        struct keyscan *s = xnew(struct keyscan, 1);
        s->loop = loop;
        s->host = xstrdup(host);
        s->port = port;
        s->gather = keyscan_gathers_keys(connection_type);
        s->timeout_ms = timeout_ms;
        s->deadline_ms = loop_now_ms() + timeout_ms;
        s->cb = cb;
        s->ud = ud;
        s->fd = -1;
        s->state = KEYSCAN_KICK;
        dbuf_init(&s->banner, KEYSCAN_BANNER_MAX + 1);
        s->kick = loop_add_timer(loop, 0, false, on_kick, s);
        s->deadline = loop_add_timer(loop, timeout_ms, false, on_deadline, s);
        log_debug("keyscan %s:%d: start (timeout %llu ms, %s)", host, port, (unsigned long long)timeout_ms,
                  s->gather ? "host keys" : "port check");
        if (ret_scan) *ret_scan = s;
        return 0;
}

char *keyscan_known_hosts_text(const char *host, int port, char *const *keys) {
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        if (!f) abort(); /* OOM policy */
        for (size_t i = 0; keys && keys[i]; i++) {
                if (strpbrk(keys[i], "\r\n")) continue;
                if (port == 22)
                        fprintf(f, "%s %s\n", host, keys[i]);
                else
                        fprintf(f, "[%s]:%d %s\n", host, port, keys[i]);
        }
        fclose(f);
        return out;
}
