/* bw_main.c — when the builder's passes run.
 *
 * DESIGN. /nodepool/images is mirrored by a watched cache (depth 7, lock
 * contenders counted), so a request-build, a pause or a finished build on
 * another builder is seen within milliseconds. Any change marks the state
 * dirty and one scheduling pass (builds, then uploads) runs before the loop
 * sleeps; a timer runs it anyway every interval (rebuild-age, back-offs).
 * The cleanup pass (retention, deletions, leaked images) runs on its own,
 * slower timer. Each pass decodes the cache into a snapshot; anything it
 * changes is done under the matching kazoo lock after re-reading the record
 * from ZooKeeper itself, because the cache may lag our own writes. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "bw.h"
#include "log.h"

/* ---------------------------------------------------------------- back-offs */

void bw_backoff_set(struct smap *m, const char *key, uint64_t until_ms) {
        uint64_t *until = smap_get(m, key);
        if (!until) {
                until = xnew(uint64_t, 1);
                smap_put(m, key, until);
        }
        *until = until_ms;
}

bool bw_backoff_active(struct smap *m, const char *key) {
        uint64_t *until = smap_get(m, key);
        if (!until) return false;
        if (*until > loop_now_ms()) return true;
        free(smap_remove(m, key));
        return false;
}

/* ---------------------------------------------------------------- passes */

static bool ready_for_pass(struct bw *w) {
        return w->started && !atomic_load(&w->stopping) && zk_is_connected(w->b->zk) &&
               zk_cache_is_synced(w->cache);
}

/* The build-request gauges from snapshot S: on cleanup passes (FORCE), as
 * Nodepool's cleanup worker sends them, but at most once a minute (its
 * interval: a shorter cleanup interval would flood statsd with unchanged
 * gauges), and on any pass that sees them change, so a request shows within
 * milliseconds. */
#define REQUEST_GAUGES_REPEAT_MS 60000
static void send_request_gauges(struct bw *w, struct bw_snap *s, bool force) {
        if (!w->statsd) return;
        _cleanup_free_ const char **names = xnew(const char *, s->n + 1);
        _cleanup_free_ bool *req = xnew(bool, s->n + 1);
        size_t len = 1;
        for (size_t i = 0; i < s->n; i++) len += strlen(s->images[i].name) + 3;
        _cleanup_free_ char *sig = xnew(char, len);
        char *p = sig;
        for (size_t i = 0; i < s->n; i++) {
                names[i] = s->images[i].name;
                req[i] = s->images[i].requested;
                p += sprintf(p, "%s=%d\n", names[i], req[i]);
        }
        uint64_t now = loop_now_ms();
        bool same = w->requests_sent && strcmp(w->requests_sent, sig) == 0;
        if (same && (!force || now - w->requests_sent_ms < REQUEST_GAUGES_REPEAT_MS)) return;
        statsd_builder_build_requests(w->statsd, names, req, s->n);
        free(w->requests_sent);
        w->requests_sent = TAKE_PTR(sig);
        w->requests_sent_ms = now;
}

static void schedule_pass(struct bw *w) {
        if (!ready_for_pass(w)) return;
        w->dirty = false;
        struct bw_snap s = {};
        bw_snap_load(w, &s);
        send_request_gauges(w, &s, false);
        bw_build_schedule(w, &s);
        bw_upload_schedule(w, &s);
        bw_snap_done(&s);
}

void bw_wake(struct bw *w) {
        w->dirty = true;
}

static void on_prepare(struct loop *loop, void *ud) {
        struct bw *w = ud;
        if (w->dirty) schedule_pass(w);
}

static void on_tick(struct loop *loop, struct loop_timer *t, void *ud) {
        schedule_pass(ud);
}

static void on_cleanup_timer(struct loop *loop, struct loop_timer *t, void *ud) {
        struct bw *w = ud;
        if (!ready_for_pass(w)) return;
        struct bw_snap s = {};
        bw_snap_load(w, &s);
        send_request_gauges(w, &s, true);
        bw_cleanup_pass(w, &s);
        bw_snap_done(&s);
        bw_cleanup_empty_records(w);
        bw_cleanup_leaks(w);
        bw_verify_leftovers(w);
        bw_wake(w);
}

static void on_cache(struct zk_cache *c, enum zk_cache_event ev, const struct zk_cache_node *node, void *ud) {
        bw_wake(ud);
}

static void on_synced(struct zk_cache *c, void *ud) {
        struct bw *w = ud;
        /* Verify servers a previous run left behind go at start, not a cleanup interval later. */
        if (!atomic_load(&w->stopping)) bw_verify_leftovers(w);
        bw_wake(w);
}

