/* stats.c — see stats.h: the launcher's figures, to statsd with Nodepool's names
 * (protocol.md §3.3, NP:nodepool/stats.py) and to Prometheus with poold's.
 *
 * DESIGN. Events (a launch ended, a request finished) are recorded when they
 * happen, by hook calls from launch.c and request.c. State (nodes per state,
 * requests per state, pools) is recomputed from the caches: every second for
 * statsd (sent only when a gauge changed, or once a minute so a restarted
 * statsd relearns them; Nodepool sends on node-cache change, ≥ 1 s apart),
 * and at every /metrics scrape for Prometheus. As in Nodepool, every state
 * of every known provider and label is reported, zeros included, so a
 * dashboard sees a count drop to 0. Unlike Nodepool there is no stats
 * election: every launcher reports the same cache-derived gauges, which
 * statsd gauges tolerate (last write wins with equal values). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "launcher.h"
#include "log.h"
#include "metrics.h"
#include "stats.h"
#include "statsd.h"
#include "webapp_internal.h"
#include "zk_lock.h"

#define GAUGE_RESEND_MS 60000
/* Nodepool's stats election: only its winner sends the global gauges. */
#define STATS_ELECTION_PATH NPZK_ELECTIONS "/stats"
#define STATS_ELECTION_RETRY_MS 10000

/* Launch durations (s): Nodepool's statsd_exporter mapping uses 20…900 s buckets. */
static const double LAUNCH_BUCKETS[] = { 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1800 };
/* Request submitted → fulfilled/failed (s): from a ready node reused (ms) to a cold boot (min). */
static const double REQUEST_BUCKETS[] = { 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600 };

/* A web app step on the loop (s): from a cache hit (µs) to what used to be a 10,000-node render. */
static const double LOOP_BLOCK_BUCKETS[] = { 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1 };

static void on_stats_timer(struct loop *loop, struct loop_timer *t, void *ud) {
        struct webapp *w = ud;
        stats_refresh(w, w->l, false);
}

