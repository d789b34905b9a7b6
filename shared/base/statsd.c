/* statsd.c — UDP statsd client (see statsd.h).
 *
 * DESIGN. One connected non-blocking UDP socket; lines accumulate in a fixed
 * 512-byte datagram buffer (a pipeline, as python-statsd sends one), which
 * goes out when the next line would not fit or on statsd_flush(). A line
 * longer than a datagram is sent alone (the kernel may still take it).
 * Send errors (ECONNREFUSED from an ICMP reply, EAGAIN) are ignored: metrics
 * are best effort and must never slow the daemon. One mutex guards the
 * buffer: provider drivers report API calls from worker threads. */
#include "statsd.h"

#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"

struct statsd {
        pthread_mutex_t mu;     /* guards buf, len, sent */
        int fd;
        char *prefix;           /* "" or "<prefix>." */
        char buf[STATSD_MAX_DATAGRAM];
        size_t len;
        uint64_t sent;
};

int statsd_new(const char *host, const char *port, const char *prefix, struct statsd **ret) {
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM };
        struct addrinfo *ai = NULL;
        int g = getaddrinfo(host && *host ? host : "localhost", port && *port ? port : STATSD_DEFAULT_PORT, &hints,
                            &ai);
        if (g != 0) {
                log_debug("statsd: cannot resolve %s:%s: %s", host, port, gai_strerror(g));
                return g == EAI_SYSTEM ? negative_errno() : -EADDRNOTAVAIL;
        }
        int r = -EADDRNOTAVAIL;
        int fd = -1;
        for (struct addrinfo *a = ai; a; a = a->ai_next) {
                fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
                if (fd < 0) {
                        r = negative_errno();
                        continue;
                }
                if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
                r = negative_errno();
                close(fd);
                fd = -1;
        }
        freeaddrinfo(ai);
        if (fd < 0) return r;
        struct statsd *s = xnew(struct statsd, 1);
        pthread_mutex_init(&s->mu, NULL);
        s->fd = fd;
        s->prefix = prefix && *prefix ? xasprintf("%s.", prefix) : xstrdup("");
        *ret = s;
        return 0;
}

int statsd_new_from_env(struct statsd **ret) {
        const char *host = getenv("STATSD_HOST"), *port = getenv("STATSD_PORT");
        if ((!host || !*host) && (!port || !*port)) {
                *ret = NULL;
                return 0;
        }
        return statsd_new(host, port, getenv("STATSD_PREFIX"), ret);
}

