/* webapp.c — the HTTP side of poold's web app (protocol.md §3.2).
 *
 * DESIGN. libmicrohttpd runs WITHOUT a thread of its own: MHD_USE_EPOLL in
 * external mode gives one epoll fd, which the launcher's loop watches like
 * any other fd; when it is readable (or MHD's timeout timer fires) we call
 * MHD_run(), and the request handler runs on the loop thread, where it may
 * read the launcher's caches without a lock. What must not run there is the
 * rendering of a big listing (a fresh 10,000-node /node-list took the loop
 * 160-290 ms), so a listing is made in three steps:
 *   1. on the loop, the handler suspends the connection
 *      (MHD_suspend_connection) and joins or starts a job for its URL;
 *   2. on the loop, in slices of at most SLICE_BUDGET_NS, nodes and requests
 *      bring their pre-rendered rows up to date (webapp_rows.c: only changed
 *      records are re-rendered) and take an immutable snapshot; the small
 *      listings (images, labels, pools) are built as tables at once;
 *   3. on the web app's worker thread, the snapshot is sorted and formatted;
 *      back on the loop the answer is cached and every waiting connection is
 *      resumed with it.
 * Rendered answers are kept for 1 s, as Nodepool does (Cache-Control:
 * max-age=1), so a burst of polls costs one job per second per distinct
 * URL. Every web app step on the loop is timed into
 * poold_webapp_loop_block_seconds. Sending a large answer is MHD's
 * non-blocking business.
 *
 * Bounds: MHD's per-connection memory limit caps the request line and
 * headers (longer → 414/431 from MHD itself), connections are limited in
 * number and time (a request must arrive whole within seconds, and one whose
 * client hung up is dropped at once: webapp_conns.c), bodies are never read
 * (any method but GET/HEAD → 405), the answer cache and the jobs in flight are bounded in number (beyond
 * MAX_JOBS distinct URLs at once → 503 with Retry-After). */
#include "webapp.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "launcher.h"
#include "log.h"
#include "metrics.h"
#include "stats.h"
#include "statsd.h"
#include "table.h"
#include "webapp_internal.h"
#include "webapp_req.h"
#include "workq.h"

#define CACHE_SECONDS 1
#define CACHE_MAX_ENTRIES 64
/* Bytes of answers kept: a burst of distinct 4 MB listings must not pile up
 * (memory), nor expire all at once (freeing 60 big buffers is 15 ms). */
#define CACHE_MAX_BYTES (32u * 1024 * 1024)
#define CONN_MEMORY_LIMIT (32 * 1024)  /* request line + headers, per connection */
#define CONN_LIMIT 256
#define CONN_TIMEOUT_S 30
#define CONN_SNDBUF (128 * 1024)       /* bytes one MHD_run() may copy per connection (the kernel doubles it) */
#define MAX_JOBS 16                    /* distinct answers being made at once */
#define SLICE_BUDGET_NS (2 * 1000 * 1000) /* row rebuilding per loop turn */
#define ROWS_IDLE_MS (5 * 60 * 1000)   /* pre-rendered rows unused this long are dropped */
#define SLICE_IDLE_MS (3600 * 1000)
#define WORKER_NICE 10
#define SLOW_STEP_S 0.005              /* web app steps longer than this are logged (debug) */

/* A rendered answer, shared by every request for the same URL within a second. */
struct webapp_cached {
        char *key;
        time_t created;
        int status;
        struct MHD_Response *resp;      /* one MHD reference, ours */
        char last_modified[64];
        size_t len;
        unsigned refs;                  /* the cache list's, plus one per connection about to answer */
        struct webapp_cached *next;
};

/* A suspended connection waiting for a job (MHD's per-request context). */
struct wconn {
        struct MHD_Connection *conn;
        struct webapp_job *job;         /* NULL once the job finished */
        struct webapp_cached *answer;   /* set when resumed with an answer; NULL = 503 */
        struct wconn *next;             /* in job->waiters */
};

/* An answer being made for one cache key. */
struct webapp_job {
        struct webapp *w;
        char *key;
        bool json;
        struct webapp_rows *rows;       /* waiting for these rows to be current; NULL: t has the rows */
        struct table *t;                /* the columns (+ hidden ones); a whole table when rows is NULL */
        size_t dyn_col;
        struct webapp_snapshot *snap;
        char *body;                     /* made on the worker */
        bool submitted;
        struct wconn *waiters;
        struct webapp_job *next;        /* in w->jobs */
};