void stats_init(struct webapp *w, struct launcher *l) {
        struct metrics *m = w->metrics = metrics_new();
        (void)metrics_declare(m, "poold_nodes", METRICS_GAUGE,
                              "Nodes by state, provider and label (a node with several labels counts once per label).",
                              NULL, 0);
        (void)metrics_declare(m, "poold_provider_max_servers", METRICS_GAUGE,
                              "Sum of max-servers of the provider's pools.", NULL, 0);
        (void)metrics_declare(m, "poold_pool_paused", METRICS_GAUGE, "1 while the pool is paused at quota.", NULL, 0);
        (void)metrics_declare(m, "poold_launch_total", METRICS_COUNTER,
                              "Finished launches by provider, pool, label, availability zone, requestor and result.",
                              NULL, 0);
        (void)metrics_declare(m, "poold_launch_seconds", METRICS_HISTOGRAM,
                              "Launch duration (node creation to ready or failure) in seconds.", LAUNCH_BUCKETS,
                              ELEMENTSOF(LAUNCH_BUCKETS));
        (void)metrics_declare(m, "poold_requests", METRICS_GAUGE, "Node requests by state.", NULL, 0);
        (void)metrics_declare(m, "poold_request_queue_depth", METRICS_GAUGE,
                              "Node requests waiting for a launcher (state requested).", NULL, 0);
        (void)metrics_declare(m, "poold_requests_done_total", METRICS_COUNTER,
                              "Node requests this launcher fulfilled or failed.", NULL, 0);
        (void)metrics_declare(m, "poold_request_fulfil_seconds", METRICS_HISTOGRAM,
                              "Time from a request's creation to its fulfilment or failure by this launcher, seconds.",
                              REQUEST_BUCKETS, ELEMENTSOF(REQUEST_BUCKETS));
        (void)metrics_declare(m, "poold_ready", METRICS_GAUGE, "1 when /ready answers 200.", NULL, 0);
        (void)metrics_declare(m, "poold_image_build_failures", METRICS_GAUGE,
                              "Failed builds in a row of the image's newest build (0 when it did not fail).", NULL, 0);
        (void)metrics_declare(m, "poold_image_build_retry_timestamp_seconds", METRICS_GAUGE,
                              "When a builder tries a failing image again (Unix time; 0 when not failing).",
                              NULL, 0);
        (void)metrics_declare(m, "poold_image_upload_verify", METRICS_GAUGE,
                              "Uploads poold-builder checks by booting them (diskimages[].poold.verify), by state of "
                              "the check: checking (still uploading), passed (ready), failed (kept, never launched).",
                              NULL, 0);
        (void)metrics_declare(m, "poold_zk_operations_total", METRICS_COUNTER,
                              "ZooKeeper requests sent by this launcher's session, by operation.", NULL, 0);
        (void)metrics_declare(m, "poold_zk_watch_events_total", METRICS_COUNTER,
                              "ZooKeeper watch events received by this launcher's session.", NULL, 0);
        (void)metrics_declare(m, "poold_zk_multi_operations_total", METRICS_COUNTER,
                              "Operations carried by this launcher's multi requests (op=\"multi\" counts the "
                              "requests).", NULL, 0);
        (void)metrics_declare(m, "poold_webapp_loop_block_seconds", METRICS_HISTOGRAM,
                              "How long each web app step (a request, a row refresh slice, a finished answer) held "
                              "the launcher's event loop, seconds.",
                              LOOP_BLOCK_BUCKETS, ELEMENTSOF(LOOP_BLOCK_BUCKETS));
        (void)metrics_declare(m, "poold_webapp_loop_block_max_seconds", METRICS_GAUGE,
                              "The longest web app step on the launcher's event loop since start, seconds.", NULL, 0);
        (void)metrics_declare(m, "poold_webapp_loop_block_cpu_max_seconds", METRICS_GAUGE,
                              "The most CPU time one web app step used on the launcher's event loop since start "
                              "(the wall-clock maximum also counts time the thread was preempted), seconds.",
                              NULL, 0);
        (void)metrics_declare(m, "poold_webapp_rows_built", METRICS_GAUGE,
                              "Listing rows rendered since the row cache was created, by listing (a row is "
                              "re-rendered only when its record changed).",
                              NULL, 0);

        int r = statsd_new_from_env(&w->statsd);
        if (r < 0)
                log_error_errno(r, "statsd disabled: cannot use STATSD_HOST=%s STATSD_PORT=%s: %m",
                                getenv("STATSD_HOST") ?: "", getenv("STATSD_PORT") ?: "");
        else if (w->statsd)
                log_info("sending statsd metrics to %s:%s", getenv("STATSD_HOST") ?: "localhost",
                         getenv("STATSD_PORT") ?: STATSD_DEFAULT_PORT);
        w->stats_timer = loop_add_timer(l->loop, 1000, true, on_stats_timer, w);
}

static void election_leave(struct webapp *w) {
        if (!w->stats_election) return;
        zk_lock_release_async(w->stats_election);
        zk_lock_free(w->stats_election);
        w->stats_election = NULL;
}

/* True while this launcher is the stats election's winner (Nodepool's kazoo
 * Election on STATS_ELECTION_PATH, the same lock recipe): several launchers
 * on one ZooKeeper send each global gauge once, not once each. A loser tries
 * again every 10 s, so a dead winner's place is taken within its session
 * timeout plus that. */
static bool election_won(struct webapp *w, struct launcher *l) {
        if (w->stats_election && zk_lock_is_held(w->stats_election)) return true;
        if (w->stats_election) {
                log_info("stats election: lost (ZooKeeper session); gauges stop until won again");
                zk_lock_free(w->stats_election);
                w->stats_election = NULL;
        }
        uint64_t now = loop_now_ms();
        if (now < w->stats_election_next_ms || !l->zk || !zk_is_connected(l->zk)) return false;
        w->stats_election_next_ms = now + STATS_ELECTION_RETRY_MS;
        _cleanup_free_ char *id = owners_lock_id(l);
        struct zk_lock *lock = NULL;
        int r = zk_lock_try_new(l->zk, STATS_ELECTION_PATH, id, &lock);
        if (r != 1) {
                if (r < 0) log_debug_errno(r, "stats election: %m");
                return false;
        }
        w->stats_election = lock;
        log_info("stats election: won, this launcher sends the global gauges");
        return true;
}

