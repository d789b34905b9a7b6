/* bw_snap.c — /nodepool/images as a tree of decoded records.
 *
 * DESIGN. Built from the watched cache for every pass (a few hundred records
 * at most: decoding them is cheaper than keeping a second mirror in sync),
 * by nodepool_zk.h's tree decoder, the one every image reader shares.
 * A record that does not decode is kept with a NULL pointer and logged once,
 * so passes neither use nor delete data they do not understand. */
#include <string.h>

#include "alloc.h"
#include "bw.h"
#include "log.h"

struct npzk_image *bw_snap_image(struct bw_snap *s, const char *name) { return npzk_images_find(s, name); }

struct npzk_provider *bw_snap_prov(struct npzk_build *b, const char *provider) {
        return npzk_build_provider(b, provider);
}

static void malformed(struct bw *w, const char *path, const char *why) {
        if (smap_contains(&w->bad, path)) return;
        smap_put(&w->bad, path, NULL);
        log_warning("malformed record %s (%s): skipped and kept", path, why);
}

struct load_ctx {
        struct bw *w;
        struct bw_snap *s;
};

static void on_node(const struct zk_cache_node *node, void *ud) {
        struct load_ctx *c = ud;
        struct bw *w = c->w;
        struct npzk_znode zn = { .path = node->path, .data = node->data, .len = node->len,
                                 .ctime_ms = node->ctime, .lock_contenders = node->lock_contenders };
        struct model_error err = {};
        int r = npzk_images_add(c->s, &zn, &err);
        if (r == -EBADMSG)
                malformed(w, node->path, err.msg);
        else if (r == -EINVAL)
                malformed(w, node->path, "not in Nodepool's schema");
        else if (r == NPZK_BUILD || r == NPZK_UPLOAD)
                smap_remove(&w->bad, node->path);
}

void bw_snap_load(struct bw *w, struct bw_snap *ret) {
        struct bw_snap s = {};
        struct load_ctx c = { .w = w, .s = &s };
        zk_cache_foreach(w->cache, on_node, &c);
        *ret = s;
}

void bw_snap_done(struct bw_snap *s) { npzk_images_done(s); }

struct npzk_build *bw_snap_newest_ready(struct npzk_image *img) {
        struct npzk_build *best = NULL;
        for (size_t i = 0; img && i < img->n; i++) {
                struct npzk_build *b = &img->builds[i];
                if (!b->b || b->b->state != IMAGE_BUILD_STATE_READY) continue;
                if (!best || b->b->state_time > best->b->state_time) best = b;
        }
        return best;
}

struct npzk_build *bw_snap_newest_finished(struct npzk_image *img) {
        struct npzk_build *best = NULL;
        for (size_t i = 0; img && i < img->n; i++) {
                struct npzk_build *b = &img->builds[i];
                if (!b->b || (b->b->state != IMAGE_BUILD_STATE_READY && b->b->state != IMAGE_BUILD_STATE_FAILED))
                        continue;
                if (!best || b->b->state_time > best->b->state_time) best = b;
        }
        return best;
}

int bw_snap_read_newest(struct bw *w, const char *image, struct bw_newest *ret) {
        _cleanup_free_ char *dir = npzk_builds_path(image);
        char **kids = NULL;
        size_t n = 0;
        int r = zk_get_children(w->b->zk, dir, &kids, &n);
        struct bw_newest nw = { .failures = -1, .retry_time = MODEL_TIME_NONE };
        if (r == -ENOENT) {
                *ret = nw;
                return 0;
        }
        if (r < 0) return r;
        bool have_finished = false;
        double finished_time = 0;
        for (size_t i = 0; i < n; i++) {
                if (strcmp(kids[i], NPZK_LOCK) == 0) continue;
                _cleanup_free_ char *path = npzk_build_path(image, kids[i]), *data = NULL;
                size_t len = 0;
                if (zk_get(w->b->zk, path, &data, &len, NULL) < 0) continue;
                _cleanup_(image_build_freep) struct image_build *b = NULL;
                struct npzk_znode zn = { .path = path, .data = data, .len = len };
                if (npzk_image_record_decode(&zn, &b, NULL, NULL) != NPZK_BUILD || !b) continue;
                bool ready = b->state == IMAGE_BUILD_STATE_READY, failed = b->state == IMAGE_BUILD_STATE_FAILED;
                if (ready && (!nw.have_ready || b->state_time > nw.ready_time)) {
                        nw.have_ready = true;
                        nw.ready_time = b->state_time;
                        model_strv_free(nw.ready_formats);
                        nw.ready_formats = model_strv_copy(b->formats);
                }
                if ((ready || failed) && (!have_finished || b->state_time > finished_time)) {
                        have_finished = true;
                        finished_time = b->state_time;
                        nw.failed = failed;
                        nw.failed_time = b->state_time;
                        nw.failures = b->failures;
                        nw.retry_time = b->retry_time;
                }
        }
        zk_strv_free(kids);
        *ret = nw;
        return 0;
}

int bw_snap_read_has_ready_upload(struct bw *w, const char *image, const char *build_id, const char *provider) {
        if (!npzk_name_ok(image) || !npzk_name_ok(build_id) || !npzk_name_ok(provider)) return -EINVAL;
        _cleanup_free_ char *dir = npzk_uploads_path(image, build_id, provider);
        char **kids = NULL;
        size_t n = 0;
        int r = zk_get_children(w->b->zk, dir, &kids, &n);
        if (r == -ENOENT) return 0;
        if (r < 0) return r;
        bool ready = false;
        for (size_t i = 0; i < n && !ready; i++) {
                if (strcmp(kids[i], NPZK_LOCK) == 0) continue;
                _cleanup_free_ char *path = npzk_upload_path(image, build_id, provider, kids[i]), *data = NULL;
                size_t len = 0;
                if (zk_get(w->b->zk, path, &data, &len, NULL) < 0) continue;
                _cleanup_(image_upload_freep) struct image_upload *u = NULL;
                struct npzk_znode zn = { .path = path, .data = data, .len = len };
                if (npzk_image_record_decode(&zn, NULL, &u, NULL) != NPZK_UPLOAD || !u) continue;
                ready = bw_upload_settled(u);
        }
        zk_strv_free(kids);
        return ready;
}