static uint64_t mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t thread_cpu_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A web app step (WHAT) that started at T0 (mono_ns) ends: how long it held the loop. */
static void loop_step_done(struct webapp *w, uint64_t t0, uint64_t cpu0, const char *what) {
        double s = (double)(mono_ns() - t0) / 1e9, cpu = (double)(thread_cpu_ns() - cpu0) / 1e9;
        if (s > w->loop_block_max) w->loop_block_max = s;
        if (cpu > w->loop_block_cpu_max) w->loop_block_cpu_max = cpu;
        /* Wall time is what other loop users wait; CPU time tells our work from preemption. */
        if (s > SLOW_STEP_S) log_debug("web app: %s held the loop %.1f ms (%.1f ms CPU)", what, s * 1000, cpu * 1000);
        stats_loop_block(w, s);
}

static void cached_unref(struct webapp_cached *c) {
        if (!c || --c->refs > 0) return;
        MHD_destroy_response(c->resp);
        free(c->key);
        free(c);
}

/* Take *PP out of the cache list and drop the list's reference. */
static void cache_drop(struct webapp *w, struct webapp_cached **pp) {
        struct webapp_cached *c = *pp;
        *pp = c->next;
        w->n_cached--;
        w->cached_bytes -= c->len;
        cached_unref(c);
}