void stats_free(struct webapp *w) {
        election_leave(w);
        if (w->stats_timer) loop_timer_cancel(w->stats_timer);
        w->stats_timer = NULL;
        statsd_free(w->statsd);
        w->statsd = NULL;
        metrics_free(w->metrics);
        w->metrics = NULL;
        free(w->last_gauges);
        w->last_gauges = NULL;
}

char *stats_render(struct webapp *w) { return metrics_render(w->metrics); }

void stats_loop_block(struct webapp *w, double seconds) {
        (void)metrics_observe(w->metrics, "poold_webapp_loop_block_seconds", NULL, seconds);
}

/* ---------------------------------------------------------------- events */

/* Nodepool's statsd result key: "ready" or an exception's statsd_key. */
static const char *launch_result(int result) {
        switch (result) {
        case 0: return "ready";
        case -EDQUOT: return "error.quota";
        case -ETIMEDOUT: return "error.timeout";
        default: return "error.unknown";
        }
}

void stats_launch_done(struct launcher *l, const struct pool *p, const struct node *n, const char *request_id,
                       int result, uint64_t duration_ms) {
        struct webapp *w = l->webapp;
        if (!w) return;
        const char *res = launch_result(result);
        const struct creq *cr = request_id ? smap_get(&l->requests, request_id) : NULL;
        const char *requestor = cr && cr->req->requestor ? cr->req->requestor : NULL;
        const char *label = n->type && n->type[0] ? n->type[0] : "";
        const char *az = n->az ? n->az : "";

        const char *const lt[] = { "provider", p->provider_name, "pool", p->name, "label", label, "az", az,
                                   "requestor", requestor ? requestor : "", "result", res, NULL };
        (void)metrics_add(w->metrics, "poold_launch_total", lt, 1);
        const char *const ls[] = { "provider", p->provider_name, "label", label, "result", res, NULL };
        (void)metrics_observe(w->metrics, "poold_launch_seconds", ls, (double)duration_ms / 1000.0);

        if (!w->statsd) return;
        /* NP:nodepool/stats.py recordLaunchStats: timer + counter per key. */
        char *keys[4] = {};
        size_t nk = 0;
        keys[nk++] = xasprintf("nodepool.launch.provider.%s.%s", p->provider_name, res);
        keys[nk++] = xasprintf("nodepool.launch.%s", res);
        if (n->az && *n->az) keys[nk++] = xasprintf("nodepool.launch.provider.%s.%s.%s", p->provider_name, n->az, res);
        if (requestor) {
                _cleanup_free_ char *rq = statsd_key_escape(requestor);
                keys[nk++] = xasprintf("nodepool.launch.requestor.%s.%s", rq, res);
        }
        for (size_t i = 0; i < nk; i++) {
                statsd_timing(w->statsd, keys[i], (double)duration_ms);
                statsd_incr(w->statsd, keys[i], 1);
                free(keys[i]);
        }
        statsd_flush(w->statsd);
}

void stats_request_done(struct launcher *l, enum node_request_state rq_state, double created_time) {
        struct webapp *w = l->webapp;
        if (!w) return;
        const char *state = node_request_state_to_string(rq_state);
        const char *const lb[] = { "result", state ? state : "unknown", NULL };
        (void)metrics_add(w->metrics, "poold_requests_done_total", lb, 1);
        if (!isnan(created_time) && created_time > 0) {
                double dt = model_now() - created_time;
                if (dt >= 0) (void)metrics_observe(w->metrics, "poold_request_fulfil_seconds", lb, dt);
        }
}

