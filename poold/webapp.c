/* webapp.c — the HTTP side of poold's web app (protocol.md §3.2).
 *
 * DESIGN. libmicrohttpd runs WITHOUT a thread of its own: MHD_USE_EPOLL in
 * external mode gives one epoll fd, which the launcher's loop watches like
 * any other fd; when it is readable (or MHD's timeout timer fires) we call
 * MHD_run(), and the request handler runs on the loop thread. So answers
 * read the launcher's caches directly, with no snapshot copy and no lock
 * (the alternative, MHD's internal thread answering from a snapshot the loop
 * publishes, would copy 10,000 nodes every second whether anyone asks or
 * not). The cost moves to the loop: rendering a listing blocks it for a few
 * milliseconds, so rendered answers are kept for 1 s, as Nodepool does
 * (Cache-Control: max-age=1), and a burst of polls costs one render per
 * second per distinct URL. Sending a large answer is MHD's non-blocking
 * business and never stalls the loop.
 *
 * Bounds: MHD's per-connection memory limit caps the request line and
 * headers (longer → 414/431 from MHD itself), connections are limited in
 * number and time, bodies are never read (any method but GET/HEAD → 405),
 * and the answer cache holds a bounded number of entries. */
#include "webapp.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "alloc.h"
#include "launcher.h"
#include "log.h"
#include "metrics.h"
#include "statsd.h"
#include "table.h"
#include "webapp_internal.h"

#define CACHE_SECONDS 1
#define CACHE_MAX_ENTRIES 64
#define CONN_MEMORY_LIMIT (32 * 1024)  /* request line + headers, per connection */
#define CONN_LIMIT 256
#define CONN_TIMEOUT_S 30
#define MAX_QUERY_VALUE 256

/* A rendered answer, shared by every request for the same URL within a second. */
struct webapp_cached {
        char *key;
        time_t created;
        int status;
        struct MHD_Response *resp;      /* one reference held here */
        char last_modified[64];
        struct webapp_cached *next;
};

static void cached_free(struct webapp_cached *c) {
        if (!c) return;
        MHD_destroy_response(c->resp);
        free(c->key);
        free(c);
}

static void cache_expire(struct webapp *w, time_t now) {
        struct webapp_cached **pp = &w->cache;
        while (*pp) {
                struct webapp_cached *c = *pp;
                if (now - c->created >= CACHE_SECONDS || now < c->created) {
                        *pp = c->next;
                        cached_free(c);
                        w->n_cached--;
                } else {
                        pp = &c->next;
                }
        }
}

static struct webapp_cached *cache_get(struct webapp *w, const char *key) {
        for (struct webapp_cached *c = w->cache; c; c = c->next)
                if (strcmp(c->key, key) == 0) return c;
        return NULL;
}