static void cache_expire(struct webapp *w, time_t now) {
        struct webapp_cached **pp = &w->cache;
        while (*pp) {
                struct webapp_cached *c = *pp;
                if (now - c->created >= CACHE_SECONDS || now < c->created)
                        cache_drop(w, pp);
                else
                        pp = &c->next;
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

/* Cache BODY (taken over) under KEY; replaces an entry with the same key. */
static struct webapp_cached *cache_put(struct webapp *w, const char *key, int status, char *body, size_t len,
                                       const char *content_type, time_t now) {
        struct webapp_cached **pp = &w->cache;
        for (; *pp; pp = &(*pp)->next)
                if (strcmp((*pp)->key, key) == 0) {
                        cache_drop(w, pp);
                        break;
                }
        while (w->cache && (w->n_cached >= CACHE_MAX_ENTRIES || w->cached_bytes + len > CACHE_MAX_BYTES)) {
                /* Full (many distinct ?node_id= or ?fields= values): drop the oldest. New
                 * entries go to the head, so the oldest is the last. */
                for (pp = &w->cache; (*pp)->next; pp = &(*pp)->next)
                        ;
                cache_drop(w, pp);
        }
        struct webapp_cached *c = xnew(struct webapp_cached, 1);
        c->key = xstrdup(key);
        c->created = now;
        c->status = status;
        c->refs = 1;
        c->len = len;
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
        w->cached_bytes += len;
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
        if (status == MHD_HTTP_SERVICE_UNAVAILABLE) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        enum MHD_Result ret = MHD_queue_response(conn, status, r);
        MHD_destroy_response(r);
        return ret;
}

/* Answer with C, or 304 when the client has this second's answer already. */
static enum MHD_Result answer_cached(struct MHD_Connection *conn, struct webapp_cached *c) {
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

/* ---------------------------------------------------------------- jobs */

static void pump(struct webapp *w);
static void rows_slice(struct webapp *w);

static void job_unlink(struct webapp *w, struct webapp_job *job) {
        for (struct webapp_job **pp = &w->jobs; *pp; pp = &(*pp)->next)
                if (*pp == job) {
                        *pp = job->next;
                        w->n_jobs--;
                        return;
                }
}

/* The job is over: resume its connections with ANSWER (NULL → 503) and free it. */
static void job_finish(struct webapp *w, struct webapp_job *job, struct webapp_cached *answer) {
        job_unlink(w, job);
        while (job->waiters) {
                struct wconn *wc = job->waiters;
                job->waiters = wc->next;
                wc->next = NULL;
                wc->job = NULL;
                if (answer) answer->refs++;
                wc->answer = answer;
                MHD_resume_connection(wc->conn);
        }
        webapp_snapshot_unref(job->snap);
        table_free(job->t);
        free(job->body);
        free(job->key);
        free(job);
}

static void job_work(void *ud) {
        struct webapp_job *job = ud;
        /* Formatting is background work: on a busy machine the loop thread
         * should win the CPU over it (Linux nice values are per thread). */
        (void)setpriority(PRIO_PROCESS, (id_t)gettid(), WORKER_NICE);
        if (job->snap)
                job->body = webapp_snapshot_format(job->snap, job->t, job->dyn_col, job->json);
        else
                job->body = job->json ? table_format_json(job->t) : table_format_text(job->t);
}

static void job_done(void *ud, int status) {
        struct webapp_job *job = ud;
        struct webapp *w = job->w;
        uint64_t t0 = mono_ns(), cpu0 = thread_cpu_ns();
        struct webapp_cached *c = NULL;
        if (status >= 0 && job->body) {
                char *body = TAKE_PTR(job->body);
                c = cache_put(w, job->key, MHD_HTTP_OK, body, strlen(body),
                              job->json ? "application/json; charset=UTF-8" : "text/plain; charset=UTF-8", time(NULL));
        }
        job_finish(w, job, c);
        if (w->mhd && w->io) pump(w); /* let MHD send to the resumed connections now (not while stopping) */
        loop_step_done(w, t0, cpu0, "a finished listing");
}

static void job_submit(struct webapp *w, struct webapp_job *job) {
        job->submitted = true;
        int r = workq_submit(w->wq, job_work, job_done, job);
        if (r < 0) {
                log_debug("web app: cannot queue %s: %d", job->key, r);
                job_finish(w, job, NULL);
        }
}

/* The job for REQ's answer: the one in flight for the same key, or a new one
 * (NULL when MAX_JOBS are in flight). */
static struct webapp_job *job_get(struct webapp *w, const struct webapp_req *req) {
        for (struct webapp_job *j = w->jobs; j; j = j->next)
                if (strcmp(j->key, req->key) == 0) return j;
        if (w->n_jobs >= MAX_JOBS) return NULL;
        struct webapp_job *job = xnew(struct webapp_job, 1);
        job->w = w;
        job->key = xstrdup(req->key);
        job->json = req->json;
        job->dyn_col = SIZE_MAX;
        job->next = w->jobs;
        w->jobs = job;
        w->n_jobs++;

        struct launcher *l = w->l;
        const struct webapp_rows_ops *ops = NULL;
        struct webapp_rows **rcp = NULL;
        if (strcmp(req->list, "node-list") == 0) {
                ops = &webapp_node_rows_ops;
                rcp = &w->node_rows;
        } else if (strcmp(req->list, "request-list") == 0) {
                ops = &webapp_request_rows_ops;
                rcp = &w->request_rows;
        }
        if (ops) {
                if (!*rcp) *rcp = webapp_rows_new(l, ops);
                job->rows = *rcp;
                job->t = ops->new_table();
                job->dyn_col = ops->dyn_col;
                w->rows_used_ms = loop_now_ms();
        } else {
                job->t = webapp_list(l, req->list, NULL);
        }
        if (!req->json && req->fields) table_show_only(job->t, req->fields);
        return job;
}

/* One refresh slice for every rows cache a job waits on; jobs whose rows are
 * current go to the worker. Another slice is scheduled while any still waits. */
static void rows_slice(struct webapp *w) {
        struct webapp_rows *const caches[] = { w->node_rows, w->request_rows };
        bool waiting = false;
        for (size_t i = 0; i < ELEMENTSOF(caches); i++) {
                struct webapp_rows *rc = caches[i];
                bool wanted = false;
                for (struct webapp_job *j = w->jobs; j && !wanted; j = j->next)
                        wanted = j->rows == rc && !j->submitted;
                if (!rc || !wanted) continue;
                struct webapp_snapshot *snap = NULL;
                if (webapp_rows_refresh(rc, SLICE_BUDGET_NS, &snap) == 0) {
                        waiting = true;
                        continue;
                }
                for (struct webapp_job *j = w->jobs, *next; j; j = next) {
                        next = j->next; /* a failed submit frees j */
                        if (j->rows != rc || j->submitted) continue;
                        j->snap = webapp_snapshot_ref(snap);
                        job_submit(w, j);
                }
                webapp_snapshot_unref(snap);
        }
        /* The slice timer repeats hourly while idle (a one-shot would be freed under us). */
        loop_timer_reschedule(w->slice_timer, waiting ? 0 : SLICE_IDLE_MS);
}

static void on_slice_timer(struct loop *loop, struct loop_timer *t, void *ud) {
        struct webapp *w = ud;
        uint64_t t0 = mono_ns(), cpu0 = thread_cpu_ns();
        rows_slice(w);
        loop_step_done(w, t0, cpu0, "a row refresh slice");
}

/* Free the pre-rendered rows when nobody asked for them in a while (and no job uses them). */
static void rows_drop_idle(struct webapp *w) {
        if ((!w->node_rows && !w->request_rows) || w->jobs || loop_now_ms() - w->rows_used_ms < ROWS_IDLE_MS) return;
        webapp_rows_free(w->node_rows);
        webapp_rows_free(w->request_rows);
        w->node_rows = w->request_rows = NULL;
}

/* ---------------------------------------------------------------- routing */

static enum MHD_Result handle(struct webapp *w, struct MHD_Connection *conn, const char *url, void **con_cls) {
        struct launcher *l = w->l;
        time_t now = time(NULL);

        struct webapp_req req = {};
        int r = webapp_req_parse(url,
                                 MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "node_id"),
                                 MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "fields"),
                                 MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT), &req);
        if (r == -E2BIG) return answer_text(conn, MHD_HTTP_BAD_REQUEST, "Bad Request: query value too long\n", NULL);
        if (r < 0) return answer_text(conn, MHD_HTTP_NOT_FOUND, "Not Found\n", NULL);
        if (req.kind == WEBAPP_HEALTH) {
                webapp_req_done(&req);
                return answer_text(conn, MHD_HTTP_OK, "OK\n", NULL);
        }
        if (req.kind == WEBAPP_READY) {
                webapp_req_done(&req);
                bool ready = webapp_ready(l);
                return answer_text(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                                   ready ? "OK\n" : "Not ready\n", NULL);
        }

        cache_expire(w, now);
        struct webapp_cached *c = cache_get(w, req.key);
        if (!c) {
                if (req.kind == WEBAPP_PAGE) {
                        c = cache_put(w, req.key, MHD_HTTP_OK, xstrdup(webapp_page_html), strlen(webapp_page_html),
                                      "text/html; charset=UTF-8", now);
                } else if (req.kind == WEBAPP_METRICS) {
                        stats_refresh(w, l, true);
                        char *text = stats_render(w);
                        c = cache_put(w, req.key, MHD_HTTP_OK, text, strlen(text),
                                      "text/plain; version=0.0.4; charset=utf-8", now);
                } else if (req.node_id && strcmp(req.list, "node-list") == 0) {
                        /* One row: cheaper than a round trip to the worker. */
                        _cleanup_(table_freep) struct table *t = webapp_list(l, req.list, req.node_id);
                        if (!req.json && req.fields) table_show_only(t, req.fields);
                        char *body = req.json ? table_format_json(t) : table_format_text(t);
                        c = cache_put(w, req.key, MHD_HTTP_OK, body, strlen(body),
                                      req.json ? "application/json; charset=UTF-8" : "text/plain; charset=UTF-8", now);
                } else {
                        struct webapp_job *job = job_get(w, &req);
                        webapp_req_done(&req);
                        if (!job)
                                return answer_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                                                   "Service Unavailable: too many listings in progress\n", NULL);
                        struct wconn *wc = xnew(struct wconn, 1);
                        wc->conn = conn;
                        wc->job = job;
                        wc->next = job->waiters;
                        job->waiters = wc;
                        *con_cls = wc;
                        MHD_suspend_connection(conn);
                        if (!job->submitted && !job->rows)
                                job_submit(w, job);
                        else if (!job->submitted)
                                rows_slice(w); /* usually one slice: only changed rows are rebuilt */
                        return MHD_YES;
                }
        }
        webapp_req_done(&req);
        return answer_cached(conn, c);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        struct webapp *w = cls;
        struct wconn *wc = *con_cls;
        if (wc) {
                /* Resumed: the job finished (or the web app is stopping). */
                if (wc->answer) return answer_cached(conn, wc->answer);
                return answer_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "Service Unavailable\n", NULL);
        }
        /* Read-only: anything but GET/HEAD is refused before a body is read. */
        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
                return answer_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "Method Not Allowed\n", "GET, HEAD");
        if (*upload_data_size > 0) {
                /* A GET with a body: ignore the body. */
                *upload_data_size = 0;
                return MHD_YES;
        }
        uint64_t t0 = mono_ns();
        enum MHD_Result ret = handle(w, conn, url ? url : "/", con_cls);
        double ms = (double)(mono_ns() - t0) / 1e6;
        if (ms > SLOW_STEP_S * 1000) log_debug("web app: answering %s took %.1f ms", url ? url : "/", ms);
        return ret;
}