/* ---------------------------------------------------------------- life */

static uint64_t env_ms(const char *name, uint64_t def) {
        const char *s = getenv(name);
        if (!s || !*s) return def;
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (*end || v == 0 || v > 24ULL * 3600 * 1000) {
                log_warning("%s=%s is not a duration in ms; using %llu", name, s, (unsigned long long)def);
                return def;
        }
        return v;
}

int bw_new(struct builder *b, struct bw **ret) {
        _cleanup_free_ struct bw *w = xnew(struct bw, 1);
        int r;
        w->b = b;
        atomic_init(&w->stopping, false);
        w->interval_ms = env_ms("POOLD_BUILDER_INTERVAL_MS", 10000);
        w->cleanup_ms = env_ms("POOLD_CLEANUP_INTERVAL_MS", 60000);
        w->build_retry_ms = env_ms("POOLD_BUILD_RETRY_MS", 60000);
        w->build_retry_max_ms = env_ms("POOLD_BUILD_RETRY_MAX_MS", 3600000);
        w->upload_retry_ms = env_ms("POOLD_UPLOAD_RETRY_MS", 5000);

        /* The built-in disk-image-create is this very program. */
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n < 0) return log_error_errno(errno, "cannot resolve /proc/self/exe: %m");
        exe[n] = '\0';
        w->self_exe = xstrdup(exe);
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        w->pkg_dir = xstrdup(exe);

        r = workq_new(b->loop, (unsigned)b->upload_workers, (size_t)b->upload_workers * 4 + 16, &w->upload_wq);
        if (r >= 0) r = workq_new(b->loop, 1, 4096, &w->misc_wq);
        if (r < 0) {
                workq_free(w->upload_wq);
                free(w->self_exe);
                free(w->pkg_dir);
                return log_error_errno(r, "worker threads: %m");
        }
        r = zk_cache_new(b->zk, NPZK_IMAGES, 7, ZK_CACHE_TRACK_LOCKS, on_cache, w, &w->cache);
        if (r < 0) {
                workq_free(w->upload_wq);
                workq_free(w->misc_wq);
                free(w->self_exe);
                free(w->pkg_dir);
                return log_error_errno(r, "image cache: %m");
        }
        zk_cache_set_synced_cb(w->cache, on_synced, w);
        r = statsd_new_from_env(&w->statsd);
        if (r < 0) log_warning_errno(r, "statsd disabled: STATSD_HOST/STATSD_PORT unusable: %m");
        bw_prov_sync(w);
        *ret = TAKE_PTR(w);
        return 0;
}

void bw_start(struct bw *w) {
        if (w->started) return;
        /* /nodepool/images may not exist on a fresh cluster; the cache needs its root. */
        int r = zk_ensure_path(w->b->zk, NPZK_IMAGES);
        if (r < 0) log_warning_errno(r, "cannot create %s: %m", NPZK_IMAGES);
        r = zk_cache_start(w->cache);
        if (r < 0) {
                log_error_errno(r, "cannot watch %s: %m", NPZK_IMAGES);
                return;
        }
        w->started = true;
        w->prepare = loop_add_prepare(w->b->loop, on_prepare, w);
        w->tick = loop_add_timer(w->b->loop, w->interval_ms, true, on_tick, w);
        w->cleanup_timer = loop_add_timer(w->b->loop, w->cleanup_ms, true, on_cleanup_timer, w);
        log_info("watching %s: builds every %llu ms at most, cleanup every %llu ms", NPZK_IMAGES,
                 (unsigned long long)w->interval_ms, (unsigned long long)w->cleanup_ms);
}

void bw_config_changed(struct bw *w) {
        bw_prov_sync(w);
        bw_wake(w);
}

void bw_free(struct bw *w) {
        if (!w) return;
        atomic_store(&w->stopping, true);
        loop_prepare_remove(w->prepare);
        loop_timer_cancel(w->tick);
        loop_timer_cancel(w->cleanup_timer);
        bw_build_stop_all(w);
        bw_upload_stop_all(w);
        bw_verify_stop_all(w);
        /* Waits for running uploads; their done callbacks record the result. */
        workq_free(w->upload_wq);
        workq_free(w->misc_wq);
        zk_cache_free(w->cache);
        bw_prov_free_all(w);
        smap_clear(&w->bad, NULL);
        smap_clear(&w->build_backoff, free);
        smap_clear(&w->upload_backoff, free);
        smap_clear(&w->deleting, NULL);
        smap_clear(&w->leak_seen, NULL);
        statsd_free(w->statsd);
        free(w->requests_sent);
        free(w->self_exe);
        free(w->pkg_dir);
        free(w);
}