static void send_buf(struct statsd *s) {
        if (s->len == 0) return;
        /* MSG_DONTWAIT: the socket is non-blocking anyway; a full buffer drops the datagram. */
        if (send(s->fd, s->buf, s->len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) s->sent++;
        s->len = 0;
}

void statsd_flush(struct statsd *s) {
        if (!s) return;
        pthread_mutex_lock(&s->mu);
        send_buf(s);
        pthread_mutex_unlock(&s->mu);
}

void statsd_free(struct statsd *s) {
        if (!s) return;
        send_buf(s);
        close(s->fd);
        pthread_mutex_destroy(&s->mu);
        free(s->prefix);
        free(s);
}

uint64_t statsd_sent(struct statsd *s) {
        if (!s) return 0;
        pthread_mutex_lock(&s->mu);
        uint64_t n = s->sent;
        pthread_mutex_unlock(&s->mu);
        return n;
}

static void add_line_locked(struct statsd *s, const char *name, const char *value, const char *type) {
        _cleanup_free_ char *line = xasprintf("%s%s:%s|%s", s->prefix, name, value, type);
        /* A name (labels and providers come from the config) must not carry the
         * line's own syntax: a ':', '|' or '@' would be parsed as value, type or
         * rate, a newline would start a forged line. Such names are broken
         * metrics anyway; this keeps them one well-formed line. */
        size_t name_len = strlen(s->prefix) + strlen(name);
        for (size_t i = 0; i < name_len; i++)
                if (strchr(":|@\n\r", line[i])) line[i] = '_';
        size_t n = strlen(line);
        /* Lines in one datagram are separated by '\n', as python-statsd's pipeline does. */
        if (s->len > 0 && s->len + 1 + n > sizeof s->buf) send_buf(s);
        if (n > sizeof s->buf) {
                if (send(s->fd, line, n, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) s->sent++;
                return;
        }
        if (s->len > 0) s->buf[s->len++] = '\n';
        memcpy(s->buf + s->len, line, n);
        s->len += n;
}

static void add_line(struct statsd *s, const char *name, const char *value, const char *type) {
        pthread_mutex_lock(&s->mu);
        add_line_locked(s, name, value, type);
        pthread_mutex_unlock(&s->mu);
}

void statsd_gauge(struct statsd *s, const char *name, long long value) {
        if (!s) return;
        char v[32];
        snprintf(v, sizeof v, "%lld", value);
        add_line(s, name, v, "g");
}

void statsd_incr(struct statsd *s, const char *name, long long count) {
        if (!s) return;
        char v[32];
        snprintf(v, sizeof v, "%lld", count);
        add_line(s, name, v, "c");
}

void statsd_timing(struct statsd *s, const char *name, double ms) {
        if (!s) return;
        char v[64];
        snprintf(v, sizeof v, "%0.6f", ms);
        add_line(s, name, v, "ms");
}

char *statsd_key_escape(const char *s) {
        char *r = xstrdup(s ? s : "");
        for (char *p = r; *p; p++)
                if (*p == '.' || *p == ':') *p = '_';
        return r;
}

void statsd_builder_build(struct statsd *s, const char *image, int rc, double duration_ms) {
        if (!s) return;
        _cleanup_free_ char *k_rc = xasprintf("nodepool.dib_image_build.%s.status.rc", image);
        _cleanup_free_ char *k_dur = xasprintf("nodepool.dib_image_build.%s.status.duration", image);
        _cleanup_free_ char *k_last = xasprintf("nodepool.dib_image_build.%s.status.last_build", image);
        statsd_gauge(s, k_rc, rc);
        statsd_timing(s, k_dur, duration_ms);
        statsd_gauge(s, k_last, (long long)time(NULL));
        statsd_flush(s);
}

void statsd_builder_build_backoff(struct statsd *s, const char *image, long long failures, long long next_attempt) {
        if (!s) return;
        _cleanup_free_ char *k_f = xasprintf("nodepool.dib_image_build.%s.status.consecutive_failures", image);
        _cleanup_free_ char *k_n = xasprintf("nodepool.dib_image_build.%s.status.next_attempt", image);
        statsd_gauge(s, k_f, failures);
        statsd_gauge(s, k_n, next_attempt);
        statsd_flush(s);
}

void statsd_builder_image_size(struct statsd *s, const char *image, const char *ext, long long bytes) {
        if (!s) return;
        _cleanup_free_ char *k = xasprintf("nodepool.dib_image_build.%s.%s.size", image, ext);
        statsd_gauge(s, k, bytes);
        statsd_flush(s);
}

void statsd_builder_upload(struct statsd *s, const char *image, const char *provider, bool ok, double duration_ms) {
        if (!s || !ok) return;
        _cleanup_free_ char *k = xasprintf("nodepool.image_update.%s.%s", image, provider);
        statsd_timing(s, k, duration_ms);
        statsd_incr(s, k, 1);
        statsd_flush(s);
}

void statsd_builder_build_requests(struct statsd *s, const char *const *images, const bool *requested,
                                   size_t n_images) {
        if (!s) return;
        long long n = 0;
        for (size_t i = 0; i < n_images; i++) {
                _cleanup_free_ char *k = xasprintf("nodepool.image.%s.image_build_requests", images[i]);
                statsd_gauge(s, k, requested[i] ? 1 : 0);
                n += requested[i];
        }
        statsd_gauge(s, "nodepool.image_build_requests", n);
        statsd_flush(s);
}

void statsd_builder_verify(struct statsd *s, const char *image, const char *provider, bool ok, double duration_ms) {
        if (!s) return;
        _cleanup_free_ char *k = xasprintf("poold.builder.verify.%s.%s", image, provider);
        _cleanup_free_ char *c = xasprintf("%s.%s", k, ok ? "passed" : "failed");
        statsd_timing(s, k, duration_ms);
        statsd_incr(s, c, 1);
        statsd_flush(s);
}

void statsd_builder_build_state(struct statsd *s, const char *host, const char *image, int state) {
        if (!s) return;
        _cleanup_free_ char *k = xasprintf("nodepool.builder.%s.image.%s.build.state", host, image);
        statsd_gauge(s, k, state);
        statsd_flush(s);
}

void statsd_builder_upload_state(struct statsd *s, const char *host, const char *image, const char *provider,
                                 int state) {
        if (!s) return;
        _cleanup_free_ char *k =
                xasprintf("nodepool.builder.%s.image.%s.provider.%s.upload.state", host, image, provider);
        statsd_gauge(s, k, state);
        statsd_flush(s);
}