static void http_date(time_t t, char buf[static 64]) {
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, 64, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static struct webapp_cached *cache_put(struct webapp *w, const char *key, int status, char *body, size_t len,
                                       const char *content_type, time_t now) {
        if (w->n_cached >= CACHE_MAX_ENTRIES) {
                /* Full (many distinct ?node_id= values): drop the oldest. */
                struct webapp_cached **pp = &w->cache, **oldest = pp;
                for (; *pp; pp = &(*pp)->next)
                        if ((*pp)->created < (*oldest)->created) oldest = pp;
                struct webapp_cached *o = *oldest;
                *oldest = o->next;
                cached_free(o);
                w->n_cached--;
        }
        struct webapp_cached *c = xnew(struct webapp_cached, 1);
        c->key = xstrdup(key);
        c->created = now;
        c->status = status;
        c->resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        if (!c->resp) abort(); /* only on OOM */
        char expires[64];
        http_date(now, c->last_modified);
        http_date(now + CACHE_SECONDS, expires);
        MHD_add_response_header(c->resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        MHD_add_response_header(c->resp, "Access-Control-Allow-Origin", "*");
        MHD_add_response_header(c->resp, MHD_HTTP_HEADER_CACHE_CONTROL, "public, max-age=1");
        MHD_add_response_header(c->resp, MHD_HTTP_HEADER_LAST_MODIFIED, c->last_modified);
        MHD_add_response_header(c->resp, MHD_HTTP_HEADER_EXPIRES, expires);
        c->next = w->cache;
        w->cache = c;
        w->n_cached++;
        return c;
}

/* A small uncached answer (errors, /ready, /health). */
static enum MHD_Result answer_text(struct MHD_Connection *conn, unsigned status, const char *text,
                                   const char *allow) {
        struct MHD_Response *r =
                MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=UTF-8");
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        if (allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
        enum MHD_Result ret = MHD_queue_response(conn, status, r);
        MHD_destroy_response(r);
        return ret;
}

/* ---------------------------------------------------------------- content negotiation */

/* The q of the most specific Accept range matching TYPE ("text/plain"), or -1 if none does. */
static double accept_q(const char *accept, const char *type) {
        double best_q = -1;
        int best_spec = -1;
        const char *slash = strchr(type, '/');
        size_t major_len = (size_t)(slash - type);
        for (const char *p = accept; p && *p;) {
                size_t n = strcspn(p, ",");
                _cleanup_free_ char *item = xstrndup(p, n);
                p += n;
                if (*p == ',') p++;
                /* range[;params] */
                char *semi = strchr(item, ';');
                double q = 1;
                if (semi) {
                        *semi = 0;
                        for (char *par = semi + 1; par && *par;) {
                                while (*par == ' ' || *par == '\t') par++;
                                if (par[0] == 'q' && par[1] == '=') q = strtod(par + 2, NULL);
                                par = strchr(par, ';');
                                if (par) par++;
                        }
                }
                char *range = item;
                while (*range == ' ' || *range == '\t') range++;
                size_t rl = strlen(range);
                while (rl > 0 && (range[rl - 1] == ' ' || range[rl - 1] == '\t')) range[--rl] = 0;
                int spec;
                if (strcasecmp(range, type) == 0) spec = 2;
                else if (rl == major_len + 2 && strncasecmp(range, type, major_len) == 0 &&
                         strcmp(range + major_len, "/*") == 0)
                        spec = 1;
                else if (strcmp(range, "*/*") == 0) spec = 0;
                else continue;
                if (spec > best_spec) {
                        best_spec = spec;
                        best_q = q;
                }
        }
        return best_q;
}

/* Nodepool (webob best_match over text/html, text/plain, application/json):
 * JSON only when application/json is strictly preferred; ties go to the
 * earlier offer, and no Accept header means text. */
static bool wants_json(const char *accept) {
        if (!accept || !*accept) return false;
        static const char *const offers[] = { "text/html", "text/plain", "application/json" };
        double best = 0;
        size_t best_i = SIZE_MAX;
        for (size_t i = 0; i < ELEMENTSOF(offers); i++) {
                double q = accept_q(accept, offers[i]);
                if (q > best) {
                        best = q;
                        best_i = i;
                }
        }
        return best_i == 2;
}

/* ---------------------------------------------------------------- routing */

static const char *const LISTS[] = { "image-list",   "dib-image-list", "image-status", "node-list",
                                     "request-list", "label-list",     "pool-list" };

static enum MHD_Result handle(struct webapp *w, struct MHD_Connection *conn, const char *url) {
        struct launcher *l = w->l;
        time_t now = time(NULL);

        if (strcmp(url, "/health") == 0) return answer_text(conn, MHD_HTTP_OK, "OK\n", NULL);
        if (strcmp(url, "/ready") == 0) {
                bool ready = webapp_ready(l);
                return answer_text(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                                   ready ? "OK\n" : "Not ready\n", NULL);
        }

        const char *node_id = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "node_id");
        const char *fields = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "fields");
        if ((node_id && strlen(node_id) > MAX_QUERY_VALUE) || (fields && strlen(fields) > MAX_QUERY_VALUE))
                return answer_text(conn, MHD_HTTP_BAD_REQUEST, "Bad Request: query value too long\n", NULL);
        if (node_id && !*node_id) node_id = NULL;
        if (fields && !*fields) fields = NULL;

        const char *name = url[0] == '/' ? url + 1 : url;
        size_t nl = strlen(name);
        bool json = false;
        if (nl > 5 && strcmp(name + nl - 5, ".json") == 0) {
                json = true;
                nl -= 5;
        }
        _cleanup_free_ char *base = xstrndup(name, nl);
        if (!json) json = wants_json(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT));

        const char *kind = NULL;
        if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0) kind = "page";
        else if (strcmp(url, "/metrics") == 0) kind = "metrics";
        else
                for (size_t i = 0; i < ELEMENTSOF(LISTS); i++)
                        if (strcmp(base, LISTS[i]) == 0) kind = LISTS[i];
        if (!kind) return answer_text(conn, MHD_HTTP_NOT_FOUND, "Not Found\n", NULL);

        _cleanup_free_ char *key = xasprintf("%s|%d|%s|%s", kind, json, node_id ? node_id : "", fields ? fields : "");
        cache_expire(w, now);
        struct webapp_cached *c = cache_get(w, key);
        if (!c) {
                if (strcmp(kind, "page") == 0) {
                        c = cache_put(w, key, MHD_HTTP_OK, xstrdup(webapp_page_html), strlen(webapp_page_html),
                                      "text/html; charset=UTF-8", now);
                } else if (strcmp(kind, "metrics") == 0) {
                        webapp_stats_refresh(w, l, true);
                        char *text = webapp_stats_render(w);
                        c = cache_put(w, key, MHD_HTTP_OK, text, strlen(text), "text/plain; version=0.0.4; charset=utf-8",
                                      now);
                } else {
                        _cleanup_(table_freep) struct table *t = webapp_list(l, kind, node_id);
                        if (!json && fields) table_show_only(t, fields);
                        char *body = json ? table_format_json(t) : table_format_text(t);
                        c = cache_put(w, key, MHD_HTTP_OK, body, strlen(body),
                                      json ? "application/json; charset=UTF-8" : "text/plain; charset=UTF-8", now);
                }
        }
        /* Conditional GET: the client has this second's answer already. */
        const char *ims = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_MODIFIED_SINCE);
        if (ims && strlen(ims) < 64) {
                time_t since = curl_getdate(ims, NULL);
                if (since != -1 && since >= c->created) {
                        struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
                        if (!r) return MHD_NO;
                        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
                        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "public, max-age=1");
                        MHD_add_response_header(r, MHD_HTTP_HEADER_LAST_MODIFIED, c->last_modified);
                        enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_NOT_MODIFIED, r);
                        MHD_destroy_response(r);
                        return ret;
                }
        }
        return MHD_queue_response(conn, (unsigned)c->status, c->resp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        struct webapp *w = cls;
        /* Read-only: anything but GET/HEAD is refused before a body is read. */
        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
                return answer_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "Method Not Allowed\n", "GET, HEAD");
        if (*upload_data_size > 0) {
                /* A GET with a body: ignore the body. */
                *upload_data_size = 0;
                return MHD_YES;
        }
        return handle(w, conn, url ? url : "/");
}