/* MHD is done with a request: drop its context (a connection closed while
 * suspended leaves its job's waiters). */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
        webapp_conn_request_done(conn);
        struct wconn *wc = *con_cls;
        if (!wc) return;
        *con_cls = NULL;
        if (wc->job)
                for (struct wconn **pp = &wc->job->waiters; *pp; pp = &(*pp)->next)
                        if (*pp == wc) {
                                *pp = wc->next;
                                break;
                        }
        cached_unref(wc->answer);
        free(wc);
}

/* ---------------------------------------------------------------- loop integration */

static void pump(struct webapp *w) {
        if (!w->mhd) return;
        unsigned open_before = w->n_conns;
        MHD_run(w->mhd);
        /* At the limit MHD takes its listening socket out of its epoll set and
         * puts it back only at the start of a run, which MHD_get_timeout() does
         * not ask for: when this run freed slots, run again to accept. */
        if (open_before >= CONN_LIMIT && w->n_conns < CONN_LIMIT) MHD_run(w->mhd);
        MHD_UNSIGNED_LONG_LONG to = 0;
        uint64_t next = 1000;
        if (MHD_get_timeout(w->mhd, &to) == MHD_YES) next = MIN(next, to);
        next = MIN(next, webapp_conns_sweep(w, CONN_LIMIT));
        loop_timer_reschedule(w->mhd_timer, next);
}