void stats_leaked(struct launcher *l, const char *provider, const char *what, size_t n) {
        struct webapp *w = l->webapp;
        if (!w || !w->statsd || n == 0) return;
        _cleanup_free_ char *key = xasprintf("nodepool.provider.%s.leaked.%s", provider, what);
        statsd_incr(w->statsd, key, (long long)n);
        statsd_flush(w->statsd);
}

/* ---------------------------------------------------------------- state */

/* name → count, for the statsd gauges (values are counts cast to pointers). */
static void bump(struct smap *m, const char *key, long long by) {
        long long v = (long long)(intptr_t)smap_get(m, key);
        smap_put(m, key, (void *)(intptr_t)(v + by));
}

static void bumpf(struct smap *m, long long by, const char *fmt, ...) _printf_(3, 4);
static void bumpf(struct smap *m, long long by, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *key = NULL;
        if (vasprintf(&key, fmt, ap) < 0) abort();
        va_end(ap);
        bump(m, key, by);
        free(key);
}

/* Nodes are first counted per (state, provider, labels) combination — one
 * key per node, built on the stack — and the gauges derived from the few
 * combinations: 10,000 nodes cost 10,000 hash updates, not 50,000 vasprintf. */
#define COMBO_SEP '\x1f'
#define LABEL_SEP '\x1e'

static void count_node(const char *id, void *value, void *ud) {
        struct smap *combos = ud;
        const struct node *n = ((const struct cnode *)value)->node;
        const char *state = node_state_to_string(n->state);
        if (!state) return;
        char buf[512];
        size_t len = (size_t)snprintf(buf, sizeof buf, "%s%c%s%c", state, COMBO_SEP, n->provider ? n->provider : "",
                                      COMBO_SEP);
        for (size_t i = 0; n->type[i] && len < sizeof buf; i++)
                len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%c", n->type[i], LABEL_SEP);
        if (len < sizeof buf) {
                bump(combos, buf, 1);
                return;
        }
        /* Longer than the stack buffer (absurd label names): the slow way. */
        _cleanup_free_ char *k = xasprintf("%s%c%s%c", state, COMBO_SEP, n->provider ? n->provider : "", COMBO_SEP);
        for (size_t i = 0; n->type[i]; i++) {
                char *k2 = xasprintf("%s%s%c", k, n->type[i], LABEL_SEP);
                free(k);
                k = k2;
        }
        bump(combos, k, 1);
}

struct node_walk {
        struct smap *gauges;    /* statsd names */
        struct smap *prom;      /* "state\x1fprovider\x1flabel" → count */
};

/* One combination of COUNT nodes → the statsd and Prometheus counts. */
static void expand_combo(const char *key, void *value, void *ud) {
        struct node_walk *nw = ud;
        long long count = (long long)(intptr_t)value;
        _cleanup_free_ char *k = xstrdup(key);
        char *prov = strchr(k, COMBO_SEP);
        char *labels = prov ? strchr(prov + 1, COMBO_SEP) : NULL;
        if (!labels) return;
        *prov++ = 0;
        *labels++ = 0;
        const char *state = k;
        bumpf(nw->gauges, count, "nodepool.nodes.%s", state);
        bumpf(nw->gauges, count, "nodepool.provider.%s.nodes.%s", prov, state);
        for (char *label = labels, *end; *label; label = end + 1) {
                end = strchr(label, LABEL_SEP);
                if (!end) break;
                *end = 0;
                bumpf(nw->gauges, count, "nodepool.label.%s.nodes.%s", label, state);
                bumpf(nw->prom, count, "%s\x1f%s\x1f%s", state, prov, label);
        }
}

struct req_walk {
        struct launcher *l;
        long long by_state[_NODE_REQUEST_STATE_MAX];
        struct smap *gauges;
};