/* ---------------------------------------------------------------- loop integration */

static void pump(struct webapp *w) {
        if (!w->mhd) return;
        MHD_run(w->mhd);
        MHD_UNSIGNED_LONG_LONG to = 0;
        uint64_t next = 1000;
        if (MHD_get_timeout(w->mhd, &to) == MHD_YES) next = to < next ? to : next;
        loop_timer_reschedule(w->mhd_timer, next);
}

static void on_mhd_fd(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) { pump(ud); }

static void on_mhd_timer(struct loop *loop, struct loop_timer *t, void *ud) { pump(ud); }

static void mhd_log(void *cls, const char *fmt, va_list ap) { log_internalv(LOG_LEVEL_DEBUG, 0, fmt, ap); }

static int http_start(struct webapp *w, const struct config *cfg) {
        if (cfg->webapp_port == 0) {
                log_info("web app disabled (webapp port 0)");
                return 0;
        }
        const char *addr = cfg->webapp_listen_address ? cfg->webapp_listen_address : "0.0.0.0";
        struct sockaddr_storage ss = {};
        unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
        struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
                in4->sin_family = AF_INET;
                in4->sin_port = htons((uint16_t)cfg->webapp_port);
        } else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t)cfg->webapp_port);
                flags |= MHD_USE_IPv6;
        } else {
                log_error("web app disabled: listen_address %s is not an IP address", addr);
                return -EINVAL;
        }
        w->mhd = MHD_start_daemon(flags, (uint16_t)cfg->webapp_port, NULL, NULL, on_request, w,
                                  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY_LIMIT,
                                  MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONN_LIMIT,
                                  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S,
                                  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, w,
                                  MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
                                  MHD_OPTION_END);
        if (!w->mhd) {
                int r = negative_errno();
                log_error_errno(r, "web app disabled: cannot listen on %s:%" PRId64 ": %m", addr, cfg->webapp_port);
                return r;
        }
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        const union MHD_DaemonInfo *pi = MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_BIND_PORT);
        w->port = pi ? pi->port : (int)cfg->webapp_port;
        int r = di ? loop_add_fd(w->l->loop, di->epoll_fd, EPOLLIN, on_mhd_fd, w, &w->io) : -EIO;
        if (r < 0) {
                MHD_stop_daemon(w->mhd);
                w->mhd = NULL;
                return log_error_errno(r, "web app disabled: cannot watch its sockets: %m");
        }
        w->mhd_timer = loop_add_timer(w->l->loop, 1000, true, on_mhd_timer, w);
        log_info("web app listening on %s:%d", addr, w->port);
        return 0;
}

int webapp_start(struct launcher *l) {
        struct webapp *w = xnew(struct webapp, 1);
        w->l = l;
        l->webapp = w;
        webapp_stats_init(w, l);
        (void)http_start(w, l->cfg);
        return 0;
}

int webapp_port(const struct webapp *w) { return w && w->mhd ? w->port : 0; }

void webapp_stop(struct launcher *l) {
        struct webapp *w = l->webapp;
        if (!w) return;
        l->webapp = NULL;
        loop_io_remove(w->io);
        if (w->mhd_timer) loop_timer_cancel(w->mhd_timer);
        if (w->mhd) MHD_stop_daemon(w->mhd);
        while (w->cache) {
                struct webapp_cached *c = w->cache;
                w->cache = c->next;
                cached_free(c);
        }
        webapp_stats_free(w);
        free(w);
}