static void on_mhd_fd(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        struct webapp *w = ud;
        uint64_t t0 = mono_ns(), cpu0 = thread_cpu_ns();
        pump(w);
        loop_step_done(w, t0, cpu0, "HTTP I/O and requests");
}

static void on_mhd_timer(struct loop *loop, struct loop_timer *t, void *ud) {
        struct webapp *w = ud;
        uint64_t t0 = mono_ns(), cpu0 = thread_cpu_ns();
        pump(w);
        rows_drop_idle(w);
        loop_step_done(w, t0, cpu0, "HTTP timeouts");
}

/* A small send buffer per connection: MHD writes as much of a 4 MB answer as
 * the socket takes in one MHD_run(), and on loopback the kernel does the
 * receiver's TCP work in the sender's send() too — 10 ms and more on the
 * loop. Capped, a big answer goes out in short steps between other events. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
        struct webapp *w = cls;
        if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
                webapp_conn_closed(w, socket_context);
                return;
        }
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci) return;
        int size = CONN_SNDBUF;
        (void)setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        webapp_conn_opened(w, conn, ci->connect_fd, socket_context);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) { log_internalv(LOG_LEVEL_DEBUG, 0, fmt, ap); }

static int http_start(struct webapp *w, const struct config *cfg) {
        if (cfg->webapp_port == 0) {
                log_info("web app disabled (webapp port 0)");
                return 0;
        }
        const char *addr = cfg->webapp_listen_address ? cfg->webapp_listen_address : "0.0.0.0";
        struct sockaddr_storage ss = {};
        unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
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
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, w,
                                  MHD_OPTION_NOTIFY_CONNECTION, on_connection, w,
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
        r = workq_new(w->l->loop, 1, MAX_JOBS, &w->wq);
        if (r < 0) {
                loop_io_remove(w->io);
                w->io = NULL;
                MHD_stop_daemon(w->mhd);
                w->mhd = NULL;
                return log_error_errno(r, "web app disabled: cannot start its worker: %m");
        }
        w->mhd_timer = loop_add_timer(w->l->loop, 1000, true, on_mhd_timer, w);
        w->slice_timer = loop_add_timer(w->l->loop, SLICE_IDLE_MS, true, on_slice_timer, w);
        log_info("web app listening on %s:%d", addr, w->port);
        return 0;
}

int webapp_start(struct launcher *l) {
        struct webapp *w = xnew(struct webapp, 1);
        w->l = l;
        l->webapp = w;
        stats_init(w, l);
        (void)http_start(w, l->cfg);
        return 0;
}

int webapp_port(const struct webapp *w) { return w && w->mhd ? w->port : 0; }

void webapp_stop(struct launcher *l) {
        struct webapp *w = l->webapp;
        if (!w) return;
        /* Jobs first: the worker finishes or cancels each (job_done resumes its
         * connections), then jobs still waiting for rows are failed, so no
         * connection is left suspended when MHD stops (MHD would abort). */
        loop_io_remove(w->io);
        w->io = NULL;
        workq_free(w->wq);
        w->wq = NULL;
        while (w->jobs) job_finish(w, w->jobs, NULL);
        l->webapp = NULL;
        if (w->slice_timer) loop_timer_cancel(w->slice_timer);
        if (w->mhd_timer) loop_timer_cancel(w->mhd_timer);
        if (w->mhd) MHD_stop_daemon(w->mhd);
        while (w->cache) cache_drop(w, &w->cache);
        webapp_rows_free(w->node_rows);
        webapp_rows_free(w->request_rows);
        stats_free(w);
        free(w);
}