static void count_request(const char *id, void *value, void *ud) {
        struct req_walk *rw = ud;
        const struct node_request *rq = ((const struct creq *)value)->req;
        if (rq->state >= 0 && rq->state < _NODE_REQUEST_STATE_MAX) rw->by_state[rq->state]++;
        if (rq->state != NODE_REQUEST_STATE_REQUESTED) return;
        /* nodepool.provider.<p>.pool.<pool>.addressable_requests: waiting requests this pool could take. */
        for (size_t i = 0; i < rw->l->n_pools; i++) {
                const struct pool *p = rw->l->pools[i];
                if (p->retired || !p->cpool || model_strv_contains(rq->declined_by, p->id)) continue;
                bool all = true;
                for (size_t k = 0; all && rq->node_types[k]; k++) all = pool_find_label(p, rq->node_types[k]) != NULL;
                if (all) bumpf(rw->gauges, 1, "nodepool.provider.%s.pool.%s.addressable_requests", p->provider_name, p->name);
        }
}

static void set_node_gauge(const char *key, void *value, void *ud) {
        char *k = xstrdup(key);
        char *prov = strchr(k, '\x1f');
        char *label = prov ? strchr(prov + 1, '\x1f') : NULL;
        if (label) {
                *prov++ = 0;
                *label++ = 0;
                const char *const lb[] = { "state", k, "provider", prov, "label", label, NULL };
                (void)metrics_set(ud, "poold_nodes", lb, (double)(intptr_t)value);
        }
        free(k);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static void send_gauges(struct webapp *w, struct smap *gauges) {
        size_t n = 0;
        const char **keys = smap_keys(gauges, &n);
        if (n > 1) qsort(keys, n, sizeof *keys, cmp_str);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f) abort();
        for (size_t i = 0; i < n; i++) fprintf(f, "%s=%lld\n", keys[i], (long long)(intptr_t)smap_get(gauges, keys[i]));
        if (fclose(f) != 0) abort();
        uint64_t now = loop_now_ms();
        bool changed = !w->last_gauges || strcmp(w->last_gauges, text) != 0;
        if (changed || now - w->last_gauges_ms >= GAUGE_RESEND_MS) {
                for (size_t i = 0; i < n; i++)
                        statsd_gauge(w->statsd, keys[i], (long long)(intptr_t)smap_get(gauges, keys[i]));
                statsd_flush(w->statsd);
                free(w->last_gauges);
                w->last_gauges = TAKE_PTR(text);
                w->last_gauges_ms = now;
        }
        free(text);
        free(keys);
}

/* The newest build of each image (by state_time), for the build back-off gauges. */
struct newest_builds {
        struct smap by_image;   /* image -> const struct image_build* (borrowed) */
};

static void newest_build_fn(const char *path, void *value, void *ud) {
        struct newest_builds *nb = ud;
        const struct image_build *b = value;
        struct npzk_path p;
        if (npzk_path_parse(path, &p) < 0) return;
        const struct image_build *cur = smap_get(&nb->by_image, p.image);
        if (!cur || b->state_time > cur->state_time) smap_put(&nb->by_image, p.image, (void *)b);
        npzk_path_done(&p);
}

static void set_build_gauges(const char *image, void *value, void *ud) {
        struct metrics *m = ud;
        const struct image_build *b = value;
        bool failing = b->state == IMAGE_BUILD_STATE_FAILED && b->failures > 0;
        const char *const lb[] = { "image", image, NULL };
        (void)metrics_set(m, "poold_image_build_failures", lb, failing ? (double)b->failures : 0);
        if (failing && b->retry_time != MODEL_TIME_NONE)
                (void)metrics_set(m, "poold_image_build_retry_timestamp_seconds", lb, b->retry_time);
}

/* Uploads by "<image>\n<provider>\n<verify state>" for poold_image_upload_verify. */
static void count_verify(const char *path, void *value, void *ud) {
        const struct image_upload *u = value;
        if (!u->verify_state || !u->image_name || !u->provider_name) return;
        _cleanup_free_ char *key = xasprintf("%s\n%s\n%s", u->image_name, u->provider_name, u->verify_state);
        smap_put(ud, key, (void *)((intptr_t)smap_get(ud, key) + 1));
}

static void set_verify_gauge(const char *key, void *value, void *ud) {
        _cleanup_free_ char *k = xstrdup(key);
        char *prov = strchr(k, '\n'), *state = prov ? strchr(prov + 1, '\n') : NULL;
        if (!state) return;
        *prov++ = '\0';
        *state++ = '\0';
        const char *const lb[] = { "image", k, "provider", prov, "state", state, NULL };
        (void)metrics_set(ud, "poold_image_upload_verify", lb, (double)(intptr_t)value);
}

void stats_refresh(struct webapp *w, struct launcher *l, bool for_scrape) {
        if (!for_scrape && !w->statsd) return; /* Prometheus is refreshed at scrape time */
        struct metrics *m = w->metrics;
        struct smap gauges = {};

        /* Known providers and labels start at zero for every state. */
        (void)metrics_zero(m, "poold_nodes");
        (void)metrics_zero(m, "poold_pool_paused");
        for (size_t i = 0; i < l->n_pools; i++) {
                const struct pool *p = l->pools[i];
                if (p->retired || !p->cpool) continue;
                for (int s = 0; s < _NODE_STATE_MAX; s++) {
                        const char *st = node_state_to_string(s);
                        bumpf(&gauges, 0, "nodepool.nodes.%s", st);
                        bumpf(&gauges, 0, "nodepool.provider.%s.nodes.%s", p->provider_name, st);
                        for (size_t k = 0; k < p->cpool->n_labels; k++) {
                                bumpf(&gauges, 0, "nodepool.label.%s.nodes.%s", p->cpool->labels[k].name, st);
                                const char *const lb[] = { "state", st, "provider", p->provider_name, "label",
                                                           p->cpool->labels[k].name, NULL };
                                (void)metrics_set(m, "poold_nodes", lb, 0);
                        }
                }
                const char *const pl[] = { "provider", p->provider_name, "pool", p->name, NULL };
                (void)metrics_set(m, "poold_pool_paused", pl, p->paused ? 1 : 0);
        }
        /* One registry update per (state, provider, label), not per node: 10,000 nodes stay cheap. */
        struct smap prom = {}, combos = {};
        struct node_walk nw = { .gauges = &gauges, .prom = &prom };
        smap_foreach(&l->nodes, count_node, &combos);
        smap_foreach(&combos, expand_combo, &nw);
        smap_foreach(&prom, set_node_gauge, m);
        smap_clear(&combos, NULL);
        smap_clear(&prom, NULL);

        /* nodepool.provider.<p>.max_servers: sum of the pools' max-servers (unlimited ones left out). */
        for (size_t i = 0; l->cfg && i < l->cfg->n_providers; i++) {
                const struct config_provider *cp = &l->cfg->providers[i];
                long long sum = 0;
                for (size_t k = 0; k < cp->n_pools; k++)
                        if (cp->pools[k].max_servers > 0) sum += cp->pools[k].max_servers;
                bumpf(&gauges, sum, "nodepool.provider.%s.max_servers", cp->name);
                const char *const lb[] = { "provider", cp->name, NULL };
                (void)metrics_set(m, "poold_provider_max_servers", lb, (double)sum);
        }

        struct req_walk rw = { .l = l, .gauges = &gauges };
        for (size_t i = 0; i < l->n_pools; i++)
                if (!l->pools[i]->retired && l->pools[i]->cpool)
                        bumpf(&gauges, 0, "nodepool.provider.%s.pool.%s.addressable_requests",
                              l->pools[i]->provider_name, l->pools[i]->name);
        smap_foreach(&l->requests, count_request, &rw);
        for (int s = 0; s < _NODE_REQUEST_STATE_MAX; s++) {
                const char *const lb[] = { "state", node_request_state_to_string(s), NULL };
                (void)metrics_set(m, "poold_requests", lb, (double)rw.by_state[s]);
        }
        (void)metrics_set(m, "poold_request_queue_depth", NULL, (double)rw.by_state[NODE_REQUEST_STATE_REQUESTED]);
        (void)metrics_set(m, "poold_ready", NULL, webapp_ready(l) ? 1 : 0);
        /* A diskimage whose builds keep failing backs off (builder); say so here too. */
        (void)metrics_zero(m, "poold_image_build_retry_timestamp_seconds");
        struct newest_builds nb = {};
        smap_foreach(&l->builds, newest_build_fn, &nb);
        smap_foreach(&nb.by_image, set_build_gauges, m);
        smap_clear(&nb.by_image, NULL);
        /* Uploads the builder checks by booting them: how many are being checked, passed, failed. */
        (void)metrics_zero(m, "poold_image_upload_verify");
        struct smap verify = {};
        smap_foreach(&l->uploads, count_verify, &verify);
        smap_foreach(&verify, set_verify_gauge, m);
        smap_clear(&verify, NULL);
        if (l->zk) {
                struct zk_counts zc;
                zk_get_counts(l->zk, &zc);
                const struct { const char *op; uint64_t n; } ops[] = {
                        { "get", zc.get }, { "exists", zc.exists }, { "children", zc.children },
                        { "set", zc.set }, { "create", zc.create }, { "delete", zc.del },
                        { "multi", zc.multi },
                };
                for (size_t i = 0; i < ELEMENTSOF(ops); i++) {
                        const char *const lb[] = { "op", ops[i].op, NULL };
                        (void)metrics_set_counter(m, "poold_zk_operations_total", lb, (double)ops[i].n);
                }
                (void)metrics_set_counter(m, "poold_zk_watch_events_total", NULL, (double)zc.watch_events);
                (void)metrics_set_counter(m, "poold_zk_multi_operations_total", NULL, (double)zc.multi_ops);
        }
        (void)metrics_set(m, "poold_webapp_loop_block_max_seconds", NULL, w->loop_block_max);
        (void)metrics_set(m, "poold_webapp_loop_block_cpu_max_seconds", NULL, w->loop_block_cpu_max);
        const char *const ln[] = { "list", "node-list", NULL }, *const lr[] = { "list", "request-list", NULL };
        (void)metrics_set(m, "poold_webapp_rows_built", ln, (double)webapp_rows_built(w->node_rows));
        (void)metrics_set(m, "poold_webapp_rows_built", lr, (double)webapp_rows_built(w->request_rows));

        /* nodepool.tenant_limits.<tenant>.<limit>: the configured limits (unlimited ones left out). */
        for (size_t i = 0; l->cfg && i < l->cfg->n_tenant_limits; i++) {
                const struct config_tenant_limit *t = &l->cfg->tenant_limits[i];
                const struct { const char *name; int64_t v; } lim[] = {
                        { "max-servers", t->max_servers }, { "max-cores", t->max_cores }, { "max-ram", t->max_ram },
                        { "max-volumes", t->max_volumes }, { "max-volume-gb", t->max_volume_gb },
                };
                for (size_t k = 0; k < ELEMENTSOF(lim); k++)
                        if (lim[k].v != CONFIG_UNLIMITED)
                                bumpf(&gauges, lim[k].v, "nodepool.tenant_limits.%s.%s", t->tenant_name, lim[k].name);
        }
        if (w->statsd && election_won(w, l)) send_gauges(w, &gauges);
        if (w->statsd && l->zk) {
                /* Per launcher, every launcher (Nodepool: nodepool.launcher.<host>.zk.*): requests
                 * sent and not answered yet, ZooKeeper's view of our backlog. */
                _cleanup_free_ char *key = xasprintf("nodepool.launcher.%s.zk.client.connection_queue", l->hostname);
                statsd_gauge(w->statsd, key, (long long)zk_pending(l->zk));
                statsd_flush(w->statsd);
        }
        smap_clear(&gauges, NULL);
}
